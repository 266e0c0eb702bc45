"""Test accuracy against wall time of evolution runs: one curve per run, from its kept genomes.

A run made with ``keep_all_genomes = true`` keeps the best genome (for an evolution strategy: the
centre) of every checkpoint.  Each is scored on its task's test split, and placed at the run's
wall time when that checkpoint was written: the sum of ``eval_seconds`` and ``breed_seconds`` of
metrics.csv up to that generation (evaluation and breeding; start-up, validation and the
checkpoint writes, which run beside evolution, are left out).  Writes a CSV and a PNG.

    python bench/accuracy_curve.py RUN_DIR [RUN_DIR ...] --out docs/es/mnist-curve [--labels A,B]
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import numpy as np


def curve(run_dir: Path, data_dir=None) -> list[tuple[int, float, float]]:
    """``[(generation, seconds, test accuracy)]`` of the genomes kept in ``run_dir``."""
    from genreg.api import Genome, as_task
    from genreg.config import load_toml
    from genreg.runs.history import read_history

    cfg = load_toml(run_dir / "config.toml")
    task = as_task(cfg.get("task", "mnist"), data_dir, seed=cfg.get("seed", 0),
                   validation_size=cfg.get("validation_size"))
    history = read_history(run_dir / "metrics.csv")
    seconds = np.cumsum(history["eval_seconds"] + history["breed_seconds"])
    points = []
    for path in sorted(run_dir.glob("best_genome_*_gen*.pkl")):
        generation = int(re.search(r"_gen(\d+)\.pkl$", path.name).group(1))
        accuracy = Genome.load(path).evaluate(task)["accuracy"]
        points.append((generation, float(seconds[min(generation, len(seconds)) - 1]), float(accuracy)))
    return points


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path)
    parser.add_argument("--out", required=True, help="path without extension: writes OUT.csv and OUT.png")
    parser.add_argument("--labels", help="comma-separated curve labels (default: the run folders' names)")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)
    labels = args.labels.split(",") if args.labels else [r.name for r in args.runs]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    with open(out.with_suffix(".csv"), "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["run", "generation", "seconds", "test_accuracy"])
        for run, label in zip(args.runs, labels):
            points = curve(run, args.data_dir)
            for g, s, a in points:
                writer.writerow([label, g, f"{s:.1f}", f"{a:.4f}"])
            best = max(points, key=lambda p: p[2])
            print(f"{label}: {len(points)} genomes, last {points[-1][2]:.2%} at {points[-1][1]:.0f} s "
                  f"(generation {points[-1][0]}), best {best[2]:.2%} at {best[1]:.0f} s")
            ax.plot([p[1] / 60 for p in points], [100 * p[2] for p in points], marker=".", label=label)
    ax.set_xlabel("wall time of evaluation and breeding (minutes)")
    ax.set_ylabel("test accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)
    print(f"wrote {out.with_suffix('.csv')} and {out.with_suffix('.png')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
