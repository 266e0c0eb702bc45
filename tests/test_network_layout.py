"""Layout (genreg.network.layout): the plain row format, parallel blocks' tensors, serialisation, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.network.layout import Layout
from helpers import VERTICAL


def test_plain_layout_row_format_is_unchanged():
    layout = Layout((784, 64, 10), "tanh")
    assert [(t.name, t.offset, t.shape) for t in layout.tensors] == [
        ("W0", 0, (784, 64)), ("b0", 50176, (64,)), ("W1", 50240, (64, 10)), ("b1", 50880, (10,))]
    assert layout.blocks is None and not layout.has_blocks
    assert layout.to_dict() == {"sizes": [784, 64, 10], "hidden_activation": "tanh", "output_activation": "identity"}
    # single-block lists normalise to the plain layout
    assert Layout((784, 64, 10), "tanh", blocks=((64,), (10,))) == layout


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
