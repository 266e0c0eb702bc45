"""ConvNet backprop (genreg.network.conv_backprop through genreg.network.backprop): a loop-by-loop forward twin,
gradients against central finite differences (float64) for several shapes, strides, paddings, pools and
activations, input gradients, the max-pooling tie rule, float32 against float64."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.network import backprop as bp, conv_backprop
from genreg.network.layout import Layout
from helpers import assert_input_gradient

SHAPES = (
    "6x6x2-c3x3-p2-4",            # stride 1, default padding, max pooling
    "7x7x1-c3x2s2p0-a2-5-3",      # stride 2, no padding, average pooling dropping a remainder, a hidden layer
    "8x6x2-c5x3s2p2-c3x2-p3-4",   # not square, two convolutions, padding 2
    "5x5x3-c2x2p1-a2-3",          # even kernel, padding 1
    "6x6-p2-c3x2-4",              # pooling first (no gradient needed below the first convolution)
)


def act(name, z):
    return {"relu": lambda v: np.maximum(v, 0), "tanh": np.tanh, "sigmoid": lambda v: 1 / (1 + np.exp(-v)),
            "identity": lambda v: v}[name](z)


def loop_forward(layout: Layout, row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The network's outputs by explicit loops over every output pixel (float64): the twin of the im2col code."""
    x = X.reshape(X.shape[0], *layout.image).astype(np.float64)
    for cl in layout.conv_layers:
        s, (Ho, Wo, Co) = cl.stage, cl.out_shape
        out = np.zeros((x.shape[0], Ho, Wo, Co))
        if cl.is_conv:
            F, b = layout.view(row, cl.C.name), layout.view(row, cl.b.name)
            p = s.padding
            xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
            for y in range(Ho):
                for xx in range(Wo):
                    win = xp[:, y * s.stride : y * s.stride + s.k, xx * s.stride : xx * s.stride + s.k, :]
                    out[:, y, xx, :] = np.einsum("bijc,oijc->bo", win, F) + b
            out = act(layout.hidden_activation, out)
        else:
            for y in range(Ho):
                for xx in range(Wo):
                    win = x[:, y * s.k : (y + 1) * s.k, xx * s.k : (xx + 1) * s.k, :]
                    out[:, y, xx, :] = win.max(axis=(1, 2)) if s.kind == "max" else win.mean(axis=(1, 2))
        x = out
    h = x.reshape(x.shape[0], -1)
    for l in range(layout.n_layers):
        h = h @ layout.view(row, f"W{l}") + layout.view(row, f"b{l}")
        if l < layout.n_layers - 1:
            h = act(layout.hidden_activation, h)
    return h


def problem(shape, activation, loss, seed=0, n=5):
    layout = Layout.parse(shape, activation, "identity" if loss == "nll" else "sigmoid")
    rng = np.random.default_rng(seed)
    row = rng.normal(size=layout.n_params) * 0.5
    X = rng.random((n, layout.n_inputs))
    y = rng.integers(0, layout.n_outputs, n) if loss == "nll" else rng.random((n, layout.n_outputs))
    return layout, row, X, y


@pytest.mark.parametrize("activation", ("relu", "tanh", "sigmoid", "identity"))
@pytest.mark.parametrize("shape", SHAPES)
def test_forward_matches_the_loop_twin(shape, activation):
    layout, row, X, _ = problem(shape, activation, "nll")
    np.testing.assert_allclose(bp.forward(layout, row, X), loop_forward(layout, row, X), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("loss", ("nll", "mse"))
@pytest.mark.parametrize("activation", ("relu", "tanh", "sigmoid", "identity"))
@pytest.mark.parametrize("shape", SHAPES)
def test_gradient_matches_finite_differences(shape, activation, loss):
    layout, row, X, y = problem(shape, activation, loss, seed=len(shape))
    value, grad = bp.loss_and_grad(layout, row, X, y, loss=loss)
    num = naive.numeric_gradient(lambda r: bp.loss_and_grad(layout, r, X, y, loss=loss)[0], row.copy())
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)
    assert np.isfinite(value)
    if shape.startswith("6x6-p2"):  # nothing below the first convolution has parameters; the rest all move
        assert np.all(grad[layout.tensor("C0").offset :] != 0) or activation == "relu"


@pytest.mark.parametrize("loss", ("nll", "mse"))
@pytest.mark.parametrize("shape", SHAPES)
def test_input_gradient_matches_finite_differences(shape, loss):
    layout, row, X, y = problem(shape, "tanh", loss, seed=7, n=3)
    assert_input_gradient(bp, layout, row, X, y, loss)


def test_dropout_acts_on_the_dense_hidden_layers_only():
    layout, row, X, y = problem("7x7x1-c3x2s2p0-a2-5-3", "tanh", "nll")
    assert bp.dropout_rates(layout, 0.5) == (0.5,)
    a = bp.loss_and_grad(layout, row, X, y, dropout=0.5, rng=np.random.default_rng(1))[1]
    b = bp.loss_and_grad(layout, row, X, y, dropout=0.5, rng=np.random.default_rng(1))[1]
    np.testing.assert_array_equal(a, b)


def test_max_pooling_ties_send_the_gradient_to_the_first_maximum_in_row_major_order():
    layout = Layout.parse("2x2x1-p2-1", "identity", "identity")
    row = np.array([1.0, 0.0])  # W0 = 1, b0 = 0: output = the window's maximum
    X = np.array([[0.0, 0.7, 0.7, 0.7], [0.2, 0.1, 0.9, 0.9]])  # (h, w) = (0,1), (1,0), (1,1) tie; then (1,0), (1,1)
    _, dX = bp.input_gradient(layout, row, X, np.zeros((2, 1)), loss="mse")
    assert np.count_nonzero(dX[0]) == 1 and dX[0, 1] != 0
    assert np.count_nonzero(dX[1]) == 1 and dX[1, 2] != 0


def test_average_pooling_spreads_the_gradient_and_drops_the_remainder():
    layout = Layout.parse("3x3x1-a2-1", "identity", "identity")
    row = np.array([1.0, 0.0])
    X = np.arange(9.0).reshape(1, 9) / 10
    _, dX = bp.input_gradient(layout, row, X, np.zeros((1, 1)), loss="mse")
    out = X[0, [0, 1, 3, 4]].mean()
    expected = np.zeros(9)
    expected[[0, 1, 3, 4]] = 2 * out / 4
    np.testing.assert_allclose(dX[0], expected)


def test_float32_gradient_close_to_float64():
    layout, row, X, y = problem("8x6x2-c5x3s2p2-c3x2-p3-4", "tanh", "nll", n=9)
    _, g64 = bp.loss_and_grad(layout, row, X, y)
    _, g32 = bp.loss_and_grad(layout, row.astype(np.float32), X.astype(np.float32), y)
    assert g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


def test_evaluation_in_chunks_equals_one_batch(monkeypatch):
    layout, row, X, _ = problem("6x6x2-c3x3-p2-4", "relu", "nll", n=11)
    whole = bp.forward(layout, row, X)
    monkeypatch.setattr(conv_backprop, "EVAL_SCRATCH", 3 * 36 * 18)  # three images a chunk
    assert conv_backprop.eval_chunk(layout) == 3
    np.testing.assert_array_equal(bp.forward(layout, row, X), whole)


def test_im2col_and_col2im_are_adjoint():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 7, 5, 3))
    cols = conv_backprop.im2col(x, 3, 2, 1, (4, 3))
    d = rng.normal(size=cols.shape)
    assert np.dot(cols.ravel(), d.ravel()) == pytest.approx(np.dot(x.ravel(), conv_backprop.col2im(d, x.shape, 3, 2, 1, (4, 3)).ravel()))


def test_mnist_convnet_trains_a_step_in_float32():
    layout = Layout.parse("28x28x1-c5x8-p2-c5x16-p2-10", "relu")
    assert layout.n_params == 11274
    rng = np.random.default_rng(0)
    row = (rng.normal(size=layout.n_params) * 0.1).astype(np.float32)
    X = rng.random((16, 784), dtype=np.float32)
    y = rng.integers(0, 10, 16)
    value, grad = bp.loss_and_grad(layout, row, X, y)
    assert grad.dtype == np.float32 and np.isfinite(grad).all()
    after, _ = bp.loss_and_grad(layout, row - np.float32(0.05) * grad, X, y)
    assert after < value


@pytest.mark.parametrize("activation", ("relu", "tanh", "sigmoid", "identity"))
@pytest.mark.parametrize("shape", (*SHAPES, "28x28x1-c5x8-p2-c5x16-p2-10", "28x28-c3x16s2p0-a2-64-10"))
def test_numpy_forward_agrees_with_the_numba_kernels(shape, activation):
    from genreg.network.forward import population_logits
    from genreg.network.population import Population

    layout = Layout.parse(shape, activation)
    W = Population.random(layout, 3, seed=5).W
    rng = np.random.default_rng(1)
    X = rng.random((13, layout.n_inputs), dtype=np.float32)
    X[X < 0.4] = 0  # images are mostly zeros
    numba_logits = population_logits(layout, W, X)
    for i in range(W.shape[0]):
        numpy_logits = bp.forward(layout, W[i], X)
        assert numpy_logits.dtype == np.float32
        np.testing.assert_allclose(numpy_logits, numba_logits[i], rtol=1e-4, atol=1e-5)
