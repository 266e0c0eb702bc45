"""``genreg plot`` on an evolution run (genreg.plots.run): the figures, their labels per strategy
and task, integer generation ticks, legends beside the data; a clear error on an empty directory."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.cli import main as cli
from genreg.plots import run as plots_run
from genreg.plots.run import plot_run
from helpers import determinism_runs
from test_plots_common import assert_integer_ticks, assert_legend_beside, capture, png_size, texts


def write_run(root, *, strategy="genreg", fitness="accuracy", task="mnist", kind="classification",
              n_classes=10, generations=120, n_weights=100, classes_key=None, seed=0):
    """A synthetic evolution run directory: config.toml, metrics.csv, tracked_weights.csv."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    lines = [f'task = "{task}"', f'strategy = "{strategy}"', f'fitness = "{fitness}"', f"generations = {generations}"]
    if classes_key:
        lines.append("classes = [" + ", ".join(f'"{c}"' for c in classes_key) + "]")
    (root / "config.toml").write_text("\n".join(lines) + "\n")
    g = np.arange(generations)
    t = g / max(1, generations - 1)
    cols = {"generation": g, "best_fitness": 100 * t + rng.normal(0, 3, g.size),
            "mean_fitness": 80 * t + rng.normal(0, 3, g.size)}
    if kind == "classification":
        cols |= {"best_accuracy": 0.2 + 0.6 * t, "mean_accuracy": 0.1 + 0.5 * t,
                 "validation_accuracy": np.where(g % 10 == 0, 0.15 + 0.6 * t, np.nan)}
        for k in range(n_classes):  # class 3 rises late, as on MNIST
            late = np.clip((t - 0.8) * 5, 0, 1) if k == 3 else t
            cols[f"class_{k}"] = np.clip(late + rng.normal(0, 0.1, g.size), 0, 1)
    elif kind == "regression":
        cols |= {"best_mse": 1 - 0.5 * t, "mean_mse": 1.2 - 0.5 * t,
                 "validation_mse": np.where(g % 10 == 0, 1 - 0.4 * t, np.nan)}
    cols |= {"eval_seconds": np.full(g.size, 0.1), "breed_seconds": np.full(g.size, 0.01),
             "mutation_scale": np.full(g.size, 0.03)}
    header = list(cols)
    body = np.stack([np.asarray(cols[c], dtype=float) for c in header], axis=1)
    text = ",".join(header) + "\n" + "\n".join(
        ",".join([str(int(r[0]))] + ["" if np.isnan(v) else repr(float(v)) for v in r[1:]]) for r in body)
    (root / "metrics.csv").write_text(text + "\n")
    if n_weights:
        w = np.cumsum(rng.normal(0, 0.01, (generations, n_weights)), axis=0)
        names = [f"w{k * 37}" for k in range(n_weights)]
        rows = "\n".join(f"{i}," + ",".join(repr(float(v)) for v in r) for i, r in enumerate(w))
        (root / "tracked_weights.csv").write_text("generation," + ",".join(names) + "\n" + rows + "\n")
    return root


@pytest.fixture
def figures(monkeypatch):
    return capture(monkeypatch, plots_run)


def assert_readable_size(paths):
    for path in paths:
        width, height = png_size(path)
        assert 500 <= width <= 1600 and 300 <= height <= 1300, (path.name, width, height)


# --------------------------------------------------------------------------
# trust_accuracy.png: trust for GENREG, the named fitness for the GA
# --------------------------------------------------------------------------


def test_genreg_run_is_labelled_trust(tmp_path, figures):
    run = write_run(tmp_path / "g")
    written = plot_run(run)
    assert [p.name for p in written] == ["trust_accuracy.png", "per_digit.png", "tracked_weights.png"]
    assert_readable_size(written)
    fig = figures["trust_accuracy.png"]
    top, bottom = fig.axes
    assert top.get_ylabel().startswith("trust")
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["best trust", "mean trust"]
    assert bottom.get_ylabel() == "accuracy (%)" and bottom.get_xlabel() == "generation"
    for ax in (top, bottom):
        assert_legend_beside(ax)
        assert_integer_ticks(ax.xaxis)


def test_ga_run_is_labelled_fitness_never_trust(tmp_path, figures):
    run = write_run(tmp_path / "ga", strategy="ga", fitness="neg_loss", generations=7)  # few generations
    plot_run(run)
    fig = figures["trust_accuracy.png"]
    top, bottom = fig.axes
    assert top.get_ylabel() == "fitness: negative cross-entropy"
    assert [t.get_text() for t in top.get_legend().get_texts()] == ["best fitness", "mean fitness"]
    assert "trust" not in texts(fig)
    assert_integer_ticks(bottom.xaxis)  # 7 generations: no 0.5, 1.25 ...
    for name in ("per_digit.png", "tracked_weights.png"):
        for ax in figures[name].axes:
            if ax.get_label() != "<colorbar>":
                assert_integer_ticks(ax.xaxis)


def test_regression_run_shows_mse_and_no_per_class_figure(tmp_path, figures):
    run = write_run(tmp_path / "wine", strategy="ga", task="wine", kind="regression")
    written = plot_run(run)
    assert [p.name for p in written] == ["trust_accuracy.png", "tracked_weights.png"]
    top, bottom = figures["trust_accuracy.png"].axes
    assert top.get_ylabel() == "fitness: negative mean squared error"
    assert bottom.get_ylabel().startswith("mean squared error")
    assert_legend_beside(bottom)


def test_fitness_task_run_has_one_panel(tmp_path, figures):
    run = write_run(tmp_path / "cartpole", strategy="ga", task="", kind="fitness", n_weights=0)
    assert [p.name for p in plot_run(run)] == ["trust_accuracy.png"]
    (ax,) = figures["trust_accuracy.png"].axes
    assert ax.get_ylabel() == "fitness: the task's fitness function" and ax.get_xlabel() == "generation"


# --------------------------------------------------------------------------
# per_digit.png / per_class.png: a class x generation heat-map, legends off the data
# --------------------------------------------------------------------------


def test_per_digit_lines_and_heat_map(tmp_path, figures):
    plot_run(write_run(tmp_path / "g"))
    fig = figures["per_digit.png"]
    lines, heat, bar = fig.axes
    assert lines.get_ylabel() == "episode accuracy (%)"
    assert [t.get_text() for t in lines.get_legend().get_texts()] == [str(d) for d in range(10)]
    assert_legend_beside(lines)  # digit 3's late rise is not hidden
    assert heat.get_ylabel() == "digit" and heat.get_xlabel() == "generation"
    assert [t.get_text() for t in heat.get_yticklabels()] == [str(d) for d in range(10)]
    assert bar.get_ylabel() == "episode accuracy (%)"
    (mesh,) = heat.collections
    assert mesh.get_array().shape[0] == 10
    late = mesh.get_array()[3]
    assert late[-1] > 50 > late[0]  # the late riser reads in its row


def test_per_class_names_for_other_tasks(tmp_path, figures):
    fashion = write_run(tmp_path / "fashion", task="fashion-mnist")
    assert "per_class.png" in [p.name for p in plot_run(fashion)]
    lines, heat, _ = figures["per_class.png"].axes
    assert [t.get_text() for t in heat.get_yticklabels()][:2] == ["T-shirt/top", "Trouser"]
    assert heat.get_ylabel() == "class" and lines.get_legend().get_title().get_text() == "class"
    assert lines.get_legend().get_texts()[-1].get_text() == "Ankle boot"
    letters = [chr(65 + k) for k in range(26)]
    written = plot_run(write_run(tmp_path / "letters", task="letters", n_classes=26, classes_key=letters))
    assert_readable_size(written)
    heat, bar = figures["per_class.png"].axes  # 26 classes: the heat-map alone
    assert [t.get_text() for t in heat.get_yticklabels()] == letters
    assert_integer_ticks(heat.xaxis)
    wine = write_run(tmp_path / "winecls", task="wineclasses", n_classes=6)  # unknown names: numbers
    plot_run(wine)
    assert [t.get_text() for t in figures["per_class.png"].axes[1].get_yticklabels()] == [str(k) for k in range(6)]


# --------------------------------------------------------------------------
# tracked_weights.png: a heat-map with a labelled colour bar, five labelled lines
# --------------------------------------------------------------------------


def test_tracked_weights_heat_map(tmp_path, figures):
    plot_run(write_run(tmp_path / "g", generations=50))
    heat, lines, bar = figures["tracked_weights.png"].axes
    assert bar.get_ylabel() == "weight value"
    assert heat.get_ylabel().startswith("tracked weight")
    (mesh,) = heat.collections
    assert mesh.get_array().shape == (100, 50)
    assert lines.get_xlabel() == "generation" and lines.get_ylabel() == "weight value"
    assert len(lines.get_legend().get_texts()) == 5
    assert all(t.get_text().startswith("w") for t in lines.get_legend().get_texts())
    assert_legend_beside(lines)
    assert_integer_ticks(lines.xaxis)


# --------------------------------------------------------------------------
# genreg plot
# --------------------------------------------------------------------------


def test_plot_writes_three_pngs(determinism_runs, tmp_path, capsys):
    assert cli.main(["plot", str(determinism_runs["a"]), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("trust_accuracy.png", "per_digit.png", "tracked_weights.png"):
        data = (tmp_path / name).read_bytes()
        assert len(data) > 1000 and data[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"wrote {tmp_path / name}" in out


def test_plot_on_empty_dir_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genreg: error:") and "metrics.csv" in err
    assert not list(tmp_path.iterdir())


def test_a_damaged_metrics_header_is_a_clear_error(tmp_path):
    run = write_run(tmp_path / "run", generations=5, n_weights=0)
    text = (run / "metrics.csv").read_text()
    (run / "metrics.csv").write_text(text.replace("mean_fitness", "mean_fItness", 1))
    from genreg.errors import GenregError

    with pytest.raises(GenregError, match="has no column 'mean_fitness': its header row is damaged"):
        plot_run(run)


def test_an_evolution_strategy_run_is_titled_by_its_centre(tmp_path, figures):
    run = write_run(tmp_path / "es", strategy="pgpe", fitness="neg_loss", generations=7)
    plot_run(run)
    for name in ("trust_accuracy.png", "per_digit.png", "tracked_weights.png"):
        words = texts(figures[name])
        assert "centre" in words and "best genome" not in words, name
