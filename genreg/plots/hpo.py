"""Figures of an architecture-search run directory (``genreg plot RUN_DIR`` on a ``genreg hpo`` run).

- ``traits_vs_metric.png``: every trait against the validation metric, one
  point per fitness evaluation, coloured by generation (the architecture-search
  document's figure);
- ``architectures.png``: hidden-layer widths of the sampled networks, a group
  of bars per individual;
- ``best_metric.png``: best and median validation metric per generation, all
  evaluations behind;
- ``fitness_time.png``: wall time and epochs of every fitness evaluation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from genreg.errors import GenregError
from genreg.plots.run import _pyplot, save_figure
from genreg.hpo.traits import TRAITS


def is_hpo_run(run_dir) -> bool:
    """True for a run directory written by ``genreg hpo``."""
    return (Path(run_dir) / "evaluations.csv").is_file()


def read_evaluations(path) -> list[dict]:
    """Rows of ``evaluations.csv`` with numbers parsed (hidden_sizes as a tuple of ints)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = []
    for r in rows:
        d = {}
        for k, v in r.items():
            if k in ("provenance", "error"):
                d[k] = v
            elif k == "hidden_sizes":
                d[k] = tuple(int(x) for x in v.split("-") if x)
            else:
                d[k] = float(v) if v not in ("", "nan") else float("nan")
        out.append(d)
    return out


def plot_hpo_run(run_dir, out_dir=None, *, max_architectures: int = 50) -> list[Path]:
    """Write the run's figures; returns their paths."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / "evaluations.csv"
    if not path.is_file():
        raise GenregError(f"{run_dir} has no evaluations.csv: not a genreg hpo run directory")
    rows = read_evaluations(path)
    if not rows:
        raise GenregError(f"{path} has no evaluations yet")
    metric = "metric"
    try:
        import json

        metric = json.loads((run_dir / "summary.json").read_text())["metric"]
    except (OSError, ValueError, KeyError):
        import re

        text = (run_dir / "config.toml").read_text() if (run_dir / "config.toml").exists() else ""
        m = re.search(r'^task = "(\w+)"', text, re.M)
        metric = {"mnist": "accuracy", "trig": "mse"}.get(m.group(1) if m else "", "validation metric")
    plt = _pyplot()
    gen = np.array([r["generation"] for r in rows])
    val = np.array([r["metric"] for r in rows])
    finite = val[np.isfinite(val)]
    # errors spanning decades (trig MSE) read better on a log axis
    log_y = metric in ("mse", "mae") and finite.size > 0 and finite.min() > 0 and finite.max() > 10 * finite.min()
    written = []

    fig, axes = plt.subplots(2, 4, figsize=(15, 7), sharey=True)
    for ax, name in zip(axes.ravel(), TRAITS):
        x = np.array([r[name] for r in rows])
        sc = ax.scatter(x, val, c=gen, cmap="viridis", s=18, alpha=0.8)
        ax.set_xlabel(name)
        if name == "learning_rate":
            ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {metric}")
    fig.colorbar(sc, ax=axes, label="generation", shrink=0.8)
    fig.suptitle(f"{run_dir.name}: traits against validation {metric} ({len(rows)} evaluations)")
    written.append(save_figure(fig, out_dir / "traits_vs_metric.png", dpi=100, tight=False))

    sample = rows[:max_architectures]
    depth = max(len(r["hidden_sizes"]) for r in sample)
    fig, ax = plt.subplots(figsize=(max(8, 0.28 * len(sample) * max(depth, 1)), 4.5))
    colors = plt.get_cmap("tab10")
    width = 0.8 / max(depth, 1)
    labelled = set()
    for i, r in enumerate(sample):
        for l, w in enumerate(r["hidden_sizes"]):
            ax.bar(i + (l - (depth - 1) / 2) * width, w, width=width, color=colors(l % 10),
                   label=None if l in labelled else f"hidden layer {l + 1}")
            labelled.add(l)
    ax.set_xticks(range(len(sample)))
    ax.set_xticklabels([str(int(r["id"])) for r in sample], fontsize=7, rotation=90)
    ax.set_xlabel("individual (id), in evaluation order")
    ax.set_ylabel("layer width (units)")
    ax.set_title(f"{run_dir.name}: hidden-layer widths of {len(sample)} sampled networks "
                 "(cosine profile A·cos(w·linspace(0, π/2, n)))")
    ax.legend(fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    written.append(save_figure(fig, out_dir / "architectures.png", dpi=100))

    gens = np.unique(gen)
    higher = metric == "accuracy"
    best_so_far, best, median = [], None, []
    for g in gens:
        vals = val[gen <= g]
        vals = vals[np.isfinite(vals)]
        best = (vals.max() if higher else vals.min()) if vals.size else np.nan
        best_so_far.append(best)
        cur = val[gen == g]
        median.append(np.nanmedian(cur) if np.isfinite(cur).any() else np.nan)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    ax.scatter(gen, val, s=12, alpha=0.35, color="tab:gray", label="every evaluation")
    ax.plot(gens, median, "s--", color="tab:blue", ms=4, label="median of the generation's evaluations")
    ax.plot(gens, best_so_far, "o-", color="tab:red", label="best so far")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {metric}")
    ax.set_xticks(gens)
    ax.legend()
    ax.grid(alpha=0.3)
    ax.set_title(f"{run_dir.name}: best validation {metric} per generation")
    written.append(save_figure(fig, out_dir / "best_metric.png", dpi=100))

    secs = np.array([r["fitness_seconds"] for r in rows])
    epochs = np.array([r["epochs"] for r in rows])
    merged = np.array([r["merged"] for r in rows]) > 0
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    for mask, label, color in ((~merged, "fresh initialisation", "tab:blue"), (merged, "merged parents", "tab:orange")):
        if mask.any():
            ax1.scatter(gen[mask], secs[mask], s=14, alpha=0.7, color=color, label=label)
            ax2.scatter(gen[mask], epochs[mask], s=14, alpha=0.7, color=color, label=label)
    ax1.set_ylabel("fitness wall time (s)")
    ax2.set_ylabel("epochs trained (early stopping)")
    for ax in (ax1, ax2):
        ax.set_xlabel("generation")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(f"{run_dir.name}: cost of every fitness evaluation")
    written.append(save_figure(fig, out_dir / "fitness_time.png", dpi=100))
    return written
