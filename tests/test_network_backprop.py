"""NumPy backprop (genreg.network.backprop): gradients against central finite differences, forward, input checks."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.errors import ConfigError, GenregError, TrainingError
from genreg.network import backprop as bp, sgd
from genreg.network.layout import Layout
from genreg.network.population import Population
from helpers import assert_input_gradient


ACTS = ("relu", "tanh", "sigmoid", "identity")


SHAPES = {
    "shallow": dict(sizes=(5, 4)),
    "deep": dict(sizes=(5, 6, 5, 4, 3)),
    "blocks": dict(sizes=(5, 6, 5, 3), blocks=((6,), (2, 3), (3,))),
    "blocks3": dict(sizes=(4, 6, 3), blocks=((1, 2, 3), (1, 2))),
}


def problem(shape, act, loss, seed=0, n=7):
    spec = SHAPES[shape]
    out_act = "identity" if loss == "nll" else "sigmoid"
    layout = Layout(spec["sizes"], act, out_act, blocks=spec.get("blocks"))
    rng = np.random.default_rng(seed)
    row = rng.normal(size=layout.n_params) * 0.6
    X = rng.random((n, layout.n_inputs))
    y = rng.integers(0, layout.n_outputs, n) if loss == "nll" else rng.random((n, layout.n_outputs))
    return layout, row, X, y


@pytest.mark.parametrize("loss", ["nll", "mse"])
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", list(SHAPES))
def test_gradient_matches_finite_differences(shape, act, loss):
    layout, row, X, y = problem(shape, act, loss)
    value, grad = bp.loss_and_grad(layout, row, X, y, loss=loss)
    num = naive.numeric_gradient(lambda r: bp.loss_and_grad(layout, r, X, y, loss=loss)[0], row.copy())
    np.testing.assert_allclose(grad, num, rtol=1e-5, atol=1e-8)
    assert np.isfinite(value) and value > 0


@pytest.mark.parametrize("loss", ["nll", "mse"])
@pytest.mark.parametrize("shape", ["deep", "blocks"])
def test_input_gradient_matches_finite_differences(shape, loss):
    layout, row, X, y = problem(shape, "tanh", loss, seed=3)
    assert_input_gradient(bp, layout, row, X, y, loss)


def test_gradient_with_dropout_matches_finite_differences_for_a_fixed_mask():
    layout, row, X, y = problem("deep", "tanh", "nll", seed=5)
    rates = (0.3, 0.0, 0.5)

    def loss_at(r):
        return bp.loss_and_grad(layout, r, X, y, dropout=rates, rng=np.random.default_rng(11))[0]

    _, grad = bp.loss_and_grad(layout, row, X, y, dropout=rates, rng=np.random.default_rng(11))
    np.testing.assert_allclose(grad, naive.numeric_gradient(loss_at, row.copy()), rtol=1e-5, atol=1e-8)
    # a different mask gives a different loss (dropout is really applied)
    other = bp.loss_and_grad(layout, row, X, y, dropout=rates, rng=np.random.default_rng(12))[0]
    assert other != pytest.approx(loss_at(row))


def test_float32_gradient_close_to_float64():
    layout, row, X, y = problem("blocks", "relu", "nll", seed=1, n=50)
    _, g64 = bp.loss_and_grad(layout, row, X, y)
    grad = np.zeros(layout.n_params, np.float32)
    _, g32 = bp.loss_and_grad(layout, row.astype(np.float32), X.astype(np.float32), y, grad=grad)
    assert g32 is grad and g32.dtype == np.float32
    np.testing.assert_allclose(g32, g64, rtol=1e-3, atol=1e-5)


def test_nll_loss_matches_direct_formula():
    layout, row, X, y = problem("deep", "sigmoid", "nll", seed=2)
    z = bp.forward(layout, row, X)
    assert bp.loss_and_grad(layout, row, X, y)[0] == pytest.approx(naive.nll(z, y))


def test_forward_matches_numba_kernels_on_a_plain_layout():
    from genreg.network.forward import genome_logits

    layout = Layout((784, 32, 10), "tanh")
    row = Population.random(layout, 1, seed=4).W[0]
    X = np.random.default_rng(0).random((20, 784), dtype=np.float32)
    np.testing.assert_allclose(bp.forward(layout, row, X), genome_logits(layout, row, X), rtol=1e-4, atol=1e-5)


def test_block_layout_equals_the_equivalent_plain_layout():
    """Parallel blocks reading the same input == one dense layer with the blocks' columns side by side."""
    blocks = Layout((6, 5, 4, 3), "relu", blocks=((5,), (1, 3), (3,)))
    plain = Layout((6, 5, 4, 3), "relu")
    row = Population.random(blocks, 1, seed=0).W[0]
    W1 = np.concatenate([blocks.view(row, "W1_0"), blocks.view(row, "W1_1")], axis=1)
    b1 = np.concatenate([blocks.view(row, "b1_0"), blocks.view(row, "b1_1")])
    prow = plain.flatten([(blocks.view(row, "W0"), blocks.view(row, "b0")), (W1, b1),
                          (blocks.view(row, "W2"), blocks.view(row, "b2"))])
    X = np.random.default_rng(1).random((9, 6), dtype=np.float32)
    np.testing.assert_allclose(bp.forward(blocks, row, X), bp.forward(plain, prow, X), rtol=1e-6)


def test_bad_inputs_raise_genreg_errors():
    layout = Layout((4, 3, 2), "relu")
    row = Population.random(layout, 1, seed=0).W[0].copy()
    X = np.zeros((5, 4), np.float32)
    y = np.zeros(5, np.int64)
    with pytest.raises(ConfigError, match="parameters"):
        bp.forward(layout, row[:-1], X)
    with pytest.raises(ConfigError, match="shape"):
        bp.forward(layout, row, np.zeros((5, 3), np.float32))
    with pytest.raises(ConfigError, match="labels"):
        bp.loss_and_grad(layout, row, X, np.full(5, 2))
    with pytest.raises(ConfigError, match="labels"):
        bp.loss_and_grad(layout, row, X, np.zeros(4, np.int64))
    with pytest.raises(ConfigError, match="targets"):
        bp.loss_and_grad(layout, row, X, np.zeros((5, 3), np.float32), loss="mse")
    with pytest.raises(ConfigError, match="hidden layers"):
        bp.loss_and_grad(layout, row, X, y, dropout=(0.1, 0.1), rng=np.random.default_rng())
    with pytest.raises(ConfigError, match="rng"):
        bp.loss_and_grad(layout, row, X, y, dropout=0.5)
    with pytest.raises(ConfigError, match="grad"):
        bp.loss_and_grad(layout, row, X, y, grad=np.zeros(layout.n_params, np.float64))
    row[3] = np.nan
    with pytest.raises(TrainingError, match="NaN"):
        sgd.train(layout, row, X, y, sgd.TrainConfig(), seed=0)
    assert issubclass(TrainingError, GenregError)
