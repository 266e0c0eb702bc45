"""The island model (genreg, ga): several populations evolving side by side, with migrations along a ring.

One generation of the run is one generation on every island (in parallel on Ray workers, or one
after the other in this process: the same bits either way).  When the generations done, G, are a
multiple of ``migration_every``, each island i sends copies of its best ``migrants`` genomes to
island (i + 1) % islands, where they replace the worst before generation G is scored
(``genreg.distributed.islands``: how they are chosen, their ids).  Migration is synchronous: every
island's emigrants are chosen before any island takes in its immigrants, so a run is a function of
its config, seed and island count, whatever the number of workers.

    RUN_DIR/genreg-run.json                  the kind of run (``evolve``)
    RUN_DIR/config.toml                      the run's config (islands > 1) of the latest (re)start
    RUN_DIR/metrics.csv                      one row a generation: the best island's metrics, ``island``
                                             (which one) and ``generation_seconds`` (the run's wall time)
    RUN_DIR/migrations.csv                   one row per island per migration: generation G, from, to, the
                                             migrants' ids and trust on the sender, the ids they replaced
                                             and the ids they were given
    RUN_DIR/best_genome_<task>_genNNNNN.pkl  at a checkpoint, the best genome of the island whose best
                                             scores best on validation (the newest and the best are kept)
    RUN_DIR/island_II/                       island II's run: config.toml, checkpoints/, metrics.csv,
                                             tracked_weights.csv, best_genome_*.pkl

A checkpoint is taken on every island at once (the state before the migration of its
generation, which is chosen again from it on resume).  ``resume`` restarts every island from the
newest generation all of them have a complete checkpoint of.  On Ray, a worker that dies is
replaced: its islands restart from their last checkpoint and replay the generations since, with
the immigrants they took in (kept by the driver), so that nothing changes.
"""

from __future__ import annotations

import csv
import math
import pickle
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from genreg.config import write_config
from genreg.distributed.islands import genome_generation, island_dir, island_pool, island_seed
from genreg.distributed.pool import PROTOCOL, WorkerLost
from genreg.errors import CheckpointError, ClusterError, ConfigError
from genreg.genome.checkpoint import save_genome
from genreg.runs.history import History
from genreg.runs.rundir import remove_partial_files, write_marker
from genreg.runs.store import checkpoint_generations

MIGRATION_COLUMNS = ["generation", "from", "to", "ids", "trust", "replaced_ids", "new_ids"]
#: Attempts at bringing back the islands of a lost worker before the run gives up.
RETRIES = 3


def is_island_run(run_dir) -> bool:
    """Whether ``run_dir`` holds an island-model run (its config.toml sets islands > 1)."""
    from genreg.config import load_toml

    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return False
    try:
        return int(load_toml(path).get("islands", 1)) > 1
    except (ValueError, TypeError, ConfigError):
        return False


def has_island_checkpoint(run_dir) -> bool:
    """Whether any island folder of ``run_dir`` holds a state checkpoint (the run can be resumed)."""
    return any(checkpoint_generations(folder) for folder in Path(run_dir).glob("island_*") if folder.is_dir())


def common_generations(run_dir, islands: int) -> list[int]:
    """The generations every island of ``run_dir`` has a checkpoint of, newest first."""
    common = None
    for i in range(islands):
        found = set(checkpoint_generations(island_dir(run_dir, i)))
        common = found if common is None else common & found
    return sorted(common or (), reverse=True)


@dataclass
class IslandsState:
    """What the run loop sees: the generations done (the islands' states live on their workers)."""

    generation: int


def _text(values) -> str:
    return " ".join(repr(float(v)) if isinstance(v, float) else str(v) for v in values.tolist())


class IslandsMode:
    """The driver: one generation on every island, migrations, checkpoints, and lost workers brought back."""

    kind = "evolve"

    def __init__(self, run_dir: Path, cfg, task, layout, pool, generation: int):
        from genreg.runs.evolve import kept_genomes, metric_columns

        self.run_dir, self.cfg, self.task, self.layout, self.pool = Path(run_dir), cfg, task, layout, pool
        self.n = cfg.islands
        self.host = [i % pool.size for i in range(self.n)]  # worker of island i
        self.columns = metric_columns(task) + ["island", "generation_seconds"]
        self.metrics = History(self.run_dir / "metrics.csv", self.columns)
        self.migrations = History(self.run_dir / "migrations.csv", MIGRATION_COLUMNS)
        self.log: dict = {}  # (generation, island) -> the Migrants it took in before that generation
        self.floor = generation  # every island has a complete checkpoint of this generation
        self.outgoing = None  # every island's emigrants, when the next generation starts with a migration
        self.kept = kept_genomes(self.run_dir)
        self.best_island = 0
        self.seconds: list[float] = []  # each generation's wall time in this invocation
        self.migration_bytes = 0  # the migrants' pickled bytes (each counted twice: to the driver, to the next island)
        self.at(generation)

    def at(self, generation: int) -> None:
        """Start from ``generation``, which every island has a checkpoint of (the best island: the one the
        run's pickle of that generation came from)."""
        self.floor = generation
        island = _island_of(self.best_path(generation))
        self.best_island = island if isinstance(island, int) and 0 <= island < self.n else 0

    def truncate(self, generation: int) -> None:
        for history in (self.metrics, self.migrations):
            history.truncate(generation)
        for path in list(self.run_dir.glob("best_genome_*_gen*.pkl")):  # left by a run killed after this point
            if genome_generation(path) > generation:
                path.unlink()
                self.kept.pop(path, None)

    # -- calls to the islands, with lost workers brought back ------------------------------------------

    def call(self, method: str, args_of, generation: int, islands=None) -> list:
        """``service.method(i, *args_of(i))`` for every island i (or ``islands``), at ``generation``; returns
        the results by island.  A worker lost on the way is replaced and its islands brought back to
        ``generation`` (``restore``), then their calls are made again (the same call gives the same result)."""
        todo = list(range(self.n)) if islands is None else list(islands)
        results = {}
        for _ in range(RETRIES + 1):
            tickets = [(i, self.pool.submit(self.host[i], method, i, *args_of(i))) for i in todo]
            lost = set()
            for i, ticket in tickets:
                try:
                    results[i] = self.pool.result(ticket)
                except WorkerLost as exc:
                    lost.add(exc.worker)
            if not lost:
                return [results[i] for i in (range(self.n) if islands is None else islands)]
            todo = self.bring_back(lost, generation)
        raise ClusterError(f"workers kept dying at generation {generation} ({self.pool.replaced} replaced): giving up "
                           f"(the checkpoints on disk are intact: genreg resume {self.run_dir})")

    def bring_back(self, workers: set, generation: int) -> list[int]:
        """Replace ``workers`` and bring each of their islands back to ``generation``; returns those islands."""
        islands = [i for i in range(self.n) if self.host[i] in workers]
        pending = set(workers)
        for _ in range(RETRIES):
            for w in sorted(pending):
                self.pool.replace(w)
            todo, pending = [i for i in islands if self.host[i] in pending], set()
            for i in todo:
                if self.host[i] in pending:
                    continue
                try:
                    self.restore(i, generation)
                except WorkerLost as exc:
                    pending.add(exc.worker)
            if not pending:
                return islands
        raise ClusterError(f"workers {sorted(pending)} kept dying while their islands were brought back to "
                           f"generation {generation}: giving up (genreg resume {self.run_dir})")

    def restore(self, island: int, generation: int) -> None:
        """Reload ``island`` from its newest checkpoint and replay the generations since with its immigrants."""
        w = self.host[island]
        start = self.pool.result(self.pool.submit(w, "open", island, generation, True))
        if start < self.floor:
            raise ClusterError(f"island {island} has no checkpoint since generation {self.floor} on disk (its newest "
                               f"is {start}): cannot bring it back; genreg resume {self.run_dir}")
        for g in range(start, generation):
            self.pool.result(self.pool.submit(w, "step", island, g, self.log.get((g, island)), 0))

    # -- the run loop's Mode ------------------------------------------------------------------------

    def sends(self, generation: int) -> int:
        """Genomes each island sends once ``generation`` generations are done (0: no migration then)."""
        due = generation % self.cfg.migration_every == 0 and 0 < generation < self.cfg.generations
        return self.cfg.migrants if due and self.n > 1 else 0

    def prepare(self, generation: int) -> None:
        """On (re)start at ``generation``: choose the emigrants again if a migration is due."""
        k = self.sends(generation)
        self.outgoing = self.call("emigrants", lambda i: (generation, k), generation) if k else None

    def step(self, state: IslandsState, tick=None):
        g = state.generation
        t0 = time.perf_counter()
        incoming = [None] * self.n
        if self.outgoing is not None:
            incoming = [self.outgoing[(i - 1) % self.n] for i in range(self.n)]
            self.log.update({(g, i): m for i, m in enumerate(incoming)})
        self.outgoing = None
        send = self.sends(g + 1)
        results = self.call("step", lambda i: (g, incoming[i], send), g)
        for i, (_, applied, _) in enumerate(results):
            if applied is not None:
                m = incoming[i]
                self.migrations.append([g, (i - 1) % self.n, i, _text(m.ids), _text(m.trust),
                                        _text(applied[0]), _text(applied[1])])
        if send:
            self.outgoing = [r[2] for r in results]
            self.migration_bytes += 2 * sum(len(pickle.dumps(m, protocol=PROTOCOL)) for m in self.outgoing)
        records = [r[0] for r in results]
        fitness = [r["best_fitness"] if math.isfinite(r["best_fitness"]) else -math.inf for r in records]
        best = max(range(self.n), key=lambda i: (fitness[i], -i))
        row = [records[best][c] for c in self.columns[:-2]] + [best, time.perf_counter() - t0]
        self.metrics.append(row)
        self.seconds.append(row[-1])
        return IslandsState(g + 1), dict(zip(self.columns, row))

    def summary(self) -> str:
        """One line: workers, the time of a generation, the bytes a generation and a migration move."""
        pool, n = self.pool, max(1, len(self.seconds))
        where = f"on {pool.alive()}/{pool.size} Ray workers ({pool.replaced} replaced)" if pool.remote else "in-process"
        timed = self.seconds[1:] or self.seconds  # the first pays for compilation and cold caches
        sent, received = pool.bytes_sent - self.migration_bytes / 2, pool.bytes_received - self.migration_bytes / 2
        line = (f"islands: {self.n} {where}; {sum(timed) / max(1, len(timed)):.3g} s a generation; per generation "
                f"{sent / n:,.0f} bytes sent, {received / n:,.0f} received")
        if self.migration_bytes:
            line += f"; migrations moved {self.migration_bytes:,} bytes ({self.cfg.migrants} genomes an island each)"
        return line

    def best_path(self, generation: int) -> Path:
        return self.run_dir / f"best_genome_{self.task.name}_gen{generation:05d}.pkl"

    def checkpoint(self, state: IslandsState) -> None:
        """Every island's checkpoint (written on its worker, waited for), then the run's best-genome pickle."""
        from genreg.runs.evolve import prune_genomes

        g = state.generation
        scores = self.call("checkpoint", lambda i: (g,), g)
        self.floor = g
        self.log = {key: m for key, m in self.log.items() if key[0] >= g}
        ranked = [s if math.isfinite(s) else -math.inf for s in scores]
        self.best_island = best = max(range(self.n), key=lambda i: (ranked[i], -i))
        row, trust, metadata = self.call("best", lambda i: (g,), g, islands=[best])[0]
        path = self.best_path(g)
        metadata = {**metadata, "run_dir": str(self.run_dir), "seed": self.cfg.seed, "island": best,
                    "island_seed": island_seed(self.cfg.seed, best), "islands": self.n}
        save_genome(path, self.layout, row, trust=trust, metadata=metadata)
        self.kept[path] = scores[best]
        if not self.cfg.keep_all_genomes:
            prune_genomes(self.kept, newest=path)

    def flush(self) -> None:
        """Nothing to wait for: ``checkpoint`` waits for every island's files."""

    def close(self, failed: bool) -> None:
        """Close the run's and the islands' files (a lost worker's are closed already)."""
        self.metrics.close()
        self.migrations.close()
        tickets = [self.pool.submit(self.host[i], "close", i, failed) for i in range(self.n)]
        for ticket in tickets:
            try:
                self.pool.result(ticket)
            except WorkerLost:
                pass
            except Exception:  # noqa: BLE001 - a run that is failing already reports its first error
                if not failed:
                    raise

    def final_state(self, generation: int):
        """The best island's state (by the selection score of the last checkpoint)."""
        return self.call("state", lambda i: (generation,), generation, islands=[self.best_island])[0]

    def postfix(self, record: dict) -> dict:
        out = {}
        if self.pool.remote:
            out["workers"] = f"{self.pool.alive()}/{self.pool.size}"
        out["island"] = record["island"]
        out["fitness"] = f"{record['best_fitness']:.4g}"
        for key, short in (("best_accuracy", "acc"), ("validation_accuracy", "val"), ("best_mse", "mse"),
                           ("validation_mse", "val")):
            if key in record:
                out[short] = "-" if math.isnan(record[key]) else f"{record[key]:.3f}"
        return out


def _island_of(path: Path):
    """The island a run's best-genome pickle came from (None if unknown)."""
    from genreg.genome.checkpoint import load_genome

    if not path.is_file():
        return None
    try:
        return load_genome(path).metadata.get("island")
    except Exception:  # noqa: BLE001 - only a hint for which state to return
        return None


def _run(mode: IslandsMode, generation: int, progress: bool, on_generation):
    from genreg.runs.evolve import resume_hint
    from genreg.runs.loop import run_loop

    cfg = mode.cfg
    state, _ = run_loop(mode, IslandsState(generation), generations=cfg.generations,
                        checkpoint_every=cfg.checkpoint_every, max_minutes=cfg.max_minutes, progress=progress,
                        on_generation=on_generation, postfix=mode.postfix, resume_hint=resume_hint(cfg, mode.run_dir),
                        desc=f"{cfg.strategy} {cfg.islands} islands {mode.layout.describe().split(' ')[0]}")
    if progress:
        print(mode.summary())
    return mode.final_state(state.generation)


def check_islands(cfg, layout, task, cluster) -> None:
    """Refuse an island run that cannot fit: in this process every island's population is held at once."""
    from genreg.network.population import check_run_size

    if cluster is None:
        check_run_size(layout, cfg.population * cfg.islands, cfg.strategy, survival_cutoff=cfg.survival_cutoff,
                       samples=cfg.samples_per_class * task.n_outputs)


def start_islands(cfg, run_dir, task, layout, *, cluster=None, progress=True, on_generation=None):
    """Write the marker, config and every island's founders, then evolve (the run lock is held).

    Returns the best island's final ``EvolutionState``.
    """
    run_dir = Path(run_dir)
    if has_island_checkpoint(run_dir):
        raise ConfigError(f"{run_dir} already holds an island run; continue it with `genreg resume {run_dir}` "
                          "or choose another --out")
    return _start(cfg, run_dir, task, layout, cluster, progress, on_generation)


def _start(cfg, run_dir: Path, task, layout, cluster, progress, on_generation):
    check_islands(cfg, layout, task, cluster)
    write_marker(run_dir, "evolve")
    (run_dir / "metrics.csv").unlink(missing_ok=True)
    with open(run_dir / "migrations.csv", "w", newline="") as fh:  # (even if no migration is due)
        csv.writer(fh).writerow(MIGRATION_COLUMNS)
    for folder in run_dir.glob("island_*"):  # of a start killed before every island had its founders
        shutil.rmtree(folder)
    for i in range(cfg.islands):
        island_dir(run_dir, i).mkdir(parents=True)
    write_config(run_dir / "config.toml", cfg.to_toml())
    with island_pool(cfg, run_dir, task, layout, cluster) as pool:
        mode = IslandsMode(run_dir, cfg, task, layout, pool, 0)
        mode.call("open", lambda i: (0, True), 0)
        return _run(mode, 0, progress, on_generation)


def resume_islands(run_dir, overrides, data_dir, *, task=None, cluster=None, progress=True, on_generation=None):
    """Continue an island run from the newest generation every island has a checkpoint of (the run lock is held).

    Changes follow a one-population run's rules: ``generations`` and the like may change; the network, the
    task, ``islands`` and the seed may not.
    """
    from genreg.config import load_run_config, rename_legacy_keys
    from genreg.runs.evolve import _load_task, check_fixed_keys, check_generations, check_placement, layout_for
    from genreg.strategies.config import from_mapping

    run_dir = Path(run_dir)
    remove_partial_files(run_dir)
    base = from_mapping(rename_legacy_keys(load_run_config(run_dir)))
    cfg = from_mapping(dict(overrides or {}), base)
    check_placement(cfg, cluster)
    check_fixed_keys(base, cfg, "the islands' network, their task or the ring")
    task = _load_task(cfg, task, data_dir)
    layout = layout_for(cfg, task)
    generations = common_generations(run_dir, cfg.islands)
    if not generations:
        print(f"{run_dir} has no checkpoint of every island yet: starting it again from its config.toml")
        return _start(cfg, run_dir, task, layout, cluster, progress, on_generation)
    check_generations(run_dir, cfg, generations[0])
    check_islands(cfg, layout, task, cluster)
    write_config(run_dir / "config.toml", cfg.to_toml())
    with island_pool(cfg, run_dir, task, layout, cluster) as pool:
        mode, errors = IslandsMode(run_dir, cfg, task, layout, pool, generations[0]), []
        for g in generations:
            try:
                mode.call("open", lambda i: (g, False), g)
                break
            except CheckpointError as exc:
                errors.append(str(exc))
        else:
            raise CheckpointError("no generation with a loadable checkpoint of every island: " + "; ".join(errors))
        for msg in errors:
            print(f"genreg: warning: skipped {msg}")
        mode.truncate(g)
        mode.at(g)
        mode.prepare(g)
        print(f"resuming {run_dir} from generation {g} ({cfg.islands} islands; {g} generation{'s' if g != 1 else ''} "
              f"done) up to {cfg.generations} in total")
        return _run(mode, g, progress, on_generation)
