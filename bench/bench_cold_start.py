"""Cold and warm start of ``genreg evolve --generations 1`` (MNIST, defaults), each in a fresh process.

Cold: an empty ``NUMBA_CACHE_DIR``, so every kernel compiles (a first run after
installing); warm: the same cache directory again.  Prints wall time and the
child's CPU time (user + sys; on a shared machine the CPU time is the steadier
number, since compilation is single-threaded), per repeat and as medians.

    python bench/bench_cold_start.py [--data-dir DIR] [--repeat N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import environment  # noqa: E402


def run_once(cache_dir: str, data_dir: str | None, extra: list[str]) -> dict:
    """Time one ``genreg evolve --generations 1`` in a subprocess; returns wall and CPU seconds and its stderr."""
    env = dict(os.environ, NUMBA_CACHE_DIR=cache_dir)
    if data_dir:
        env["GENREG_DATA"] = data_dir
    with tempfile.TemporaryDirectory() as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "genreg", "evolve", "--generations", "1", "--out",
                               f"{out}/run", "--no-progress", *extra], env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"genreg evolve failed ({proc.returncode}):\n{proc.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": wall, "cpu_s": cpu, "stderr": proc.stderr.strip()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data root (default: $GENREG_DATA)")
    parser.add_argument("--repeat", type=int, default=3, help="cold + warm pairs, each with a new cache")
    parser.add_argument("--json")
    parser.add_argument("extra", nargs="*", help="more genreg evolve arguments (after --)")
    args = parser.parse_args(argv)
    print("environment:", environment())
    runs = {"cold": [], "warm": []}
    for i in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="genreg-numba-cache-") as cache:
            for kind in ("cold", "warm"):
                r = run_once(cache, args.data_dir, args.extra)
                runs[kind].append(r)
                notice = "notice" if "compiling kernels" in r["stderr"] else "no notice"
                print(f"{kind} #{i + 1}: wall {r['wall_s']:6.2f} s  cpu {r['cpu_s']:6.2f} s  ({notice})", flush=True)
    summary = {kind: {"median_wall_s": statistics.median(r["wall_s"] for r in rs),
                      "median_cpu_s": statistics.median(r["cpu_s"] for r in rs),
                      "min_wall_s": min(r["wall_s"] for r in rs)} for kind, rs in runs.items()}
    for kind, s in summary.items():
        print(f"{kind}: median wall {s['median_wall_s']:.2f} s (min {s['min_wall_s']:.2f}), "
              f"median cpu {s['median_cpu_s']:.2f} s")
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment(), "summary": summary,
                                               "runs": {k: [{"wall_s": r["wall_s"], "cpu_s": r["cpu_s"]} for r in rs]
                                                        for k, rs in runs.items()}}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
