"""The strategy protocol, and the bookkeeping every population strategy shares.

A strategy is stateless: its parameters are the run's frozen ``Config`` (passed to
every call, as evosax passes ``params``) and everything that changes lives in a
state (``EvolutionState`` or a subclass that adds the strategy's own scalars).
One generation, as the run loop drives it (``genreg.runs.evolve``)::

    state = strategy.init(layout, cfg)             # founders
    pop = strategy.ask(state)                      # the genomes to score (rows or a Brood)
    evaluation = <score pop on the task>           # an Evaluation
    fitness = strategy.score(state, evaluation, cfg)
    state = strategy.breed(state, cfg)             # score + breed = tell

Every strategy has the ask/tell shape (``AskTell``): one generation is

    candidates = strategy.ask(state, cfg)          # what to evaluate
    evaluation = evaluate(candidates)              # the mode's evaluator
    state = strategy.tell(state, candidates, evaluation, cfg)

(``ask_tell``).  For GENREG and the GA ``tell`` is ``score`` + ``breed``; the hybrid
GA + SGD (``genreg.hybrid.strategy``) and the trait search (``genreg.hpo.strategy``)
implement ``tell`` directly.  Their evaluators train the candidates by SGD before
scoring them ("Lamarckian" evaluation, ``Strategy.lamarckian``): the trained rows
are what ``tell`` keeps.

A strategy saves and loads its own scalars (``State.scalars`` /
``strategy.load_state``); the loop stores them without knowing what they mean.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

from genreg.network.layout import Layout
from genreg.network.population import Population, check_run_size, population_bytes
from genreg.network.variation import Brood


@dataclass
class EvolutionState:
    """The population and the next generation to evaluate (subclasses add a strategy's scalars)."""

    population: Population
    generation: int = 0

    def scalars(self) -> dict:
        """Every field but the population: what a checkpoint stores as attributes."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "population"}

    def arrays(self) -> dict:
        """Arrays a checkpoint stores besides the population (an evolution strategy's sigma, optimiser)."""
        return {}


@dataclass
class Evaluation:
    """Every genome's result on one episode.

    n_samples: B.  n_correct: ``(P,) int64`` (classification).  centre: the evaluation of an evolution
    strategy's centre (one genome) on the same episode, which its metrics describe.  loss: ``(P,) float64`` mean
    cross-entropy (classification, when a strategy asks for it) or mean squared error of the
    standardised targets (regression).  fitness: ``(P,) float64`` a fitness callable's values.
    predictions: ``(P, B)`` predicted classes; labels: ``(B,)`` (classification).
    """

    n_samples: int
    n_correct: np.ndarray | None = None
    loss: np.ndarray | None = None
    fitness: np.ndarray | None = None
    predictions: np.ndarray | None = None
    labels: np.ndarray | None = None
    centre: "Evaluation | None" = None  # an evolution strategy's centre on the same episode (one row)

    def direct_fitness(self) -> np.ndarray:
        """Higher is better, for tasks without classes: the callable's values, else -loss."""
        return self.fitness if self.fitness is not None else -np.asarray(self.loss, dtype=np.float64)

    @property
    def accuracy(self) -> np.ndarray | None:
        return None if self.n_correct is None else self.n_correct / self.n_samples


#: A mode's evaluator: the candidates ``ask`` returned -> their evaluation (what ``tell`` reads).
Evaluator = Callable[[Any], Any]


@runtime_checkable
class AskTell(Protocol):
    """The shape every strategy has: ``ask`` what to evaluate, ``tell`` how it did."""

    def ask(self, state, cfg=None) -> Any:
        """The candidates to evaluate this generation."""

    def tell(self, state, candidates, evaluation, cfg) -> Any:
        """The next state, from ``candidates``' ``evaluation``."""


def ask_tell(strategy: AskTell, state, evaluate: Evaluator, cfg) -> tuple[Any, Any, Any]:
    """One generation: ask, ``evaluate`` the candidates, tell; returns ``(next state, candidates, evaluation)``."""
    candidates = strategy.ask(state, cfg)
    evaluation = evaluate(candidates)
    return strategy.tell(state, candidates, evaluation, cfg), candidates, evaluation


class Strategy:
    """Base of every population strategy: ``init``, ``ask``, ``score`` and ``breed`` (``tell`` = both)."""

    name = ""  # registered under this name (``genreg.strategies.make_strategy``) unless empty
    State = EvolutionState
    #: True when the evaluator changes the candidates (SGD training): ``tell`` keeps the changed rows.
    lamarckian = False
    last_mutation_scale = math.nan  # the noise scale the last breed() used (for metrics)
    #: Whether ``breed(..., out=)`` reuses the buffer it is given (the rows of two generations ago).
    reuses_rows = False
    #: Whether a generation's metrics and pickles describe the centre (an evolution strategy) rather than the fittest.
    reports_centre = False

    def needs_loss(self, cfg) -> bool:
        """Whether ``score`` needs the loss of a classification episode (a second output of the forward pass)."""
        return False

    def init(self, layout: Layout, cfg) -> EvolutionState:
        """Founders: ``cfg.population`` random genomes (deterministic in ``cfg.seed``)."""
        return self.State(Population.random(layout, cfg.population, seed=cfg.seed))

    def ask(self, state: EvolutionState, cfg=None) -> Population:
        """The genomes to score this generation (a Brood's children are scored unbuilt)."""
        return state.population

    def tell(self, state: EvolutionState, candidates, evaluation: Evaluation, cfg) -> EvolutionState:
        """The next generation from ``evaluation`` of ``candidates`` (= ``ask(state)``): ``score`` then ``breed``."""
        self.score(state, evaluation, cfg)
        return self.breed(state, cfg)

    def score(self, state: EvolutionState, evaluation: Evaluation, cfg) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def breed(self, state: EvolutionState, cfg, out: np.ndarray | None = None) -> EvolutionState:  # pragma: no cover
        raise NotImplementedError

    def load_state(self, population: Population, generation: int, scalars: dict,
                   arrays: dict | None = None) -> EvolutionState:
        """The state a checkpoint stored (``scalars``: what ``State.scalars`` wrote; others ignored;
        ``arrays``: what ``State.arrays`` wrote, which population strategies have none of)."""
        names = {f.name for f in dataclasses.fields(self.State)} - {"population", "generation"}
        return self.State(population, generation, **{k: v for k, v in scalars.items() if k in names})


def next_population(pop: Population, keep: np.ndarray, parents: np.ndarray, children: np.ndarray | Brood,
                    child_trust: np.ndarray) -> Population:
    """Assemble the next generation: ``keep`` rows carried over as they are, then children.

    parents: ``(C,)`` row of each child's (first) parent; children: their rows ``(C, n)``
    (used as the new buffer itself when nothing is kept) or a ``Brood`` (nothing may be
    kept then).  Children get fresh ids, age 0 and ``child_trust``.
    """
    if len(keep) + len(parents) != pop.size:  # a new size (on resume): will the run fit? (pop is held already)
        n, unbuilt = len(keep) + len(parents), isinstance(children, Brood)
        check_run_size(pop.layout, n, "genreg" if unbuilt else "ga", held=population_bytes(pop.layout, pop.size),
                       survival_cutoff=children.source.shape[0] / n if unbuilt else 0.2, built=not unbuilt)
    W, brood = children, None
    if isinstance(children, Brood):
        if len(keep):
            raise ValueError("a brood cannot be mixed with kept genomes")
        W, brood = None, children
    elif len(keep):
        W = np.empty((len(keep) + len(parents), pop.W.shape[1]), dtype=np.float32)
        W[: len(keep)] = pop.W[keep]
        W[len(keep):] = children
    n_children = len(parents)
    return Population(
        layout=pop.layout,
        W=W,
        trust=np.concatenate([pop.trust[keep], child_trust]).astype(np.float64),
        ids=np.concatenate([pop.ids[keep], pop.next_id + np.arange(n_children, dtype=np.int64)]),
        parent_ids=np.concatenate([pop.parent_ids[keep], pop.ids[parents]]),
        age=np.concatenate([pop.age[keep] + 1, np.zeros(n_children, dtype=np.int32)]).astype(np.int32),
        next_id=pop.next_id + n_children,
        brood=brood,
    )


def geometric_anneal(start: float, end: float, generation: int, generations: int) -> float:
    """``start`` at generation 0 shrinking geometrically to ``end`` at ``generations - 1``
    (constant ``start`` if ``end`` or ``start`` is 0)."""
    if end <= 0 or start <= 0:
        return start
    f = min(1.0, generation / max(1, generations - 1))
    return start * (end / start) ** f


def ranking(fitness: np.ndarray) -> np.ndarray:
    """Row indices best first; NaN counts as worst; ties keep row order (stable)."""
    key = np.where(np.isnan(fitness), -np.inf, fitness)
    return np.argsort(-key, kind="stable")
