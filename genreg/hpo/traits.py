"""Traits of an individual of the architecture search, and the GA's operators on them.

An individual's chromosome is eight traits (genetic-architecture-search.txt):
the cosine width profile ``A·cos(w·linspace(0, π/2, n))`` given by ``n_layers``
(n), ``first_width`` (A) and ``width_decay`` (w), and the training
hyper-parameters ``batch_size``, ``learning_rate``, ``momentum``, ``lr_decay``,
``dropout``.  Breeding swaps a random subset of traits between two parents
(two complementary children); mutation re-draws 1-3 traits, either from the
trait's range or from a gene store (weight-merge-ga-hpo.txt, Algorithm 1).

Every function takes its randomness from an explicit ``np.random.Generator``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

#: Trait names, in chromosome order.
TRAITS = ("n_layers", "first_width", "width_decay", "batch_size", "learning_rate", "momentum", "lr_decay", "dropout")
#: How each trait is drawn: 'int' uniform integer, 'float' uniform, 'log' log-uniform.
KINDS = {"n_layers": "int", "first_width": "int", "width_decay": "float", "batch_size": "int",
         "learning_rate": "log", "momentum": "float", "lr_decay": "float", "dropout": "float"}
#: The HPOConfig keys bounding each trait.
RANGE_KEYS = {"n_layers": "layers", "first_width": "width", "width_decay": "decay", "batch_size": "batch",
              "learning_rate": "lr", "momentum": "momentum", "lr_decay": "lr_decay", "dropout": "dropout"}


@dataclass(frozen=True)
class Traits:
    """One chromosome.  Floats are rounded to 4 significant digits when drawn (as the reference)."""

    n_layers: int
    first_width: int
    width_decay: float
    batch_size: int
    learning_rate: float
    momentum: float
    lr_decay: float
    dropout: float

    def hidden_sizes(self, min_width: int = 1) -> tuple[int, ...]:
        """Hidden widths ``int(A·cos(w·linspace(0, π/2, n)))``, each at least ``min_width``."""
        widths = (self.first_width * np.cos(self.width_decay * np.linspace(0.0, np.pi / 2, self.n_layers))).astype(int)
        return tuple(int(max(min_width, w)) for w in widths)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Traits":
        return cls(**{name: (int(d[name]) if KINDS[name] == "int" else float(d[name])) for name in TRAITS})


def trait_ranges(cfg) -> dict[str, tuple[float, float]]:
    """``{trait: (low, high)}`` inclusive, from an HPOConfig's ``*_min`` / ``*_max`` keys."""
    return {name: (getattr(cfg, f"{RANGE_KEYS[name]}_min"), getattr(cfg, f"{RANGE_KEYS[name]}_max"))
            for name in TRAITS}


def _round(x: float) -> float:
    return float(f"{x:.4g}")


def draw_trait(name: str, rng: np.random.Generator, ranges: dict) -> int | float:
    """One value of trait ``name`` from its range (inclusive)."""
    low, high = ranges[name]
    kind = KINDS[name]
    if kind == "int":
        return int(rng.integers(int(low), int(high) + 1))
    if kind == "log":
        value = float(np.exp(rng.uniform(np.log(low), np.log(high))))
    else:
        value = float(rng.uniform(low, high))
    return min(max(_round(value), low), high)  # rounding must not leave the range


def random_traits(rng: np.random.Generator, ranges: dict) -> Traits:
    """A chromosome with every trait drawn from its range."""
    return Traits(**{name: draw_trait(name, rng, ranges) for name in TRAITS})


def make_gene_store(rng: np.random.Generator, ranges: dict, size: int) -> dict[str, list]:
    """``{trait: [size values]}`` drawn from the ranges: the values mutation may pick."""
    return {name: [draw_trait(name, rng, ranges) for _ in range(size)] for name in TRAITS}


def breed(a: Traits, b: Traits, rng: np.random.Generator) -> tuple[Traits, Traits, tuple[str, ...]]:
    """Swap a random subset of traits: returns ``(child1, child2, provenance)``.

    Each trait is swapped with probability 1/2.  ``provenance[i]`` is 'a' or 'b',
    the parent child1's trait ``TRAITS[i]`` came from; child2 has the other one.
    """
    swap = rng.random(len(TRAITS)) < 0.5
    da, db = a.to_dict(), b.to_dict()
    c1 = {n: (db[n] if s else da[n]) for n, s in zip(TRAITS, swap)}
    c2 = {n: (da[n] if s else db[n]) for n, s in zip(TRAITS, swap)}
    return Traits(**c1), Traits(**c2), tuple("b" if s else "a" for s in swap)


def mutate(t: Traits, rng: np.random.Generator, ranges: dict, rate: float,
           gene_store: dict | None = None) -> tuple[Traits, tuple[str, ...]]:
    """With probability ``rate`` re-draw 1-3 distinct traits; returns ``(traits, names re-drawn)``.

    New values come from the trait's range, or (``gene_store`` given) from the
    store's values for that trait.
    """
    hit = rng.random() < rate
    k = int(rng.integers(1, 4))
    names = tuple(str(n) for n in rng.choice(TRAITS, size=k, replace=False))
    if not hit:
        return t, ()
    d = t.to_dict()
    for name in names:
        if gene_store is not None:
            d[name] = gene_store[name][int(rng.integers(len(gene_store[name])))]
        else:
            d[name] = draw_trait(name, rng, ranges)
    return Traits(**d), names
