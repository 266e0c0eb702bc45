"""Every Numba kernel against its twin in ``naive.py``, called directly (no wrapper in between).

Most kernels are bit-exact by design: the random streams are integer arithmetic,
mutation and crossover copy or add float32 values in a documented order, the
tiles copy values, and the forward kernels add each unit's terms in a fixed
order with one IEEE fused multiply-add per term (``kernels/simd.py``) and a
float32 rational tanh.  Their twins repeat those steps, so the comparisons
below are exact equality.  The textbook float64 twins (``naive.forward``,
``naive.activate``) are compared with tolerances in ``test_kernels_forward.py`` and ``test_kernels_activations.py``.
"""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest

import naive
from genreg import kernels
from genreg.kernels import rng as krng
from genreg.kernels.forward import padded_width
from genreg.kernels.simd import BLOCK, TILE
from genreg.network.layout import ACTIVATIONS, Layout

CHILD_MUTATION, BASE_MUTATION, CROSSOVER = 2, 3, 4  # stream purposes (any distinct ints will do here)


def as_u64(values) -> np.ndarray:
    return np.array([int(v) for v in values], dtype=np.uint64)


def random_inputs(rng, B: int, n: int) -> np.ndarray:
    """``(B, n) uint8`` pixels, ~70% zero."""
    return (rng.integers(1, 256, size=(B, n)) * (rng.random((B, n)) < 0.3)).astype(np.uint8)


def random_weights(layout: Layout, P: int, rng) -> np.ndarray:
    return rng.normal(0.0, 1.0 / np.sqrt(layout.n_inputs), size=(P, layout.n_params)).astype(np.float32)


# ---------------------------------------------------------------- rng.py


def test_mix64_next_u64_draw_at_and_stream_key_are_their_twins():
    rng = np.random.default_rng(1)
    for z in [0, 1, 2**63, 2**64 - 1, *rng.integers(0, 2**63, 50).tolist()]:
        assert int(krng.mix64(np.uint64(z))) == naive.mix64(z)
        state, bits = krng.next_u64(np.uint64(z))
        stream = naive.Stream(z)
        assert int(bits) == stream.u64() and int(state) == stream.state
        for k in (1, 2, 7, 64):
            assert int(krng.draw_at(np.uint64(z), k)) == naive.draw_at(z, k)
            assert int(krng.draw_state(np.uint64(z), k)) == (z + k * naive.GOLDEN) & naive.MASK64
    for seed, generation, genome, purpose in [(0, 0, 0, 0), (12345, 678, 9, 2), (2**63 - 1, 2**40, 2**31 - 1, 5)]:
        assert int(kernels.stream_key(seed, generation, genome, purpose)) == naive.stream_key(
            seed, generation, genome, purpose)


def test_stream_keys_kernel():
    genomes = np.array([0, 1, 2, 17, 199, 5000], dtype=np.int64)
    keys = np.empty(genomes.size, dtype=np.uint64)
    kernels.stream_keys(42, 7, genomes, BASE_MUTATION, keys)
    np.testing.assert_array_equal(keys, naive.stream_keys(42, 7, genomes, BASE_MUTATION))


def test_uniform_normal_and_exponential_draws_are_their_twins():
    """Bit for bit: the twins use the same operations in the same order (``math.log`` is the same libm log)."""
    rng = np.random.default_rng(2)
    bits = [0, 1, 2**11, 2**63, 2**64 - 2**12, 2**64 - 1, *rng.integers(0, 2**63, 2000).tolist()]
    for b in bits[:5] + bits[6:]:  # not 2**64 - 1: see the next test
        p = naive.uniform_open(b)
        assert krng.uniform_open_from_bits(np.uint64(b)) == p
        assert krng.normal_quantile(p) == naive.normal_quantile(p)
        if not krng.in_normal_tail(p):
            assert krng.normal_central(p) == naive.normal_quantile(p)
    got = np.empty(len(bits))
    krng.exponentials_from_bits(as_u64(bits), np.empty(len(bits)), got)
    assert got.tolist() == [naive.exponential_of_bits(b) for b in bits]
    for key in (0, 99, 2**64 - 1):
        state, stream = np.uint64(key), naive.Stream(key)
        for _ in range(100):
            state, z = krng.next_normal(np.uint64(state))  # a Python int would be typed int64
            assert z == stream.normal()


@pytest.mark.xfail(strict=True, reason="kernels/rng.py: (2**53 - 1) + 0.5 rounds to 2**53 in float64, so the top "
                   "draw gives u = 1.0 and a NaN normal (probability 2**-53 per draw)")
def test_uniform_open_is_below_one_for_every_draw():
    """``uniform_open_from_bits`` documents a uniform on (0, 1), "never 0 or 1"."""
    u = krng.uniform_open_from_bits(np.uint64(2**64 - 1))
    assert u == naive.uniform_open(2**64 - 1)
    assert 0.0 < u < 1.0 and np.isfinite(krng.normal_quantile(u))


# ---------------------------------------------------------------- variation.py


@pytest.mark.parametrize("rate", [0.0, 0.001, 0.07, 0.5, 1.0])
def test_mutate_rows_kernel(rate):
    rng = np.random.default_rng(3)
    W = rng.normal(0.0, 0.1, size=(6, 2500)).astype(np.float32)
    rows = np.array([5, 0, 2], dtype=np.int64)
    keys = naive.stream_keys(1, 2, rows, CHILD_MUTATION)
    want, want_counts = naive.mutate_rows(W, rows, rate, 0.3, keys)
    counts = np.empty(3, dtype=np.int64)
    kernels.mutate_rows(W, rows, rate, 0.3, keys, counts)
    assert W.tobytes() == want.tobytes()
    np.testing.assert_array_equal(counts, want_counts)


def test_mutate_row_kernel_on_long_and_short_rows():
    for n in (1, 31, 32, 33, 64 * 7 + 5, 20_000):
        for rate in (0.02, 0.3):
            key = naive.stream_key(n, 0, 1, CHILD_MUTATION)
            row = np.random.default_rng(n).normal(size=n).astype(np.float32)
            want, positions, _ = naive.mutate_row(row, rate, 0.05, key)
            assert kernels.mutate_row(row, rate, 0.05, np.uint64(key)) == positions.size
            assert row.tobytes() == want.tobytes()


def _parents(W, C, rng):
    a = rng.integers(0, W.shape[0], C).astype(np.int64)
    b = rng.integers(0, W.shape[0], C).astype(np.int64)
    b[0] = a[0]  # a self-pair
    return a, b, naive.stream_keys(5, 6, np.arange(C), CROSSOVER)


@pytest.mark.parametrize("n", [1, 63, 64, 65, 1000])
def test_mask_crossover_kernel_copies_bits_nan_included(n):
    rng = np.random.default_rng(n)
    W = rng.normal(size=(5, n)).astype(np.float32)
    W.view(np.uint32)[1, ::3] = 0x7FC01234  # NaNs with a payload
    a, b, keys = _parents(W, 9, rng)
    out = np.empty((9, n), dtype=np.uint32)
    kernels.mask_crossover(W.view(np.uint32), a, b, keys, out)
    np.testing.assert_array_equal(out, naive.mask_crossover(W, a, b, keys).view(np.uint32))


@pytest.mark.parametrize("bounds", [[0, 10], [0, 1, 2, 9, 10], list(range(11))])
def test_gene_crossover_kernel(bounds):
    rng = np.random.default_rng(len(bounds))
    W = rng.normal(size=(4, 10)).astype(np.float32)
    a, b, keys = _parents(W, 12, rng)
    bounds = np.array(bounds, dtype=np.int64)
    out = np.empty((12, 10), dtype=np.float32)
    kernels.gene_crossover(W, a, b, bounds, keys, out)
    assert out.tobytes() == naive.gene_crossover(W, a, b, bounds, keys).tobytes()


def test_gene_crossover_kernel_past_64_genes():
    rng = np.random.default_rng(4)
    W = rng.normal(size=(3, 300)).astype(np.float32)
    a, b, keys = _parents(W, 5, rng)
    bounds = np.concatenate([np.arange(0, 200, 2), np.arange(200, 301, 1)]).astype(np.int64)  # 200 genes
    out = np.empty((5, 300), dtype=np.float32)
    kernels.gene_crossover(W, a, b, bounds, keys, out)
    assert out.tobytes() == naive.gene_crossover(W, a, b, bounds, keys).tobytes()


def children_args(W, C, crossover, rng, bounds=None):
    """Arguments of ``kernels.make_children`` (W through base_keys) for C children."""
    a, b, xkeys = _parents(W, C, rng)
    rates = np.where(np.arange(C) % 3 == 0, 0.0, rng.uniform(0.0, 0.4, C))
    rates[-1] = 1.0
    base_rates = np.where(np.arange(C) % 2 == 1, 0.08, 0.0)
    if bounds is None:
        bounds = np.array([0, W.shape[1]], dtype=np.int64)
    return (W, a, b, crossover, bounds, xkeys, rates, base_rates, 0.05,
            naive.stream_keys(5, 6, np.arange(C), CHILD_MUTATION), naive.stream_keys(5, 6, np.arange(C), BASE_MUTATION))


@pytest.mark.parametrize("crossover", [0, 1, 2])
def test_make_children_kernel(crossover):
    rng = np.random.default_rng(crossover)
    W = rng.normal(0.0, 0.1, size=(5, 777)).astype(np.float32)
    args = children_args(W, 8, crossover, rng, np.array([0, 5, 300, 301, 777], dtype=np.int64))
    out = np.empty((8, 777), dtype=np.float32)
    counts = np.empty(8, dtype=np.int64)
    kernels.make_children(*args, out, counts)
    want, want_counts = naive.make_children(*args)
    assert out.tobytes() == want.tobytes()
    np.testing.assert_array_equal(counts, want_counts)


# ---------------------------------------------------------------- sparse.py


@pytest.mark.parametrize("B, n", [(1, 5), (TILE, 7), (TILE + 1, 30), (3 * TILE + 2, 784), (0, 4)])
@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_count_active_features_and_fill_tiles_kernels(B, n, dtype):
    rng = np.random.default_rng(B * n)
    X = random_inputs(rng, B, n)
    if dtype == np.float32:
        X = (X * rng.normal(size=X.shape)).astype(np.float32)
    if B > 2:
        X[1] = 0  # an all-zero sample
    want_ptr, want_rows, want_values = naive.tiles(X, TILE)
    counts = np.empty(-(-B // TILE), dtype=np.int64)
    kernels.count_active_features(X, counts)
    np.testing.assert_array_equal(counts, np.diff(want_ptr))
    rows = np.empty(want_rows.size, dtype=np.int32)
    values = np.empty((want_rows.size, TILE), dtype=np.float32)
    kernels.fill_tiles(X, np.float32(255.0 if dtype == np.uint8 else 1.0), want_ptr, rows, values)
    np.testing.assert_array_equal(rows, want_rows)
    assert values.tobytes() == want_values.tobytes()


# ---------------------------------------------------------------- activations.py


def _grid() -> np.ndarray:
    special = np.array([0.0, -0.0, 1e-45, 3.99e-4, 4e-4, 4.01e-4, 7.905, 7.906, 30.0, 3e38, np.inf, -np.inf, np.nan],
                       dtype=np.float32)
    return np.concatenate([np.linspace(-20.0, 20.0, 200_001, dtype=np.float32), special, -special])


@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_activate_inplace_kernel(act):
    x = _grid()
    h = x.reshape(1, -1).copy()
    kernels.activate_inplace(h, h.shape[1], ACTIVATIONS[act])
    np.testing.assert_array_equal(h[0], naive.activate_float32(x, act))  # NaN where the twin has NaN


def test_fast_tanh_kernel():
    @numba.njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = kernels.fast_tanh(x[i])
        return out

    x = _grid()
    got = apply(x)
    assert got.tobytes() == naive.fast_tanh(x).tobytes()  # bit for bit, signs of zero and NaN included


# ---------------------------------------------------------------- forward.py and simd.py


def _exact_fma_float32(a, b, c) -> np.float32:
    """a * b + c computed in rationals, then rounded to the nearest float32 (ties to even)."""
    exact = Fraction(float(a)) * Fraction(float(b)) + Fraction(float(c))
    near = np.float32(float(exact))  # within one float32 step of the answer
    candidates = [np.nextafter(near, np.float32(-np.inf)), near, np.nextafter(near, np.float32(np.inf))]
    return min(candidates, key=lambda v: (abs(Fraction(float(v)) - exact), int(np.float32(v).view(np.uint32)) & 1))


def test_fma_twin_rounds_once():
    """``naive.fma_float32`` is IEEE fma: checked against exact rational arithmetic, including a case
    where rounding the float64 sum first (double rounding) would be wrong."""
    a, b = np.float32(1 + 2.0**-12), np.float32((1 - 2.0**-12 + 2.0**-24) * 2.0**-24)
    assert float(a) * float(b) == 2.0**-24 + 2.0**-60  # exact: 1 + 2**-24 + 2**-60 is just past a float32 midpoint
    assert np.float32(float(a) * float(b) + 1.0) == np.float32(1.0)  # double rounding: wrong
    assert naive.fma_float32(a, b, np.float32(1.0)) == np.float32(1 + 2.0**-23) == _exact_fma_float32(a, b, 1.0)
    rng = np.random.default_rng(5)
    a = rng.normal(size=3000).astype(np.float32)
    b = (rng.normal(size=3000) * 10.0 ** rng.integers(-8, 8, 3000)).astype(np.float32)
    c = np.where(rng.random(3000) < 0.3, -(a.astype(np.float64) * b).astype(np.float32), rng.normal(size=3000)).astype(
        np.float32)  # many near-cancellations
    got = naive.fma_float32(a, b, c)
    assert got.tolist() == [_exact_fma_float32(*abc) for abc in zip(a, b, c)]


def test_padded_width_kernel():
    assert [padded_width(n) for n in range(0, 300)] == [naive.padded_width(n, BLOCK) for n in range(0, 300)]


SHAPES = [(784, 64, 10), (30, 7, 3), (20, 33, 5), (50, 100, 61, 17), (10, 1), (5, 3, 2, 4), (23, 47, 65)]


def _kernel_batch(X):
    """``(tile_ptr, rows, values)`` of ``X``, as the forward kernels take it (the tiles are checked above)."""
    return naive.tiles(X, TILE)


@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("act", list(ACTIVATIONS))
def test_population_and_genome_logits_kernels_bit_exact(act, sizes):
    layout = Layout(sizes, hidden_activation=act)
    rng = np.random.default_rng(len(sizes) * 100 + ACTIVATIONS[act])
    B, P = 2 * TILE + 3, 3
    X = random_inputs(rng, B, layout.n_inputs)
    W = random_weights(layout, P, rng)
    want = naive.population_logits(layout, W, X)
    batch = _kernel_batch(X)
    out = np.empty((P, B, layout.n_outputs), dtype=np.float32)
    kernels.population_logits(W, layout.sizes_array(), ACTIVATIONS[act], *batch, out, numba.get_num_threads())
    assert out.tobytes() == want.tobytes()
    for g in range(P):
        one = np.empty((B, layout.n_outputs), dtype=np.float32)
        kernels.genome_logits(W[g], layout.sizes_array(), ACTIVATIONS[act], *batch, one, numba.get_num_threads())
        assert one.tobytes() == want[g].tobytes()


@pytest.mark.parametrize("sizes", SHAPES[:4], ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("act", ["tanh", "relu"])
def test_population_predict_and_predict_from_logits_kernels(act, sizes):
    layout = Layout(sizes, hidden_activation=act)
    rng = np.random.default_rng(len(sizes) + ACTIVATIONS[act])
    B, P = 13, 4
    X = random_inputs(rng, B, layout.n_inputs)
    W = random_weights(layout, P, rng)
    for n_classes in sorted({1, max(1, layout.n_outputs - 1), layout.n_outputs}):
        labels = rng.integers(0, n_classes, B).astype(np.int32)
        want = naive.population_predict(layout, W, X, labels, n_classes)
        pred, n_correct = np.empty((P, B), np.int32), np.empty(P, np.int64)
        kernels.population_predict(W, layout.sizes_array(), ACTIVATIONS[act], *_kernel_batch(X), labels, n_classes,
                                   pred, n_correct, numba.get_num_threads())
        np.testing.assert_array_equal(pred, want[0])
        np.testing.assert_array_equal(n_correct, want[1])


def test_predict_from_logits_kernel_ties_and_nan():
    logits = np.array([[[1.0, 3.0, 3.0, 0.0], [np.nan, 2.0, 5.0, 5.0], [2.0, np.nan, 1.0, 9.0], [0.0, 0.0, 0.0, 0.0]]],
                      dtype=np.float32)
    logits = np.concatenate([logits, np.random.default_rng(6).normal(size=(3, 4, 4)).astype(np.float32)])
    labels = np.array([1, 0, 3, 0], dtype=np.int32)
    for n_classes in (1, 2, 3, 4):
        pred, n_correct = np.empty((4, 4), np.int32), np.empty(4, np.int64)
        kernels.predict_from_logits(logits, labels, n_classes, pred, n_correct)
        want = naive.predict_from_logits(logits, labels, n_classes)
        np.testing.assert_array_equal(pred, want[0])
        np.testing.assert_array_equal(n_correct, want[1])


@pytest.mark.parametrize("crossover", [0, 1, 2])
def test_brood_predict_kernel(crossover):
    layout = Layout((40, 19, 6), hidden_activation="tanh")
    rng = np.random.default_rng(10 + crossover)
    B, C = 2 * TILE + 1, 7
    X = random_inputs(rng, B, layout.n_inputs)
    W = random_weights(layout, 4, rng)
    args = children_args(W, C, crossover, rng, np.array([0, 100, 760, 779, layout.n_params], dtype=np.int64))
    labels = rng.integers(0, 6, B).astype(np.int32)
    want = naive.brood_predict(layout, args, X, labels, 6)
    pred, n_correct = np.empty((C, B), np.int32), np.empty(C, np.int64)
    order = np.argsort(args[1], kind="stable")
    kernels.brood_predict(*args, order, layout.sizes_array(), ACTIVATIONS["tanh"], *_kernel_batch(X), labels, 6,
                          pred, n_correct, numba.get_num_threads())
    np.testing.assert_array_equal(pred, want[0])
    np.testing.assert_array_equal(n_correct, want[1])
