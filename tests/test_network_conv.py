"""ConvNet layouts: the shape syntax, tensor offsets, the kernels' stage table, refusals naming the stage."""

import math

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.network.conv import AVG_POOL, CONV, MAX_POOL, Conv, Pool, parse_stages, trace_shapes
from genreg.network.layout import STAGE_COLUMNS, Layout, network_layout


def test_evojax_convnet_has_its_published_parameter_count():
    layout = Layout.parse("28x28x1-c5x8-p2-c5x16-p2-10", "relu")
    assert layout.n_params == 11_274  # EvoJAX's MNIST ConvNet
    assert layout.is_conv and layout.n_inputs == 784 and layout.sizes == (784, 10)
    assert [(t.name, t.shape) for t in layout.tensors] == [
        ("C0", (8, 5, 5, 1)), ("cb0", (8,)), ("C1", (16, 5, 5, 8)), ("cb1", (16,)), ("W0", (784, 10)), ("b0", (10,))]
    offsets = [t.offset for t in layout.tensors]
    assert offsets == [0, 200, 208, 3408, 3424, 11264]  # one after the other, nothing between
    assert layout.shape_name() == "28x28x1-c5x8-p2-c5x16-p2-10"


def test_stage_table_rows_follow_the_shapes():
    layout = Layout.parse("28x28-c3x4s2p0-a3-c2x6p1-p2-32-10")
    table = layout.stage_table()
    assert table.shape == (4, len(STAGE_COLUMNS)) and table.dtype == np.int64
    col = {name: table[:, i].tolist() for i, name in enumerate(STAGE_COLUMNS)}
    assert col["kind"] == [CONV, AVG_POOL, CONV, MAX_POOL]
    assert col["h_in"] == [28, 13, 4, 5] and col["h_out"] == [13, 4, 5, 2]  # (28-3)//2+1, 13//3, (4+2-2)+1, 5//2
    assert col["c_in"] == [1, 4, 4, 6] and col["c_out"] == [4, 4, 6, 6]
    assert col["offset_C"] == [0, -1, layout.tensor("C1").offset, -1]
    assert col["offset_b"] == [36, -1, layout.tensor("cb1").offset, -1]
    assert layout.sizes == (2 * 2 * 6, 32, 10)
    assert layout.n_params == 4 * 9 + 4 + 6 * 2 * 2 * 4 + 6 + 24 * 32 + 32 + 32 * 10 + 10


@pytest.mark.parametrize("text", ["28x28x1-c5x8-p2-c5x16-p2-10", "28x28-c3x4s2p0-a3-64-10", "10x12x3-c3x2-10",
                                  "784-64-10", "8x8-p2-4"])
def test_shape_strings_and_dicts_round_trip(text):
    layout = Layout.parse(text, "relu")
    assert Layout.parse(layout.shape_name(), "relu") == layout
    assert Layout.from_dict(layout.to_dict()) == layout


def test_plain_layouts_serialise_as_before():
    assert Layout.parse("784-64-10").to_dict() == {"sizes": [784, 64, 10], "hidden_activation": "tanh",
                                                   "output_activation": "identity"}


def test_tensor_groups_give_the_fan_in_of_every_layer():
    layout = Layout.parse("12x12x2-c3x4-p2-5-3")
    fans = [(fan, [t.name for t in tensors]) for fan, tensors in layout.tensor_groups()]
    assert fans == [(3 * 3 * 2, ["C0", "cb0"]), (6 * 6 * 4, ["W0", "b0"]), (5, ["W1", "b1"])]


@pytest.mark.parametrize("text, message", [
    ("28x28-c5x8p0-p2-c5x16p0-p2-c5x4p0-10", r"stage 5 \(c5x4p0\) .*a 5x5 kernel is larger than its 4x4 input"),
    ("4x4-p2-p2-p2-10", r"stage 3 \(p2\) .*2x2 pooling of a 1x1 input leaves nothing"),
    ("28x28-c3x8p3-10", r"c3x8p3: padding 3 must be smaller than the kernel"),
    ("28x28-q2-10", r"'q2' is not a stage"),
    ("28x28-c3x8", r"ends with its dense widths"),
    ("28x28-c0x8-10", r"conv k must be a whole number in \[1, "),
    ("28x-c3x8-10", r"'28x' is not an image shape"),
    ("28xx28-10", r"not an image shape"),
])
def test_impossible_shapes_are_refused_naming_the_stage(text, message):
    with pytest.raises(ConfigError, match=message):
        Layout.parse(text)


def test_sizes_must_start_with_the_flattened_features():
    with pytest.raises(ConfigError, match=r"flattens to 1568 features but layout.sizes starts with 784"):
        Layout((784, 10), image=(28, 28, 1), stages=(Conv(3, 8), Pool(2)))
    with pytest.raises(ConfigError, match=r"layout.stages need an image shape"):
        Layout((784, 10), stages=(Pool(2),))
    with pytest.raises(ConfigError, match=r"layout.image must be \(H, W, C\)"):
        Layout((784, 10), image=(28, 28, 1.5), stages=())


def test_plain_only_features_refuse_convnets():
    layout = Layout.parse("8x8-c3x2-10")
    with pytest.raises(ConfigError, match=r"supports MLP layouts only, not ConvNets \(8x8x1-c3x2-10"):
        layout.require_plain("Layout.unflatten")


def test_trace_shapes_matches_the_output_size_formula():
    stages = parse_stages("c5x3s2p1-p3-c1x7")
    shapes = trace_shapes((31, 17, 2), stages)
    h, w = (31 + 2 - 5) // 2 + 1, (17 + 2 - 5) // 2 + 1
    assert shapes == [(31, 17, 2), (h, w, 3), (h // 3, w // 3, 3), (h // 3, w // 3, 7)]
    assert math.prod(shapes[-1]) == Layout.convnet((31, 17, 2), stages, (4,)).sizes[0]


def test_network_layout_builds_a_convnet_from_a_task_shape():
    assert network_layout((784,), (64,), 10) == Layout((784, 64, 10))
    net = network_layout((28, 28), (), 10, "relu", "c5x8-p2-c5x16-p2")
    assert net == Layout.parse("28x28x1-c5x8-p2-c5x16-p2-10", "relu")
    with pytest.raises(ConfigError, match=r"conv = 'c3x4' needs image inputs .* but the task's inputs are 13 features"):
        network_layout((13,), (), 3, "tanh", "c3x4")
    with pytest.raises(ConfigError, match=r"conv = 'p2-p2-p2' on 4x4 images: stage 3 \(p2\)"):
        network_layout((4, 4), (), 3, "tanh", "p2-p2-p2")
