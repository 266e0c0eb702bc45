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
"""

from __future__ import annotations

import numbers

import math
from dataclasses import dataclass, field

import numpy as np

from genreg.errors import ConfigError

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
    """

    sizes: tuple[int, ...]
    hidden_activation: str = "tanh"
    output_activation: str = "identity"
    blocks: tuple | None = None
    tensors: tuple[Tensor, ...] = field(init=False, repr=False, compare=False)
    layers: tuple = field(init=False, repr=False, compare=False)

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
        tensors, layers, offset = [], [], 0
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
        return self.sizes[0]

    @property
    def n_outputs(self) -> int:
        return self.sizes[-1]

    @property
    def has_blocks(self) -> bool:
        """True when some layer is several parallel blocks (the Numba kernels refuse such layouts)."""
        return self.blocks is not None

    def require_plain(self, what: str) -> None:
        """Raise ``ConfigError`` if the layout has parallel blocks (``what`` names the refusing feature)."""
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
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        try:
            return cls(
                sizes=tuple(d["sizes"]),
                hidden_activation=d.get("hidden_activation", "tanh"),
                output_activation=d.get("output_activation", "identity"),
                blocks=d.get("blocks"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid layout description {d!r}: {exc}") from None

    def describe(self) -> str:
        return self.shape_name() + f" ({self.hidden_activation}, {self.n_params} params)"

    def shape_name(self) -> str:
        """``"784-256-128-10"``, or ``"784-256-[64|64]-10"`` with parallel blocks."""
        parts = [str(self.sizes[0])]
        for l, layer in enumerate(self.layers):
            widths = [blk.stop - blk.start for blk in layer]
            parts.append(str(widths[0]) if len(widths) == 1 else "[" + "|".join(map(str, widths)) + "]")
        return "-".join(parts)
