"""Strategies: how a scored population becomes the next generation.

Both strategies share ``EvolutionState`` and ``next_population`` (elites carried
over, children cloned or crossed from parents, lineage bookkeeping); each fills
in only what differs: how fitness is scored and how parents are chosen and varied.

GENREG (trust-decay selection, ``../shared/reference/genreg-trust-evolution.txt``):
    trust <- trust * (1 - decay) + (correct * reward + wrong * penalty)
    survivors = top ``survival_cutoff`` by trust; two parents drawn from the
    survivors with probability by trust and crossed (``crossover``, as the
    original GENREG code does; ``"none"``: a copy of the first parent, as the
    reference's text describes); child = that + Gaussian noise on
    ``child_mutation_rate`` of its weights, starting with ``trust_inheritance``
    x its parents' mean trust; ``elites`` best carried over unmutated (as
    children, with inherited trust); base mutation on a share of the rest keeps
    diversity.  The children are returned as a ``Brood`` (the survivors' rows
    plus each child's parents and random streams): the run scores them without
    building them and builds only the next survivors.

Classic GA (``../shared/reference/ga-instead-of-backprop.txt``):
    fitness = episode accuracy (or negative loss); fitness-biased pairing
    (rank, roulette or tournament); mask or gene crossover of each pair;
    mutation whose scale shrinks as the fitness spread collapses (and, if
    asked, on a schedule over the run) and grows on stagnation.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from genreg.strategies.config import Config
from genreg.network.population import Population, check_population_size
from genreg.network.variation import Brood, Purpose, gene_bounds, generator, stream_keys


@dataclass
class EvolutionState:
    """Everything that evolves: the population and the strategy's own scalars.

    generation: the next generation to evaluate.  For the GA, ``population.trust``
    holds the last fitness, and ``mutation_multiplier``, ``best_fitness``,
    ``stagnant`` and ``initial_spread`` drive the adaptive mutation.
    """

    population: Population
    generation: int = 0
    best_fitness: float = -math.inf
    stagnant: int = 0
    mutation_multiplier: float = 1.0
    initial_spread: float = math.nan

    def scalars(self) -> dict:
        return {
            "generation": self.generation,
            "best_fitness": self.best_fitness,
            "stagnant": self.stagnant,
            "mutation_multiplier": self.mutation_multiplier,
            "initial_spread": self.initial_spread,
        }


def next_population(pop: Population, keep: np.ndarray, parents: np.ndarray, children: np.ndarray | Brood,
                    child_trust: np.ndarray) -> Population:
    """Assemble the next generation: ``keep`` rows carried over as they are, then children.

    parents: ``(C,)`` row of each child's (first) parent; children: their rows ``(C, n)``
    (used as the new buffer itself when nothing is kept) or a ``Brood`` (nothing may be
    kept then).  Children get fresh ids, age 0 and ``child_trust``.
    """
    if len(keep) + len(parents) != pop.size:  # a new size (on resume): will it fit?
        check_population_size(pop.layout, len(keep) + len(parents), copies=2)
    W, brood = children, None
    if isinstance(children, Brood):
        if len(keep):
            raise ValueError("a brood cannot be mixed with kept genomes")
        W, brood = None, children
    elif len(keep):
        W = np.empty((len(keep) + len(parents), pop.W.shape[1]), dtype=np.float32)
        W[: len(keep)] = pop.W[keep]
        W[len(keep):] = children
    n_children = len(parents)
    return Population(
        layout=pop.layout,
        W=W,
        trust=np.concatenate([pop.trust[keep], child_trust]).astype(np.float64),
        ids=np.concatenate([pop.ids[keep], pop.next_id + np.arange(n_children, dtype=np.int64)]),
        parent_ids=np.concatenate([pop.parent_ids[keep], pop.ids[parents]]),
        age=np.concatenate([pop.age[keep] + 1, np.zeros(n_children, dtype=np.int32)]).astype(np.int32),
        next_id=pop.next_id + n_children,
        brood=brood,
    )


def geometric_anneal(start: float, end: float, generation: int, generations: int) -> float:
    """``start`` at generation 0 shrinking geometrically to ``end`` at ``generations - 1``
    (constant ``start`` if ``end`` or ``start`` is 0)."""
    if end <= 0 or start <= 0:
        return start
    f = min(1.0, generation / max(1, generations - 1))
    return start * (end / start) ** f


def ranking(fitness: np.ndarray) -> np.ndarray:
    """Row indices best first; NaN counts as worst; ties keep row order (stable)."""
    key = np.where(np.isnan(fitness), -np.inf, fitness)
    return np.argsort(-key, kind="stable")


class Genreg:
    """Trust-decay evolution (GENREG)."""

    name = "genreg"
    last_mutation_scale = math.nan  # the noise scale the last breed() used (for metrics)

    def score(self, state: EvolutionState, n_correct: np.ndarray, n_images: int, cfg: Config, loss=None) -> np.ndarray:
        """Update trust with one episode's results; returns the new trust ``(P,)``."""
        episode = n_correct * cfg.correct_reward + (n_images - n_correct) * cfg.wrong_penalty
        pop = state.population
        pop.trust = pop.trust * (1.0 - cfg.trust_decay) + episode
        return pop.trust

    def parent_weights(self, trust: np.ndarray, cfg: Config) -> np.ndarray:
        """Selection weights of the survivors (best first) from their trust."""
        n = trust.shape[0]
        if cfg.parent_weighting == "shift":  # negative trust still counts, the worst survivor least
            w = trust - trust.min() + 1.0
        elif cfg.parent_weighting == "clip":
            w = np.maximum(trust, 0.0)
        elif cfg.parent_weighting == "rank":
            w = np.arange(n, 0, -1, dtype=np.float64)
        else:
            w = np.ones(n)
        w = np.where(np.isfinite(w), w, 0.0)
        return w / w.sum() if w.sum() > 0 else np.full(n, 1.0 / n)

    @staticmethod
    def noise_scale(generation: int, cfg: Config) -> float:
        """The mutation noise of ``generation``: constant, or a geometric anneal to ``mutation_scale_end``."""
        return geometric_anneal(cfg.mutation_scale, cfg.mutation_scale_end, generation, cfg.generations)

    def breed(self, state: EvolutionState, cfg: Config, out: np.ndarray | None = None) -> EvolutionState:
        """The next generation, as a brood: children described by their parents (the
        survivors' rows, built here) and mutation streams; ``out``: optional buffer for the
        survivors' rows (the caller promises nothing else uses it, e.g. the generation before last's)."""
        pop, g = state.population, state.generation
        scale = self.last_mutation_scale = self.noise_scale(g, cfg)
        order = ranking(pop.trust)
        n_survivors = max(1, math.ceil(cfg.survival_cutoff * pop.size))
        survivors = order[:n_survivors]
        # Every member of the new population is a child, as in GENREG; the first
        # ``elites`` are unmutated children of the best genomes.  (An elite that
        # kept its accumulated trust could never be displaced by children, who
        # start from ``trust_inheritance`` of their parent's.)
        n_elites = min(cfg.elites, n_survivors)
        n_children = cfg.population - n_elites
        weights = self.parent_weights(pop.trust[survivors], cfg)
        drawn = generator(cfg.seed, g, Purpose.SELECTION).choice(n_survivors, size=n_children, p=weights)
        parents = np.concatenate([np.arange(n_elites), drawn])  # rows of the survivors
        second = parents  # with crossover, a second parent drawn the same way (an elite's is itself)
        if cfg.crossover != "none":
            drawn = generator(cfg.seed, g, Purpose.CROSSOVER).choice(n_survivors, size=n_children, p=weights)
            second = np.concatenate([np.arange(n_elites), drawn])
        slots = np.arange(cfg.population)
        rates = np.where(slots < n_elites, 0.0, cfg.child_mutation_rate)
        # Base mutation: a share of the (non-elite) children get a second, independent mutation.
        children = slots[n_elites:]
        chosen = children[generator(cfg.seed, g, Purpose.BASE_MUTATION).random(n_children) < cfg.base_mutation_share]
        base_rates = np.zeros(cfg.population)
        base_rates[chosen] = cfg.base_mutation_rate
        brood = Brood(pop.genomes(survivors, out), parents, rates, base_rates,
                      stream_keys(cfg.seed, g, slots, Purpose.CHILD_MUTATION),
                      stream_keys(cfg.seed, g, slots, Purpose.BASE_MUTATION), scale, second=second,
                      crossover=cfg.crossover, crossover_keys=stream_keys(cfg.seed, g, slots, Purpose.CROSSOVER),
                      gene_bounds=gene_bounds(pop.layout, cfg.gene_block_rows) if cfg.crossover == "gene" else None)
        parent_trust = (pop.trust[survivors[parents]] + pop.trust[survivors[second]]) / 2.0  # one parent: its trust
        new = next_population(pop, np.empty(0, dtype=np.int64), survivors[parents], brood,
                              cfg.trust_inheritance * parent_trust)
        return dataclasses.replace(state, population=new, generation=g + 1)


class ClassicGA:
    """Fitness-biased pairing, crossover of each pair, convergence-adaptive Gaussian mutation."""

    name = "ga"
    last_mutation_scale = math.nan

    def score(self, state: EvolutionState, n_correct: np.ndarray, n_images: int, cfg: Config, loss=None) -> np.ndarray:
        """Fitness = episode accuracy, or -loss (``loss: (P,)`` mean cross-entropy) if ``cfg.fitness == 'neg_loss'``."""
        pop = state.population
        if cfg.fitness == "neg_loss":
            pop.trust = -np.asarray(loss, dtype=np.float64)
        else:
            pop.trust = n_correct / n_images
        return pop.trust

    def pick(self, fitness: np.ndarray, count: int, rng: np.random.Generator, cfg: Config) -> np.ndarray:
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

    def mutation_scale(self, state: EvolutionState, cfg: Config) -> float:
        """Scale after adaptation: ``ga_mutation_scale`` (annealed to ``ga_mutation_scale_end`` if set),
        shrunk with the fitness spread, grown on stagnation."""
        spread = float(np.nanstd(state.population.trust))
        if not np.isfinite(state.initial_spread) or state.initial_spread <= 0:
            convergence = 1.0
        else:
            convergence = min(1.0, max(cfg.adapt_min, spread / state.initial_spread))
        scale = geometric_anneal(cfg.ga_mutation_scale, cfg.ga_mutation_scale_end, state.generation, cfg.generations)
        return scale * convergence * state.mutation_multiplier

    def breed(self, state: EvolutionState, cfg: Config, out: np.ndarray | None = None) -> EvolutionState:
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
        adapted = EvolutionState(pop, g, best_fitness, stagnant, multiplier, initial)
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
        return EvolutionState(new, g + 1, best_fitness, stagnant, multiplier, initial)


STRATEGIES = {"genreg": Genreg, "ga": ClassicGA}


def make_strategy(name: str):
    return STRATEGIES[name]()
