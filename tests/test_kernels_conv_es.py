"""kernels/conv_es.py: a ConvNet's evolution-strategy members at rank r >= 1 with the first convolution's centre
part shared (``Members.score``), against the NumPy twin, across thread counts and image blocks, and against the
build-and-forward path (``population_logits`` of the built members)."""

from __future__ import annotations

import numba
import numpy as np
import pytest

import naive
from genreg.network import members as members_module
from genreg.network.batch import SparseBatch
from genreg.network.forward import population_logits
from genreg.network.layout import Layout
from genreg.network.members import Members

#: (shape, activation): stride 2 without padding and two input channels; an even kernel with padding 1 and three
#: channels; a pooling before the first convolution; more than 16 output channels; one convolution only.
SHAPES = [
    ("8x8x1-c3x4-p2-c3x3-6-3", "relu"),
    ("9x9x2-c3x5s2p0-a2-7-4", "tanh"),
    ("10x10x3-c4x6p1-p2-5", "sigmoid"),
    ("12x12x3-p2-c3x6s2-c3x4-5", "relu"),
    ("7x7x1-c5x20p2-3", "tanh"),
]


def _members(layout: Layout, rank: int, antithetic: bool, P: int = 6, seed: int = 0) -> Members:
    rng = np.random.default_rng(seed)
    centre = rng.normal(0, 0.3, layout.n_params).astype(np.float32)
    sigma = rng.uniform(0.05, 0.2, len(layout.tensors))
    return Members(layout, centre, sigma, rank, 11, 4, P, antithetic)


def _batch(layout: Layout, B: int = 13, seed: int = 5):
    X = np.random.default_rng(seed).integers(0, 256, (B, layout.n_inputs)).astype(np.uint8)
    return X, SparseBatch.from_dense(X)


def shared_logits(m: Members, batch: SparseBatch) -> np.ndarray:
    """Every member's logits through the shared first convolution: ``(P, B, n_out) float32``."""
    images = np.ascontiguousarray(batch.to_dense(), np.float32)
    return m._shared_logits(0, m.build(np.arange(m.size)), images, m.layout.stage_table(), {})


@pytest.mark.parametrize("rank,antithetic", [(1, True), (3, False), (3, True)])
@pytest.mark.parametrize("shape,act", SHAPES)
def test_members_match_the_twin(shape, act, rank, antithetic):
    layout = Layout.parse(shape, act)
    m = _members(layout, rank, antithetic)
    X, batch = _batch(layout)
    labels = np.random.default_rng(6).integers(0, layout.n_outputs, X.shape[0])
    targets = np.random.default_rng(7).normal(size=(X.shape[0], 2)).astype(np.float32)
    logits = shared_logits(m, batch)
    n_correct, loss = m.score(batch, labels)
    _, squared = m.score(batch, targets=targets)
    for k in range(m.size):
        twin = naive.conv_es_logits(layout, m.centre, m.sigma, rank, 11, 4, k, X, antithetic)
        np.testing.assert_allclose(logits[k], twin, rtol=1e-4, atol=1e-5 * max(1.0, np.abs(twin).max()))
        assert n_correct[k] == (np.argmax(twin, axis=1) == labels).sum()
        np.testing.assert_allclose(loss[k], naive.nll(twin, labels), rtol=1e-5)
        np.testing.assert_allclose(squared[k], np.mean((twin[:, :2] - targets) ** 2), rtol=1e-5)


@pytest.mark.parametrize("shape,act", SHAPES[:2] + SHAPES[3:4])
def test_the_twins_shared_product_is_the_members_convolution(shape, act):
    """The twin's algebra: its shared product equals the member's whole first convolution (float64)."""
    layout = Layout.parse(shape, act)
    m = _members(layout, 2, True, P=2)
    X, _ = _batch(layout, B=3)
    noise, _ = naive.conv_es_noise(layout, 11, 4, 0, 2)
    for k in range(2):
        row = m.centre.astype(np.float64) + (-1.0 if k else 1.0) * np.concatenate(
            [m.sigma[t] * e.ravel() for t, e in enumerate(noise)])
        np.testing.assert_allclose(naive.conv_es_logits(layout, m.centre, m.sigma, 2, 11, 4, k, X),
                                   naive.convnet_logits(layout, row, X), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape,act", SHAPES)
def test_thread_count_does_not_change_a_bit(shape, act):
    layout = Layout.parse(shape, act)
    m = _members(layout, 2, True, P=20)
    X, batch = _batch(layout, B=29)
    labels = np.random.default_rng(6).integers(0, layout.n_outputs, X.shape[0])
    before = numba.get_num_threads()
    try:
        results = []
        for n in (1, 2):
            numba.set_num_threads(n)
            results.append((shared_logits(m, batch), *m.score(batch, labels)))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results):
        assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("shape,act", SHAPES)
def test_agrees_with_building_and_running_the_members(shape, act):
    layout = Layout.parse(shape, act)
    m = _members(layout, 1, True, P=8)
    X, batch = _batch(layout)
    built = population_logits(layout, m.build(np.arange(m.size)), batch)
    logits = shared_logits(m, batch)
    np.testing.assert_allclose(logits, built, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(built).max()))


@pytest.mark.parametrize("shape,act", SHAPES)
def test_without_first_convolution_noise_the_bits_are_the_forward_passes(shape, act):
    """sigma = 0 on the first convolution: the centre's part alone, then the very code of the forward pass."""
    layout = Layout.parse(shape, act)
    m = _members(layout, 2, False, P=5)
    sigma = m.sigma.copy()
    sigma[:2] = 0.0
    m = Members(layout, m.centre, sigma, 2, 11, 4, 5, False)
    _, batch = _batch(layout)
    built = population_logits(layout, m.build(np.arange(m.size)), batch)
    assert shared_logits(m, batch).tobytes() == built.tobytes()


def test_image_blocks_do_not_change_a_bit(monkeypatch):
    layout = Layout.parse(*SHAPES[0])
    m = _members(layout, 1, True, P=10)
    X, batch = _batch(layout, B=37)
    labels = np.random.default_rng(6).integers(0, layout.n_outputs, X.shape[0])
    whole = m.score(batch, labels)
    monkeypatch.setattr(members_module, "SHARED_BYTES", 1)  # one tile of images per block
    blocks = m.score(batch, labels)
    for a, b in zip(whole, blocks):
        assert a.tobytes() == b.tobytes()


def test_rank_zero_and_stageless_convnets_keep_the_forward_pass():
    """Rank 0 (full-rank noise) and a ConvNet without convolutions are scored by building and running members."""
    for layout, rank in ((Layout.parse("8x8x1-c3x4-p2-c3x3-6-3", "relu"), 0), (Layout.parse("9x9x2-p3-6-3", "relu"), 1)):
        m = _members(layout, rank, True, P=4)
        X, batch = _batch(layout)
        labels = np.random.default_rng(6).integers(0, layout.n_outputs, X.shape[0])
        z = population_logits(layout, m.build(np.arange(m.size)), batch).astype(np.float64)
        top = z.max(axis=2, keepdims=True)
        log_softmax = z - top - np.log(np.exp(z - top).sum(axis=2, keepdims=True))
        want = -log_softmax[:, np.arange(X.shape[0]), labels].mean(axis=1)
        assert m.score(batch, labels)[1].tobytes() == want.tobytes()
