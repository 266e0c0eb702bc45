"""Variation kernels (mutation, crossover) against pure-Python twins of the RNG.

The twins in ``tests/naive.py`` re-implement SplitMix64 with Python integers
masked to 64 bits, the uniform and normal draws with ``math`` functions, the
geometric-skip mutation and both crossovers' bit conventions.  Exact agreement (positions,
float32 values, provenance of every child entry) is the evidence that the
kernels draw what their documentation says, in the order it says; the
statistical tests check that what they draw has the intended distribution.
"""

from __future__ import annotations

import math
import textwrap

import numpy as np
import pytest

import naive
from genreg import kernels, streams
from genreg.network import variation
from genreg.streams import Purpose
from helpers import CROSSOVER_LAYOUTS as LAYOUTS


def provenance_rows(P: int, n: int) -> np.ndarray:
    """Parents whose every entry names its origin: ``W[r, j] = +(r * n + j + 1)`` for even r, negative for odd r."""
    W = (np.arange(P)[:, None] * n + np.arange(n)[None, :] + 1).astype(np.float32)
    W[1::2] *= -1
    assert np.unique(W).size == W.size  # exact in float32 for P * n < 2**24
    return W


# --------------------------------------------------------------------------
# The mutation twin reproduces the kernel
# --------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [0.001, 0.07, 0.35, 0.9, 1.0])
@pytest.mark.parametrize("case", range(3))
def test_twin_mutate_row_exact(rate, case):
    rng = np.random.default_rng(100 + case)
    n = [1, 1000, 4099][case]
    key = naive.stream_key(case, 11, 3, int(Purpose.CHILD_MUTATION))
    scale = [0.05, 0.3, 1.7][case]

    # positions: on a zero row every mutated entry becomes non-zero
    zero = np.zeros(n, dtype=np.float32)
    twin_row, twin_pos, _ = naive.mutate_row(zero, rate, scale, key)
    got = zero.copy()
    count = kernels.mutate_row(got, rate, scale, np.uint64(key))
    np.testing.assert_array_equal(np.flatnonzero(got), twin_pos)
    assert count == twin_pos.size
    np.testing.assert_array_equal(got, twin_row)

    # values: the float32 accumulation onto existing weights, bit for bit
    base = rng.normal(0.0, 0.1, size=n).astype(np.float32)
    twin_row, twin_pos2, _ = naive.mutate_row(base, rate, scale, key)
    np.testing.assert_array_equal(twin_pos2, twin_pos)  # positions do not depend on the values
    got = base.copy()
    assert kernels.mutate_row(got, rate, scale, np.uint64(key)) == twin_pos.size
    np.testing.assert_array_equal(got, twin_row)


def test_twin_mutate_wrapper_rows_use_their_own_keys():
    rng = np.random.default_rng(5)
    W = rng.normal(0.0, 0.05, size=(7, 3001)).astype(np.float32)
    rows = np.array([6, 0, 3])
    keys = naive.stream_keys(9, 2, rows, Purpose.CHILD_MUTATION)
    expected, expected_counts = naive.mutate_rows(W, rows, 0.07, 0.05, keys)
    counts = variation.mutate(W, rows, 0.07, 0.05, keys)
    np.testing.assert_array_equal(counts, expected_counts)
    np.testing.assert_array_equal(W, expected)


# --------------------------------------------------------------------------
# Mutation statistics
# --------------------------------------------------------------------------

N_BIG = 200_000


@pytest.fixture(scope="module")
def big_mutation():
    """A large zero row mutated at rate 0.07, scale 0.05: (row, count)."""
    W = np.zeros((1, N_BIG), dtype=np.float32)
    keys = streams.stream_keys(2024, 0, [0], Purpose.CHILD_MUTATION)
    counts = variation.mutate(W, [0], 0.07, 0.05, keys)
    return W[0], int(counts[0])


def test_mutation_fraction_is_binomial(big_mutation):
    row, count = big_mutation
    changed = np.count_nonzero(row)
    assert count == changed
    mean, sd = N_BIG * 0.07, math.sqrt(N_BIG * 0.07 * 0.93)
    assert abs(changed - mean) < 4 * sd, (changed, mean, sd)


def test_mutation_noise_is_normal_with_the_scale(big_mutation):
    row, count = big_mutation
    noise = row[row != 0].astype(np.float64)
    # the mean of `count` N(0, 0.05^2) draws has sd 0.05 / sqrt(count)
    assert abs(noise.mean()) < 4 * 0.05 / math.sqrt(count)
    # the sample sd has sd about 0.05 / sqrt(2 count)
    assert abs(noise.std() - 0.05) < 5 * 0.05 / math.sqrt(2 * count)
    # shape: the normal's central and tail masses
    within1 = np.mean(np.abs(noise) < 0.05)
    within2 = np.mean(np.abs(noise) < 0.10)
    assert abs(within1 - 0.6827) < 0.02
    assert abs(within2 - 0.9545) < 0.01
    # the tails: |z| > 3 sd has mass 0.0027 (the inverse CDF's log branch)
    beyond3 = np.mean(np.abs(noise) > 0.15)
    assert abs(beyond3 - 0.0027) < 5 * math.sqrt(0.0027 / count)
    # successive draws are uncorrelated
    r = np.corrcoef(noise[:-1], noise[1:])[0, 1]
    assert abs(r) < 5 / math.sqrt(noise.size)


def test_mutation_gaps_are_geometric(big_mutation):
    row, _ = big_mutation
    pos = np.flatnonzero(row)
    gaps = np.diff(pos)
    assert gaps.min() >= 1
    # Geometric(p) on {1, 2, ...}: mean 1/p, P(gap == 1) = p
    p = 0.07
    mean_sd = math.sqrt((1 - p) / p**2 / gaps.size)
    assert abs(gaps.mean() - 1 / p) < 4 * mean_sd
    ones = np.mean(gaps == 1)
    assert abs(ones - p) < 4 * math.sqrt(p * (1 - p) / gaps.size)


@pytest.mark.parametrize("rate", [0.0005, 0.01, 0.07, 0.3])
def test_mutation_cost_scales_with_rate(rate):
    """Without timing: the stream makes 2 draws per mutated entry (skip + noise) and 1 more to end, none per skipped entry."""
    n = 50_000
    key = naive.stream_key(1, 2, 3, 4)
    zero = np.zeros(n, dtype=np.float32)
    got = zero.copy()
    count = kernels.mutate_row(got, rate, 0.05, np.uint64(key))
    _, pos, draws = naive.mutate_row(zero, rate, 0.05, key)
    np.testing.assert_array_equal(np.flatnonzero(got), pos)  # the twin's draw count is the kernel's
    assert count == pos.size
    assert np.all(np.diff(pos) > 0)  # strictly increasing: geometric skipping never revisits an entry
    assert abs(count - rate * n) < 4 * math.sqrt(n * rate * (1 - rate)) + 1
    assert draws == 2 * count + 1
    assert draws <= 2 * count + 3 < n


def test_rate_zero_changes_nothing():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(3, 1000)).astype(np.float32)
    before = W.copy()
    counts = variation.mutate(W, [0, 1, 2], 0.0, 0.05, streams.stream_keys(0, 0, [0, 1, 2], Purpose.CHILD_MUTATION))
    np.testing.assert_array_equal(counts, 0)
    np.testing.assert_array_equal(W, before)


def test_rate_one_changes_everything():
    W = np.zeros((2, 777), dtype=np.float32)
    counts = variation.mutate(W, [1], 1.0, 0.05, streams.stream_keys(0, 0, [1], Purpose.CHILD_MUTATION))
    assert counts.tolist() == [777]
    assert np.all(W[1] != 0)
    assert np.all(W[0] == 0)


def test_scale_zero_changes_no_value():
    W = np.ones((1, 500), dtype=np.float32)
    counts = variation.mutate(W, [0], 0.5, 0.0, streams.stream_keys(0, 0, [0], Purpose.CHILD_MUTATION))
    assert counts[0] > 0
    np.testing.assert_array_equal(W, 1.0)


def test_counts_equal_changed_entries_and_only_requested_rows_change():
    rng = np.random.default_rng(1)
    W = rng.normal(0.0, 0.1, size=(8, 5000)).astype(np.float32)
    before = W.copy()
    rows = np.array([1, 4, 7])
    counts = variation.mutate(W, rows, 0.1, 0.05, streams.stream_keys(3, 3, rows, Purpose.CHILD_MUTATION))
    for i, r in enumerate(rows):
        assert counts[i] == np.count_nonzero(W[r] != before[r])
        assert counts[i] > 0
    others = np.setdiff1d(np.arange(8), rows)
    assert W[others].tobytes() == before[others].tobytes()


def test_same_key_same_result_different_key_different_positions():
    def run(key):
        row = np.zeros(10_000, dtype=np.float32)
        kernels.mutate_row(row, 0.05, 0.05, np.uint64(key))
        return row

    k1, k2 = naive.stream_key(0, 0, 0, 2), naive.stream_key(0, 0, 1, 2)
    a, b = run(k1), run(k2)
    assert a.tobytes() == run(k1).tobytes()
    pa, pb = set(np.flatnonzero(a)), set(np.flatnonzero(b))
    assert pa != pb
    # independent streams: the overlap is about rate * |positions|, not most of them
    assert len(pa & pb) < 0.2 * min(len(pa), len(pb))


# --------------------------------------------------------------------------
# Crossover provenance
# --------------------------------------------------------------------------


def test_mask_crossover_provenance_exact():
    P, n = 6, 1000  # 1000 = 15 * 64 + 40: a partial last draw
    W = provenance_rows(P, n)
    pa = np.array([0, 1, 2, 5, 3, 4, 0])
    pb = np.array([1, 0, 5, 2, 3, 1, 4])  # includes a self-pair (3, 3)
    keys = streams.stream_keys(7, 4, np.arange(len(pa)), Purpose.CROSSOVER)
    out = variation.mask_crossover(W, pa, pb, keys)
    assert out.shape == (len(pa), n) and out.dtype == np.float32
    total_a = 0
    for c in range(len(pa)):
        bits = naive.mask_bits(int(keys[c]), n)
        expected = np.where(bits, W[pa[c]], W[pb[c]])
        np.testing.assert_array_equal(out[c], expected)
        # decode the origin of each entry from its value
        row_of = (np.abs(out[c]).astype(np.int64) - 1) // n
        col_of = (np.abs(out[c]).astype(np.int64) - 1) % n
        np.testing.assert_array_equal(col_of, np.arange(n))
        assert set(row_of.tolist()) <= {int(pa[c]), int(pb[c])}
        if pa[c] != pb[c]:
            np.testing.assert_array_equal(row_of == pa[c], bits)
        total_a += bits.sum()
    share = total_a / (len(pa) * n)
    assert abs(share - 0.5) < 4 * math.sqrt(0.25 / (len(pa) * n))


def test_mask_crossover_leaves_parents_untouched_and_is_deterministic():
    W = provenance_rows(4, 300)
    before = W.copy()
    keys = streams.stream_keys(1, 1, [0, 1], Purpose.CROSSOVER)
    a = variation.mask_crossover(W, [0, 2], [1, 3], keys)
    b = variation.mask_crossover(W, [0, 2], [1, 3], keys)
    assert a.tobytes() == b.tobytes()
    np.testing.assert_array_equal(W, before)
    other = variation.mask_crossover(W, [0, 2], [1, 3], streams.stream_keys(2, 1, [0, 1], Purpose.CROSSOVER))
    assert not np.array_equal(a, other)


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: "-".join(map(str, l.sizes)))
@pytest.mark.parametrize("block_rows", [0, 1, 4])
def test_gene_crossover_provenance_exact(layout, block_rows):
    n = layout.n_params
    P = 5
    W = provenance_rows(P, n)
    bounds = variation.gene_bounds(layout, block_rows)
    G = len(bounds) - 1
    pa = np.array([0, 1, 2, 4, 3, 2, 1, 0])
    pb = np.array([1, 0, 3, 3, 4, 0, 4, 2])
    keys = streams.stream_keys(11, 5, np.arange(len(pa)), Purpose.CROSSOVER)
    out = variation.gene_crossover(W, pa, pb, keys, bounds)
    n_from_a = 0
    for c in range(len(pa)):
        bits = naive.gene_bits(int(keys[c]), G)
        for g in range(G):
            from_a = bool(bits[g])
            seg = slice(bounds[g], bounds[g + 1])
            child = out[c, seg]
            whole_a = np.array_equal(child, W[pa[c], seg])
            whole_b = np.array_equal(child, W[pb[c], seg])
            assert whole_a or whole_b, f"child {c} gene {g} mixes parents"
            assert (whole_a, whole_b) == (from_a, not from_a), f"child {c} gene {g}"
            n_from_a += from_a
    if G * len(pa) >= 100:
        share = n_from_a / (G * len(pa))
        assert abs(share - 0.5) < 4 * math.sqrt(0.25 / (G * len(pa)))


def test_clone_copies_rows():
    W = provenance_rows(4, 100)
    out = variation.clone(W, [3, 0, 3])
    np.testing.assert_array_equal(out, W[[3, 0, 3]])


# --------------------------------------------------------------------------
# Thread-count determinism
# --------------------------------------------------------------------------

_THREADS_SCRIPT = textwrap.dedent(
    """
    import hashlib, numba, numpy as np
    from genreg.network import variation
    from genreg import streams
    from genreg.network.layout import Layout
    from genreg.streams import Purpose
    layout = Layout((97, 13, 10))
    rng = np.random.default_rng(77)
    W = rng.normal(0.0, 0.05, size=(48, layout.n_params)).astype(np.float32)
    rows = np.arange(3, 48)
    counts = variation.mutate(W, rows, 0.07, 0.05, streams.stream_keys(5, 9, rows, Purpose.CHILD_MUTATION))
    all_rows = variation.mutate(W, [0, 1], 1.0, 0.01, streams.stream_keys(5, 9, [0, 1], Purpose.BASE_MUTATION))
    pa = rng.integers(0, 48, size=40)
    pb = rng.integers(0, 48, size=40)
    keys = streams.stream_keys(5, 9, np.arange(40), Purpose.CROSSOVER)
    mask = variation.mask_crossover(W, pa, pb, keys)
    gene = variation.gene_crossover(W, pa, pb, keys, variation.gene_bounds(layout, 3))
    h = hashlib.sha256()
    for a in (W, counts, all_rows, mask, gene):
        h.update(np.ascontiguousarray(a).tobytes())
    print(numba.get_num_threads(), h.hexdigest())
    """
)


def test_variation_identical_for_any_thread_count(digest_with_threads):
    t1, h1 = digest_with_threads(_THREADS_SCRIPT, 1)
    t2, h2 = digest_with_threads(_THREADS_SCRIPT, 2)
    assert (t1, t2) == (1, 2)
    assert h1 == h2


# --------------------------------------------------------------------------
# Clone and mutate in one pass
# --------------------------------------------------------------------------


def test_clone_mutate_equals_clone_then_mutate_and_reuses_out():
    rng = np.random.default_rng(11)
    W = rng.normal(0.0, 0.1, size=(6, 2001)).astype(np.float32)
    parents = np.array([3, 3, 0, 5, 1])
    rates = np.array([0.0, 0.07, 0.07, 0.3, 1.0])
    keys = streams.stream_keys(4, 9, np.arange(5), Purpose.CHILD_MUTATION)
    expected = variation.clone(W, parents)
    for c in range(5):
        variation.mutate(expected, [c], rates[c], 0.05, keys[c : c + 1])
    out = np.full((5, 2001), np.nan, dtype=np.float32)
    children, counts = variation.clone_mutate(W, parents, rates, 0.05, keys, out)
    assert children is out  # the buffer was reused
    assert children.tobytes() == expected.tobytes()
    assert counts[0] == 0 and counts[4] == 2001
    np.testing.assert_array_equal(counts, np.count_nonzero(children != W[parents], axis=1))
    # a buffer that aliases W, or has the wrong shape, is not written into
    for bad in (W[:5], np.empty((4, 2001), np.float32)):
        before = bad.copy()
        fresh, _ = variation.clone_mutate(W, parents, rates, 0.05, keys, bad)
        assert fresh is not bad and fresh.tobytes() == expected.tobytes()
        np.testing.assert_array_equal(bad, before)


def test_clone_mutate_with_base_mutation_equals_clone_then_two_mutations():
    """Child then base mutation in one pass equals clone, mutate, mutate again, bit for bit."""
    rng = np.random.default_rng(12)
    W = rng.normal(0.0, 0.1, size=(6, 3001)).astype(np.float32)
    parents = np.array([3, 3, 0, 5, 1, 2])
    rates = np.array([0.0, 0.07, 0.07, 0.3, 1.0, 0.07])
    base_rates = np.array([0.0, 0.0, 0.08, 0.5, 0.08, 1.0])
    keys = streams.stream_keys(4, 9, np.arange(6), Purpose.CHILD_MUTATION)
    base_keys = streams.stream_keys(4, 9, np.arange(6), Purpose.BASE_MUTATION)
    expected = variation.clone(W, parents)
    made = np.zeros(6, dtype=np.int64)
    for c in range(6):
        made[c] = variation.mutate(expected, [c], rates[c], 0.05, keys[c : c + 1])[0]
        made[c] += variation.mutate(expected, [c], base_rates[c], 0.05, base_keys[c : c + 1])[0]
    children, counts = variation.clone_mutate(W, parents, rates, 0.05, keys, base_rates=base_rates, base_keys=base_keys)
    assert children.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(counts, made)
    assert counts[0] == 0 and counts[4] >= 3001 and counts[5] >= 3001
