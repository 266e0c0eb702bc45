"""Evolution runs (GENREG, the GA, any registered strategy) on any task: start, resume, one generation.

One generation: draw the episode (the same for every genome), score every genome
(``genreg.runs.episodes``), let the strategy turn the scores into fitness, record
metrics, breed.  Every random draw is keyed by (seed, generation, ...), so a
resumed run repeats exactly what an uninterrupted run would have done.

    RUN_DIR/genreg-run.json                  the kind of run (``genreg.runs.rundir``)
    RUN_DIR/config.toml                      the resolved config of the latest (re)start
    RUN_DIR/metrics.csv                      one row a generation
    RUN_DIR/tracked_weights.csv              fixed weights of the best genome, one row a generation
    RUN_DIR/checkpoints/state_genNNNNN.h5    state after NNNNN generations (last two kept)
    RUN_DIR/best_genome_<task>_genNNNNN.pkl  the best genome at a checkpoint (``genreg eval`` reads it): the
                                             newest and the best on validation are kept (all: keep_all_genomes)
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np

from genreg.config import load_run_config, load_toml, write_config
from genreg.errors import ConfigError, GenregError
from genreg.genome.checkpoint import load_genome, save_genome
from genreg.network.batch import SparseBatch
from genreg.network.layout import Layout, network_layout
from genreg.network.members import Members
from genreg.network.population import check_run_size, population_bytes
from genreg.runs import episodes
from genreg.runs.loop import run_loop
from genreg.runs.scoring import EpisodeScorer
from genreg.runs.rundir import RunLock, prepare_new_run, remove_partial_files, run_kind, write_marker
from genreg.runs.history import History
from genreg.runs.store import CheckpointWriter, has_checkpoint, latest_checkpoint, write_checkpoint
from genreg.strategies import make_strategy
from genreg.strategies.base import EvolutionState, ranking
from genreg.strategies.config import NETWORK_KEYS, Config, from_mapping
from genreg.streams import TRACKED_WEIGHTS
from genreg.tasks.base import FITNESS


def layout_for(cfg: Config, task) -> Layout:
    """``n_inputs - hidden_sizes - n_outputs`` with the task's ends (a ConvNet on its images with ``cfg.conv``)."""
    return network_layout(task.input_shape, cfg.hidden_sizes, task.n_outputs, cfg.activation, cfg.conv)


def metric_columns(task) -> list[str]:
    """metrics.csv's columns for ``task``'s kind."""
    if task.kind == FITNESS:
        quality = []
    elif task.is_classification:
        quality = (["best_accuracy", "mean_accuracy", "validation_accuracy"]
                   + [f"class_{k}" for k in range(task.n_outputs)])
    else:
        quality = ["best_mse", "mean_mse", "validation_mse"]
    return ["generation", "best_fitness", "mean_fitness", *quality, "eval_seconds", "breed_seconds", "mutation_scale"]


def tracked_positions(layout: Layout, cfg: Config) -> np.ndarray:
    """The fixed weights whose values the run records (first-layer weights, chosen by seed)."""
    n = min(cfg.track_weights, layout.tensor("W0").size)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, TRACKED_WEIGHTS]))
    return np.sort(rng.choice(layout.tensor("W0").size, size=n, replace=False))


def known_layout(cfg: Config) -> Layout | None:
    """The network of ``cfg`` on MNIST-shaped images (28 x 28, 10 classes), known before the data set is read;
    None if ``cfg`` cannot build one (the run's own checks report why)."""
    try:
        return network_layout((28, 28), cfg.hidden_sizes, 10, cfg.activation, cfg.conv)
    except GenregError:
        return None


def warm_kernels(layout: Layout) -> None:
    """Load the loop's compiled kernels from Numba's cache by calling each on one tiny input.

    The first use of cached kernels costs about 1 s (Numba sets itself up); ``start_run``
    runs this on a thread while it reads the data set.  The calls go through
    ``genreg.network.forward``, so a ConvNet's layout loads the ConvNet kernels.
    """
    try:
        from genreg.network.population import Population
        from genreg.network.variation import Brood
        from genreg.streams import Purpose, stream_keys

        batch = SparseBatch.from_dense(np.zeros((1, layout.n_inputs), np.uint8))
        labels = np.zeros(1, np.int64)
        pop = Population.random(layout, 1, seed=0)
        keys = stream_keys(0, 0, [0], Purpose.CHILD_MUTATION)
        brood = Brood(pop.W, np.zeros(1, np.int64), np.full(1, 0.5), np.full(1, 0.5), keys, keys, 0.1)
        brood.build()
        episodes.classify(pop, batch, labels, layout.n_outputs, False)
        episodes.validation_score(layout, pop.W[0], batch, labels, True, layout.n_outputs)
        pop.W, pop.brood = None, brood
        episodes.classify(pop, batch, labels, layout.n_outputs, False)
    except Exception:  # noqa: BLE001 - only a head start: the run's own calls report any problem
        pass


class EvolveMode:
    """One evolution run: its task data, strategy, histories and checkpoint writer."""

    kind = "evolve"

    def __init__(self, run_dir: Path, cfg: Config, task, layout: Layout):
        self.run_dir, self.cfg, self.task, self.layout = Path(run_dir), cfg, task, layout
        self.strategy = make_strategy(cfg.strategy)
        self.scorer = EpisodeScorer(task, cfg)
        self.labelled = self.scorer.labelled
        if self.labelled:
            self.validation = SparseBatch.from_dense(task.X_val) if len(task.y_val) else None
        self.remote = None  # a genreg.distributed.es.RemoteMembers: members scored on Ray workers
        self.tracked = tracked_positions(layout, cfg)
        self.metrics = History(self.run_dir / "metrics.csv", metric_columns(task))
        self.weights = History(self.run_dir / "tracked_weights.csv",
                               ["generation"] + [f"w{int(i)}" for i in self.tracked])
        self.writer = CheckpointWriter(self.run_dir)  # checkpoints are written while evolution goes on
        self.spare = None  # a buffer nothing refers to any more: the rows bred from two generations ago
        self.best_row, self.best_fitness, self.best_generation = None, 0.0, 0
        self.kept = kept_genomes(self.run_dir)  # pickle path -> its selection score

    def truncate(self, generation: int) -> None:
        for history in (self.metrics, self.weights):
            history.truncate(generation)

    def episode(self, g: int):
        """Generation ``g``'s episode (``EpisodeScorer.episode``)."""
        return self.scorer.episode(g)

    def evaluate(self, state: EvolutionState):
        """Score ``state``'s genomes on generation ``state.generation``'s episode."""
        g, pop = state.generation, self.strategy.ask(state, self.cfg)
        if isinstance(pop, Members):
            return self.evaluate_members(pop, state, g)
        if not self.labelled:
            return episodes.Evaluation(0, fitness=self.task.score(pop.build(), g))
        batch, y = self.episode(g)
        return self.scorer.rows(pop, batch, y, self.strategy.needs_loss(self.cfg))

    def evaluate_members(self, members: Members, state: EvolutionState, g: int):
        """An evolution strategy's members (here, or on Ray workers) and its centre on generation ``g``'s
        episode (the centre's evaluation is ``.centre``)."""
        if self.remote is not None:
            values = self.remote.score(state, members)
        else:
            values = self.scorer.members(members, g)
        evaluation = self.scorer.evaluation(values, g)
        evaluation.centre = self.scorer.centre(state.population, g)
        if self.remote is not None:
            self.remote.scored(evaluation.direct_fitness())
        return evaluation

    def quality(self, evaluation, best: int, g: int, population=None) -> list:
        """The task-specific metrics of generation ``g`` (``metric_columns``' middle part): genome ``best`` of
        ``evaluation``, and the mean over ``population`` (default ``evaluation``; an evolution strategy's members)."""
        population = evaluation if population is None else population
        if not self.labelled:
            return []
        validation = math.nan
        # A fixed schedule (not "and the last generation"), so a resumed run
        # records exactly what the uninterrupted one does.
        if self.validation is not None and self.cfg.validation_every and g % self.cfg.validation_every == 0:
            validation = episodes.validation_score(self.layout, self.best_row, self.validation, self.task.y_val,
                                                   self.task.is_classification, self.task.n_outputs)
        if not self.task.is_classification:
            return [float(evaluation.loss[best]), float(population.loss.mean()), validation]
        labels, predictions, accuracy = evaluation.labels, evaluation.predictions, evaluation.accuracy
        C = self.task.n_outputs
        hits = np.bincount(labels, weights=predictions[best] == labels, minlength=C)
        per_class = (hits / np.maximum(np.bincount(labels, minlength=C), 1)).tolist()
        return [float(accuracy[best]), float(population.accuracy.mean()), validation, *per_class]

    def step(self, state: EvolutionState, tick=None):
        g = state.generation
        t0 = time.perf_counter()
        evaluation = self.evaluate(state)
        pop = state.population
        fitness = self.strategy.score(state, evaluation, self.cfg)
        top = int(ranking(fitness)[0])
        shown, best = (evaluation.centre, 0) if self.strategy.reports_centre else (evaluation, top)
        self.best_row = pop.genomes([best])[0]
        quality = self.quality(shown, best, g, population=evaluation)
        self.best_fitness = float(shown.direct_fitness()[0] if self.strategy.reports_centre else fitness[top])
        self.best_generation = g
        t1 = time.perf_counter()
        # The generation before last is garbage now: breed into its buffer.
        previous = pop.W if pop.W is not None else pop.brood.source
        state = self.strategy.breed(state, self.cfg, out=self.spare)
        self.spare = previous if self.strategy.reuses_rows else None
        t2 = time.perf_counter()
        row = [g, float(fitness[top]), float(np.nanmean(fitness)), *quality, t1 - t0, t2 - t1,
               self.strategy.last_mutation_scale]
        self.metrics.append(row)
        self.weights.append([g, *map(str, self.best_row[self.tracked])])  # float32's shortest exact text
        return state, dict(zip(self.metrics.columns, row))

    def best_path(self, generation: int) -> Path:
        return self.run_dir / f"best_genome_{self.task.name}_gen{generation:05d}.pkl"

    def selection_score(self) -> tuple[str, float]:
        """What the best genome's pickles are compared by (higher is better): validation accuracy,
        minus validation MSE, or (without a validation split) fitness."""
        if self.labelled and self.validation is not None:
            value = episodes.validation_score(self.layout, self.best_row, self.validation, self.task.y_val,
                                              self.task.is_classification, self.task.n_outputs)
            if self.task.is_classification:
                return "validation_accuracy", value
            return "validation_mse", -value
        return "fitness", self.best_fitness

    def checkpoint(self, state: EvolutionState) -> None:
        path = self.best_path(state.generation)
        metric, score = self.selection_score()
        metadata = {"generation": self.best_generation, "seed": self.cfg.seed, "strategy": self.cfg.strategy,
                    "task": self.task.name, "run_dir": str(self.run_dir), "selection_metric": metric,
                    "selection_score": score}
        row, fitness = self.best_row, self.best_fitness

        def save():
            save_genome(path, self.layout, row, trust=fitness, metadata=metadata)
            self.kept[path] = score
            if not self.cfg.keep_all_genomes:
                prune_genomes(self.kept, newest=path)

        self.writer.submit(state, self.cfg.to_dict(), save)

    def flush(self) -> None:
        self.writer.wait()

    def close(self, failed: bool) -> None:
        self.metrics.close()
        self.weights.close()
        self.writer.close(check=not failed)

    def postfix(self, record: dict) -> dict:
        out = {"fitness": f"{record['best_fitness']:.4g}"}
        if self.remote is not None:
            out["workers"] = f"{self.remote.pool.alive()}/{self.remote.pool.size}"
        for key, short in (("best_accuracy", "acc"), ("validation_accuracy", "val"), ("best_mse", "mse"),
                           ("validation_mse", "val")):
            if key in record:
                out[short] = "-" if math.isnan(record[key]) else f"{record[key]:.3f}"
        return out


def same_network(a: Layout, b: Layout) -> bool:
    """Whether two layouts are the same network: widths, blocks, image and stages (a ConvNet and an MLP
    may have the same dense widths)."""
    return (a.sizes, a.blocks, a.image, a.stages) == (b.sizes, b.blocks, b.image, b.stages)


def kept_genomes(run_dir: Path) -> dict:
    """The best-genome pickles of ``run_dir`` that carry a selection score (written by this genreg),
    path -> score; pickles without one (older runs) are never pruned."""
    kept = {}
    for path in sorted(Path(run_dir).glob("best_genome_*_gen*.pkl")):
        try:
            score = load_genome(path).metadata.get("selection_score")
        except GenregError:
            continue
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            kept[path] = float(score)
    return kept


def prune_genomes(kept: dict, newest: Path) -> None:
    """Delete every pickle of ``kept`` (path -> score) but ``newest`` and the best-scoring one
    (the earliest among equals)."""
    best = max(sorted(kept), key=lambda p: kept[p])
    for path in [p for p in kept if p not in (newest, best)]:
        path.unlink(missing_ok=True)
        del kept[path]


def _load_task(cfg: Config, task, data_dir):
    """``task`` if given, else the task ``cfg`` names."""
    if task is not None:
        return task
    from genreg.tasks import load_task

    return load_task(cfg.task, data_dir, seed=cfg.seed, validation_size=cfg.validation_size,
                     target=cfg.target or None)


def _evolve(mode: EvolveMode, holder: list, progress: bool, on_generation, cluster=None) -> EvolutionState:
    """Run ``mode`` from the state in ``holder`` (a one-item list, emptied here so that no caller keeps
    the starting population alive while the run makes new ones); ``cluster``: score an evolution
    strategy's members on the Ray workers it names."""
    if cluster is not None:
        from genreg.distributed.es import remote_members

        with remote_members(cluster, mode.task, mode.cfg) as remote:
            mode.remote = remote
            first = holder[0].generation
            state = _evolve(mode, holder, progress, on_generation)
            print(remote.summary(state.generation - first))  # (with or without a progress bar)
            return state
    cfg = mode.cfg
    state, _ = run_loop(mode, holder.pop(), generations=cfg.generations, checkpoint_every=cfg.checkpoint_every,
                        max_minutes=cfg.max_minutes, progress=progress, on_generation=on_generation,
                        desc=f"{cfg.strategy} {mode.layout.describe().split(' ')[0]}", postfix=mode.postfix,
                        resume_hint=resume_hint(cfg, mode.run_dir))
    return state


def resume_hint(cfg: Config, run_dir) -> str:
    """How to continue ``run_dir``: ``genreg resume DIR``, or for a task given from Python (which the CLI cannot
    load) ``genreg.resume('DIR', task=...)``."""
    if cfg.task.startswith("python:"):
        return f"genreg.resume({str(run_dir)!r}, task=...) with the same {cfg.task[7:]} task"
    return f"genreg resume {run_dir}"


def has_any_checkpoint(run_dir) -> bool:
    """Whether ``run_dir`` holds a checkpoint of a one-population run or of any island of an island run."""
    from genreg.runs.islands import has_island_checkpoint

    return has_checkpoint(run_dir) or has_island_checkpoint(run_dir)


def check_generations(run_dir, cfg: Config, done: int) -> None:
    """Refuse a resume whose ``generations`` is not more than the ``done`` generations of ``run_dir``."""
    if cfg.generations < done:
        raise ConfigError(f"{run_dir} has already run {done} generation{'s' if done != 1 else ''} (0-{done - 1}); "
                          f"--generations {cfg.generations} is not more: give the total to reach, e.g. "
                          f"--generations {done + cfg.checkpoint_every}")


def warn_edited_config(run_dir: Path, base: Config, overrides: dict) -> None:
    """Say so when ``run_dir``'s config.toml was edited since the checkpoint ``base`` came from: a resume runs
    with the checkpoint's settings and ``--set``'s, and rewrites config.toml with them."""
    path = run_dir / "config.toml"
    try:
        raw = {k: v for k, v in load_toml(path).items() if k in Config.__dataclass_fields__}
        written = from_mapping(raw).to_dict()
    except GenregError:
        print(f"genreg: warning: {path} is unreadable or invalid: it is rewritten from the checkpoint")
        return
    theirs = base.to_dict()
    edited = [k for k in raw if k not in overrides and written[k] != theirs[k]]
    if edited:
        print(f"genreg: warning: {path} was edited ({', '.join(edited[:5])}): a resume takes the checkpoint's "
              f"settings and --set's (e.g. --set {edited[0]}=...), and rewrites the file")


def check_fixed_keys(base: Config, cfg: Config, what: str) -> None:
    """Refuse a resume that changes the network, the task or the island count (``what`` it would change), or the
    seed (the run's random streams, its tracked weights and, for tasks other than MNIST, its data split)."""
    changed = [k for k in (*NETWORK_KEYS, "task", "target", "islands") if getattr(cfg, k) != getattr(base, k)]
    if changed:
        raise ConfigError(f"cannot change {', '.join(changed)} on resume: it would change {what}; "
                          f"start a new run instead")
    if cfg.seed != base.seed:
        raise ConfigError(f"cannot change seed on resume ({base.seed} -> {cfg.seed}): the run's random streams, "
                          f"tracked weights and data split come from it; start a new run with --seed {cfg.seed}")


def check_placement(cfg: Config, cluster) -> None:
    """Refuse what cannot run: islands of an evolution strategy, or a cluster for one GENREG/GA population."""
    es = make_strategy(cfg.strategy).reports_centre
    if cfg.islands > 1 and es:
        raise ConfigError(f"islands = {cfg.islands}: the island model is for genreg and ga; {cfg.strategy} spreads "
                          f"its members over the workers instead (--ray without islands)")
    if cluster is not None and not es and cfg.islands == 1:
        raise ConfigError(f"--ray spreads an evolution strategy's members, or an island model's islands, over "
                          f"workers: for {cfg.strategy} give --set islands=N (one population runs in-process)")
    if cluster is not None:
        cluster.check_reachable()


def start_run(cfg: Config, run_dir, data_dir=None, progress: bool = True, *, task=None,
              on_generation=None, cluster=None) -> EvolutionState:
    """Create ``run_dir`` and evolve from a fresh founder population.

    task: a ``Task``/``FitnessTask`` (default: ``load_task(cfg.task)``).
    cluster: a ``genreg.distributed.cluster.ClusterSpec`` to run on Ray workers (None: in this process).
    """
    run_dir = Path(run_dir)
    check_placement(cfg, cluster)
    prepare_new_run(run_dir, "evolve", has_any_checkpoint)
    warm = None
    known = known_layout(cfg) if task is None and cfg.task in ("mnist", "fashion-mnist") else None
    if known is not None:  # known shape: warm the kernels while reading
        warm = threading.Thread(target=warm_kernels, args=(known,), name="genreg-warm-kernels", daemon=True)
        warm.start()
    try:
        task = _load_task(cfg, task, data_dir)
    finally:
        if warm is not None:
            warm.join()  # no kernel runs here before this (nor after a failed load): one thread launches kernels
    layout = layout_for(cfg, task)
    if task.kind != FITNESS:  # the episodes can be drawn (enough examples of every class): before anything is written
        task.sampler(cfg.samples_per_class, cfg.seed)
    check_run_size(layout, cfg.population, cfg.strategy, survival_cutoff=cfg.survival_cutoff,  # before any write
                   built=not task.is_classification or make_strategy(cfg.strategy).needs_loss(cfg),
                   samples=cfg.samples_per_class * task.n_outputs, rank=cfg.rank)
    with RunLock(run_dir):
        return _start(cfg, run_dir, data_dir, progress, task, on_generation, layout, cluster)


def _start(cfg: Config, run_dir: Path, data_dir, progress, task, on_generation, layout=None,
           cluster=None) -> EvolutionState:
    """Write the marker, config and founders' checkpoint of a new run and evolve it (the lock is held)."""
    task = _load_task(cfg, task, data_dir)  # (given by start_run; loaded here when a killed run restarts)
    layout = layout or layout_for(cfg, task)
    if cfg.islands > 1:
        from genreg.runs.islands import start_islands

        return start_islands(cfg, run_dir, task, layout, cluster=cluster, progress=progress,
                             on_generation=on_generation)
    write_marker(run_dir, "evolve")
    write_config(run_dir / "config.toml", cfg.to_toml())
    holder = [make_strategy(cfg.strategy).init(layout, cfg)]
    write_checkpoint(run_dir, holder[0], cfg.to_dict())
    return _evolve(EvolveMode(run_dir, cfg, task, layout), holder, progress, on_generation, cluster)


def resume_run(run_dir, overrides: dict | None = None, data_dir=None, progress: bool = True, *, task=None,
               on_generation=None, cluster=None) -> EvolutionState:
    """Continue ``run_dir`` from its newest loadable checkpoint, with optional parameter changes
    (cluster: a ``ClusterSpec`` to continue on Ray workers; None: in this process)."""
    run_dir = Path(run_dir)
    if run_kind(run_dir) != "evolve":
        raise ConfigError(f"{run_dir} holds a {run_kind(run_dir)} run, not an evolution run")
    with RunLock(run_dir):
        return _resume(run_dir, overrides, data_dir, progress, task, on_generation, cluster)


def _resume(run_dir: Path, overrides, data_dir, progress, task, on_generation, cluster=None) -> EvolutionState:
    from genreg.runs.islands import is_island_run, resume_islands

    if is_island_run(run_dir):  # every island's state, the migrations: the island model resumes them
        return resume_islands(run_dir, overrides, data_dir, task=task, cluster=cluster, progress=progress,
                              on_generation=on_generation)
    remove_partial_files(run_dir)
    if not has_checkpoint(run_dir) and (run_dir / "config.toml").is_file():
        # killed before its first checkpoint was complete: start it again from its config
        cfg = from_mapping({**load_run_config(run_dir), **dict(overrides or {})})
        print(f"{run_dir} has no checkpoint yet: starting it again from its config.toml")
        for name in ("metrics.csv", "tracked_weights.csv"):
            (run_dir / name).unlink(missing_ok=True)
        return _start(cfg, run_dir, data_dir, progress, task, on_generation, cluster=cluster)
    path, state, saved = latest_checkpoint(run_dir)
    population = state.population
    base = from_mapping({k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
    cfg = from_mapping(dict(overrides or {}), base)
    warn_edited_config(run_dir, base, overrides or {})
    check_generations(run_dir, cfg, state.generation)
    check_placement(cfg, cluster)
    check_fixed_keys(base, cfg, f"the network's shape or its task ({population.layout.describe()})")
    if cfg.strategy != base.strategy:  # the new strategy starts from the population, with its own scalars
        state = make_strategy(cfg.strategy).load_state(population, state.generation, {})
    task = _load_task(cfg, task, data_dir)
    layout = layout_for(cfg, task)
    if not same_network(layout, population.layout):
        raise ConfigError(f"the task {task.name} needs a {layout.describe()} network but the checkpoint holds "
                          f"{population.layout.describe()}")
    check_run_size(layout, cfg.population, cfg.strategy, held=population_bytes(layout, population.size),
                   survival_cutoff=cfg.survival_cutoff, samples=cfg.samples_per_class * task.n_outputs, rank=cfg.rank,
                   built=not task.is_classification or make_strategy(cfg.strategy).needs_loss(cfg))
    write_config(run_dir / "config.toml", cfg.to_toml())
    mode = EvolveMode(run_dir, cfg, task, population.layout)
    mode.truncate(state.generation)
    done = state.generation
    print(f"resuming {run_dir} from {path.name} ({done} generation{'s' if done != 1 else ''} done) "
          f"up to {cfg.generations} in total")
    holder = [state]
    del state, population
    return _evolve(mode, holder, progress, on_generation, cluster)
