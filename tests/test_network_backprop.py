"""NumPy backprop: gradients against central finite differences, SGD, dropout, training on MNIST."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.network import backprop as bp
from genreg.network import sgd
from genreg.network.blas import blas_threads
from genreg.tasks import to_float
from genreg.errors import ConfigError, GenregError, TrainingError
from genreg.network.layout import Layout
from genreg.network.population import Population

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
    value, dX = bp.input_gradient(layout, row, X, y, loss=loss)
    assert dX.shape == X.shape
    flat = X.ravel().copy()
    num = naive.numeric_gradient(lambda x: bp.loss_and_grad(layout, row, x.reshape(X.shape), y, loss=loss)[0], flat)
    np.testing.assert_allclose(dX.ravel(), num, rtol=1e-5, atol=1e-9)
    assert value == pytest.approx(bp.loss_and_grad(layout, row, X, y, loss=loss)[0])


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


def test_sgd_momentum_and_nesterov_match_a_hand_written_update():
    layout = Layout((3, 2), "identity")
    rng = np.random.default_rng(0)
    X = rng.random((4, 3), dtype=np.float32)
    y = rng.integers(0, 2, 4)
    for nesterov in (False, True):
        row = Population.random(layout, 1, seed=1).W[0].copy()
        start = row.astype(np.float64)
        cfg = sgd.TrainConfig(epochs=3, batch_size=4, lr=0.5, momentum=0.9, nesterov=nesterov, lr_decay=0.5,
                             shuffle=False)
        sgd.train(layout, row, X, y, cfg, seed=0)
        ref = naive.sgd(start, lambda w: bp.loss_and_grad(layout, w, X.astype(np.float64), y)[1], epochs=3, lr=0.5,
                        momentum=0.9, nesterov=nesterov, lr_decay=0.5)
        np.testing.assert_allclose(row, ref, rtol=1e-4, atol=1e-6)


def test_train_is_deterministic_and_in_place(mnist):
    layout = Layout((784, 16, 10), "relu")
    X, y = to_float(mnist.train_images[:600]), mnist.train_labels[:600].astype(np.int64)
    cfg = sgd.TrainConfig(epochs=2, batch_size=50, lr=0.05, dropout=0.2)
    rows = Population.random(layout, 2, seed=0).W
    rows[1] = rows[0]
    before = rows[0].copy()
    h0 = sgd.train(layout, rows[0], X, y, cfg, seed=7, X_val=X[:100], y_val=y[:100])
    h1 = sgd.train(layout, rows[1], X, y, cfg, seed=7)
    assert not np.array_equal(rows[0], before)  # trained in place, in the population buffer
    np.testing.assert_array_equal(rows[0], rows[1])
    assert [e["loss"] for e in h0] == [e["loss"] for e in h1]
    assert h0[1]["loss"] < h0[0]["loss"] and set(h0[0]) >= {"loss", "seconds", "val_accuracy", "epoch", "lr"}
    other = Population.random(layout, 1, seed=0).W[0]
    sgd.train(layout, other, X, y, cfg, seed=8)
    assert not np.array_equal(other, rows[0])


def test_train_epoch_by_epoch_with_a_shared_velocity_equals_one_call(mnist):
    """Three 1-epoch calls sharing a momentum buffer (and start_epoch) give the 3-epoch call exactly;
    without the shared buffer the momentum restarts and the weights differ."""
    layout = Layout((784, 12, 10), "tanh")
    X, y = to_float(mnist.train_images[:400]), mnist.train_labels[:400].astype(np.int64)
    cfg = sgd.TrainConfig(epochs=3, batch_size=40, lr=0.05, momentum=0.9, lr_decay=0.1, nesterov=True)
    one = Population.random(layout, 1, seed=3).W[0]
    steps, restart = one.copy(), one.copy()
    sgd.train(layout, one, X, y, cfg, seed=5)
    velocity = np.zeros_like(steps)
    single = sgd.TrainConfig(epochs=1, batch_size=40, lr=0.05, momentum=0.9, lr_decay=0.1, nesterov=True)
    for e in range(3):
        sgd.train(layout, steps, X, y, single, seed=5, start_epoch=e, velocity=velocity)
        sgd.train(layout, restart, X, y, single, seed=5, start_epoch=e)
    np.testing.assert_array_equal(steps, one)
    assert not np.array_equal(restart, one)
    with pytest.raises(ConfigError, match="velocity"):
        sgd.train(layout, steps, X, y, single, seed=5, velocity=np.zeros(3, np.float32))


def test_regression_with_mse_learns_a_smooth_function():
    rng = np.random.default_rng(0)
    X = rng.uniform(-1, 1, (2000, 2)).astype(np.float32)
    y = (np.sin(2 * X[:, 0]) * X[:, 1]).astype(np.float32)
    layout = Layout((2, 32, 32, 1), "tanh", "identity", blocks=((32,), (16, 16), (1,)))
    row = Population.random(layout, 1, seed=0).W[0]
    start = bp.mean_squared_error(layout, row, X, y)
    sgd.train(layout, row, X, y, sgd.TrainConfig(epochs=30, batch_size=50, lr=0.05, loss="mse"), seed=0)
    assert bp.mean_squared_error(layout, row, X, y) < 0.1 * start
    assert bp.mean_absolute_error(layout, row, X, y) < 0.1


def test_mnist_784_256_128_10_reaches_97_percent(mnist):
    """The accuracy users expect of this MLP, a few epochs of SGD (about 6-8 s here)."""
    layout = Layout((784, 256, 128, 10), "relu")
    row = Population.random(layout, 1, seed=0).W[0]
    X, y = to_float(mnist.train_images), mnist.train_labels.astype(np.int64)
    with blas_threads(1):
        sgd.train(layout, row, X, y, sgd.TrainConfig(epochs=3, lr=0.05), seed=0)
        acc = bp.accuracy(layout, row, to_float(mnist.test_images), mnist.test_labels.astype(np.int64))
    assert acc >= 0.97


@pytest.mark.parametrize("key,value", [("epochs", -1), ("batch_size", 0), ("lr", 0.0), ("momentum", 1.0),
                                       ("lr_decay", -0.1), ("dropout", 1.0), ("dropout", (0.1, 1.5)),
                                       ("loss", "hinge"), ("nesterov", "yes"), ("shuffle", 1)])
def test_invalid_train_config_names_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        sgd.TrainConfig(**{key: value}).validate()
    with pytest.raises(ConfigError, match="nesterov"):
        sgd.TrainConfig(momentum=0.0, nesterov=True).validate()


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


def test_divergence_is_reported():
    layout = Layout((4, 8, 2), "identity")
    rng = np.random.default_rng(0)
    X = (rng.random((50, 4), dtype=np.float32) * 1e3).astype(np.float32)
    y = rng.random((50, 2)).astype(np.float32) * 1e3
    row = Population.random(layout, 1, seed=0).W[0].copy()
    with pytest.raises(TrainingError, match="diverged"):
        sgd.train(layout, row, X, y, sgd.TrainConfig(epochs=5, lr=10.0, loss="mse"), seed=0)
