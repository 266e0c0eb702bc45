"""The trait search as an ask/tell strategy (``genreg.strategies.base.AskTell``).

One generation (``genreg.hpo.search.HPOMode.step``)::

    candidates = strategy.ask(state, cfg)                    # founders (0), else children of the survivors
    evaluation = evaluate_candidates(candidates, ...)         # SGD training (changes each row), validation metric
    state = strategy.tell(state, candidates, evaluation, cfg)  # survivors + the trained children

``ask``: at generation 0 the untrained founders; later, the best
``survivor_fraction`` of the population (ranked by validation metric) are the
survivors, and the rest of the population is their children: random pairs of
survivors, a random subset of traits swapped (two complementary children per
pair), 1-3 traits re-drawn with probability ``mutation_rate``; weights fresh, or
with ``merge`` the merge of both parents' trained weights.  ``tell``: the next
population is the survivors (kept with their trained weights and score, in rank
order) followed by the evaluated children.

Every decision draws from a stream keyed by (seed, generation or individual id, purpose).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np

from genreg.hpo.config import HPOConfig
from genreg.hpo.merge import merge_weights
from genreg.hpo.rundir import Individual
from genreg.hpo.traits import TRAITS, Traits, breed, mutate, random_traits, trait_ranges
from genreg.network.layout import Layout, network_layout
from genreg.network.population import Population
from genreg.streams import SearchPurpose, derived_seed, generator
from genreg.tasks import Task


@dataclass
class SearchState:
    """Where a search stands: ``generation`` is the next generation to run (0: train the founders).

    A search whose best reached ``target`` has no next generation: its ``generation``
    jumps to the end (``generations``), which ends the run loop.
    """

    generation: int
    population: list
    next_id: int


def make_layout(traits: Traits, task: Task, cfg: HPOConfig) -> Layout:
    """``(n_inputs, *hidden_sizes, n_outputs)``, hidden activation from cfg, linear outputs; with ``cfg.conv``
    the ConvNet of those stages on the task's images, the hidden sizes after its flatten."""
    hidden = traits.hidden_sizes(cfg.min_layer_width)
    if cfg.conv:
        return network_layout(task.input_shape, hidden, task.n_outputs, cfg.activation, cfg.conv)
    return Layout((task.n_inputs, *hidden, task.n_outputs), cfg.activation, "identity")


def fresh_row(layout: Layout, seed: int, ident: int) -> np.ndarray:
    """PyTorch-style U(±1/sqrt(fan_in)) initial weights of individual ``ident``: ``(n_params,) float32``."""
    return np.ascontiguousarray(Population.random(layout, 1, seed=derived_seed(seed, ident, SearchPurpose.INIT)).W[0])


def rank(population: list, higher: bool) -> list:
    """Best first; a NaN metric ranks last; ties keep the older (smaller id) first."""

    def key(ind):
        m = ind.metric
        bad = math.isnan(m)
        return (bad, 0.0 if bad else (-m if higher else m), ind.id)

    return sorted(population, key=key)


def breed_children(survivors: list, n_children: int, cfg: HPOConfig, task: Task, generation: int,
                   next_id: int, gene_store: dict | None = None) -> list:
    """``n_children`` untrained children of random pairs of ``survivors`` (ids from ``next_id``).

    Traits: ``traits.breed`` (random subset swapped, two complementary
    children per pair), then ``traits.mutate``.  Weights: a fresh
    initialisation, or with ``cfg.merge`` the merge of both parents' trained
    weights (layers neither parent has keep the fresh initialisation; a ConvNet's
    convolutions come whole from the better-ranked parent, see ``genreg.hpo.merge``).
    """
    rng = generator(cfg.seed, generation, SearchPurpose.BREED)
    ranges = trait_ranges(cfg)
    flip = str.maketrans("ab", "ba")
    children = []
    while len(children) < n_children:
        i, j = rng.choice(len(survivors), size=2, replace=False)
        a, b = survivors[int(i)], survivors[int(j)]
        t1, t2, prov = breed(a.traits, b.traits, rng)
        for traits, provenance in ((t1, "".join(prov)), (t2, "".join(prov).translate(flip))):
            if len(children) == n_children:
                break
            traits, mutated = mutate(traits, rng, ranges, cfg.mutation_rate, gene_store)
            provenance = "".join("m" if name in mutated else p for name, p in zip(TRAITS, provenance))
            ident = next_id + len(children)
            layout = make_layout(traits, task, cfg)
            row = fresh_row(layout, cfg.seed, ident)
            child = Individual(ident, traits, layout, row, generation, (a.id, b.id), provenance)
            if cfg.merge:
                t0 = time.perf_counter()
                child.row = merge_weights(layout, [(a.layout, a.row), (b.layout, b.row)], init_row=row,
                                          conv_from=0 if i < j else 1)  # survivors are ranked best first
                child.merge_seconds = time.perf_counter() - t0
                child.merged = True
            children.append(child)
    return children


class TraitSearch:
    """Survivors by validation metric, children by trait crossover and mutation (``AskTell``).

    task: the search's data (its ends shape every network); higher: whether a larger
    metric is better; gene_store: the trait store of ``mutation = gene_store`` (else None).
    These are fixed for a run; everything that changes is in the ``SearchState``.
    """

    lamarckian = True  # the evaluator trains every candidate's row in place

    def __init__(self, task: Task, higher: bool, gene_store: dict | None = None):
        self.task, self.higher, self.gene_store = task, higher, gene_store

    @staticmethod
    def n_survivors(cfg: HPOConfig) -> int:
        return int(round(cfg.population * cfg.survivor_fraction))

    def init(self, cfg: HPOConfig) -> SearchState:
        """Founders: ``cfg.population`` individuals with random traits and fresh weights (untrained)."""
        rng = generator(cfg.seed, 0, SearchPurpose.TRAITS)
        ranges = trait_ranges(cfg)
        population = []
        for ident in range(cfg.population):
            traits = random_traits(rng, ranges)
            layout = make_layout(traits, self.task, cfg)
            population.append(Individual(ident, traits, layout, fresh_row(layout, cfg.seed, ident), 0))
        return SearchState(0, population, cfg.population)

    def survivors(self, state: SearchState, cfg: HPOConfig) -> list:
        """The best ``survivor_fraction`` of ``state.population``, best first."""
        return rank(state.population, self.higher)[:self.n_survivors(cfg)]

    def ask(self, state: SearchState, cfg: HPOConfig = None) -> list:
        """The individuals to evaluate: the founders (generation 0), else the survivors' children."""
        if state.generation == 0:
            return state.population
        return breed_children(self.survivors(state, cfg), cfg.population - self.n_survivors(cfg), cfg, self.task,
                              state.generation, state.next_id, self.gene_store)

    def tell(self, state: SearchState, candidates: list, evaluation, cfg: HPOConfig) -> SearchState:
        """The next state: the survivors (none at generation 0) then the evaluated ``candidates``.

        evaluation: ``(C,)`` the candidates' validation metrics (each candidate holds its own too).
        """
        if len(evaluation) != len(candidates):
            raise ValueError(f"{len(evaluation)} evaluations for {len(candidates)} candidates")
        if state.generation == 0:
            return SearchState(1, list(candidates), state.next_id)
        return SearchState(state.generation + 1, self.survivors(state, cfg) + list(candidates),
                           state.next_id + len(candidates))
