"""The figure of an sgd run (``genreg sgd``): its learning curves.

- ``learning_curve.png``: above, validation and training accuracy (%) per epoch (or MSE, on a
  regression task), the kept genome's epoch marked; below, the mean training loss per epoch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.errors import GenregError
from genreg.plots.common import integer_axis, legend_beside, pyplot, read_config, save_figure
from genreg.runs.history import read_history


def plot_sgd_run(run_dir, out_dir=None) -> list[Path]:
    """Write ``learning_curve.png`` of the sgd run in ``run_dir`` into ``out_dir`` (default: ``run_dir``)."""
    run_dir = Path(run_dir)
    out_dir = Path(out_dir) if out_dir else run_dir
    path = run_dir / "metrics.csv"
    m = read_history(path) if path.is_file() else {}
    if not m or not m.get("epoch", np.empty(0)).size:
        raise GenregError(f"{path} holds no epoch yet: nothing to plot")
    metric = "accuracy" if "validation_accuracy" in m else "mse"
    scale, unit = (100, "accuracy (%)") if metric == "accuracy" else (1, "MSE (standardised targets)")
    epochs = m["epoch"]
    task = read_config(run_dir).get("task", "")
    plt = pyplot()
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6.5), sharex=True, layout="constrained")
    top.plot(epochs, scale * m[f"validation_{metric}"], "o-", ms=3, label="validation")
    top.plot(epochs, scale * m[f"train_{metric}"], "o-", ms=3, alpha=0.7, label="training (that epoch's inputs)")
    val = m[f"validation_{metric}"]
    if np.isfinite(val).any():
        best = int(np.nanargmax(val) if metric == "accuracy" else np.nanargmin(val))
        top.axvline(epochs[best], color="grey", ls=":", label=f"kept genome (epoch {int(epochs[best])})")
    top.set_ylabel(unit)
    top.grid(alpha=0.3)
    legend_beside(top)
    top.set_title(f"{run_dir.name}: SGD{f' on {task}' if task else ''}")
    bottom.plot(epochs, m["loss"], "o-", ms=3, color="tab:red", label="mean training loss")
    bottom.set_xlabel("epoch")
    bottom.set_ylabel("training loss")
    if (m["loss"] > 0).all() and m["loss"].max() > 20 * m["loss"].min():
        bottom.set_yscale("log")
    bottom.grid(alpha=0.3)
    legend_beside(bottom)
    integer_axis(bottom.xaxis)
    out_dir.mkdir(parents=True, exist_ok=True)
    return [save_figure(fig, out_dir / "learning_curve.png")]
