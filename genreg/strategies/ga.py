"""Classic GA (after "Using a genetic algorithm instead of backpropagation", TensorFlow MNIST).

fitness = episode accuracy (or negative loss); fitness-biased pairing (rank,
roulette or tournament); mask or gene crossover of each pair; mutation whose
scale shrinks as the fitness spread collapses (and, if asked, on a schedule
over the run) and grows on stagnation.  On a task without classes the fitness
is -MSE (regression) or the fitness callable's value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from genreg.network.variation import Brood, gene_bounds
from genreg.streams import Purpose, generator, stream_keys
from genreg.strategies.base import EvolutionState, Evaluation, Strategy, geometric_anneal, next_population, ranking


@dataclass
class GAState(EvolutionState):
    """GA state: ``population.trust`` holds the last fitness; ``best_fitness``, ``stagnant``,
    ``mutation_multiplier`` and ``initial_spread`` drive the adaptive mutation."""

    best_fitness: float = -math.inf
    stagnant: int = 0
    mutation_multiplier: float = 1.0
    initial_spread: float = math.nan


class ClassicGA(Strategy):
    """Fitness-biased pairing, crossover of each pair, convergence-adaptive Gaussian mutation."""

    name = "ga"
    State = GAState

    def needs_loss(self, cfg) -> bool:
        return cfg.fitness == "neg_loss"

    def score(self, state: GAState, evaluation: Evaluation, cfg) -> np.ndarray:
        """Fitness = episode accuracy, or -loss (mean cross-entropy) if ``cfg.fitness == 'neg_loss'``;
        without classes, -MSE or the fitness callable's value."""
        pop = state.population
        if evaluation.n_correct is None:
            pop.trust = np.asarray(evaluation.direct_fitness(), dtype=np.float64)
        elif cfg.fitness == "neg_loss":
            pop.trust = -np.asarray(evaluation.loss, dtype=np.float64)
        else:
            pop.trust = evaluation.n_correct / evaluation.n_samples
        return pop.trust

    def pick(self, fitness: np.ndarray, count: int, rng: np.random.Generator, cfg) -> np.ndarray:
        """Choose ``count`` parent rows, biased towards fitness."""
        P = fitness.shape[0]
        f = np.where(np.isnan(fitness), -np.inf, fitness)
        if cfg.selection == "tournament":
            contestants = rng.integers(0, P, size=(count, cfg.tournament_size))
            # the best contestant; ties go to the lower row
            best = np.argmax(f[contestants], axis=1)
            return contestants[np.arange(count), best]
        if cfg.selection == "rank":
            weights = np.empty(P)
            weights[ranking(fitness)] = np.arange(P, 0, -1, dtype=np.float64)
        else:  # roulette on shifted fitness
            finite = np.isfinite(f)
            base = f[finite].min() if finite.any() else 0.0
            weights = np.where(finite, f - base + 1e-9, 0.0)
        return rng.choice(P, size=count, p=weights / weights.sum())

    def mutation_scale(self, state: GAState, cfg) -> float:
        """Scale after adaptation: ``ga_mutation_scale`` (annealed to ``ga_mutation_scale_end`` if set),
        shrunk with the fitness spread, grown on stagnation."""
        spread = float(np.nanstd(state.population.trust))
        if not np.isfinite(state.initial_spread) or state.initial_spread <= 0:
            convergence = 1.0
        else:
            convergence = min(1.0, max(cfg.adapt_min, spread / state.initial_spread))
        scale = geometric_anneal(cfg.ga_mutation_scale, cfg.ga_mutation_scale_end, state.generation, cfg.generations)
        return scale * convergence * state.mutation_multiplier

    def breed(self, state: GAState, cfg, out: np.ndarray | None = None) -> GAState:
        """The next generation (children are built in new buffers; ``out`` is accepted and unused)."""
        pop, g = state.population, state.generation
        pop.build()  # crossover reads parents' rows
        fitness = pop.trust
        best = float(np.nanmax(fitness)) if np.isfinite(fitness).any() else -math.inf
        initial = state.initial_spread
        if not np.isfinite(initial):
            initial = float(np.nanstd(fitness))
        if best > state.best_fitness:
            best_fitness, stagnant, multiplier = best, 0, 1.0
        else:
            best_fitness, stagnant, multiplier = state.best_fitness, state.stagnant + 1, state.mutation_multiplier
            if stagnant % cfg.stagnation_patience == 0:
                multiplier = min(8.0, multiplier * cfg.stagnation_growth)
        adapted = GAState(pop, g, best_fitness, stagnant, multiplier, initial)
        scale = self.last_mutation_scale = self.mutation_scale(adapted, cfg)

        order = ranking(fitness)
        elites = order[: cfg.elites]
        n_children = cfg.population - len(elites)
        rng = generator(cfg.seed, g, Purpose.SELECTION)
        parent_a = self.pick(fitness, n_children, rng, cfg)
        parent_b = self.pick(fitness, n_children, rng, cfg)
        # Each child in one pass over memory, as GENREG's are built: crossover of its
        # pair (or a copy of parent a), then mutation (``kernels.variation.make_child``).
        slots = np.arange(len(elites), cfg.population)
        parent_a, parent_b = (np.asarray(p, dtype=np.int64) for p in (parent_a, parent_b))
        children = Brood(pop.W, parent_a, np.full(slots.size, cfg.ga_mutation_rate), np.zeros(slots.size),
                         stream_keys(cfg.seed, g, slots, Purpose.CHILD_MUTATION), np.zeros(slots.size, np.uint64),
                         scale, second=parent_b, crossover=cfg.crossover,
                         crossover_keys=stream_keys(cfg.seed, g, slots, Purpose.CROSSOVER),
                         gene_bounds=gene_bounds(pop.layout, cfg.gene_block_rows) if cfg.crossover == "gene" else None)
        new = next_population(pop, elites, parent_a, children.build(), fitness[parent_a].astype(np.float64))
        return GAState(new, g + 1, best_fitness, stagnant, multiplier, initial)
