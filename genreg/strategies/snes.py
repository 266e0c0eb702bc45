"""SNES, separable natural evolution strategies (Schaul, Glasmachers & Schmidhuber 2011).

Members ``centre + sigma * s_k`` (antithetic pairs), rank-based utilities
``u_k = max(0, ln(P/2 + 1) - ln(rank_k)) / sum - 1/P`` (rank 1 the best).  Natural gradients
``g_mu = sum_k u_k s_k``, ``g_sigma = sum_k u_k (s_k**2 - 1)``; updates
``centre += eta_mu * sigma * g_mu``, ``sigma *= exp(eta_sigma / 2 * g_sigma)`` with
``eta_mu = 1`` and ``eta_sigma = (3 + ln d) / (5 sqrt d)`` by default.  Sigma is one value per
parameter at rank 0 (d = n_params) and one per tensor at rank r >= 1 (d = the number of
tensors; its gradient averages the tensor's entries).
"""

from __future__ import annotations

import math

import numpy as np

from genreg.network.members import Members
from genreg.strategies.base import ranking
from genreg.strategies.es_base import EvolutionStrategy, ESState, pair_weights, per_tensor

DEFAULT_LEARNING_RATE = 1.0


def utilities(fitness: np.ndarray) -> np.ndarray:
    """NES's rank-based utilities ``(P,)``, summing to 0, best highest; NaN ranks lowest."""
    P = fitness.shape[0]
    order = ranking(fitness)  # best first, NaN last
    raw = np.maximum(0.0, math.log(P / 2 + 1) - np.log(np.arange(1, P + 1)))
    u = np.empty(P)
    u[order] = raw / raw.sum() - 1.0 / P
    return u


class SNES(EvolutionStrategy):
    """SNES: a learned, separable sigma; natural-gradient steps."""

    name = "snes"
    per_parameter_sigma = True

    def update(self, state: ESState, members: Members, fitness: np.ndarray, cfg):
        difference, total = pair_weights(utilities(fitness))
        noise, squares = members.noise_sum(difference, total)
        per_param = members.sigma.shape[0] == members.layout.n_params
        sigma = members.parameter_sigma()
        eta_mu = self.step_size(DEFAULT_LEARNING_RATE, state.generation, cfg)
        centre = state.population.W[0].astype(np.float64) + eta_mu * sigma * noise
        g_sigma = squares if per_param else per_tensor(members.layout, squares)
        d = g_sigma.shape[0]
        eta = cfg.sigma_learning_rate or (3 + math.log(d)) / (5 * math.sqrt(d))
        return centre, members.sigma * np.exp(eta / 2 * g_sigma), {}
