"""ConvNet genomes in the evolution machinery without a forward pass: ES members and their noise sums,
filter genes, memory admission, genome pickles of ConvNets."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

import naive
from genreg.errors import CheckpointError
from genreg.genome.checkpoint import load_genome, save_genome
from genreg.genome.evaluate import fits
from genreg.network.layout import Layout
from genreg.network.members import Members, tensor_shapes
from genreg.network.population import Population, conv_scratch_bytes, run_bytes
from genreg.network.variation import gene_bounds, gene_crossover, layer_gene_bounds
from genreg.runs.evolve import same_network

#: Two convolutions (one with three input channels' worth of filters), pooling between, a hidden dense layer.
CONV = Layout.parse("8x8x1-c3x4-p2-c3x3-6-3", "relu")


def conv_noise(layout: Layout, seed: int, generation: int, pair: int, rank: int) -> list:
    """Pair ``pair``'s unscaled noise per tensor, float64: a filter tensor ``(C_out, k, k, C_in)`` is the
    ``(C_out, k k C_in)`` matrix ``A @ Bt / sqrt(r)`` at rank r (every weight tensor is read as a matrix of
    its first axis by the rest), biases and rank 0 entry by entry (as ``naive.es_noise`` for an MLP)."""
    out = []
    for t, tensor in enumerate(layout.tensors):
        stream = naive.Stream(naive.stream_key(seed, generation, pair, naive.ES_NOISE + t))
        if rank > 0 and t % 2 == 0:
            rows, cols = tensor.shape[0], tensor.size // tensor.shape[0]
            A = np.array([stream.normal() for _ in range(rows * rank)]).reshape(rows, rank)
            Bt = np.array([stream.normal() for _ in range(cols * rank)]).reshape(rank, cols)
            out.append((A @ Bt / math.sqrt(rank)).reshape(tensor.shape))
        else:
            out.append(np.array([stream.normal() for _ in range(tensor.size)]).reshape(tensor.shape))
    return out


def _members(rank: int, P: int = 6, per_parameter: bool = False, antithetic: bool = True) -> Members:
    rng = np.random.default_rng(rank)
    centre = rng.normal(0, 0.3, CONV.n_params).astype(np.float32)
    sigma = rng.uniform(0.05, 0.2, CONV.n_params if per_parameter else len(CONV.tensors))
    return Members(CONV, centre, sigma, rank, 11, 4, P, antithetic)


@pytest.mark.parametrize("rank", [0, 1])
def test_a_range_of_conv_members_scores_as_in_the_whole_population(rank, monkeypatch):
    """Ranges that cut across the build chunks give the whole population's bits."""
    import genreg.network.members as members_module
    from genreg.network.batch import SparseBatch

    monkeypatch.setattr(members_module, "SCORE_CHUNK", 4)
    m = _members(rank, P=14)
    X = np.random.default_rng(5).integers(0, 256, (7, CONV.n_inputs)).astype(np.uint8)
    batch, labels = SparseBatch.from_dense(X), np.random.default_rng(6).integers(0, CONV.n_outputs, 7)
    whole = m.score(batch, labels)
    parts = [m.score(batch, labels, first=a, stop=b) for a, b in ((0, 2), (2, 12), (12, 14))]
    for got, want in zip(map(np.concatenate, zip(*parts)), whole):
        np.testing.assert_array_equal(got, want)
    for got, want in zip(m.score(batch, labels, first=6, stop=11), whole):  # a range that ends inside a pair
        np.testing.assert_array_equal(got, want[6:11])


@pytest.mark.parametrize("rank", [0, 3])
def test_a_range_of_conv_members_without_pairs_scores_as_in_the_whole_population(rank, monkeypatch):
    """Without antithetic pairs a range may start anywhere (rank 3: the shared first convolution)."""
    import genreg.network.members as members_module
    from genreg.network.batch import SparseBatch

    monkeypatch.setattr(members_module, "SCORE_CHUNK", 4)
    m = _members(rank, P=13, antithetic=False)
    X = np.random.default_rng(5).integers(0, 256, (7, CONV.n_inputs)).astype(np.uint8)
    batch, targets = SparseBatch.from_dense(X), np.random.default_rng(6).normal(size=(7, 3))
    whole = m.score(batch, targets=targets)
    parts = [m.score(batch, targets=targets, first=a, stop=b) for a, b in ((0, 3), (3, 10), (10, 13))]
    for got, want in zip(map(np.concatenate, zip(*parts)), whole):
        np.testing.assert_array_equal(got, want)


def test_tensor_shapes_read_filters_as_matrices():
    assert tensor_shapes(CONV).tolist() == [[4, 9, 4], [3, 36, 3], [48, 6, 6], [6, 3, 3]]
    mlp = Layout((7, 5, 2))
    assert tensor_shapes(mlp).tolist() == [[7, 5, 5], [5, 2, 2]]


@pytest.mark.parametrize("rank,per_parameter", [(0, False), (0, True), (1, False), (3, False)])
def test_conv_members_match_twin(rank, per_parameter):
    m = _members(rank, per_parameter=per_parameter)
    rows = m.build(np.arange(m.size))
    sigma = m.parameter_sigma()
    for k in range(m.size):
        eps = np.concatenate([e.ravel() for e in conv_noise(CONV, 11, 4, k // 2, rank)])
        twin = m.centre.astype(np.float64) + (-1.0 if k % 2 else 1.0) * sigma * eps
        np.testing.assert_allclose(rows[k], twin, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("rank", [1, 2])
def test_low_rank_filter_noise_has_rank_r(rank):
    m = _members(rank, P=2)
    row = m.build([0])[0].astype(np.float64) - m.centre
    for cl in CONV.conv_layers:
        if cl.is_conv:
            noise = row[cl.C.offset : cl.C.stop].reshape(cl.C.shape[0], -1)
            assert np.linalg.matrix_rank(noise, tol=1e-5) == min(rank, *noise.shape)


@pytest.mark.parametrize("rank", [0, 2])
def test_conv_noise_sum_matches_twin(rank):
    m = Members(CONV, np.zeros(CONV.n_params, np.float32), np.full(len(CONV.tensors), 0.1), rank, 5, 1, 8)
    w = np.random.default_rng(0).normal(size=4)
    v = np.random.default_rng(1).normal(size=4)
    grad, squares = m.noise_sum(w, v)
    twin_grad, twin_squares = np.zeros(CONV.n_params), np.zeros(CONV.n_params)
    for j in range(4):
        eps = np.concatenate([e.ravel() for e in conv_noise(CONV, 5, 1, j, rank)])
        twin_grad += w[j] * eps
        twin_squares += v[j] * (eps * eps - 1.0)
    np.testing.assert_allclose(grad, twin_grad, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(squares, twin_squares, rtol=1e-5, atol=1e-5)


def test_filters_are_genes():
    bounds = gene_bounds(CONV, 1)
    for cl in CONV.conv_layers:
        if cl.is_conv:
            step = cl.C.size // cl.C.shape[0]
            assert set(range(cl.C.offset, cl.C.stop + 1, step)) <= set(bounds.tolist())
            assert cl.b.stop in bounds
    assert gene_bounds(CONV, 0).tolist() == [0] + [t.stop for t in CONV.tensors]
    assert layer_gene_bounds(CONV).tolist() == [0, CONV.tensor("cb0").stop, CONV.tensor("cb1").stop,
                                                CONV.tensor("b0").stop, CONV.n_params]


def test_every_filter_of_a_gene_crossover_child_comes_whole_from_one_parent():
    W = np.stack([np.zeros(CONV.n_params, np.float32), np.ones(CONV.n_params, np.float32)])
    keys = np.arange(1, 41, dtype=np.uint64)
    children = gene_crossover(W, np.zeros(40, np.int64), np.ones(40, np.int64), keys, gene_bounds(CONV, 1))
    mixed = 0
    for child in children:
        for cl in CONV.conv_layers:
            if cl.is_conv:
                filters = child[cl.C.offset : cl.C.stop].reshape(cl.C.shape[0], -1)
                assert all(len(set(f.tolist())) == 1 for f in filters)  # each filter whole from one parent
                mixed += len(set(filters[:, 0].tolist())) > 1
    assert mixed > 0  # and the filters of one tensor do come from both parents


def test_memory_admission_counts_a_convnets_scratch():
    mlp = Layout(CONV.sizes, "relu")
    assert conv_scratch_bytes(mlp) == 0 and conv_scratch_bytes(CONV, threads=2) == 2 * conv_scratch_bytes(CONV, 1)
    big = Layout.parse("224x224x3-c3x64-c3x64-p2-10", "relu")
    assert conv_scratch_bytes(big, 1) > 4 * (226 * 226 * 3 + 2 * 224 * 224 * 64)
    assert run_bytes(big, 100, "ga") > run_bytes(Layout(big.sizes), 100, "ga") + conv_scratch_bytes(big) - 1
    # an evolution strategy builds a ConvNet's members in chunks even when no loss needs built rows
    assert run_bytes(CONV, 1000, "openai-es", built=False, samples=100) > 256 * CONV.n_params * 4


def test_a_convnet_and_an_mlp_of_the_same_widths_are_different_networks():
    mlp = Layout(CONV.sizes, "relu")
    assert mlp.sizes == CONV.sizes and not same_network(mlp, CONV)
    assert same_network(Layout.parse("8x8x1-c3x4-p2-c3x3-6-3", "relu"), CONV)
    assert not same_network(Layout.parse("8x8x1-c3x4-a2-c3x3-6-3", "relu"), CONV)


def test_a_convnet_genome_pickle_round_trips(tmp_path):
    row = Population.random(CONV, 1, seed=3).W[0]
    path = save_genome(tmp_path / "g.pkl", CONV, row, trust=1.5, metadata={"task": "x"})
    back = load_genome(path)
    assert back.layout == CONV and back.layout.stages == CONV.stages and back.layout.image == (8, 8, 1)
    assert back.weights.tobytes() == row.tobytes()


@pytest.mark.parametrize("layout,match", [
    ({"sizes": [36, 3], "image": [8, 8, 1], "stages": "c3x4-q2"}, "not a stage"),
    ({"sizes": [36, 3], "image": [8, 8, 1], "stages": "c9x4p0"}, "larger than"),
    ({"sizes": [99, 3], "image": [8, 8, 1], "stages": "c3x4-p2"}, "flattens to 64"),
    ({"sizes": [36, 3], "image": "8x8", "stages": "c3x4-p2"}, "image"),
    ({"sizes": [36, 3], "image": [8, 8, 1], "stages": ["c3x4"]}, "layout"),
])
def test_a_damaged_convnet_layout_is_one_clear_error(tmp_path, layout, match):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps({"format": "genreg.genome", "version": 1, "layout": layout,
                                   "weights": np.zeros(10, np.float32), "trust": 0.0, "metadata": {}}))
    with pytest.raises(CheckpointError, match=match) as info:
        load_genome(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_a_convnet_fits_only_its_own_image_shape():
    layout = Layout.parse("28x28x1-c3x4-p2-10", "relu")
    assert fits(layout, 784, 10, (28, 28)) and fits(layout, 784, 10, (28, 28, 1)) and fits(layout, 784, 10, (784,))
    assert not fits(layout, 784, 10, (14, 56)) and not fits(layout, 784, 26, (28, 28))


def test_genregs_published_format_refuses_a_convnet(tmp_path):
    from genreg.genome.checkpoint import save_genreg_published

    layout = Layout.parse("8x8x1-c3x4-p2-6-3", "tanh")
    with pytest.raises(CheckpointError, match="input-hidden-output networks"):
        save_genreg_published(tmp_path / "g.pkl", layout, np.zeros(layout.n_params, np.float32))
    assert not (tmp_path / "g.pkl").exists()


def test_embedding_layers_of_convnets_are_named():
    from genreg.genome.embed import hidden_activations, layer_description

    assert layer_description(CONV) == "hidden dense layer 1 of 1: 6 units, after relu"
    flat = Layout.parse("8x8x1-c3x4-p2-3", "relu")
    assert layer_description(flat) == "flattened conv features: 64 units (4x4x4 after p2), after relu"
    bare = Layout.parse("8x8x2-3", "relu")
    assert layer_description(bare) == "the input image: 128 pixels (8x8x2)"
    X = np.arange(5 * 128).reshape(5, 128) % 256
    np.testing.assert_allclose(hidden_activations(bare, np.zeros(bare.n_params, np.float32), X.astype(np.uint8)),
                               X.astype(np.float32) / np.float32(255), rtol=1e-7)
