"""Figures of an evolution run directory (PNG, matplotlib's Agg backend: no display needed).

- ``trust_accuracy.png``: GENREG's trust (or the GA's fitness, named after the run's ``fitness``
  key) of the best genome and the population mean; below it the episode accuracy (or MSE) of the
  best genome and the population, and the best genome's validation accuracy (or MSE).
- ``per_digit.png`` (MNIST) / ``per_class.png`` (any other classification task): the best
  genome's episode accuracy for each class: a heat-map of class x generation, above it one line
  a class when there are at most 10 classes.
- ``tracked_weights.png``: the fixed tracked first-layer weights of the best genome as a heat-map
  of weight x generation, and the five that moved most as labelled lines (a ConvNet's tracked
  weights are the same positions of its row, where its filters come first).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.errors import GenregError
from genreg.plots.common import (block_means, class_names, fitness_label, integer_axis, legend_beside, moving_window,
                                 pyplot, read_config, reports_centre, save_figure)
from genreg.runs.history import read_history

_pyplot = pyplot  # the names genreg.hybrid.attacks imports
__all__ = ["plot_run", "save_figure"]

#: Classes drawn as lines too (beyond this, the heat-map alone stays readable).
MAX_CLASS_LINES = 10


def plot_run(run_dir, out_dir=None) -> list[Path]:
    """Write the run's figures (see the module docstring); returns their paths."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.exists():
        raise GenregError(f"{run_dir} has no metrics.csv: not a run directory, or no generation finished yet")
    m = read_history(metrics_path)
    missing = [c for c in ("generation", "best_fitness", "mean_fitness") if c not in m]
    if m and missing:
        raise GenregError(f"{metrics_path} has no column {missing[0]!r}: its header row is damaged, or it is not a "
                          f"run's metrics")
    if not m or m["generation"].size == 0:
        raise GenregError(f"{metrics_path} has no rows yet")
    cfg = read_config(run_dir)
    written = [_fitness_figure(run_dir, m, cfg, out_dir)]
    classes = [k for k in m if k.startswith("class_")]
    if classes:
        names = class_names(run_dir, len(classes), cfg)
        noun = "digit" if str(cfg.get("task", "mnist")).lower() == "mnist" else "class"
        written.append(_per_class(run_dir, m, classes, names, out_dir / f"per_{noun}.png", noun, shown(cfg)))
    weights_path = run_dir / "tracked_weights.csv"
    if weights_path.exists():
        w = read_history(weights_path)
        if w and w["generation"].size and len(w) > 1:
            written.append(_tracked_weights(run_dir, w, out_dir / "tracked_weights.png", conv=bool(cfg.get("conv")),
                                            whose=shown(cfg)))
    return written


def _fitness_figure(run_dir: Path, m: dict, cfg: dict, out_dir: Path) -> Path:
    """``trust_accuracy.png``: trust / fitness above accuracy / MSE, one generation axis."""
    plt = pyplot()
    g = m["generation"]
    kind = "accuracy" if "best_accuracy" in m else "mse" if "best_mse" in m else None
    noun, ylabel = fitness_label(cfg, regression=kind == "mse", labelled=kind is not None)
    rows = 2 if kind else 1
    fig, axes = plt.subplots(rows, 1, figsize=(10, 3.6 * rows + 0.6), sharex=True, squeeze=False,
                             layout="constrained")
    ax1 = axes[0, 0]
    ax1.plot(g, m["best_fitness"], label=f"best {noun}", color="tab:blue")
    ax1.plot(g, m["mean_fitness"], label=f"mean {noun}", color="tab:blue", alpha=0.45)
    ax1.set_ylabel(ylabel)
    ax1.grid(alpha=0.3)
    legend_beside(ax1)
    if kind:
        ax2 = axes[1, 0]
        scale, unit = (100, "accuracy (%)") if kind == "accuracy" else (1, "mean squared error\n(standardised targets)")
        whose = shown(cfg)
        ax2.plot(g, scale * m[f"best_{kind}"], label=f"{whose},\nepisode", color="tab:orange", alpha=0.7, lw=0.8)
        ax2.plot(g, scale * m[f"mean_{kind}"], label="population mean,\nepisode", color="tab:gray", alpha=0.7, lw=0.8)
        val = ~np.isnan(m[f"validation_{kind}"])
        if val.any():
            ax2.plot(g[val], scale * m[f"validation_{kind}"][val], "o-", ms=3, label=f"{whose},\nvalidation",
                     color="tab:green")
        ax2.set_ylabel(unit)
        if kind == "accuracy":
            ax2.set_ylim(0, 100)
        ax2.grid(alpha=0.3)
        legend_beside(ax2)
    axes[-1, 0].set_xlabel("generation")
    integer_axis(axes[-1, 0].xaxis)
    strategy = f"strategy {cfg['strategy']}" if cfg.get("strategy") else "evolution"
    task = f", task {cfg['task']}" if cfg.get("task") else ""
    what = {"accuracy": " and accuracy", "mse": " and mean squared error", None: ""}[kind]
    fig.suptitle(f"{run_dir.name}: {strategy}{task}: {noun}{what}")
    return save_figure(fig, out_dir / "trust_accuracy.png")


def shown(cfg: dict) -> str:
    """Whose curves a run's metrics hold: an evolution strategy's centre, else the best genome."""
    return "centre" if reports_centre(cfg) else "best genome"


def _per_class(run_dir: Path, m: dict, classes: list[str], names: list[str], path: Path, noun: str = "class",
               whose: str = "best genome") -> Path:
    """The best genome's (or the centre's) episode accuracy per class: lines (up to 10 classes) above a heat-map."""
    plt = pyplot()
    g = m["generation"]
    acc = 100 * np.stack([m[c] for c in classes])  # (k, generations)
    k = len(classes)
    window = moving_window(g.size)
    lines = k <= MAX_CLASS_LINES
    heat_height = max(2.6, 0.24 * k + 0.8)
    if lines:
        fig, (ax_l, ax_h) = plt.subplots(2, 1, figsize=(10, 3.6 + heat_height), sharex=True, layout="constrained",
                                         gridspec_kw={"height_ratios": [3.2, heat_height]})
        colors = plt.get_cmap("tab10")
        kernel = np.ones(window) / window  # each point: the mean of the window centred on it
        for d, name in enumerate(names):
            smooth = np.convolve(acc[d], kernel, mode="valid")
            ax_l.plot(g[window - 1 :] - (window - 1) / 2, smooth, color=colors(d % 10), lw=1.2, label=name)
        ax_l.set_ylabel("episode accuracy (%)")
        ax_l.set_ylim(0, 100)
        ax_l.grid(alpha=0.3)
        legend_beside(ax_l, title=noun)
    else:
        fig, ax_h = plt.subplots(figsize=(10, heat_height + 0.9), layout="constrained")
    blocks = block_means(acc, window)
    edges = np.append(g[::window], g[-1] + 1).astype(float) - 0.5  # a cell is centred on its generations
    mesh = ax_h.pcolormesh(edges, np.arange(k + 1) - 0.5, blocks, vmin=0, vmax=100, cmap="viridis")
    ax_h.set_yticks(range(k))
    ax_h.set_yticklabels(names, fontsize=9 if k <= 30 else 7)
    ax_h.invert_yaxis()  # class 0 on top, as in the legend
    ax_h.set_ylabel(noun)
    ax_h.set_xlabel("generation")
    integer_axis(ax_h.xaxis)
    fig.colorbar(mesh, ax=ax_h, label="episode accuracy (%)", pad=0.02, aspect=15)
    mean = f"mean over {window} generations" if window > 1 else "each generation"
    fig.suptitle(f"{run_dir.name}: {whose}'s episode accuracy per {noun} ({mean})")
    return save_figure(fig, path)


def _tracked_weights(run_dir: Path, w: dict, path: Path, n_lines: int = 5, conv: bool = False,
                     whose: str = "best genome") -> Path:
    """Heat-map of tracked weight x generation (rows sorted by final value) and the ``n_lines`` that moved most."""
    plt = pyplot()
    g = w["generation"]
    names = [k for k in w if k != "generation"]
    values = np.stack([w[k] for k in names])  # (n, generations)
    order = np.argsort(values[:, -1], kind="stable")
    finite = np.abs(values[np.isfinite(values)])
    lim = float(np.percentile(finite, 99)) if finite.size else 1.0
    lim = lim if lim > 0 else 1.0
    fig, (ax_h, ax_l) = plt.subplots(2, 1, figsize=(10, 8), sharex=True, layout="constrained",
                                     gridspec_kw={"height_ratios": [5, 3]})
    edges = np.append(g, g[-1] + 1).astype(float) - 0.5
    mesh = ax_h.pcolormesh(edges, np.arange(len(names) + 1), values[order], cmap="RdBu_r", vmin=-lim, vmax=lim)
    ax_h.set_ylabel(f"tracked weight\n(sorted by final value, {len(names)} in all)")
    integer_axis(ax_h.yaxis)
    fig.colorbar(mesh, ax=ax_h, label="weight value", pad=0.02, extend="both", shrink=0.9, aspect=25)
    moved = np.nan_to_num(np.abs(values[:, -1] - values[:, 0]), nan=-1.0)
    for i in np.argsort(-moved, kind="stable")[:n_lines]:
        first, last = (round(float(v), 2) + 0.0 for v in (values[i, 0], values[i, -1]))  # no "-0.00"
        ax_l.plot(g, values[i], lw=1.0, label=f"{names[i]}: {first:+.2f} → {last:+.2f}")
    ax_l.axhline(0, color="k", lw=0.5, alpha=0.5)
    ax_l.set_ylabel("weight value")
    ax_l.set_xlabel("generation")
    ax_l.grid(alpha=0.3)
    entry = "K-th parameter of the row,\nfilters first" if conv else "K-th entry of W0"
    legend_beside(ax_l, title=f"the {min(n_lines, len(names))} that moved most\n(wK: {entry})")
    integer_axis(ax_l.xaxis)
    what = "fixed weights (filters first)" if conv else "fixed first-layer weights"
    fig.suptitle(f"{run_dir.name}: {what} of the {whose}, over generations")
    return save_figure(fig, path)
