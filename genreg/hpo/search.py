"""Architecture and hyper-parameter search: a GA over traits whose fitness is SGD training.

The loop (weight-merge-ga-hpo.txt, Algorithm 1; genetic-architecture-search.txt):

1. generation 0: ``population`` individuals with random traits and fresh
   weights; every one is trained (fitness) and scored on the validation split;
2. each later generation (``generations`` counts them all, generation 0 included): keep the best
   ``survivor_fraction`` (they
   keep their trained weights and their score, and are not trained again);
   fill the population with children of random pairs of survivors — a random
   subset of traits swapped (two complementary children per pair), 1-3 traits
   re-drawn with probability ``mutation_rate`` — and train the children;
3. stop after generation ``generations - 1`` or as soon as the best validation metric reaches
   ``target``.

Each generation is ask -> evaluate -> tell (``HPOMode.step``): the variation
and selection are ``genreg.hpo.strategy.TraitSearch``; the evaluator is
``evaluate_candidates`` (``evaluate_fitness`` of each candidate, which trains
its row in place).

Fitness: SGD (``genreg.network.sgd``) for at most ``epochs`` epochs, with early
stopping once the validation metric has not improved for ``patience`` epochs;
the network keeps the weights of its best epoch (the starting weights count as
epoch 0).  Its wall time — training plus the per-epoch validation scoring — is
recorded for every evaluation, and its CPU time (all threads of the process),
which a busy shared machine disturbs much less.  With ``merge`` on, a child starts from its
parents' merged trained weights (``genreg.merge.merge_weights``) instead of a
fresh initialisation: the claim under test is that it then needs fewer epochs.

Randomness: every decision draws from a stream keyed by (seed, generation or
individual id, purpose), so a search is a function of its config and seed.

Run directory::

    OUT/config.toml        the resolved HPOConfig
    OUT/evaluations.csv    one row per fitness evaluation (traits, provenance, metric, epochs, seconds)
    OUT/generations.csv    one row per generation (best / mean metric, times)
    OUT/population.h5      the current population: weights, traits and scores (genreg.hpo_model)
    OUT/best_model.h5      the best network so far, with traits, layout and scaling
    OUT/summary.json       the result (best traits, validation and test metric, totals)
"""

from __future__ import annotations

import errno
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreg.config import write_config
from genreg.errors import CheckpointError, ConfigError, TrainingError
from genreg.hpo.config import HPOConfig
from genreg.hpo.model import save_model
from genreg.hpo.rundir import (
    EVAL_COLUMNS, GEN_COLUMNS, Individual, evaluation_row, has_population, read_population, read_rows,
    write_population)
from genreg.hpo.strategy import SearchState, TraitSearch, rank
from genreg.hpo.traits import Traits, make_gene_store, trait_ranges
from genreg.network import sgd
from genreg.network.blas import blas_threads
from genreg.network.layout import Layout, network_layout
from genreg.network.population import check_population_size
from genreg.runs.loop import run_loop
from genreg.runs.rundir import RunLock, prepare_new_run, remove_partial_files, run_kind, write_marker
from genreg.runs.history import History
from genreg.streams import SearchPurpose, derived_seed, generator
from genreg.hpo.data import search_task
from genreg.hpo.metrics import SearchMetric
from genreg.tasks import Task


@dataclass
class HPOResult:
    """What a search returns; ``evaluations`` are the rows of ``evaluations.csv`` as dicts."""

    best: Individual
    population: list
    generations_run: int  # generations done (generation 0 included)
    stopped_by: str
    total_seconds: float
    test_metric: float
    run_dir: Path
    evaluations: list = field(default_factory=list)


# ----------------------------------------------------------------------------- building blocks


def train_config(traits: Traits, layout: Layout, loss: str) -> sgd.TrainConfig:
    """One epoch of SGD with the individual's hyper-parameters; dropout after the first hidden layer only."""
    n_hidden = layout.n_layers - 1
    dropout = tuple([traits.dropout] + [0.0] * (n_hidden - 1)) if n_hidden > 0 else 0.0
    return sgd.TrainConfig(epochs=1, batch_size=traits.batch_size, lr=traits.learning_rate,
                                momentum=traits.momentum, lr_decay=traits.lr_decay, dropout=dropout,
                                loss=loss).validate()


def _better(new: float, old: float, higher: bool, min_delta: float) -> bool:
    if math.isnan(new):
        return False
    if math.isnan(old):
        return True
    margin = min_delta * abs(old)
    return new > old + margin if higher else new < old - margin


def search_metric(cfg: HPOConfig, task: Task) -> SearchMetric:
    """The config's validation metric on ``task`` (``metric = auto`` resolved for it)."""
    return SearchMetric.for_task(cfg.metric, task)


def evaluate_fitness(ind: Individual, task: Task, cfg: HPOConfig, metric: SearchMetric | None = None) -> Individual:
    """Train ``ind.row`` in place (early stopping) and score it by ``metric`` (default: the config's);
    fill metric, epochs, fitness_seconds.

    The row ends with the weights of the best epoch (epoch 0 = the starting
    weights).  Divergence (``TrainingError``) ends training; the best weights
    seen so far are kept and ``error`` says what happened.  ``sgd.train``
    is called once per epoch; ``start_epoch`` keeps its learning-rate schedule
    and streams, and one ``velocity`` buffer carries the momentum across epochs.
    """
    t0, c0 = time.perf_counter(), time.process_time()
    metric = metric or search_metric(cfg, task)
    higher = metric.higher_is_better
    cfg_train = train_config(ind.traits, ind.layout, metric.loss)
    seed = derived_seed(cfg.seed, ind.id, SearchPurpose.TRAIN)
    best = metric.score(ind.layout, ind.row, task.X_val, task.y_val)
    ind.init_metric = best
    best_row = ind.row.copy()
    velocity = np.zeros_like(ind.row)
    stale, epochs = 0, 0
    with np.errstate(over="ignore", invalid="ignore"):  # divergence surfaces as TrainingError
        try:
            for e in range(cfg.epochs):
                sgd.train(ind.layout, ind.row, task.X_train, task.y_train, cfg_train, seed=seed, start_epoch=e,
                               velocity=velocity)
                epochs = e + 1
                m = metric.score(ind.layout, ind.row, task.X_val, task.y_val)
                if _better(m, best, higher, cfg.min_delta):
                    best, stale = m, 0
                    best_row[:] = ind.row
                else:
                    stale += 1
                    if cfg.patience and stale >= cfg.patience:
                        break
        except TrainingError as exc:
            ind.error = str(exc)
    ind.row[:] = best_row
    ind.metric = float(best)
    ind.epochs = epochs
    ind.fitness_seconds = time.perf_counter() - t0
    ind.fitness_cpu_seconds = time.process_time() - c0
    return ind


def evaluate_candidates(candidates: list, task: Task, cfg: HPOConfig, metric: SearchMetric,
                        on_done=None) -> np.ndarray:
    """The search's evaluator: ``evaluate_fitness`` of every candidate in turn (training each row in place);
    returns their validation metrics ``(C,) float64``.  ``on_done(ind)`` sees each as it finishes."""
    for ind in candidates:
        evaluate_fitness(ind, task, cfg, metric)
        if on_done is not None:
            on_done(ind)
    return np.array([ind.metric for ind in candidates], dtype=np.float64)


def run_hpo(cfg: HPOConfig, out_dir, data_dir=None, *, progress: bool = False,
            task: Task | None = None, on_generation=None) -> HPOResult:
    """Run the search of ``cfg`` and write its run directory ``out_dir``; returns the result.

    task: preloaded data (default: ``genreg.hpo.data.search_task(cfg, data_dir)``).  Training runs with
    single-threaded BLAS, so the result does not depend on the machine's BLAS threads
    (a multi-threaded GEMM may sum in another order).  ``on_generation(row)`` sees each
    generation's ``generations.csv`` row as a dict; returning True stops the search after
    that generation (``population.h5`` written; ``resume_hpo`` continues it).  ``out_dir`` must be
    new, empty, or a search killed before its first generation ended (``prepare_new_run``);
    the search holds its ``RunLock`` throughout.
    """
    cfg.validate()
    out = Path(out_dir)
    prepare_new_run(out, "hpo", has_population, noun="search")
    task = task if task is not None else search_task(cfg, data_dir)
    search_metric(cfg, task)  # before anything is written: the metric must fit the task
    # the widest network the trait ranges allow, three rows per individual (weights, best epoch, momentum)
    widest = network_layout(task.input_shape, [cfg.width_max] * cfg.layers_max, task.n_outputs, cfg.activation,
                            cfg.conv)  # a conv on data that are not images is refused here, before anything is written
    check_population_size(widest, cfg.population, copies=3)  # before anything is written
    with RunLock(out), blas_threads(1):
        return _run_hpo(cfg, out, task, progress=progress, on_generation=on_generation)


#: The line a search's config.toml carries since ``generations`` counts generation 0 (genreg 0.2); a config
#: without it (genreg 0.1) counted breeding rounds after generation 0, one fewer.
GENERATIONS_NOTE = "# generations: the total number of generations, generation 0 included"


def saved_config(path) -> dict:
    """A search's config.toml as a mapping, ``generations`` as today's total (a 0.1 file's rounds + 1)."""
    from genreg.config import load_run_config

    mapping = load_run_config(Path(path).parent)
    if GENERATIONS_NOTE not in Path(path).read_text(encoding="utf-8", errors="replace") and isinstance(
            mapping.get("generations"), int):
        mapping["generations"] += 1
    return mapping


#: Keys that may change when a search is resumed (anything else would change its past).
RESUMABLE_KEYS = ("generations", "target")


def resume_hpo(out_dir, overrides: dict | None = None, data_dir=None, *, progress: bool = False,
               task: Task | None = None, on_generation=None) -> HPOResult:
    """Continue the search in ``out_dir`` after its last finished generation (``population.h5``).

    Only ``RESUMABLE_KEYS`` may change.  A search killed at any moment resumes from the
    last generation it wrote and then does exactly what the uninterrupted search would; one killed
    before its first generation ended starts again from its config.toml.  Damaged run files are
    CheckpointErrors naming the file, found before anything is written.
    """
    out = Path(out_dir)
    if not out.is_dir() or not ((out / "population.h5").exists() or (out / "config.toml").exists()):
        raise CheckpointError(f"{out} holds no hpo search to resume (no population.h5 / config.toml)")
    kind = run_kind(out)
    if kind != "hpo":
        raise ConfigError(f"{out} holds a {kind} run, not a search")
    overrides = dict(overrides or {})
    fixed = sorted(set(overrides) - set(RESUMABLE_KEYS))
    if fixed:
        raise ConfigError(f"cannot change {', '.join(fixed)} when resuming a search; only {', '.join(RESUMABLE_KEYS)}")
    with RunLock(out), blas_threads(1):
        return _resume_hpo(out, overrides, data_dir, progress, task, on_generation)


def _resume_hpo(out: Path, overrides: dict, data_dir, progress, task, on_generation) -> HPOResult:
    """Check every run file, then continue the search (the lock is held)."""
    from genreg.hpo.config import hpo_from_mapping

    remove_partial_files(out)
    if not (out / "config.toml").is_file():
        raise CheckpointError(f"{out / 'config.toml'} is missing: the search cannot resume without its config")
    cfg = hpo_from_mapping({**saved_config(out / "config.toml"), **overrides})
    cfg.validate()
    task = task if task is not None else search_task(cfg, data_dir)
    search_metric(cfg, task)
    if not has_population(out):  # killed before its first generation ended: start it again from its config
        print(f"{out} has no finished generation yet: starting it again from its config.toml")
        return _run_hpo(cfg, out, task, progress=progress, on_generation=on_generation)
    path = out / "population.h5"
    done, population = read_population(path)
    if len(population) != cfg.population:
        raise CheckpointError(f"{path} holds {len(population)} individuals, its config.toml says population = "
                              f"{cfg.population}")
    if cfg.generations < done + 1:
        ran = f"{done + 1} generations (0-{done})" if done else "1 generation (0)"
        raise ConfigError(f"{out} has already run {ran}; --generations {cfg.generations} would undo nothing and "
                          "run nothing (give a larger total)")
    rows = [{k: (float(v) if k in ("fitness_seconds", "epochs") else v) for k, v in r.items()}
            for r in read_rows(out / "evaluations.csv", EVAL_COLUMNS, done + 1)]
    read_rows(out / "generations.csv", GEN_COLUMNS, done + 1)  # readable, before anything is rewritten
    return _run_hpo(cfg, out, task, progress=progress, on_generation=on_generation,
                    resumed=(done, population, rows))


# ----------------------------------------------------------------------------- one generation, the run


class HPOMode:
    """The trait search as a ``genreg.runs.loop.Mode``: one generation a step, ``population.h5`` its checkpoint."""

    kind = "hpo"

    def __init__(self, out: Path, cfg: HPOConfig, task: Task, gene_store, rows: list, last: int,
                 best_id: int = -1, test_metric: float = math.nan):
        self.run_dir, self.cfg, self.task, self.gene_store = out, cfg, task, gene_store
        self.rows, self.last, self.best_id, self.test_metric = rows, last, best_id, test_metric
        self.metric = search_metric(cfg, task)
        self.higher = self.metric.higher_is_better
        self.strategy = TraitSearch(task, self.higher, gene_store)
        self.n_keep = TraitSearch.n_survivors(cfg)
        self.n_children = cfg.population - self.n_keep
        self.evaluations = History(out / "evaluations.csv", EVAL_COLUMNS)
        self.generations = History(out / "generations.csv", GEN_COLUMNS)
        self.stopped_by = "generations"
        self.t_start = time.perf_counter()

    def truncate(self, generation: int) -> None:
        """Forget the rows of generations ``generation`` and later (a killed run's partial rows)."""
        for history in (self.evaluations, self.generations):
            history.truncate(generation)

    def step(self, state: SearchState, tick=None):
        """Run generation ``state.generation``: ask (founders at 0, else the survivors' children),
        ``evaluate_candidates`` (train and score them), tell (survivors + children)."""
        cfg, task, g = self.cfg, self.task, state.generation
        t_gen = time.perf_counter()
        todo = self.strategy.ask(state, cfg)
        evaluation = evaluate_candidates(todo, task, cfg, self.metric, on_done=self._record)
        state = self.strategy.tell(state, todo, evaluation, cfg)
        population = state.population
        best = rank(population, self.higher)[0]
        metrics = np.array([ind.metric for ind in population], dtype=np.float64)
        finite = metrics[np.isfinite(metrics)]
        if best.id != self.best_id:
            self.best_id = best.id
            self.test_metric = _test_metric(task, self.metric, best)
            save_model(self.run_dir / "best_model.h5", best.layout, best.row, best.traits, task, self.metric,
                       val_metric=best.metric, test_metric=self.test_metric, individual=best.id,
                       generation=best.generation, config=cfg.to_dict())
        now = time.perf_counter()
        record = [g, best.id, best.metric, finite.mean() if finite.size else math.nan,
                  np.median(finite) if finite.size else math.nan, len(todo),
                  np.mean([ind.fitness_seconds for ind in todo]), now - t_gen, now - self.t_start]
        _append(self.generations, record)
        self.last = g
        if self.metric.reached(best.metric, cfg.target):
            self.stopped_by = "target"
            state = SearchState(cfg.generations, population, state.next_id)
        return state, dict(zip(GEN_COLUMNS, record))

    def _record(self, ind: Individual) -> None:
        """Append an evaluated individual's row to ``evaluations.csv``."""
        row = evaluation_row(ind)
        self.rows.append(row)
        _append(self.evaluations, [row[c] for c in EVAL_COLUMNS])

    def checkpoint(self, state: SearchState) -> None:
        write_population(self.run_dir / "population.h5", state.population, self.last, self.metric.name)

    def flush(self) -> None:
        pass

    def close(self, failed: bool) -> None:
        for history in (self.evaluations, self.generations):
            try:
                history.close()
            except OSError:  # a full disk fails the buffered row again: keep the first error, which names the file
                if not failed:
                    raise

    def postfix(self, record: dict) -> dict:
        return {f"best {self.metric.name}": f"{record['best_metric']:.4f}", "fits": len(self.rows)}


def _append(history: History, row) -> None:
    """``history.append(row)``; an OSError (a full disk) names the CSV file."""
    try:
        history.append(row)
    except OSError as exc:
        raise OSError(exc.errno or errno.EIO, exc.strerror or str(exc), str(history.path)) from None


def _test_metric(task: Task, metric: SearchMetric, best: Individual) -> float:
    """``best``'s metric on the test split (NaN without one)."""
    return metric.score(best.layout, best.row, task.X_test, task.y_test) if len(task.y_test) else math.nan


def _run_hpo(cfg: HPOConfig, out: Path, task: Task, *, progress: bool = False, on_generation=None,
             resumed: tuple | None = None) -> HPOResult:
    """Run the search in ``out`` from generation 0, or after ``resumed = (done, population, rows)``
    (the lock is held and every run file was checked)."""
    metric = search_metric(cfg, task)
    if resumed is None:
        write_marker(out, "hpo")
        for name in ("evaluations.csv", "generations.csv"):  # rows of a search killed during generation 0
            (out / name).unlink(missing_ok=True)
    write_config(out / "config.toml", cfg.to_toml() + GENERATIONS_NOTE + "\n")
    ranges = trait_ranges(cfg)
    gene_store = (make_gene_store(generator(cfg.seed, 0, SearchPurpose.GENE_STORE), ranges, cfg.gene_store_size)
                  if cfg.mutation == "gene_store" else None)
    if resumed is not None:
        done, population, rows = resumed
        mode = HPOMode(out, cfg, task, gene_store, rows, done)
        # the generations after ``done`` never finished: forget their rows, redo them
        mode.truncate(done + 1)
        best = rank(population, metric.higher_is_better)[0]
        mode.best_id, mode.test_metric = best.id, _test_metric(task, metric, best)
        state = SearchState(done + 1, population, cfg.population + done * mode.n_children)
        if metric.reached(best.metric, cfg.target):
            mode.stopped_by, state.generation = "target", max(state.generation, cfg.generations)
    else:
        mode = HPOMode(out, cfg, task, gene_store, [], 0)
        state = mode.strategy.init(cfg)
    mode.t_start = time.perf_counter()
    state, interrupted = run_loop(mode, state, generations=cfg.generations, checkpoint_every=1,
                                  progress=progress, on_generation=on_generation,
                                  desc=f"hpo {cfg.task}{' merge' if cfg.merge else ''}", postfix=mode.postfix,
                                  resume_hint=f"genreg resume {out}")
    stopped_by = interrupted or mode.stopped_by
    total = time.perf_counter() - mode.t_start
    population, rows, g = state.population, mode.rows, mode.last + 1  # generations 0..last done
    best = rank(population, metric.higher_is_better)[0]
    summary = {
        "task": cfg.task, "metric": metric.name, "merge": cfg.merge, "seed": cfg.seed,
        "generations_run": g, "stopped_by": stopped_by, "evaluations": len(rows),
        "best": {"id": best.id, "generation": best.generation, "val_metric": best.metric,
                 "test_metric": mode.test_metric, "traits": best.traits.to_dict(), "layout": best.layout.to_dict()},
        "total_seconds": total,
        "mean_fitness_seconds": float(np.mean([r["fitness_seconds"] for r in rows])),
        "mean_epochs": float(np.mean([r["epochs"] for r in rows])),
        "data": {"source": task.source, "n_train": int(len(task.y_train)), "n_val": int(len(task.y_val)),
                 "n_test": int(len(task.y_test))},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=float))
    return HPOResult(best, population, g, stopped_by, total, mode.test_metric, out, rows)
