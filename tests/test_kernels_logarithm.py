"""``kernels.logarithm``: log(x) with glibc's bits, in loops that vectorise (the ES softmax losses).

Its twin is the C library itself (``math.log`` calls it): where the platform runs glibc's FMA build
(glibc >= 2.28 on an x86-64 CPU with FMA, the machines genreg's results are recorded on), every
positive normal value must come out bit for bit the same.  Elsewhere those comparisons are skipped;
the vectorised pass must still equal the scalar function everywhere.
"""

import math
import platform
from pathlib import Path

import numba
import numpy as np
import pytest

from genreg.kernels.logarithm import NEAR_HI, NEAR_LO, log_glibc, log_inplace


def _glibc_fma() -> bool:
    name, version = platform.libc_ver()
    if name != "glibc" or platform.machine() != "x86_64":
        return False
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    major, minor = (int(v) for v in version.split(".")[:2])
    return (major, minor) >= (2, 28) and " fma " in flags


needs_glibc_fma = pytest.mark.skipif(not _glibc_fma(), reason="the C library is not glibc's FMA build")


@numba.njit
def _scalar(x, out):
    for i in range(x.shape[0]):
        out[i] = log_glibc(x[i])


def _vector(x):
    y = np.array(x, np.float64)
    log_inplace(y, y.shape[0], np.empty((2, y.shape[0])), np.empty(y.shape[0], np.int64))
    return y


def _bits(x):
    return np.asarray(x, np.float64).view(np.int64)


def _ranges():
    """Positive normal values where the ES kernels take logs, and everywhere else."""
    rng = np.random.default_rng(7)
    n = 100_000
    edges = np.array([NEAR_LO, NEAR_HI], np.int64)
    around = (edges[:, None] + np.arange(-3, 4)[None, :]).ravel().view(np.float64)  # both paths' borders
    random_bits = rng.integers(0x0010 << 48, 0x7FF0 << 48, n, dtype=np.int64).view(np.float64)
    return {
        "softmax sums [1, 10]": 1 + 9 * rng.random(n),
        "near 1": 1 + (rng.random(n) - 0.5) * 0.13,
        "lower normal tail (0, 0.03)": 0.03 * rng.random(n) + 1e-300,
        "upper normal tail (0.97, 1)": 1 - 0.03 * rng.random(n),
        "borders of the paths": around,
        "every binade": np.exp(rng.uniform(-700, 700, n)),
        "random bit patterns": random_bits,
        "powers of two and one": np.ldexp(1.0, np.arange(-1022, 1024)),
    }


@needs_glibc_fma
@pytest.mark.parametrize("name", list(_ranges()))
def test_log_is_glibc_bit_for_bit(name):
    x = _ranges()[name]
    want = np.fromiter((math.log(v) for v in x.tolist()), np.float64, x.size)
    got = np.empty_like(x)
    _scalar(x, got)
    assert np.array_equal(_bits(got), _bits(want)), f"{np.count_nonzero(_bits(got) != _bits(want))} differ"
    assert np.array_equal(_bits(_vector(x)), _bits(want))


@pytest.mark.parametrize("name", list(_ranges()))
def test_vectorised_pass_is_the_scalar_function(name):
    x = _ranges()[name]
    scalar = np.empty_like(x)
    _scalar(x, scalar)
    assert np.array_equal(_bits(_vector(x)), _bits(scalar))


def test_irregular_values_go_to_the_library():
    x = np.array([0.0, -0.0, -1.0, -np.inf, np.inf, np.nan, 5e-324, 1e-310, 2.0, 1.0])
    with np.errstate(divide="ignore", invalid="ignore"):
        want = np.log(x)
    got_vector = _vector(x)
    got_scalar = np.empty_like(x)
    _scalar(x, got_scalar)
    for got in (got_vector, got_scalar):
        assert np.array_equal(np.isnan(got), np.isnan(want))
        ok = ~np.isnan(want)
        np.testing.assert_array_equal(got[ok], want[ok])
    assert got_vector[-1] == 0.0 and not np.signbit(got_vector[-1])


def test_only_the_first_n_values_change():
    x = 1 + np.arange(20, dtype=np.float64)
    y = x.copy()
    log_inplace(y, 13, np.empty((2, 20)), np.empty(20, np.int64))
    np.testing.assert_array_equal(y[13:], x[13:])
    np.testing.assert_allclose(y[:13], np.log(x[:13]), rtol=1e-15)
