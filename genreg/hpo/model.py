"""HDF5 files of the architecture search: the best network (``best_model.h5``) and
the population (``population.h5``), and prediction with a saved model (any task; ``predict_angle`` for trig).

best_model.h5 — named arrays and JSON attributes, no pickles:

    /row                  (n_params,) float32 — the trained network (see genreg.layout)
    /tensors/W0, /b0 ...  the same weights, one dataset per tensor (for other readers)
    /x_mean, /x_std       (n_inputs,) float64 — network input = (raw - x_mean) / x_std
    /y_mean, /y_std       (n_outputs or 1,) float64 — raw output = output * y_std + y_mean
    attrs: format, format_version, task, metric, loss, layout (JSON), traits (JSON),
           val_metric, test_metric, individual, generation, config (JSON);
           task_spec, kind, target, classes (JSON), feature_names (JSON) (absent in older files)

Files are written to a temporary name, fsynced and renamed (as ``genreg.store``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

from genreg.errors import CheckpointError, ConfigError
from genreg.network.layout import Layout
from genreg.runs.store import atomic_h5, check_format, read_dataset, write_dataset
from genreg.hpo.traits import Traits

MODEL_FORMAT = "genreg.hpo_model"
POPULATION_FORMAT = "genreg.hpo_population"
POPULATION_VERSION = 1
FORMAT_VERSION = 1


@dataclass(frozen=True, eq=False)
class SavedModel:
    """A network read from ``best_model.h5``.  row: (n_params,) float32."""

    layout: Layout
    row: np.ndarray
    traits: Traits
    task: str
    metric: str
    loss: str
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: np.ndarray
    y_std: np.ndarray
    val_metric: float
    test_metric: float
    path: Path
    task_spec: str = ""
    kind: str = ""
    target: str = ""
    classes: tuple = ()
    feature_names: tuple = ()

    def predict(self, X_raw: np.ndarray) -> np.ndarray:
        """Outputs for raw inputs ``(n, n_inputs)``: ``(n, n_outputs)`` float64 in the data's units
        (regression) or logits (classification)."""
        from genreg.network import backprop

        X = ((np.asarray(X_raw, dtype=np.float64) - self.x_mean) / self.x_std).astype(np.float32)
        out = backprop.forward(self.layout, self.row, X, loss=self.loss).astype(np.float64)
        return out * self.y_std + self.y_mean if self.loss == "mse" else out


#: The name files record for a task (a wine task is 'wine' whatever its colour, as in older files).
_RECORDED_NAMES = {"wine-red": "wine", "wine-white": "wine", "wine-both": "wine"}


def save_model(path, layout: Layout, row: np.ndarray, traits: Traits, task, metric, *, val_metric: float,
               test_metric: float, individual: int, generation: int, config: dict) -> Path:
    """Write the best network with its traits, layout and input/output scaling.

    task: the ``genreg.tasks.Task`` it was trained on; metric: its ``genreg.hpo.metrics.SearchMetric``.
    Inputs without scaling get mean 0 / std 1; logits (classification) get y_mean 0 / y_std 1, shape (1,).
    """
    n_y = 1 if task.is_classification else layout.n_outputs
    scaling = {"x_mean": (task.x_mean, np.zeros(layout.n_inputs)), "x_std": (task.x_std, np.ones(layout.n_inputs)),
               "y_mean": (None if task.is_classification else task.y_mean, np.zeros(n_y)),
               "y_std": (None if task.is_classification else task.y_std, np.ones(n_y))}
    row = np.ascontiguousarray(row, dtype=np.float32)
    path = Path(path)
    with atomic_h5(path) as f:
        write_dataset(f, "row", row)
        g = f.create_group("tensors")
        for t in layout.tensors:
            write_dataset(g, t.name, layout.view(row, t.name))
        for name, (value, default) in scaling.items():
            write_dataset(f, name, np.asarray(default if value is None else value, dtype=np.float64))
        a = f.attrs
        a["format"] = MODEL_FORMAT
        a["format_version"] = FORMAT_VERSION
        a["task"] = _RECORDED_NAMES.get(task.name, task.name)
        a["metric"] = metric.name
        a["loss"] = metric.loss
        a["task_spec"] = task.spec or task.name
        a["kind"] = task.kind
        a["target"] = task.target
        a["classes"] = json.dumps([str(c) for c in task.classes])
        a["feature_names"] = json.dumps([str(c) for c in task.feature_names])
        a["layout"] = json.dumps(layout.to_dict())
        a["traits"] = json.dumps(traits.to_dict())
        a["hidden_sizes"] = json.dumps(list(layout.sizes[1:-1]))
        a["val_metric"] = float(val_metric)
        a["test_metric"] = float(test_metric)
        a["individual"] = int(individual)
        a["generation"] = int(generation)
        a["config"] = json.dumps(config, default=str)
    return path


def load_model(path) -> SavedModel:
    """Read a ``best_model.h5``; CheckpointError naming the file if it is not one (or is damaged)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such model file")
    try:
        with h5py.File(path, "r") as f:
            check_format(f, path, MODEL_FORMAT, FORMAT_VERSION, "hpo model")
            layout = Layout.from_dict(json.loads(f.attrs["layout"]))
            row = np.ascontiguousarray(read_dataset(f, "row"), dtype=np.float32)
            arrays = {name: np.asarray(read_dataset(f, name), dtype=np.float64) for name in ("x_mean", "x_std", "y_mean", "y_std")}
            a = f.attrs
            loss = str(a["loss"])
            extra = {"task_spec": str(a.get("task_spec", a["task"])),
                     "kind": str(a.get("kind", "classification" if loss == "nll" else "regression")),
                     "target": str(a.get("target", "")),
                     "classes": tuple(json.loads(a.get("classes", "[]"))),
                     "feature_names": tuple(json.loads(a.get("feature_names", "[]")))}
            model = SavedModel(layout, row, Traits.from_dict(json.loads(a["traits"])), str(a["task"]),
                               str(a["metric"]), loss, val_metric=float(a["val_metric"]),
                               test_metric=float(a["test_metric"]), path=path, **arrays, **extra)
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise CheckpointError(f"cannot read model {path}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:  # ConfigError from a damaged layout, h5py internals
        raise CheckpointError(f"cannot read model {path}: {exc}") from None
    if row.shape != (layout.n_params,):
        raise CheckpointError(f"{path}: row has {row.shape[0]} parameters, its layout {layout.describe()} needs "
                              f"{layout.n_params}")
    if model.x_mean.shape != (layout.n_inputs,) or model.x_std.shape != (layout.n_inputs,):
        raise CheckpointError(f"{path}: input scaling does not match the layout's {layout.n_inputs} inputs")
    if not np.isfinite(row).all():
        raise CheckpointError(f"{path}: the network's weights contain NaN or inf")
    for name in ("x_mean", "x_std", "y_mean", "y_std"):
        values = getattr(model, name)
        if not np.isfinite(values).all() or (name.endswith("std") and not (values > 0).all()):
            raise CheckpointError(f"{path}: its scaling {name} must be finite{' and > 0' if name.endswith('std') else ''}")
    return model


def predict_angle(path, degrees: float) -> tuple[float, float, SavedModel]:
    """``(prediction, cos(degrees), model)`` from a saved trig model; CheckpointError for any other model."""
    model = load_model(path)
    if model.task != "trig":
        raise CheckpointError(f"{path} is a {model.task!r} model; --angle needs a model of the trig task "
                              "(genreg hpo --task trig)")
    if not np.isfinite(float(degrees)):
        raise ConfigError(f"--angle must be a finite number of degrees, got {degrees}")
    radians = np.deg2rad(float(degrees))
    pred = float(model.predict(np.array([[radians]]))[0, 0])
    return pred, float(np.cos(radians)), model


def parse_input(text: str, model: SavedModel) -> np.ndarray:
    """``"v1,v2,..."`` -> ``(1, n_inputs) float64`` raw feature values; ConfigError naming what is wrong."""
    from genreg.errors import ConfigError

    cells = [c.strip() for c in str(text).split(",") if c.strip()]
    try:
        values = np.array([float(c) for c in cells], dtype=np.float64)
    except ValueError:
        bad = next(c for c in cells if not _is_float(c))
        raise ConfigError(f"--input: {bad!r} is not a number") from None
    n = model.layout.n_inputs
    if values.size != n:
        names = f" ({', '.join(model.feature_names)})" if model.feature_names and n <= 20 else ""
        raise ConfigError(f"--input has {values.size} values; {model.path} needs {n}{names}")
    if not np.all(np.isfinite(values)):
        raise ConfigError("--input: every value must be finite")
    return values.reshape(1, n)


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def predict_input(path, text: str) -> tuple[dict, SavedModel]:
    """The saved model's prediction for raw feature values ``"v1,v2,..."`` (scaled with its saved statistics).

    Returns ``({"outputs": [...]}`` in the data's units (regression) or
    ``{"label", "class", "probabilities"}`` (classification), model).
    """
    model = load_model(path)
    out = model.predict(parse_input(text, model))[0]
    if model.loss == "mse":
        return {"outputs": [float(v) for v in out]}, model
    p = np.exp(out - out.max())
    p /= p.sum()
    label = int(np.argmax(out))
    name = model.classes[label] if label < len(model.classes) else str(label)
    return {"label": label, "class": name, "probabilities": [float(v) for v in p]}, model
