"""Figures of an architecture-search run directory (``genreg plot RUN_DIR`` on a ``genreg hpo`` run).

- ``traits_vs_metric.png``: every trait against the validation metric, one
  point per fitness evaluation, coloured by generation (the architecture-search
  document's figure);
- ``architectures.png``: hidden-layer widths of the sampled networks, a row of
  numbered cells per individual (its validation metric at the right);
- ``best_metric.png``: best and median validation metric per generation, all
  evaluations behind;
- ``fitness_time.png``: wall time and epochs of every fitness evaluation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from genreg.errors import GenregError
from genreg.plots.common import integer_axis, legend_beside, pyplot as _pyplot, save_figure
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
    written = [
        _traits(plt, run_dir, rows, gen, val, metric, log_y, out_dir / "traits_vs_metric.png"),
        _architectures(plt, run_dir, rows[:max_architectures], metric, out_dir / "architectures.png"),
        _best(plt, run_dir, gen, val, metric, log_y, out_dir / "best_metric.png"),
        _cost(plt, run_dir, rows, gen, out_dir / "fitness_time.png"),
    ]
    return written


def _traits(plt, run_dir, rows, gen, val, metric, log_y, path) -> Path:
    """Every trait against the validation metric, coloured by generation."""
    fig, axes = plt.subplots(2, 4, figsize=(14, 6.6), sharey=True, layout="constrained")
    for ax, name in zip(axes.ravel(), TRAITS):
        x = np.array([r[name] for r in rows])
        sc = ax.scatter(x, val, c=gen, cmap="viridis", s=18, alpha=0.8)
        ax.set_xlabel(name)
        if name == "learning_rate":
            ax.set_xscale("log")
        elif name in ("n_layers", "first_width", "batch_size"):
            integer_axis(ax.xaxis)
        if log_y:
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in axes[:, 0]:
        ax.set_ylabel(f"validation {metric}")
    bar = fig.colorbar(sc, ax=axes, label="generation", shrink=0.8, pad=0.01)
    integer_axis(bar.ax.yaxis)
    fig.suptitle(f"{run_dir.name}: traits against validation {metric} ({len(rows)} evaluations)")
    return save_figure(fig, path)


def _format_metric(value: float, metric: str) -> str:
    if not np.isfinite(value):
        return "failed"
    return f"{100 * value:.1f}%" if metric == "accuracy" else f"{value:.3g}"


def _architectures(plt, run_dir, sample, metric, path, per_column: int = 25) -> Path:
    """Hidden-layer widths: one row of numbered cells per individual, ``per_column`` rows a panel."""
    n = len(sample)
    depth = max(1, max(len(r["hidden_sizes"]) for r in sample))
    widths = np.full((n, depth), np.nan)
    for i, r in enumerate(sample):
        widths[i, : len(r["hidden_sizes"])] = r["hidden_sizes"]
    vmax = np.nanmax(widths) if np.isfinite(widths).any() else 1.0
    panels = -(-n // per_column)
    rows = min(n, per_column)
    fig, axes = plt.subplots(1, panels, figsize=(panels * (2.4 + 0.55 * depth) + 1.2, 0.27 * rows + 1.7),
                             squeeze=False, layout="constrained")
    cmap = plt.get_cmap("Blues").with_extremes(bad="#f2f2f2")  # no such layer: light grey
    for p, ax in enumerate(axes[0]):
        chunk = range(p * per_column, min(n, (p + 1) * per_column))
        im = ax.imshow(np.ma.masked_invalid(widths[chunk.start : chunk.stop]), cmap=cmap, vmin=0, vmax=vmax,
                       aspect="auto", interpolation="nearest")
        for i, k in enumerate(chunk):
            for l in range(depth):
                w = widths[k, l]
                if np.isfinite(w):
                    ax.text(l, i, f"{int(w)}", ha="center", va="center", fontsize=8,
                            color="white" if w > 0.6 * vmax else "black")
        ax.set_xticks(range(depth))
        ax.set_xticklabels([f"layer {l + 1}" for l in range(depth)], fontsize=8)
        ax.xaxis.tick_top()
        ax.set_yticks(range(len(chunk)))
        ax.set_yticklabels([f"#{int(sample[k]['id'])}, gen {int(sample[k]['generation'])}" for k in chunk], fontsize=8)
        ax.tick_params(length=0)
        ax.set_ylim(rows - 0.5, -0.5)  # a short last panel keeps the others' row height
        right = ax.twinx()
        right.set_ylim(ax.get_ylim())
        right.set_yticks(range(len(chunk)))
        right.set_yticklabels([_format_metric(sample[k]["metric"], metric) for k in chunk], fontsize=8)
        right.tick_params(length=0)
        for spine in (*ax.spines.values(), *right.spines.values()):
            spine.set_visible(False)
        if p == 0:
            ax.set_ylabel("individual (#id, generation)")
        right.set_ylabel(f"validation {metric}")
    fig.colorbar(im, ax=axes[0, -1], label="layer width (units)", pad=0.02, shrink=0.6, aspect=25)
    fig.suptitle(f"{run_dir.name}: hidden-layer widths of the first {n} networks evaluated\n"
                 "(cosine profile A·cos(w·linspace(0, π/2, n)))")
    return save_figure(fig, path)


def _best(plt, run_dir, gen, val, metric, log_y, path) -> Path:
    """Every evaluation, the median of each generation and the best so far."""
    gens = np.unique(gen)
    higher = metric == "accuracy"
    best_so_far, median = [], []
    for g in gens:
        vals = val[gen <= g]
        vals = vals[np.isfinite(vals)]
        best_so_far.append((vals.max() if higher else vals.min()) if vals.size else np.nan)
        cur = val[gen == g]
        median.append(np.nanmedian(cur) if np.isfinite(cur).any() else np.nan)
    fig, ax = plt.subplots(figsize=(9.5, 4.5), layout="constrained")
    ax.scatter(gen, val, s=12, alpha=0.35, color="tab:gray", label="every evaluation")
    ax.plot(gens, median, "s--", color="tab:blue", ms=4, label="median of the\ngeneration's evaluations")
    ax.plot(gens, best_so_far, "o-", color="tab:red", label="best so far")
    if log_y:
        ax.set_yscale("log")
    ax.set_xlabel("generation")
    ax.set_ylabel(f"validation {metric}")
    integer_axis(ax.xaxis)
    legend_beside(ax)
    ax.grid(alpha=0.3)
    ax.set_title(f"{run_dir.name}: best validation {metric} per generation")
    return save_figure(fig, path)


def _cost(plt, run_dir, rows, gen, path) -> Path:
    """Wall time and epochs of every fitness evaluation (spread sideways within a generation)."""
    secs = np.array([r["fitness_seconds"] for r in rows])
    epochs = np.array([r["epochs"] for r in rows])
    merged = np.array([r["merged"] for r in rows]) > 0
    # a fixed spread (no randomness): the k-th evaluation of a generation sits at g - 0.3 + 0.6 k / (n - 1)
    x = gen.astype(float).copy()
    for g in np.unique(gen):
        idx = np.flatnonzero(gen == g)
        if idx.size > 1:
            x[idx] += np.linspace(-0.3, 0.3, idx.size)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.4), layout="constrained")
    for mask, label, color in ((~merged, "fresh initialisation", "tab:blue"), (merged, "merged parents", "tab:orange")):
        if mask.any():
            ax1.scatter(x[mask], secs[mask], s=14, alpha=0.7, color=color, label=label)
            ax2.scatter(x[mask], epochs[mask], s=14, alpha=0.7, color=color, label=label)
    ax1.set_ylabel("fitness wall time (s)")
    ax2.set_ylabel("epochs trained (early stopping)")
    integer_axis(ax2.yaxis)
    for ax in (ax1, ax2):
        ax.set_xlabel("generation")
        integer_axis(ax.xaxis)
        ax.grid(alpha=0.3)
    legend_beside(ax2, title="network started from")
    fig.suptitle(f"{run_dir.name}: cost of every fitness evaluation")
    return save_figure(fig, path)
