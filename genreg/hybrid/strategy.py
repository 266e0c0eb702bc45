"""The hybrid GA + SGD recombination as an ask/tell strategy (``genreg.strategies.base.AskTell``).

One generation, after the reference study (``genreg.hybrid.recombination.step``)::

    pool = strategy.ask(state, cfg)       # children of the best half + fresh networks
    evaluation = evaluate_pool(pool, ...)  # SGD training, then validation fitness (changes pool.W)
    state = strategy.tell(state, pool, evaluation, cfg)  # keep the best P, best first

``ask``: P children, each from two parents drawn uniformly from the best half of
the current population (two distinct ones when the half has two or more), every
gene whole from one parent (``genreg.network.variation.gene_crossover``); in the
first generation the founders themselves take the children's place; then
``ceil(fresh_fraction * P)`` fresh random networks.  ``tell``: the P fittest of
the trained pool (NaN fitness, a diverged network, ranks last).

Every random choice is keyed by (seed, generation, slot, purpose), so a resumed
run repeats the uninterrupted one exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreg.errors import TrainingError
from genreg.hybrid.config import HybridConfig
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.network.variation import gene_bounds, gene_crossover, layer_gene_bounds, tile_crossover, tile_genes
from genreg.strategies.base import Strategy, ranking
from genreg.streams import HYBRID_FRESH, Purpose, derived_seed, generator, stream_keys


@dataclass
class HybridState:
    """population: trust = fitness (validation accuracy, or -MSE; NaN before any training), best first;
    second_parent_ids: ``(P,) int64`` (-1 for founders and fresh networks);
    generation: generations completed."""

    population: Population
    generation: int
    second_parent_ids: np.ndarray


@dataclass
class Pool:
    """What ``ask`` returns: the networks generation ``generation`` trains and scores.

    W: ``(M, n_params) float32`` children first (``n_children`` of them), then fresh networks;
    the evaluator trains these rows in place.  ids, parent_ids, second_parent_ids: ``(M,) int64``
    (-1: no parent).  next_id: the first id after the pool's.
    """

    layout: Layout
    W: np.ndarray
    ids: np.ndarray
    parent_ids: np.ndarray
    second_parent_ids: np.ndarray
    n_children: int
    next_id: int
    generation: int


@dataclass
class PoolEvaluation:
    """The evaluator's result: fitness ``(M,) float64`` (validation accuracy or -MSE; NaN: diverged)
    and the mean training loss of the last epoch ``(M,) float64``."""

    fitness: np.ndarray
    loss: np.ndarray


def founders(cfg: HybridConfig, layout=None) -> HybridState:
    """Generation 0: P random networks (U(+-1/sqrt(fan_in)), as PyTorch's nn.Linear) of ``layout``
    (default ``cfg.layout()``, MNIST's ends)."""
    pop = Population.random(layout or cfg.layout(), cfg.population, seed=cfg.seed)
    pop.trust[:] = np.nan
    return HybridState(pop, 0, np.full(cfg.population, -1, dtype=np.int64))


def crossover_bounds(cfg: HybridConfig, layout) -> np.ndarray:
    """Gene segments of a row for the configured gene unit: ``(G + 1,) int64`` (tile genes: their row
    blocks, the contiguous segments the similarity files report)."""
    return layer_gene_bounds(layout) if cfg.genes == "layer" else gene_bounds(layout, cfg.gene_block_rows)


def crossover(W: np.ndarray, a, b, keys, cfg: HybridConfig, layout) -> np.ndarray:
    """Children ``(C, n_params) float32``: each gene of the configured unit whole from parent a or b."""
    if cfg.genes == "tile":
        return tile_crossover(W, a, b, keys, *tile_genes(layout, cfg.gene_block_rows, cfg.gene_block_cols))
    return gene_crossover(W, a, b, keys, crossover_bounds(cfg, layout))


def pick_parents(n_children: int, half: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two parents per child, uniform over rows ``0..half-1`` and distinct when ``half >= 2``."""
    a = rng.integers(0, half, n_children)
    if half < 2:
        return a, a.copy()
    b = (a + rng.integers(1, half, n_children)) % half
    return a, b


def breed(state: HybridState, cfg: HybridConfig, children: int | None = None, generation: int | None = None,
          purpose_offset: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Children of the best half of ``state.population`` (sorted best first).

    Returns ``(W_children (C, n_params) float32, parent_a (C,), parent_b (C,))``
    with parents as row indices.  ``generation`` keys the streams (default: the
    generation being made); ``purpose_offset`` separates other uses (attacks).
    """
    pop = state.population
    C = cfg.population if children is None else int(children)
    g = state.generation + 1 if generation is None else int(generation)
    half = max(1, pop.size // 2)
    rng = generator(cfg.seed, g, Purpose.SELECTION + purpose_offset)
    a, b = pick_parents(C, half, rng)
    keys = stream_keys(cfg.seed, g, np.arange(C), Purpose.CROSSOVER + purpose_offset)
    return crossover(pop.W, a, b, keys, cfg, pop.layout), a, b


def fresh_networks(cfg: HybridConfig, layout, generation: int, count: int) -> np.ndarray:
    """``(count, n_params) float32`` new random networks for ``generation``."""
    if count == 0:
        return np.empty((0, layout.n_params), dtype=np.float32)
    return Population.random(layout, count, seed=derived_seed(cfg.seed, generation, HYBRID_FRESH)).W


class HybridRecombination(Strategy):
    """Recombination of the best half plus fresh networks; the P fittest of the trained pool survive.

    Not an evolution strategy (``name`` stays empty, so ``genreg.strategies.make_strategy``
    does not offer it): its evaluator trains the pool (``genreg.hybrid.recombination.evaluate_pool``).
    """

    State = HybridState
    lamarckian = True

    def init(self, layout: Layout, cfg: HybridConfig) -> HybridState:
        """Founders: ``cfg.population`` random networks, fitness NaN."""
        return founders(cfg, layout)

    def ask(self, state: HybridState, cfg: HybridConfig = None) -> Pool:
        """The pool of generation ``state.generation + 1``: children (the founders at first), then fresh networks."""
        pop = state.population
        g = state.generation + 1
        if state.generation == 0:
            children = pop.W.copy()
            parent_ids, second_ids, child_ids = np.full(pop.size, -1), np.full(pop.size, -1), pop.ids.copy()
            next_id = pop.next_id
        else:
            children, a, b = breed(state, cfg)
            parent_ids, second_ids = pop.ids[a], pop.ids[b]
            child_ids = pop.next_id + np.arange(children.shape[0])
            next_id = pop.next_id + children.shape[0]
        fresh = fresh_networks(cfg, pop.layout, g, cfg.n_fresh)
        n_fresh = fresh.shape[0]
        none = np.full(n_fresh, -1)
        return Pool(layout=pop.layout, W=np.ascontiguousarray(np.concatenate([children, fresh])),
                    ids=np.concatenate([child_ids, next_id + np.arange(n_fresh)]).astype(np.int64),
                    parent_ids=np.concatenate([parent_ids, none]).astype(np.int64),
                    second_parent_ids=np.concatenate([second_ids, none]).astype(np.int64),
                    n_children=children.shape[0], next_id=int(next_id + n_fresh), generation=g)

    def survivors(self, evaluation: PoolEvaluation, cfg: HybridConfig) -> np.ndarray:
        """Rows of the pool that survive, best first: ``(P,) int64``."""
        return ranking(evaluation.fitness)[: cfg.population]

    def tell(self, state: HybridState, candidates: Pool, evaluation: PoolEvaluation, cfg: HybridConfig) -> HybridState:
        """The P fittest trained networks of the pool, best first (TrainingError if a survivor diverged)."""
        pool, keep = candidates, self.survivors(evaluation, cfg)
        new = Population(layout=pool.layout, W=np.ascontiguousarray(pool.W[keep]),
                         trust=evaluation.fitness[keep].astype(np.float64), ids=pool.ids[keep],
                         parent_ids=pool.parent_ids[keep], age=np.zeros(keep.size, dtype=np.int32),
                         next_id=pool.next_id)
        if not np.isfinite(new.W).all():
            raise TrainingError(f"generation {pool.generation}: more networks diverged than can be replaced; "
                                f"lower lr (now {cfg.lr})")
        return HybridState(new, pool.generation, pool.second_parent_ids[keep])

    def load_state(self, population: Population, generation: int, scalars: dict) -> HybridState:
        """The state a checkpoint stored (``scalars``: ``second_parent_ids``, default -1 for all)."""
        second = scalars.get("second_parent_ids", np.full(population.size, -1, dtype=np.int64))
        return HybridState(population, generation, np.asarray(second, dtype=np.int64))
