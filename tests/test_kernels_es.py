"""The evolution-strategy kernels (kernels/es.py via genreg.network.members) against their NumPy twins."""

import numba
import numpy as np
import pytest

import naive
from genreg.network.batch import SparseBatch
from genreg.network.layout import Layout
from genreg.network.members import FACTOR_CHUNK, Members, in_order

# (10, 16, 32, 4): a layer of exactly 32 units, whose joint product with A_l needs one more block of lanes
SHAPES = [((12, 5, 3), "tanh"), ((9, 7, 4, 3), "relu"), ((20, 33, 2), "sigmoid"), ((10, 16, 32, 4), "tanh")]


def _members(sizes, act, rank, P=6, per_parameter=False, antithetic=True, seed=3, generation=5):
    layout = Layout(sizes, act)
    rng = np.random.default_rng(sum(sizes) + rank)
    centre = rng.normal(0, 0.5, layout.n_params).astype(np.float32)
    if per_parameter:
        sigma = rng.uniform(0.05, 0.2, layout.n_params)
    else:
        sigma = rng.uniform(0.05, 0.2, 2 * layout.n_layers)
    return Members(layout, centre, sigma, rank, seed, generation, P, antithetic)


def _batch(n_in, B=19, sparse=True):
    rng = np.random.default_rng(n_in + B)
    X = rng.integers(0, 256, (B, n_in)).astype(np.uint8)
    if sparse:
        X[rng.random(X.shape) < 0.6] = 0
    return X


@pytest.mark.parametrize("sizes,act", SHAPES)
@pytest.mark.parametrize("rank", [0, 1, 3])
def test_built_members_match_twin(sizes, act, rank):
    m = _members(sizes, act, rank, P=5, antithetic=False) if rank else _members(sizes, act, 0, P=6, per_parameter=True)
    rows = m.build(np.arange(m.size))
    for k in range(m.size):
        twin = naive.es_member(m.layout, m.centre, m.sigma, rank, m.seed, m.generation, k, m.antithetic)
        np.testing.assert_allclose(rows[k], twin, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("sizes,act", SHAPES)
@pytest.mark.parametrize("rank", [0, 1, 2])
def test_scores_match_twin(sizes, act, rank):
    m = _members(sizes, act, rank, P=8)
    X = _batch(sizes[0])
    labels = np.random.default_rng(1).integers(0, sizes[-1], X.shape[0])
    n_correct, loss = m.score(SparseBatch.from_dense(X), labels)
    rows = [naive.es_member(m.layout, m.centre, m.sigma, rank, m.seed, m.generation, k) for k in range(m.size)]
    twin_correct, twin_loss = naive.es_scores(m.layout, rows, X, labels)
    np.testing.assert_array_equal(n_correct, twin_correct)
    np.testing.assert_allclose(loss, twin_loss, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("rank,antithetic", [(0, True), (1, True), (2, True), (1, False)])
def test_a_range_of_members_scores_as_in_the_whole_population(rank, antithetic):
    """Members are defined by their keys: scoring [0, 4), [4, 10), [10, 22) gives the full run's bits."""
    m = _members((12, 5, 3), "tanh", rank, P=22, antithetic=antithetic)
    batch = SparseBatch.from_dense(_batch(12))
    labels = np.random.default_rng(1).integers(0, 3, batch.n_samples)
    whole = m.score(batch, labels)
    parts = [m.score(batch, labels, first=a, stop=b) for a, b in ((0, 4), (4, 10), (10, 22))]
    for got, want in zip(map(np.concatenate, zip(*parts)), whole):
        np.testing.assert_array_equal(got, want)
    assert [len(x) for x in m.score(batch, labels, first=6, stop=6)] == [0, 0]


def test_a_range_of_antithetic_members_starts_on_a_pair():
    m = _members((12, 5, 3), "tanh", 1, P=8)
    batch = SparseBatch.from_dense(_batch(12))
    with pytest.raises(IndexError, match="starts on a pair"):
        m.score(batch, np.zeros(batch.n_samples, np.int64), first=3, stop=8)
    with pytest.raises(IndexError, match="not within"):
        m.score(batch, np.zeros(batch.n_samples, np.int64), first=0, stop=9)


def test_regression_scores_match_twin():
    m = _members((6, 8, 2), "tanh", 1, P=4)
    X = np.random.default_rng(0).normal(size=(13, 6)).astype(np.float32)
    targets = np.random.default_rng(1).normal(size=(13, 2)).astype(np.float32)
    n_correct, loss = m.score(SparseBatch.from_dense(X), targets=targets)
    rows = [naive.es_member(m.layout, m.centre, m.sigma, 1, m.seed, m.generation, k) for k in range(m.size)]
    _, twin = naive.es_scores(m.layout, rows, X, targets=targets)
    assert (n_correct == 0).all()
    np.testing.assert_allclose(loss, twin, rtol=1e-4, atol=1e-6)


def test_antithetic_members_mirror_the_centre():
    m = _members((12, 5, 3), "tanh", 2, P=4)
    rows = m.build([0, 1, 2, 3])
    np.testing.assert_allclose((rows[0] + rows[1]) / 2, m.centre, atol=1e-6)
    np.testing.assert_allclose((rows[2] + rows[3]) / 2, m.centre, atol=1e-6)
    assert not np.allclose(rows[0], rows[2])


@pytest.mark.parametrize("rank", [0, 1, 3])
def test_noise_sum_matches_twin(rank):
    layout = Layout((11, 6, 4))
    m = Members(layout, np.zeros(layout.n_params, np.float32), np.full(4, 0.1), rank, 7, 2, 10)
    w = np.random.default_rng(0).normal(size=5)
    v = np.random.default_rng(1).normal(size=5)
    grad, squares = m.noise_sum(w, v)
    twin_grad, twin_squares = naive.es_noise_sum(layout, rank, 7, 2, w, v)
    tol = dict(rtol=1e-5, atol=1e-6)  # the kernels draw float32 noise
    np.testing.assert_allclose(grad, twin_grad, **tol)
    np.testing.assert_allclose(squares, twin_squares, **tol)


def test_noise_sum_of_large_tensors_crosses_blocks():
    layout = Layout((300, 40, 3))  # 12,000 weights: several gradient items per tensor
    m = Members(layout, np.zeros(layout.n_params, np.float32), np.full(4, 0.1), 0, 1, 0, 4)
    w = np.array([1.0, -0.5])
    grad, _ = m.noise_sum(w)
    rows = m.build([0, 2])  # pair 0 (+), pair 1 (+)
    expected = (w[0] * rows[0].astype(np.float64) + w[1] * rows[1]) / 0.1
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-4)


def test_results_do_not_depend_on_threads():
    m = _members((30, 16, 5), "tanh", 1, P=40)
    X = SparseBatch.from_dense(_batch(30, B=37))
    labels = np.arange(37) % 5
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = m.score(X, labels), m.noise_sum(np.linspace(-1, 1, 20))[0]
        numba.set_num_threads(max(2, before))
        two = m.score(X, labels), m.noise_sum(np.linspace(-1, 1, 20))[0]
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(one[0][0], two[0][0])
    assert one[0][1].tobytes() == two[0][1].tobytes()
    assert one[1].tobytes() == two[1].tobytes()


def test_noise_sum_over_many_factor_chunks_matches_twin_for_any_threads():
    layout = Layout((12, 5, 3))
    n_pairs = 3 * FACTOR_CHUNK + 7  # four chunks of stacked factors, made on several threads at once
    m = Members(layout, np.zeros(layout.n_params, np.float32), np.full(4, 0.1), 2, 7, 2, 2 * n_pairs)
    w = np.random.default_rng(0).normal(size=n_pairs)
    v = np.random.default_rng(1).normal(size=n_pairs)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = m.noise_sum(w, v)
        numba.set_num_threads(max(2, before))
        two = m.noise_sum(w, v)
    finally:
        numba.set_num_threads(before)
    assert one[0].tobytes() == two[0].tobytes() and one[1].tobytes() == two[1].tobytes()
    twin_grad, twin_squares = naive.es_noise_sum(layout, 2, 7, 2, w, v)
    np.testing.assert_allclose(one[0], twin_grad, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(one[1], twin_squares, rtol=1e-5, atol=1e-3)  # float32 products of ~1,500 pairs


def test_noise_sum_of_no_members_is_zero():
    layout = Layout((12, 5, 3))
    for rank in (0, 1):
        grad, squares = Members(layout, np.zeros(layout.n_params, np.float32), np.full(4, 0.1), rank, 7, 2,
                                0).noise_sum(np.zeros(0), np.zeros(0))
        assert grad.shape == (layout.n_params,) and not grad.any() and not squares.any()


def test_in_order_yields_results_in_item_order():
    assert list(in_order(lambda x: x * x, range(23), 2)) == [x * x for x in range(23)]
    assert list(in_order(lambda x: x, [], 2)) == []


def test_members_check_their_arguments():
    layout = Layout((4, 3, 2))
    centre = np.zeros(layout.n_params, np.float32)
    with pytest.raises(Exception, match="even population"):
        Members(layout, centre, np.full(4, 0.1), 1, 0, 0, 5)
    with pytest.raises(Exception, match="one sigma per tensor"):
        Members(layout, centre, np.full(layout.n_params, 0.1), 1, 0, 0, 4)
