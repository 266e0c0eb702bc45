"""The islands a worker hosts: whole GENREG or GA populations, each with its own folder in the run directory.

Island i is an ordinary evolution run (``genreg.runs.evolve.EvolveMode``) of the run's task and
network with its own seed: the run's seed for island 0 (so island 0 repeats a one-population run
of that seed until its first migration), ``derived_seed(seed, ISLAND_SEED, i)`` for the others.
Its folder ``RUN_DIR/island_II/`` holds what a run directory holds: config.toml (the island's
config), checkpoints/, metrics.csv, tracked_weights.csv and its best-genome pickles.  The worker
writes them itself, so the run directory must be on a filesystem every worker sees.

A migration moves copies of the best genomes of one island (``emigrants``: by the strategy's own
ranking of the population it has just bred, i.e. by trust or fitness) into the next island, in
place of its worst ones (``immigrate``).  An immigrant keeps its weights, trust and age; it gets a
new id from the island it joins, and its parent id is its id on the island it left.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.config import write_config
from genreg.distributed.pool import LocalPool, RayPool
from genreg.errors import CheckpointError, ClusterError, ConfigError
from genreg.genome.checkpoint import load_genome
from genreg.runs.rundir import MARKER, remove_partial_files
from genreg.runs.store import checkpoint_generations, checkpoint_path, read_checkpoint, write_checkpoint
from genreg.strategies import make_strategy
from genreg.strategies.base import EvolutionState, ranking
from genreg.streams import ISLAND_SEED, derived_seed


def island_seed(seed: int, island: int) -> int:
    """Island ``island``'s seed: the run's ``seed`` for island 0, a seed derived from both for the others."""
    return int(seed) if island == 0 else derived_seed(seed, ISLAND_SEED, island)


def island_config(cfg, island: int):
    """The config island ``island`` evolves with: the run's, with the island's seed."""
    return cfg.replace(seed=island_seed(cfg.seed, island))


def island_dir(run_dir, island: int) -> Path:
    """The folder of island ``island``'s state and histories."""
    return Path(run_dir) / f"island_{island:02d}"


def genome_generation(path: Path) -> int:
    """The generation in a best-genome pickle's name (``best_genome_<task>_genNNNNN.pkl``; -1 if none)."""
    digits = path.stem.rsplit("_gen", 1)[-1]
    return int(digits) if digits.isdigit() else -1


@dataclass
class Migrants:
    """Copies of genomes one island sends to the next, best first: rows ``(k, n_params) float32``,
    trust ``(k,) float64``, ids ``(k,) int64`` (on the sending island), age ``(k,) int32``."""

    rows: np.ndarray
    trust: np.ndarray
    ids: np.ndarray
    age: np.ndarray


def emigrants(state: EvolutionState, k: int) -> Migrants:
    """The best ``k`` genomes of ``state``'s population by its trust (ties: the lower row)."""
    pop = state.population
    top = ranking(pop.trust)[:k]
    return Migrants(pop.genomes(top), pop.trust[top].copy(), pop.ids[top].copy(), pop.age[top].copy())


def immigrate(state: EvolutionState, migrants: Migrants) -> tuple[np.ndarray, np.ndarray]:
    """Put ``migrants`` in place of the worst genomes of ``state``'s population (the best immigrant where
    the worst genome was; a brood is built first); returns (ids replaced, ids given) ``(k,) int64``."""
    pop = state.population
    W = pop.build()
    k = migrants.rows.shape[0]
    worst = ranking(pop.trust)[::-1][:k]
    replaced = pop.ids[worst].copy()
    given = pop.next_id + np.arange(k, dtype=np.int64)
    W[worst] = migrants.rows
    pop.trust[worst] = migrants.trust
    pop.ids[worst] = given
    pop.parent_ids[worst] = migrants.ids
    pop.age[worst] = migrants.age
    pop.next_id += k
    pop.founders = None  # W changed in place: no longer the founders of a seed
    return replaced, given


class IslandService:
    """What a worker holds: the run's task and network, and the islands it hosts (island -> [mode, state])."""

    def __init__(self, task, layout, run_dir, cfg):
        self.task, self.layout, self.run_dir, self.cfg = task, layout, Path(run_dir), cfg
        self.islands: dict[int, list] = {}

    def folder(self, island: int) -> Path:
        """Island ``island``'s folder; ClusterError if this process cannot see or write the run directory."""
        folder = island_dir(self.run_dir, island)
        if not (self.run_dir / MARKER).is_file() or not folder.is_dir() or not os.access(folder, os.W_OK):
            raise ClusterError(f"a worker on {socket.gethostname()} cannot write {folder}: the island model writes each "
                               f"island's state from its worker, so the run directory must be on a filesystem every "
                               f"worker sees (a shared mount at the same path)")
        return folder

    def open(self, island: int, generation: int, newest: bool = False) -> int:
        """Load island ``island`` from its checkpoint of ``generation`` (``newest``: its newest loadable one
        of at most ``generation``; founders if it has none and ``generation`` is 0); returns its generation.

        Checkpoints and pickles of later generations are deleted, the histories cut to the state's generation.
        """
        from genreg.runs.evolve import EvolveMode, same_network

        self.drop(island)
        folder, cfg = self.folder(island), island_config(self.cfg, island)
        remove_partial_files(folder)
        found = [g for g in checkpoint_generations(folder) if g <= generation]
        candidates = found[::-1] if newest else [g for g in found if g == generation]
        state, errors = None, []
        for g in candidates:
            try:
                state, saved = read_checkpoint(checkpoint_path(folder, g))
                break
            except CheckpointError as exc:
                errors.append(str(exc))
        if state is None and newest and generation == 0 and not found:
            state = make_strategy(cfg.strategy).init(self.layout, cfg)
            write_checkpoint(folder, state, cfg.to_dict())
            write_config(folder / "config.toml", cfg.to_toml())
        elif state is None:
            raise CheckpointError(f"{folder} has no loadable checkpoint of generation {generation}"
                                  + (f" ({'; '.join(errors)})" if errors else ""))
        elif saved.get("strategy") != cfg.strategy:  # a new strategy starts from the population, with its own scalars
            state = make_strategy(cfg.strategy).load_state(state.population, state.generation, {})
        if not same_network(self.layout, state.population.layout):
            raise ConfigError(f"{folder} holds {state.population.layout.describe()} genomes, not the run's "
                              f"{self.layout.describe()}")
        g = state.generation
        for later in [x for x in checkpoint_generations(folder) if x > g]:
            checkpoint_path(folder, later).unlink(missing_ok=True)
        for pickle in folder.glob("best_genome_*_gen*.pkl"):
            if genome_generation(pickle) > g:
                pickle.unlink()
        write_config(folder / "config.toml", cfg.to_toml())
        mode = EvolveMode(folder, cfg, self.task, self.layout)
        mode.truncate(g)
        self.islands[island] = [mode, state]
        return g

    def _at(self, island: int, generation: int) -> list:
        entry = self.islands.get(island)
        if entry is None or entry[1].generation != generation:
            at = "not here" if entry is None else f"at generation {entry[1].generation}"
            raise ClusterError(f"island {island} is {at}, not at generation {generation} (the driver lost track)")
        return entry

    def step(self, island: int, generation: int, immigrants: Migrants | None, send: int):
        """Take in ``immigrants`` (if any), run generation ``generation``; returns (its metrics, (ids replaced,
        ids given) or None, the best ``send`` genomes of the new population or None)."""
        entry = self._at(island, generation)
        applied = None if immigrants is None else immigrate(entry[1], immigrants)
        entry[1], record = entry[0].step(entry[1])
        return record, applied, emigrants(entry[1], send) if send else None

    def emigrants(self, island: int, generation: int, k: int) -> Migrants:
        """The best ``k`` genomes island ``island`` holds (at ``generation``)."""
        return emigrants(self._at(island, generation)[1], k)

    def checkpoint(self, island: int, generation: int) -> float:
        """Write the island's checkpoint and best-genome pickle and wait for them; returns the pickle's
        selection score (higher is better)."""
        mode, state = self._at(island, generation)
        mode.checkpoint(state)
        mode.flush()
        return float(load_genome(mode.best_path(generation)).metadata["selection_score"])

    def best(self, island: int, generation: int) -> tuple:
        """The island's best genome at its checkpoint of ``generation``: (row, trust, metadata)."""
        mode, _ = self._at(island, generation)
        genome = load_genome(mode.best_path(generation))
        return genome.weights, genome.trust, genome.metadata

    def state(self, island: int, generation: int) -> EvolutionState:
        return self._at(island, generation)[1]

    def drop(self, island: int, failed: bool = True) -> None:
        entry = self.islands.pop(island, None)
        if entry is not None:
            entry[0].close(failed)

    def close(self, island: int, failed: bool) -> None:
        """Close the island's files (its state stays)."""
        if island in self.islands:
            self.islands[island][0].close(failed)


class IslandRecipe:
    """Builds a worker's ``IslandService`` (put into Ray's object store once: the task travels once)."""

    def __init__(self, task, layout, run_dir, cfg):
        self.task, self.layout, self.run_dir, self.cfg = task, layout, str(run_dir), cfg

    def __call__(self) -> IslandService:
        return IslandService(self.task, self.layout, self.run_dir, self.cfg)


@contextmanager
def island_pool(cfg, run_dir: Path, task, layout, cluster):
    """The workers that host the islands: one service in this process (``cluster`` None), or
    min(workers, islands) Ray actors of the cluster ``cluster`` (a ``ClusterSpec``) names."""
    recipe = IslandRecipe(task, layout, run_dir, cfg)
    if cluster is None:
        pool = LocalPool(recipe, 1)
        try:
            yield pool
        finally:
            pool.close()
        return
    from genreg.distributed.cluster import Cluster

    with Cluster(cluster) as joined:
        pool = RayPool(joined, recipe, min(joined.n_workers, cfg.islands), joined.spec.threads)
        try:
            yield pool
        finally:
            pool.close()
