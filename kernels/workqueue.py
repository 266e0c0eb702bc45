"""Dynamic scheduling (genreg.kernels.workqueue): workers claim items one at a time from a shared counter.

A parallel kernel here is a serial, GIL-free worker (``worker(*args, queue)``)
that takes the next item (a genome, a child, a tile) from ``claim(queue)`` until
none is left; ``run_workers`` runs one copy on the calling thread and one on each
of ``n_workers - 1`` pool threads.  A thread that loses its core for a while (to
a BLAS worker still spinning after its last call, or to another process) then
holds no one up, unlike ``prange``'s equal up-front shares: measured on 2 cores,
7% faster on a quiet machine and 26% faster with one core half taken by another
process.  Plain threads instead of a ``prange`` loop also spare each kernel
Numba's parfor compilation (about 2.5 s of a cold start per kernel).  Which
thread computes an item varies from run to run, but each item is computed by
one thread in a fixed order, so results stay bit-identical for any number of
threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic


@intrinsic
def claim(typingctx, counter):
    """Atomically increment ``counter[0]`` (``counter: (1,) int64``) and return its previous value."""
    sig = types.int64(counter)

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        return builder.atomic_rmw("add", data, ir.Constant(ir.IntType(64), 1), "monotonic")

    return sig, codegen


_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_pool_lock = threading.Lock()


def _forget_pool() -> None:
    """In a forked child: the parent's pool threads do not exist there."""
    global _pool, _pool_size, _pool_lock
    _pool, _pool_size, _pool_lock = None, 0, threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pool)


def _threads(n: int) -> ThreadPoolExecutor:
    """The shared pool, grown to at least ``n`` threads."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool, _pool_size = ThreadPoolExecutor(n, thread_name_prefix="genreg-kernel"), n
        return _pool


_launched: set = set()


def _first_launch(worker) -> None:
    """Before the first launch of ``worker`` in this process: the cold-cache notice and, for the
    population worker, a compile on two cores (``genreg.kernels.coldstart.first_launch``)."""
    from .coldstart import first_launch

    first_launch(worker)
    _launched.add(worker)


def run_workers(worker, args: tuple, n_workers: int) -> None:
    """Run ``worker(*args, queue)`` on ``n_workers`` threads (this one included) sharing one ``queue``.

    Read-only arrays are copied first, so that every call compiles and uses the same
    signature (Numba types a read-only array apart); outputs are writable anyway.
    """
    if worker not in _launched:
        _first_launch(worker)
    args = tuple(a.copy() if isinstance(a, np.ndarray) and not a.flags.writeable else a for a in args) \
        + (np.zeros(1, np.int64),)
    n_workers = max(1, int(n_workers))
    if n_workers == 1:
        worker(*args)
        return
    futures = [_threads(n_workers - 1).submit(worker, *args) for _ in range(n_workers - 1)]
    try:
        worker(*args)
    finally:
        for f in futures:
            f.result()
