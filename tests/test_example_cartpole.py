"""examples/cartpole.py: the CartPole fitness callable, the 100-episode check, a short evolution."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("gymnasium")

import genreg  # noqa: E402
from genreg.network.forward import population_logits  # noqa: E402
from genreg.tasks.base import FitnessTask  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "cartpole.py"


def _load_example():
    spec = importlib.util.spec_from_file_location("cartpole_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


cartpole = _load_example()
LAYOUT = genreg.Layout((4, 16, 2), "tanh")


def _linear_controller(c) -> np.ndarray:
    """A row whose network pushes right iff ``c . obs > 0`` (one hidden unit, the other 15 unused)."""
    W0 = np.zeros((4, 16), np.float32)
    W0[:, 0] = c
    W1 = np.zeros((16, 2), np.float32)
    W1[0] = (-1.0, 1.0)
    return LAYOUT.flatten([(W0, np.zeros(16)), (W1, np.zeros(2))])


# Push in the direction the pole falls: angle + angular velocity.
GOOD = _linear_controller([0.0, 0.0, 1.0, 1.0])
ZERO = np.zeros(LAYOUT.n_params, np.float32)


def test_batched_logits_match_the_kernel_on_a_shared_batch():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, LAYOUT.n_params)).astype(np.float32)
    X = rng.normal(size=(7, 4)).astype(np.float32)
    got = cartpole.batched_logits(LAYOUT, W, np.broadcast_to(X, (5, 7, 4)))
    np.testing.assert_allclose(got, population_logits(LAYOUT, W, X), rtol=1e-5, atol=1e-5)


def test_fitness_is_one_mean_return_per_network_and_deterministic():
    rng = np.random.default_rng(1)
    W = rng.normal(scale=0.5, size=(6, LAYOUT.n_params)).astype(np.float32)
    fitness = cartpole.CartPoleFitness(LAYOUT, episodes=3, seed=7)
    a = fitness(W, generation=2)
    assert a.shape == (6,)
    assert np.all((a >= 1) & (a <= cartpole.MAX_STEPS))
    np.testing.assert_array_equal(a, cartpole.CartPoleFitness(LAYOUT, episodes=3, seed=7)(W, generation=2))
    np.testing.assert_array_equal(a, fitness(W, generation=2))
    # The population size does not change a network's episodes: every network meets the same starts.
    np.testing.assert_array_equal(fitness(W[:2], generation=2), a[:2])
    # The starts are those gymnasium.make("CartPole-v1") resets to with the generation's seeds.
    single = cartpole._gym().make(cartpole.ENV_ID)
    for e, s in enumerate(cartpole.episode_seeds(7, 2, 3)):
        obs, _ = single.reset(seed=s)
        np.testing.assert_array_equal(fitness.starting_states(2)[:, e].astype(np.float32), obs)
    # Another generation or run seed draws other starting states.
    assert not np.array_equal(fitness.returns(W, generation=3), fitness.returns(W, generation=2))
    assert not np.array_equal(cartpole.CartPoleFitness(LAYOUT, episodes=3, seed=8).returns(W, generation=2),
                              fitness.returns(W, generation=2))


def test_fitness_task_accepts_the_callable():
    fitness = cartpole.CartPoleFitness(LAYOUT, episodes=2, seed=0)
    task = FitnessTask(fitness, n_inputs=4, n_outputs=2, name="cartpole")
    scores = task.score(np.stack([ZERO, GOOD]), generation=5)
    assert scores.shape == (2,) and scores.dtype == np.float64


def test_a_hand_set_controller_scores_far_above_the_zero_network():
    fitness = cartpole.CartPoleFitness(LAYOUT, episodes=5, seed=0)
    zero, good = fitness(np.stack([ZERO, GOOD]), generation=0)
    assert zero < 20  # always pushing left: the pole falls within ~10 steps
    assert good == cartpole.MAX_STEPS
    returns = cartpole.evaluate(LAYOUT, GOOD, episodes=10)
    assert returns.shape == (10,)
    assert returns.mean() >= cartpole.SOLVED_RETURN
    assert cartpole.evaluate(LAYOUT, ZERO, episodes=3).mean() < 20


def test_evaluation_seeds_are_never_training_seeds():
    seeds = [s for run in range(3) for g in range(50) for s in cartpole.episode_seeds(run, g, 5)]
    assert min(seeds) >= 0 and max(seeds) < cartpole.EVAL_SEED0
    assert len(set(seeds)) > 0.99 * len(seeds)


# Measured with seeds 0-9 (mean return of the best genome over 20 unseen episodes):
# GA 32 x 15 generations 459.7-500, GENREG 64 x 20 generations 368.2-500; the random
# networks of generation 0 average 10-23.
@pytest.mark.parametrize("strategy, population, generations", [("ga", 32, 15), ("genreg", 64, 20)])
def test_a_short_evolution_balances_the_pole_far_better_than_chance(tmp_path, strategy, population, generations):
    fitness = cartpole.CartPoleFitness(LAYOUT, episodes=3, seed=0)
    task = FitnessTask(fitness, n_inputs=4, n_outputs=2, name="cartpole")
    result = genreg.evolve(task, strategy=strategy, hidden_sizes=[16], activation="tanh", population=population,
                           generations=generations, seed=0, out=tmp_path / "run", progress=False)
    assert result.best.layout == LAYOUT
    assert result.history["mean_fitness"][0] < 50
    assert cartpole.evaluate(LAYOUT, result.best.row, episodes=20).mean() >= 200


def test_the_command_writes_its_report(tmp_path, capsys):
    report = cartpole.main(["--generations", "2", "--population", "8", "--episodes", "2", "--seed", "3",
                            "--out", str(tmp_path / "run"), "--quiet"])
    assert "unseen episodes" in capsys.readouterr().out
    assert len(report["eval_returns"]) == 100 and report["eval_seeds"][0] == cartpole.EVAL_SEED0
    assert report["eval_mean_return"] == pytest.approx(np.mean(report["eval_returns"]))
    assert (tmp_path / "run" / "cartpole_eval.json").is_file()
