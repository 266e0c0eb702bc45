"""The ask/tell protocol (genreg.strategies.base.AskTell): GENREG, the GA, the hybrid recombination and the
trait search each go through ask -> evaluate -> tell, and give what they gave before the protocol.

The hybrid and search references below are the generation steps as they were written before
``HybridRecombination`` and ``TraitSearch`` existed (variation, evaluation and selection in one function).
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from genreg.hpo.config import hpo_from_mapping
from genreg.hpo.data import search_task
from genreg.hpo.rundir import Individual
from genreg.hpo.search import evaluate_candidates, evaluate_fitness, search_metric
from genreg.hpo.strategy import SearchState
from genreg.hpo.strategy import TraitSearch, breed_children, fresh_row, make_layout, rank
from genreg.hpo.traits import make_gene_store, random_traits, trait_ranges
from genreg.hybrid.config import from_mapping as hybrid_config
from genreg.hybrid.recombination import HybridData, evaluate_pool, step, train_pool
from genreg.hybrid.strategy import fresh_networks
from genreg.hybrid.strategy import HybridRecombination, HybridState, breed, founders
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.strategies import strategies
from genreg.strategies.base import AskTell, Evaluation, ask_tell, ranking
from genreg.strategies.config import from_mapping
from genreg.strategies.ga import ClassicGA
from genreg.strategies.genreg import Genreg
from genreg.streams import SearchPurpose, generator
from helpers import ga_state, hand_made_state


def same_population(a: Population, b: Population) -> None:
    assert a.build().tobytes() == b.build().tobytes()
    for name in ("trust", "ids", "parent_ids", "age"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert a.next_id == b.next_id


def test_every_strategy_has_the_ask_tell_shape():
    for strategy in (Genreg(), ClassicGA(), HybridRecombination(), TraitSearch(None, True),
                     *(cls() for name, cls in strategies().items() if name not in ("ga", "genreg"))):
        assert isinstance(strategy, AskTell)
    assert HybridRecombination.lamarckian and TraitSearch.lamarckian and not Genreg.lamarckian
    # the hybrid and the search are not run by genreg evolve
    assert sorted(strategies()) == ["ga", "genreg", "openai-es", "pgpe", "snes"]


# -- GENREG and the GA: tell = score + breed ----------------------------------------------------
@pytest.mark.parametrize("name", ["genreg", "ga"])
def test_tell_is_score_then_breed(name):
    cls, make = (Genreg, lambda: hand_made_state(30)) if name == "genreg" else (ClassicGA, lambda: ga_state(30))
    cfg = from_mapping({"strategy": name, "population": 30, "seed": 5, "elites": 2})
    n_correct = np.random.default_rng(2).integers(0, 101, size=30)
    evaluation = Evaluation(100, n_correct=n_correct, loss=np.linspace(0.5, 2.0, 30))

    before = make()
    cls().score(before, evaluation, cfg)
    expected = cls().breed(before, cfg)

    state, candidates, got_evaluation = ask_tell(cls(), make(), lambda pop: evaluation, cfg)
    assert got_evaluation is evaluation and candidates.size == 30
    assert state.generation == expected.generation
    assert state.scalars() == expected.scalars()
    same_population(state.population, expected.population)


# -- hybrid: ask -> evaluate_pool -> tell = the previous step ------------------------------------
def previous_hybrid_step(state: HybridState, cfg, data: HybridData) -> HybridState:
    """``recombination.step`` before the protocol (metrics left out)."""
    pop = state.population
    layout = pop.layout
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
    fresh = fresh_networks(cfg, layout, g, cfg.n_fresh)
    fresh_ids = next_id + np.arange(fresh.shape[0])
    next_id += fresh.shape[0]
    W = np.ascontiguousarray(np.concatenate([children, fresh]))
    fitness, loss = train_pool(W, layout, data, cfg, g)
    keep = ranking(fitness)[: cfg.population]
    ids = np.concatenate([child_ids, fresh_ids]).astype(np.int64)
    parents = np.concatenate([parent_ids, np.full(fresh.shape[0], -1)]).astype(np.int64)
    seconds = np.concatenate([second_ids, np.full(fresh.shape[0], -1)]).astype(np.int64)
    new = Population(layout=layout, W=np.ascontiguousarray(W[keep]), trust=fitness[keep].astype(np.float64),
                     ids=ids[keep], parent_ids=parents[keep], age=np.zeros(keep.size, dtype=np.int32),
                     next_id=int(next_id))
    return HybridState(new, g, seconds[keep])


@pytest.fixture(scope="module")
def tiny_hybrid():
    """A 20-input, 4-class problem with some signal; a 20-8-4 network; a pool of 5 + 1 fresh."""
    rng = np.random.default_rng(0)
    X = rng.random((300, 20), dtype=np.float32)
    y = (X[:, :4].argmax(axis=1)).astype(np.int64)
    data = HybridData(X[:200], y[:200], X[200:], y[200:])
    cfg = hybrid_config({"population": 5, "generations": 3, "workers": 2, "lr": 0.1, "batch_size": 20,
                         "fresh_fraction": 0.2, "seed": 3})
    return cfg, data, Layout((20, 8, 4))


def test_hybrid_ask_tell_equals_the_previous_step(tiny_hybrid):
    cfg, data, layout = tiny_hybrid
    strategy = HybridRecombination()
    old, new, stepped = founders(cfg, layout), strategy.init(layout, cfg), founders(cfg, layout)
    same_population(old.population, new.population)
    for g in range(1, 4):
        old = previous_hybrid_step(old, cfg, data)
        new, pool, evaluation = ask_tell(strategy, new, lambda p: evaluate_pool(p, data, cfg), cfg)
        stepped, record = step(stepped, cfg, data)
        assert pool.W.shape[0] == cfg.population + cfg.n_fresh and pool.generation == g
        for state in (new, stepped):
            assert state.generation == old.generation == g
            same_population(state.population, old.population)
            assert state.second_parent_ids.tobytes() == old.second_parent_ids.tobytes()
        assert record["best_val_accuracy"] == old.population.trust[0]
        assert record["pool_size"] == pool.W.shape[0]


# -- trait search: ask -> evaluate_candidates -> tell = the previous HPOMode.step ---------------------
def previous_founders(cfg, task) -> SearchState:
    rng = generator(cfg.seed, 0, SearchPurpose.TRAITS)
    ranges = trait_ranges(cfg)
    population = []
    for ident in range(cfg.population):
        traits = random_traits(rng, ranges)
        layout = make_layout(traits, task, cfg)
        population.append(Individual(ident, traits, layout, fresh_row(layout, cfg.seed, ident), 0))
    return SearchState(0, population, cfg.population)


def previous_search_step(state: SearchState, cfg, task, metric, gene_store) -> SearchState:
    """``HPOMode.step`` before the protocol (files and metrics left out)."""
    g, population, next_id = state.generation, state.population, state.next_id
    n_keep = int(round(cfg.population * cfg.survivor_fraction))
    if g == 0:
        todo = population
    else:
        survivors = rank(population, metric.higher_is_better)[:n_keep]
        todo = breed_children(survivors, cfg.population - n_keep, cfg, task, g, next_id, gene_store)
        next_id += len(todo)
        population = survivors + todo
    for ind in todo:
        evaluate_fitness(ind, task, cfg, metric)
    return SearchState(g + 1, population, next_id)


def same_individuals(a: list, b: list) -> None:
    assert [i.id for i in a] == [i.id for i in b]
    for x, y in zip(a, b):
        assert x.row.tobytes() == y.row.tobytes()
        assert (x.traits, x.layout, x.parents, x.provenance, x.generation, x.epochs, x.merged) == \
            (y.traits, y.layout, y.parents, y.provenance, y.generation, y.epochs, y.merged)
        assert x.metric == y.metric or (math.isnan(x.metric) and math.isnan(y.metric))


@pytest.mark.parametrize("changes", [{}, {"merge": True, "mutation": "gene_store"}])
def test_search_ask_tell_equals_the_previous_step(changes):
    cfg = hpo_from_mapping({"task": "trig", "population": 6, "generations": 4, "epochs": 3, "trig_samples": 300,
                            **changes})
    task = search_task(cfg)
    metric = search_metric(cfg, task)
    gene_store = (make_gene_store(generator(cfg.seed, 0, SearchPurpose.GENE_STORE), trait_ranges(cfg),
                                  cfg.gene_store_size) if cfg.mutation == "gene_store" else None)
    strategy = TraitSearch(task, metric.higher_is_better, gene_store)
    old, new = previous_founders(cfg, task), strategy.init(cfg)
    same_individuals(new.population, old.population)
    seen = []
    for g in range(4):
        old = previous_search_step(old, cfg, task, metric, gene_store)
        new, candidates, evaluation = ask_tell(
            strategy, new, lambda c: evaluate_candidates(c, task, cfg, metric, on_done=seen.append), cfg)
        assert (new.generation, new.next_id) == (old.generation, old.next_id) == (g + 1, new.next_id)
        assert len(candidates) == (cfg.population if g == 0 else cfg.population - strategy.n_survivors(cfg))
        assert seen[-len(candidates):] == list(candidates)
        np.testing.assert_array_equal(evaluation, [c.metric for c in candidates])
        same_individuals(new.population, old.population)


def test_search_tell_checks_the_evaluation_matches():
    with pytest.raises(ValueError, match="2 evaluations for 1 candidates"):
        TraitSearch(None, True).tell(SearchState(0, [], 0), [object()], np.zeros(2), None)
