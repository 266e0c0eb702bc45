"""Every random stream of a run, and the purposes that keep them apart.

A run is a function of its config and seed: each random decision draws from a
stream keyed by (seed, generation or individual, purpose) — never from a global
generator — so a resumed run repeats what an uninterrupted one does, and the
result is the same for any number of threads.  Two kinds of stream:

- per-genome counter-based streams (splitmix64 keys, ``stream_keys``) that the
  Numba kernels draw mutation and crossover from, one per child;
- NumPy Generators (``generator``, ``derived_seed``) for decisions made once per
  generation (choosing parents) or per individual (initial weights, SGD order).

Purposes never collide within a kind of run.  The numeric values are those the
shipped results were made with: changing one changes every run after it.
"""

from __future__ import annotations

from enum import IntEnum

import numpy as np

from genreg import kernels


class Purpose(IntEnum):
    """Population strategies (GENREG, GA, hybrid): stream families within one generation."""

    SELECTION = 1
    CHILD_MUTATION = 2
    BASE_MUTATION = 3
    CROSSOVER = 4
    RESIZE = 5


#: Hybrid runs: the attack study's children use Purpose + ATTACK_OFFSET (disjoint from Purpose).
ATTACK_OFFSET = 16
#: Hybrid runs: tags of ``derived_seed`` streams (outside Purpose's range).
HYBRID_FRESH = 0x46524553
HYBRID_TRAIN = 0x5452414E
HYBRID_BASELINE = 0xBA5E


class SearchPurpose(IntEnum):
    """The trait search (``genreg.hpo``): streams keyed by (seed, generation or id, purpose)."""

    TRAITS = 1
    BREED = 2
    INIT = 3
    TRAIN = 4
    GENE_STORE = 5


#: Founder weights (``Population.random``), SGD epochs (``backprop``), data splits (``tasks``).
FOUNDERS = 0x1417
SGD_EPOCH = 0xB4C7
TRACKED_WEIGHTS = 0x7EAC
#: Per-episode augmentation of training images (``alphabet-fonts``): a generator of (seed, episode, AUGMENTATION).
AUGMENTATION = 0xA116
#: The seed of island i > 0 of an island-model run (``genreg.distributed.islands.island_seed``).
ISLAND_SEED = 0x151A


def stream_keys(seed: int, generation: int, slots, purpose: Purpose) -> np.ndarray:
    """``(m,) uint64`` keys of the kernels' streams for genome ``slots`` in ``generation``."""
    slots = np.ascontiguousarray(slots, dtype=np.int64)
    keys = np.empty(slots.shape[0], dtype=np.uint64)
    kernels.stream_keys(int(seed), int(generation), slots, int(purpose), keys)
    return keys


def generator(*keys: int) -> np.random.Generator:
    """A NumPy Generator for the stream ``keys`` (e.g. seed, generation, purpose)."""
    return np.random.default_rng(np.random.SeedSequence([int(k) for k in keys]))


def derived_seed(*keys: int) -> int:
    """A 32-bit seed from integers (NumPy SeedSequence hashing)."""
    return int(np.random.SeedSequence([int(k) for k in keys]).generate_state(1)[0])
