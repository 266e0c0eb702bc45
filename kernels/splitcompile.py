"""Compile the population worker on two cores when the cache is cold (genreg.kernels.splitcompile).

``population_worker`` (``genreg.kernels.population``) calls two independent trees of
kernels: ``make_child`` (crossover and mutation) and ``forward_tiles`` (the forward
pass), each a few seconds to compile, and Numba compiles one function at a time
per process.  Before the worker's first, cold launch, ``compile_in_halves`` starts a
second Python process that compiles ``make_child`` into the same Numba cache while
this one compiles ``forward_tiles``; it then waits for the helper, so that compiling
``population_worker`` finds ``make_child`` in the cache.  Compiled code is the same
either way (the same functions, signatures and options), only the wall time differs.
If the helper fails or is slow, this process compiles ``make_child`` itself as before.
"""

from __future__ import annotations

import os
import subprocess
import sys

from numba import types

_f32_1 = types.Array(types.float32, 1, "C")
_f32_2 = types.Array(types.float32, 2, "C")
_i64_1 = types.Array(types.int64, 1, "C")
_i32_1 = types.Array(types.int32, 1, "C")
i64, u64, f64 = types.int64, types.uint64, types.float64

#: The signatures population_worker calls them with (checked by tests/test_kernels_coldstart.py).
MAKE_CHILD_SIGNATURE = (_f32_2, i64, i64, i64, _i64_1, u64, f64, f64, f64, u64, u64, _f32_1)
FORWARD_TILES_SIGNATURE = (_f32_1, _i64_1, i64, _i64_1, _i32_1, _f32_2, i64, i64, _f32_2, _f32_2, _i64_1, _f32_2)

#: Seconds to wait for the helper before compiling make_child here anyway.
HELPER_TIMEOUT = 120.0


def compile_make_child() -> None:
    """The helper's job: compile ``make_child`` (and its callees) into the cache."""
    from .variation import make_child

    make_child.compile(MAKE_CHILD_SIGNATURE)


def _start_helper():
    import genreg

    root = os.path.dirname(os.path.dirname(os.path.abspath(genreg.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p))
    try:
        return subprocess.Popen([sys.executable, "-c", "from genreg.kernels.splitcompile import compile_make_child; "
                                 "compile_make_child()"], env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except OSError:
        return None


def compile_in_halves() -> None:
    """Compile ``forward_tiles`` here and ``make_child`` in a helper process, and wait for it."""
    from .forward import forward_tiles
    from .variation import make_child

    helper = None if (os.cpu_count() or 1) < 2 else _start_helper()
    forward_tiles.compile(FORWARD_TILES_SIGNATURE)
    if helper is None:
        return
    try:
        helper.wait(timeout=HELPER_TIMEOUT)
    except subprocess.TimeoutExpired:
        helper.kill()
        helper.wait()
    del make_child  # (compiling population_worker loads it from the cache the helper wrote)
