"""Figures of a hybrid run: the similarity between members per generation, mean similarity, accuracy.

- ``similarity_genNNNNN.png``: for one generation, a row of 2-D PCA scatter
  plots of each layer gene's P x P cosine-similarity matrix (a point = a
  member, coloured by validation accuracy) above a row of histograms of the
  similarities between distinct members.
- ``similarity_mean.png``: mean similarity between distinct members per layer
  gene over generations (one line per layer).
- ``accuracy.png``: best, mean and worst validation accuracy of the kept population.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.hybrid.diversity import offdiagonal, pca_2d
from genreg.errors import GenregError
from genreg.hybrid.run import read_similarity
from genreg.plots.common import integer_axis, legend_beside, pyplot as _pyplot, read_config, save_figure
from genreg.runs.history import read_history


def _metric(run_dir: Path, metrics: dict | None = None) -> str:
    """'accuracy' (classification: fitness is validation accuracy) or 'mse' (regression: fitness is -MSE)."""
    if metrics:
        return "accuracy" if "best_val_accuracy" in metrics else "mse"
    task = str(read_config(run_dir).get("task", "mnist")).lower()
    return "accuracy" if task in ("mnist", "fashion-mnist") else "mse"


def _similarity_files(run_dir: Path) -> dict[int, Path]:
    found = {}
    for path in (run_dir / "similarity").glob("gen*.h5"):
        digits = path.stem[3:]
        if digits.isdigit():
            found[int(digits)] = path
    return dict(sorted(found.items()))


def parse_generations(text, available) -> list[int]:
    """``"0,3,6"`` -> [0, 3, 6] (each must have been recorded); None -> first, middle, last."""
    available = sorted(available)
    if text is None or text == "":
        picks = [available[0], available[len(available) // 2], available[-1]]
        return sorted(set(picks))
    try:
        picks = [int(x) for x in str(text).split(",") if x.strip()]
    except ValueError:
        raise GenregError(f"--snapshots expects comma-separated generation numbers, got {text!r}") from None
    missing = [g for g in picks if g not in available]
    if missing:
        raise GenregError(f"no similarity recorded for generation(s) {missing}; recorded: {available}")
    return picks


def plot_similarity_generation(sim: dict, path: Path, title: str, metric: str = "accuracy") -> Path:
    """Two rows for one generation: PCA scatters and similarity histograms, one column per layer gene.

    metric: 'accuracy' (fitness = validation accuracy, shown in %) or 'mse' (fitness = -MSE, shown as MSE).
    """
    plt = _pyplot()
    names, layers, fitness = sim["layer_names"], sim["layers"], np.asarray(sim["fitness"], dtype=float)
    L = len(names)
    fig, axes = plt.subplots(2, L, figsize=(3.4 * L + 1.4, 6.6), squeeze=False, layout="constrained")
    shown, label = (100 * fitness, "validation accuracy (%)") if metric == "accuracy" else (-fitness, "validation MSE")
    scored = np.isfinite(shown).any()
    colour = np.nan_to_num(shown, nan=np.nanmin(shown) if scored else 0)
    for j, (name, S) in enumerate(zip(names, layers)):
        xy = pca_2d(S)
        if scored:
            sc = axes[0, j].scatter(xy[:, 0], xy[:, 1], c=colour, cmap="viridis", s=28, edgecolors="k",
                                    linewidths=0.3)
        else:  # generation 0: untrained founders, no fitness yet
            axes[0, j].scatter(xy[:, 0], xy[:, 1], color="tab:blue", s=28, edgecolors="k", linewidths=0.3)
        axes[0, j].set_title(f"layer {name}: members in 2-D (PCA)")
        axes[0, j].set_xlabel("PC 1")
        axes[0, j].grid(alpha=0.3)
        values = offdiagonal(S)
        axes[1, j].hist(values, bins=40, range=(min(-0.1, float(values.min(initial=0))), 1.0), color="tab:orange")
        axes[1, j].set_title(f"layer {name}: mean {round(values.mean(), 2) + 0.0 if values.size else float('nan'):.2f}")
        axes[1, j].set_xlabel("cosine similarity")
        integer_axis(axes[1, j].yaxis)
    axes[0, 0].set_ylabel("PC 2")
    axes[1, 0].set_ylabel("pairs of members")
    if scored:
        fig.colorbar(sc, ax=axes[0, -1], label=label)
    else:
        title += " (untrained founders: not scored yet)"
    fig.suptitle(title)
    return save_figure(fig, path)


def plot_hybrid_run(run_dir, out_dir=None, generations=None) -> list[Path]:
    """Write the hybrid run's figures (see module docstring); returns their paths."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    files = _similarity_files(run_dir)
    if not files:
        raise GenregError(f"{run_dir}/similarity holds no similarity files: no generation recorded yet")
    plt = _pyplot()
    metrics_path = run_dir / "metrics.csv"
    m = read_history(metrics_path) if metrics_path.exists() else None
    metric = _metric(run_dir, m)
    written = []
    for g in parse_generations(generations, files):
        sim = read_similarity(files[g])
        written.append(plot_similarity_generation(sim, out_dir / f"similarity_gen{g:05d}.png",
                                                  f"{run_dir.name}: generation {g}", metric))

    sims = {g: read_similarity(p) for g, p in files.items()}
    names = next(iter(sims.values()))["layer_names"]
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    gens = np.array(list(sims))
    for j, name in enumerate(names):
        means = [offdiagonal(s["layers"][j]).mean() for s in sims.values()]
        ax.plot(gens, means, "o-", label=f"layer {name}")
    ax.set_xlabel("generation")
    ax.set_ylabel("mean cosine similarity between members")
    ax.set_ylim(min(-0.05, ax.get_ylim()[0]), 1.02)
    integer_axis(ax.xaxis)
    ax.grid(alpha=0.3)
    legend_beside(ax)
    ax.set_title(f"{run_dir.name}: diversity per layer gene")
    written.append(save_figure(fig, out_dir / "similarity_mean.png"))

    if m and m["generation"].size:
        fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
        scale, unit = (100, "validation accuracy (%)") if metric == "accuracy" else (1, "validation MSE")
        for label in ("best", "mean", "worst"):
            ax.plot(m["generation"], scale * m[f"{label}_val_{metric}"], "o-", label=f"{label} of the kept population")
        ax.set_xlabel("generation")
        integer_axis(ax.xaxis)
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
        legend_beside(ax)
        ax.set_title(f"{run_dir.name}: {unit}")
        written.append(save_figure(fig, out_dir / "accuracy.png"))
    return written


#: The experiments drawn on the epsilon curve: key in a sweep summary, label, colour.
SWEEP_CURVES = (("self", "(a) member on itself", "tab:red"),
                ("transfer", "(b) member to member", "tab:blue"),
                ("children_transfer", "(c) child to child", "tab:green"),
                ("working_transfer", "(c') working child to working child", "tab:olive"),
                ("working_source_transfer", "(c'') working child to any child", "tab:purple"))


def plot_attack_sweep(summary: dict, path) -> Path:
    """Accuracy under attack against epsilon, one panel per network shape, from ``sweep_across_runs``.

    A line is the mean over runs of each experiment's mean accuracy (band: min to max over runs);
    stars at epsilon 0.05 are the published attack (effective epsilon 0.05 / 0.3081, unclipped).
    """
    plt = _pyplot()
    groups = summary["groups"]
    fig, axes = plt.subplots(1, len(groups), figsize=(5.6 * len(groups) + 2.4, 4.6), squeeze=False,
                             layout="constrained", sharey=True)
    for ax, g in zip(axes[0], groups):
        eps = np.array([p["epsilon"] for p in g["points"]])
        nudge = 0.012 * (eps.max() - eps.min() if eps.size > 1 else 0.1)  # side by side, not on top of each other
        for k, (key, label, colour) in enumerate(SWEEP_CURVES):
            stats = [p[key] for p in g["points"]]
            if not all("mean" in s for s in stats):
                continue
            mean = 100 * np.array([s["mean"] for s in stats])
            ax.plot(eps, mean, marker="o", color=colour, label=label, markersize=4,
                    linestyle="--" if key.startswith("working") else "-")
            if len(g["runs"]) > 1:
                ax.fill_between(eps, [100 * s["min"] for s in stats], [100 * s["max"] for s in stats],
                                color=colour, alpha=0.15, linewidth=0)
            pub = g["published"][key]
            if "mean" in pub:
                low, high = max(0.0, pub["mean"] - pub["min"]), max(0.0, pub["max"] - pub["mean"])
                ax.errorbar([g["published"]["epsilon"] + (k - 2) * nudge], [100 * pub["mean"]], fmt="*",
                            color=colour, markersize=13, markeredgecolor="k", markeredgewidth=0.6,
                            yerr=[[100 * low], [100 * high]], capsize=3)
        clean = 100 * np.mean([p["members_clean"]["mean"] for p in g["points"]])
        ax.axhline(clean, color="grey", linewidth=0.8, linestyle=":")
        ax.text(eps.max(), clean, "members, clean ", ha="right", va="bottom", fontsize=8, color="grey")
        ax.set_xlabel("epsilon (L-infinity, pixels in [0, 1]; clipped to [0, 1])")
        ax.set_title(f"{g['shape']}: {len(g['runs'])} run{'s' if len(g['runs']) > 1 else ''}")
        ax.set_ylim(0, 100)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("accuracy under attack (%)")
    pub = groups[0]["published"]
    axes[0, -1].plot([], [], "*", color="w", markeredgecolor="k", markersize=13,
                     label=f"published attack at {pub['epsilon']:g}\n(= {pub['effective_epsilon']:.3f} unclipped,\n"
                           "misclassified unattacked)")
    legend_beside(axes[0, -1])
    fig.suptitle(f"{summary['method'].upper()} on {summary['n_images']} test images: accuracy against epsilon"
                 f"{' (line: mean over runs, band: min-max)' if any(len(g['runs']) > 1 for g in groups) else ''}")
    return save_figure(fig, path)
