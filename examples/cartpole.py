"""Evolve a CartPole-v1 controller with genreg: a fitness task scored by a Python callable.

A ``FitnessTask`` has no labels.  Its fitness callable receives the whole
population ``W: (P, n_params) float32`` and returns ``(P,)`` scores; here it
plays ``episodes`` CartPole episodes with each of the ``P`` networks, all
``P * episodes`` environments stepped in lockstep by gymnasium's vectorised
CartPole, and returns each network's mean return.  Every network of a
generation meets the same ``episodes`` starting states: those
``gymnasium.make("CartPole-v1")`` resets to with 32-bit seeds drawn from
``(seed, generation)``, so a run is a function of its seed.

The network reads the 4 observations (cart position and velocity, pole angle
and angular velocity) and pushes the cart left or right by the argmax of its 2
outputs.  CartPole-v1 counts as solved at a mean return of at least 475 over
100 consecutive episodes (episodes end after 500 steps); the evolved genome is
checked on 100 fresh episodes of the standard ``gymnasium.make("CartPole-v1")``
environment, reset with seeds ``2**32 + i`` that no training episode uses.

    pip install "genreg[gym]"
    python examples/cartpole.py --generations 40 --population 64 --seed 0 --out runs/cartpole
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ENV_ID = "CartPole-v1"
SOLVED_RETURN = 475.0
MAX_STEPS = 500
EVAL_SEED0 = 2**32  # above every 32-bit training seed

_ACTIVATIONS = {
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, np.float32(0.0)),
    "sigmoid": lambda h: np.float32(1.0) / (np.float32(1.0) + np.exp(-h)),
    "identity": lambda h: h,
}


def _gym():
    try:
        import gymnasium
    except ImportError:
        sys.exit('examples/cartpole.py needs gymnasium: pip install "genreg[gym]" (or pip install "gymnasium>=1.0")')
    return gymnasium


def batched_logits(layout, W: np.ndarray, obs: np.ndarray) -> np.ndarray:
    """Logits of each network on its own observations.

    W: ``(P, n_params) float32`` rows of ``layout`` (plain MLP); obs: ``(P, E, n_inputs) float32``.
    Returns ``(P, E, n_outputs) float32`` (output activation not applied: the argmax is what counts).
    """
    P = W.shape[0]
    act = _ACTIVATIONS[layout.hidden_activation]
    h = obs
    for l in range(layout.n_layers):
        Wt, bt = layout.tensor(f"W{l}"), layout.tensor(f"b{l}")
        Wl = W[:, Wt.offset:Wt.stop].reshape(P, *Wt.shape)
        bl = W[:, bt.offset:bt.stop]
        h = np.matmul(h, Wl) + bl[:, None, :]
        if l < layout.n_layers - 1:
            h = act(h)
    return h


def episode_seeds(seed: int, generation: int, episodes: int) -> list[int]:
    """The 32-bit reset seeds of generation ``generation``'s ``episodes`` episodes in the run seeded ``seed``."""
    return [int(s) for s in np.random.SeedSequence([int(seed), int(generation)]).generate_state(episodes, np.uint32)]


class CartPoleFitness:
    """Population fitness: mean CartPole-v1 return of each network over ``episodes`` shared episodes.

    Call as ``fitness(W, generation=g)`` with ``W: (P, n_params) float32``; returns ``(P,) float64``.
    """

    def __init__(self, layout, episodes: int = 4, seed: int = 0):
        if layout.n_inputs != 4 or layout.n_outputs != 2:
            raise ValueError(f"CartPole needs a 4-input, 2-output network, got {layout.describe()}")
        if episodes < 1:
            raise ValueError(f"episodes must be >= 1, got {episodes}")
        self.layout, self.episodes, self.seed = layout, int(episodes), int(seed)
        self._envs, self._single = {}, None

    def _vector_env(self, n: int):
        if n not in self._envs:
            self._envs[n] = _gym().make_vec(ENV_ID, num_envs=n, vectorization_mode="vector_entry_point")
        return self._envs[n]

    def starting_states(self, generation: int) -> np.ndarray:
        """``(4, episodes) float64`` states ``gymnasium.make("CartPole-v1")`` starts from when reset
        with generation ``generation``'s episode seeds."""
        if self._single is None:
            self._single = _gym().make(ENV_ID)
        starts = []
        for s in episode_seeds(self.seed, generation, self.episodes):
            self._single.reset(seed=s)
            starts.append(np.array(self._single.unwrapped.state, dtype=np.float64))
        return np.stack(starts, axis=1)

    def returns(self, W: np.ndarray, generation: int = 0) -> np.ndarray:
        """``(P, episodes) float64`` return of every network in every episode of ``generation``."""
        W = np.asarray(W, dtype=np.float32)
        P, E = W.shape[0], self.episodes
        env = self._vector_env(P * E)
        env.reset(seed=0)  # clears step counters and done flags; the states are set next
        # Environment p*E + e plays episode e with network p: every network meets the same starts.
        state = env.unwrapped.state
        state[:] = np.tile(self.starting_states(generation), (1, P))
        obs = state.T.astype(np.float32)
        alive = np.ones(P * E, dtype=bool)
        total = np.zeros(P * E, dtype=np.float64)
        for _ in range(MAX_STEPS):
            actions = batched_logits(self.layout, W, obs.reshape(P, E, 4)).argmax(axis=2).reshape(-1)
            obs, reward, terminated, truncated, _ = env.step(actions.astype(np.int64))
            total += reward * alive  # the step that ends an episode still earns its reward
            alive &= ~(terminated | truncated)
            if not alive.any():
                break
        return total.reshape(P, E)

    def __call__(self, W: np.ndarray, generation: int = 0) -> np.ndarray:
        return self.returns(W, generation).mean(axis=1)


def evaluate(layout, row: np.ndarray, episodes: int = 100, seed0: int = EVAL_SEED0) -> np.ndarray:
    """``(episodes,) float64`` returns of one network on ``gymnasium.make("CartPole-v1")``, episode i seeded ``seed0 + i``.

    row: ``(n_params,) float32``.
    """
    env = _gym().make(ENV_ID)
    W = np.asarray(row, dtype=np.float32).reshape(1, -1)
    returns = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed0 + i)
        done = False
        while not done:
            action = int(batched_logits(layout, W, obs.reshape(1, 1, 4)).argmax())
            obs, reward, terminated, truncated, _ = env.step(action)
            returns[i] += reward
            done = terminated or truncated
    env.close()
    return returns


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--generations", type=int, default=40)
    p.add_argument("--population", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--strategy", choices=("ga", "genreg"), default="ga")
    p.add_argument("--episodes", type=int, default=4, help="training episodes per network per generation")
    p.add_argument("--hidden", type=int, nargs="+", default=[16], help="hidden layer widths")
    p.add_argument("--out", type=Path, default=None,
                   help="run folder to keep (checkpoints, metrics.csv, best genome, cartpole_eval.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p.parse_args(argv)


def main(argv=None) -> dict:
    """Evolve, check the best genome on 100 unseen episodes, print (and with --out write) the report."""
    args = parse_args(argv)
    _gym()
    import genreg

    layout = genreg.Layout((4, *args.hidden, 2), "tanh")
    fitness = CartPoleFitness(layout, episodes=args.episodes, seed=args.seed)
    task = genreg.FitnessTask(fitness, n_inputs=4, n_outputs=2, name="cartpole")
    with tempfile.TemporaryDirectory(prefix="genreg-cartpole-") as scratch:
        run_dir = args.out if args.out is not None else Path(scratch)
        start = time.perf_counter()
        try:
            result = genreg.evolve(task, strategy=args.strategy, hidden_sizes=list(args.hidden),
                                   activation=layout.hidden_activation,
                                   population=args.population, generations=args.generations, seed=args.seed,
                                   out=run_dir, progress=not args.quiet)
        except genreg.GenregError as exc:
            sys.exit(f"error: {exc}")
        evolve_seconds = time.perf_counter() - start
    returns = evaluate(result.best.layout, result.best.row)
    report = {
        "env": ENV_ID, "strategy": args.strategy, "seed": args.seed, "population": args.population,
        "generations": args.generations, "episodes": args.episodes, "network": result.best.layout.describe(),
        "best_fitness": float(result.best.fitness), "evolve_seconds": round(evolve_seconds, 2),
        "eval_seeds": [EVAL_SEED0, EVAL_SEED0 + len(returns) - 1],
        "eval_mean_return": float(returns.mean()), "eval_min_return": float(returns.min()),
        "solved": bool(returns.mean() >= SOLVED_RETURN), "eval_returns": returns.tolist(),
    }
    print(f"{ENV_ID}: mean return {returns.mean():.2f} over {len(returns)} unseen episodes "
          f"(min {returns.min():.0f}; solved at >= {SOLVED_RETURN:.0f}: {'yes' if report['solved'] else 'no'}); "
          f"evolution {evolve_seconds:.1f} s")
    if args.out is not None:
        (args.out / "cartpole_eval.json").write_text(json.dumps(report, indent=1) + "\n")
        print(f"run folder {args.out} (best genome best_genome_cartpole_gen{result.generations:05d}.pkl, "
              f"cartpole_eval.json)")
    return report


if __name__ == "__main__":
    main()
