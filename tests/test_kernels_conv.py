"""ConvNet forward kernels (``kernels/conv.py``, through ``genreg.network.forward``) against the NumPy twins.

The twin ``naive.convnet_logits`` convolves each image in float64 with explicit loops over
output positions and channels; the kernel pads, transposes filters and runs register blocks of
output pixels with fused multiply-adds.  Agreement to float32 precision over shapes that
exercise every padding, stride, pooling kind, remainder and activation is the evidence that
the indexing is right; equality across thread counts, chunkings and entry points is the
evidence that each output is computed one fixed way.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest

import naive
from genreg.network import conv as convs
from genreg.network import forward
from genreg.network.batch import SparseBatch
from genreg.network.layout import Layout
from helpers import ACTS, _seed, random_brood

RTOL = 2e-5

#: (shape, what it covers)
SHAPES = [
    "12x11x2-c3x5-p2-7-4",  # same padding, max pooling with an odd remainder, a dense hidden layer
    "9x9x1-c3x8s2p0-a2-3",  # stride 2, no padding, average pooling
    "10x10x3-c5x17s3p2-c2x4-6",  # stride 3, padding 2 of 5, 17 channels (a remainder block), even kernel
    "13x13x1-c5x8-p2-c5x16-p2-5-10",  # EvoJAX's stages on a small image, then 5 hidden units
    "7x5x2-a2-c2x3-4",  # pooling first, a non-square image
    "20x3x1-c3x9-c1x2s1p0-a3-2",  # a 1x1 convolution, pooling of a 3-wide image, 20 pixels (2 full blocks + 4)
    "9x9x2-6-3",  # no stages at all: the image flattened into dense layers
    "6x6x40-c1x33-a3-2",  # 40 channels in (a 40-float run per window row), 33 out (16 + 16 + 1 of 4 lanes)
]


def convnet(shape: str, act: str) -> Layout:
    return Layout.parse(shape, act)


def weights(layout: Layout, P: int, rng) -> np.ndarray:
    """``(P, n_params) float32``: every tensor group ~ N(0, 1/fan_in)."""
    W = np.empty((P, layout.n_params), np.float32)
    for fan_in, tensors in layout.tensor_groups():
        for t in tensors:
            W[:, t.offset : t.stop] = rng.normal(0.0, 1.0 / np.sqrt(fan_in), size=(P, t.size))
    return W


def images(layout: Layout, B: int, rng) -> np.ndarray:
    """``(B, n_inputs) uint8`` pixels, ~50% zero."""
    return (rng.integers(1, 256, size=(B, layout.n_inputs)) * (rng.random((B, layout.n_inputs)) < 0.5)).astype(np.uint8)


def assert_close(got, ref, what=""):
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


def test_twin_convolution_matches_an_independent_formula():
    """naive.conv_image equals a sum of shifted, strided slices of the padded image (einsum per tap)."""
    rng = np.random.default_rng(3)
    x = rng.normal(size=(9, 8, 3))
    f = rng.normal(size=(4, 3, 3, 3))
    b = rng.normal(size=4)
    for stride, pad in ((1, 1), (2, 0), (3, 2)):
        got = naive.conv_image(x, f, b, stride, pad)
        xp = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
        Ho, Wo = got.shape[:2]
        want = np.broadcast_to(b, got.shape).copy()
        for kh in range(3):
            for kw in range(3):
                patch = xp[kh : kh + stride * Ho : stride, kw : kw + stride * Wo : stride]
                want += np.einsum("hwc,oc->hwo", patch, f[:, kh, kw, :])
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    y = rng.normal(size=(5, 7, 2))
    np.testing.assert_array_equal(naive.pool_image(y, 2, "max"), y[:4, :6].reshape(2, 2, 3, 2, 2).max(axis=(1, 3)))


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_match_twin(shape):
    rng = np.random.default_rng(_seed("conv-logits", shape))
    for act in ACTS:
        layout = convnet(shape, act)
        X = images(layout, 11, rng)
        W = weights(layout, 3, rng)
        ref = np.stack([naive.convnet_logits(layout, w, X) for w in W])
        got = forward.population_logits(layout, W, X)
        assert got.dtype == np.float32 and got.shape == (3, 11, layout.n_outputs)
        assert_close(got, ref, f"{shape} {act}")
        # A SparseBatch of the same pixels, and float32 pixels already scaled, give the same bits.
        np.testing.assert_array_equal(forward.population_logits(layout, W, SparseBatch.from_dense(X)), got)
        np.testing.assert_array_equal(
            forward.population_logits(layout, W, X.astype(np.float32) / np.float32(255.0)), got)
        # One genome alone (its images cut into other chunks) gives its row of the population's logits.
        for g in range(3):
            np.testing.assert_array_equal(forward.genome_logits(layout, W[g], X), got[g])


def test_evojax_shape_matches_twin():
    """28x28x1-c5x8-p2-c5x16-p2-10 (11,274 parameters) on a few images."""
    layout = convnet("28x28x1-c5x8-p2-c5x16-p2-10", "relu")
    assert layout.n_params == 11274
    rng = np.random.default_rng(17)
    X = images(layout, 3, rng)
    W = weights(layout, 2, rng)
    ref = np.stack([naive.convnet_logits(layout, w, X) for w in W])
    assert_close(forward.population_logits(layout, W, X), ref, "evojax")


@pytest.mark.parametrize("shape", SHAPES[:4])
def test_predict_is_the_argmax_of_the_logits(shape):
    rng = np.random.default_rng(_seed("conv-predict", shape))
    layout = convnet(shape, "tanh")
    B = 21
    X = images(layout, B, rng)
    W = weights(layout, 4, rng)
    logits = forward.population_logits(layout, W, X)
    ref = np.stack([naive.convnet_logits(layout, w, X) for w in W])
    n_out = layout.n_outputs
    for n_classes in sorted({1, max(1, n_out - 1), n_out}):
        labels = rng.integers(0, n_classes, size=B)
        pred, n_correct = forward.population_predict(layout, W, X, labels, n_classes)
        assert pred.dtype == np.int32 and n_correct.dtype == np.int64
        np.testing.assert_array_equal(pred, np.argmax(logits[..., :n_classes], axis=2))
        np.testing.assert_array_equal(n_correct, (pred == labels[None]).sum(axis=1))
        pred2, n_correct2 = forward.predict_from_logits(logits, labels, n_classes)
        np.testing.assert_array_equal(pred2, pred)
        np.testing.assert_array_equal(n_correct2, n_correct)
        # The twin's argmax, up to near-ties.
        twin = ref[..., :n_classes]
        chosen = np.take_along_axis(twin, pred[..., None].astype(np.int64), axis=2)[..., 0]
        assert np.all(chosen >= twin.max(axis=2) - 1e-4 * max(1.0, np.abs(twin).max()))
    for g in range(4):
        np.testing.assert_array_equal(forward.genome_predict(layout, W[g], X), pred[g])


def test_ties_pick_the_first_class():
    """All-zero weights give equal logits: every prediction is class 0, as the MLP kernels do."""
    layout = convnet("8x8x1-c3x2-p2-5", "relu")
    W = np.zeros((2, layout.n_params), np.float32)
    X = images(layout, 9, np.random.default_rng(0))
    pred, n_correct = forward.population_predict(layout, W, X, np.zeros(9, int))
    np.testing.assert_array_equal(pred, 0)
    np.testing.assert_array_equal(n_correct, [9, 9])


@pytest.mark.parametrize("crossover", ["none", "mask", "gene"])
def test_brood_predict_equals_built_children(crossover):
    layout = convnet("12x11x2-c3x5-p2-7-4", "relu")
    rng = np.random.default_rng(_seed("conv-brood", crossover))
    X = images(layout, 19, rng)
    W = weights(layout, 4, rng)
    brood = random_brood(layout, W, rng, crossover)
    labels = rng.integers(0, layout.n_outputs, size=19)
    got = forward.brood_predict(layout, brood, X, labels)
    want = forward.population_predict(layout, brood.build(), X, labels)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_results_identical_for_one_and_two_threads():
    layout = convnet("13x13x1-c5x8-p2-c5x16-p2-5-10", "tanh")
    rng = np.random.default_rng(99)
    X = images(layout, 37, rng)
    W = weights(layout, 3, rng)  # fewer genomes than 4 x workers: images are cut into chunks
    labels = rng.integers(0, 10, size=37)
    before = numba.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            logits = forward.population_logits(layout, W, X)
            pred, n_correct = forward.population_predict(layout, W, X, labels)
            results.append((logits, pred, n_correct, forward.genome_logits(layout, W[1], X)))
    finally:
        numba.set_num_threads(before)
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(results[0][3], results[0][0][1])


@pytest.mark.parametrize("shape", [s for s in SHAPES if "-c" in s or "-a" in s or "-p" in s])
def test_features_match_twin_and_feed_the_dense_layers(shape):
    """conv_features: the stages' output as the twin computes it, for any thread count, and exactly
    what the dense layers receive (a ConvNet whose dense layer is the identity returns it as logits)."""
    rng = np.random.default_rng(_seed("conv-features", shape))
    layout = convnet(shape, "relu")
    X = images(layout, 9, rng)
    w = weights(layout, 1, rng)[0]
    before = numba.get_num_threads()
    got = []
    try:
        for n in (1, 2):
            numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
            got.append(forward.conv_features(layout, w, X))
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(got[0], got[1])
    assert got[0].shape == (9, layout.sizes[0]) and got[0].dtype == np.float32
    assert_close(got[0], naive.convnet_features(layout, w, X)[0], shape)
    n_flat = layout.sizes[0]
    identity = Layout.parse(f"{shape.split('-', 1)[0]}-{convs.stages_text(layout.stages)}-{n_flat}", "relu")
    row = np.zeros(identity.n_params, np.float32)
    row[: identity.n_params - n_flat * n_flat - n_flat] = w[: identity.n_params - n_flat * n_flat - n_flat]
    identity.view(row, identity.layers[-1][0].W.name)[...] = np.eye(n_flat, dtype=np.float32)
    np.testing.assert_array_equal(forward.genome_logits(identity, row, X), got[0])


def test_features_of_an_mlp_are_refused():
    with pytest.raises(ValueError, match="ConvNet"):
        forward.conv_features(Layout((4, 3)), np.zeros(15, np.float32), np.zeros((2, 4), np.float32))


def test_empty_batch_and_bad_inputs():
    layout = convnet("8x8x1-c3x2-p2-5", "relu")
    W = np.zeros((2, layout.n_params), np.float32)
    assert forward.population_logits(layout, W, np.zeros((0, 64), np.uint8)).shape == (2, 0, 5)
    pred, n_correct = forward.population_predict(layout, W, np.zeros((0, 64), np.uint8), np.zeros(0, int))
    assert pred.shape == (2, 0)
    np.testing.assert_array_equal(n_correct, [0, 0])
    with pytest.raises(ValueError, match="64 inputs"):
        forward.population_logits(layout, W, np.zeros((3, 63), np.float32))
    with pytest.raises(ValueError, match="labels"):
        forward.population_predict(layout, W, np.zeros((3, 64), np.float32), np.zeros(2, int))
    with pytest.raises(ValueError, match="parameters per genome"):
        forward.population_logits(layout, W[:, 1:].copy(), np.zeros((3, 64), np.float32))


@pytest.mark.parametrize("act", ACTS)
def test_a_convnet_without_stages_is_the_mlp_bit_for_bit(act):
    """9x9x2-6-3 has the row of the MLP 162-6-3; the dense layers run the MLP kernels' code, so the
    logits are the same bits (zero pixels add 0 * w to finite sums, which the sparse tiles skip)."""
    conv, mlp = convnet("9x9x2-6-3", act), Layout((162, 6, 3), act)
    rng = np.random.default_rng(_seed("no stages", act))
    X = images(conv, 13, rng)
    W = weights(conv, 3, rng)
    np.testing.assert_array_equal(forward.population_logits(conv, W, X), forward.population_logits(mlp, W, X))
