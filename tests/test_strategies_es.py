"""The evolution strategies (OpenAI-ES, PGPE, SNES): operators, convergence, checkpoints, resume, threads."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from genreg.errors import PopulationError
from genreg.network.layout import Layout
from genreg.network.population import check_run_size
from genreg.runs.evolve import resume_run, start_run
from genreg.runs.history import read_history
from genreg.runs.store import read_checkpoint
from genreg.strategies import make_strategy
from genreg.strategies.es_base import centred_ranks, pair_weights
from genreg.strategies.openai_es import adam_step
from genreg.strategies.pgpe import clipup
from genreg.strategies.snes import utilities
from genreg.tasks.base import FitnessTask
from helpers import reseal, assert_same_state, final_state, small_cfg
from test_runs_evolve import metrics_without_timing

ES = ["openai-es", "pgpe", "snes"]


# ---------------------------------------------------------------- operators


def test_centred_ranks():
    r = centred_ranks(np.array([3.0, np.nan, -1.0, 10.0, 3.0]))
    np.testing.assert_allclose(r, [0.0, -0.5, -0.25, 0.5, 0.25])  # ties in index order, NaN lowest


def test_pair_weights():
    d, s = pair_weights(np.array([1.0, 0.25, -2.0, 3.0]))
    np.testing.assert_allclose(d, [0.75, -5.0])
    np.testing.assert_allclose(s, [1.25, 1.0])


def test_snes_utilities():
    u = utilities(np.array([0.1, 0.5, 0.3, np.nan, 0.2, 0.0]))
    assert u.sum() == pytest.approx(0.0, abs=1e-12)
    assert np.argmax(u) == 1 and u[3] == u.min()
    raw = np.maximum(0, np.log(4) - np.log(np.arange(1, 7)))
    np.testing.assert_allclose(np.sort(u)[::-1], raw / raw.sum() - 1 / 6)


def test_adam_step_matches_the_textbook():
    g = np.array([0.5, -2.0])
    delta, m, v = adam_step(g, np.zeros(2), np.zeros(2), 0, 0.1)
    np.testing.assert_allclose(delta, 0.1 * g / (np.abs(g) + 1e-8))  # the first step is lr * sign
    delta2, _, _ = adam_step(g, m, v, 1, 0.1)
    m2, v2 = 0.9 * m + 0.1 * g, 0.999 * v + 0.001 * g * g
    np.testing.assert_allclose(delta2, 0.1 * (m2 / (1 - 0.81)) / (np.sqrt(v2 / (1 - 0.999 ** 2)) + 1e-8))


def test_clipup_normalises_and_clips():
    v = clipup(np.array([3.0, 4.0]), np.zeros(2), 0.5, 0.9, 1.0)
    np.testing.assert_allclose(v, [0.3, 0.4])
    v = clipup(np.array([3.0, 4.0]), np.array([10.0, 0.0]), 0.5, 0.9, 1.0)
    assert np.linalg.norm(v) == pytest.approx(1.0)


# ---------------------------------------------------------------- runs on real MNIST


@pytest.mark.parametrize("strategy,rank", [("openai-es", 1), ("openai-es", 0), ("pgpe", 1), ("pgpe", 0),
                                           ("snes", 1), ("snes", 0)])
def test_convergence_on_mnist(tmp_path, mnist_dir, strategy, rank):
    """40 generations of 784-16-10, 40 members, 100-image episodes: validation accuracy from chance
    (about 0.1) to above 0.4 (a broken update, sign or noise regeneration stays near chance)."""
    cfg = small_cfg(strategy=strategy, rank=rank, population=40, samples_per_class=10, generations=40,
                    validation_every=10, checkpoint_every=20, validation_size=2000)
    start_run(cfg, tmp_path / "run", mnist_dir, progress=False)
    val = read_history(tmp_path / "run" / "metrics.csv")["validation_accuracy"]
    val = val[~np.isnan(val)]
    assert val[0] < 0.3 and val[-1] > 0.4, val


@pytest.mark.parametrize("strategy", ES)
def test_resume_equals_uninterrupted(tmp_path, mnist_dir, strategy):
    cfg = small_cfg(strategy=strategy, generations=8, checkpoint_every=3, validation_every=2)
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(cfg, whole, mnist_dir, progress=False)
    assert start_run(cfg.replace(max_minutes=1e-9), part, mnist_dir, progress=False).generation == 1
    assert resume_run(part, {"max_minutes": 0.0}, mnist_dir, progress=False).generation == 8
    a, b = final_state(whole), final_state(part)
    assert_same_state(a, b)
    assert a.sigma.tobytes() == b.sigma.tobytes()
    assert a.moments.keys() == b.moments.keys()
    for name in a.moments:
        assert a.moments[name].tobytes() == b.moments[name].tobytes(), name
    assert metrics_without_timing(whole) == metrics_without_timing(part)


def test_checkpoint_is_small_at_any_population(tmp_path, mnist_dir):
    """The state is the centre, sigma and the optimiser: the same size for 20 and 2,000 members."""
    sizes = []
    for P in (20, 2000):
        run = tmp_path / f"p{P}"
        start_run(small_cfg(strategy="pgpe", population=P, generations=1, checkpoint_every=1), run, mnist_dir,
                  progress=False)
        path = sorted((run / "checkpoints").glob("*.h5"))[-1]
        state, config = read_checkpoint(path)
        assert state.population.W.shape == (1, Layout((784, 16, 10)).n_params)
        assert config["population"] == P
        sizes.append(path.stat().st_size)
    assert sizes[1] == sizes[0]


def test_pgpe_learns_sigma_per_parameter_at_full_rank(tmp_path, mnist_dir):
    start_run(small_cfg(strategy="pgpe", rank=0, generations=3, checkpoint_every=3), tmp_path / "r", mnist_dir,
              progress=False)
    state = final_state(tmp_path / "r")
    assert state.sigma.shape == (Layout((784, 16, 10)).n_params,)
    assert not np.all(state.sigma == state.sigma[0])  # it moved, parameter by parameter


def test_a_ga_population_continues_as_an_evolution_strategy(tmp_path, mnist_dir):
    run = tmp_path / "run"
    start_run(small_cfg(strategy="ga", generations=3, checkpoint_every=3), run, mnist_dir, progress=False)
    ga = final_state(run)
    state = resume_run(run, {"strategy": "openai-es", "generations": 6}, mnist_dir, progress=False)
    assert state.generation == 6 and state.population.size == 1
    best = int(np.argmax(ga.population.trust))
    assert ga.population.ids[best] == state.population.ids[0]  # the GA's fittest became the centre


@pytest.mark.parametrize("strategy", ES)
def test_a_fitness_callable(tmp_path, strategy):
    """A fitness callable sees the members built in chunks; the centre moves towards the target row."""
    layout = Layout((3, 4, 2))
    target = np.linspace(-0.5, 0.5, layout.n_params).astype(np.float32)
    seen = []

    def fitness(W, generation):
        seen.append(W.shape[0])
        return -np.square(W - target).sum(axis=1)

    task = FitnessTask(fitness, 3, 2, name="target")
    cfg = small_cfg(strategy=strategy, hidden_sizes=[4], population=300, generations=30, sigma=0.05,
                    learning_rate={"openai-es": 0.05, "pgpe": 0.1, "snes": 1.0}[strategy], checkpoint_every=30)
    state = start_run(cfg, tmp_path / "run", task=task, progress=False)
    assert max(seen) <= 256 and 1 in seen  # chunks of members, and the centre alone
    before = np.square(final_state(tmp_path / "run").population.W[0] - target).sum()
    assert before == np.square(state.population.W[0] - target).sum()
    start = -read_history(tmp_path / "run" / "metrics.csv")["best_fitness"][0]
    assert before < 0.5 * start


def test_a_million_members_fit_and_a_trillion_are_refused_before_anything_is_allocated():
    layout = Layout((784, 64, 10))
    assert check_run_size(layout, 10 ** 6, "openai-es") < 2 << 30
    with pytest.raises(PopulationError, match="needs about"):
        check_run_size(layout, 10 ** 12, "pgpe")


def test_evolution_strategies_are_registered():
    for name in ES:
        assert make_strategy(name).reports_centre


def _cli(out, data_dir, threads):
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    args = [sys.executable, "-m", "genreg", "evolve", "--data-dir", str(data_dir), "--out", str(out),
            "--generations", "4", "--set", "strategy=openai-es", "--set", "population=30",
            "--set", "hidden_sizes=[16]", "--set", "samples_per_class=3", "--set", "validation_size=1000",
            "--set", "checkpoint_every=4", "--set", "validation_every=2"]
    proc = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr


def test_identical_for_any_thread_count(tmp_path, mnist_dir):
    _cli(tmp_path / "t1", mnist_dir, 1)
    _cli(tmp_path / "t2", mnist_dir, 2)
    assert metrics_without_timing(tmp_path / "t1") == metrics_without_timing(tmp_path / "t2")
    a, b = final_state(tmp_path / "t1"), final_state(tmp_path / "t2")
    assert_same_state(a, b)
    assert a.moments["adam_m"].tobytes() == b.moments["adam_m"].tobytes()


@pytest.mark.parametrize("strategy", ES)
def test_python_api_on_a_regression_task(tmp_path, data_root, strategy):
    """genreg.evolve on wine (regression): the centre's validation error falls; genreg.resume continues it."""
    import genreg

    result = genreg.evolve("wine", data_dir=data_root, out=tmp_path / "run", strategy=strategy, hidden_sizes=[8],
                           sigma=0.05, samples_per_class=200, population=60, generations=40, validation_every=5, checkpoint_every=10, progress=False)
    val = result.history["validation_mse"]
    val = val[~np.isnan(val)]
    assert val[-1] < 0.93 * val[0], val
    assert result.best.layout.sizes == (11, 8, 1)
    more = genreg.resume(tmp_path / "run", data_dir=data_root, generations=45, progress=False)
    assert more.generations == 45


def test_the_step_anneals_from_learning_rate_to_learning_rate_end():
    strategy = make_strategy("pgpe")
    cfg = small_cfg(strategy="pgpe", learning_rate=0.4, learning_rate_end=0.1, generations=11)
    steps = [strategy.step_size(1.0, g, cfg) for g in range(11)]
    assert steps[0] == pytest.approx(0.4) and steps[-1] == pytest.approx(0.1) and steps[5] == pytest.approx(0.2)
    assert strategy.step_size(1.0, 5, cfg.replace(learning_rate=0.0, learning_rate_end=0.0)) == 1.0  # the default


@pytest.mark.parametrize("damage", ["nan", "too_long", "matrix", "text"])
def test_a_damaged_strategy_array_is_one_clear_error(tmp_path, mnist_dir, damage):
    """A checkpoint whose sigma or optimiser arrays are non-finite, too long, not a vector or not numbers
    is refused with one line naming the file and the dataset; the previous checkpoint stays loadable."""
    import h5py

    from genreg.errors import CheckpointError
    from genreg.runs.store import write_dataset

    run = tmp_path / "run"
    start_run(small_cfg(strategy="openai-es", generations=4, checkpoint_every=2), run, mnist_dir, progress=False)
    older, newest = sorted((run / "checkpoints").glob("*.h5"))
    with h5py.File(newest, "r+") as f:
        group = f["strategy_arrays"]
        n = group["adam_m"].shape[0]
        del group["adam_m"]
        bad = {"nan": np.full(n, np.nan), "too_long": np.zeros(n + 10 ** 6), "matrix": np.zeros((2, n)),
               "text": np.array([b"x"] * 3)}[damage]
        write_dataset(group, "adam_m", bad)
        reseal(f)
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(newest)
    assert "\n" not in str(err.value) and newest.name in str(err.value) and "adam_m" in str(err.value)
    assert read_checkpoint(older)[0].generation == 2


@pytest.mark.parametrize("strategy", ["pgpe", "snes"])
def test_a_low_rank_run_resumed_at_full_rank_learns_sigma_per_parameter(tmp_path, mnist_dir, strategy):
    run = tmp_path / "run"
    start_run(small_cfg(strategy=strategy, rank=1, population=8, generations=2), run, mnist_dir, progress=False)
    per_tensor = final_state(run).sigma
    state = resume_run(run, {"rank": 0, "generations": 3}, mnist_dir, progress=False)
    assert per_tensor.shape == (len(state.population.layout.tensors),)
    assert state.sigma.shape == (state.population.layout.n_params,)
