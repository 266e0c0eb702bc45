"""How much the classes of a 2-D map overlap: silhouette per class and a nearest-centroid confusion.

- Silhouette (Rousseeuw 1987): for a point, ``a`` = mean distance to the other points of its class,
  ``b`` = the smallest mean distance to the points of another class, ``s = (b - a) / max(a, b)``
  (0 for a point alone in its class).  Near 1: well inside its class's cluster; near 0: on a border;
  negative: closer to another class.  Reported as the mean over each class's points.
- Nearest-centroid confusion: each point goes to the class whose 2-D centroid is nearest;
  ``confusion[i, j]`` counts points of class ``i`` that land on class ``j``'s centroid.  A pair of
  classes overlaps by the share of their points that land on each other's centroid.
"""

from __future__ import annotations

import numpy as np

from genreg.errors import ConfigError


def _check(coords, labels, n_classes: int | None):
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if coords.ndim != 2 or labels.shape != (coords.shape[0],):
        raise ConfigError(f"expected coords (n, d) and labels (n,), got {coords.shape} and {labels.shape}")
    if labels.size and labels.min() < 0:
        raise ConfigError("labels must be >= 0")
    k = int(labels.max()) + 1 if n_classes is None and labels.size else int(n_classes or 0)
    if labels.size and labels.max() >= k:
        raise ConfigError(f"labels must lie in 0..{k - 1}, found {labels.max()}")
    return coords, labels, k


def silhouette_samples(coords, labels, n_classes: int | None = None, chunk: int = 1024) -> np.ndarray:
    """Return each point's silhouette ``(n,) float64`` for ``coords: (n, d)`` and ``labels: (n,)`` (Euclidean).

    Exact (all pairs, in chunks of ``chunk`` rows: memory ``chunk * n``); subsample first for large n.
    """
    coords, labels, k = _check(coords, labels, n_classes)
    n = coords.shape[0]
    onehot = np.zeros((n, k))
    onehot[np.arange(n), labels] = 1.0
    counts = onehot.sum(axis=0)
    sq = np.sum(coords ** 2, axis=1)
    out = np.zeros(n)
    for start in range(0, n, chunk):
        rows = slice(start, min(n, start + chunk))
        d2 = sq[rows, None] + sq[None, :] - 2.0 * coords[rows] @ coords.T
        sums = np.sqrt(np.maximum(d2, 0.0)) @ onehot  # (rows, k): summed distances to each class
        own = labels[rows]
        idx = np.arange(sums.shape[0])
        own_count = counts[own] - 1.0  # the point itself is at distance 0
        a = np.divide(sums[idx, own], own_count, out=np.zeros(len(idx)), where=own_count > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_other = sums / counts
        mean_other[idx, own] = np.inf
        mean_other[:, counts == 0] = np.inf
        b = mean_other.min(axis=1)
        denom = np.maximum(a, b)
        s = np.divide(b - a, denom, out=np.zeros(len(idx)), where=(denom > 0) & np.isfinite(b))
        out[rows] = np.where(own_count > 0, s, 0.0)
    return out


def silhouette_per_class(coords, labels, n_classes: int | None = None) -> np.ndarray:
    """Mean silhouette of each class's points, ``(n_classes,) float64`` (NaN for a class with no point)."""
    coords, labels, k = _check(coords, labels, n_classes)
    return _class_means(silhouette_samples(coords, labels, k), labels, k)


def _class_means(s: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    sums = np.bincount(labels, weights=s, minlength=k)
    counts = np.bincount(labels, minlength=k)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def centroids(coords, labels, n_classes: int | None = None) -> np.ndarray:
    """Mean position of each class's points, ``(n_classes, d) float64`` (NaN rows for empty classes)."""
    coords, labels, k = _check(coords, labels, n_classes)
    counts = np.bincount(labels, minlength=k).astype(np.float64)
    sums = np.zeros((k, coords.shape[1]))
    np.add.at(sums, labels, coords)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None]


def nearest_centroid_confusion(coords, labels, n_classes: int | None = None) -> np.ndarray:
    """Counts ``(n_classes, n_classes) int64``: row = true class, column = class of the nearest centroid."""
    coords, labels, k = _check(coords, labels, n_classes)
    C = centroids(coords, labels, k)
    d2 = np.sum((coords[:, None, :] - C[None, :, :]) ** 2, axis=2)
    d2[:, np.isnan(C[:, 0])] = np.inf
    nearest = np.argmin(d2, axis=1)  # ties: the lower class index
    confusion = np.zeros((k, k), dtype=np.int64)
    np.add.at(confusion, (labels, nearest), 1)
    return confusion


def overlapping_pairs(confusion: np.ndarray, top: int = 5) -> list[dict]:
    """The ``top`` class pairs that overlap most: ``{"a", "b", "a_to_b", "b_to_a", "share"}`` per pair, largest share first.

    a_to_b: points of class a nearest b's centroid; share = (a_to_b + b_to_a) / (points of a + points of b).
    Pairs that never mix are left out; ties keep the lower class indices first.
    """
    confusion = np.asarray(confusion, dtype=np.int64)
    totals = confusion.sum(axis=1)
    pairs = []
    k = confusion.shape[0]
    for a in range(k):
        for b in range(a + 1, k):
            mixed = int(confusion[a, b] + confusion[b, a])
            if mixed:
                pairs.append({"a": a, "b": b, "a_to_b": int(confusion[a, b]), "b_to_a": int(confusion[b, a]),
                              "share": mixed / float(totals[a] + totals[b])})
    pairs.sort(key=lambda p: (-p["share"], p["a"], p["b"]))
    return pairs[:top]


def overlap_report(coords, labels, n_classes: int, class_names=None, top: int = 5) -> dict:
    """Silhouette per class, the nearest-centroid confusion and its most overlapping pairs, as plain data."""
    names = [str(c) for c in class_names] if class_names is not None else [str(c) for c in range(n_classes)]
    coords, labels, k = _check(coords, labels, n_classes)
    samples = silhouette_samples(coords, labels, k)
    sil = _class_means(samples, labels, k)
    confusion = nearest_centroid_confusion(coords, labels, n_classes)
    pairs = overlapping_pairs(confusion, top)
    for p in pairs:
        p["a_name"], p["b_name"] = names[p["a"]], names[p["b"]]
    return {
        "silhouette_per_class": {names[c]: (None if np.isnan(v) else float(v)) for c, v in enumerate(sil)},
        "silhouette_mean": float(samples.mean()) if samples.size else None,
        "nearest_centroid_accuracy": float(np.trace(confusion) / max(1, confusion.sum())),
        "nearest_centroid_confusion": confusion.tolist(),
        "overlapping_pairs": pairs,
    }
