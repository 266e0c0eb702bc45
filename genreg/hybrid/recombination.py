"""Hybrid GA + SGD: the evaluator (SGD training, then validation fitness) and one generation.

One generation (``step``) is ask -> evaluate -> tell (``genreg.strategies.base.ask_tell``):

1. ``HybridRecombination.ask`` (``genreg.hybrid.strategy``): P children of the
   best half of the population (the founders themselves in the first
   generation) and ``ceil(fresh_fraction * P)`` fresh random networks;
2. ``evaluate_pool``: train every network of this pool for E epochs of SGD
   (``genreg.network.sgd``), in place ("Lamarckian": the trained weights are
   what survives); fitness = accuracy on the validation split (classification;
   minus the validation MSE in the data's units for regression);
3. ``HybridRecombination.tell``: keep the best P, best first.

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

from genreg.errors import TrainingError
from genreg.hybrid.config import HybridConfig
from genreg.hybrid.strategy import HybridRecombination, HybridState, Pool, PoolEvaluation, founders
from genreg.network import backprop, sgd
from genreg.network.blas import blas_threads
from genreg.network.population import Population
from genreg.streams import HYBRID_BASELINE, HYBRID_TRAIN, derived_seed


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


def evaluate_pool(pool: Pool, data: HybridData, cfg: HybridConfig, on_done=None) -> PoolEvaluation:
    """The hybrid evaluator: train ``pool.W`` in place (``train_pool``) and score it on the validation split."""
    fitness, loss = train_pool(pool.W, pool.layout, data, cfg, pool.generation, on_done)
    return PoolEvaluation(fitness, loss)


def generation_record(pool: Pool, evaluation: PoolEvaluation, keep: np.ndarray, data: HybridData) -> dict:
    """Generation ``pool.generation``'s metrics (timings are the caller's): ``keep`` are the survivors' rows."""
    fitness, loss = evaluation.fitness, evaluation.loss
    m, sign = data.metric, (1.0 if data.loss == "nll" else -1.0)  # metric = sign * fitness
    return {
        "generation": pool.generation,
        f"best_val_{m}": sign * float(fitness[keep[0]]),
        f"mean_val_{m}": sign * float(np.nanmean(fitness[keep])),
        f"worst_val_{m}": sign * float(fitness[keep[-1]]),
        f"pool_mean_val_{m}": sign * float(np.nanmean(fitness)) if np.isfinite(fitness).any() else float("nan"),
        "mean_train_loss": float(np.nanmean(loss[keep])),
        "pool_size": int(pool.W.shape[0]),
        "fresh_kept": int(np.sum(keep >= pool.n_children)),
        "diverged": int(np.sum(np.isnan(fitness))),
    }


def step(state: HybridState, cfg: HybridConfig, data: HybridData, on_done=None) -> tuple[HybridState, dict]:
    """Make generation ``state.generation + 1`` (ask -> ``evaluate_pool`` -> tell); returns the new state
    and its metrics (``on_done(i, fitness)``: see ``train_pool``)."""
    strategy = HybridRecombination()
    t0 = time.perf_counter()
    pool = strategy.ask(state, cfg)
    t1 = time.perf_counter()
    evaluation = evaluate_pool(pool, data, cfg, on_done)
    t2 = time.perf_counter()
    new = strategy.tell(state, pool, evaluation, cfg)
    record = generation_record(pool, evaluation, strategy.survivors(evaluation, cfg), data)
    record.update(breed_seconds=t1 - t0, train_seconds=t2 - t1)
    return new, record


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
