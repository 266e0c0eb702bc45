"""Figures of embedding maps: one panel per genome, a point per sample coloured by its true class,
each class's centroid labelled with the class's name, and one legend beside the last panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.genome.overlap import centroids
from genreg.plots.common import pyplot, save_figure

#: Inches of one panel (the figure is one panel wide per map, plus the legend).
PANEL = (5.2, 4.8)


def class_colours(k: int) -> list:
    """``k`` distinct RGBA colours: tab10 up to 10 classes, tab20 up to 20, tab20 then tab20b up to 40, else hsv."""
    import matplotlib

    if k <= 10:
        return [matplotlib.colormaps["tab10"](i) for i in range(k)]
    if k <= 20:
        return [matplotlib.colormaps["tab20"](i) for i in range(k)]
    if k <= 40:
        return ([matplotlib.colormaps["tab20"](i) for i in range(20)]
                + [matplotlib.colormaps["tab20b"](i) for i in range(k - 20)])
    return [matplotlib.colormaps["hsv"](i / k) for i in range(k)]


def axis_labels(emb) -> tuple[str, str]:
    """("PC 1 (12.3% of variance)", ...) for PCA, ("UMAP 1", "UMAP 2") for UMAP."""
    if emb.method == "pca":
        ev = emb.details.get("explained_variance", [np.nan, np.nan])
        return tuple(f"PC {c + 1} ({100 * ev[c]:.1f}% of variance)" for c in range(2))
    return ("UMAP 1", "UMAP 2")


def panel_title(emb) -> str:
    """The map's title (if any), the network and its accuracy on the mapped points, then what was mapped and how."""
    acc = f", {100 * emb.accuracy:.2f}% correct" if np.isfinite(emb.accuracy) else ""
    sil = emb.overlap.get("silhouette_mean")
    sil = f", silhouette {sil:.2f}" if sil is not None else ""
    layout = emb.layout
    if layout.is_conv and layout.n_layers == 1 and not layout.conv_layers:  # an image shape, nothing else
        what = f"{layout.sizes[0]} input pixels"
    elif layout.is_conv and layout.n_layers == 1:  # no hidden dense layer: the flattened conv features
        what = f"{layout.sizes[0]} flattened conv features ({layout.hidden_activation})"
    elif layout.is_conv:
        what = f"{layout.sizes[-2]} {layout.hidden_activation} units of the last hidden dense layer"
    else:
        what = f"{layout.sizes[-2]} {layout.hidden_activation} units"
    lines = [f"{layout.shape_name()}{acc}", f"{emb.method.upper()} of {what}{sil}"]
    return "\n".join(([emb.title] if emb.title else []) + lines)


def draw_map(ax, emb, colours, point_size: float | None = None) -> None:
    """Scatter ``emb``'s points on ``ax`` (in a fixed shuffled order, so no class hides under another)
    and label each class's centroid with its name.  point_size: marker area (default: 3 for 10,000
    points, larger for fewer, up to 30, so a small test set stays visible)."""
    from matplotlib.colors import to_rgba_array

    n = emb.coords.shape[0]
    if point_size is None:
        point_size = float(np.clip(3.0 * np.sqrt(10_000 / max(n, 1)), 3.0, 30.0))
    order = np.random.default_rng(0).permutation(n)
    rgba = to_rgba_array(colours)[emb.labels[order]]
    ax.scatter(emb.coords[order, 0], emb.coords[order, 1], c=rgba, s=point_size, linewidths=0, alpha=0.6,
               rasterized=True)
    C = centroids(emb.coords, emb.labels, len(emb.class_names))
    ax.autoscale_view()
    for c, (pos, at) in enumerate(label_positions(ax, C)):
        if pos is None:
            continue
        arrow = None if np.allclose(pos, at) else {"arrowstyle": "-", "color": colours[c], "linewidth": 1.2}
        ax.annotate(emb.class_names[c], xy=tuple(at), xytext=tuple(pos), ha="center", va="center", fontsize=11,
                    fontweight="bold", arrowprops=arrow, zorder=3,
                    bbox={"boxstyle": "round,pad=0.2", "facecolor": "white", "edgecolor": colours[c],
                          "linewidth": 1.5, "alpha": 0.85})
    xlabel, ylabel = axis_labels(emb)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(panel_title(emb), fontsize=10)
    ax.tick_params(labelsize=8)


def label_positions(ax, C: np.ndarray, gap: float = 0.06) -> list:
    """Where to write each centroid's label: ``[(label xy, centroid xy)]`` in data units (None for a missing class).

    A label closer than ``gap`` (a fraction of the axes) to one already placed moves out along the
    first free of 16 directions at growing radii, and gets a line to its centroid."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    span = np.array([x1 - x0, y1 - y0])
    low = np.array([x0, y0])
    placed, out = [], []
    angles = np.linspace(0.0, 2.0 * np.pi, 16, endpoint=False)
    for c in C:
        if not np.isfinite(c).all():
            out.append((None, None))
            continue
        home = (c - low) / span
        spot = home
        for radius in (0.0, 1.2 * gap, 2.0 * gap, 2.8 * gap, 3.6 * gap):
            tries = [home] if radius == 0 else [home + radius * np.array([np.cos(a), np.sin(a)]) for a in angles]
            free = [t for t in tries if all(np.max(np.abs(t - p) / [1.0, 0.8]) >= gap for p in placed)
                    and (radius == 0 or (0.03 < t[0] < 0.97 and 0.03 < t[1] < 0.97))]
            if free:
                spot = free[0]
                break
        placed.append(spot)
        out.append((low + spot * span, c))
    return out


def plot_embeddings(embeddings, path, suptitle: str = "") -> Path:
    """Write one PNG with a panel per map in ``embeddings`` (side by side) and the class legend beside them."""
    return save_figure(embedding_figure(embeddings, suptitle), Path(path))


def embedding_figure(embeddings, suptitle: str = ""):
    """A figure with a panel per map in ``embeddings`` (side by side) and the class legend beside the last.

    Every map must have the same classes (one legend serves all panels)."""
    from matplotlib.lines import Line2D

    embeddings = list(embeddings)
    names = embeddings[0].class_names
    colours = class_colours(len(names))
    plt = pyplot()
    fig, axes = plt.subplots(1, len(embeddings), figsize=(PANEL[0] * len(embeddings) + 0.9, PANEL[1]),
                             squeeze=False, layout="constrained")
    for ax, emb in zip(axes[0], embeddings):
        draw_map(ax, emb, colours)
    handles = [Line2D([], [], linestyle="", marker="o", markersize=7, color=colours[c], label=name)
               for c, name in enumerate(names)]
    axes[0, -1].legend(handles=handles, title="class", loc="upper left", bbox_to_anchor=(1.02, 1.0),
                       borderaxespad=0.0, frameon=False, ncol=1 if len(names) <= 15 else 2, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=11)
    return fig
