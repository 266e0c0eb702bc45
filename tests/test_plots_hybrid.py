"""Figures of a hybrid run (genreg.plots.hybrid) and the attack heat-map: labels, integer
generation ticks, legends beside the data, nothing clipped; on synthetic run directories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.hybrid.run import SIM_FORMAT
from genreg.plots import hybrid as plots_hybrid
from genreg.plots.hybrid import plot_hybrid_run
from genreg.runs.store import atomic_h5, write_dataset
from test_plots_common import (assert_integer_ticks, assert_legend_beside, capture, png_size, renderer, texts)


def write_hybrid_run(root, *, generations=4, P=8, metric="accuracy", seed=0):
    """A synthetic hybrid run: config.toml, metrics.csv from generation 1, one similarity file a generation."""
    rng = np.random.default_rng(seed)
    (root / "similarity").mkdir(parents=True)
    (root / "config.toml").write_text(f'task = "{"mnist" if metric == "accuracy" else "wine"}"\n')
    names = ["1", "2", "3"]
    for g in range(generations + 1):
        layers = []
        for _ in names:
            X = rng.normal(size=(P, 20)) + g * rng.normal(size=20)  # members grow alike
            X /= np.linalg.norm(X, axis=1, keepdims=True)
            layers.append(X @ X.T)
        quality = 0.5 + 0.1 * g + 0.02 * rng.random(P) if metric == "accuracy" else -(1.0 - 0.1 * g) - rng.random(P)
        fitness = np.full(P, np.nan) if g == 0 else quality
        with atomic_h5(root / "similarity" / f"gen{g:05d}.h5") as f:
            f.attrs["format"] = SIM_FORMAT
            f.attrs["generation"] = g
            f.attrs["layer_names"] = json.dumps(names)
            write_dataset(f, "layers", np.asarray(layers, dtype=np.float32))
            write_dataset(f, "fitness", fitness)
            write_dataset(f, "ids", np.arange(P))
    key = "accuracy" if metric == "accuracy" else "mse"
    rows = [f"generation,best_val_{key},mean_val_{key},worst_val_{key}"]
    for g in range(1, generations + 1):
        base = [0.6, 0.55, 0.5] if key == "accuracy" else [1.0, 1.1, 1.2]
        v = [b + 0.05 * g if key == "accuracy" else b - 0.1 * g for b in base]
        rows.append(f"{g}," + ",".join(repr(x) for x in v))
    (root / "metrics.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture
def figures(monkeypatch):
    return capture(monkeypatch, plots_hybrid)


def test_hybrid_figures(tmp_path, figures):
    run = write_hybrid_run(tmp_path / "hybrid")
    written = plot_hybrid_run(run)
    assert [p.name for p in written] == ["similarity_gen00000.png", "similarity_gen00002.png",
                                         "similarity_gen00004.png", "similarity_mean.png", "accuracy.png"]
    for path in written:
        width, height = png_size(path)
        assert width <= 1600 and height <= 1000, (path.name, width, height)
    # similarity per generation: PCA axes named, the colour bar in % of validation accuracy
    fig = figures["similarity_gen00004.png"]
    assert fig.axes[0].get_xlabel() == "PC 1" and fig.axes[0].get_ylabel() == "PC 2"
    assert fig.axes[3].get_xlabel() == "cosine similarity" and fig.axes[3].get_ylabel() == "pairs of members"
    assert fig.axes[-1].get_ylabel() == "validation accuracy (%)"
    assert "untrained founders" in texts(figures["similarity_gen00000.png"])
    # four generations: integer ticks (no 0.5, 1.25), legends beside the lines
    for name, ylabel in (("similarity_mean.png", "mean cosine similarity between members"),
                         ("accuracy.png", "validation accuracy (%)")):
        (ax,) = figures[name].axes
        assert ax.get_xlabel() == "generation" and ax.get_ylabel() == ylabel
        assert_integer_ticks(ax.xaxis)
        assert_legend_beside(ax)


def test_hybrid_regression_figures(tmp_path, figures):
    plot_hybrid_run(write_hybrid_run(tmp_path / "wine", metric="mse", generations=2), generations="2")
    assert figures["similarity_gen00002.png"].axes[-1].get_ylabel() == "validation MSE"
    (ax,) = figures["accuracy.png"].axes
    assert ax.get_ylabel() == "validation MSE"
    assert_integer_ticks(ax.xaxis)


def test_attack_heat_map_keeps_its_labels(tmp_path, monkeypatch):
    """Eight members: the x-labels under the heat-maps are inside the PNG (they were clipped)."""
    from genreg.hybrid import attacks
    from genreg.plots import common

    seen = {}
    real = common.save_figure

    def spy(fig, path, *args, **kwargs):
        seen["fig"] = fig
        return real(fig, path, *args, **kwargs)

    monkeypatch.setattr(common, "save_figure", spy)
    monkeypatch.setattr("genreg.plots.run.save_figure", spy)
    rng = np.random.default_rng(0)
    report = {"method": "fgsm", "epsilon": 0.05, "shape": "784-256-128-10", "n_images": 200,
              "members": {"matrix": rng.random((8, 8)).tolist()}, "children": {"matrix": rng.random((8, 8)).tolist()}}
    path = attacks.plot_transfer(report, tmp_path / "attack.png")
    fig = seen["fig"]
    width, height = png_size(path)
    tight = fig.get_tightbbox(renderer(fig))
    assert height >= tight.height * common.DPI - 1 and width >= tight.width * common.DPI - 1
    assert [ax.get_xlabel() for ax in fig.axes[:1]] == ["target network"]
