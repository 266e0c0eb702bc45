"""The evolution loop, run directories, and resume.

One loop serves every strategy: draw the generation's episode (the same for
every genome), score all genomes with the fused forward kernel, let the
strategy turn scores into trust/fitness, record metrics, breed, checkpoint.
Every random draw is keyed by (seed, generation, ...), so a resumed run repeats
exactly what an uninterrupted run would have done.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.network.batch import SparseBatch
from genreg.genome.checkpoint import save_genome
from genreg.strategies.config import NETWORK_KEYS, Config, from_mapping
from genreg.tasks import EpisodeSampler, load_mnist
from genreg.errors import ConfigError
from genreg.network.forward import brood_predict, genome_predict, population_logits, population_predict, predict_from_logits
from genreg.network.layout import Layout
from genreg.network.population import Population, check_population_size
from genreg.runs.store import CheckpointWriter, History, latest_checkpoint, write_checkpoint
from genreg.strategies.core import EvolutionState, make_strategy, ranking
from genreg.network.variation import Brood, Purpose, stream_keys

N_CLASSES = 10
METRICS = (
    ["generation", "best_trust", "mean_trust", "best_accuracy", "mean_accuracy", "validation_accuracy"]
    + [f"digit_{d}" for d in range(N_CLASSES)]
    + ["eval_seconds", "breed_seconds", "mutation_scale"]
)


def layout_for(cfg: Config) -> Layout:
    return Layout((784, *cfg.hidden_sizes, N_CLASSES), cfg.activation)


def tracked_positions(layout: Layout, cfg: Config) -> np.ndarray:
    """The fixed weights whose values the run records (first-layer weights, chosen by seed)."""
    n = min(cfg.track_weights, layout.tensor("W0").size)
    rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x7EAC]))
    return np.sort(rng.choice(layout.tensor("W0").size, size=n, replace=False))


@dataclass
class Data:
    train_images: np.ndarray
    train_labels: np.ndarray
    validation: SparseBatch
    validation_labels: np.ndarray


def warm_kernels(layout: Layout) -> None:
    """Load the loop's compiled kernels from Numba's cache by calling each on one tiny input.

    The first use of cached kernels costs about 1 s (Numba sets itself up); ``load_data``
    runs this on a thread while it reads the data set.
    """
    try:
        batch = SparseBatch.from_dense(np.zeros((1, layout.n_inputs), np.uint8))
        labels = np.zeros(1, np.int64)
        W = Population.random(layout, 1, seed=0).W
        keys = stream_keys(0, 0, [0], Purpose.CHILD_MUTATION)
        brood = Brood(W, np.zeros(1, np.int64), np.full(1, 0.5), np.full(1, 0.5), keys, keys, 0.1)
        brood.build()
        brood_predict(layout, brood, batch, labels, N_CLASSES)
        population_predict(layout, W, batch, labels, N_CLASSES)
        genome_predict(layout, W[0], batch, N_CLASSES)
    except Exception:  # noqa: BLE001 - only a head start: the run's own calls report any problem
        pass


def load_data(cfg: Config, data_dir=None) -> Data:
    warm = threading.Thread(target=warm_kernels, args=(layout_for(cfg),), name="genreg-warm-kernels", daemon=True)
    warm.start()
    mnist = load_mnist(data_dir)
    train, val = mnist.split_validation(cfg.validation_size, seed=0)
    warm.join()  # no kernel runs here before this: one thread at a time launches parallel kernels
    return Data(train.images, train.labels, SparseBatch.from_dense(val.images), val.labels.astype(np.int64))


class StopRequest:
    """SIGINT/SIGTERM set a flag; the loop finishes the generation, checkpoints and exits."""

    def __init__(self):
        self.signal = None

    def __enter__(self):
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}
        return self

    def _handle(self, signum, frame):
        self.signal = signum

    def __exit__(self, *exc):
        for s, handler in self._old.items():
            signal.signal(s, handler)


def mean_cross_entropy(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Mean softmax cross-entropy per genome: logits ``(P, B, C)`` -> ``(P,)``."""
    z = logits[:, :, :N_CLASSES].astype(np.float64)
    z = z - z.max(axis=2, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    return -log_softmax[:, np.arange(labels.shape[0]), labels].mean(axis=1)


def score_episode(pop: Population, batch: SparseBatch, labels: np.ndarray, cfg: Config):
    """One forward pass of every genome over the episode: ``(predictions (P, B), n_correct (P,), loss)``.

    loss: ``(P,)`` mean cross-entropy when the GA's fitness needs it, else None.  A
    brood's children (GENREG) are scored without being built.
    """
    layout = pop.layout
    if cfg.strategy == "ga" and cfg.fitness == "neg_loss":  # one forward pass serves both
        logits = population_logits(layout, pop.build(), batch)
        return (*predict_from_logits(logits, labels, N_CLASSES), mean_cross_entropy(logits, labels))
    if pop.W is None:
        return (*brood_predict(layout, pop.brood, batch, labels, N_CLASSES), None)
    return (*population_predict(layout, pop.W, batch, labels, N_CLASSES), None)


def spare_rows(pop: Population) -> np.ndarray:
    """The buffer that holds ``pop``'s rows (its brood's parents, or W): free to reuse
    two generations later, when nothing refers to it any more."""
    return pop.W if pop.W is not None else pop.brood.source


def evolve_loop(run_dir: Path, cfg: Config, state: EvolutionState, data: Data, progress: bool = True) -> EvolutionState:
    """Run generations ``state.generation .. cfg.generations - 1``; checkpoint as configured."""
    from tqdm import tqdm

    strategy = make_strategy(cfg.strategy)
    layout = state.population.layout
    sampler = EpisodeSampler(data.train_labels, cfg.samples_per_class, cfg.seed)
    tracked = tracked_positions(layout, cfg)
    metrics = History(run_dir / "metrics.csv", METRICS)
    weights = History(run_dir / "tracked_weights.csv", ["generation"] + [f"w{int(i)}" for i in tracked])
    for history in (metrics, weights):
        history.truncate(state.generation)
    best_row, best_trust, best_generation = None, 0.0, state.generation
    spare = None  # a buffer nothing refers to any more: the rows bred from two generations ago
    started = time.perf_counter()
    writer = CheckpointWriter(run_dir)  # checkpoints are written while evolution goes on
    failed = True
    bar = tqdm(total=cfg.generations, initial=state.generation, unit="gen", disable=not progress,
               dynamic_ncols=True, desc=f"{cfg.strategy} {layout.describe().split(' ')[0]}")
    try:
        with StopRequest() as stop:
            while state.generation < cfg.generations:
                g = state.generation
                t0 = time.perf_counter()
                idx = sampler.indices(g)
                labels = data.train_labels[idx].astype(np.int64)
                batch = SparseBatch.from_dense(data.train_images[idx])
                pop = state.population
                predictions, n_correct, loss = score_episode(pop, batch, labels, cfg)
                fitness = strategy.score(state, n_correct, labels.shape[0], cfg, loss)
                best = int(ranking(fitness)[0])
                best_row = pop.genomes([best])[0]
                accuracy = n_correct / labels.shape[0]
                validation = math.nan
                # A fixed schedule (not "and the last generation"), so a resumed run
                # records exactly what the uninterrupted one does.
                if cfg.validation_every and g % cfg.validation_every == 0:
                    val_pred = genome_predict(layout, best_row, data.validation, N_CLASSES)
                    validation = float((val_pred == data.validation_labels).mean())
                hits = np.bincount(labels, weights=predictions[best] == labels, minlength=N_CLASSES)
                per_digit = (hits / np.bincount(labels, minlength=N_CLASSES)).tolist()
                best_trust, best_generation = float(fitness[best]), g
                t1 = time.perf_counter()
                # The generation before last is garbage now: breed into its buffer.
                previous = spare_rows(pop)
                state = strategy.breed(state, cfg, out=spare)
                spare = previous
                scale = strategy.last_mutation_scale
                t2 = time.perf_counter()
                metrics.append([g, float(fitness[best]), float(np.nanmean(fitness)), float(accuracy[best]),
                                float(accuracy.mean()), validation, *per_digit, t1 - t0, t2 - t1, scale])
                weights.append([g, *best_row[tracked].tolist()])
                bar.update(1)
                bar.set_postfix(trust=f"{fitness[best]:.1f}", acc=f"{accuracy[best]:.3f}",
                                val=f"{validation:.3f}" if not math.isnan(validation) else "-", refresh=False)
                done = state.generation == cfg.generations
                out_of_time = cfg.max_minutes > 0 and time.perf_counter() - started >= 60.0 * cfg.max_minutes
                if stop.signal is not None or done or out_of_time or state.generation % cfg.checkpoint_every == 0:
                    best_path = run_dir / f"best_genome_mnist_gen{state.generation:05d}.pkl"
                    metadata = {"generation": best_generation, "seed": cfg.seed, "strategy": cfg.strategy,
                                "run_dir": str(run_dir)}
                    writer.submit(state, cfg.to_dict(), lambda p=best_path, w=best_row, t=best_trust, m=metadata:
                                  save_genome(p, layout, w, trust=t, metadata=m))
                if stop.signal is not None or (out_of_time and not done):
                    writer.wait()
                    why = f"signal {stop.signal}" if stop.signal is not None else f"max_minutes={cfg.max_minutes:g}"
                    bar.write(f"genreg: stopped by {why} after generation {g}; "
                              f"checkpoint written, continue with: genreg resume {run_dir}")
                    break
        failed = False
    finally:
        bar.close()
        metrics.close()
        weights.close()
        writer.close(check=not failed)
    return state


def start_run(cfg: Config, run_dir, data_dir=None, progress: bool = True) -> EvolutionState:
    """Create ``run_dir`` and evolve from a fresh founder population."""
    run_dir = Path(run_dir)
    if (run_dir / "checkpoints").exists() and any((run_dir / "checkpoints").iterdir()):
        raise ConfigError(f"{run_dir} already holds a run; continue it with `genreg resume {run_dir}` or choose --out")
    layout = layout_for(cfg)
    check_population_size(layout, cfg.population, copies=2)  # before anything is written
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.toml").write_text(cfg.to_toml())
    state = EvolutionState(Population.random(layout, cfg.population, seed=cfg.seed))
    data = load_data(cfg, data_dir)
    write_checkpoint(run_dir, state, cfg.to_dict())
    return evolve_loop(run_dir, cfg, state, data, progress)


def resume_run(run_dir, overrides: dict | None = None, data_dir=None, progress: bool = True) -> EvolutionState:
    """Continue ``run_dir`` from its newest loadable checkpoint, with optional parameter changes."""
    run_dir = Path(run_dir)
    path, state, saved = latest_checkpoint(run_dir)
    base = from_mapping({k: v for k, v in saved.items() if k in Config.__dataclass_fields__})
    cfg = from_mapping(dict(overrides or {}), base)
    changed = [k for k in NETWORK_KEYS if getattr(cfg, k) != getattr(base, k)]
    if changed:
        raise ConfigError(
            f"cannot change {', '.join(changed)} on resume: it would change the network's shape "
            f"({layout_for(base).describe()}); start a new run instead"
        )
    (run_dir / "config.toml").write_text(cfg.to_toml())
    data = load_data(cfg, data_dir)
    print(f"resuming {run_dir} from {path.name} (generation {state.generation}) to generation {cfg.generations}")
    return evolve_loop(run_dir, cfg, state, data, progress)
