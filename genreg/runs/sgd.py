"""The gradient baseline: one network of an evolution run's shape, trained by minibatch SGD on any labelled task.

The network is ``n_inputs - hidden_sizes - n_outputs`` with the task's ends, or with ``conv`` a
ConvNet on the task's images (as ``genreg evolve`` builds it), starting from ``Population.random(layout, 1, seed)``; it is trained one epoch at a
time by ``genreg.network.sgd.train`` (genreg's NumPy backprop), with one momentum buffer carried
across epochs.  Epoch ``e`` trains on ``copies`` copies of the training rows taken through the
task's episode hook (``genreg.tasks.base.episode_inputs(sampler, X_train, rows, e)``): on
``alphabet-fonts`` every copy of every image is augmented afresh each epoch, as evolution's
episodes are; other tasks train on their rows as they are.

    RUN_DIR/genreg-run.json                   the kind of run, "sgd" (``genreg.runs.rundir``)
    RUN_DIR/config.toml                       the resolved ``SGDConfig``
    RUN_DIR/metrics.csv                       one row an epoch: epoch, lr, loss, train and validation metric, seconds
    RUN_DIR/best_genome_<task>_epochNNNN.pkl  the network after the epoch that scored best on validation (one kept;
                                              ``genreg eval`` reads it)
    RUN_DIR/result.json                       that network's validation and test scores

A run is a function of its config: founders, shuffles, dropout and augmentation are all keyed by
the seed and the epoch.  Runs take seconds to minutes and are not resumed (start a new one).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.config import ConfigBase, MAX_SEED, rule, write_config
from genreg.errors import ConfigError
from genreg.genome.checkpoint import save_genome
from genreg.network.backprop import accuracy, mean_squared_error
from genreg.network.layout import Layout, network_layout
from genreg.network.population import Population
from genreg.network.sgd import TrainConfig, epoch_lr, train
from genreg.runs.rundir import MARKER, RunLock, prepare_new_run, run_kind, write_marker
from genreg.runs.history import History
from genreg.strategies.config import check_conv
from genreg.tasks.base import FITNESS, Task, episode_inputs

KIND = "sgd"


@dataclass(frozen=True)
class SGDConfig(ConfigBase):
    WHAT = "sgd config"
    TITLE = "genreg sgd run configuration"

    # -- task and network --------------------------------------------------------
    task: str = rule("mnist", nonempty=True)
    """The problem: mnist, fashion-mnist, alphabet, alphabet-fonts, wine, wine-white, boston, trig, csv:FILE (with target), npz:FILE"""
    target: str = ""
    """csv tasks: the name of the target column"""
    hidden_sizes: tuple = rule((64,), items=True, empty=True, gt=0)
    """Hidden dense layer widths, as for genreg evolve (e.g. [128] for alphabet-fonts' 10000-128-26; [] for none: after a ConvNet's stages, or a linear model)."""
    conv: str = ""
    """Convolution and pooling stages before the dense layers, as for genreg evolve, e.g. 'c5x8-p2-c5x16-p2' (an image task; '' = an MLP): c<k>x<channels>[s<stride>][p<padding>], p<k> max pooling, a<k> average pooling."""
    activation: str = rule("tanh", choices=("tanh", "relu", "sigmoid", "identity"))
    """Hidden activation: tanh, relu, sigmoid or identity."""
    seed: int = rule(0, ge=0, le=MAX_SEED)
    """The run is a function of its config and this seed (founder weights, shuffles, dropout, augmentation, splits)."""
    validation_size: int = rule(10000, gt=0, lt=60000)
    """MNIST / Fashion-MNIST: validation images carved from the 60k training images (other tasks have their own split), as for genreg evolve."""
    train_size: int = rule(0, ge=0, note="(0 = all)")
    """Train on the first K training rows only (0 = all): for quick trials and tests."""

    # -- SGD -----------------------------------------------------------------------
    epochs: int = rule(30, ge=1)
    """Epochs of SGD."""
    copies: int = rule(1, ge=1)
    """Copies of the training rows in one epoch (each augmented afresh on tasks that augment, e.g. alphabet-fonts)."""
    batch_size: int = rule(32, ge=1)
    """Minibatch size."""
    lr: float = rule(0.01, gt=0)
    """Learning rate at epoch 0."""
    momentum: float = rule(0.9, ge=0, lt=1)
    """SGD momentum (the velocity carries across epochs)."""
    nesterov: bool = False
    """Nesterov momentum (needs momentum > 0)."""
    lr_decay: float = rule(0.0, ge=0)
    """lr_e = lr / (1 + lr_decay * e) for epoch e."""
    dropout: float = rule(0.0, ge=0, lt=1)
    """Dropout rate of every hidden layer during training."""

    def check(self) -> None:
        """Nesterov needs momentum; ``conv`` parses as stages."""
        self.need(not self.nesterov or self.momentum > 0, "nesterov", "needs momentum > 0")
        check_conv(self)

    def train_config(self, loss: str) -> TrainConfig:
        """The SGD settings of one epoch (``loss``: the task's, 'nll' or 'mse')."""
        return TrainConfig(epochs=1, batch_size=self.batch_size, lr=self.lr, momentum=self.momentum,
                           nesterov=self.nesterov, lr_decay=self.lr_decay, dropout=self.dropout, loss=loss,
                           shuffle=True)


def from_mapping(mapping: dict, base: SGDConfig | None = None) -> SGDConfig:
    """A validated SGDConfig from a flat ``mapping`` on top of ``base`` (default: the defaults)."""
    return SGDConfig.from_mapping(mapping, base)


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return SGDConfig.describe()


def layout_for(cfg: SGDConfig, task) -> Layout:
    """``n_inputs - hidden_sizes - n_outputs`` with the task's ends, or with ``conv`` a ConvNet on the task's
    images (``genreg.network.layout.network_layout``, as ``genreg.runs.evolve.layout_for``)."""
    return network_layout(task.input_shape, cfg.hidden_sizes, task.n_outputs, cfg.activation, cfg.conv)


def load_task_for(cfg: SGDConfig, data_dir=None):
    """The task ``cfg`` names, split as ``genreg evolve`` splits it for the same seed."""
    from genreg.tasks import load_task

    return load_task(cfg.task, data_dir, seed=cfg.seed, validation_size=cfg.validation_size,
                     target=cfg.target or None)


def refuse_resume(run_dir) -> None:
    """``genreg resume`` on an sgd run: ConfigError (such runs are short and start again instead)."""
    raise ConfigError(f"{run_dir} is an sgd run: sgd runs are short and not resumable; start a new one "
                      f"with genreg sgd --config {Path(run_dir) / 'config.toml'} --out NEW_DIR")


def check_new_run(run_dir: Path) -> None:
    """ConfigError unless a new sgd run may start in ``run_dir``: a missing or empty folder, or an sgd run
    that stopped before its first epoch ended (no metrics.csv, no genome); ``prepare_new_run`` refuses the rest."""
    run_dir = Path(run_dir)
    if (run_dir / MARKER).is_file() and run_kind(run_dir) == KIND and (
            (run_dir / "metrics.csv").exists() or any(run_dir.glob("best_genome_*.pkl"))):
        raise ConfigError(f"{run_dir} already holds an sgd run; choose another --out (sgd runs are not resumed)")
    prepare_new_run(run_dir, KIND, lambda _: False)


# -- the epochs -----------------------------------------------------------------
class EpochData:
    """The training rows of a run and each epoch's network inputs.

    rows: ``(copies * n,) int64`` indices into ``task.X_train`` (the first ``n`` rows, ``copies`` times);
    y: their targets (``(m,) int64`` labels or ``(m, k) float32``).  ``inputs(e)``: ``(m, n_inputs)
    float32``, the rows through the task's episode hook for episode ``e`` (pixels as pixel/255).
    """

    def __init__(self, task: Task, cfg: SGDConfig):
        n = task.X_train.shape[0] if cfg.train_size == 0 else min(cfg.train_size, task.X_train.shape[0])
        self.task = task
        self.sampler = task.sampler(1, cfg.seed)
        self.rows = np.tile(np.arange(n, dtype=np.int64), cfg.copies)
        y = task.y_train if task.is_classification else np.ascontiguousarray(task.y_train, dtype=np.float32)
        self.y = np.ascontiguousarray(y[self.rows])
        self.augmented = getattr(self.sampler, "episode_inputs", None) is not None
        self._fixed = None if self.augmented else Task.as_float(task.X_train[self.rows])

    def inputs(self, epoch: int) -> np.ndarray:
        if self._fixed is not None:
            return self._fixed
        return Task.as_float(episode_inputs(self.sampler, self.task.X_train, self.rows, epoch))


def score(layout: Layout, row: np.ndarray, X, y, classification: bool) -> float:
    """Accuracy (classification) or mean squared error in standardised units (regression); nan without rows."""
    if len(y) == 0:
        return math.nan
    return accuracy(layout, row, X, y) if classification else mean_squared_error(layout, row, X, y)


def metric_columns(task) -> list[str]:
    """metrics.csv's columns."""
    m = "accuracy" if task.is_classification else "mse"
    return ["epoch", "lr", "loss", f"train_{m}", f"validation_{m}", "seconds"]


def best_path(run_dir: Path, task, epoch: int) -> Path:
    return run_dir / f"best_genome_{task.name}_epoch{epoch:04d}.pkl"


def train_run(cfg: SGDConfig, run_dir, data_dir=None, progress: bool = True, task=None) -> dict:
    """Create ``run_dir`` and train one network by SGD for ``cfg.epochs`` epochs; return the result.

    task: a labelled ``Task`` (default: the one ``cfg.task`` names).  The result (also written as
    ``result.json``): ``best_epoch``, ``best_genome`` (its path), ``selection_metric``,
    ``validation_<m>`` and ``test_<m>`` of that genome (m: accuracy or mse), ``epochs``, ``seconds``.
    """
    cfg = cfg.validate()
    run_dir = Path(run_dir)
    check_new_run(run_dir)
    task = task if task is not None else load_task_for(cfg, data_dir)
    if task.kind == FITNESS:
        raise ConfigError(f"genreg sgd trains on labelled data; task {task.name} is a fitness task (no labels)")
    layout = layout_for(cfg, task)
    data = EpochData(task, cfg)
    with RunLock(run_dir):
        write_marker(run_dir, KIND)
        write_config(run_dir / "config.toml", cfg.to_toml())
        return _train(cfg, run_dir, task, layout, data, progress)


def _train(cfg: SGDConfig, run_dir: Path, task, layout: Layout, data: EpochData, progress: bool) -> dict:
    t_start = time.perf_counter()
    classification = task.is_classification
    m = "accuracy" if classification else "mse"
    X_val = Task.as_float(task.X_val)
    y_val = task.y_val if classification else np.ascontiguousarray(task.y_val, dtype=np.float32)
    row = np.ascontiguousarray(Population.random(layout, 1, seed=cfg.seed).W[0])
    velocity = np.zeros_like(row)
    tcfg = cfg.train_config(task.loss)
    metric = f"validation_{m}" if len(y_val) else f"train_{m}"
    history = History(run_dir / "metrics.csv", metric_columns(task))
    best = {"score": -math.inf, "epoch": -1, "path": None}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, unit="epoch", desc=f"sgd {layout.shape_name()}", dynamic_ncols=True)
    try:
        for e in range(cfg.epochs):
            t0 = time.perf_counter()
            X = data.inputs(e)
            entry = train(layout, row, X, data.y, tcfg, seed=cfg.seed, start_epoch=e, velocity=velocity)[0]
            train_metric = score(layout, row, X, data.y, classification)
            val_metric = score(layout, row, X_val, y_val, classification)
            chosen = val_metric if len(y_val) else train_metric
            selection = chosen if classification else -chosen
            if selection > best["score"]:  # the earliest among equals
                _keep(best, run_dir, task, layout, row, e, cfg, metric, selection)
            history.append([e, epoch_lr(tcfg, e), entry["loss"], train_metric, val_metric, time.perf_counter() - t0])
            if bar is not None:
                bar.update(1)
                bar.set_postfix({"loss": f"{entry['loss']:.4f}", m[:3]: f"{train_metric:.4f}",
                                 "val": "-" if math.isnan(val_metric) else f"{val_metric:.4f}"})
    finally:
        history.close()
        if bar is not None:
            bar.close()
    return _finish(cfg, run_dir, task, layout, best, m, metric, time.perf_counter() - t_start)


def _keep(best: dict, run_dir: Path, task, layout: Layout, row: np.ndarray, epoch: int, cfg: SGDConfig,
          metric: str, selection: float) -> None:
    """Write the genome of ``epoch`` as the run's best and delete the one it replaces."""
    path = best_path(run_dir, task, epoch)
    metadata = {"epoch": epoch, "seed": cfg.seed, "strategy": "sgd", "task": task.name, "run_dir": str(run_dir),
                "selection_metric": metric, "selection_score": selection}
    save_genome(path, layout, row, metadata=metadata)
    if best["path"] is not None and best["path"] != path:
        best["path"].unlink(missing_ok=True)
    best.update(score=selection, epoch=epoch, path=path)


def _finish(cfg, run_dir: Path, task, layout: Layout, best: dict, m: str, metric: str, seconds: float) -> dict:
    """Score the kept genome on the validation and test splits; write result.json."""
    from genreg.genome.checkpoint import load_genome

    kept = load_genome(best["path"])
    row = np.asarray(kept.weights, dtype=np.float32)
    cls = task.is_classification
    y = (lambda v: v) if cls else (lambda v: np.ascontiguousarray(v, dtype=np.float32))
    result = {"task": task.name, "shape": layout.shape_name(), "epochs": cfg.epochs, "best_epoch": best["epoch"],
              "best_genome": str(best["path"]), "selection_metric": metric,
              f"validation_{m}": score(layout, row, Task.as_float(task.X_val), y(task.y_val), cls),
              f"test_{m}": score(layout, row, Task.as_float(task.X_test), y(task.y_test), cls),
              "seconds": seconds}
    if not cls:  # what `genreg eval` of the genome reports: the test MSE in the data's units
        from genreg.api import Genome

        result["test_mse_data_units"] = Genome(layout, row).evaluate(task)["mse"]
    (run_dir / "result.json").write_text(json.dumps(result, indent=2, allow_nan=True) + "\n")
    return result


def format_result(result: dict) -> str:
    """The closing lines of ``genreg sgd``: the kept genome, its validation and test scores."""
    m = "accuracy" if "test_accuracy" in result else "mse"

    def text(v):
        if isinstance(v, float) and math.isnan(v):
            return "-"
        return f"{100 * v:.2f}%" if m == "accuracy" else f"{v:.6g}"

    unit = "" if m == "accuracy" else \
        f" (standardised targets; {result['test_mse_data_units']:.6g} in the data's units, as genreg eval reports it)" \
        if "test_mse_data_units" in result else " (standardised targets)"
    return (f"{result['epochs']} epochs of SGD on {result['task']} ({result['shape']}) in {result['seconds']:.1f} s; "
            f"best on {result['selection_metric'].replace('_', ' ')}: epoch {result['best_epoch']}\n"
            f"validation {m} {text(result[f'validation_{m}'])}, test {m} {text(result[f'test_{m}'])}{unit}\n"
            f"best genome: {result['best_genome']}")
