"""How many threads NumPy's BLAS may use, through threadpoolctl.

On a small shared machine, multi-threaded BLAS on minibatch-sized products
(100 x 784 x 256) spends more time spinning and waiting than computing: one
measured step of 784-256-128-10 took 38 ms with OpenBLAS's default threads
under load against 3.3 ms single-threaded.  Training many networks is better
parallelised over networks, each with single-threaded BLAS.  threadpoolctl
finds whichever BLAS NumPy and SciPy loaded (OpenBLAS, MKL, BLIS) and sets its
thread count, which is process-wide.
"""

from __future__ import annotations

import contextlib

from threadpoolctl import threadpool_info, threadpool_limits


def get_threads() -> int | None:
    """Threads of the first BLAS library loaded, or None if there is none."""
    blas = [lib for lib in threadpool_info() if lib.get("user_api") == "blas"]
    return int(blas[0]["num_threads"]) if blas else None


def set_threads(n: int) -> None:
    """Set every loaded BLAS library to ``n`` threads."""
    threadpool_limits(limits=int(n), user_api="blas")


@contextlib.contextmanager
def blas_threads(n: int):
    """Run the body with BLAS limited to ``n`` threads; restore the previous counts."""
    with threadpool_limits(limits=int(n), user_api="blas"):
        yield
