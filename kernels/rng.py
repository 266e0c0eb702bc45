"""Counter-based random streams: SplitMix64, one independent stream per key.

A run never shares a generator between threads.  Every random decision draws
from a stream whose key is derived from (seed, generation, genome, purpose)
with ``stream_key``; a stream's state is one uint64 that each draw advances by
the golden-ratio increment and hashes with the SplitMix64 finaliser (Steele,
Lea & Flood 2014).  Results therefore depend only on the keys, never on thread
scheduling, and "the RNG state" of a run is just its seed and generation.
"""

import numpy as np

from ._config import inline_jit, jit

GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


@inline_jit
def mix64(z):
    """The SplitMix64 finaliser: a bijective avalanche hash of a uint64."""
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


@jit
def stream_key(seed, generation, genome, purpose):
    """Key of the stream for (seed, generation, genome, purpose), all non-negative ints."""
    k = mix64(np.uint64(seed) + GOLDEN)
    k = mix64(k ^ (np.uint64(generation) + GOLDEN))
    k = mix64(k ^ (np.uint64(genome) + GOLDEN))
    return mix64(k ^ (np.uint64(purpose) + GOLDEN))


@inline_jit
def next_u64(state):
    """Advance a stream; returns (new state, 64 random bits)."""
    state = state + GOLDEN
    return state, mix64(state)


@inline_jit
def next_uniform(state):
    """Advance a stream; returns (new state, float64 uniform in [0, 1))."""
    state, bits = next_u64(state)
    return state, np.float64(bits >> np.uint64(11)) * (1.0 / 9007199254740992.0)


@inline_jit
def next_normal_pair(state):
    """Advance a stream; returns (new state, z1, z2): two independent standard normals (Box-Muller)."""
    state, u1 = next_uniform(state)
    state, u2 = next_uniform(state)
    r = np.sqrt(-2.0 * np.log(1.0 - u1))
    return state, r * np.cos(2.0 * np.pi * u2), r * np.sin(2.0 * np.pi * u2)
