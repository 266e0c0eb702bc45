"""genreg.genome.embed: hidden activations, PCA (deterministic, signs fixed), UMAP (seeded), subsamples."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.genome import embed
from genreg.network.layout import Layout

import naive


def _genome(sizes=(12, 7, 5, 3), act="tanh", seed=0):
    layout = Layout(sizes, act)
    row = np.random.default_rng(seed).normal(0, 0.4, layout.n_params).astype(np.float32)
    return layout, row


def _naive_hidden(layout, row, X):
    """The last hidden layer, the textbook way (tests/naive.py's weights, read by hand)."""
    h = naive.scaled_inputs(X).astype(np.float64)
    pairs = naive.layers(layout, row.astype(np.float64))
    for W, b in pairs[:-1]:
        h = naive.HIDDEN[layout.hidden_activation](h @ W + b)
    return h


@pytest.mark.parametrize("act", ["tanh", "relu", "sigmoid", "identity"])
def test_hidden_activations_are_the_last_hidden_layer_after_its_activation(act):
    layout, row = _genome(act=act)
    X = np.random.default_rng(1).integers(0, 256, (50, 12)).astype(np.uint8)
    H = embed.hidden_activations(layout, row, X, chunk=16)  # chunks cover a ragged end
    assert H.shape == (50, 5) and H.dtype == np.float64
    np.testing.assert_allclose(H, _naive_hidden(layout, row, X), rtol=1e-12, atol=1e-12)
    # the output layer on top of them gives the network's logits
    np.testing.assert_allclose(embed.output_logits(layout, row, H), naive.forward(layout, row, naive.scaled_inputs(X)),
                               rtol=1e-9, atol=1e-9)


def test_hidden_activations_concatenate_parallel_blocks():
    layout = Layout((6, 8, 10, 3), "tanh", blocks=((8,), (4, 6), (3,)))
    row = np.random.default_rng(2).normal(0, 0.5, layout.n_params).astype(np.float32)
    X = np.random.default_rng(3).normal(size=(9, 6)).astype(np.float32)
    H = embed.hidden_activations(layout, row, X)
    h1 = np.tanh(X.astype(np.float64) @ layout.view(row, "W0") + layout.view(row, "b0"))
    expected = np.tanh(np.concatenate([h1 @ layout.view(row, f"W1_{j}") + layout.view(row, f"b1_{j}")
                                       for j in range(2)], axis=1))
    np.testing.assert_allclose(H, expected, rtol=1e-12)


def test_a_network_without_hidden_layer_or_with_wrong_inputs_is_refused():
    with pytest.raises(ConfigError, match="no hidden layer"):
        embed.hidden_activations(Layout((4, 3)), np.zeros(15, np.float32), np.zeros((2, 4)))
    layout, row = _genome()
    with pytest.raises(ConfigError, match=r"\(n, 12\)"):
        embed.hidden_activations(layout, row, np.zeros((2, 11)))


def _naive_pca(H):
    """PCA through the covariance matrix's eigenvectors (numpy.linalg.eigh), largest |loading| positive."""
    Hc = H - H.mean(axis=0)
    values, vectors = np.linalg.eigh(Hc.T @ Hc / (len(H) - 1))
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    out = np.zeros((len(H), 2))
    for c in range(2):
        v = vectors[:, c]
        v = v if v[np.argmax(np.abs(v))] > 0 else -v
        out[:, c] = Hc @ v
    return out, values[:2] / values.sum()


def test_pca_matches_the_covariance_eigenvectors_with_the_sign_convention():
    rng = np.random.default_rng(4)
    H = rng.normal(size=(300, 6)) * [5.0, 3.0, 1.0, 0.5, 0.2, 0.1] + 2.0
    coords, explained = embed.pca_2d(H)
    ref, ref_explained = _naive_pca(H)
    np.testing.assert_allclose(coords, ref, atol=1e-9)
    np.testing.assert_allclose(explained, ref_explained, rtol=1e-9)
    # scores are centred; the signs follow the loadings, not the SVD's whim: negating the data
    # keeps the loadings (largest positive) and so negates the map exactly
    np.testing.assert_allclose(coords.mean(axis=0), 0.0, atol=1e-9)
    flipped, _ = embed.pca_2d(-H)
    np.testing.assert_allclose(flipped, -coords, atol=1e-9)


def test_pca_is_deterministic_and_handles_one_direction_of_variance():
    rng = np.random.default_rng(5)
    H = rng.normal(size=(200, 8))
    a, _ = embed.pca_2d(H)
    b, _ = embed.pca_2d(H.copy())
    assert np.array_equal(a, b)
    line = np.outer(np.arange(10.0), [1.0, 2.0, 0.0])
    coords, explained = embed.pca_2d(line)
    np.testing.assert_allclose(explained, [1.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(coords[:, 1], 0.0, atol=1e-9)
    assert coords[-1, 0] > coords[0, 0]  # loading (1, 2, 0)/sqrt(5): positive, so x grows along the line
    with pytest.raises(ConfigError, match="two points"):
        embed.pca_2d(np.zeros((1, 3)))


def test_project_refuses_an_unknown_method():
    with pytest.raises(ConfigError, match="pca, umap"):
        embed.project(np.zeros((5, 3)), "tsne")


def test_umap_without_umap_learn_says_how_to_install_it(monkeypatch):
    real_import = builtins.__import__

    def no_umap(name, *args, **kwargs):
        if name == "umap" or name.startswith("umap."):
            raise ImportError("No module named 'umap'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    assert not embed.umap_available()
    with pytest.raises(ConfigError, match=r"genreg\[embed\]"):
        embed.umap_2d(np.zeros((40, 3)))


def test_umap_is_the_same_for_a_seed():
    pytest.importorskip("umap", reason="umap-learn (the optional extra genreg[embed]) is not installed")
    rng = np.random.default_rng(6)
    H = np.concatenate([rng.normal(size=(60, 5)) + 4 * c for c in range(3)])
    a = embed.umap_2d(H, seed=3)
    b = embed.umap_2d(H, seed=3)
    assert a.shape == (180, 2) and a.dtype == np.float64
    assert np.array_equal(a, b)
    assert not np.array_equal(a, embed.umap_2d(H, seed=4))
    with pytest.raises(ConfigError, match="more than 15 points"):
        embed.umap_2d(H[:10])


def test_subsample_is_stratified_sorted_and_seeded():
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    assert np.array_equal(embed.subsample(labels, 2000, 0), np.arange(1000))
    keep = embed.subsample(labels, 100, 7)
    assert np.array_equal(keep, np.sort(keep)) and len(np.unique(keep)) == len(keep)
    assert np.bincount(labels[keep]).tolist() == [50, 30, 20]
    assert np.array_equal(keep, embed.subsample(labels, 100, 7))
    assert not np.array_equal(keep, embed.subsample(labels, 100, 8))


def test_embed_genome_reports_accuracy_layer_and_overlap():
    layout, row = _genome(sizes=(6, 9, 3))
    rng = np.random.default_rng(8)
    X = rng.normal(size=(120, 6)).astype(np.float32)
    y = np.argmax(naive.forward(layout, row, X), axis=1)
    y[:10] = (y[:10] + 1) % 3  # ten wrong labels: 110/120 correct
    emb = embed.embed_genome(layout, row, X, y, ("a", "b", "c"), "pca", 0, silhouette_points=60)
    assert emb.coords.shape == (120, 2) and emb.accuracy == pytest.approx(110 / 120)
    assert emb.layer == "hidden layer 1 of 1: 9 units, after tanh"
    assert emb.overlap["n_points"] == 60 and set(emb.overlap["silhouette_per_class"]) == {"a", "b", "c"}
    assert sum(map(sum, emb.overlap["nearest_centroid_confusion"])) == 60
    with pytest.raises(ConfigError, match="one unit"):
        embed.embed_genome(Layout((6, 1, 3)), np.zeros(Layout((6, 1, 3)).n_params, np.float32), X, y, "abc")
