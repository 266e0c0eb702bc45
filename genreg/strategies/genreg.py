"""GENREG: trust-decay selection (Payton's GENREG; public code: github.com/A1CST/GENREG_MNIST_UBUNTU).

    trust <- trust * (1 - decay) + (correct * reward + wrong * penalty)
    survivors = top ``survival_cutoff`` by trust; two parents drawn from the
    survivors with probability by trust and crossed (``crossover``, as the
    original GENREG code does; ``"none"``: a copy of the first parent, as the
    published write-up describes); child = that + Gaussian noise on
    ``child_mutation_rate`` of its weights, starting with ``trust_inheritance``
    x its parents' mean trust; ``elites`` best carried over unmutated (as
    children, with inherited trust); base mutation on a share of the rest keeps
    diversity.  The children are returned as a ``Brood`` (the survivors' rows
    plus each child's parents and random streams): the run scores them without
    building them and builds only the next survivors.

On a task without classes (regression, a fitness callable) the episode's trust
is its fitness (-MSE, or the callable's value).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from genreg.network.variation import Brood, gene_bounds
from genreg.streams import Purpose, generator, stream_keys
from genreg.strategies.base import EvolutionState, Evaluation, Strategy, geometric_anneal, next_population, ranking


class Genreg(Strategy):
    """Trust-decay evolution (GENREG)."""

    name = "genreg"
    reuses_rows = True  # the survivors' rows are built into the generation-before-last's buffer

    def score(self, state: EvolutionState, evaluation: Evaluation, cfg) -> np.ndarray:
        """Update trust with one episode's results; returns the new trust ``(P,)``."""
        if evaluation.n_correct is not None:
            n_correct, n = evaluation.n_correct, evaluation.n_samples
            episode = n_correct * cfg.correct_reward + (n - n_correct) * cfg.wrong_penalty
        else:
            episode = evaluation.direct_fitness()
        pop = state.population
        pop.trust = pop.trust * (1.0 - cfg.trust_decay) + episode
        return pop.trust

    def parent_weights(self, trust: np.ndarray, cfg) -> np.ndarray:
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
    def noise_scale(generation: int, cfg) -> float:
        """The mutation noise of ``generation``: constant, or a geometric anneal to ``mutation_scale_end``."""
        return geometric_anneal(cfg.mutation_scale, cfg.mutation_scale_end, generation, cfg.generations)

    def breed(self, state: EvolutionState, cfg, out: np.ndarray | None = None) -> EvolutionState:
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
