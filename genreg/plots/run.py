"""Figures of a run directory (PNG, matplotlib's Agg backend: no display needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.errors import GenregError
from genreg.runs.store import read_history


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = 110, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG) and close it; ``tight``: apply ``tight_layout`` first.  Returns ``path``."""
    if tight:
        fig.tight_layout()
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)  # `plot --out` may name a new folder
        fig.savefig(path, dpi=dpi)
    finally:
        _pyplot().close(fig)
    return path


def plot_run(run_dir, out_dir=None) -> list[Path]:
    """Write the run's figures; returns their paths.

    - ``trust_accuracy.png``: best and mean trust; best and mean episode accuracy
      and validation accuracy of the best genome, over generations.
    - ``per_digit.png``: the best genome's episode accuracy for each digit.
    - ``tracked_weights.png``: the values of the fixed tracked weights of the best genome.
    """
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    metrics_path = run_dir / "metrics.csv"
    if not metrics_path.exists():
        raise GenregError(f"{run_dir} has no metrics.csv: not a run directory, or no generation finished yet")
    m = read_history(metrics_path)
    if not m or m["generation"].size == 0:
        raise GenregError(f"{metrics_path} has no rows yet")
    plt = _pyplot()
    g = m["generation"]
    written = []

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(9, 7), sharex=True)
    ax1.plot(g, m["best_fitness"], label="best fitness", color="tab:blue")
    ax1.plot(g, m["mean_fitness"], label="mean fitness", color="tab:blue", alpha=0.45)
    ax1.set_ylabel("fitness (GENREG: trust)")
    ax1.legend(loc="lower right")
    ax1.grid(alpha=0.3)
    # classification: accuracy in %; regression: mean squared error (standardised targets)
    kind, scale, unit = ("accuracy", 100, "accuracy (%)") if "best_accuracy" in m else ("mse", 1, "mean squared error")
    if f"best_{kind}" in m:
        ax2.plot(g, scale * m[f"best_{kind}"], label="best genome, episode", color="tab:orange", alpha=0.6, lw=0.8)
        ax2.plot(g, scale * m[f"mean_{kind}"], label="population mean, episode", color="tab:gray", alpha=0.6, lw=0.8)
        val = ~np.isnan(m[f"validation_{kind}"])
        if val.any():
            ax2.plot(g[val], scale * m[f"validation_{kind}"][val], "o-", ms=3, label="best genome, validation",
                     color="tab:green")
        ax2.set_ylabel(unit)
        if kind == "accuracy":
            ax2.set_ylim(0, 100)
        ax2.legend(loc="lower right")
    ax2.set_xlabel("generation")
    ax2.grid(alpha=0.3)
    fig.suptitle(f"{run_dir.name}: fitness and {kind}")
    written.append(save_figure(fig, out_dir / "trust_accuracy.png"))

    classes = [k for k in m if k.startswith("class_")]
    if classes:
        written.append(_per_class(plt, run_dir, m, g, classes, out_dir))
    weights_path = run_dir / "tracked_weights.csv"
    if weights_path.exists():
        w = read_history(weights_path)
        names = [k for k in w if k != "generation"]
        if names:
            fig, ax = plt.subplots(figsize=(9, 5))
            values = np.stack([w[k] for k in names], axis=1)
            ax.plot(w["generation"], values, lw=0.7, alpha=0.8)
            ax.set_xlabel("generation")
            ax.set_ylabel("weight value")
            ax.set_title(f"{run_dir.name}: {len(names)} fixed first-layer weights of the best genome")
            ax.grid(alpha=0.3)
            written.append(save_figure(fig, out_dir / "tracked_weights.png"))
    return written


def _per_class(plt, run_dir, m, g, classes, out_dir):
    """``per_digit.png``: the best genome's episode accuracy for each class (moving mean)."""
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = plt.get_cmap("tab10")
    window = max(1, g.size // 50)
    kernel = np.ones(window) / window
    for d, name in enumerate(classes):
        acc = 100 * m[name]
        smooth = np.convolve(acc, kernel, mode="valid")
        ax.plot(g[window - 1 :], smooth, color=colors(d % 10), label=name[len("class_"):])
    ax.set_xlabel("generation")
    ax.set_ylabel(f"episode accuracy of best genome (%)\n(moving mean over {window} generations)")
    ax.set_ylim(0, 100)
    ax.legend(title="class", ncol=5, loc="lower right")
    ax.grid(alpha=0.3)
    ax.set_title(f"{run_dir.name}: per-class accuracy")
    return save_figure(fig, out_dir / "per_digit.png")

