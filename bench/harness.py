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


def compare(title: str, candidate, references: dict, *, warmup: int = 2, repeat: int = 9, rounds: int = 3,
            settle: float = 0.3) -> dict:
    """Time ``candidate`` against each reference (name -> zero-argument callable).

    Every callable is warmed up ``warmup`` times (compilation, caches), then
    timed in ``rounds`` rounds; in each round every callable runs a block of
    ``repeat`` calls of its own (interleaving single calls would let one
    library's spinning worker threads, OpenBLAS or OpenMP, steal the cores from
    the next call), after ``settle`` seconds of sleep: OpenBLAS workers keep
    spinning for 2**28 cycles (~0.15 s measured here) after their last call,
    which made the first 3-4 calls of the next block 2-3x slower.  The ratio is
    the median over rounds of the per-round ratio, so slow drifts of a shared
    machine hit candidate and reference alike.  Prints a table; returns a dict with the timings and
    ``ratio`` = fastest reference median / candidate median (> 1: candidate faster).
    """
    fns = {"genreg": candidate, **references}
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples = {name: [] for name in fns}
    round_ratios = []
    for _ in range(rounds):
        block = {}
        for name, fn in fns.items():
            time.sleep(settle)
            block[name] = [_time_once(fn) for _ in range(repeat)]
            samples[name] += block[name]
        best = min(statistics.median(block[name]) for name in references)
        round_ratios.append(best / statistics.median(block["genreg"]))
    timings = {
        name: Timing(name, statistics.median(ts), min(ts), max(ts), len(ts)) for name, ts in samples.items()
    }
    best_ref = min((timings[name] for name in references), key=lambda t: t.median_s)
    ratio = statistics.median(round_ratios)
    print(f"\n== {title}")
    for t in timings.values():
        print(f"  {t.name:<28} median {t.median_s * 1e3:9.2f} ms   (min {t.min_s * 1e3:8.2f}, max {t.max_s * 1e3:8.2f})")
    print(f"  ratio vs fastest reference ({best_ref.name}): {ratio:.2f}x "
          f"(median of {rounds} rounds: {', '.join(f'{r:.2f}' for r in round_ratios)})")
    return {"title": title, "ratio": ratio, "round_ratios": round_ratios, "reference": best_ref.name,
            "timings": [asdict(t) for t in timings.values()]}


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
