"""Random streams (kernels/rng.py) against the pure-Python twin in ``naive.py``: keys, raw draws,
the normal quantile and exponentials.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import naive
from genreg import kernels
from genreg.network import variation
from genreg.streams import Purpose


# --------------------------------------------------------------------------
# The RNG twin reproduces the kernels' streams
# --------------------------------------------------------------------------

KEY_CASES = [
    (0, 0, 0, 0),
    (0, 0, 0, 1),
    (1, 0, 0, 0),
    (12345, 678, 9, int(Purpose.CHILD_MUTATION)),
    (2**32 + 7, 10**6, 2**20, int(Purpose.CROSSOVER)),
    (2**63 - 1, 2**40, 2**31 - 1, 5),
]


@pytest.mark.parametrize("seed, generation, genome, purpose", KEY_CASES)
def test_twin_stream_key_matches_kernel(seed, generation, genome, purpose):
    got = int(kernels.stream_key(seed, generation, genome, purpose))
    assert got == naive.stream_key(seed, generation, genome, purpose)


def test_twin_u64_stream_matches_kernel_mask_bits():
    """next_u64 is reproduced bit for bit: a 64*k-entry mask crossover exposes k raw draws."""
    n = 64 * 5
    key = naive.stream_key(3, 1, 4, 1)
    W = np.stack([np.ones(n, dtype=np.float32), np.zeros(n, dtype=np.float32)])
    out = variation.mask_crossover(W, [0], [1], np.array([key], dtype=np.uint64))[0]
    stream = naive.Stream(key)
    for d in range(5):
        word = stream.u64()
        got = sum(int(out[64 * d + t]) << t for t in range(64))
        assert got == word


# --------------------------------------------------------------------------
# The draws' building blocks against library functions
# --------------------------------------------------------------------------


def test_normal_quantile_matches_scipy_ndtri():
    from scipy.special import ndtri

    from genreg.kernels.rng import normal_quantile

    p = np.concatenate([np.linspace(1e-12, 1e-3, 200), np.linspace(1e-3, 1 - 1e-3, 2001), 1 - np.linspace(1e-12, 1e-3, 200)])
    got = np.array([normal_quantile(x) for x in p])
    rel = np.abs(got - ndtri(p)) / np.maximum(np.abs(ndtri(p)), 1e-3)
    central = (p >= 0.02425) & (p <= 0.97575)
    assert rel[central].max() < 2e-9
    assert rel[~central].max() < 1e-5


def test_exponentials_from_bits_are_minus_log_of_their_uniform_and_match_the_twin():
    """-log(u), u = the 64 bits as a binary fraction, to 1e-9 relative (no library log in
    the kernel), and bit for bit what the twin's one-at-a-time draw gives."""
    from genreg.kernels.rng import exponentials_from_bits

    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2**63, size=3000, dtype=np.uint64) * np.uint64(2) + rng.integers(0, 2, 3000, dtype=np.uint64)
    bits[:1000] >>= rng.integers(0, 64, 1000).astype(np.uint64)  # every number of leading zeros
    bits[:4] = [0, 1, 2**63, 2**64 - 1]
    got = np.empty(bits.size)
    exponentials_from_bits(bits, np.empty(bits.size), got)
    for b, e in zip(bits.tolist(), got):
        expected = -math.log(b / 2.0**64) if b else 64.0 * naive.LN2
        assert abs(e - expected) < 1e-9 * max(1.0, expected)
    assert [naive.exponential_of_bits(b) for b in bits.tolist()] == got.tolist()
