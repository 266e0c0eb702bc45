"""The forward wrappers (genreg.network.forward): argument checks, empty batches, block layouts refused."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.network import forward
from genreg.network.batch import SparseBatch
from genreg.network.forward import genome_logits, population_logits
from genreg.network.layout import Layout
from genreg.network.population import Population
from helpers import random_weights, random_inputs, VERTICAL


# --------------------------------------------------------------------------
# Validation in the wrappers
# --------------------------------------------------------------------------


@pytest.fixture
def small():
    layout = Layout((30, 7, 3), hidden_activation="tanh")
    rng = np.random.default_rng(3)
    X, _ = random_inputs("float32", 13, 30, rng)
    W = random_weights(layout, 2, rng)
    return layout, W, X, np.zeros(13, dtype=np.int64)


def test_wrong_dtype_is_type_error(small):
    layout, W, X, labels = small
    with pytest.raises(TypeError, match="float32"):
        forward.population_logits(layout, W.astype(np.float64), X)
    with pytest.raises(TypeError, match="float32"):
        forward.population_predict(layout, W.astype(np.float64), X, labels)
    with pytest.raises(TypeError):
        forward.population_logits(layout, W[0], X)  # 1-D
    with pytest.raises(TypeError):
        forward.population_logits(layout, W.tolist(), X)
    with pytest.raises(TypeError):
        forward.genome_logits(layout, W, X)  # 2-D row


def test_wrong_n_params_is_value_error(small):
    layout, W, X, labels = small
    for bad in (W[:, :-1], np.zeros((2, layout.n_params + 1), np.float32)):
        bad = np.ascontiguousarray(bad)
        with pytest.raises(ValueError, match=str(layout.n_params)):
            forward.population_logits(layout, bad, X)
        with pytest.raises(ValueError, match=str(layout.n_params)):
            forward.population_predict(layout, bad, X, labels)
        with pytest.raises(ValueError, match=str(layout.n_params)):
            forward.genome_logits(layout, bad[0], X)
        with pytest.raises(ValueError, match=str(layout.n_params)):
            forward.genome_predict(layout, bad[0], X)


def test_non_contiguous_population_is_value_error(small):
    layout, W, X, _ = small
    with pytest.raises(ValueError, match="contiguous"):
        forward.population_logits(layout, np.asfortranarray(W), X)


def test_wrong_n_features_is_value_error(small):
    layout, W, X, labels = small
    for bad in (X[:, :-1], np.zeros((13, 31), np.float32)):
        batch = SparseBatch.from_dense(bad)
        with pytest.raises(ValueError, match="features"):
            forward.population_logits(layout, W, batch)
        with pytest.raises(ValueError, match="features"):
            forward.population_logits(layout, W, bad)
        with pytest.raises(ValueError, match="features"):
            forward.population_predict(layout, W, batch, labels)
        with pytest.raises(ValueError, match="features"):
            forward.genome_logits(layout, W[0], batch)
        with pytest.raises(ValueError, match="features"):
            forward.genome_predict(layout, W[0], batch)


def test_labels_wrong_shape_is_value_error(small):
    layout, W, X, labels = small
    for bad in (labels[:-1], np.zeros(14, int), labels[:, None], np.zeros((13, 2), int), np.int64(0)):
        with pytest.raises(ValueError, match="labels"):
            forward.population_predict(layout, W, X, bad)


@pytest.mark.parametrize("n_classes", [0, -1, 4, 100])
def test_population_predict_n_classes_out_of_range(small, n_classes):
    layout, W, X, labels = small
    with pytest.raises(ValueError, match="n_classes"):
        forward.population_predict(layout, W, X, labels, n_classes)


@pytest.mark.parametrize(
    "n_classes",
    [0, -1, 4],
)
def test_genome_predict_n_classes_out_of_range(small, n_classes):
    layout, W, X, _ = small
    with pytest.raises(ValueError):
        forward.genome_predict(layout, W[0], X, n_classes)


def test_empty_batch(small):
    layout, W, X, _ = small
    empty = X[:0]
    assert forward.population_logits(layout, W, empty).shape == (2, 0, 3)
    assert forward.genome_logits(layout, W[0], empty).shape == (0, 3)
    pred, n_correct = forward.population_predict(layout, W, empty, np.zeros(0, int))
    assert pred.shape == (2, 0)
    np.testing.assert_array_equal(n_correct, [0, 0])


def test_numba_forward_and_flatten_refuse_block_layouts():
    layout = Layout(**VERTICAL)
    pop = Population.random(layout, 2, seed=0)
    X = np.zeros((3, 784), np.float32)
    with pytest.raises(ConfigError, match="parallel blocks"):
        population_logits(layout, pop.W, X)
    with pytest.raises(ConfigError, match="parallel blocks"):
        genome_logits(layout, pop.W[0], X)
    with pytest.raises(ConfigError, match="parallel blocks"):
        layout.unflatten(pop.W[0])
