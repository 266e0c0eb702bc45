"""The classic GA (genreg.strategies.ga): breeding, selection, the adaptive mutation scale, scores.

Breeding invariants are checked on hand-made states with small layouts (no data
needed), mutation positions and crossovers against their twins in ``naive.py``
with the documented stream keys (the twins are checked against the kernels in
``test_kernels_variation.py`` and ``test_naive_twins.py``).
"""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.errors import ConfigError
from genreg.network.variation import gene_bounds
from genreg.runs.evolve import start_run
from genreg.runs.history import read_history
from genreg.strategies.base import Evaluation, ranking
from genreg.strategies.config import from_mapping
from genreg.strategies.ga import ClassicGA
from genreg.streams import Purpose
from helpers import small_cfg, mutation_positions, TINY, ga_state


@pytest.mark.parametrize("crossover, block_rows", [("mask", 0), ("gene", 0), ("gene", 2), ("none", 0)])
def test_ga_breeding_invariants(crossover, block_rows):
    P = 30
    cfg = from_mapping({"strategy": "ga", "population": P, "elites": 2, "crossover": crossover,
                        "gene_block_rows": block_rows, "seed": 4})
    state = ga_state(P)
    old = state.population
    W0, fit0, ids0 = old.W.copy(), old.trust.copy(), old.ids.copy()
    new_state = ClassicGA().breed(state, cfg)
    new = new_state.population
    g, n = state.generation, TINY.n_params

    assert new.size == P and new_state.generation == g + 1
    assert old.W.tobytes() == W0.tobytes()
    order = ranking(fit0)
    # elites carried over unchanged, with their ids, fitness and lineage
    for e in range(2):
        assert new.W[e].tobytes() == W0[order[e]].tobytes()
        assert new.ids[e] == ids0[order[e]]
        assert new.trust[e] == fit0[order[e]]
    np.testing.assert_array_equal(new.ids[2:], old.next_id + np.arange(P - 2))
    assert np.unique(new.ids).size == P

    bounds = gene_bounds(TINY, block_rows)
    for s in range(2, P):
        a = int(np.flatnonzero(ids0 == new.parent_ids[s])[0])
        assert new.trust[s] == fit0[a]
        child = new.W[s]
        # the second parent: the row that explains the most entries not from a
        mismatches = [np.count_nonzero((child != W0[a]) & (child != W0[b])) for b in range(P)]
        b = a if mismatches[a] == min(mismatches) else int(np.argmin(mismatches))  # a self-pair explains all
        mutated = mutation_positions(cfg.seed, g, s, Purpose.CHILD_MUTATION, cfg.ga_mutation_rate, n)
        key = [naive.stream_key(cfg.seed, g, s, int(Purpose.CROSSOVER))]
        if crossover == "mask":
            expected = naive.mask_crossover(W0, [a], [b], key)[0]
        elif crossover == "gene":
            expected = naive.gene_crossover(W0, [a], [b], bounds, key)[0]
        else:
            expected = W0[a]
        diff = set(np.flatnonzero(child != expected).tolist())
        assert diff <= mutated, f"child {s}: entries from neither parent nor mutation"
        assert len(mutated - diff) <= 1
        keep = np.setdiff1d(np.arange(n), sorted(mutated))
        np.testing.assert_array_equal(child[keep], expected[keep])


@pytest.mark.parametrize("selection", ["rank", "roulette", "tournament"])
def test_ga_selection_prefers_fitter_parents(selection):
    cfg = from_mapping({"strategy": "ga", "selection": selection, "tournament_size": 3})
    P = 50
    fitness = np.random.default_rng(0).permutation(np.linspace(0.0, 1.0, P))
    picks = ClassicGA().pick(fitness, 20_000, np.random.default_rng(1), cfg)
    assert picks.shape == (20_000,) and picks.min() >= 0 and picks.max() < P
    assert fitness[picks].mean() > fitness.mean() + 0.1
    best, worst = int(np.argmax(fitness)), int(np.argmin(fitness))
    assert np.sum(picks == best) > 3 * np.sum(picks == worst)
    # the picks are random, not always the best
    assert np.unique(picks).size > P // 3


def test_ga_roulette_never_picks_nan():
    cfg = from_mapping({"strategy": "ga", "selection": "roulette"})
    fitness = np.linspace(0.0, 1.0, 10)
    fitness[3] = np.nan
    picks = ClassicGA().pick(fitness, 5000, np.random.default_rng(2), cfg)
    assert not np.any(picks == 3)


def _with_spread(P: int, spread: float) -> np.ndarray:
    z = np.random.default_rng(8).normal(size=P)
    z = (z - z.mean()) / z.std()
    return 0.5 + spread * z


def test_ga_mutation_scale_shrinks_as_spread_collapses():
    cfg = from_mapping({"strategy": "ga", "ga_mutation_scale": 0.05, "ga_mutation_scale_end": 0.0, "adapt_min": 0.1})
    state = ga_state(20)
    state.initial_spread = 0.2
    ga = ClassicGA()
    scales = []
    for spread in (0.2, 0.1, 0.05, 0.01, 0.0):
        state.population.trust = _with_spread(20, spread)
        scales.append(ga.mutation_scale(state, cfg))
    assert scales[0] == pytest.approx(0.05, rel=1e-9)
    assert scales[1] == pytest.approx(0.025, rel=1e-9)
    assert all(x > y for x, y in zip(scales[:3], scales[1:4]))
    assert scales[3] == pytest.approx(0.005, rel=1e-9) and scales[4] == pytest.approx(0.005, rel=1e-9)  # adapt_min
    state.mutation_multiplier = 2.0
    state.population.trust = _with_spread(20, 0.1)
    assert ga.mutation_scale(state, cfg) == pytest.approx(0.05, rel=1e-9)


def test_ga_mutation_scale_follows_the_schedule_times_adaptation():
    cfg = from_mapping({"strategy": "ga", "ga_mutation_scale": 0.05, "ga_mutation_scale_end": 0.01,
                        "generations": 101, "adapt_min": 0.1})
    state = ga_state(20)
    state.initial_spread = 0.2
    state.population.trust = _with_spread(20, 0.2)  # no shrinking from the spread
    ga = ClassicGA()
    scales = []
    for g in range(101):
        state.generation = g
        scales.append(ga.mutation_scale(state, cfg))
    assert scales[0] == pytest.approx(0.05, rel=1e-12) and scales[50] == pytest.approx(0.05 * 0.2 ** 0.5, rel=1e-12)
    assert scales[100] == pytest.approx(0.01, rel=1e-12)
    np.testing.assert_allclose(np.array(scales[1:]) / scales[:-1], 0.2 ** (1 / 100), rtol=1e-12)
    state.population.trust = _with_spread(20, 0.1)  # the spread halves: so does the scheduled scale
    assert ga.mutation_scale(state, cfg) == pytest.approx(0.005, rel=1e-12)
    assert ga.mutation_scale(state, cfg.replace(ga_mutation_scale_end=0.0)) == pytest.approx(0.025, rel=1e-12)
    with pytest.raises(ConfigError, match="ga_mutation_scale_end"):
        from_mapping(dict(ga_mutation_scale_end=-1.0))


def test_ga_breed_records_initial_spread_and_shrinks():
    cfg = from_mapping({"strategy": "ga", "population": 20, "ga_mutation_scale": 0.05, "ga_mutation_scale_end": 0.0})
    ga = ClassicGA()
    state = ga_state(20)
    state.population.trust = _with_spread(20, 0.2)
    state = ga.breed(state, cfg)
    assert state.initial_spread == pytest.approx(0.2, rel=1e-9)
    state.population.trust = _with_spread(20, 0.05) + 0.4  # a new best, spread collapsed
    assert ga.mutation_scale(state, cfg) == pytest.approx(0.0125, rel=1e-9)
    state = ga.breed(state, cfg)
    assert state.initial_spread == pytest.approx(0.2, rel=1e-9) and state.mutation_multiplier == 1.0


def test_ga_mutation_grows_after_stagnation():
    patience, growth = 3, 2.0
    cfg = from_mapping({"strategy": "ga", "population": 20, "stagnation_patience": patience,
                        "stagnation_growth": growth, "ga_mutation_scale": 0.05, "ga_mutation_scale_end": 0.0})
    ga = ClassicGA()
    state = ga_state(20)
    state = ga.breed(state, cfg)
    best = state.best_fitness
    assert best == pytest.approx((20 - 1) / 20) and state.stagnant == 0 and state.mutation_multiplier == 1.0
    seen = []
    for i in range(1, 4 * patience + 1):
        state.population.trust = np.linspace(0.1, best - 0.05, 20)  # no improvement
        state = ga.breed(state, cfg)
        assert state.stagnant == i
        seen.append(state.mutation_multiplier)
    expected = [min(8.0, growth ** (i // patience)) for i in range(1, 4 * patience + 1)]
    assert seen == expected
    assert seen[patience - 2] == 1.0 and seen[patience - 1] == growth  # grows exactly at the patience
    # the grown multiplier enlarges the scale the children get
    state.population.trust = _with_spread(20, state.initial_spread) - 10.0
    assert ga.mutation_scale(state, cfg) == pytest.approx(0.05 * 8.0, rel=1e-9)
    # an improvement resets it
    state.population.trust = np.linspace(0.1, best + 0.01, 20)
    state = ga.breed(state, cfg)
    assert state.stagnant == 0 and state.mutation_multiplier == 1.0 and state.best_fitness == pytest.approx(best + 0.01)


def test_ga_scores():
    ga = ClassicGA()
    state = ga_state(4)
    n_correct = np.array([3, 0, 10, 7])
    acc = ga.score(state, Evaluation(10, n_correct=n_correct), from_mapping({"strategy": "ga"}))
    np.testing.assert_array_equal(acc, n_correct / 10)
    loss = np.array([0.5, 2.0, 0.1, 1.0])
    neg = ga.score(state, Evaluation(10, n_correct=n_correct, loss=loss), from_mapping({"strategy": "ga", "fitness": "neg_loss"}))
    np.testing.assert_array_equal(neg, -loss)


def test_ga_metrics_record_the_mutation_scale_used(tmp_path, mnist_dir, monkeypatch):
    import genreg.strategies.ga as strategies

    used = []
    real = strategies.Brood

    class Spy(real):
        def __post_init__(self):
            super().__post_init__()
            used.append(self.scale)  # the noise scale the children are mutated with

    monkeypatch.setattr(strategies, "Brood", Spy)
    cfg = small_cfg(strategy="ga", generations=12, stagnation_patience=1, stagnation_growth=2.0)
    start_run(cfg, tmp_path, mnist_dir, progress=False)
    assert len(used) == 12
    recorded = read_history(tmp_path / "metrics.csv")["mutation_scale"]
    assert recorded.tolist() == pytest.approx(used, rel=1e-12)
