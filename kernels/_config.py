"""Numba settings for every kernel of genreg.kernels, in one place.

- ``cache=True``: compiled machine code is stored beside the sources, so CI and
  users compile once.
- ``error_model="numpy"``: float division by zero gives inf/nan instead of a
  Python exception; without it the zero check blocks LLVM's loop vectoriser.
- ``fastmath=False``: IEEE semantics, so NaN weights stay visible and results do
  not depend on how LLVM chose to reassociate sums.
- ``boundscheck=False`` (Numba's default) — the Python wrappers in ``genreg``
  validate shapes before any kernel is called; kernels never validate.
"""

import numba

JIT_OPTIONS = dict(cache=True, nogil=True, error_model="numpy", fastmath=False)


def jit(fn):
    """Compile a serial kernel."""
    return numba.njit(**JIT_OPTIONS)(fn)


def inline_jit(fn):
    """Compile a small helper that is always inlined into its caller (vectorisable)."""
    return numba.njit(inline="always", **JIT_OPTIONS)(fn)


def parallel_jit(fn):
    """Compile a kernel whose ``prange`` loops run on Numba's thread pool."""
    return numba.njit(parallel=True, **JIT_OPTIONS)(fn)
