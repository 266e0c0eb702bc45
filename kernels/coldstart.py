"""Whether the kernels a run needs are in Numba's cache, and the one-line notice when they are not.

A cold cache (first run after installing, or after the kernels' sources changed)
compiles the kernels on first use, which takes seconds; ``announce_compilation``
says so once per process on stderr, before the first kernel launch, and prints
nothing when the cache is warm.  The check reads the cache index files that
Numba keeps beside each kernel's source (or under ``NUMBA_CACHE_DIR``): an index
that is missing, or stale for the current source, means that kernel will compile.
``first_launch`` (called by ``genreg.kernels.workqueue.run_workers`` before each
worker's first launch in a process) prints the notice and, for a cold population
worker, compiles it on two cores (``genreg.kernels.splitcompile``).
"""

from __future__ import annotations

import sys
import threading

#: The top-level kernels of an evolution run and the wall seconds each takes to compile cold
#: (its callees included; measured on 2 cores), for the notice's estimate.
RUN_KERNELS = {"population_worker": 6, "tiles_worker": 1, "stream_keys": 1}

_announced = False
_lock = threading.Lock()


def _dispatchers():
    from . import population, sparse, variation

    return {"population_worker": population.population_worker, "tiles_worker": sparse.tiles_worker,
            "stream_keys": variation.stream_keys}


def is_cached(dispatcher) -> bool:
    """Whether Numba's cache holds compiled code of ``dispatcher`` for its current source
    (True when it cannot tell, e.g. with caching off: the notice stays quiet then)."""
    try:
        return bool(dispatcher._cache._cache_file._load_index())
    except Exception:  # noqa: BLE001 - Numba internals: never let the check itself fail a run
        return True


def cold_kernels() -> list[str]:
    """Names of the run's kernels (``RUN_KERNELS``) that are not in the cache and will compile on first use."""
    return [name for name, d in _dispatchers().items() if not is_cached(d)]


def announce_compilation(worker=None, stream=None) -> bool:
    """Print the compile notice on ``stream`` (default stderr) if ``worker`` (a dispatcher about
    to run; default: any run kernel) is not cached, at most once per process.  The estimate
    counts every run kernel not cached.  Returns whether it printed."""
    global _announced
    with _lock:
        if _announced or (worker is not None and is_cached(worker)):
            return False
        cold = cold_kernels()
        if not cold:
            return False
        _announced = True
        seconds = sum(RUN_KERNELS[name] for name in cold)
        print(f"genreg: compiling kernels (first run only, ~{seconds} s)...", file=stream or sys.stderr, flush=True)
        return True


_first_launch_lock = threading.Lock()


def first_launch(worker) -> None:
    """Run before ``worker``'s first launch in a process: ``announce_compilation``, and if it is the
    population worker and not cached, compile it on two cores (``genreg.kernels.splitcompile``)."""
    announce_compilation(worker)
    from . import population

    if worker is population.population_worker:
        with _first_launch_lock:
            if not is_cached(worker):
                from .splitcompile import compile_in_halves

                compile_in_halves()
