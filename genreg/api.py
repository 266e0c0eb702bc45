"""The Python API: evolve a network on your own problem, get the best genome back, resume later.

    import genreg
    result = genreg.evolve((X, y), strategy="ga", hidden_sizes=[32], generations=200)
    result.best.predict(X_new)           # class labels (or regression outputs)
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

from genreg.errors import ConfigError
from genreg.genome.checkpoint import load_genome, save_genome
from genreg.network.forward import genome_logits
from genreg.network.layout import Layout
from genreg.runs.history import read_history
from genreg.tasks.base import FITNESS, FitnessTask, Task


@dataclasses.dataclass(frozen=True, eq=False)
class Genome:
    """One evolved network: ``row: (layout.n_params,) float32`` in ``layout`` order, with its fitness."""

    layout: Layout
    row: np.ndarray
    fitness: float = float("nan")
    metadata: dict = dataclasses.field(default_factory=dict)

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

    def predict(self, X, classification: bool = True) -> np.ndarray:
        """Class labels ``(n,) int64`` (argmax of the outputs), or with ``classification=False`` the outputs."""
        out = self.outputs(X)
        return np.argmax(out, axis=1) if classification else out

    def evaluate(self, task: Task, split: str = "test") -> dict:
        """``{"accuracy": ...}`` (classification) or ``{"mse": ..., "mae": ...}`` in the data's units (regression)
        of this genome on ``task``'s ``split`` ('train', 'val' or 'test')."""
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
    def load(cls, path) -> "Genome":
        """Read a genome checkpoint (genreg's format or GENREG's published one), through the restricted unpickler."""
        ckpt = load_genome(path)
        return cls(ckpt.layout, ckpt.weights, float(ckpt.trust), dict(ckpt.metadata))


@dataclasses.dataclass(frozen=True, eq=False)
class Result:
    """What ``evolve``/``resume`` return: the best genome of the last generation, the metrics, the run."""

    best: Genome
    history: dict
    run_dir: Path
    task: object
    generations: int
    seconds: float
    stopped_by: str | None = None


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


def _result(run_dir: Path, state, task, seconds: float, stopped_by=None) -> Result:
    path = run_dir / f"best_genome_{task.name}_gen{state.generation:05d}.pkl"
    history = read_history(run_dir / "metrics.csv") if (run_dir / "metrics.csv").exists() else {}
    return Result(Genome.load(path), history, run_dir, task, state.generation, seconds, stopped_by)


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
    (it checkpoints first, and ``resume`` continues it).
    ray: run on Ray workers ('auto', 'local' or a cluster's address; ``pip install 'genreg[ray]'``):
    an evolution strategy's members, or an island model's islands, spread over ``workers``
    processes (default one per CPU); the result is the same as in this process.
    """
    from genreg.config import load_toml
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
    state = start_run(cfg, run_dir, data_dir, progress, task=task, on_generation=on_generation, cluster=cluster)
    return _result(run_dir, state, task, time.perf_counter() - t0)


def resume(run_dir, *, task=None, data_dir=None, progress: bool = True, on_generation=None, ray: str | None = None,
           workers: int | None = None, **overrides) -> Result:
    """Continue an evolution run from its last checkpoint (``overrides``: config keys to change, e.g.
    ``generations=400``).  A run whose task was given from Python needs the same ``task`` again.
    ray, workers: continue on Ray workers (as ``evolve``)."""
    from genreg.runs.evolve import resume_run
    from genreg.config import load_toml, rename_legacy_keys
    from genreg.runs.rundir import run_kind

    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind != "evolve":
        raise ConfigError(f"{run_dir} is a {kind} run: resume it with `genreg resume {run_dir}`")
    # the task's keys never change on resume: config.toml has them without loading a checkpoint
    saved = rename_legacy_keys(load_toml(run_dir / "config.toml"))
    spec = str(saved.get("task", "mnist"))
    if task is None and spec.startswith("python:"):
        raise ConfigError(f"{run_dir} was evolved on a task given from Python ({spec[7:]}): pass it again as task=")
    if task is None:
        task = spec
    task = as_task(task, data_dir, seed=int(saved.get("seed", 0)), validation_size=saved.get("validation_size"),
                   target=saved.get("target") or None)
    t0 = time.perf_counter()
    state = resume_run(run_dir, overrides, data_dir, progress, task=task, on_generation=on_generation,
                       cluster=_cluster(ray, workers))
    return _result(run_dir, state, task, time.perf_counter() - t0)
