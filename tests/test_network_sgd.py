"""Minibatch SGD (genreg.network.sgd): momentum and Nesterov, determinism, training on MNIST, errors."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.errors import ConfigError, TrainingError
from genreg.network import backprop as bp, sgd
from genreg.network.blas import blas_threads
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.tasks import to_float


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


def test_divergence_is_reported():
    layout = Layout((4, 8, 2), "identity")
    rng = np.random.default_rng(0)
    X = (rng.random((50, 4), dtype=np.float32) * 1e3).astype(np.float32)
    y = rng.random((50, 2)).astype(np.float32) * 1e3
    row = Population.random(layout, 1, seed=0).W[0].copy()
    with pytest.raises(TrainingError, match="diverged"):
        sgd.train(layout, row, X, y, sgd.TrainConfig(epochs=5, lr=10.0, loss="mse"), seed=0)
