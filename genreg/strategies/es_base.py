"""What the evolution strategies (OpenAI-ES, PGPE, SNES) share: the state, asking, scoring, fitness shaping.

An evolution strategy's population is its centre plus ``population`` perturbed members that
exist only as noise keys (``genreg.network.members.Members``): the state is the centre (a
one-row ``Population``), sigma, the optimiser's arrays and a step count, so it is small at
any population size, and so is its checkpoint.  Members come in antithetic pairs
(``centre +/- sigma * eps``).  Fitness is minus the episode's mean loss (softmax
cross-entropy for classes, squared error of standardised targets for regression) or a
fitness callable's value; each strategy turns it into an update of the centre (``update``).
The metrics and pickles of a run describe the centre.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from genreg.errors import ConfigError
from genreg.network.layout import Layout
from genreg.network.members import Members, tensor_index
from genreg.network.population import Population
from genreg.strategies.base import Evaluation, EvolutionState, Strategy, geometric_anneal, ranking


@dataclass
class ESState(EvolutionState):
    """The centre (``population``: one row), sigma ``(T,)`` (per tensor) or ``(n_params,)`` float64, the optimiser's
    arrays (``moments``: name -> ``(n_params,) float64``), its step count, and the last fitness (not saved)."""

    step: int = 0
    sigma: np.ndarray | None = None
    moments: dict = field(default_factory=dict)
    fitness: np.ndarray | None = None

    def scalars(self) -> dict:
        return {"step": int(self.step)}

    def arrays(self) -> dict:
        """What a checkpoint stores besides the centre and the scalars."""
        return {"sigma": self.sigma, **self.moments}


def centred_ranks(fitness: np.ndarray) -> np.ndarray:
    """Ranks scaled to [-0.5, 0.5], best highest (OpenAI-ES's fitness shaping); NaN ranks lowest.

    fitness: ``(P,)``; ties get ranks in index order.
    """
    key = np.where(np.isnan(fitness), -np.inf, fitness)
    ranks = np.empty(fitness.shape[0], np.float64)
    ranks[np.argsort(key, kind="stable")] = np.arange(fitness.shape[0])
    return ranks / max(1, fitness.shape[0] - 1) - 0.5


def pair_weights(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per antithetic pair j: ``(w[2j] - w[2j+1], w[2j] + w[2j+1])``, the weights of eps_j and of eps_j**2."""
    return weights[0::2] - weights[1::2], weights[0::2] + weights[1::2]


def per_tensor(layout: Layout, values: np.ndarray) -> np.ndarray:
    """The mean of ``values: (n_params,)`` over each tensor: ``(T,)``, T = ``len(layout.tensors)``."""
    t = tensor_index(layout)
    return np.bincount(t, weights=values, minlength=len(layout.tensors)) / np.bincount(t, minlength=len(layout.tensors))


class EvolutionStrategy(Strategy):
    """Base of the evolution strategies: ``init``, ``ask``, ``score``, ``breed`` (= ``update``)."""

    State = ESState
    reports_centre = True
    #: Whether sigma is one value per parameter at rank 0 (PGPE, SNES learn it); else one per tensor.
    per_parameter_sigma = False

    def needs_loss(self, cfg) -> bool:
        return True

    def init(self, layout: Layout, cfg) -> ESState:
        """The centre: a founder row drawn as every strategy's founders are (seed-determined)."""
        centre = Population.random(layout, 1, seed=cfg.seed)
        return self._fresh(centre, 0, cfg)

    def _fresh(self, centre: Population, generation: int, cfg) -> ESState:
        n = centre.layout.n_params if self.per_parameter_sigma and cfg.rank == 0 else len(centre.layout.tensors)
        return ESState(centre, generation, 0, np.full(n, float(cfg.sigma)), self.new_moments(centre.layout))

    def new_moments(self, layout: Layout) -> dict:
        """The optimiser's arrays at step 0 (name -> zeros)."""
        return {}

    def ask(self, state: ESState, cfg=None) -> Members:
        """This generation's members (keys, not rows); ``cfg`` (the run's config) gives P, the rank and the seed."""
        if cfg is None:
            raise ConfigError(f"{self.name}: ask() needs the run's config (population, rank, seed)")
        if state.sigma is None:  # a population taken over from another strategy: sigma starts at cfg.sigma
            fresh = self._fresh(state.population, state.generation, cfg)
            state.sigma, state.moments, state.step = fresh.sigma, fresh.moments, 0
        sigma, layout = state.sigma, state.population.layout
        if cfg.rank > 0 and sigma.shape[0] != len(layout.tensors):
            sigma = per_tensor(layout, sigma)  # a full-rank run resumed at a rank: tensor means
        elif cfg.rank == 0 and self.per_parameter_sigma and sigma.shape[0] != layout.n_params:
            sigma = sigma[tensor_index(layout)]  # a low-rank run resumed at full rank: each entry its tensor's
        return Members(state.population.layout, state.population.W[0], sigma, cfg.rank, cfg.seed, state.generation,
                       cfg.population)

    def score(self, state: ESState, evaluation: Evaluation, cfg) -> np.ndarray:
        """Fitness ``(P,)``: minus the mean loss, or the fitness callable's values (kept for ``breed``)."""
        state.fitness = np.asarray(evaluation.direct_fitness(), dtype=np.float64)
        return state.fitness

    def breed(self, state: ESState, cfg, out=None) -> ESState:
        """The next centre from the last ``score``: ``update``."""
        members = self.ask(state, cfg)
        if members.sigma is not state.sigma:
            state = dataclasses.replace(state, sigma=members.sigma)
        centre, sigma, moments = self.update(state, members, state.fitness, cfg)
        self.last_mutation_scale = float(np.mean(sigma))
        pop = state.population
        row = np.ascontiguousarray(centre, dtype=np.float32)[None, :]
        nxt = Population(pop.layout, row, pop.trust.copy(), pop.ids.copy(), pop.parent_ids.copy(), pop.age + 1,
                         pop.next_id)
        return ESState(nxt, state.generation + 1, state.step + 1, sigma, moments)

    def step_size(self, default: float, generation: int, cfg) -> float:
        """The centre's step this generation: ``learning_rate`` (else ``default``), annealed to ``learning_rate_end``."""
        return geometric_anneal(cfg.learning_rate or default, cfg.learning_rate_end, generation, cfg.generations)

    def update(self, state: ESState, members: Members, fitness: np.ndarray, cfg):  # pragma: no cover
        """``(new centre (n_params,), new sigma, new moments)`` from the members' fitness."""
        raise NotImplementedError

    def load_state(self, population: Population, generation: int, scalars: dict, arrays: dict | None = None):
        """A checkpoint's state; from another strategy's population, the fittest genome becomes the centre."""
        arrays = dict(arrays or {})
        if population.size > 1:
            best = int(ranking(population.trust)[0])
            population = Population(population.layout, population.genomes([best]), population.trust[[best]],
                                    population.ids[[best]], population.parent_ids[[best]], population.age[[best]],
                                    population.next_id)
        sigma = arrays.pop("sigma", None)
        fresh_moments = self.new_moments(population.layout)
        if sigma is None or set(arrays) != set(fresh_moments):  # another strategy's state: start the optimiser anew
            return ESState(population, generation, 0, sigma if sigma is not None else None, fresh_moments)
        return ESState(population, generation, int(scalars.get("step", 0)), np.asarray(sigma, np.float64),
                       {k: np.asarray(v, np.float64) for k, v in arrays.items()})
