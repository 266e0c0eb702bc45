"""What every figure shares: the Agg backend, saving, integer generation ticks, legends beside
the axes, and what a run says about itself (its config, its class names, its fitness)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np

from genreg.atomic import write_atomic
from genreg.network.population import ES_STRATEGIES

#: Dots per inch of every PNG: a figure of W x H inches is 100 W x 100 H pixels, so its
#: 10-point labels stay about 14 px tall when viewed at real size.
DPI = 100


def pyplot():
    """matplotlib.pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: Path, dpi: int = DPI, tight: bool = True) -> Path:
    """Write ``fig`` to ``path`` (PNG) and close it; returns ``path``.

    tight: apply ``tight_layout`` first (figures made with ``layout="constrained"`` lay themselves
    out).  The saved area grows to hold every label and legend (``bbox_inches="tight"``), so
    nothing is clipped at the edges.
    """
    plt = pyplot()
    try:
        if tight and fig.get_layout_engine() is None:
            fig.tight_layout()
        image = io.BytesIO()  # drawn in memory, then written atomically: a full disk leaves no cut PNG
        fig.savefig(image, format=Path(path).suffix.lstrip(".") or "png", dpi=dpi, bbox_inches="tight",
                    pad_inches=0.12)
        write_atomic(path, image.getvalue())  # (`plot --out` may name a new folder: it is made)
    finally:
        plt.close(fig)
    return Path(path)


def integer_axis(axis) -> None:
    """Ticks at whole numbers only on ``axis`` (``ax.xaxis`` / ``ax.yaxis``): generations, epochs, layers."""
    from matplotlib.ticker import MaxNLocator

    # min_n_ticks=1: a view holding one whole number (one generation, every run 5 epochs) still
    # gets whole-number ticks only, not 4.8, 4.9, 5.0
    axis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 2.5, 5, 10], min_n_ticks=1))


def legend_beside(ax, **kwargs):
    """A legend to the right of ``ax``, outside its data area; returns it (None without labelled artists)."""
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return None
    return ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False, **kwargs)


def read_config(run_dir) -> dict:
    """The run's ``config.toml`` as a dict ({} if it is missing or unreadable: plots still work)."""
    from genreg.config import load_toml
    from genreg.errors import GenregError

    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return {}
    try:
        return load_toml(path)
    except GenregError:
        return {}


def _registered_classes(name: str) -> tuple:
    """Class names of a built-in classification task called ``name`` (MNIST, Fashion-MNIST, the alphabet); () if none."""
    from genreg.tasks.loaders import known_classes

    return tuple(known_classes(name))


def _task_classes(cfg: dict) -> tuple:
    """Class names of the run's task: by name for a registered image set, from the file for csv / npz."""
    spec = str(cfg.get("task", "")).strip()
    name = spec.lower()
    if name.startswith("csv:") or name.startswith("npz:"):  # a file: its classes are in its rows
        try:
            from genreg.tasks import load_task

            target = cfg.get("target") or cfg.get("target_column") or None
            return tuple(str(c) for c in load_task(spec, target=target, download=False).classes)
        except Exception:  # the file moved or changed since the run: class numbers instead
            return ()
    return _registered_classes(name)


def class_names(run_dir, n: int, cfg: dict | None = None) -> list[str]:
    """Names of the ``n`` classes of the run's task: a ``classes`` list in its config if it has
    one, the data set's names (digits, Fashion-MNIST's garments, a CSV file's labels), else 0..n-1."""
    cfg = read_config(run_dir) if cfg is None else cfg
    names = cfg.get("classes")
    if not (isinstance(names, list) and len(names) == n):
        names = _task_classes(cfg)
    if len(names) != n:
        names = [str(k) for k in range(n)]
    return [str(x) for x in names]


#: What the GA's fitness key means, for axis labels.
GA_FITNESS = {"accuracy": "episode accuracy", "neg_loss": "negative cross-entropy"}


def reports_centre(cfg: dict) -> bool:
    """Whether a run's metrics describe an evolution strategy's centre (not the fittest genome)."""
    return str(cfg.get("strategy", "")).lower() in ES_STRATEGIES


def fitness_label(cfg: dict, regression: bool = False, labelled: bool = True) -> tuple[str, str]:
    """(noun for the legend, axis label) of an evolution run's ``best_fitness`` / ``mean_fitness``.

    GENREG selects by trust (a decayed sum of episode rewards); the GA and other strategies by
    a fitness, named from the config's ``fitness`` key (or -MSE on a regression task, the task's
    own function on a fitness task: ``labelled`` False).
    """
    strategy = str(cfg.get("strategy", "")).lower()
    if strategy == "genreg":
        return "trust", "trust (decayed sum of episode rewards)"
    if reports_centre(cfg):  # the members' fitness: minus their loss, whatever the ``fitness`` key says
        what = ("the task's fitness function" if not labelled else "negative mean squared error" if regression
                else "negative cross-entropy")
        return "member fitness", f"members' fitness: {what}"
    if not labelled:
        what = "the task's fitness function"
    elif regression:
        what = "negative mean squared error"
    else:
        what = GA_FITNESS.get(str(cfg.get("fitness", "")), str(cfg.get("fitness", "")) or "")
    return "fitness", f"fitness: {what}" if what else "fitness"


def moving_window(n: int) -> int:
    """Generations averaged per point of a noisy per-generation curve of ``n`` points (about 40 points)."""
    return max(1, n // 40)


def block_means(values: np.ndarray, window: int) -> np.ndarray:
    """Means of consecutive blocks of ``window`` columns: ``(k, n)`` -> ``(k, ceil(n / window))``."""
    k, n = values.shape
    blocks = -(-n // window)
    padded = np.full((k, blocks * window), np.nan)
    padded[:, :n] = values
    with warnings.catch_warnings():  # a block of NaN only (no value recorded) stays NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(padded.reshape(k, blocks, window), axis=2)
