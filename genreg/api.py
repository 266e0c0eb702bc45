"""The Python API: evolve a network on your own problem, get the best genome back, resume later.

    import genreg
    result = genreg.evolve((X, y), strategy="ga", hidden_sizes=[32], generations=200)
    result.best.predict(X_new)           # class labels (or regression outputs), X_new read like X
    result.best.evaluate(result.task)    # test-split accuracy / MSE
    result.best.save("best.pkl")         # `genreg eval` reads it
    genreg.resume(result.run_dir, task=(X, y), generations=400)

A ConvNet takes the config key ``conv`` (stages before the dense layers, on the task's images)::

    result = genreg.evolve("mnist", strategy="openai-es", conv="c3x4-p2", hidden_sizes=[], activation="relu")
    result.best.predict(images)          # (n, 784) rows or (n, 28, 28) images
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np

from genreg.config import load_run_config, load_toml
from genreg.errors import ConfigError
from genreg.genome.checkpoint import load_genome, save_genome
from genreg.network.forward import genome_logits
from genreg.network.layout import Layout
from genreg.runs.history import read_history
from genreg.tasks.base import FitnessTask, Task


@dataclasses.dataclass(frozen=True, eq=False)
class Genome:
    """One evolved network: ``row: (layout.n_params,) float32`` in ``layout`` order, with its fitness.

    task: the ``Task`` it was evolved on, when known (a genome from ``evolve``/``resume``, or
    ``Genome.load(path, task=...)``): ``predict`` then reads raw inputs as that task's data was read.
    """

    layout: Layout
    row: np.ndarray
    fitness: float = float("nan")
    metadata: dict = dataclasses.field(default_factory=dict)
    task: Task | None = dataclasses.field(default=None, repr=False)

    def outputs(self, X) -> np.ndarray:
        """The network's outputs (logits) ``(n, n_outputs) float32`` for inputs ``X: (n, n_inputs)``
        (uint8 pixels are read as pixel/255, as during evolution); a ConvNet also takes images
        ``(n, H, W)`` or ``(n, H, W, C)`` of its input shape."""
        X = np.asarray(X)
        if X.ndim == 1:
            X = X[None, :]
        image = self.layout.image
        if image is not None and X.shape[1:] in (tuple(image), tuple(image[:2]) if image[2] == 1 else None):
            X = X.reshape(X.shape[0], -1)
        if X.ndim != 2 or X.shape[1] != self.layout.n_inputs:
            raise ConfigError(f"the genome takes inputs of shape (n, {self.layout.n_inputs}), got {X.shape}")
        return genome_logits(self.layout, self.row, X)

    def predict(self, X, classification: bool | None = None) -> np.ndarray:
        """Predictions for ``X: (n, n_inputs)`` (or images, as ``outputs`` takes them).

        With its ``task`` known, ``X`` is raw data, read as the task's was (standardised with the training
        split's mean and deviation; pixels as pixel/255), and the result is the task's kind: class labels
        ``(n,)`` (the task's class names where it has them, else class indices) or regression outputs
        ``(n, k) float64`` in the data's units.  Without a task, ``X`` is the network's inputs and the
        result is the argmax ``(n,) int64`` (``classification=True``, the default for several outputs) or the
        outputs ``(n, k) float32`` (``classification=False``, the default for one output).
        """
        task = self.task if isinstance(self.task, Task) else None
        if task is None:
            out = self.outputs(X)
            wants_classes = self.layout.n_outputs > 1 if classification is None else classification
            return np.argmax(out, axis=1) if wants_classes else out
        X = np.asarray(X)
        out = self.outputs(task.features_from_raw(X) if X.ndim == 2 else X)[:, :task.n_outputs]
        if not (task.is_classification if classification is None else classification):
            return task.targets_to_raw(out) if not task.is_classification else out
        labels = np.argmax(out, axis=1)
        return np.asarray(task.classes)[labels] if task.classes else labels

    def evaluate(self, task: Task, split: str = "test") -> dict:
        """``{"accuracy": ...}`` (classification) or ``{"mse": ..., "mae": ...}`` in the data's units (regression)
        of this genome on ``task``'s ``split`` ('train', 'val' or 'test')."""
        if not isinstance(task, Task):
            raise ConfigError(f"evaluate needs a task with data (a Task, e.g. result.task of a data run); got "
                              f"{type(task).__name__}: a fitness task's score is the genome's fitness")
        if split not in ("train", "val", "test"):
            raise ConfigError(f"split must be 'train', 'val' or 'test', got {split!r}")
        X, y = getattr(task, f"X_{split}"), getattr(task, f"y_{split}")
        if len(y) == 0:
            raise ConfigError(f"task {task.name} has no {split} split")
        out = self.outputs(X)
        if task.is_classification:
            return {"accuracy": float((np.argmax(out[:, :task.n_outputs], axis=1) == y).mean()), "n": int(len(y))}
        err = task.targets_to_raw(out[:, :task.n_outputs]) - task.targets_to_raw(y)
        return {"mse": float(np.mean(err ** 2)), "mae": float(np.mean(np.abs(err))), "n": int(len(y))}

    def save(self, path) -> Path:
        """Write this genome in genreg's checkpoint format (atomically); ``genreg eval`` reads it."""
        return save_genome(path, self.layout, self.row, trust=self.fitness, metadata=dict(self.metadata))

    @classmethod
    def load(cls, path, task=None) -> "Genome":
        """Read a genome checkpoint (genreg's format or GENREG's published one), through the restricted unpickler.
        task: the task it was evolved on (a ``Task`` or a ``Task`` built by ``as_task``), for ``predict``."""
        ckpt = load_genome(path)
        return cls(ckpt.layout, ckpt.weights, float(ckpt.trust), dict(ckpt.metadata), task)


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """What ``evolve``/``resume`` return: the best genome of the last generation, the metrics, the run."""

    best: Genome
    history: dict = dataclasses.field(repr=False)  # metrics.csv's columns: arrays of every generation
    run_dir: Path
    task: object = dataclasses.field(repr=False)
    generations: int
    seconds: float
    stopped_by: str | None = None  # why it ended before its generations: "callback", "max_minutes=M"; None if it ran them


def as_task(task, data_dir=None, *, seed: int = 0, validation_size: int | None = None, target: str | None = None):
    """A ``Task``/``FitnessTask`` from a spec string, a ``(X, y)`` pair, or a task object (returned as is)."""
    if isinstance(task, (Task, FitnessTask)):
        return task
    if isinstance(task, tuple) and len(task) == 2:
        from genreg.tasks import from_arrays

        return from_arrays(task[0], task[1], seed=seed)
    if isinstance(task, str):
        from genreg.tasks import load_task

        return load_task(task, data_dir, seed=seed, validation_size=validation_size, target=target)
    raise ConfigError(f"task must be a name such as 'mnist', an (X, y) pair, a Task or a FitnessTask; "
                      f"got {type(task).__name__}")


def _task_key(task) -> str:
    """What the config records as the task: its spec, or ``python:<name>`` for one given from Python."""
    return task.spec or f"python:{task.name}"


def _result(run_dir: Path, state, task, seconds: float, watch: "_Watch") -> Result:
    path = run_dir / f"best_genome_{task.name}_gen{state.generation:05d}.pkl"
    history = read_history(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else {}
    genome = Genome.load(path, task if isinstance(task, Task) else None)
    cfg = load_run_config(run_dir)  # as the run ended (a resume rewrites it with its changes)
    stopped_by = watch.stopped_by(state.generation, int(cfg.get("generations", 0)), float(cfg.get("max_minutes", 0)))
    return Result(genome, history, run_dir, task, state.generation, seconds, stopped_by)


class _Watch:
    """Passes each generation's metrics to the user's ``on_generation`` and remembers whether it asked to stop,
    so that ``Result.stopped_by`` can say why a run ended before its ``generations``."""

    def __init__(self, on_generation):
        self.on_generation, self.asked = on_generation, False

    def __call__(self, metrics: dict):
        self.asked = self.on_generation(metrics) is True
        return self.asked

    def callback(self):
        return self if self.on_generation is not None else None

    def stopped_by(self, generation: int, generations: int, max_minutes: float) -> str | None:
        """Why a run that reached ``generation`` of ``generations`` ended: None (it ran them all), ``"callback"``
        or ``"max_minutes=M"``."""
        if generation >= generations:
            return None
        return "callback" if self.asked else f"max_minutes={max_minutes:g}"


def _cluster(ray, workers):
    """The ``ClusterSpec`` of ``ray=``/``workers=`` (None: in this process)."""
    if ray is None:
        if workers is not None:
            raise ConfigError("workers= needs ray= ('auto', 'local' or a cluster's address)")
        return None
    from genreg.distributed.cluster import ClusterSpec

    return ClusterSpec(ray, workers)


def evolve(task="mnist", *, out=None, config=None, data_dir=None, progress: bool = True, on_generation=None,
           ray: str | None = None, workers: int | None = None, **keys) -> Result:
    """Evolve a population on ``task`` and return the best genome.

    task: a built-in name ('mnist', 'fashion-mnist', 'wine', 'boston', 'trig', 'csv:FILE',
    'npz:FILE'), an ``(X, y)`` pair of arrays, a ``Task``, or a ``FitnessTask``.
    out: the run directory (default: a new temporary folder; see ``Result.run_dir``).
    config: a TOML file of config keys; ``keys``: config keys (``strategy="ga"``,
    ``hidden_sizes=[32]``, ``generations=200``, ...; ``genreg evolve --help`` lists them all).
    on_generation(metrics: dict): called after every generation; returning True stops the run
    (it checkpoints first, ``Result.stopped_by`` says "callback", and ``resume`` continues it).
    ray: run on Ray workers ('auto', 'local' or a cluster's address; ``pip install 'genreg[ray]'``):
    an evolution strategy's members, or an island model's islands, spread over ``workers``
    processes (default one per CPU); the result is the same as in this process.
    """
    from genreg.runs.evolve import start_run
    from genreg.strategies.config import from_mapping

    mapping = load_toml(config) if config else {}
    mapping.update(keys)
    if isinstance(task, str):
        mapping["task"] = task
    cfg = from_mapping(mapping)
    task = as_task(task if not isinstance(task, str) else cfg.task, data_dir, seed=cfg.seed,
                   validation_size=cfg.validation_size, target=cfg.target or None)
    cfg = cfg.replace(task=_task_key(task))
    run_dir = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix="genreg-"))
    t0 = time.perf_counter()
    cluster = _cluster(ray, workers)
    watch = _Watch(on_generation)
    state = start_run(cfg, run_dir, data_dir, progress, task=task, on_generation=watch.callback(), cluster=cluster)
    return _result(run_dir, state, task, time.perf_counter() - t0, watch)


def resume(run_dir, *, task=None, data_dir=None, progress: bool = True, on_generation=None, ray: str | None = None,
           workers: int | None = None, **overrides) -> Result:
    """Continue an evolution run from its last checkpoint (``overrides``: config keys to change, e.g.
    ``generations=400``).  A run whose task was given from Python needs the same ``task`` again.
    ray, workers: continue on Ray workers (as ``evolve``)."""
    from genreg.runs.evolve import resume_run
    from genreg.config import rename_legacy_keys
    from genreg.runs.rundir import run_kind

    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind != "evolve":
        raise ConfigError(f"{run_dir} is a {kind} run: resume it with `genreg resume {run_dir}`")
    # the task's keys never change on resume: config.toml has them without loading a checkpoint
    saved = rename_legacy_keys(load_run_config(run_dir))
    spec = str(saved.get("task", "mnist"))
    if task is None and spec.startswith("python:"):
        raise ConfigError(f"{run_dir} was evolved on a task given from Python ({spec[7:]}): pass it again as task=")
    if task is None:
        task = spec
    task = as_task(task, data_dir, seed=int(saved.get("seed", 0)), validation_size=saved.get("validation_size"),
                   target=saved.get("target") or None)
    t0 = time.perf_counter()
    watch = _Watch(on_generation)
    state = resume_run(run_dir, overrides, data_dir, progress, task=task, on_generation=watch.callback(),
                       cluster=_cluster(ray, workers))
    return _result(run_dir, state, task, time.perf_counter() - t0, watch)
