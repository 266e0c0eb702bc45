"""SparseBatch: dense -> tiles -> dense is the identity (uint8 read as pixel/255)."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg.network.batch import SparseBatch
from genreg.kernels.simd import TILE


def _sparse(rng, B, n, density=0.3, dtype=np.float32):
    mask = rng.random((B, n)) < density
    if np.dtype(dtype) == np.uint8:
        return (rng.integers(1, 256, size=(B, n)) * mask).astype(np.uint8)
    return (rng.normal(size=(B, n)) * mask).astype(dtype)


def check_structure(batch: SparseBatch, X: np.ndarray) -> None:
    """Invariants of the tile format, checked against the dense source ``X: (B, n)``."""
    B, n = X.shape
    n_tiles = -(-B // TILE)
    assert batch.n_samples == B and batch.n_features == n
    assert batch.n_tiles == n_tiles
    assert batch.tile_ptr.dtype == np.int64 and batch.tile_ptr.shape == (n_tiles + 1,)
    assert batch.rows.dtype == np.int32 and batch.values.dtype == np.float32
    assert batch.tile_ptr[0] == 0 and batch.tile_ptr[-1] == batch.rows.shape[0]
    assert batch.values.shape == (batch.rows.shape[0], TILE)
    assert (np.diff(batch.tile_ptr) >= 0).all()
    for t in range(n_tiles):
        sl = slice(batch.tile_ptr[t], batch.tile_ptr[t + 1])
        rows = batch.rows[sl]
        tile = X[t * TILE : (t + 1) * TILE]
        # Ascending, in range, and exactly the features non-zero in some sample of the tile.
        assert (np.diff(rows) > 0).all(), f"tile {t}: rows not strictly ascending"
        assert ((rows >= 0) & (rows < n)).all()
        active = np.flatnonzero((tile != 0).any(axis=0))
        np.testing.assert_array_equal(rows, active, err_msg=f"tile {t}: wrong active features")
        # Padding samples past B are zero.
        n_real = tile.shape[0]
        assert (batch.values[sl, n_real:] == 0).all()
        # Zero where the sample is inactive, non-zero where it is active.
        np.testing.assert_array_equal(batch.values[sl, :n_real] != 0, (tile[:, rows] != 0).T)


def _cases():
    rng = np.random.default_rng(2024)
    cases = {}
    for B in (1, 2, TILE - 1, TILE, TILE + 1, 3 * TILE + 5, 50):
        cases[f"float32-B{B}"] = _sparse(rng, B, 37)
    X = _sparse(rng, 29, 20)
    X[[0, 5, 6, 7, 28]] = 0  # all-zero rows, including a whole tail
    X[TILE : 2 * TILE] = 0  # a whole all-zero tile
    cases["float32-zero-rows"] = X
    cases["float32-all-zero"] = np.zeros((13, 11), np.float32)
    cases["float32-dense"] = rng.normal(size=(11, 9)).astype(np.float32)
    cases["float32-width1"] = _sparse(rng, 10, 1, density=0.5)
    cases["float64"] = _sparse(rng, 10, 12, dtype=np.float64)
    cases["int64"] = (rng.integers(-3, 4, size=(10, 12)) * (rng.random((10, 12)) < 0.4)).astype(np.int64)
    return cases


CASES = _cases()


@pytest.mark.parametrize("name", list(CASES))
def test_roundtrip_float(name):
    X = CASES[name]
    batch = SparseBatch.from_dense(X)
    check_structure(batch, X)
    dense = batch.to_dense()
    assert dense.dtype == np.float32 and dense.shape == X.shape
    np.testing.assert_array_equal(dense, naive.scaled_inputs(X))


def test_roundtrip_does_not_modify_input():
    X = _sparse(np.random.default_rng(1), 13, 17)
    before = X.copy()
    SparseBatch.from_dense(X)
    np.testing.assert_array_equal(X, before)


def test_roundtrip_non_contiguous_input():
    X = _sparse(np.random.default_rng(8), 40, 30)
    view = X[::2, ::3]
    batch = SparseBatch.from_dense(view)
    check_structure(batch, np.ascontiguousarray(view))
    np.testing.assert_array_equal(batch.to_dense(), view)


def test_empty_batch():
    batch = SparseBatch.from_dense(np.zeros((0, 7), np.float32))
    assert batch.n_samples == 0 and batch.n_tiles == 0
    assert batch.to_dense().shape == (0, 7)


def test_all_zero_batch_has_no_active_features():
    batch = SparseBatch.from_dense(np.zeros((3 * TILE + 1, 784), np.uint8))
    assert batch.rows.shape == (0,)
    assert (batch.tile_ptr == 0).all()
    np.testing.assert_array_equal(batch.to_dense(), np.zeros((3 * TILE + 1, 784), np.float32))


UINT8_CASES = {
    "B1": (1, 30),
    "B3": (3, 30),
    "B13": (13, 30),
    "B50": (50, 784),
    "Btile": (TILE, 5),
}


def _uint8(name):
    B, n = UINT8_CASES[name]
    X = _sparse(np.random.default_rng(list(UINT8_CASES).index(name) + 100), B, n, dtype=np.uint8)
    if name == "B13":
        X[[2, 3]] = 0  # all-zero rows
    return X


def _all_pixels():
    """Every pixel value 0..255, several samples per tile."""
    return np.arange(256, dtype=np.uint8).reshape(32, 8)


@pytest.mark.parametrize("name", list(UINT8_CASES))
def test_uint8_structure_and_close_to_pixel_over_255(name):
    X = _uint8(name)
    batch = SparseBatch.from_dense(X)
    check_structure(batch, X)
    dense = batch.to_dense()
    assert dense.dtype == np.float32 and dense.shape == X.shape
    # Within one float32 ulp of pixel/255 (the exact check is below).
    ref = naive.scaled_inputs(X)
    assert (np.abs(dense - ref) <= np.spacing(ref)).all()
    assert dense.max() <= 1.0 and dense.min() >= 0.0


def test_uint8_exactly_pixel_over_255_all_values():
    X = _all_pixels()
    np.testing.assert_array_equal(SparseBatch.from_dense(X).to_dense(), naive.scaled_inputs(X))


@pytest.mark.parametrize("name", ["B50", "B13"])
def test_uint8_exactly_pixel_over_255(name):
    X = _uint8(name)
    np.testing.assert_array_equal(SparseBatch.from_dense(X).to_dense(), naive.scaled_inputs(X))


def test_uint8_pixel_extremes():
    X = np.array([[0, 255, 0], [255, 0, 0]], dtype=np.uint8)
    dense = SparseBatch.from_dense(X).to_dense()
    np.testing.assert_array_equal(dense, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_real_mnist_structure_and_values(mnist):
    X = mnist.test_images[:203]
    batch = SparseBatch.from_dense(X)
    check_structure(batch, X)
    dense = batch.to_dense()
    ref = naive.scaled_inputs(X)
    assert (np.abs(dense - ref) <= np.spacing(ref)).all()
    np.testing.assert_array_equal(dense != 0, X != 0)
    assert 0.0 < batch.density < 1.0


def test_real_mnist_exactly_pixel_over_255(mnist):
    X = mnist.train_images[:500]
    np.testing.assert_array_equal(SparseBatch.from_dense(X).to_dense(), naive.scaled_inputs(X))


@pytest.mark.parametrize("shape", [(5,), (), (2, 3, 4)])
def test_not_2d_is_value_error(shape):
    with pytest.raises(ValueError, match="2-D"):
        SparseBatch.from_dense(np.ones(shape, np.float32))


@pytest.mark.parametrize("X", [
    np.array([["a", "b"], ["c", "d"]]),
    np.array([[1, None], [2, 3]], dtype=object),
    np.ones((2, 2), dtype=bool),
    np.ones((2, 2), dtype=np.complex64),
], ids=["str", "object", "bool", "complex"])
def test_non_numeric_dtype_is_type_error(X):
    with pytest.raises(TypeError, match="dtype"):
        SparseBatch.from_dense(X)
