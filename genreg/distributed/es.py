"""An evolution strategy's members scored on workers, with messages that carry scalars, never weights.

Every worker holds, once, the task's data, the layout, the config and a *replica* of the strategy's
state (centre, sigma, optimiser moments), put there by a full copy the first time (or after the
worker was replaced).  Each generation the driver sends every worker

    (generation, digest of the driver's state, the last generation's fitness (P,), first, stop)

and the worker brings its replica forward with the same ``score`` + ``breed`` the driver ran
(one generation of the strategy's update, from the fitness and the members' keys), checks the
digest (a CRC-32 of centre, sigma, moments and step), and scores members ``first .. stop - 1`` on
the generation's episode, which it draws itself from the run's seed.  It answers with their
(n_correct, loss) or fitness: O(P) numbers a generation in each direction, whatever the number of
parameters.  Members are keys, so a member's score is the same on any worker, in any range: a run
is bit-identical for any number of workers (``tests/test_distributed_es.py``).

A worker that dies mid-generation (``WorkerLost``) costs its range only: the range goes to a
worker that is alive (already in step), the lost worker is replaced after the generation and
gets a full copy of the state with its next message.
"""

from __future__ import annotations

import zlib
from contextlib import contextmanager

import numpy as np

from genreg.distributed.pool import WorkerLost, gather
from genreg.errors import ClusterError
from genreg.strategies import make_strategy
from genreg.strategies.base import Evaluation


def digest(state) -> int:
    """CRC-32 of an evolution strategy's state: centre, sigma, the optimiser's moments and its step."""
    crc = zlib.crc32(np.ascontiguousarray(state.population.W[0]).tobytes())
    if state.sigma is not None:
        crc = zlib.crc32(np.ascontiguousarray(state.sigma).tobytes(), crc)
    for name in sorted(state.moments):
        crc = zlib.crc32(np.ascontiguousarray(state.moments[name]).tobytes(), crc)
    return zlib.crc32(np.int64([state.step, state.generation]).tobytes(), crc)


class MemberService:
    """What a worker holds: the run's episodes (``EpisodeScorer``), its strategy and a replica of the state."""

    def __init__(self, task, cfg):
        from genreg.runs.scoring import EpisodeScorer

        self.scorer, self.cfg = EpisodeScorer(task, cfg), cfg
        self.strategy = make_strategy(cfg.strategy)
        self.state = None

    def score(self, generation: int, expected: int, update, first: int, stop: int):
        """Members ``first .. stop - 1`` of generation ``generation`` (``EpisodeScorer.members``' values), or
        ``None`` when the replica is not the driver's state (``expected`` digest): send the state then.

        update: ``None`` (the replica is at ``generation``), ``("fitness", (P,) float64)`` the fitness of
        generation ``generation - 1`` (the replica is one behind), or ``("state", ESState)`` (a full copy).
        """
        kind, value = update if update is not None else (None, None)
        if kind == "state":
            self.state = value
        elif kind == "fitness" and self.state is not None and self.state.generation == generation - 1:
            self.strategy.score(self.state, Evaluation(0, fitness=value), self.cfg)
            self.state = self.strategy.breed(self.state, self.cfg)
        if self.state is None or self.state.generation != generation or digest(self.state) != expected:
            return None
        members = self.strategy.ask(self.state, self.cfg)
        return self.scorer.members(members, generation, first, stop)


class MemberRecipe:
    """Builds a worker's ``MemberService`` (put into Ray's object store once: the task travels once)."""

    def __init__(self, task, cfg):
        self.task, self.cfg = task, cfg

    def __call__(self) -> MemberService:
        return MemberService(self.task, self.cfg)


def ranges(size: int, parts: int, pairs: bool) -> list[tuple[int, int]]:
    """``parts`` consecutive member ranges covering ``[0, size)``, as equal as pairs allow (first even if ``pairs``)."""
    unit = 2 if pairs else 1
    units = -(-size // unit)
    cuts = [min(size, unit * (units * i // parts)) for i in range(parts + 1)]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


class RemoteMembers:
    """The driver's side: scores a generation's members on a pool of ``MemberService`` workers.

    ``at[w]``: the generation worker w's replica is at once it has read what was sent to it (-1: unknown).
    """

    def __init__(self, pool):
        self.pool = pool
        self.at = [-1] * pool.size
        self.last = None  # (generation, fitness (P,)): what the update of that generation reads

    def _send(self, w: int, state, expected: int, span: tuple[int, int]):
        """Submit range ``span`` to worker ``w`` with what it needs to reach ``state.generation``."""
        g = state.generation
        if self.at[w] == g:
            update = None
        elif self.at[w] == g - 1 and self.last is not None and self.last[0] == g - 1:
            update = ("fitness", self.last[1])
        else:
            update = ("state", state)
        self.at[w] = g
        return self.pool.submit(w, "score", g, expected, update, *span)

    def score(self, state, members) -> dict:
        """Every member's values (``EpisodeScorer.members``), one range per worker."""
        expected = digest(state)
        spans = ranges(members.size, self.pool.size, members.antithetic)
        tickets = [self._send(w, state, expected, span) for w, span in enumerate(spans)]

        def on_lost(i: int, lost: WorkerLost):  # the range goes to a worker that is alive (in step already)
            self.at[lost.worker] = -1
            alive = [w for w in range(self.pool.size) if w not in self.pool.dead]
            if not alive:
                self.pool.replace(lost.worker)
                alive = [lost.worker]
            return self._send(alive[i % len(alive)], state, expected, spans[i])

        results = gather(self.pool, tickets, on_lost)
        for i, values in enumerate(results):
            if values is None:  # a replica out of step (never expected; never trusted either): send the state
                w = i % self.pool.size
                self.at[w] = -1
                results[i] = self.pool.result(self._send(w, state, expected, spans[i]))
                if results[i] is None:
                    raise ClusterError(f"worker {w} cannot follow the run's state at generation {state.generation}")
        for w in sorted(self.pool.dead):  # lost workers are replaced between generations
            self.pool.replace(w)
            self.at[w] = -1
        self.last = (state.generation, None)
        return {key: np.concatenate([r[key] for r in results]) for key in results[0]}

    def summary(self, generations: int) -> str:
        """One line: workers, replacements and the bytes a generation sent and received."""
        pool, n = self.pool, max(1, generations)
        return (f"ray: {pool.alive()}/{pool.size} workers ({pool.replaced} replaced); per generation "
                f"{pool.bytes_sent / n:,.0f} bytes sent, {pool.bytes_received / n:,.0f} received")

    def scored(self, fitness: np.ndarray) -> None:
        """The fitness of the generation just scored, as the strategy's update reads it (sent with the next)."""
        self.last = (self.last[0], np.ascontiguousarray(fitness, dtype=np.float64))


@contextmanager
def remote_members(spec, task, cfg):
    """``RemoteMembers`` on the workers of the cluster ``spec`` (a ``ClusterSpec``) names, for this block."""
    from genreg.distributed.cluster import Cluster
    from genreg.distributed.pool import RayPool

    with Cluster(spec) as cluster:
        pool = RayPool(cluster, MemberRecipe(task, cfg), cluster.n_workers, spec.threads)
        try:
            yield RemoteMembers(pool)
        finally:
            pool.close()
