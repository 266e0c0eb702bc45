"""genreg.plots.common: what the figures share, and the checks the figure tests share.

The figure tests (test_plots_run/hybrid/hpo) write tiny synthetic run directories, catch each
Figure as it is saved (``capture``) and inspect its Axes: labels, integer generation ticks,
legends beside the data, pixel sizes readable at real size.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from genreg.plots import common


# --------------------------------------------------------------------------
# shared checks (imported by the other test_plots_* files)
# --------------------------------------------------------------------------


def capture(monkeypatch, *modules) -> dict:
    """Record every Figure the plot ``modules`` save: {file name: Figure} (saved and closed as usual)."""
    seen = {}
    real = common.save_figure

    def spy(fig, path, *args, **kwargs):
        out = real(fig, path, *args, **kwargs)
        seen[Path(path).name] = fig
        return out

    for module in modules:
        monkeypatch.setattr(module, "save_figure", spy)
    return seen


def png_size(path) -> tuple[int, int]:
    """(width, height) in pixels of a PNG file."""
    data = Path(path).read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    return struct.unpack(">II", data[16:24])


def renderer(fig):
    """A renderer for ``fig`` (closed figures lose theirs): an Agg canvas on it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    if not hasattr(fig.canvas, "get_renderer"):
        FigureCanvasAgg(fig)
    return fig.canvas.get_renderer()


def assert_integer_ticks(axis) -> None:
    """Every visible major tick of ``axis`` (``ax.xaxis``) is a whole number."""
    lo, hi = sorted(axis.get_view_interval())
    ticks = [t for t in axis.get_majorticklocs() if lo - 1e-9 <= t <= hi + 1e-9]
    assert ticks and all(float(t).is_integer() for t in ticks), ticks


def assert_legend_beside(ax) -> None:
    """``ax`` has a legend and it does not overlap the data area of any axes of its figure."""
    legend = ax.get_legend()
    assert legend is not None
    r = renderer(ax.figure)
    box = legend.get_window_extent(r)
    for other in ax.figure.axes:
        assert not box.overlaps(other.get_window_extent(r)), (legend, other)


def texts(fig) -> str:
    """Every piece of text of ``fig``: titles, axis labels, tick labels, legends (lower case)."""
    return " ".join(t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))).lower()


# --------------------------------------------------------------------------
# genreg.plots.common
# --------------------------------------------------------------------------


@pytest.mark.parametrize("cfg, regression, labelled, noun, label", [
    ({"strategy": "genreg"}, False, True, "trust", "trust (decayed sum of episode rewards)"),
    ({"strategy": "genreg"}, True, True, "trust", "trust (decayed sum of episode rewards)"),
    ({"strategy": "ga", "fitness": "neg_loss"}, False, True, "fitness", "fitness: negative cross-entropy"),
    ({"strategy": "ga", "fitness": "accuracy"}, False, True, "fitness", "fitness: episode accuracy"),
    ({"strategy": "ga", "fitness": "accuracy"}, True, True, "fitness", "fitness: negative mean squared error"),
    ({"strategy": "ga"}, False, False, "fitness", "fitness: the task's fitness function"),
    ({}, False, True, "fitness", "fitness"),
])
def test_fitness_label_follows_the_strategy(cfg, regression, labelled, noun, label):
    assert common.fitness_label(cfg, regression, labelled) == (noun, label)


def test_class_names_from_the_run(tmp_path):
    assert common.class_names(tmp_path, 10, {"task": "mnist"}) == [str(d) for d in range(10)]
    fashion = common.class_names(tmp_path, 10, {"task": "fashion-mnist"})
    assert fashion[0] == "T-shirt/top" and fashion[-1] == "Ankle boot"
    assert common.class_names(tmp_path, 3, {"task": "mnist"}) == ["0", "1", "2"]  # count differs: numbers
    assert common.class_names(tmp_path, 2, {"task": "x", "classes": ["cat", "dog"]}) == ["cat", "dog"]
    rows = "\n".join(f"{i % 7},{i % 5},{chr(65 + i % 26)}" for i in range(26 * 6))
    (tmp_path / "letters.csv").write_text("a,b,letter\n" + rows + "\n")
    names = common.class_names(tmp_path, 26, {"task": f"csv:{tmp_path / 'letters.csv'}", "target": "letter"})
    assert names == [chr(65 + k) for k in range(26)]
    # a file gone since the run: numbers, no error
    assert common.class_names(tmp_path, 2, {"task": "csv:/nonexistent.csv", "target": "y"}) == ["0", "1"]


def test_class_names_read_config_toml(tmp_path):
    (tmp_path / "config.toml").write_text('task = "fashion-mnist"\n')
    assert common.class_names(tmp_path, 10)[1] == "Trouser"
    (tmp_path / "config.toml").write_text("not toml [")
    assert common.class_names(tmp_path, 2) == ["0", "1"]


def test_block_means():
    v = np.arange(10, dtype=float).reshape(1, 10)
    np.testing.assert_allclose(common.block_means(v, 4), [[1.5, 5.5, 8.5]])
    assert common.moving_window(30) == 1 and common.moving_window(600) == 15


def test_save_figure_keeps_every_label(tmp_path):
    """A label pushed past the figure's edge is still inside the PNG (the saved area grows)."""
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.plot([0, 1], [0, 1])
    ax.set_xlabel("generation", fontsize=40, labelpad=40)
    path = common.save_figure(fig, tmp_path / "sub" / "f.png", tight=False)
    width, height = png_size(path)
    tight = fig.get_tightbbox(renderer(fig))
    assert height >= tight.height * common.DPI - 1 and width >= tight.width * common.DPI - 1
    assert height > 3 * common.DPI  # the label hangs below the 3-inch figure: the PNG grew to hold it
