"""Variation wrappers (genreg.network.variation): gene bounds, argument checks, Brood."""

from __future__ import annotations

import math

import numpy as np
import pytest

from genreg import streams
from genreg.network import variation
from genreg.network.layout import Layout
from genreg.network.variation import gene_bounds, layer_gene_bounds
from genreg.streams import Purpose
from helpers import CROSSOVER_LAYOUTS as LAYOUTS, VERTICAL


# --------------------------------------------------------------------------
# Gene bounds
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, ids=lambda l: "-".join(map(str, l.sizes)))
@pytest.mark.parametrize("block_rows", [0, 1, 4, 100])
def test_gene_bounds_structure(layout, block_rows):
    bounds = variation.gene_bounds(layout, block_rows)
    assert bounds.dtype == np.int64
    assert bounds[0] == 0 and bounds[-1] == layout.n_params
    assert np.all(np.diff(bounds) > 0)
    edges = set(bounds.tolist())
    for t in layout.tensors:
        assert t.offset in edges and t.stop in edges
    expected = 0
    for t in layout.tensors:
        if len(t.shape) == 2 and block_rows > 0:
            starts = [b for b in bounds.tolist() if t.offset <= b < t.stop]
            assert starts == [t.offset + r * t.shape[1] for r in range(0, t.shape[0], block_rows)]
            expected += math.ceil(t.shape[0] / block_rows)
        else:
            expected += 1
    assert len(bounds) - 1 == expected


def test_gene_bounds_of_block_layouts():
    layout = Layout(**VERTICAL)
    # layer genes: one per block, W and b together (the reference's 1, 2a, 2b, 3)
    assert layer_gene_bounds(layout).tolist() == [0, 200960, 200960 + 16448, 200960 + 2 * 16448, 235146]
    plain = Layout((784, 256, 128, 10))
    assert layer_gene_bounds(plain).tolist() == [0, 200960, 200960 + 32896, 235146]
    # tensor genes and row-block genes come from the existing gene_bounds, blocks included
    assert gene_bounds(layout).size - 1 == 8
    assert gene_bounds(layout, 64).size - 1 == 13 + 1 + 4 + 1 + 4 + 1 + 2 + 1


# --------------------------------------------------------------------------
# Validation in the wrappers
# --------------------------------------------------------------------------


@pytest.fixture
def W5():
    return np.zeros((5, 64), dtype=np.float32)


@pytest.mark.parametrize("rows", [[1, 1], [0, 5], [-1], [2, 3, 2]])
def test_mutate_bad_rows_value_error(W5, rows):
    with pytest.raises(ValueError, match="rows"):
        variation.mutate(W5, rows, 0.1, 0.05, np.zeros(len(rows), dtype=np.uint64))


@pytest.mark.parametrize("rate", [-0.01, 1.01, float("nan"), float("inf")])
def test_mutate_bad_rate_value_error(W5, rate):
    with pytest.raises(ValueError, match="rate"):
        variation.mutate(W5, [0], rate, 0.05, np.zeros(1, dtype=np.uint64))


@pytest.mark.parametrize("scale", [-0.1, float("nan")])
def test_mutate_bad_scale_value_error(W5, scale):
    with pytest.raises(ValueError, match="scale"):
        variation.mutate(W5, [0], 0.1, scale, np.zeros(1, dtype=np.uint64))


def test_float64_or_non_contiguous_W_type_error(W5):
    for bad in (W5.astype(np.float64), np.asfortranarray(np.zeros((5, 64), dtype=np.float32)), W5[0], W5[:, ::2]):
        with pytest.raises(TypeError, match="float32"):
            variation.mutate(bad, [0], 0.1, 0.05, np.zeros(1, dtype=np.uint64))
        with pytest.raises(TypeError):
            variation.mask_crossover(bad, [0], [1], np.zeros(1, dtype=np.uint64))
        with pytest.raises(TypeError):
            variation.clone(bad, [0])
        with pytest.raises(TypeError):
            variation.gene_crossover(bad, [0], [1], np.zeros(1, dtype=np.uint64), np.array([0, 64]))


def test_crossover_length_mismatch_value_error(W5):
    with pytest.raises(ValueError, match="same length"):
        variation.mask_crossover(W5, [0, 1], [1], np.zeros(2, dtype=np.uint64))
    with pytest.raises(ValueError, match="same length"):
        variation.gene_crossover(W5, [0], [1], np.zeros(2, dtype=np.uint64), np.array([0, 64]))


@pytest.mark.parametrize("bounds", [[1, 64], [0, 63], [0, 65], [0, 32, 32, 64], [0, 40, 20, 64]])
def test_gene_crossover_bad_bounds_value_error(W5, bounds):
    with pytest.raises(ValueError, match="gene_bounds"):
        variation.gene_crossover(W5, [0], [1], np.zeros(1, dtype=np.uint64), np.array(bounds))


# --------------------------------------------------------------------------
# Brood: children as parents plus streams, built on demand
# --------------------------------------------------------------------------


def _brood(W, **changes):
    C = 6
    fields = dict(source=W, parents=np.array([3, 3, 0, 5, 1, 2]), rates=np.array([0.0, 0.07, 0.07, 0.3, 1.0, 0.07]),
                  base_rates=np.array([0.0, 0.0, 0.08, 0.5, 0.08, 1.0]),
                  keys=streams.stream_keys(4, 9, np.arange(C), Purpose.CHILD_MUTATION),
                  base_keys=streams.stream_keys(4, 9, np.arange(C), Purpose.BASE_MUTATION), scale=0.05)
    fields.update(changes)
    return variation.Brood(**fields)


def test_brood_builds_what_clone_mutate_builds():
    """Any subset of a brood's children, in any order, is built exactly as clone_mutate builds them all."""
    W = np.random.default_rng(13).normal(0.0, 0.1, size=(6, 3001)).astype(np.float32)
    brood = _brood(W)
    everyone, _ = variation.clone_mutate(W, brood.parents, brood.rates, 0.05, brood.keys,
                                         base_rates=brood.base_rates, base_keys=brood.base_keys)
    assert brood.size == 6 and brood.build().tobytes() == everyone.tobytes()
    some = [4, 1, 1]
    assert brood.build(some).tobytes() == everyone[some].tobytes()
    out = np.empty((3, 3001), np.float32)
    assert brood.build(some, out) is out


@pytest.mark.parametrize("crossover", ["mask", "gene"])
def test_brood_with_crossover_builds_crossover_then_mutation(crossover):
    """A crossing brood builds exactly the crossover kernel's children, then the two mutations."""
    W = np.random.default_rng(14).normal(0.0, 0.1, size=(6, 3001)).astype(np.float32)
    second = np.array([3, 1, 4, 2, 5, 0])
    xkeys = streams.stream_keys(4, 9, np.arange(6), Purpose.CROSSOVER)
    bounds = np.array([0, 7, 700, 1500, 1501, 3001], dtype=np.int64)
    brood = _brood(W, second=second, crossover=crossover, crossover_keys=xkeys,
                   gene_bounds=bounds if crossover == "gene" else None)
    if crossover == "mask":
        expected = variation.mask_crossover(W, brood.parents, second, xkeys)
    else:
        expected = variation.gene_crossover(W, brood.parents, second, xkeys, bounds)
    for c in range(6):
        variation.mutate(expected, [c], brood.rates[c], 0.05, brood.keys[c : c + 1])
        variation.mutate(expected, [c], brood.base_rates[c], 0.05, brood.base_keys[c : c + 1])
    assert brood.build().tobytes() == expected.tobytes()
    assert brood.build([5, 2]).tobytes() == expected[[5, 2]].tobytes()
    # child 0 crosses parent 3 with itself and is not mutated: a copy
    assert brood.build([0]).tobytes() == W[3].tobytes()
    plain = _brood(W, second=second, crossover="none", crossover_keys=xkeys).build()
    assert plain.tobytes() == _brood(W).build().tobytes()  # "none" ignores the second parent


@pytest.mark.parametrize("change, error", [
    (dict(crossover="uniform"), "crossover must be one of"),
    (dict(crossover="gene"), "gene_bounds"),
    (dict(crossover="gene", gene_bounds=np.array([0, 5, 5, 10])), "gene_bounds"),
    (dict(second=np.array([3, 3, 0, 5, 1, 6])), "row indices"),
    (dict(second=np.array([3, 3, 0])), "same length"),
    (dict(parents=np.array([3, 3, 0, 5, 1, 6])), "row indices"),
    (dict(parents=np.array([3, 3, 0, 5, 1, -1])), "row indices"),
    (dict(rates=np.array([0.0, 0.07, 0.07, 0.3, 1.5, 0.07])), "rates"),
    (dict(scale=-1.0), "scale"),
    (dict(keys=np.zeros(5, np.uint64)), "same length"),
    (dict(parents=np.array([3, 3, 0, 5, 1, 2], dtype=np.int32)), "int64"),
])
def test_brood_refuses_bad_descriptions(change, error):
    W = np.zeros((6, 10), np.float32)
    with pytest.raises((ValueError, TypeError), match=error):
        _brood(W, **change)


def test_brood_build_refuses_children_it_does_not_have():
    W = np.zeros((6, 10), np.float32)
    with pytest.raises(ValueError, match="indices into a brood of 6"):
        _brood(W).build([0, 6])
    with pytest.raises(ValueError, match="indices into a brood of 6"):
        _brood(W).build([-1])
