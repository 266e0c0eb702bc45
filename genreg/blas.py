"""Control the number of OpenBLAS threads of the running process (no extra dependency).

On a small shared machine, multi-threaded BLAS on minibatch-sized products
(100 x 784 x 256) spends more time spinning and waiting than computing: one
measured step of 784-256-128-10 took 38 ms with OpenBLAS's default threads
under load against 3.3 ms single-threaded.  Training many networks is better
parallelised over networks, each with single-threaded BLAS.  This module finds
the OpenBLAS libraries already loaded by NumPy/SciPy (``/proc/self/maps``, else
NumPy's bundled ``numpy.libs``) and calls their ``*_set_num_threads`` through
ctypes, as threadpoolctl does.  Where no OpenBLAS is found it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
import glob
import os

_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads", "openblas_set_num_threads64_",
            "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "scipy_openblas_get_num_threads", "openblas_get_num_threads64_",
            "openblas_get_num_threads")
_LIBS: list | None = None


def _candidate_paths() -> list[str]:
    paths = []
    try:
        with open("/proc/self/maps") as fh:
            for line in fh:
                path = line.rsplit(" ", 1)[-1].strip()
                if "openblas" in os.path.basename(path).lower() and path not in paths:
                    paths.append(path)
    except OSError:
        pass
    if not paths:
        import numpy

        paths = glob.glob(os.path.join(os.path.dirname(numpy.__file__), os.pardir, "numpy.libs", "*openblas*"))
    return paths


def _libraries() -> list:
    """``[(set_num_threads, get_num_threads), ...]`` for every loaded OpenBLAS."""
    global _LIBS
    if _LIBS is None:
        _LIBS = []
        for path in _candidate_paths():
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            setter = next((getattr(lib, n) for n in _SETTERS if hasattr(lib, n)), None)
            getter = next((getattr(lib, n) for n in _GETTERS if hasattr(lib, n)), None)
            if setter is not None and getter is not None:
                getter.restype = ctypes.c_int
                _LIBS.append((setter, getter))
    return _LIBS


def get_threads() -> int | None:
    """Threads of the first OpenBLAS found, or None."""
    libs = _libraries()
    return int(libs[0][1]()) if libs else None


def set_threads(n: int) -> None:
    """Set every loaded OpenBLAS to ``n`` threads."""
    for setter, _ in _libraries():
        setter(ctypes.c_int(int(n)))


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the body with OpenBLAS limited to ``n`` threads; restore the previous count."""
    before = [int(getter()) for _, getter in _libraries()]
    set_threads(n)
    try:
        yield
    finally:
        for (setter, _), count in zip(_libraries(), before):
            setter(ctypes.c_int(count))
