"""The data of each architecture-search task, and its validation metric.

A :class:`TaskData` holds train / validation / test arrays ready for
:mod:`genreg.network.backprop` and scores a network in the task's own units:
accuracy (MNIST), or MAE / MSE of the de-standardised targets (Boston housing
in $1000s, wine quality in quality points, trig in units of cos).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from genreg.network import backprop
from genreg.tasks.tabular import TabularSplits
from genreg.network.layout import Layout


@dataclass(frozen=True, eq=False)
class TaskData(TabularSplits):
    """Arrays of one task: the fields of ``TabularSplits``, plus the task's metric and loss.

    X_*: (n, n_inputs) float32.  y_*: (n,) int64 labels (classification) or
    (n, 1) float32 standardised targets (regression; raw = y * y_std + y_mean).
    x_mean, x_std: (n_inputs,) — the network input is (raw - x_mean) / x_std.
    metric: 'accuracy', 'mae' or 'mse'; loss: 'nll' or 'mse'.
    """

    metric: str = "accuracy"
    loss: str = "nll"

    n_inputs = TabularSplits.n_features

    @property
    def n_outputs(self) -> int:
        return 10 if self.loss == "nll" else self.y_train.shape[1]

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "accuracy"

    def score(self, layout: Layout, row: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """The task metric of ``row`` on ``(X, y)``: accuracy, or MAE / MSE in the data's units."""
        if self.metric == "accuracy":
            return backprop.accuracy(layout, row, X, y)
        err = (backprop.forward(layout, row, X, loss="mse").astype(np.float64) - y) * self.y_std
        return float(np.mean(np.abs(err)) if self.metric == "mae" else np.mean(np.square(err)))

    def reached(self, metric: float, target: float) -> bool:
        """Whether ``metric`` is at least as good as ``target`` (nan target: never)."""
        if np.isnan(target) or np.isnan(metric):
            return False
        return metric >= target if self.higher_is_better else metric <= target


def load_task(cfg, data_dir=None) -> TaskData:
    """The data of ``cfg.task`` (an HPOConfig), split and scaled from ``cfg.seed``."""
    metric = cfg.resolved_metric()
    if cfg.task == "mnist":
        return _mnist(cfg, data_dir, metric)
    from genreg.tasks import tabular

    fractions = {"val_fraction": cfg.val_fraction, "test_fraction": cfg.test_fraction}
    if cfg.task == "trig":
        s = tabular.make_trig(cfg.trig_samples, seed=cfg.seed, **fractions)
    elif cfg.task == "boston":
        s = tabular.load_boston(data_dir, seed=cfg.seed, **fractions)
    else:
        s = tabular.load_wine(data_dir, color=cfg.wine_color, seed=cfg.seed, **fractions)
    return TaskData(**{f.name: getattr(s, f.name) for f in fields(s)}, metric=metric, loss="mse")


def _mnist(cfg, data_dir, metric: str) -> TaskData:
    from genreg.tasks import load_mnist, to_float

    mnist = load_mnist(data_dir, download=False)
    train, val = mnist.split_validation(cfg.mnist_val, seed=cfg.seed)
    idx = np.arange(len(train))
    if 0 < cfg.mnist_train < len(train):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x3A1]))
        idx = np.sort(rng.choice(len(train), size=cfg.mnist_train, replace=False))
    return TaskData(
        name="mnist",
        X_train=to_float(train.images[idx]), y_train=train.labels[idx].astype(np.int64),
        X_val=to_float(val.images), y_val=val.labels.astype(np.int64),
        X_test=to_float(mnist.test_images), y_test=mnist.test_labels.astype(np.int64),
        x_mean=np.zeros(784), x_std=np.full(784, 255.0), y_mean=np.zeros(1), y_std=np.ones(1),
        source=str(mnist.source), metric=metric, loss="nll",
    )
