"""The evolution engine: config, GENREG and GA strategies, runs on real MNIST, determinism, resume, crashes.

Breeding invariants are checked on hand-made states with small layouts (no data
needed), mutation positions and crossovers against their twins in ``naive.py``
with the documented stream keys (the twins are checked against the kernels in
``test_variation.py`` and ``test_naive_twins.py``).  Runs use the real MNIST
data through ``mnist_dir`` with tiny networks and populations, so the whole
module stays quick.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

import naive
from genreg.cli import main as cli
from genreg.config import load_toml, parse_overrides
from genreg.strategies.config import NETWORK_KEYS, Config, from_mapping
from genreg.errors import CheckpointError, ConfigError
from genreg.network.forward import brood_predict, population_predict
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.runs.evolve import metric_columns, resume_run, start_run
from genreg.strategies.base import Evaluation
from genreg.strategies.ga import GAState
from genreg.runs.store import CheckpointWriter, History, latest_checkpoint, read_checkpoint, read_history, write_checkpoint
from genreg.strategies.ga import ClassicGA
from genreg.strategies.base import EvolutionState, ranking
from genreg.strategies.genreg import Genreg
from genreg.network.variation import gene_bounds
from genreg.streams import Purpose

TIMING = ("eval_seconds", "breed_seconds")
#: metrics.csv's columns for MNIST (10 classes).
METRICS = ["generation", "best_fitness", "mean_fitness", "best_accuracy", "mean_accuracy", "validation_accuracy",
           *[f"class_{d}" for d in range(10)], "eval_seconds", "breed_seconds", "mutation_scale"]
#: A tiny run: 784-16-10, 20 genomes, 30-image episodes.
SMALL = dict(population=20, hidden_sizes=[16], samples_per_class=3, validation_size=1000)


# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------


def small_cfg(**changes) -> Config:
    return from_mapping({**SMALL, **changes})


def metrics_without_timing(run_dir) -> list[list[str]]:
    """metrics.csv as strings, timing columns removed (everything else must match exactly)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header == list(METRICS)
    keep = [i for i, name in enumerate(header) if name not in TIMING]
    return [[row[i] for i in keep] for row in rows if row]


def final_state(run_dir) -> EvolutionState:
    _, state, _ = latest_checkpoint(run_dir)
    return state


def assert_same_state(s1: EvolutionState, s2: EvolutionState) -> None:
    p1, p2 = s1.population, s2.population
    assert s1.generation == s2.generation
    assert p1.W.tobytes() == p2.W.tobytes()
    for name in ("trust", "ids", "parent_ids", "age"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name), err_msg=name)
    assert p1.next_id == p2.next_id
    for key, value in s1.scalars().items():
        other = s2.scalars()[key]
        assert value == other or (math.isnan(value) and math.isnan(other)), key


def mutation_positions(seed: int, generation: int, slot: int, purpose: Purpose, rate: float, n: int) -> set:
    """Entries the stream (seed, generation, slot, purpose) mutates at ``rate`` in a row of n."""
    _, positions, _ = naive.mutate_row(np.zeros(n, np.float32), rate, 1.0,
                                       naive.stream_key(seed, generation, slot, int(purpose)))
    return set(positions.tolist())


def last_validation(run_dir) -> tuple[float, float]:
    """(first, last) non-NaN validation accuracy of the best genome."""
    val = read_history(Path(run_dir) / "metrics.csv")["validation_accuracy"]
    val = val[~np.isnan(val)]
    assert val.size >= 2
    return float(val[0]), float(val[-1])


def genreg_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "genreg", *map(str, args)]


def small_cli_args(out, data_dir, generations, *extra) -> list[str]:
    return genreg_cmd("evolve", "--out", out, "--generations", generations, "--no-progress",
                      "--set", "population=20", "--set", "hidden_sizes=[16]", "--set", "samples_per_class=3",
                      "--set", "validation_size=1000", "--data-dir", data_dir, *extra)


def wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def checkpoint_generations(run_dir) -> list[int]:
    return sorted(int(p.name[9:14]) for p in (Path(run_dir) / "checkpoints").glob("state_gen*.h5"))


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def test_defaults_validate_and_reproduce_the_published_protocol():
    cfg = Config().validate()
    assert from_mapping({}) == cfg
    assert cfg.population == 200
    assert cfg.hidden_sizes == (64,)
    assert cfg.activation == "tanh"
    assert cfg.samples_per_class == 20
    assert cfg.correct_reward == 10.0
    assert cfg.wrong_penalty == -1.5
    assert cfg.trust_decay == 0.2
    assert cfg.survival_cutoff == 0.2
    assert cfg.trust_inheritance == 0.03
    assert cfg.child_mutation_rate == 0.07
    assert cfg.base_mutation_rate == 0.08
    assert cfg.strategy == "genreg"
    assert set(NETWORK_KEYS) == {"hidden_sizes", "activation"}


@pytest.mark.parametrize(
    "key, value",
    [
        ("child_mutation_rate", -0.01),
        ("base_mutation_rate", -0.5),
        ("ga_mutation_rate", -1.0),
        ("base_mutation_share", -0.1),
        ("child_mutation_rate", 1.5),
        ("mutation_scale", -0.03),
        ("survival_cutoff", 0),
        ("survival_cutoff", 1.5),
        ("population", 0),
        ("population", "20"),
        ("strategy", "annealing"),
        ("selection", "lottery"),
        ("crossover", "half"),
        ("activation", "gelu"),
        ("hidden_sizes", [0]),
        ("hidden_sizes", "64"),
        ("trust_decay", 1.2),
        ("elites", 200),
        ("generations", 2.5),
        ("seed", True),
    ],
)
def test_invalid_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        from_mapping({key: value})


def test_unknown_key_is_refused_naming_it():
    with pytest.raises(ConfigError, match="populaton"):
        from_mapping({"populaton": 100})


def test_ints_are_accepted_for_float_keys_and_replace_validates():
    cfg = from_mapping({"correct_reward": 12, "hidden_sizes": 32})
    assert cfg.correct_reward == 12.0 and isinstance(cfg.correct_reward, float)
    assert cfg.hidden_sizes == (32,)
    with pytest.raises(ConfigError, match="survival_cutoff"):
        cfg.replace(survival_cutoff=0.0)


def test_parse_overrides_types():
    got = parse_overrides([
        "population=30", "mutation_scale=0.1", "hidden_sizes=[32, 16]", "strategy=ga",
        'selection="rank"', " trust_decay = 0.5 ", "seed=7",
    ])
    assert got == {"population": 30, "mutation_scale": 0.1, "hidden_sizes": [32, 16], "strategy": "ga",
                   "selection": "rank", "trust_decay": 0.5, "seed": 7}
    assert isinstance(got["population"], int) and isinstance(got["mutation_scale"], float)
    cfg = from_mapping(got)
    assert cfg.hidden_sizes == (32, 16) and cfg.strategy == "ga"
    assert parse_overrides(None) == {}
    for bad in ("population", "=3"):
        with pytest.raises(ConfigError, match="key=value"):
            parse_overrides([bad])


def test_load_toml_bad_file_names_it(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("population = \nhidden_sizes = [64\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="missing.toml"):
        load_toml(tmp_path / "missing.toml")
    nested = tmp_path / "nested.toml"
    nested.write_text("[genreg]\npopulation = 3\n")
    with pytest.raises(ConfigError, match="nested.toml"):
        load_toml(nested)


def test_to_toml_round_trips(tmp_path):
    cfg = from_mapping({"strategy": "ga", "hidden_sizes": [32, 8], "mutation_scale": 0.125, "population": 31})
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert from_mapping(load_toml(path)) == cfg


# --------------------------------------------------------------------------
# GENREG scoring and breeding
# --------------------------------------------------------------------------

TINY = Layout((50, 8, 10))  # 498 parameters: breeding does not need MNIST-sized genomes


def hand_made_state(P: int, seed: int = 1, generation: int = 4) -> EvolutionState:
    pop = Population.random(TINY, P, seed=seed)
    rng = np.random.default_rng(seed)
    pop.trust = rng.permutation(P) * 2.5 - 10.0  # distinct, some negative
    pop.ids = pop.ids + 1000  # ids are not row numbers
    pop.next_id = 1000 + P
    return EvolutionState(pop, generation=generation)


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


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
@pytest.mark.parametrize("new_size", [30, 10])
def test_population_size_change(strategy, new_size):
    state = ga_state(20) if strategy == "ga" else hand_made_state(20)
    ids0 = state.population.ids.copy()
    cfg = from_mapping({"strategy": strategy, "population": 20}).replace(population=new_size)
    breeder = Genreg() if strategy == "genreg" else ClassicGA()
    new = breeder.breed(state, cfg).population
    assert new.size == new_size and new.genomes(np.arange(new_size)).shape == (new_size, TINY.n_params)
    for name in ("trust", "ids", "parent_ids", "age"):
        assert getattr(new, name).shape == (new_size,), name
    assert np.unique(new.ids).size == new_size
    # children name their parents (GA elites are carried over with their own lineage)
    assert set(new.parent_ids[cfg.elites:].tolist()) <= set(ids0.tolist())
    new.check_finite()
    # and the next generation breeds from the new size
    new.trust = np.arange(new_size, dtype=np.float64) / new_size
    again = breeder.breed(breeder.State(new, generation=5), cfg.replace(population=20)).population
    assert again.size == 20 and set(again.parent_ids[cfg.elites:].tolist()) <= set(new.ids.tolist())


# --------------------------------------------------------------------------
# Classic GA
# --------------------------------------------------------------------------


def ga_state(P: int, seed: int = 3) -> GAState:
    state = GAState(hand_made_state(P, seed=seed).population, generation=4)
    state.population.trust = np.random.default_rng(seed).permutation(P) / P  # accuracies, distinct
    return state


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


# --------------------------------------------------------------------------
# State checkpoints
# --------------------------------------------------------------------------


@pytest.mark.parametrize("scalars", [
    dict(best_fitness=0.25, stagnant=3, mutation_multiplier=1.5, initial_spread=float("nan")),
    dict(best_fitness=-math.inf, stagnant=0, mutation_multiplier=8.0, initial_spread=0.125),
])
def test_checkpoint_round_trip(tmp_path, scalars):
    state = GAState(hand_made_state(9).population, generation=17)
    rng = np.random.default_rng(4)
    state.population.trust = rng.normal(size=9) * 1e3
    state.population.parent_ids = rng.integers(-1, 500, size=9)
    state.population.age = rng.integers(0, 40, size=9).astype(np.int32)
    for k, v in scalars.items():
        setattr(state, k, v)
    cfg = from_mapping({"seed": 11, "strategy": "ga"}).to_dict()
    path = write_checkpoint(tmp_path, state, cfg)
    assert path.name == "state_gen00017.h5"
    back, cfg_back = read_checkpoint(path)
    assert cfg_back == cfg
    assert back.population.layout == TINY
    for name in ("W", "trust", "ids", "parent_ids", "age"):
        a, b = getattr(state.population, name), getattr(back.population, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name
    assert_same_state(state, back)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_checkpoint_writer_writes_a_snapshot_in_the_background(tmp_path):
    """The background writer stores the state as it was at submit (a brood's genomes built as
    rows, the run's brood left alone), runs ``then`` after the file, writes in order and keeps
    the last two."""
    cfg = from_mapping({"population": 12, "seed": 4})
    state = Genreg().breed(hand_made_state(12), cfg)  # a brood
    expected = state.population.genomes(np.arange(12))
    trust = state.population.trust.copy()
    writer = CheckpointWriter(tmp_path)
    done = []
    writer.submit(state, cfg.to_dict(), lambda: done.append(checkpoint_generations(tmp_path)))
    assert state.population.W is None  # still a brood for the run
    state.population.brood.source[:] = 0.0  # the run goes on reusing its buffers
    state.population.trust[:] = 7.0
    changed = state.population.genomes(np.arange(12))
    for g in (6, 7):
        state.generation = g
        writer.submit(state, cfg.to_dict())
    writer.close()
    assert done == [[5]]
    assert checkpoint_generations(tmp_path) == [6, 7]
    back, _ = read_checkpoint(tmp_path / "checkpoints" / "state_gen00007.h5")
    assert back.population.W.tobytes() == changed.tobytes()
    np.testing.assert_array_equal(back.population.trust, 7.0)
    # the first snapshot held the genomes and trust at its submit, before the changes
    writer = CheckpointWriter(tmp_path / "first")
    state = Genreg().breed(hand_made_state(12), cfg)
    writer.submit(state, cfg.to_dict())
    state.population.brood.source[:] = 0.0
    state.population.trust[:] = 7.0
    writer.close()
    back = final_state(tmp_path / "first")
    assert back.population.W.tobytes() == expected.tobytes() and back.generation == 5
    np.testing.assert_array_equal(back.population.trust, trust)


def test_checkpoint_writer_reports_a_failed_write(tmp_path):
    blocked = tmp_path / "run"
    blocked.mkdir()
    (blocked / "checkpoints").write_text("a file where the folder should be")
    writer = CheckpointWriter(blocked)
    writer.submit(hand_made_state(3), Config().to_dict())
    with pytest.raises(OSError):
        writer.close()
    quiet = CheckpointWriter(blocked)
    quiet.submit(hand_made_state(3), Config().to_dict())
    quiet.close(check=False)  # the run is failing already: no second error


def test_checkpoint_newer_format_version_refused(tmp_path):
    state = hand_made_state(3)
    path = write_checkpoint(tmp_path, state, Config().to_dict())
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="no loadable checkpoint"):
        latest_checkpoint(tmp_path)


@pytest.mark.parametrize("reader, fmt", [
    ("genreg.runs.store:read_checkpoint", "genreg.state"),
    ("genreg.hybrid.run:read_state", None),
    ("genreg.hpo.model:load_model", "genreg.hpo_model"),
    ("genreg.hpo.search:read_population", "genreg.hpo_population"),
])
def test_every_hdf5_reader_refuses_a_foreign_or_newer_file_naming_it(tmp_path, reader, fmt):
    """One format gate (``store.check_format``) for all four HDF5 readers."""
    import importlib

    module, name = reader.split(":")
    module = importlib.import_module(module)
    read = getattr(module, name)
    fmt = fmt or module.FORMAT
    path = tmp_path / "file.h5"
    for attrs, message in (({"format": "something else", "format_version": 1}, "is not a genreg"),
                           ({"format": fmt, "format_version": 99}, "version 99")):
        with h5py.File(path, "w") as f:
            f.attrs.update(attrs)
        with pytest.raises(CheckpointError, match=message) as info:
            read(path)
        assert str(path) in str(info.value)


def test_checkpoint_keeps_last_two(tmp_path):
    state = hand_made_state(3)
    for g in (1, 2, 3, 10, 4):
        state.generation = g
        write_checkpoint(tmp_path, state, Config().to_dict())
    assert checkpoint_generations(tmp_path) == [4, 10]  # the two largest generations, not the two newest files
    state = hand_made_state(3)
    other = tmp_path / "b"
    for g in range(5):
        state.generation = g
        write_checkpoint(other, state, Config().to_dict())
    assert checkpoint_generations(other) == [3, 4]
    path, back, _ = latest_checkpoint(other)
    assert path.name == "state_gen00004.h5" and back.generation == 4


def test_checkpoint_order_past_99999_generations(tmp_path):
    state = hand_made_state(3)
    for g in (99998, 99999, 100000):
        state.generation = g
        write_checkpoint(tmp_path, state, Config().to_dict())
    _, back, _ = latest_checkpoint(tmp_path)
    assert back.generation == 100000
    assert len(list((tmp_path / "checkpoints").glob("state_gen*.h5"))) == 2


def test_history_truncate(tmp_path):
    h = History(tmp_path / "m.csv", ["generation", "x"])
    for g in range(5):
        h.append([g, g * 0.5])
    h.close()
    h.truncate(3)
    assert read_history(tmp_path / "m.csv")["generation"].tolist() == [0, 1, 2]


# --------------------------------------------------------------------------
# Runs on real MNIST
# --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
def test_convergence_on_mnist(tmp_path, mnist_dir, strategy):
    """80 generations of a 784-16-10 network, 30 genomes, 100-image episodes, three seeds.

    Random search over as many genomes stays around 0.13-0.18 validation accuracy.
    Over seeds 0-5 both strategies end between 0.28 and 0.44 (mean about 0.36),
    so a mean over three seeds above 0.30 leaves a margin, while a broken engine
    (no selection, no variation, wrong best genome) fails.
    """
    finals = []
    for seed in range(3):
        run = tmp_path / f"seed{seed}"
        cfg = from_mapping(dict(strategy=strategy, crossover="mask", hidden_sizes=[16], population=30,
                                samples_per_class=10, generations=80, validation_size=2000, validation_every=10,
                                checkpoint_every=20, seed=seed))
        state = start_run(cfg, run, mnist_dir, progress=False)
        assert state.generation == 80
        first, last = last_validation(run)
        assert last > first + 0.1, f"{strategy}, seed {seed}: {first:.3f} -> {last:.3f}"
        m = read_history(run / "metrics.csv")
        assert m["generation"].tolist() == list(range(80))
        assert m["best_accuracy"][-10:].mean() > m["best_accuracy"][:10].mean() + 0.1
        finals.append(last)
    assert np.mean(finals) > 0.30, f"{strategy}: final validation accuracies {finals}"
    assert checkpoint_generations(tmp_path / "seed0") == [60, 80]
    assert (tmp_path / "seed0" / "best_genome_mnist_gen00080.pkl").stat().st_size > 0


@pytest.fixture(scope="module")
def determinism_runs(tmp_path_factory, mnist_dir):
    """Two runs with the same config and seed, one with another seed (10 generations each)."""
    root = tmp_path_factory.mktemp("determinism")
    dirs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        dirs[name] = root / name
        start_run(small_cfg(generations=10, seed=seed, validation_every=3), dirs[name], mnist_dir, progress=False)
    return dirs


def test_same_seed_same_run(determinism_runs):
    a, b = determinism_runs["a"], determinism_runs["b"]
    assert metrics_without_timing(a) == metrics_without_timing(b)
    assert (a / "tracked_weights.csv").read_bytes() == (b / "tracked_weights.csv").read_bytes()
    assert (a / "config.toml").read_bytes() == (b / "config.toml").read_bytes()
    assert_same_state(final_state(a), final_state(b))
    assert final_state(a).generation == 10


def test_metrics_csv_byte_equal_except_timing(determinism_runs):
    """Only the two timing columns may differ between identical runs; every other byte is equal."""
    def strip(path):
        text = (path / "metrics.csv").read_text().splitlines()
        header = text[0].split(",")
        idx = [header.index(t) for t in TIMING]
        return [",".join(v for i, v in enumerate(line.split(",")) if i not in idx) for line in text]

    assert strip(determinism_runs["a"]) == strip(determinism_runs["b"])


def test_different_seed_different_run(determinism_runs):
    a, c = determinism_runs["a"], determinism_runs["c"]
    assert metrics_without_timing(a) != metrics_without_timing(c)
    assert final_state(a).population.W.tobytes() != final_state(c).population.W.tobytes()


def test_start_run_refuses_existing_run(determinism_runs, mnist_dir):
    with pytest.raises(ConfigError, match="genreg resume"):
        start_run(small_cfg(generations=2), determinism_runs["a"], mnist_dir, progress=False)


def _cli_run_with_threads(out: Path, data_dir: Path, threads: int) -> None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run(small_cli_args(out, data_dir, 8), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_cli_runs_identical_for_any_thread_count(tmp_path, mnist_dir):
    _cli_run_with_threads(tmp_path / "t1", mnist_dir, 1)
    _cli_run_with_threads(tmp_path / "t2", mnist_dir, 2)
    m1, m2 = metrics_without_timing(tmp_path / "t1"), metrics_without_timing(tmp_path / "t2")
    assert len(m1) == 9
    assert m1 == m2
    assert (tmp_path / "t1" / "tracked_weights.csv").read_bytes() == (tmp_path / "t2" / "tracked_weights.csv").read_bytes()
    assert_same_state(final_state(tmp_path / "t1"), final_state(tmp_path / "t2"))


# -- resume -----------------------------------------------------------------

RESUME = dict(checkpoint_every=5, validation_every=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir) -> Path:
    """12 generations in one go, checkpoint every 5."""
    d = tmp_path_factory.mktemp("resume") / "whole"
    start_run(small_cfg(generations=12, **RESUME), d, mnist_dir, progress=False)
    return d


@pytest.fixture(scope="module")
def seven(tmp_path_factory, mnist_dir) -> Path:
    """The same run stopped after 7 generations (tests copy it before resuming)."""
    d = tmp_path_factory.mktemp("resume") / "seven"
    start_run(small_cfg(generations=7, **RESUME), d, mnist_dir, progress=False)
    return d


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_equals_uninterrupted(tmp_path, seven, uninterrupted, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    assert checkpoint_generations(run) == [5, 7]
    state = resume_run(run, {"generations": 12}, mnist_dir, progress=False)
    assert state.generation == 12
    assert_same_state(final_state(run), final_state(uninterrupted))
    assert metrics_without_timing(run) == metrics_without_timing(uninterrupted)
    assert (run / "tracked_weights.csv").read_bytes() == (uninterrupted / "tracked_weights.csv").read_bytes()
    assert checkpoint_generations(run) == checkpoint_generations(uninterrupted) == [10, 12]
    assert load_toml(run / "config.toml")["generations"] == 12


def test_ga_resume_equals_uninterrupted(tmp_path, mnist_dir):
    """The GA's annealed, adaptive mutation (schedule, best fitness, stagnation, initial
    spread) survives a stop: stopped after one generation and resumed, the run is the one
    that never stopped."""
    cfg = small_cfg(strategy="ga", generations=12, **RESUME)
    assert cfg.ga_mutation_scale_end > 0  # the default schedule is on
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(cfg, whole, mnist_dir, progress=False)
    assert start_run(cfg.replace(max_minutes=1e-9), part, mnist_dir, progress=False).generation == 1
    assert resume_run(part, {"max_minutes": 0.0}, mnist_dir, progress=False).generation == 12
    assert_same_state(final_state(part), final_state(whole))
    assert metrics_without_timing(part) == metrics_without_timing(whole)
    scales = read_history(whole / "metrics.csv")["mutation_scale"]
    schedule = cfg.ga_mutation_scale * (cfg.ga_mutation_scale_end / cfg.ga_mutation_scale) ** (np.arange(12) / 11)
    assert scales[0] == pytest.approx(0.05) and np.all(scales <= schedule * (1 + 1e-12))  # the spread only shrinks it
    assert scales[-1] < 0.3 * scales[0]


@pytest.mark.parametrize("strategy, key, then", [("ga", "ga_mutation_scale_end", 0.0), ("genreg", "crossover", "none")])
def test_a_version_1_run_resumes_as_it_was_made(tmp_path, mnist_dir, strategy, key, then):
    """Checkpoint format 1 predates GENREG's crossover and the GA's anneal: its GENREG runs bred
    from one parent (their config said crossover = "mask", the GA's default, which GENREG then
    ignored) and its GA runs had a constant scale (the key did not exist).  Resumed, such a run
    goes on as the code that wrote it would have, not with the new defaults."""
    old, whole = tmp_path / "old", tmp_path / "whole"
    as_made = dict(strategy=strategy, checkpoint_every=1, **{key: then})
    start_run(small_cfg(generations=3, **as_made), old, mnist_dir, progress=False)
    for path in (old / "checkpoints").glob("*.h5"):  # as version 1 wrote them
        with h5py.File(path, "r+") as f:
            config = json.loads(f.attrs["config"])
            config.pop("ga_mutation_scale_end")
            config["crossover"] = "mask"
            f.attrs["config"] = json.dumps(config)
            f.attrs["format_version"] = 1
    resume_run(old, {"generations": 5}, mnist_dir, progress=False)
    assert load_toml(old / "config.toml")[key] == then
    start_run(small_cfg(generations=5, **as_made), whole, mnist_dir, progress=False)
    assert_same_state(final_state(old), final_state(whole))
    assert metrics_without_timing(old) == metrics_without_timing(whole)


@pytest.mark.parametrize("overrides, what", [({"hidden_sizes": [32]}, "hidden_sizes"),
                                             ({"activation": "relu"}, "activation")])
def test_resume_refuses_network_change(tmp_path, seven, mnist_dir, overrides, what):
    run = copy_run(seven, tmp_path / "run")
    before = (run / "config.toml").read_bytes()
    with pytest.raises(ConfigError, match=what) as info:
        resume_run(run, {"generations": 9, **overrides}, mnist_dir, progress=False)
    assert "shape" in str(info.value) and "784-16-10" in str(info.value)
    assert (run / "config.toml").read_bytes() == before
    assert checkpoint_generations(run) == [5, 7]


def test_resume_same_network_value_is_accepted(tmp_path, seven, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    state = resume_run(run, {"generations": 8, "hidden_sizes": [16], "activation": "tanh"}, mnist_dir, progress=False)
    assert state.generation == 8


def test_resume_with_changed_rates_and_population(tmp_path, seven, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    state = resume_run(run, {"generations": 9, "child_mutation_rate": 0.2, "population": 26}, mnist_dir,
                       progress=False)
    assert state.generation == 9
    saved = load_toml(run / "config.toml")
    assert saved["child_mutation_rate"] == 0.2 and saved["population"] == 26 and saved["generations"] == 9
    _, final, cfg = latest_checkpoint(run)
    assert final.generation == 9 and cfg["child_mutation_rate"] == 0.2
    assert final.population.size == 26
    m = read_history(run / "metrics.csv")
    assert m["generation"].tolist() == list(range(9))


def test_resume_skips_checkpoint_cut_short(tmp_path, seven, uninterrupted, mnist_dir, capsys):
    """A crash while writing: a truncated newest file, a garbage one and a stray .tmp."""
    run = copy_run(seven, tmp_path / "run")
    folder = run / "checkpoints"
    good = (folder / "state_gen00007.h5").read_bytes()
    (folder / "state_gen00009.h5").write_bytes(good[: len(good) // 2])
    (folder / "state_gen00010.h5").write_bytes(os.urandom(4096))
    (folder / "state_gen00011.h5.tmp").write_bytes(good[:1000])
    with pytest.raises(CheckpointError, match="state_gen00009"):
        read_checkpoint(folder / "state_gen00009.h5")
    path, state, _ = latest_checkpoint(run)
    assert path.name == "state_gen00007.h5" and state.generation == 7
    assert "skipped" in capsys.readouterr().out
    state = resume_run(run, {"generations": 12}, mnist_dir, progress=False)
    assert state.generation == 12
    assert_same_state(final_state(run), final_state(uninterrupted))
    assert metrics_without_timing(run) == metrics_without_timing(uninterrupted)


def test_resume_without_checkpoint(tmp_path, mnist_dir):
    with pytest.raises(CheckpointError, match="holds no genreg run"):
        resume_run(tmp_path, {}, mnist_dir, progress=False)


def test_resume_metrics_identical_with_default_validation_every(tmp_path, mnist_dir):
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(small_cfg(generations=12, checkpoint_every=5), whole, mnist_dir, progress=False)
    start_run(small_cfg(generations=7, checkpoint_every=5), part, mnist_dir, progress=False)
    resume_run(part, {"generations": 12}, mnist_dir, progress=False)
    assert_same_state(final_state(part), final_state(whole))  # holds
    assert metrics_without_timing(part) == metrics_without_timing(whole)  # fails at row 6


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


def test_track_weights_larger_than_first_layer(tmp_path, mnist_dir):
    cfg = small_cfg(hidden_sizes=[1], track_weights=1000, generations=1)
    try:
        start_run(cfg, tmp_path, mnist_dir, progress=False)
    except ConfigError as exc:
        assert "track_weights" in str(exc)
    else:
        w = read_history(tmp_path / "tracked_weights.csv")
        assert 1 <= len(w) - 1 <= 784


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, mnist_dir):
    run = tmp_path / "killed"
    proc = subprocess.Popen(small_cli_args(run, mnist_dir, 100_000, "--set", "checkpoint_every=1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: any(g >= 2 for g in checkpoint_generations(run)) if (run / "checkpoints").exists() else False,
                 proc, 120, "the first checkpoints")
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    _, state, _ = latest_checkpoint(run)
    target = state.generation + 3
    resumed = resume_run(run, {"generations": target}, mnist_dir, progress=False)
    assert resumed.generation == target

    whole = tmp_path / "whole"
    start_run(small_cfg(generations=target, checkpoint_every=1), whole, mnist_dir, progress=False)
    assert_same_state(final_state(run), final_state(whole))
    assert metrics_without_timing(run) == metrics_without_timing(whole)


def test_sigint_checkpoints_and_exits_cleanly(tmp_path, mnist_dir):
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(small_cli_args(run, mnist_dir, 100_000, "--set", "checkpoint_every=1000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    try:
        # wait until the loop runs (a generation recorded), so the handler is installed
        wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3, proc, 120,
                 "the first generations")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    text = out + err
    assert "genreg resume" in text
    match = re.search(r"after generation (\d+)", text)
    assert match, text
    g = int(match.group(1))
    path = run / "checkpoints" / f"state_gen{g + 1:05d}.h5"
    assert path.exists()
    state, _ = read_checkpoint(path)
    assert state.generation == g + 1
    assert read_history(metrics)["generation"][-1] == g
    assert (run / f"best_genome_mnist_gen{g + 1:05d}.pkl").exists()


# --------------------------------------------------------------------------
# genreg plot
# --------------------------------------------------------------------------


def test_plot_writes_three_pngs(determinism_runs, tmp_path, capsys):
    assert cli.main(["plot", str(determinism_runs["a"]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("trust_accuracy.png", "per_digit.png", "tracked_weights.png"):
        data = (tmp_path / name).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"wrote {tmp_path / name}" in out


def test_plot_on_empty_dir_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genreg: error:") and "metrics.csv" in err
    assert not list(tmp_path.iterdir())


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


def test_max_minutes_stops_with_a_checkpoint_and_resume_continues(tmp_path, mnist_dir):
    cfg = from_mapping(dict(hidden_sizes=[8], population=10, samples_per_class=2, generations=50, validation_size=500,
                            validation_every=0, checkpoint_every=100, max_minutes=1e-9))
    state = start_run(cfg, tmp_path, mnist_dir, progress=False)
    assert state.generation == 1  # the budget is checked after each generation
    assert checkpoint_generations(tmp_path) == [0, 1]
    assert (tmp_path / "best_genome_mnist_gen00001.pkl").exists()
    state = resume_run(tmp_path, {"max_minutes": 0.0, "generations": 4}, mnist_dir, progress=False)
    assert state.generation == 4
    with pytest.raises(ConfigError, match="max_minutes"):
        from_mapping(dict(max_minutes=-1))


def test_a_new_population_size_is_checked_against_memory(monkeypatch):
    """Breeding checks the memory only when the size changes (e.g. on resume), not every generation."""
    import genreg.network.population as population_module
    from genreg.errors import PopulationError

    cfg = from_mapping({"population": 20})
    same, grown = hand_made_state(20), hand_made_state(20)
    monkeypatch.setattr(population_module, "available_memory", lambda: 1000)
    assert Genreg().breed(same, cfg).population.size == 20
    with pytest.raises(PopulationError, match="memory"):
        Genreg().breed(grown, cfg.replace(population=30))


def test_population_too_large_for_memory_is_refused_before_writing_anything(tmp_path, mnist_dir):
    from genreg.errors import PopulationError

    with pytest.raises(PopulationError, match="needs .* of memory is available"):
        start_run(from_mapping(dict(population=50_000_000)), tmp_path / "run", mnist_dir, progress=False)
    assert not (tmp_path / "run").exists()
