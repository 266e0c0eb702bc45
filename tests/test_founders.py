"""Founders drawn in parallel blocks are the bits one sequential stream gave (``tests/naive.founders``),
for any size, layout (odd parameter counts too), seed, scale, block size and thread count; a founder
row can be drawn alone from (seed, row)."""

from __future__ import annotations

import numpy as np
import pytest

import genreg.network.population as population_module
from genreg.errors import PopulationError
from genreg.network.layout import Layout
from genreg.network.population import Founders, Population, founder_fill, founder_rows, founder_stream
from helpers import VERTICAL

import naive

# n_params: 50890 (even), 241 (odd), 11 (odd), 12 (even), the block layout
LAYOUTS = [Layout((784, 64, 10)), Layout((30, 7, 3), "relu"), Layout((10, 1)), Layout((3, 3)), Layout(**VERTICAL)]


def _ids(layout):
    return f"n{layout.n_params}"


@pytest.mark.parametrize("layout", LAYOUTS, ids=_ids)
@pytest.mark.parametrize("size", [1, 2, 3, 7, 41])
def test_random_is_the_sequential_draw(layout, size):
    for seed in (0, 1, 2**32 - 1):
        pop = Population.random(layout, size, seed=seed)
        np.testing.assert_array_equal(pop.W, naive.founders(layout, size, seed))
        assert pop.founders == Founders(seed, None)
    pop = Population.random(layout, size, seed=5, scale=0.3)
    np.testing.assert_array_equal(pop.W, naive.founders(layout, size, 5, scale=0.3))
    assert pop.founders == Founders(5, 0.3)


@pytest.mark.parametrize("block", [1, 2, 3, 11, 12, 241, 1000])
@pytest.mark.parametrize("threads", [1, 2, 3])
def test_any_block_size_and_thread_count_gives_the_same_bits(monkeypatch, block, threads):
    """Blocks that start at odd float offsets (odd n_params, odd row counts) take the buffered half-draw."""
    monkeypatch.setattr(population_module, "FOUNDER_BLOCK", block)
    for layout in (Layout((30, 7, 3)), Layout((10, 1)), Layout((3, 3))):
        expected = naive.founders(layout, 29, 77)
        out = np.empty_like(expected)
        np.testing.assert_array_equal(founder_fill(layout, 77, out, threads=threads), expected)
        # a slice of the population alone: rows 5..28
        part = np.empty((24, layout.n_params), dtype=np.float32)
        np.testing.assert_array_equal(founder_fill(layout, 77, part, first=5, threads=threads), expected[5:])


@pytest.mark.parametrize("layout", LAYOUTS, ids=_ids)
def test_a_founder_is_its_key(layout):
    expected = naive.founders(layout, 23, 9)
    for rows in ([0], [22], [1, 3, 4, 21], [22, 0, 7, 7]):
        np.testing.assert_array_equal(founder_rows(layout, 9, rows), expected[rows])
    np.testing.assert_array_equal(founder_rows(layout, 9, [5], scale=2.0), naive.founders(layout, 6, 9, 2.0)[5:])
    assert founder_rows(layout, 9, []).shape == (0, layout.n_params)


def test_stream_at_any_offset():
    ref = np.random.default_rng(np.random.SeedSequence([3, 0x1417])).random(1001, dtype=np.float32)
    for start in (0, 1, 2, 7, 500, 999, 1000):
        np.testing.assert_array_equal(founder_stream(3, start).random(1001 - start, dtype=np.float32), ref[start:])


def test_bad_rows_and_buffers_are_refused():
    layout = Layout((3, 3))
    with pytest.raises(PopulationError, match="from 0"):
        founder_rows(layout, 0, [2, -1])
    for bad in (np.empty((4, 11), np.float32), np.empty((4, 12), np.float64), np.empty((12, 4), np.float32).T):
        with pytest.raises(PopulationError, match=r"\(k, 12\) float32"):
            founder_fill(layout, 0, bad)
