"""The GENREG strategy (genreg.strategies.genreg): trust scoring, breeding, elites, the noise anneal.

Breeding invariants are checked on hand-made states with small layouts (no data
needed), mutation positions and crossovers against their twins in ``naive.py``
with the documented stream keys (the twins are checked against the kernels in
``test_kernels_variation.py`` and ``test_naive_twins.py``).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest

import naive
from genreg.errors import ConfigError
from genreg.network.forward import brood_predict, population_predict
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.runs.evolve import start_run
from genreg.runs.history import read_history
from genreg.strategies.base import Evaluation, EvolutionState, ranking
from genreg.strategies.config import Config, from_mapping
from genreg.strategies.genreg import Genreg
from genreg.streams import Purpose
from helpers import mutation_positions, TINY, hand_made_state


@pytest.mark.parametrize("decay, reward, penalty", [(0.2, 10.0, -1.5), (0.5, 4.0, -2.25), (0.0, 1.0, 0.0)])
def test_genreg_trust_update_exact(decay, reward, penalty):
    cfg = from_mapping({"trust_decay": decay, "correct_reward": reward, "wrong_penalty": penalty})
    state = hand_made_state(12)
    rng = np.random.default_rng(9)
    trust0 = rng.normal(0.0, 50.0, size=12)
    state.population.trust = trust0.copy()
    n_images = 200
    n_correct = rng.integers(0, n_images + 1, size=12)
    got = Genreg().score(state, Evaluation(n_images, n_correct=n_correct), cfg)
    expected = naive.trust_update(trust0, n_correct, n_images, decay, reward, penalty)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(state.population.trust, expected)
    # a second episode compounds the decay
    got2 = Genreg().score(state, Evaluation(n_images, n_correct=n_correct), cfg)
    np.testing.assert_array_equal(got2, naive.trust_update(expected, n_correct, n_images, decay, reward, penalty))


@pytest.mark.parametrize("new_size", [100, 130, 60])
def test_genreg_breeding_invariants(new_size):
    """Mutation-only breeding (crossover = "none"): each child is its parent plus its mutation streams."""
    P = 100
    cfg = from_mapping({"population": new_size, "seed": 5, "elites": 1, "crossover": "none"})
    state = hand_made_state(P)
    old = state.population
    W0, trust0, ids0 = old.W.copy(), old.trust.copy(), old.ids.copy()
    row_of = {int(i): r for r, i in enumerate(ids0)}

    new_state = Genreg().breed(state, cfg)
    new = new_state.population
    g = state.generation
    n = TINY.n_params
    # children come as a brood (parents' rows + mutation streams), built on demand
    assert new.W is None and new.brood.size == new_size
    new.build()

    assert new_state.generation == g + 1
    assert new.size == new_size and new.W.shape == (new_size, n)
    # the old population is not modified
    assert old.W.tobytes() == W0.tobytes()
    # fresh, unique ids continuing from next_id; founders' ids are not reused
    np.testing.assert_array_equal(new.ids, 1000 + P + np.arange(new_size))
    assert new.next_id == 1000 + P + new_size
    assert not set(new.ids.tolist()) & set(ids0.tolist())
    np.testing.assert_array_equal(new.age, 0)
    # every parent is a survivor: the top ceil(0.2 * P) by trust
    order = np.argsort(-trust0, kind="stable")
    survivors = set(ids0[order[: math.ceil(0.2 * P)]].tolist())
    assert set(new.parent_ids.tolist()) <= survivors
    # survivors with more trust have more children on average
    counts = {s: int(np.sum(new.parent_ids == s)) for s in survivors}
    top_half = [counts[int(ids0[r])] for r in order[:10]]
    bottom_half = [counts[int(ids0[r])] for r in order[10:20]]
    assert sum(top_half) > sum(bottom_half)
    # inherited trust
    parent_rows = np.array([row_of[int(p)] for p in new.parent_ids])
    np.testing.assert_array_equal(new.trust, 0.03 * trust0[parent_rows])
    # the elite: an unmutated copy of the best genome
    best = int(np.argmax(trust0))
    assert new.parent_ids[0] == ids0[best]
    assert new.W[0].tobytes() == W0[best].tobytes()
    # the other children: parent + child mutation (+ base mutation for some)
    fractions, with_base = [], 0
    for s in range(1, new_size):
        diff = set(np.flatnonzero(new.W[s] != W0[parent_rows[s]]).tolist())
        child = mutation_positions(cfg.seed, g, s, Purpose.CHILD_MUTATION, cfg.child_mutation_rate, n)
        base = mutation_positions(cfg.seed, g, s, Purpose.BASE_MUTATION, cfg.base_mutation_rate, n)
        assert diff <= child | base, f"child {s} changed entries no stream chose"
        assert len(child - diff) <= 1, f"child {s} lost its child mutation"
        if diff - child:
            with_base += 1
        fractions.append(len(diff) / n)
    n_children = new_size - 1
    assert abs(np.mean(fractions) - (0.07 + 0.1 * 0.08)) < 0.02
    # base mutation touches about base_mutation_share of the children
    expected = cfg.base_mutation_share * n_children
    assert abs(with_base - expected) < 4 * math.sqrt(n_children * 0.1 * 0.9) + 1


@pytest.mark.parametrize("crossover", ["mask", "gene"])
def test_genreg_crossover_breeding(crossover):
    """With crossover each child crosses two trust-weighted survivors: every unmutated entry
    comes from one of them, both contribute, and it starts with 3% of their mean trust."""
    P = 60
    cfg = from_mapping({"population": P, "seed": 5, "crossover": crossover, "child_mutation_rate": 0.0,
                        "base_mutation_rate": 0.0, "gene_block_rows": 1})
    state = hand_made_state(P)
    W0, trust0 = state.population.W.copy(), state.population.trust.copy()
    new = Genreg().breed(state, cfg).population
    brood = new.brood
    assert brood.crossover == crossover
    survivors = np.argsort(-trust0, kind="stable")[: math.ceil(0.2 * P)]
    pa, pb = survivors[brood.parents], survivors[brood.second]
    np.testing.assert_array_equal(new.parent_ids, state.population.ids[pa])
    assert np.mean(pa != pb) > 0.5  # second parents are drawn, not copied
    np.testing.assert_allclose(new.trust, 0.03 * (trust0[pa] + trust0[pb]) / 2, rtol=1e-15)
    new.build()
    assert new.W[0].tobytes() == W0[int(np.argmax(trust0))].tobytes()  # the elite
    from_a = new.W == W0[pa]
    assert np.all(from_a | (new.W == W0[pb]))
    mixed = [s for s in range(1, P) if pa[s] != pb[s]]
    shares = from_a[mixed].mean(axis=1)
    assert np.all((shares > 0) & (shares < 1)) if crossover == "mask" else np.mean((shares > 0) & (shares < 1)) > 0.8


def test_genreg_breeding_is_deterministic_and_seeded():
    cfg = from_mapping({"population": 30, "seed": 2})
    a, b, c = (Genreg().breed(hand_made_state(30), config).population for config in (cfg, cfg, cfg.replace(seed=3)))
    for pop in (a, b, c):
        pop.build()
    assert a.W.tobytes() == b.W.tobytes()
    np.testing.assert_array_equal(a.parent_ids, b.parent_ids)
    assert a.W.tobytes() != c.W.tobytes()


def test_brood_scores_and_breeds_as_its_built_rows(mnist):
    """A GENREG generation held as a brood gives what its built rows give: scores, genomes, next brood."""
    cfg = from_mapping({"population": 24, "seed": 3, "hidden_sizes": [16]})
    layout = Layout((784, 16, 10), "tanh")
    pop = Population.random(layout, 24, seed=3)
    pop.trust = np.random.default_rng(0).normal(size=24)
    lazy = Genreg().breed(EvolutionState(pop, generation=7), cfg)
    built = copy.deepcopy(lazy)
    built.population.build()
    assert lazy.population.W is None and built.population.W is not None
    X, labels = mnist.train.images[:40], mnist.train.labels[:40]
    got = brood_predict(layout, lazy.population.brood, X, labels, 10)
    want = population_predict(layout, built.population.W, X, labels, 10)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    rows = [5, 0, 23]
    assert lazy.population.genomes(rows).tobytes() == built.population.W[rows].tobytes()
    for state in (lazy, built):
        state.population.trust = got[1].astype(np.float64)
    again_lazy, again_built = (Genreg().breed(s, cfg).population for s in (lazy, built))
    assert again_lazy.build().tobytes() == again_built.build().tobytes()
    np.testing.assert_array_equal(again_lazy.parent_ids, again_built.parent_ids)


@pytest.mark.parametrize("elites", [0, 3])
def test_genreg_elites(elites):
    cfg = from_mapping({"population": 20, "elites": elites})
    state = hand_made_state(20)
    W0, trust0 = state.population.W.copy(), state.population.trust.copy()
    new = Genreg().breed(state, cfg).population
    new.build()
    order = ranking(trust0)
    for e in range(elites):
        assert new.W[e].tobytes() == W0[order[e]].tobytes()
        assert new.parent_ids[e] == state.population.ids[order[e]]
    # the first non-elite child is mutated
    r = int(np.flatnonzero(state.population.ids == new.parent_ids[elites])[0])
    assert np.any(new.W[elites] != W0[r])


def test_noise_scale_constant_by_default_and_geometric_anneal():
    cfg = Config()
    assert [Genreg.noise_scale(g, cfg) for g in (0, 300, 599)] == [cfg.mutation_scale] * 3
    cfg = from_mapping(dict(mutation_scale=0.05, mutation_scale_end=0.01, generations=600))
    scales = np.array([Genreg.noise_scale(g, cfg) for g in range(600)])
    assert scales[0] == pytest.approx(0.05) and scales[-1] == pytest.approx(0.01)
    assert np.all(np.diff(scales) < 0)
    # geometric: constant ratio between successive generations
    np.testing.assert_allclose(scales[1:] / scales[:-1], (0.01 / 0.05) ** (1 / 599), rtol=1e-12)
    with pytest.raises(ConfigError, match="mutation_scale_end"):
        from_mapping(dict(mutation_scale_end=-0.1))


def test_annealed_run_records_the_scale_it_used(tmp_path, mnist_dir):
    cfg = from_mapping(dict(hidden_sizes=[8], population=10, samples_per_class=2, generations=5, validation_size=500,
                            validation_every=0, checkpoint_every=5, mutation_scale=0.08, mutation_scale_end=0.02))
    start_run(cfg, tmp_path, mnist_dir, progress=False)
    recorded = read_history(tmp_path / "metrics.csv")["mutation_scale"]
    np.testing.assert_allclose(recorded, [Genreg.noise_scale(g, cfg) for g in range(5)])
