"""Counter-based random streams (genreg.kernels.rng): SplitMix64, one independent stream per key.

A run never shares a generator between threads.  Every random decision draws
from a stream whose key is derived from (seed, generation, genome, purpose)
with ``stream_key``; a stream's state is one uint64 that each draw advances by
the golden-ratio increment and hashes with the SplitMix64 finaliser (Steele,
Lea & Flood 2014).  Results therefore depend only on the keys, never on thread
scheduling, and "the RNG state" of a run is just its seed and generation.
"""

import numpy as np
from numba.cpython.unsafe.numbers import leading_zeros

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
def draw_state(state, k):
    """The state after ``k`` draws from ``state`` (the stream is a counter)."""
    return state + np.uint64(k) * GOLDEN


@inline_jit
def draw_at(state, k):
    """The 64 bits of draw number ``k`` (1-based) after ``state``, without advancing it."""
    return mix64(draw_state(state, k))


LN2 = 0.6931471805599453
TWO_POW_M53 = 1.0 / 9007199254740992.0

# Acklam's rational approximation of the standard normal quantile function:
# central region (relative error < 1.2e-9) and tails (< 7e-6, measured against
# scipy.special.ndtri in tests/test_kernels_rng.py).
_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
      1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
      6.680131188771972e01, -1.328068155288572e01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
      -2.549671348754055e00, 4.374664141464968e00, 2.938163982698783e00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)
P_LOW = 0.02425


@inline_jit
def atanh_series(s):
    """2 atanh(s) for ``|s| <= 1/3``: odd series through s**19 (absolute error below 1e-10)."""
    s2 = s * s
    p = 1.0 / 19.0
    p = p * s2 + 1.0 / 17.0
    p = p * s2 + 1.0 / 15.0
    p = p * s2 + 1.0 / 13.0
    p = p * s2 + 1.0 / 11.0
    p = p * s2 + 1.0 / 9.0
    p = p * s2 + 1.0 / 7.0
    p = p * s2 + 1.0 / 5.0
    p = p * s2 + 1.0 / 3.0
    p = p * s2 + 1.0
    return 2.0 * s * p


@jit
def exponentials_from_bits(bits, s, out):
    """``out[k]`` = -log(u_k), an Exp(1) variate, from the 64 random bits ``bits[k]``.

    u is the bits read as a binary fraction: with z leading zero bits,
    u = 2**-(z+1) * (1 + f), f the next 52 bits as a fraction, so
    -log(u) = (z + 1) log 2 - log(1 + f), and log(1 + f) = 2 atanh(f / (2 + f)).
    All-zero bits (probability 2**-64) give 64 log 2.  No library call and no
    branch; each step is its own loop over the block so that LLVM vectorises
    it and the long chain of one variate overlaps with the others (one fused
    loop runs ~4x slower).  bits: ``(m,) uint64``; s (scratch), out: ``(m,) float64``.
    """
    for k in range(bits.shape[0]):
        z = leading_zeros(bits[k] | np.uint64(1))  # 63 for bits in {0, 1}; the select below fixes 0
        out[k] = (z + 1) * LN2
        s[k] = np.float64(((bits[k] << np.uint64(z)) << np.uint64(1)) >> np.uint64(12)) * (1.0 / 4503599627370496.0)
    for k in range(bits.shape[0]):
        s[k] = s[k] / (2.0 + s[k])
    for k in range(bits.shape[0]):
        e = out[k] - atanh_series(s[k])
        out[k] = 64.0 * LN2 if bits[k] == np.uint64(0) else e


@inline_jit
def normal_central(p):
    """Acklam's central rational for the normal quantile, relative error < 1.2e-9 for
    0.02425 <= p <= 0.97575 (meaningless outside); no branch, no library call."""
    q = p - 0.5
    r = q * q
    return ((((((_A[0] * r + _A[1]) * r + _A[2]) * r + _A[3]) * r + _A[4]) * r + _A[5]) * q
            / (((((_B[0] * r + _B[1]) * r + _B[2]) * r + _B[3]) * r + _B[4]) * r + 1.0))


@inline_jit
def in_normal_tail(p):
    """Whether ``normal_quantile(p)`` takes a tail branch (``normal_central`` is wrong there)."""
    return p < P_LOW or p > 1.0 - P_LOW


@inline_jit
def normal_quantile(p):
    """Standard normal quantile of ``p`` in (0, 1) (Acklam; relative error < 1.2e-9 for
    0.02425 <= p <= 0.97575, < 7e-6 in the tails)."""
    if p < P_LOW:
        q = np.sqrt(-2.0 * np.log(p))
        return ((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
                / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    if p > 1.0 - P_LOW:
        q = np.sqrt(-2.0 * np.log(1.0 - p))
        return -((((((_C[0] * q + _C[1]) * q + _C[2]) * q + _C[3]) * q + _C[4]) * q + _C[5])
                 / ((((_D[0] * q + _D[1]) * q + _D[2]) * q + _D[3]) * q + 1.0))
    return normal_central(p)


@inline_jit
def uniform_open_from_bits(bits):
    """(top 53 bits + 0.5) / 2**53: a uniform on (0, 1), never 0 or 1."""
    return (np.float64(bits >> np.uint64(11)) + 0.5) * TWO_POW_M53


@inline_jit
def next_normal(state):
    """Advance a stream; returns (new state, standard normal) by inversion of
    u = (top 53 bits + 0.5) / 2**53 in (0, 1).  95% of draws take the central
    rational branch (no library call); the tails use one log and one sqrt."""
    state, bits = next_u64(state)
    return state, normal_quantile(uniform_open_from_bits(bits))
