"""Micro-benchmark harness: warm up past JIT compilation, repeat, take medians, print ratios.

Absolute times on shared machines are noisy; the number to quote is the ratio
against a reference doing the same work in plain NumPy/BLAS, measured in the
same process, interleaved with the candidate.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from dataclasses import asdict, dataclass


@dataclass
class Timing:
    name: str
    median_s: float
    min_s: float
    max_s: float
    repeat: int


def _time_once(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def compare(title: str, candidate, references: dict, *, warmup: int = 2, repeat: int = 9) -> dict:
    """Time ``candidate`` against each reference (name -> zero-argument callable).

    Every callable is warmed up ``warmup`` times (compilation, caches) and then
    timed ``repeat`` times in a block of its own: interleaving single calls
    would let one library's spinning worker threads (OpenBLAS, OpenMP) steal
    the cores from the next call.  Prints a table; returns a dict with the timings and
    ``ratio`` = fastest reference median / candidate median (> 1: candidate faster).
    """
    fns = {"genreg": candidate, **references}
    samples = {}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        samples[name] = [_time_once(fn) for _ in range(repeat)]
    timings = {
        name: Timing(name, statistics.median(ts), min(ts), max(ts), repeat) for name, ts in samples.items()
    }
    best_ref = min((timings[name] for name in references), key=lambda t: t.median_s)
    ratio = best_ref.median_s / timings["genreg"].median_s
    print(f"\n== {title}")
    for t in timings.values():
        print(f"  {t.name:<28} median {t.median_s * 1e3:9.2f} ms   (min {t.min_s * 1e3:8.2f}, max {t.max_s * 1e3:8.2f})")
    print(f"  ratio vs fastest reference ({best_ref.name}): {ratio:.2f}x")
    return {"title": title, "ratio": ratio, "reference": best_ref.name, "timings": [asdict(t) for t in timings.values()]}


def environment() -> dict:
    """What the numbers were measured on."""
    import numba
    import numpy

    return {
        "cpus": os.cpu_count(),
        "numba_threads": numba.get_num_threads(),
        "numpy": numpy.__version__,
        "numba": numba.__version__,
    }


def write_report(path: str | None, results: list) -> None:
    if path:
        with open(path, "w") as fh:
            json.dump({"environment": environment(), "results": results}, fh, indent=2)
        print(f"\nwrote {path}")
