"""genreg.genome.overlap: silhouette (against a slow twin), nearest-centroid confusion, overlapping pairs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.genome import overlap


def naive_silhouette(coords, labels):
    """Rousseeuw's silhouette point by point, with loops (0 for a point alone in its class)."""
    n = len(labels)
    out = []
    for i in range(n):
        dist = {}
        for j in range(n):
            if j != i:
                dist.setdefault(int(labels[j]), []).append(math.dist(coords[i], coords[j]))
        own = dist.pop(int(labels[i]), [])
        if not own or not dist:
            out.append(0.0)
            continue
        a = sum(own) / len(own)
        b = min(sum(d) / len(d) for d in dist.values())
        out.append((b - a) / max(a, b) if max(a, b) > 0 else 0.0)
    return np.array(out)


def _blobs(seed=0, sizes=(30, 20, 25, 1), spread=1.5):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0, 0.0], [3.0, 0.0], [0.0, 3.0], [9.0, 9.0]])
    coords = np.concatenate([rng.normal(size=(n, 2)) * spread + centres[c] for c, n in enumerate(sizes)])
    labels = np.repeat(np.arange(len(sizes)), sizes)
    perm = rng.permutation(len(labels))
    return coords[perm], labels[perm]


@pytest.mark.parametrize("chunk", [7, 1024])
def test_silhouette_matches_the_slow_twin(chunk):
    coords, labels = _blobs()
    s = overlap.silhouette_samples(coords, labels, chunk=chunk)
    np.testing.assert_allclose(s, naive_silhouette(coords, labels), atol=1e-9)
    assert s[labels == 3].tolist() == [0.0]  # alone in its class
    per_class = overlap.silhouette_per_class(coords, labels, 5)  # class 4 has no point
    ref = naive_silhouette(coords, labels)
    np.testing.assert_allclose(per_class[:4], [ref[labels == c].mean() for c in range(4)], atol=1e-9)
    assert np.isnan(per_class[4])


def test_silhouette_of_separate_and_of_identical_clusters():
    coords = np.array([[0.0, 0.0], [0.0, 0.1], [10.0, 0.0], [10.0, 0.1]])
    s = overlap.silhouette_samples(coords, [0, 0, 1, 1])
    assert np.all(s > 0.99)
    s = overlap.silhouette_samples(coords, [0, 1, 0, 1])  # each class spans both places: negative
    assert np.all(s < 0)
    assert np.array_equal(overlap.silhouette_samples(np.zeros((4, 2)), [0, 0, 1, 1]), np.zeros(4))


def test_nearest_centroid_confusion_by_hand():
    coords = np.array([[0.0, 0.0], [0.2, 0.0], [2.6, 0.0], [3.0, 0.0], [3.2, 0.0], [0.1, 0.0]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # centroids: class 0 at 0.9333, class 1 at 2.1; the 0 at 2.6 and the 1 at 0.1 cross over
    C = overlap.nearest_centroid_confusion(coords, labels)
    assert C.tolist() == [[2, 1], [1, 2]]
    np.testing.assert_allclose(overlap.centroids(coords, labels), [[2.8 / 3, 0.0], [6.3 / 3, 0.0]])


def test_overlapping_pairs_rank_by_shared_points():
    C = np.array([[90, 8, 2, 0],
                  [4, 90, 6, 0],
                  [1, 12, 87, 0],
                  [0, 0, 0, 10]])
    pairs = overlap.overlapping_pairs(C, top=5)
    assert [(p["a"], p["b"]) for p in pairs] == [(1, 2), (0, 1), (0, 2)]  # 3 never mixes: left out
    assert pairs[0]["a_to_b"] == 6 and pairs[0]["b_to_a"] == 12 and pairs[0]["share"] == pytest.approx(18 / 200)
    assert pairs[1]["share"] == pytest.approx(12 / 200)
    assert overlap.overlapping_pairs(C, top=1) == pairs[:1]


def test_overlap_report_is_plain_data_with_class_names():
    import json

    coords, labels = _blobs(sizes=(30, 20, 25))
    report = overlap.overlap_report(coords, labels, 3, ["zero", "one", "two"])
    json.dumps(report)
    assert list(report["silhouette_per_class"]) == ["zero", "one", "two"]
    assert report["nearest_centroid_accuracy"] == pytest.approx(np.trace(report["nearest_centroid_confusion"]) / 75)
    assert report["silhouette_mean"] == pytest.approx(naive_silhouette(coords, labels).mean())
    top = report["overlapping_pairs"][0]
    assert {top["a_name"], top["b_name"]} <= {"zero", "one", "two"}


def test_bad_shapes_and_labels_are_refused():
    with pytest.raises(ConfigError, match="coords"):
        overlap.silhouette_samples(np.zeros((3, 2)), [0, 1])
    with pytest.raises(ConfigError, match=">= 0"):
        overlap.nearest_centroid_confusion(np.zeros((2, 2)), [0, -1])
    with pytest.raises(ConfigError, match=r"0\.\.1"):
        overlap.silhouette_per_class(np.zeros((2, 2)), [0, 2], 2)
