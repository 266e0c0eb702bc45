"""The search's validation metric on a :class:`~genreg.tasks.Task`: accuracy, or MAE / MSE in the data's units.

Regression targets are standardised in a Task; the errors are scaled back by
``task.y_std`` so that a Boston MAE is in $1000s, a wine MAE in quality points
and a trig MSE in units of cos (whose targets are not standardised).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from genreg.errors import ConfigError
from genreg.network import backprop
from genreg.network.layout import Layout
from genreg.tasks import Task

METRICS = ("accuracy", "mae", "mse")


def resolve_metric(metric: str, task_spec: str, kind: str | None = None) -> str:
    """``metric``, with 'auto' read as accuracy (classification), mse (trig) or mae (other regression).

    kind: the task's kind once it is loaded; before that, MNIST-like specs are classification
    and the other built-in tasks regression (a csv: / npz: task's kind is known only once loaded).
    """
    if metric != "auto":
        return metric
    name = str(task_spec).strip().lower()
    if kind == "classification" or (kind is None and name in ("mnist", "fashion-mnist")):
        return "accuracy"
    return "mse" if name == "trig" else "mae"


@dataclass(frozen=True)
class SearchMetric:
    """How the search scores a network on a task: ``name`` ('accuracy', 'mae' or 'mse') and its direction.

    y_std: ``(n_outputs,)`` float64, the scale that maps standardised errors to the data's units (regression).
    """

    name: str
    y_std: np.ndarray | None = None

    @classmethod
    def for_task(cls, metric: str, task: Task) -> "SearchMetric":
        """The metric named ``metric`` ('auto' resolved for ``task``); ConfigError if it does not fit the task's kind."""
        name = resolve_metric(metric, task.spec or task.name, task.kind)
        if (name == "accuracy") != task.is_classification:
            raise ConfigError(f"invalid hpo config: metric = {metric!r}: task {task.name} is {task.kind}; "
                              "accuracy is the classification metric, mae and mse the regression ones")
        return cls(name, None if task.is_classification else np.asarray(task.y_std, dtype=np.float64))

    @property
    def loss(self) -> str:
        """The training loss: 'nll' (softmax cross-entropy) for accuracy, else 'mse'."""
        return "nll" if self.name == "accuracy" else "mse"

    @property
    def higher_is_better(self) -> bool:
        return self.name == "accuracy"

    def score(self, layout: Layout, row: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """The metric of ``row`` on ``X: (n, n_inputs) float32`` and ``y`` (labels, or standardised targets)."""
        if self.name == "accuracy":
            return backprop.accuracy(layout, row, X, y)
        err = (backprop.forward(layout, row, X, loss="mse").astype(np.float64) - y) * self.y_std
        return float(np.mean(np.abs(err)) if self.name == "mae" else np.mean(np.square(err)))

    def reached(self, value: float, target: float) -> bool:
        """Whether ``value`` is at least as good as ``target`` (nan target: never)."""
        if math.isnan(target) or math.isnan(value):
            return False
        return value >= target if self.higher_is_better else value <= target
