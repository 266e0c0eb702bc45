"""Run directory, checkpoints, resume and final report of a hybrid GA + SGD run.

    RUN_DIR/config.toml                     resolved config of the latest (re)start
    RUN_DIR/metrics.csv                     one row a generation (validation accuracy or MSE, losses, timings, similarity)
    RUN_DIR/checkpoints/state_genNNNNN.h5   population after NNNNN generations (atomic, last two kept)
    RUN_DIR/similarity/genNNNNN.h5          per-gene P x P cosine similarities after NNNNN generations
    RUN_DIR/result.json                     final report: test accuracy (or MSE) of the best network and of the baseline

The data is the config's task (``genreg.tasks.load_task``).  Generation 0 is the
random founder population.  The test set is read once, after the last
generation, to evaluate the best network (by validation fitness) and the
baseline.  Regression tasks train on MSE; their fitness is minus the validation
MSE in the data's units, and every column and result key says ``mse``.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from genreg.tasks import Task, load_task
from genreg.hybrid.diversity import gene_names, layer_names, mean_offdiagonal, similarity_matrices
from genreg.config import rename_legacy_keys, write_config
from genreg.errors import CheckpointError, ConfigError
from genreg.hybrid.recombination import HybridData, step, train_baseline
from genreg.hybrid.strategy import HybridState, crossover_bounds, founders
from genreg.hybrid.config import DATA_KEYS, NETWORK_KEYS, HybridConfig, from_mapping
from genreg.network.layout import Layout
from genreg.network.population import Population, check_population_size
from genreg.runs.loop import run_loop
from genreg.runs.rundir import RunLock, prepare_new_run, remove_partial_files, run_kind, write_marker
from genreg.runs.history import History
from genreg.runs.store import (
    atomic_h5, check_format, checkpoint_dir, has_checkpoint, latest_checkpoint, prune_checkpoints, read_dataset,
    write_dataset)
from genreg.network.variation import layer_gene_bounds, tile_genes

FORMAT = "genreg.hybrid_state"
#: 2: ``validation_size`` (was ``validation_images``: ``config.RENAMED_KEYS``).
FORMAT_VERSION = 2
SIM_FORMAT = "genreg.hybrid_similarity"
RECORD = ["best_val_accuracy", "mean_val_accuracy", "worst_val_accuracy", "pool_mean_val_accuracy",
          "mean_train_loss", "pool_size", "fresh_kept", "diverged", "breed_seconds", "train_seconds"]


def record_columns(metric: str = "accuracy") -> list[str]:
    """The per-generation record's columns: ``RECORD`` with ``accuracy`` read as ``metric``."""
    return [c.replace("accuracy", metric) for c in RECORD]


def is_hybrid_run(run_dir) -> bool:
    """True for a run directory written by ``genreg hybrid``."""
    return (Path(run_dir) / "similarity").is_dir()


# -- data ---------------------------------------------------------------------------
def load_run_task(cfg: HybridConfig, data_dir=None) -> Task:
    """The config's task: MNIST-like tasks validate on ``split_validation(validation_size, seed=0)``
    (the same images whatever the run's seed); other tasks split 60/20/20 from ``cfg.seed``."""
    return load_task(cfg.task, data_dir, seed=cfg.seed, validation_size=cfg.validation_size,
                     target=cfg.target or None)


def task_layout(cfg: HybridConfig, task: Task) -> Layout:
    """The network of every member: ``cfg.architecture`` between the task's inputs and outputs
    (a ConvNet on the task's images, ``task.input_shape``)."""
    return cfg.layout(task.n_inputs, task.n_outputs, task.input_shape)


def hybrid_data(cfg: HybridConfig, task: Task) -> HybridData:
    """The first ``train_images`` training rows (0 = all) and the validation split, inputs as float32."""
    n = cfg.train_images or len(task.y_train)
    return HybridData(Task.as_float(task.X_train[:n]), task.y_train[:n], Task.as_float(task.X_val), task.y_val,
                      loss=task.loss, y_std=None if task.is_classification else task.y_std, task=task)


def load_data(cfg: HybridConfig, data_dir=None) -> HybridData:
    """``hybrid_data`` of the config's task (``load_run_task``)."""
    return hybrid_data(cfg, load_run_task(cfg, data_dir))


# -- checkpoints ------------------------------------------------------------------------
def write_state(run_dir, state: HybridState, cfg: HybridConfig) -> Path:
    """Atomically write ``checkpoints/state_genNNNNN.h5``; keep the last two."""
    path = checkpoint_dir(run_dir) / f"state_gen{state.generation:05d}.h5"
    pop = state.population
    with atomic_h5(path) as f:
        for name in ("W", "trust", "ids", "parent_ids", "age"):
            write_dataset(f, name, getattr(pop, name))
        write_dataset(f, "second_parent_ids", state.second_parent_ids)
        f.attrs["format"] = FORMAT
        f.attrs["format_version"] = FORMAT_VERSION
        f.attrs["generation"] = state.generation
        f.attrs["next_id"] = pop.next_id
        f.attrs["layout"] = json.dumps(pop.layout.to_dict())
        f.attrs["config"] = json.dumps(cfg.to_dict())
        f.attrs["rng"] = json.dumps({"kind": "streams keyed by (seed, generation, slot, purpose)",
                                     "seed": cfg.seed, "generation": state.generation})
    prune_checkpoints(run_dir)
    return path


def read_state(path) -> tuple[HybridState, dict]:
    """Load a hybrid checkpoint; returns (state, config dict).  Errors name the file."""
    path = Path(path)
    import h5py

    try:
        with h5py.File(path, "r") as f:
            check_format(f, path, FORMAT, FORMAT_VERSION, "hybrid checkpoint")
            arrays = {name: read_dataset(f, name) for name in ("W", "trust", "ids", "parent_ids", "age", "second_parent_ids")}
            generation, next_id = int(f.attrs["generation"]), int(f.attrs["next_id"])
            layout = Layout.from_dict(json.loads(f.attrs["layout"]))
            config = rename_legacy_keys(json.loads(f.attrs["config"]))
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, ConfigError) as exc:
        raise CheckpointError(f"cannot read checkpoint {path}: {exc}") from None
    pop = Population(layout=layout, W=np.ascontiguousarray(arrays["W"], dtype=np.float32), trust=arrays["trust"],
                     ids=arrays["ids"], parent_ids=arrays["parent_ids"], age=arrays["age"], next_id=next_id)
    pop.check_finite()
    return HybridState(pop, generation, arrays["second_parent_ids"]), config


def latest_state(run_dir) -> tuple[Path, HybridState, dict]:
    return latest_checkpoint(run_dir, reader=read_state)


# -- similarity ------------------------------------------------------------------------------
def write_similarity(run_dir, state: HybridState, cfg: HybridConfig) -> tuple[Path, dict]:
    """Write ``similarity/genNNNNN.h5``: per layer gene (and per crossover gene) the
    ``(P, P) float32`` cosine-similarity matrix; returns (path, mean similarity per layer)."""
    pop = state.population
    layout = pop.layout
    path = Path(run_dir) / "similarity" / f"gen{state.generation:05d}.h5"
    layer_bounds = layer_gene_bounds(layout)
    layers = similarity_matrices(pop.W, layer_bounds)
    names = layer_names(layout)
    with atomic_h5(path) as f:
        f.attrs["format"] = SIM_FORMAT
        f.attrs["generation"] = state.generation
        f.attrs["layer_names"] = json.dumps(names)
        write_dataset(f, "layers", layers)
        write_dataset(f, "fitness", pop.trust)
        write_dataset(f, "ids", pop.ids)
        if cfg.genes != "layer":
            bounds = crossover_bounds(cfg, layout)
            write_dataset(f, "genes", similarity_matrices(pop.W, bounds))
            write_dataset(f, "gene_bounds", bounds)
            f.attrs["gene_names"] = json.dumps(gene_names(layout, bounds))
    return path, {name: mean_offdiagonal(S) for name, S in zip(names, layers)}


def read_similarity(path) -> dict:
    """``{generation, layer_names, layers (L, P, P), fitness (P,), [genes, gene_names]}``."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            out = {"generation": int(f.attrs["generation"]), "layer_names": json.loads(f.attrs["layer_names"]),
                   "layers": read_dataset(f, "layers"), "fitness": read_dataset(f, "fitness")}
            if "genes" in f:
                out["genes"] = read_dataset(f, "genes")
                out["gene_names"] = json.loads(f.attrs["gene_names"])
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot read similarity file {path}: {exc}") from None
    return out


def metric_columns(layout: Layout, metric: str = "accuracy") -> list[str]:
    return ["generation", *record_columns(metric), *[f"similarity_{n}" for n in layer_names(layout)], "seconds"]


# -- the loop -----------------------------------------------------------------------------------
class HybridMode:
    """A hybrid GA + SGD run as a ``genreg.runs.loop.Mode``: one generation a step (``recombination.step``:
    ``HybridRecombination.ask`` -> ``evaluate_pool`` -> ``tell``), ``write_state`` its checkpoint.

    Hybrid generations are labelled 1..N (0 is the founders): ``state.generation`` counts
    the generations done, as the loop expects.
    """

    kind = "hybrid"

    def __init__(self, run_dir: Path, cfg: HybridConfig, data: HybridData, layout: Layout):
        self.run_dir, self.cfg, self.data, self.layout = Path(run_dir), cfg, data, layout
        self.record = record_columns(data.metric)
        self.metrics = History(self.run_dir / "metrics.csv", metric_columns(layout, data.metric))
        self.per_generation = cfg.population + cfg.n_fresh  # networks trained a generation

    def step(self, state: HybridState, tick):
        t0 = time.perf_counter()
        on_done = (lambda i, acc: tick(1)) if self.per_generation > 1 else None
        state, record = step(state, self.cfg, self.data, on_done=on_done)
        _, similarity = write_similarity(self.run_dir, state, self.cfg)
        row = [state.generation, *[record[k] for k in self.record], *similarity.values(), time.perf_counter() - t0]
        self.metrics.append(row)
        return state, dict(zip(self.metrics.columns, row))

    def checkpoint(self, state: HybridState) -> None:
        write_state(self.run_dir, state, self.cfg)

    def flush(self) -> None:
        pass  # checkpoints are written in place

    def close(self, failed: bool) -> None:
        self.metrics.close()

    def postfix(self, record: dict) -> dict:
        m = self.data.metric
        return {"gen": record["generation"], "best": f"{record[f'best_val_{m}']:.4f}",
                "mean": f"{record[f'mean_val_{m}']:.4f}"}


def hybrid_loop(run_dir: Path, cfg: HybridConfig, state: HybridState, data: HybridData,
                progress: bool = True, on_generation=None) -> HybridState:
    """Run generations ``state.generation + 1 .. cfg.generations`` on ``genreg.runs.loop.run_loop``.

    ``on_generation(row)`` sees each generation's metrics.csv row as a dict; returning
    True stops the run after that generation (checkpoint written).
    """
    mode = HybridMode(run_dir, cfg, data, state.population.layout)
    mode.metrics.truncate(state.generation + 1)
    state, _ = run_loop(mode, state, generations=cfg.generations, checkpoint_every=cfg.checkpoint_every,
                       progress=progress, on_generation=on_generation,
                       desc=f"hybrid {mode.layout.shape_name()}", units_per_generation=mode.per_generation,
                       unit="net", postfix=mode.postfix, resume_hint=f"genreg resume {run_dir}")
    return state


def finish(run_dir: Path, cfg: HybridConfig, state: HybridState, data: HybridData, data_dir=None,
           seconds: float = math.nan) -> dict:
    """Baseline and the one test-set evaluation (``data.task``'s test split, else the config's task);
    writes ``result.json`` and returns it.  Keys say ``accuracy`` or ``mse`` (``metric``)."""
    layout = state.population.layout
    m = data.metric
    result = {"architecture": cfg.architecture, "shape": layout.shape_name(), "seed": cfg.seed,
              "generations": state.generation, "population": state.population.size,
              "epochs_per_lineage": state.generation * cfg.epochs_per_generation,
              "population_seconds": seconds, "task": cfg.task, "metric": m}
    task = data.task if data.task is not None else load_run_task(cfg, data_dir)
    X_test, y_test = Task.as_float(task.X_test), task.y_test
    pop = state.population
    test = np.array([data.score(layout, pop.W[i], X_test, y_test) for i in range(pop.size)])
    sign = 1.0 if m == "accuracy" else -1.0  # trust holds fitness = sign * metric
    result.update({f"best_val_{m}": sign * float(pop.trust[0]), f"best_test_{m}": float(test[0]),
                   "population_test_mean": float(test.mean()), "population_test_min": float(test.min()),
                   "population_test_max": float(test.max())})
    if cfg.baseline:
        t0 = time.perf_counter()
        row, history = train_baseline(cfg, data, layout)
        result.update({"baseline_seconds": time.perf_counter() - t0, "baseline_epochs": len(history),
                       f"baseline_val_{m}": data.score(layout, row, data.X_val, data.y_val),
                       f"baseline_test_{m}": data.score(layout, row, X_test, y_test)})
    (run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def format_result(result: dict) -> str:
    """The final table: population best / mean and the baseline (accuracy in %, or MSE)."""
    m = result.get("metric", "accuracy")

    def v(x):
        return f"{100 * x:.2f}%" if m == "accuracy" else f"{x:.4g}"

    name = "acc" if m == "accuracy" else m
    rows = [("model", "epochs", f"val {name}", f"test {name}", "seconds")]
    rows.append((f"hybrid {result['shape']} best of {result['population']}", str(result["epochs_per_lineage"]),
                 v(result[f"best_val_{m}"]), v(result[f"best_test_{m}"]), f"{result['population_seconds']:.1f}"))
    rows.append(("hybrid population (mean / min / max test)", "", "",
                 f"{v(result['population_test_mean'])} / {v(result['population_test_min'])} / "
                 f"{v(result['population_test_max'])}", ""))
    if f"baseline_test_{m}" in result:
        rows.append((f"baseline {result['shape']} alone", str(result["baseline_epochs"]),
                     v(result[f"baseline_val_{m}"]), v(result[f"baseline_test_{m}"]),
                     f"{result['baseline_seconds']:.1f}"))
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def start_hybrid(cfg: HybridConfig, run_dir, data_dir=None, progress: bool = True, *, on_generation=None) -> dict:
    """Create ``run_dir``, evolve from random founders, then report (``hybrid_loop``: ``on_generation``).

    ``run_dir`` must be new, empty, or a hybrid run killed before its first checkpoint
    (``genreg.runs.rundir.prepare_new_run``); the run holds its ``RunLock`` throughout.
    """
    run_dir = Path(run_dir)
    prepare_new_run(run_dir, "hybrid", has_checkpoint)
    task = load_run_task(cfg, data_dir)
    # before anything is written: members and children (about twice the population), each row with a working
    # copy; tile genes need dense weight matrices
    layout = task_layout(cfg, task)
    check_population_size(layout, cfg.population, copies=4)
    if cfg.genes == "tile":
        tile_genes(layout, cfg.gene_block_rows, cfg.gene_block_cols)
    with RunLock(run_dir):
        return _start(cfg, run_dir, data_dir, progress, on_generation, task)


def _start(cfg: HybridConfig, run_dir: Path, data_dir, progress, on_generation, task: Task | None = None) -> dict:
    """Write the marker, config, founders' similarity and checkpoint of a new run and evolve it (the lock is held)."""
    task = task if task is not None else load_run_task(cfg, data_dir)
    layout = task_layout(cfg, task)
    check_population_size(layout, cfg.population, copies=4)
    data = hybrid_data(cfg, task)
    write_marker(run_dir, "hybrid")
    write_config(run_dir / "config.toml", cfg.to_toml())
    t0 = time.perf_counter()
    state = founders(cfg, layout)
    write_similarity(run_dir, state, cfg)
    write_state(run_dir, state, cfg)
    state = hybrid_loop(run_dir, cfg, state, data, progress, on_generation)
    return _maybe_finish(run_dir, cfg, state, data, data_dir, time.perf_counter() - t0)


def resume_hybrid(run_dir, overrides: dict | None = None, data_dir=None, progress: bool = True, *,
                  on_generation=None) -> dict:
    """Continue ``run_dir`` from its newest loadable checkpoint, with optional parameter changes.

    A run killed before its first checkpoint starts again from its config.toml.  The run
    holds its ``RunLock`` throughout: a second process is refused at once.
    """
    run_dir = Path(run_dir)
    kind = run_kind(run_dir)
    if kind != "hybrid":
        raise ConfigError(f"{run_dir} holds a {kind} run, not a hybrid run")
    with RunLock(run_dir):
        return _resume(run_dir, overrides, data_dir, progress, on_generation)


def _resume(run_dir: Path, overrides, data_dir, progress, on_generation) -> dict:
    remove_partial_files(run_dir)
    if not has_checkpoint(run_dir) and (run_dir / "config.toml").is_file():
        # killed before its first checkpoint was complete: start it again from its config
        from genreg.config import load_run_config

        cfg = from_mapping({**rename_legacy_keys(load_run_config(run_dir)), **dict(overrides or {})})
        print(f"{run_dir} has no checkpoint yet: starting it again from its config.toml")
        (run_dir / "metrics.csv").unlink(missing_ok=True)
        return _start(cfg, run_dir, data_dir, progress, on_generation)
    path, state, saved = latest_state(run_dir)
    base = from_mapping({k: v for k, v in saved.items() if k in HybridConfig.__dataclass_fields__})
    cfg = from_mapping(dict(overrides or {}), base)
    if cfg.generations < state.generation:
        raise ConfigError(f"{run_dir} is already at generation {state.generation}; --generations {cfg.generations} "
                          "would undo nothing and run nothing (give a larger total)")
    changed = [k for k in (*NETWORK_KEYS, *DATA_KEYS) if getattr(cfg, k) != getattr(base, k)]
    if changed:
        raise ConfigError(f"cannot change {', '.join(changed)} on resume: it would change the network "
                          f"({state.population.layout.shape_name()}), its data or its random streams; start a new "
                          f"run instead")
    result_path = run_dir / "result.json"
    if state.generation >= cfg.generations and result_path.exists():
        result = json.loads(result_path.read_text())
        if result.get("generations") == state.generation:  # (nothing runs: config.toml stays the run's)
            print(f"{run_dir} is complete ({state.generation} generation{'s' if state.generation != 1 else ''}); "
                  "its result:")
            return result
    write_config(run_dir / "config.toml", cfg.to_toml())
    data = load_data(cfg, data_dir)
    if task_layout(cfg, data.task).to_dict() != state.population.layout.to_dict():
        raise CheckpointError(f"{path}: its network {state.population.layout.shape_name()} is not the config's "
                              f"{task_layout(cfg, data.task).shape_name()} on task {cfg.task}")
    print(f"resuming {run_dir} from {path.name} (generation {state.generation}) to generation {cfg.generations}")
    t0 = time.perf_counter()
    state = hybrid_loop(run_dir, cfg, state, data, progress, on_generation)
    return _maybe_finish(run_dir, cfg, state, data, data_dir, time.perf_counter() - t0)


def _maybe_finish(run_dir, cfg, state, data, data_dir, seconds) -> dict:
    if state.generation < cfg.generations:
        return {"stopped_at": state.generation}
    return finish(run_dir, cfg, state, data, data_dir, seconds)
