"""Capacity sweep: GENREG with hidden 16 / 32 / 64 / 128 under the same budget.

A quality run, not a micro-benchmark: every width gets the published protocol
(the defaults: population 200, 20 images per digit, 600 generations) with the
same seed, and the best genome of each run is evaluated once on the official
10k MNIST test set.  Writes RUN_ROOT/hidden{H}/ (ordinary run directories) and
prints a Markdown table with parameters, test accuracy, final validation
accuracy and wall time.

    python bench/capacity_sweep.py [--widths 16,32,64,128] [--generations 600] [--seed 0]
                                   [--root runs/capacity] [--set key=value ...] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from genreg.config import parse_overrides

from genreg.strategies.config import from_mapping
from genreg.tasks import load_mnist
from genreg.genome.evaluate import evaluate_checkpoint
from genreg.runs.evolve import start_run
from genreg.runs.history import read_history


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--widths", default="16,32,64,128", help="comma-separated hidden widths")
    parser.add_argument("--generations", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--root", default="runs/capacity", help="parent directory of the runs")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="any other config key")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="write the rows as JSON")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data_dir)
    rows = []
    for width in (int(w) for w in args.widths.split(",")):
        mapping = parse_overrides(args.set)
        mapping.update(hidden_sizes=[width], generations=args.generations, seed=args.seed)
        cfg = from_mapping(mapping)
        run_dir = Path(args.root) / f"hidden{width}"
        t0 = time.perf_counter()
        state = start_run(cfg, run_dir, args.data_dir, progress=True)
        seconds = time.perf_counter() - t0
        best = run_dir / f"best_genome_mnist_gen{state.generation:05d}.pkl"
        report = evaluate_checkpoint(best, mnist.test_images, mnist.test_labels)
        val = read_history(run_dir / "metrics.csv")["validation_accuracy"]
        val = val[~np.isnan(val)]
        rows.append({"hidden": width, "params": 784 * width + width + width * 10 + 10, "test_accuracy": report["accuracy"],
                     "validation_accuracy": float(val[-1]) if val.size else None, "seconds": seconds,
                     "generations": state.generation, "run_dir": str(run_dir)})
        print(f"hidden {width}: test {report['accuracy']:.2f}% in {seconds:.0f} s")
    print("\n| hidden | parameters | test accuracy | last validation | wall time |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['hidden']} | {r['params']:,} | {r['test_accuracy']:.2f}% | {100 * r['validation_accuracy']:.2f}% "
              f"| {r['seconds']:.0f} s |")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
