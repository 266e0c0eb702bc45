"""Hybrid strategy: a population of networks trained by SGD between genetic recombinations.

One generation (``step``), after the reference study, with fitness on a
validation split instead of the test set:

1. children: P networks, each from two parents drawn uniformly from the best
   half of the current population (two distinct ones when the half has two
   or more), every gene whole from one parent (``genreg.variation.gene_crossover``);
   in the first generation the founders themselves take the children's place;
2. add ``ceil(fresh_fraction * P)`` fresh random networks;
3. train every network of this pool for E epochs of SGD (``genreg.network.sgd``);
4. fitness = accuracy on the validation split (classification; minus the
   validation MSE in the data's units for regression); keep the best P, best first.

State (``HybridState``) = the population (``W: (P, n_params) float32``; its
``trust`` holds the fitness), the generation count and the
second parent of each member.  Every random choice is keyed by
(seed, generation, slot, purpose), so a resumed run repeats the uninterrupted
one exactly, and the number of worker threads does not change any result.
"""

from __future__ import annotations

import dataclasses
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from genreg.network import backprop

from genreg.network import sgd
from genreg.network.blas import blas_threads
from genreg.errors import TrainingError
from genreg.hybrid.config import HybridConfig
from genreg.network.population import Population
from genreg.strategies.base import ranking
from genreg.network.variation import gene_bounds, gene_crossover, layer_gene_bounds
from genreg.streams import HYBRID_BASELINE, HYBRID_FRESH, HYBRID_TRAIN, Purpose, derived_seed, generator, stream_keys



@dataclass
class HybridState:
    """population: trust = fitness (validation accuracy, or -MSE; NaN before any training), best first;
    second_parent_ids: ``(P,) int64`` (-1 for founders and fresh networks);
    generation: generations completed."""

    population: Population
    generation: int
    second_parent_ids: np.ndarray


@dataclass
class HybridData:
    """X_train: ``(N, n_inputs) float32`` (pixels in [0, 1]); y_train: ``(N,) int64`` labels (loss 'nll') or
    ``(N, n_outputs) float32`` standardised targets (loss 'mse'); same for the validation split.
    y_std: ``(n_outputs,)`` the targets' scale (validation MSE is reported in the data's units);
    task: the ``genreg.tasks.Task`` the arrays come from (its test split is read once, at the end)."""

    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    loss: str = "nll"
    y_std: np.ndarray | None = None
    task: object = None

    @property
    def metric(self) -> str:
        """What fitness measures: 'accuracy' (fitness = accuracy) or 'mse' (fitness = -MSE)."""
        return "accuracy" if self.loss == "nll" else "mse"

    def score(self, layout, row: np.ndarray, X: np.ndarray, y: np.ndarray) -> float:
        """Accuracy, or the MSE in the data's units, of ``row`` on ``(X, y)``."""
        if self.loss == "nll":
            return backprop.accuracy(layout, row, X, y)
        scale = 1.0 if self.y_std is None else np.asarray(self.y_std, dtype=np.float64)
        err = (backprop.forward(layout, row, X, loss="mse").astype(np.float64) - y) * scale
        return float(np.mean(np.square(err)))

    def fitness(self, layout, row: np.ndarray) -> float:
        """Validation fitness, higher is better: accuracy, or minus the MSE."""
        value = self.score(layout, row, self.X_val, self.y_val)
        return value if self.loss == "nll" else -value


def founders(cfg: HybridConfig, layout=None) -> HybridState:
    """Generation 0: P random networks (U(+-1/sqrt(fan_in)), as PyTorch's nn.Linear) of ``layout``
    (default ``cfg.layout()``, MNIST's ends)."""
    pop = Population.random(layout or cfg.layout(), cfg.population, seed=cfg.seed)
    pop.trust[:] = np.nan
    return HybridState(pop, 0, np.full(cfg.population, -1, dtype=np.int64))


def crossover_bounds(cfg: HybridConfig, layout) -> np.ndarray:
    """Gene segments of a row for the configured gene unit: ``(G + 1,) int64``."""
    return layer_gene_bounds(layout) if cfg.genes == "layer" else gene_bounds(layout, cfg.gene_block_rows)


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
    return gene_crossover(pop.W, a, b, keys, crossover_bounds(cfg, pop.layout)), a, b


def fresh_networks(cfg: HybridConfig, layout, generation: int, count: int) -> np.ndarray:
    """``(count, n_params) float32`` new random networks for ``generation``."""
    if count == 0:
        return np.empty((0, layout.n_params), dtype=np.float32)
    return Population.random(layout, count, seed=derived_seed(cfg.seed, generation, HYBRID_FRESH)).W


def n_workers(cfg: HybridConfig) -> int:
    return cfg.workers or os.cpu_count() or 1


def train_pool(W: np.ndarray, layout, data: HybridData, cfg: HybridConfig, generation: int,
               on_done=None) -> tuple[np.ndarray, np.ndarray]:
    """Train every row of ``W: (M, n_params)`` in place for E epochs; return
    ``(validation fitness (M,) float64, mean training loss of the last epoch (M,))``.

    Row i trains with seed (seed, generation, i) from lineage epoch
    (generation - 1) * E.  A network that diverges gets NaN fitness (ranked
    last).  ``on_done(i, fitness)`` is called as networks finish.
    """
    tcfg = cfg.train_config(data.loss)
    fitness = np.full(W.shape[0], np.nan)
    loss = np.full(W.shape[0], np.nan)

    def one(i):
        try:
            hist = sgd.train(layout, W[i], data.X_train, data.y_train, tcfg,
                                  seed=derived_seed(cfg.seed, generation, i, HYBRID_TRAIN),
                                  start_epoch=(generation - 1) * cfg.epochs_per_generation)
            loss[i] = hist[-1]["loss"]
            fitness[i] = data.fitness(layout, W[i])
        except TrainingError:
            pass
        if on_done is not None:
            on_done(i, fitness[i])

    with blas_threads(1), ThreadPoolExecutor(max_workers=n_workers(cfg)) as pool:
        list(pool.map(one, range(W.shape[0])))
    return fitness, loss


def step(state: HybridState, cfg: HybridConfig, data: HybridData, on_done=None) -> tuple[HybridState, dict]:
    """Make generation ``state.generation + 1``; returns the new state and its metrics."""
    pop = state.population
    layout = pop.layout
    g = state.generation + 1
    t0 = time.perf_counter()
    if state.generation == 0:
        children, a, b = pop.W.copy(), np.full(pop.size, -1), np.full(pop.size, -1)
        parent_ids, second_ids, child_ids = np.full(pop.size, -1), np.full(pop.size, -1), pop.ids.copy()
        next_id = pop.next_id
    else:
        children, a, b = breed(state, cfg)
        parent_ids, second_ids = pop.ids[a], pop.ids[b]
        child_ids = pop.next_id + np.arange(children.shape[0])
        next_id = pop.next_id + children.shape[0]
    fresh = fresh_networks(cfg, layout, g, cfg.n_fresh)
    fresh_ids = next_id + np.arange(fresh.shape[0])
    next_id += fresh.shape[0]
    W = np.ascontiguousarray(np.concatenate([children, fresh]))
    t1 = time.perf_counter()
    fitness, loss = train_pool(W, layout, data, cfg, g, on_done)
    t2 = time.perf_counter()
    keep = ranking(fitness)[: cfg.population]
    ids = np.concatenate([child_ids, fresh_ids]).astype(np.int64)
    parents = np.concatenate([parent_ids, np.full(fresh.shape[0], -1)]).astype(np.int64)
    seconds = np.concatenate([second_ids, np.full(fresh.shape[0], -1)]).astype(np.int64)
    new = Population(layout=layout, W=np.ascontiguousarray(W[keep]), trust=fitness[keep].astype(np.float64),
                     ids=ids[keep], parent_ids=parents[keep], age=np.zeros(keep.size, dtype=np.int32),
                     next_id=int(next_id))
    if not np.isfinite(new.W).all():
        raise TrainingError(f"generation {g}: more networks diverged than can be replaced; lower lr (now {cfg.lr})")
    n_children = children.shape[0]
    m, sign = data.metric, (1.0 if data.loss == "nll" else -1.0)  # metric = sign * fitness
    record = {
        "generation": g,
        f"best_val_{m}": sign * float(fitness[keep[0]]),
        f"mean_val_{m}": sign * float(np.nanmean(fitness[keep])),
        f"worst_val_{m}": sign * float(fitness[keep[-1]]),
        f"pool_mean_val_{m}": sign * float(np.nanmean(fitness)) if np.isfinite(fitness).any() else float("nan"),
        "mean_train_loss": float(np.nanmean(loss[keep])),
        "pool_size": int(W.shape[0]),
        "fresh_kept": int(np.sum(keep >= n_children)),
        "diverged": int(np.sum(np.isnan(fitness))),
        "breed_seconds": t1 - t0,
        "train_seconds": t2 - t1,
    }
    return HybridState(new, g, seconds[keep]), record


def train_baseline(cfg: HybridConfig, data: HybridData, layout=None) -> tuple[np.ndarray, list[dict]]:
    """One network of ``layout`` (default ``cfg.layout()``) trained alone for generations * E epochs
    (the reference's baseline).

    Returns ``(row (n_params,) float32, per-epoch history)``.
    """
    layout = layout or cfg.layout()
    row = Population.random(layout, 1, seed=derived_seed(cfg.seed, HYBRID_BASELINE)).W[0]
    tcfg = dataclasses.replace(cfg.train_config(data.loss), epochs=cfg.generations * cfg.epochs_per_generation)
    with blas_threads(1):
        history = sgd.train(layout, row, data.X_train, data.y_train, tcfg, seed=derived_seed(cfg.seed, HYBRID_BASELINE, 1))
    return row, history
