"""Weight-merge crossover against its slow, readable twin in ``naive.py``: match, grow, shrink, depth mismatch."""

import numpy as np
import pytest

import naive
from genreg import Layout
from genreg.errors import ConfigError
from genreg.hpo.merge import merge_weights, parent_layer, resize_tensor


def random_row(layout: Layout, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=layout.n_params).astype(np.float32)


# ----------------------------------------------------------------------------- resize


@pytest.mark.parametrize("shape_in, shape_out", [((5, 7), (5, 7)), ((4, 6), (9, 11)), ((9, 11), (4, 6)),
                                                 ((6, 3), (2, 8)), ((1, 5), (3, 5)), ((5, 4), (1, 1)),
                                                 ((7,), (3,)), ((3,), (10,))])
def test_resize_matches_reference(shape_in, shape_out):
    t = np.random.default_rng(0).normal(size=shape_in).astype(np.float32)
    got = resize_tensor(t, shape_out)
    assert got.shape == shape_out and got.dtype == np.float32
    np.testing.assert_allclose(got, naive.resize_tensor(t, shape_out), rtol=1e-5, atol=1e-6)


def test_resize_keeps_corners_and_linear_functions():
    i, j = np.meshgrid(np.arange(6.0), np.arange(4.0), indexing="ij")
    t = (2 * i - 3 * j + 1).astype(np.float32)  # linear in both indices
    got = resize_tensor(t, (11, 7))
    ii, jj = np.meshgrid(np.linspace(0, 5, 11), np.linspace(0, 3, 7), indexing="ij")
    np.testing.assert_allclose(got, 2 * ii - 3 * jj + 1, atol=1e-5)
    assert got[0, 0] == t[0, 0] and got[-1, -1] == t[-1, -1]


def test_resize_rejects_rank_change():
    with pytest.raises(ValueError):
        resize_tensor(np.zeros((2, 3)), (6,))


# ----------------------------------------------------------------------------- merge

CASES = {
    # name: (parent a sizes, parent b sizes, child sizes)
    "match": ((3, 8, 5, 2), (3, 8, 5, 2), (3, 8, 5, 2)),
    "grow": ((3, 8, 5, 2), (3, 6, 4, 2), (3, 12, 9, 2)),
    "shrink": ((3, 16, 12, 2), (3, 20, 10, 2), (3, 7, 4, 2)),
    "mixed": ((3, 16, 4, 2), (3, 6, 10, 2), (3, 9, 9, 2)),
    "deeper_child": ((3, 8, 2), (3, 6, 5, 2), (3, 7, 6, 4, 2)),
    "shallower_child": ((3, 8, 6, 5, 2), (3, 6, 5, 4, 2), (3, 10, 2)),
    "depth_mismatch_parents": ((3, 12, 2), (3, 9, 7, 5, 2), (3, 10, 6, 2)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_merge_matches_reference(case):
    a_sizes, b_sizes, c_sizes = CASES[case]
    a, b, child = Layout(a_sizes, "relu"), Layout(b_sizes, "relu"), Layout(c_sizes, "relu")
    ra, rb, init = random_row(a, 1), random_row(b, 2), random_row(child, 3)
    got = merge_weights(child, [(a, ra), (b, rb)], init_row=init)
    assert got.shape == (child.n_params,) and got.dtype == np.float32
    want = naive.merge_weights(child, [(a, ra), (b, rb)], init)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert np.array_equal(ra, random_row(a, 1)) and np.array_equal(rb, random_row(b, 2))  # parents untouched


def test_same_shape_is_the_average():
    layout = Layout((4, 6, 3), "tanh")
    ra, rb = random_row(layout, 5), random_row(layout, 6)
    got = merge_weights(layout, [(layout, ra), (layout, rb)])
    np.testing.assert_allclose(got, (ra.astype(np.float64) + rb) / 2, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(merge_weights(layout, [(layout, ra), (layout, ra)]), ra)


def test_layers_only_one_parent_has_are_inherited_and_none_keep_init():
    a, b = Layout((3, 5, 2)), Layout((3, 5, 4, 2))
    child = Layout((3, 5, 4, 6, 2))
    ra, rb, init = random_row(a, 1), random_row(b, 2), random_row(child, 3)
    got = merge_weights(child, [(a, ra), (b, rb)], init_row=init)
    # hidden layer 1 (5 -> 4): only parent b has a hidden layer there -> inherited from b as is
    np.testing.assert_array_equal(child.view(got, "W1"), b.view(rb, "W1"))
    np.testing.assert_array_equal(child.view(got, "b1"), b.view(rb, "b1"))
    # hidden layer 2 (4 -> 6): no parent has one -> the child's fresh initialisation
    np.testing.assert_array_equal(child.view(got, "W2"), child.view(init, "W2"))
    # output layer: both parents' output layers, resized along their input axis, averaged
    expected = (naive.resize_tensor(a.view(ra, "W1"), (6, 2)) + naive.resize_tensor(b.view(rb, "W2"), (6, 2))) / 2
    np.testing.assert_allclose(child.view(got, "W3"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(child.view(got, "b3"), (a.view(ra, "b1") + b.view(rb, "b2")) / 2, rtol=1e-6)
    # without an init row, a layer no parent has is zero
    assert not merge_weights(child, [(a, ra), (b, rb)])[child.tensor("W2").offset : child.tensor("W2").stop].any()


def test_parent_layer_correspondence():
    child, shallow, deep = Layout((2, 4, 4, 4, 1)), Layout((2, 4, 1)), Layout((2, 4, 4, 4, 4, 1))
    assert [parent_layer(child, shallow, l) for l in range(4)] == [0, None, None, 1]
    assert [parent_layer(child, deep, l) for l in range(4)] == [0, 1, 2, 4]


def test_merge_errors():
    a, child = Layout((3, 5, 2)), Layout((4, 5, 2))
    with pytest.raises(ConfigError, match="input and output sizes"):
        merge_weights(child, [(a, random_row(a, 0))])
    with pytest.raises(ConfigError, match="parent row"):
        merge_weights(a, [(a, np.zeros(3, np.float32))])
    with pytest.raises(ConfigError, match="at least one parent"):
        merge_weights(a, [])
    with pytest.raises(ConfigError, match="init_row"):
        merge_weights(a, [(a, random_row(a, 0))], init_row=np.zeros(2, np.float32))


def test_merge_refuses_parallel_blocks():
    blocks = Layout((3, 4, 2), blocks=((2, 2), (2,)))
    plain = Layout((3, 4, 2))
    with pytest.raises(ConfigError, match="parallel blocks"):
        merge_weights(plain, [(blocks, random_row(blocks, 0))])
