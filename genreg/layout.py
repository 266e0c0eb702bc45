"""Layout: where every tensor of a dense MLP lives inside one flat parameter row.

A genome is one row ``w: (n_params,) float32`` of the population buffer.  For a
network with layer sizes ``(n_0, n_1, ..., n_L)`` the row holds, layer after
layer, the weight matrix ``W{l}: (n_l, n_{l+1})`` (input-major, so the weights
leaving input unit ``i`` are contiguous) followed by the bias ``b{l}: (n_{l+1},)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import ConfigError

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
        return int(np.prod(self.shape))

    @property
    def stop(self) -> int:
        return self.offset + self.size


@dataclass(frozen=True)
class Layout:
    """Shape of a dense MLP and the (offset, shape) of each tensor in a flat row.

    sizes: layer widths ``(n_in, hidden..., n_out)``, at least two entries.
    hidden_activation: one of ``ACTIVATIONS`` (applied after every hidden layer).
    output_activation: one of ``OUTPUT_ACTIVATIONS`` (kernels return the
        pre-activation "logits"; argmax is unaffected by monotone outputs).
    """

    sizes: tuple[int, ...]
    hidden_activation: str = "tanh"
    output_activation: str = "identity"
    tensors: tuple[Tensor, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        sizes = tuple(int(s) for s in self.sizes)
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
        tensors, offset = [], 0
        for l, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            tensors.append(Tensor(f"W{l}", offset, (n_in, n_out)))
            offset += n_in * n_out
            tensors.append(Tensor(f"b{l}", offset, (n_out,)))
            offset += n_out
        object.__setattr__(self, "tensors", tuple(tensors))

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
        """Return ``[(W0, b0), (W1, b1), ...]`` as views into ``row: (n_params,)``."""
        return [(self.view(row, f"W{l}"), self.view(row, f"b{l}")) for l in range(self.n_layers)]

    def flatten(self, layers) -> np.ndarray:
        """Pack ``[(W0, b0), ...]`` (``W{l}: (n_l, n_{l+1})``) into a new ``(n_params,) float32`` row."""
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
        return {
            "sizes": list(self.sizes),
            "hidden_activation": self.hidden_activation,
            "output_activation": self.output_activation,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Layout":
        try:
            return cls(
                sizes=tuple(d["sizes"]),
                hidden_activation=d.get("hidden_activation", "tanh"),
                output_activation=d.get("output_activation", "identity"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"invalid layout description {d!r}: {exc}") from None

    def describe(self) -> str:
        return "-".join(map(str, self.sizes)) + f" ({self.hidden_activation}, {self.n_params} params)"
