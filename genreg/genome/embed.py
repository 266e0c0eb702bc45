"""2-D maps of what a genome learned: its last hidden layer's activations on a data set, projected by PCA or UMAP.

The activations are those of the last hidden layer after its activation (``tanh`` for GENREG's
networks), computed in float64 NumPy from the genome's float32 weights (the kernels' fast float32
tanh differs by about 1e-7, nothing a map shows).  A ConvNet's are those of its last hidden dense
layer, or, when it has none (``hidden_sizes=[]``), the flattened output of its last stage (the
features its output layer reads): the stages run in float32 as the kernels do
(``genreg.network.conv_backprop.features``), the dense layers in float64.  Maps of more than
``GRAM_WIDTH`` features (a ConvNet's flattened features) take their components from the
eigenvectors of the features' covariance instead of an SVD of the points (the same components, in a
fraction of the time; MLP maps keep the SVD whatever their width).  PCA is an SVD of the centred activations with
each component's sign fixed (its largest-magnitude loading positive), so a map is the same on every
machine; UMAP (the optional extra ``genreg[embed]``: umap-learn) is seeded and single-threaded,
so it is the same for a seed.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np

from genreg.errors import ConfigError
from genreg.network.layout import Layout

METHODS = ("pca", "umap")
#: Widest activations whose PCA is an SVD of the centred points (wider: the covariance's eigenvectors).
GRAM_WIDTH = 512
UMAP_HINT = "install it with pip install 'genreg[embed]' (or pip install umap-learn)"

_ACTIVATIONS = {
    "identity": lambda h: h,
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
    "sigmoid": lambda h: 0.5 * (1.0 + np.tanh(0.5 * h)),
}


def hidden_activations(layout: Layout, row: np.ndarray, X, chunk: int = 4096) -> np.ndarray:
    """Return the last hidden layer's outputs after its activation for inputs ``X``.

    row: ``(layout.n_params,) float32``; X: ``(n, n_inputs)`` uint8 pixels (read as pixel/255, as in
    evolution) or floats.  Returns ``(n, layout.sizes[-2]) float64``.  Parallel blocks are concatenated.
    A ConvNet without hidden dense layers gives its flattened conv features ``(n, layout.sizes[0])``.
    """
    if layout.n_layers < 2 and not layout.is_conv:
        raise ConfigError(f"a {layout.shape_name()} network has no hidden layer to map")
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != layout.n_inputs:
        raise ConfigError(f"the genome takes inputs of shape (n, {layout.n_inputs}), got {X.shape}")
    row = np.asarray(row, dtype=np.float64)
    act = _ACTIVATIONS[layout.hidden_activation]
    out = np.empty((X.shape[0], layout.sizes[-2]))
    for start in range(0, X.shape[0], chunk):
        h = X[start:start + chunk]
        # uint8 pixels as the kernels read them (pixel / 255 in float32), then float64
        h = h.astype(np.float32) / np.float32(255.0) if X.dtype == np.uint8 else h
        if layout.is_conv:
            from genreg.network.conv_backprop import features

            h = features(layout, row.astype(np.float32), np.ascontiguousarray(h, dtype=np.float32))[0]
        h = h.astype(np.float64)
        for layer in layout.layers[:-1]:
            h = act(np.concatenate([h @ layout.view(row, blk.W.name) + layout.view(row, blk.b.name)
                                    for blk in layer], axis=1))
        out[start:start + chunk] = h
    return out


def output_logits(layout: Layout, row: np.ndarray, H: np.ndarray) -> np.ndarray:
    """Return the output layer's logits ``(n, n_outputs) float64`` from the last hidden layer's outputs ``H``."""
    row = np.asarray(row, dtype=np.float64)
    return np.concatenate([H @ layout.view(row, blk.W.name) + layout.view(row, blk.b.name)
                           for blk in layout.layers[-1]], axis=1)


def pca_2d(H: np.ndarray, gram: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Project ``H: (n, d)`` onto its first two principal components, each with its largest |loading| positive.

    Returns ``coords: (n, 2) float64`` (centred scores) and ``explained: (2,) float64``, the share of
    the total variance along each component (0 where ``H`` has fewer than two directions of variance).
    gram: from the eigenvectors of ``Hc.T @ Hc`` (d x d) rather than an SVD of the n x d points (faster
    for many points of many features; the same components up to rounding).
    """
    H = np.asarray(H, dtype=np.float64)
    if H.ndim != 2 or H.shape[0] < 2:
        raise ConfigError(f"PCA needs at least two points, got an array of shape {H.shape}")
    Hc = H - H.mean(axis=0, keepdims=True)
    if gram:  # wide: the covariance's eigenvectors, largest first (s**2 = its eigenvalues)
        values, vectors = np.linalg.eigh(Hc.T @ Hc)
        s, Vt = np.sqrt(np.maximum(values[::-1], 0.0)), vectors[:, ::-1].T
    else:
        _, s, Vt = np.linalg.svd(Hc, full_matrices=False)
    coords = np.zeros((H.shape[0], 2))
    explained = np.zeros(2)
    total = float(np.sum(s ** 2))
    for c in range(min(2, Vt.shape[0])):
        v = Vt[c] * (1.0 if Vt[c][np.argmax(np.abs(Vt[c]))] >= 0 else -1.0)
        coords[:, c] = Hc @ v
        explained[c] = s[c] ** 2 / total if total > 0 else 0.0
    return coords, explained


def umap_available() -> bool:
    """True when umap-learn can be imported (the optional extra ``genreg[embed]``)."""
    try:
        import umap  # noqa: F401
    except ImportError:
        return False
    return True


def umap_2d(H: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """Project ``H: (n, d)`` to ``(n, 2) float64`` with UMAP, seeded and single-threaded (the same for a seed).

    Needs umap-learn (``genreg[embed]``); without it a ConfigError says how to install it.
    """
    try:
        import umap
    except ImportError:
        raise ConfigError(f"--method umap needs umap-learn, which is not installed: {UMAP_HINT}; "
                          "--method pca works without it") from None
    H = np.asarray(H, dtype=np.float32)
    if H.shape[0] <= n_neighbors:
        raise ConfigError(f"UMAP needs more than {n_neighbors} points, got {H.shape[0]}; use --method pca")
    with warnings.catch_warnings():  # "n_jobs overridden by setting random_state": wanted, for determinism
        warnings.simplefilter("ignore", UserWarning)
        reducer = umap.UMAP(n_components=2, n_neighbors=n_neighbors, min_dist=min_dist, random_state=int(seed),
                            n_jobs=1)
        return np.asarray(reducer.fit_transform(H), dtype=np.float64)


def project(H: np.ndarray, method: str = "pca", seed: int = 0, gram: bool = False) -> tuple[np.ndarray, dict]:
    """Project ``H: (n, d)`` to ``(n, 2) float64`` by ``method`` ('pca' or 'umap'); returns (coords, details)."""
    if method == "pca":
        coords, explained = pca_2d(H, gram)
        return coords, {"explained_variance": [float(e) for e in explained]}
    if method == "umap":
        return umap_2d(H, seed), {"n_neighbors": 15, "min_dist": 0.1}
    raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")


def subsample(labels: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Sorted row indices of at most ``limit`` of ``labels: (n,)``, drawn per class in proportion (all if n <= limit)."""
    labels = np.asarray(labels)
    n = labels.shape[0]
    if n <= limit:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = []
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        k = max(1, int(round(limit * rows.size / n)))
        keep.append(rng.choice(rows, size=min(k, rows.size), replace=False))
    return np.sort(np.concatenate(keep))


# ----------------------------------------------------------------------------- one genome's map
@dataclass(frozen=True, eq=False)
class Embedding:
    """A 2-D map of one genome's hidden activations on a labelled set.

    coords: ``(n, 2) float64``; labels: ``(n,) int64`` true classes; class_names: one name per class;
    layer: which activations were mapped (e.g. "hidden layer 1 of 1: 64 tanh units, after tanh");
    details: the method's settings and, for PCA, the explained variance; accuracy: the genome's
    accuracy on the same points; overlap: ``genreg.genome.overlap.overlap_report`` of the map.
    """

    coords: np.ndarray
    labels: np.ndarray
    class_names: tuple
    method: str
    seed: int
    layout: Layout
    layer: str
    details: dict
    accuracy: float
    overlap: dict = field(default_factory=dict)
    title: str = ""


def layer_description(layout: Layout) -> str:
    """Which activations a map shows, e.g. ``"hidden layer 1 of 1: 64 units, after tanh"``, or a ConvNet's
    ``"flattened conv features: 784 units (14x14x4 after p2), after relu"``."""
    n_hidden = layout.n_layers - 1
    if n_hidden == 0 and layout.is_conv and not layout.conv_layers:  # an image shape, no stages
        return f"the input image: {layout.sizes[0]} pixels ({'x'.join(map(str, layout.image))})"
    if n_hidden == 0 and layout.is_conv:
        last = layout.conv_layers[-1]
        return (f"flattened conv features: {layout.sizes[0]} units ({'x'.join(map(str, last.out_shape))} after "
                f"{last.stage.token}), after {layout.hidden_activation}")
    dense = "hidden dense layer" if layout.is_conv else "hidden layer"
    return f"{dense} {n_hidden} of {n_hidden}: {layout.sizes[-2]} units, after {layout.hidden_activation}"


def embed_genome(layout: Layout, row: np.ndarray, X, y, class_names, method: str = "pca", seed: int = 0,
                 silhouette_points: int = 10000, title: str = "") -> Embedding:
    """Map the last hidden layer of genome ``row`` on ``X: (n, n_inputs)`` with labels ``y: (n,)`` to 2-D.

    The overlap measures use every point, or a per-class sample of ``silhouette_points`` drawn from
    ``seed`` for the silhouette when there are more (it costs n^2 distances).
    """
    from genreg.genome.overlap import overlap_report

    if method not in METHODS:
        raise ConfigError(f"--method must be one of {', '.join(METHODS)}, got {method!r}")
    if layout.sizes[-2] < 2 and layout.n_layers >= 2:
        raise ConfigError(f"a {layout.shape_name()} network has one unit in its last hidden layer: nothing to map to 2-D")
    y = np.asarray(y, dtype=np.int64)
    k = len(class_names)
    H = hidden_activations(layout, row, X)
    coords, details = project(H, method, seed, gram=layout.is_conv and H.shape[1] > GRAM_WIDTH)
    accuracy = float(np.mean(np.argmax(output_logits(layout, row, H)[:, :k], axis=1) == y)) if y.size else float("nan")
    keep = subsample(y, silhouette_points, seed)
    overlap = overlap_report(coords[keep], y[keep], k, class_names)
    overlap["n_points"] = int(keep.size)
    return Embedding(coords, y, tuple(str(c) for c in class_names), method, int(seed), layout,
                     layer_description(layout), details, accuracy, overlap, title)


def write_coordinates(path, emb: Embedding) -> None:
    """Write ``x,y,label,class`` rows (one per point, in the data set's order) to the CSV file ``path``, atomically
    (a full disk leaves no cut file)."""
    import csv
    import io

    from genreg.atomic import write_atomic

    text = io.StringIO(newline="")
    w = csv.writer(text)
    w.writerow(["x", "y", "label", "class"])
    for (x, yy), label in zip(emb.coords, emb.labels):
        w.writerow([repr(float(x)), repr(float(yy)), int(label), emb.class_names[label]])
    write_atomic(path, text.getvalue().encode("utf-8"))
