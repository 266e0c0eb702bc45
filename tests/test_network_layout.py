"""Parallel blocks in Layout: plain layouts unchanged, block tensors, serialisation, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.network.forward import genome_logits, population_logits
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.network.variation import gene_bounds, layer_gene_bounds

VERTICAL = dict(sizes=(784, 256, 128, 10), hidden_activation="relu", blocks=((256,), (64, 64), (10,)))


def test_plain_layout_row_format_is_unchanged():
    layout = Layout((784, 64, 10), "tanh")
    assert [(t.name, t.offset, t.shape) for t in layout.tensors] == [
        ("W0", 0, (784, 64)), ("b0", 50176, (64,)), ("W1", 50240, (64, 10)), ("b1", 50880, (10,))]
    assert layout.blocks is None and not layout.has_blocks
    assert layout.to_dict() == {"sizes": [784, 64, 10], "hidden_activation": "tanh", "output_activation": "identity"}
    # single-block lists normalise to the plain layout
    assert Layout((784, 64, 10), "tanh", blocks=((64,), (10,))) == layout


def test_plain_population_init_is_unchanged():
    """Population.random draws exactly as before blocks existed (U(+-1/sqrt(fan_in)) per layer)."""
    layout = Layout((7, 5, 3), "tanh")
    pop = Population.random(layout, 4, seed=9)
    rng = np.random.default_rng(np.random.SeedSequence([9, 0x1417]))
    W = rng.random((4, layout.n_params), dtype=np.float32)
    for l, stop in ((0, 40), (1, layout.n_params)):
        a = np.float32(1 / np.sqrt(layout.sizes[l]))
        start = 0 if l == 0 else 40
        W[:, start:stop] = W[:, start:stop] * np.float32(2) * a - a
    np.testing.assert_array_equal(pop.W, W)


def test_block_layout_tensors_and_views():
    layout = Layout(**VERTICAL)
    names = [t.name for t in layout.tensors]
    assert names == ["W0", "b0", "W1_0", "b1_0", "W1_1", "b1_1", "W2", "b2"]
    assert layout.n_params == 235146  # the reference's parameter count, same as horizontal
    assert layout.n_params == Layout((784, 256, 128, 10)).n_params
    assert layout.tensor("W1_1").shape == (256, 64)
    blk = layout.layers[1][1]
    assert (blk.start, blk.stop, blk.W.name, blk.b.name) == (64, 128, "W1_1", "b1_1")
    # each block's [W, b] is one contiguous segment, blocks in order
    assert [b.offset for b in layout.layers[1]] == [layout.tensor("W1_0").offset, layout.tensor("b1_0").stop]
    row = np.arange(layout.n_params, dtype=np.float32)
    v = layout.view(row, "b1_1")
    assert v.base is not None and v[0] == layout.tensor("b1_1").offset
    assert layout.shape_name() == "784-256-[64|64]-10"
    assert "784-256-[64|64]-10" in layout.describe()


def test_block_layout_serialises_and_round_trips():
    layout = Layout(**VERTICAL)
    d = layout.to_dict()
    assert d["blocks"] == [[256], [64, 64], [10]]
    assert Layout.from_dict(d) == layout
    assert Layout.from_dict(d) != Layout((784, 256, 128, 10), "relu")


@pytest.mark.parametrize("blocks", [((256,), (64, 60), (10,)), ((256,), (64, 64)), ((256,), (0, 128), (10,)),
                                    "abc", ((256,), (64, "x"), (10,))])
def test_invalid_blocks_are_refused(blocks):
    with pytest.raises(ConfigError, match="blocks"):
        Layout((784, 256, 128, 10), blocks=blocks)


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


def test_block_population_init_uses_fan_in_of_each_layer():
    layout = Layout(**VERTICAL)
    pop = Population.random(layout, 3, seed=1)
    for t in layout.layer_tensors(1):
        seg = pop.W[:, t.offset : t.stop]
        assert np.abs(seg).max() <= 1 / np.sqrt(256) + 1e-7
        assert np.abs(seg).max() > 0.9 / np.sqrt(256)


def test_gene_bounds_of_block_layouts():
    layout = Layout(**VERTICAL)
    # layer genes: one per block, W and b together (the reference's 1, 2a, 2b, 3)
    assert layer_gene_bounds(layout).tolist() == [0, 200960, 200960 + 16448, 200960 + 2 * 16448, 235146]
    plain = Layout((784, 256, 128, 10))
    assert layer_gene_bounds(plain).tolist() == [0, 200960, 200960 + 32896, 235146]
    # tensor genes and row-block genes come from the existing gene_bounds, blocks included
    assert gene_bounds(layout).size - 1 == 8
    assert gene_bounds(layout, 64).size - 1 == 13 + 1 + 4 + 1 + 4 + 1 + 2 + 1
