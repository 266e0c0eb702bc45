"""PGPE (Sehnke et al. 2010) with the ClipUp optimiser (Toklu et al. 2020), EvoTorch's default ES.

Symmetric (antithetic) pairs ``centre +/- delta_j``, ``delta_j = sigma * eps_j``; fitness shaped
to centred ranks r.  The centre follows ``g = sum_j (r+_j - r-_j) / 2 * delta_j`` through ClipUp:
``v <- momentum * v + step * g / |g|``, clipped to ``|v| <= max_speed``, ``centre += v``.  Sigma
learns from ``sum_j ((r+_j + r-_j) / 2 - mean r) (delta_j**2 - sigma**2) / sigma / n_pairs``,
each step limited to 20% of sigma (EvoTorch's ``stdev_max_change``).  Sigma is one value per
parameter at rank 0 and one per tensor at rank r >= 1 (its gradient then averages the tensor's entries).
"""

from __future__ import annotations

import numpy as np

from genreg.network.members import Members
from genreg.strategies.es_base import EvolutionStrategy, ESState, centred_ranks, pair_weights, per_tensor

#: The default ClipUp step, as a fraction of the starting search radius sigma * sqrt(n_params) (so every
#: parameter moves about this fraction of sigma a step, whatever the network's size).
DEFAULT_STEP_RADIUS = 0.1
DEFAULT_SIGMA_LEARNING_RATE = 0.1
MAX_SIGMA_CHANGE = 0.2


def clipup(gradient: np.ndarray, velocity: np.ndarray, step: float, momentum: float, max_speed: float):
    """ClipUp: ``(new velocity)`` from the normalised ascent direction, its norm clipped to ``max_speed``."""
    norm = np.linalg.norm(gradient)
    velocity = momentum * velocity + (step * gradient / norm if norm > 0 else 0.0)
    speed = np.linalg.norm(velocity)
    return velocity * (max_speed / speed) if speed > max_speed else velocity


class PGPE(EvolutionStrategy):
    """PGPE: learned sigma, ClipUp on the centre."""

    name = "pgpe"
    per_parameter_sigma = True

    def new_moments(self, layout) -> dict:
        return {"velocity": np.zeros(layout.n_params)}

    def update(self, state: ESState, members: Members, fitness: np.ndarray, cfg):
        ranks = centred_ranks(fitness)
        difference, total = pair_weights(ranks)
        noise, squares = members.noise_sum(difference / 2, total / 2 - ranks.mean())
        per_param = members.sigma.shape[0] == members.layout.n_params
        sigma = members.parameter_sigma()
        start = cfg.learning_rate or DEFAULT_STEP_RADIUS * cfg.sigma * np.sqrt(members.layout.n_params)
        step = self.step_size(start, state.generation, cfg)
        max_speed = (cfg.max_speed or 2 * start) * step / start  # annealed with the step
        velocity = clipup(noise * sigma, state.moments["velocity"], step, cfg.momentum, max_speed)
        centre = state.population.W[0].astype(np.float64) + velocity
        # d/dsigma of the log-density: (delta^2 - sigma^2) / sigma^3 times sigma^2 (EvoTorch's scaling) = sigma (eps^2 - 1)
        sigma_gradient = sigma * squares / members.n_pairs
        if not per_param:
            sigma_gradient = per_tensor(members.layout, sigma_gradient)
        change = (cfg.sigma_learning_rate or DEFAULT_SIGMA_LEARNING_RATE) * sigma_gradient
        limit = MAX_SIGMA_CHANGE * members.sigma
        new_sigma = members.sigma + np.clip(change, -limit, limit)
        return centre, new_sigma, {"velocity": velocity}
