"""Layout: where every tensor of a dense MLP lives inside one flat parameter row.

A genome is one row ``w: (n_params,) float32`` of the population buffer.  For a
network with layer sizes ``(n_0, n_1, ..., n_L)`` the row holds, layer after
layer, the weight matrix ``W{l}: (n_l, n_{l+1})`` (input-major, so the weights
leaving input unit ``i`` are contiguous) followed by the bias ``b{l}: (n_{l+1},)``.

Parallel blocks: layer ``l`` may instead be ``k > 1`` dense blocks that all
read the layer's whole input and whose outputs are concatenated, e.g.
784-256-[64 | 64]-10 (``blocks=((256,), (64, 64), (10,))``).  Block ``j`` of
layer ``l`` owns ``W{l}_{j}: (n_l, m_j)`` then ``b{l}_{j}: (m_j,)``, blocks in
order; its outputs are units ``sum(m_<j) .. sum(m_<=j)`` of layer ``l + 1``.
A single-block layer keeps the plain names ``W{l}``, ``b{l}``, so a layout
without blocks has exactly the plain MLP row format.

ConvNets: ``image`` and ``stages`` (``genreg.network.conv``) put convolutions and
poolings before the dense layers, e.g. ``Layout.parse("28x28x1-c5x8-p2-c5x16-p2-10")``.
Their tensors come first in the row (``C{i}`` filters, ``cb{i}`` bias, stage after
stage); ``sizes`` are then the dense widths from the flattened last stage,
``(n_flat, hidden..., n_out)``, and ``n_inputs`` is the image's ``H * W * C``.
"""

from __future__ import annotations

import numbers

import math
from dataclasses import dataclass, field

import numpy as np

from genreg.errors import ConfigError
from genreg.network import conv as convs

#: The widest layer and the most parameters a Layout accepts (a crafted file cannot ask for more).
MAX_WIDTH = 1 << 31
MAX_PARAMS = 1 << 36

#: Activation names and the integer codes the kernels use.
ACTIVATIONS = {"identity": 0, "tanh": 1, "relu": 2, "sigmoid": 3}
#: Output activations: any hidden activation, or softmax (applied outside the kernels).
OUTPUT_ACTIVATIONS = tuple(ACTIVATIONS) + ("softmax",)


@dataclass(frozen=True)
class Tensor:
    """One named tensor of a row: ``row[offset:offset + size].reshape(shape)``."""

    name: str
    offset: int
    shape: tuple[int, ...]

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def stop(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Block:
    """One dense block of a layer: ``out[:, start:stop] = x @ W + b`` with
    ``W: (n_l, stop - start)``, ``b: (stop - start,)`` (tensors of the row)."""

    layer: int
    index: int
    W: Tensor
    b: Tensor
    start: int
    stop: int

    @property
    def name(self) -> str:
        """``"W1"``-style layer name for a single block, ``"W1_0"``-style for parallel blocks (without ``W``)."""
        return self.W.name[1:]

    @property
    def offset(self) -> int:
        """Start of the block's contiguous ``[W, b]`` segment of the row."""
        return self.W.offset

    @property
    def end(self) -> int:
        return self.b.stop


@dataclass(frozen=True)
class ConvLayer:
    """One stage of a ConvNet: ``stage`` (``Conv`` or ``Pool``) from ``in_shape`` to ``out_shape``
    (``(H, W, C)``); a convolution owns the filters ``C: (C_out, k, k, C_in)`` and bias ``b: (C_out,)``."""

    index: int
    stage: object
    in_shape: tuple
    out_shape: tuple
    C: Tensor | None = None
    b: Tensor | None = None

    @property
    def is_conv(self) -> bool:
        return self.C is not None

    @property
    def fan_in(self) -> int:
        """Inputs of one output unit: ``k * k * C_in`` for a convolution."""
        return self.stage.k * self.stage.k * self.in_shape[2]


#: Columns of ``Layout.stage_table()``, one row per stage, for the kernels.
STAGE_COLUMNS = ("kind", "k", "stride", "padding", "h_in", "w_in", "c_in", "h_out", "w_out", "c_out",
                 "offset_C", "offset_b")


@dataclass(frozen=True)
class Layout:
    """Shape of a dense MLP and the (offset, shape) of each tensor in a flat row.

    sizes: layer widths ``(n_in, hidden..., n_out)``, at least two entries.
    hidden_activation: one of ``ACTIVATIONS`` (applied after every hidden layer).
    output_activation: one of ``OUTPUT_ACTIVATIONS`` (kernels return the
        pre-activation "logits"; argmax is unaffected by monotone outputs).
    blocks: ``None`` (every layer one dense block) or, per layer, the widths of
        its parallel blocks, summing to the layer's output size: e.g.
        ``((256,), (64, 64), (10,))`` for 784-256-[64 | 64]-10.  Normalised to
        ``None`` when every layer has one block.
    image: ``(H, W, C)`` of a ConvNet's input (``None`` for an MLP); stages: its
        ``Conv``/``Pool`` stages, after each convolution the hidden activation.
        ``sizes[0]`` must then be the flattened size of the last stage (see
        ``Layout.parse`` and ``Layout.convnet``, which work it out).
    """

    sizes: tuple[int, ...]
    hidden_activation: str = "tanh"
    output_activation: str = "identity"
    blocks: tuple | None = None
    image: tuple | None = None
    stages: tuple = ()
    tensors: tuple[Tensor, ...] = field(init=False, repr=False, compare=False)
    layers: tuple = field(init=False, repr=False, compare=False)
    conv_layers: tuple = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        raw = tuple(self.sizes)
        if not all(isinstance(s, numbers.Integral) and not isinstance(s, bool) for s in raw):
            shown = [s if not isinstance(s, int) or abs(s) < 10 ** 12 else f"<{s.bit_length()}-bit integer>" for s in raw]
            raise ConfigError(f"layout.sizes must be whole numbers, got {shown}"[:200])
        if any(s > MAX_WIDTH for s in raw):
            raise ConfigError(f"layout.sizes must each be at most {MAX_WIDTH:,}")
        sizes = tuple(int(s) for s in raw)
        if len(sizes) < 2:
            raise ConfigError(f"layout.sizes needs at least an input and an output size, got {sizes}")
        if any(s <= 0 for s in sizes):
            raise ConfigError(f"layout.sizes must all be positive, got {sizes}")
        if self.hidden_activation not in ACTIVATIONS:
            raise ConfigError(
                f"layout.hidden_activation must be one of {sorted(ACTIVATIONS)}, got {self.hidden_activation!r}"
            )
        if self.output_activation not in OUTPUT_ACTIVATIONS:
            raise ConfigError(
                f"layout.output_activation must be one of {list(OUTPUT_ACTIVATIONS)}, "
                f"got {self.output_activation!r}"
            )
        object.__setattr__(self, "sizes", sizes)
        blocks = self._normalise_blocks(sizes, self.blocks)
        object.__setattr__(self, "blocks", blocks)
        conv_layers, tensors, offset = self._conv_layers(sizes)
        object.__setattr__(self, "conv_layers", conv_layers)
        layers = []
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            widths = blocks[l] if blocks is not None else (n_out,)
            layer, start = [], 0
            for j, m in enumerate(widths):
                suffix = f"{l}" if len(widths) == 1 else f"{l}_{j}"
                W = Tensor(f"W{suffix}", offset, (n_in, m))
                offset += n_in * m
                b = Tensor(f"b{suffix}", offset, (m,))
                offset += m
                tensors += [W, b]
                layer.append(Block(l, j, W, b, start, start + m))
                start += m
            layers.append(tuple(layer))
        if offset > MAX_PARAMS:
            raise ConfigError(f"a {'-'.join(map(str, sizes))} network has {offset:,} parameters, more than "
                              f"{MAX_PARAMS:,}")
        object.__setattr__(self, "tensors", tuple(tensors))
        object.__setattr__(self, "layers", tuple(layers))

    def _conv_layers(self, sizes):
        """(conv layers, their tensors, the row offset after them) of ``image``/``stages``."""
        if self.image is None:
            if self.stages:
                raise ConfigError("layout.stages need an image shape (layout.image = (H, W, C))")
            return (), [], 0
        try:
            image = tuple(self.image)
        except TypeError:
            image = ()
        image += (1,) if len(image) == 2 else ()
        if len(image) != 3 or not all(isinstance(v, numbers.Integral) and not isinstance(v, bool) for v in image):
            raise ConfigError(f"layout.image must be (H, W, C) whole numbers, got {self.image!r}"[:200])
        image = convs.parse_image(convs.image_text(image))
        stages = tuple(convs.parse_stage(s) if isinstance(s, str) else s for s in self.stages)
        if not all(isinstance(s, (convs.Conv, convs.Pool)) for s in stages):
            raise ConfigError(f"layout.stages must be Conv/Pool stages or their tokens, got {self.stages!r}")
        object.__setattr__(self, "image", image)
        object.__setattr__(self, "stages", stages)
        shapes = convs.trace_shapes(image, stages)
        n_flat = math.prod(shapes[-1])
        if sizes[0] != n_flat:
            raise ConfigError(f"{convs.image_text(image)}-{convs.stages_text(stages)} flattens to {n_flat} features "
                              f"but layout.sizes starts with {sizes[0]}")
        layers, tensors, offset = [], [], 0
        for i, stage in enumerate(stages):
            C = b = None
            if isinstance(stage, convs.Conv):
                j = len(tensors) // 2  # convolutions are numbered C0, C1, ... whatever poolings lie between
                C = Tensor(f"C{j}", offset, (stage.channels, stage.k, stage.k, shapes[i][2]))
                b = Tensor(f"cb{j}", C.stop, (stage.channels,))
                tensors += [C, b]
                offset = b.stop
            layers.append(ConvLayer(i, stage, shapes[i], shapes[i + 1], C, b))
        return tuple(layers), tensors, offset

    @classmethod
    def convnet(cls, image, stages, dense, hidden_activation: str = "tanh",
                output_activation: str = "identity") -> "Layout":
        """A ConvNet: ``image`` ``(H, W, C)``, ``stages`` (``Conv``/``Pool`` or tokens, or one ``"c5x8-p2"``
        string), then dense widths ``dense = (hidden..., n_out)`` after the flatten."""
        if isinstance(stages, str):
            stages = convs.parse_stages(stages)
        image = tuple(image) + ((1,) if len(tuple(image)) == 2 else ())
        stages = tuple(convs.parse_stage(s) if isinstance(s, str) else s for s in stages)
        shapes = convs.trace_shapes(convs.parse_image(convs.image_text(image)), stages)
        return cls((math.prod(shapes[-1]), *dense), hidden_activation, output_activation, image=image, stages=stages)

    @classmethod
    def parse(cls, text: str, hidden_activation: str = "tanh", output_activation: str = "identity") -> "Layout":
        """A layout from its shape string: ``"784-64-10"`` or ``"28x28x1-c5x8-p2-c5x16-p2-10"``."""
        tokens = [t.strip() for t in str(text).split("-")]
        if "x" not in tokens[0]:
            try:
                return cls(tuple(int(t) for t in tokens), hidden_activation, output_activation)
            except ValueError:
                raise ConfigError(f"{text!r} is not a shape: use widths like 784-64-10 or a ConvNet like "
                                  f"28x28x1-c5x8-p2-10") from None
        dense_from = next((i for i, t in enumerate(tokens) if t.isdigit()), len(tokens))
        if dense_from == len(tokens) or not all(t.isdigit() for t in tokens[dense_from:]):
            raise ConfigError(f"{text!r}: a ConvNet's shape ends with its dense widths (at least the outputs), "
                              f"e.g. 28x28x1-c5x8-p2-10")
        return cls.convnet(convs.parse_image(tokens[0]), [convs.parse_stage(t) for t in tokens[1:dense_from]],
                           tuple(int(t) for t in tokens[dense_from:]), hidden_activation, output_activation)

    @staticmethod
    def _normalise_blocks(sizes, blocks):
        if blocks is None:
            return None
        try:
            blocks = tuple(tuple(int(m) for m in layer) for layer in blocks)
        except (TypeError, ValueError):
            raise ConfigError(f"layout.blocks must be a list (one per layer) of lists of block widths, got {blocks!r}") from None
        if len(blocks) != len(sizes) - 1:
            raise ConfigError(f"layout.blocks needs one entry per layer ({len(sizes) - 1}), got {len(blocks)}: {blocks}")
        for l, widths in enumerate(blocks):
            if not widths or any(m <= 0 for m in widths) or sum(widths) != sizes[l + 1]:
                raise ConfigError(
                    f"layout.blocks[{l}] = {list(widths)}: block widths must be positive and sum to "
                    f"the layer's output size {sizes[l + 1]}"
                )
        return None if all(len(w) == 1 for w in blocks) else blocks

    # -- derived quantities -------------------------------------------------
    @property
    def n_params(self) -> int:
        return self.tensors[-1].stop

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    @property
    def n_inputs(self) -> int:
        """Input features: the image's ``H * W * C`` for a ConvNet, else ``sizes[0]``."""
        return math.prod(self.image) if self.image is not None else self.sizes[0]

    @property
    def is_conv(self) -> bool:
        """True for a ConvNet (convolution/pooling stages before the dense layers)."""
        return self.image is not None

    def stage_table(self) -> np.ndarray:
        """The stages for the kernels: ``(n_stages, len(STAGE_COLUMNS)) int64``, one row per stage
        (kind ``conv.CONV``/``MAX_POOL``/``AVG_POOL``, k, stride, padding, input and output
        ``h, w, c``, offsets of the filters and bias in the row, -1 for a pooling)."""
        rows = []
        for cl in self.conv_layers:
            s = cl.stage
            if cl.is_conv:
                kind, stride, pad, offs = convs.CONV, s.stride, s.padding, (cl.C.offset, cl.b.offset)
            else:
                kind, stride, pad, offs = convs.MAX_POOL if s.kind == "max" else convs.AVG_POOL, s.k, 0, (-1, -1)
            rows.append((kind, s.k, stride, pad, *cl.in_shape, *cl.out_shape, *offs))
        return np.asarray(rows, dtype=np.int64).reshape(len(rows), len(STAGE_COLUMNS))

    def tensor_groups(self) -> list[tuple[int, list[Tensor]]]:
        """``[(fan_in, tensors)]``: each convolution's ``[C, cb]``, then each dense layer's tensors."""
        groups = [(cl.fan_in, [cl.C, cl.b]) for cl in self.conv_layers if cl.is_conv]
        return groups + [(self.sizes[l], self.layer_tensors(l)) for l in range(self.n_layers)]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    @property
    def has_blocks(self) -> bool:
        """True when some layer is several parallel blocks (the Numba kernels refuse such layouts)."""
        return self.blocks is not None

    def require_plain(self, what: str) -> None:
        """Raise ``ConfigError`` if the layout has parallel blocks or convolutions (``what`` names the refusing
        feature)."""
        if self.is_conv:
            raise ConfigError(f"{what} supports MLP layouts only, not ConvNets ({self.describe()})")
        if self.has_blocks:
            raise ConfigError(
                f"{what} supports plain MLP layouts only, not parallel blocks ({self.describe()}); "
                "use the NumPy backprop module (genreg.network.backprop) for block layouts"
            )

    def layer_tensors(self, l: int) -> list[Tensor]:
        """Tensors of layer ``l`` in row order (``W, b`` per block)."""
        return [t for blk in self.layers[l] for t in (blk.W, blk.b)]

    @property
    def hidden_code(self) -> int:
        """Integer activation code for the kernels."""
        return ACTIVATIONS[self.hidden_activation]

    def sizes_array(self) -> np.ndarray:
        """Layer widths as ``(n_layers + 1,) int64`` for the kernels."""
        return np.asarray(self.sizes, dtype=np.int64)

    def tensor(self, name: str) -> Tensor:
        for t in self.tensors:
            if t.name == name:
                return t
        raise KeyError(f"layout has no tensor {name!r}; it has {[t.name for t in self.tensors]}")

    def view(self, row: np.ndarray, name: str) -> np.ndarray:
        """Return a view of tensor ``name`` inside ``row: (n_params,)``."""
        t = self.tensor(name)
        return row[t.offset : t.stop].reshape(t.shape)

    def unflatten(self, row: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Return ``[(W0, b0), (W1, b1), ...]`` as views into ``row: (n_params,)`` (plain layouts)."""
        self.require_plain("Layout.unflatten")
        return [(self.view(row, f"W{l}"), self.view(row, f"b{l}")) for l in range(self.n_layers)]

    def flatten(self, layers) -> np.ndarray:
        """Pack ``[(W0, b0), ...]`` (``W{l}: (n_l, n_{l+1})``) into a new ``(n_params,) float32`` row."""
        self.require_plain("Layout.flatten")
        layers = list(layers)
        if len(layers) != self.n_layers:
            raise ConfigError(f"expected {self.n_layers} (W, b) pairs, got {len(layers)}")
        row = np.empty(self.n_params, dtype=np.float32)
        for l, (W, b) in enumerate(layers):
            for name, value in ((f"W{l}", W), (f"b{l}", b)):
                t = self.tensor(name)
                value = np.asarray(value, dtype=np.float32)
                if value.shape != t.shape:
                    raise ConfigError(f"tensor {name} must have shape {t.shape}, got {value.shape}")
                row[t.offset : t.stop] = value.ravel()
        return row

    # -- (de)serialisation --------------------------------------------------
    def to_dict(self) -> dict:
        d = {
            "sizes": list(self.sizes),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
        }
        if self.blocks is not None:  # plain layouts serialise exactly as before blocks existed
            d["blocks"] = [list(w) for w in self.blocks]
        if self.is_conv:
            d["image"], d["stages"] = list(self.image), convs.stages_text(self.stages)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        try:
            return cls(
                sizes=tuple(d["sizes"]),
                hidden_activation=d.get("hidden_activation", "tanh"),
                output_activation=d.get("output_activation", "identity"),
                blocks=d.get("blocks"),
                image=tuple(d["image"]) if d.get("image") is not None else None,
                stages=convs.parse_stages(d.get("stages", "")),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError(f"invalid layout description {d!r}: {exc}") from None

    def describe(self) -> str:
        return self.shape_name() + f" ({self.hidden_activation}, {self.n_params} params)"

    def shape_name(self) -> str:
        """``"784-256-128-10"``, ``"784-256-[64|64]-10"`` with parallel blocks, ``"28x28x1-c5x8-p2-10"``."""
        parts = [str(self.sizes[0])]
        if self.is_conv:
            parts = [convs.image_text(self.image)] + [s.token for s in self.stages]
        for l, layer in enumerate(self.layers):
            widths = [blk.stop - blk.start for blk in layer]
            parts.append(str(widths[0]) if len(widths) == 1 else "[" + "|".join(map(str, widths)) + "]")
        return "-".join(parts)


def network_layout(input_shape, hidden_sizes, n_outputs: int, activation: str = "tanh", conv: str = "") -> Layout:
    """The network of a run: ``input_shape`` (the task's, e.g. ``(784,)`` or ``(28, 28)``), hidden dense
    widths and ``n_outputs``; with ``conv`` stages (``"c5x8-p2"``) a ConvNet on the task's images."""
    input_shape = tuple(int(v) for v in input_shape)
    if not conv:
        return Layout((math.prod(input_shape), *hidden_sizes, n_outputs), activation)
    if len(input_shape) not in (2, 3):
        raise ConfigError(f"conv = {conv!r} needs image inputs (H, W) or (H, W, C), but the task's inputs are "
                          f"{'x'.join(map(str, input_shape))} features")
    try:
        return Layout.convnet(input_shape, conv, (*hidden_sizes, n_outputs), activation)
    except ConfigError as exc:
        raise ConfigError(f"conv = {conv!r} on {'x'.join(map(str, input_shape))} images: {exc}") from None
