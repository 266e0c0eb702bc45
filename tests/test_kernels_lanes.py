"""The samples-along-the-lanes kernels of the evolution strategies against their NumPy twins:
``forward.lanes_layer`` (one dense layer, LANES samples a register), ``exp.exp_nonpositive_inplace``
(the softmax's exponentials) and ``es.score_batch`` (a member's correct answers and summed loss)."""

import numpy as np
import pytest

import naive
from genreg.kernels.es import score_batch
from genreg.kernels.exp import WIDTH, exp_nonpositive_inplace
from genreg.kernels.forward import lanes_layer
from genreg.kernels.simd import LANES, LANES_UNITS, TILE


@pytest.mark.parametrize("n_in", [1, 3, 64])
@pytest.mark.parametrize("n_out", [1, 11, LANES_UNITS, LANES_UNITS + 1, 2 * LANES_UNITS + 5])
def test_lanes_layer_is_its_twin_bit_for_bit(n_in, n_out):
    """Row strides and offsets as the ES worker uses them: W inside a longer row with a wider stride,
    x and out groups of LANES columns inside (units, B') arrays."""
    rng = np.random.default_rng(n_in * 100 + n_out)
    stride, w_off, groups = n_out + 2, 5, 3
    w = rng.standard_normal(w_off + n_in * stride + n_out + 7).astype(np.float32)
    b_off = w_off + n_in * stride
    x = rng.standard_normal((n_in + 2, groups * LANES)).astype(np.float32)
    out = np.full((n_out + 1, groups * LANES), np.float32(7.0))
    g = 1  # the middle group: neighbours must stay untouched
    lanes_layer(w, w_off, stride, b_off, n_in, n_out, x, 2 * groups * LANES + g * LANES, groups * LANES,
                out, g * LANES, groups * LANES)
    W = w[w_off : w_off + n_in * stride].reshape(n_in, stride)[:, :n_out]
    want = naive.dense_lanes(W, w[b_off : b_off + n_out], x[2:, g * LANES : (g + 1) * LANES])
    got = out[:n_out, g * LANES : (g + 1) * LANES]
    assert got.tobytes() == want.tobytes()
    assert np.all(out[:, : g * LANES] == 7.0) and np.all(out[:, (g + 1) * LANES :] == 7.0) and np.all(out[n_out] == 7.0)


@pytest.mark.parametrize("n", [0, 1, WIDTH - 1, WIDTH, 4 * WIDTH + 3, 1000])
def test_exponentials_are_their_twin_bit_for_bit(n):
    rng = np.random.default_rng(n)
    x = -rng.exponential(20.0, n + 5)
    specials = [0.0, -0.0, -708.0, -708.5, -1e308, -np.inf, np.nan, -5e-324]
    x[: min(n, len(specials))] = specials[: min(n, len(specials))]
    got = x.copy()
    exp_nonpositive_inplace(got, n)
    want = naive.exp_nonpositive(x[:n])
    assert np.array_equal(got[:n], want, equal_nan=True)
    assert got[:n].tobytes() == want.tobytes() or np.isnan(want).any()
    assert got[n:].tobytes() == x[n:].tobytes()  # past n: untouched


def test_exponentials_are_exp_to_a_few_ulp():
    x = -np.random.default_rng(0).exponential(30.0, 20000)
    x = x[x > -700]
    got = x.copy()
    exp_nonpositive_inplace(got, got.shape[0])
    np.testing.assert_allclose(got, np.exp(x), rtol=1e-15, atol=0)


def _score(logits, n_samples, n_classes, labels, targets, group):
    width = logits.shape[1]
    return score_batch(np.ascontiguousarray(logits), n_samples, n_classes, labels, targets,
                       np.empty((logits.shape[0] + 5) * width), np.empty(width, np.int64), group)


def _tile_by_tile(logits, n_samples, n_classes, labels, targets):
    """The batch scored one tile at a time (each tile one group), the tiles' totals added in order."""
    correct, total = 0, 0.0
    for t in range(0, n_samples, TILE):
        n = min(TILE, n_samples - t)
        c, e = _score(logits[:, t : t + n], n, n_classes, labels[t : t + n], targets[t : t + n], n)
        correct, total = correct + c, total + e
    return correct, total


@pytest.mark.parametrize("n_samples", [1, TILE, LANES + 3, 200])
def test_scores_of_a_batch_are_their_twin_summed_tile_by_tile(n_samples):
    rng = np.random.default_rng(n_samples)
    width = -(-n_samples // LANES) * LANES
    n_classes = 10
    logits = (rng.standard_normal((n_classes + 1, width)) * 8).astype(np.float32)
    logits[3, 0] = logits[5, 0] = logits[:, 0].max() + 1  # a tie: the first largest wins
    labels = rng.integers(0, n_classes, n_samples).astype(np.int32)
    none = np.zeros((0, 1), np.float32)
    correct, total = _score(logits, n_samples, n_classes, labels, none, TILE)
    want_correct, want_total = naive.softmax_scores(logits[:n_classes, :n_samples].T, labels, TILE)
    assert correct == want_correct
    assert total == pytest.approx(want_total, rel=1e-13)
    assert (correct, total) == _tile_by_tile(logits, n_samples, n_classes, labels, none)  # the same bits
    assert _score(logits, n_samples, n_classes, labels, none, n_samples)[1] == pytest.approx(total, rel=1e-13)


def test_squared_errors_of_a_batch_are_summed_tile_by_tile():
    rng = np.random.default_rng(5)
    n_samples, n_out = LANES + 5, 3
    logits = rng.standard_normal((n_out, 2 * LANES)).astype(np.float32)
    targets = rng.standard_normal((n_samples, n_out)).astype(np.float32)
    labels = np.zeros(n_samples, np.int32)
    correct, total = _score(logits, n_samples, n_out, labels, targets, TILE)
    assert (correct, total) == _tile_by_tile(logits, n_samples, n_out, labels, targets)
    err = logits[:, :n_samples].T.astype(np.float64) - targets
    assert correct == 0 and total == pytest.approx(float((err ** 2).mean(axis=1).sum()), rel=1e-12)
