"""Figures of an architecture-search run (genreg.plots.hpo): labels, integer ticks, legends beside
the data, readable sizes; on synthetic run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.hpo.traits import TRAITS
from genreg.plots import hpo as plots_hpo
from genreg.plots.hpo import plot_hpo_run
from test_plots_common import assert_integer_ticks, assert_legend_beside, capture, png_size

COLUMNS = ["generation", "id", "parent_a", "parent_b", "provenance", "merged", *TRAITS, "hidden_sizes", "n_params",
           "init_metric", "metric", "epochs", "fitness_seconds", "fitness_cpu_seconds", "merge_seconds", "error"]


def write_hpo_run(root, *, generations=4, population=12, metric="mse", seed=0, epochs=None):
    """A synthetic search: evaluations.csv and summary.json."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    rows = [",".join(COLUMNS)]
    k = 0
    for g in range(generations):
        for _ in range(population):
            n_layers = int(rng.integers(1, 5))
            sizes = sorted(rng.integers(2, 65, size=n_layers), reverse=True)
            traits = {"n_layers": n_layers, "first_width": sizes[0], "width_decay": rng.random(),
                      "batch_size": int(rng.integers(16, 129)), "learning_rate": 10 ** rng.uniform(-3, -0.5),
                      "momentum": rng.random(), "lr_decay": rng.random() / 100, "dropout": rng.random() / 3}
            value = rng.random() if metric == "accuracy" else 10 ** rng.uniform(-4 - g / 2, -1)
            merged = int(g > 0 and rng.random() < 0.5)
            values = {"generation": g, "id": k, "parent_a": -1, "parent_b": -1, "provenance": "r", "merged": merged,
                      **traits, "hidden_sizes": "-".join(str(s) for s in sizes), "n_params": 100, "init_metric": 1.0,
                      "metric": value, "epochs": epochs or int(rng.integers(2, 6)), "fitness_seconds": rng.random(),
                      "fitness_cpu_seconds": rng.random(), "merge_seconds": 0.0, "error": ""}
            rows.append(",".join(str(values[c]) for c in COLUMNS))
            k += 1
    (root / "evaluations.csv").write_text("\n".join(rows) + "\n")
    (root / "summary.json").write_text(json.dumps({"metric": metric}))
    return root


@pytest.fixture
def figures(monkeypatch):
    return capture(monkeypatch, plots_hpo)


def test_hpo_figures(tmp_path, figures):
    run = write_hpo_run(tmp_path / "hpo", generations=5, population=12)  # 60 evaluations
    written = plot_hpo_run(run)
    assert [p.name for p in written] == ["traits_vs_metric.png", "architectures.png", "best_metric.png",
                                         "fitness_time.png"]
    for path in written:
        width, height = png_size(path)
        assert width <= 1600 and height <= 1000, (path.name, width, height)

    fig = figures["traits_vs_metric.png"]
    panels = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert [ax.get_xlabel() for ax in panels] == list(TRAITS)
    assert panels[0].get_ylabel() == "validation mse"
    assert_integer_ticks(panels[TRAITS.index("n_layers")].xaxis)
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylabel() == "generation"
    assert_integer_ticks(bar.yaxis)
    # no wide empty margin: the panels fill most of the figure's width
    left = min(ax.get_position().x0 for ax in panels)
    right = max(ax.get_position().x1 for ax in fig.axes)
    assert left < 0.08 and right > 0.92

    # architectures: 50 individuals, one labelled row each, widths written in the cells, a few columns
    fig = figures["architectures.png"]
    grids = [ax for ax in fig.axes if ax.get_label() != "<colorbar>" and ax.images]
    assert len(grids) == 2
    labels = [t.get_text() for ax in grids for t in ax.get_yticklabels()]
    assert len(labels) == 50 and labels[0] == "#0, gen 0"
    assert [t.get_text() for t in grids[0].get_xticklabels()][0] == "layer 1"
    assert sum(len(ax.texts) for ax in grids) >= 50
    assert all(t.get_fontsize() >= 8 for ax in grids for t in ax.texts)
    (bar,) = [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]
    assert bar.get_ylabel() == "layer width (units)"

    (ax,) = figures["best_metric.png"].axes
    assert ax.get_xlabel() == "generation" and ax.get_ylabel() == "validation mse"
    assert_integer_ticks(ax.xaxis)
    assert_legend_beside(ax)

    ax1, ax2 = figures["fitness_time.png"].axes
    assert ax1.get_ylabel() == "fitness wall time (s)" and ax2.get_ylabel() == "epochs trained (early stopping)"
    for ax in (ax1, ax2):
        assert ax.get_xlabel() == "generation"
        assert_integer_ticks(ax.xaxis)
    assert_integer_ticks(ax2.yaxis)
    assert_legend_beside(ax2)


def test_hpo_accuracy_run_with_few_generations(tmp_path, figures):
    plot_hpo_run(write_hpo_run(tmp_path / "mnist", generations=2, population=5, metric="accuracy", epochs=5))
    (ax,) = figures["best_metric.png"].axes
    assert ax.get_ylabel() == "validation accuracy"
    assert_integer_ticks(ax.xaxis)  # two generations: 0 and 1, no 0.25
    for ax in figures["fitness_time.png"].axes:  # every run trained 5 epochs: the tick is 5, not 4.8, 4.9 ...
        assert_integer_ticks(ax.xaxis)
        if "epochs" in ax.get_ylabel():
            assert_integer_ticks(ax.yaxis)
    grids = [a for a in figures["architectures.png"].axes if a.images]
    assert len(grids) == 1
    right = [a for a in figures["architectures.png"].axes if a.get_ylabel() == "validation accuracy"]
    assert right and right[0].get_yticklabels()[0].get_text().endswith("%")
