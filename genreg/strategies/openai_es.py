"""OpenAI-ES (Salimans et al. 2017, "Evolution Strategies as a Scalable Alternative to Reinforcement Learning").

Antithetic pairs ``centre +/- sigma * eps``, centred-rank fitness shaping, the gradient estimate
``g = sum_k r_k eps_k / (P sigma)`` (one sigma per tensor, fixed), and Adam on the centre with an
L2 weight decay (``weight_decay``): ``g <- g - weight_decay * centre``.
"""

from __future__ import annotations

import numpy as np

from genreg.network.members import Members
from genreg.strategies.es_base import EvolutionStrategy, ESState, centred_ranks, pair_weights

ADAM_BETA1, ADAM_BETA2, ADAM_EPS = 0.9, 0.999, 1e-8
DEFAULT_LEARNING_RATE = 0.01


def adam_step(gradient: np.ndarray, m: np.ndarray, v: np.ndarray, step: int, lr: float):
    """Adam (Kingma & Ba 2015) ascending ``gradient``: ``(step to add, new m, new v)``; ``step`` counts from 0."""
    m = ADAM_BETA1 * m + (1 - ADAM_BETA1) * gradient
    v = ADAM_BETA2 * v + (1 - ADAM_BETA2) * gradient * gradient
    m_hat = m / (1 - ADAM_BETA1 ** (step + 1))
    v_hat = v / (1 - ADAM_BETA2 ** (step + 1))
    return lr * m_hat / (np.sqrt(v_hat) + ADAM_EPS), m, v


class OpenAIES(EvolutionStrategy):
    """OpenAI-ES: a fixed sigma, Adam on the centre."""

    name = "openai-es"

    def new_moments(self, layout) -> dict:
        return {"adam_m": np.zeros(layout.n_params), "adam_v": np.zeros(layout.n_params)}

    def update(self, state: ESState, members: Members, fitness: np.ndarray, cfg):
        weights, _ = pair_weights(centred_ranks(fitness))
        noise, _ = members.noise_sum(weights)
        sigma = members.parameter_sigma()
        centre = state.population.W[0].astype(np.float64)
        gradient = noise / (members.size * sigma) - cfg.weight_decay * centre
        delta, m, v = adam_step(gradient, state.moments["adam_m"], state.moments["adam_v"], state.step,
                                self.step_size(DEFAULT_LEARNING_RATE, state.generation, cfg))
        return centre + delta, state.sigma, {"adam_m": m, "adam_v": v}
