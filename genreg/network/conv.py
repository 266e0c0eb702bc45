"""Convolution and pooling stages of a ConvNet layout, and the one-line shape syntax.

A ConvNet is an image ``H x W x C`` (channels last, so a flat MNIST row is already
a 28x28x1 image), a chain of stages, a flatten (implicit, in ``h, w, c`` order)
and dense layers.  The shape string names them in order, separated by ``-``::

    28x28x1-c5x8-p2-c5x16-p2-10        (EvoJAX's MNIST ConvNet: 11,274 parameters)
    28x28-c3x16s2p0-a2-64-10

``HxWxC`` (or ``HxW`` for one channel) is the image; ``c{k}x{n}`` a k x k
convolution with n output channels, optionally ``s{stride}`` (default 1) and
``p{padding}`` (zeros on every side; default ``(k - 1) // 2``, which keeps the
size at stride 1 for odd k); ``p{k}`` a k x k max pooling and ``a{k}`` an
average pooling, both of stride k (a remainder row/column is dropped); then the
dense widths, the last being the outputs.  Every convolution is followed by the
layout's hidden activation.

A convolution's filters are the row tensor ``C{i}: (n_out, k, k, n_in)`` (one
filter, the weights of one output channel, is contiguous: a gene can be one
filter) and its bias ``cb{i}: (n_out,)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from genreg.errors import ConfigError

#: The largest image side, kernel, stride, padding and channel count a shape may ask for.
MAX_SIDE = 1 << 16

_IMAGE = re.compile(r"(\d+)x(\d+)(?:x(\d+))?")
_CONV = re.compile(r"c(\d+)x(\d+)(?:s(\d+))?(?:p(\d+))?")
_POOL = re.compile(r"([pa])(\d+)")

#: Stage kinds as the kernels see them (column ``KIND`` of ``stage_table``).
CONV, MAX_POOL, AVG_POOL = 0, 1, 2


@dataclass(frozen=True)
class Conv:
    """A k x k convolution with ``channels`` outputs, ``stride`` and zero ``padding`` (None: ``(k - 1) // 2``)."""

    k: int
    channels: int
    stride: int = 1
    padding: int | None = None

    def __post_init__(self):
        if self.padding is None:
            object.__setattr__(self, "padding", (self.k - 1) // 2)
        _check_ints(self, k=(self.k, 1), channels=(self.channels, 1), stride=(self.stride, 1),
                    padding=(self.padding, 0))
        if self.padding >= self.k:
            raise ConfigError(f"{self.token}: padding {self.padding} must be smaller than the kernel ({self.k}), "
                              "or some windows would hold nothing but zeros")

    @property
    def token(self) -> str:
        """``"c5x8"``, with ``s``/``p`` only where they differ from the defaults."""
        text = f"c{self.k}x{self.channels}"
        if self.stride != 1:
            text += f"s{self.stride}"
        if self.padding != (self.k - 1) // 2:
            text += f"p{self.padding}"
        return text

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """``(H, W, C)`` -> ``(H', W', channels)``; zero or negative sides mean the kernel does not fit."""
        h, w, _ = shape
        side = lambda n: (n + 2 * self.padding - self.k) // self.stride + 1  # noqa: E731
        return side(h), side(w), self.channels


@dataclass(frozen=True)
class Pool:
    """A k x k pooling of stride k: ``kind`` "max" or "avg"."""

    k: int
    kind: str = "max"

    def __post_init__(self):
        _check_ints(self, k=(self.k, 1))
        if self.kind not in ("max", "avg"):
            raise ConfigError(f"pooling kind must be 'max' or 'avg', got {self.kind!r}")

    @property
    def token(self) -> str:
        return ("p" if self.kind == "max" else "a") + str(self.k)

    def out_shape(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        h, w, c = shape
        return h // self.k, w // self.k, c


def _check_ints(stage, **values) -> None:
    for name, (value, low) in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= MAX_SIDE:
            raise ConfigError(f"{type(stage).__name__.lower()} {name} must be a whole number in [{low}, {MAX_SIDE}], "
                              f"got {value!r}")


def parse_stage(token: str) -> Conv | Pool:
    """One stage from its token: ``"c5x8"``, ``"c3x16s2p0"``, ``"p2"`` (max) or ``"a2"`` (average)."""
    token = token.strip()
    m = _CONV.fullmatch(token)
    if m:
        k, n, s, p = m.groups()
        return Conv(int(k), int(n), int(s) if s else 1, int(p) if p is not None else None)
    m = _POOL.fullmatch(token)
    if m:
        return Pool(int(m.group(2)), "max" if m.group(1) == "p" else "avg")
    raise ConfigError(f"{token!r} is not a stage: use c<k>x<channels>[s<stride>][p<padding>], p<k> (max pooling) "
                      f"or a<k> (average pooling)")


def parse_stages(text: str) -> tuple:
    """Stages of ``"c5x8-p2-c5x16-p2"``; ``""`` gives ``()``."""
    return tuple(parse_stage(t) for t in text.split("-")) if text.strip() else ()


def parse_image(token: str) -> tuple[int, int, int]:
    """``"28x28x1"`` or ``"28x28"`` -> ``(28, 28, 1)``."""
    m = _IMAGE.fullmatch(token.strip())
    if not m:
        raise ConfigError(f"{token!r} is not an image shape: use HxWxC or HxW, e.g. 28x28x1")
    h, w, c = (int(v) if v else 1 for v in m.groups())
    image = (h, w, c)
    if not all(1 <= v <= MAX_SIDE for v in image):
        raise ConfigError(f"image shape {token!r}: every side and the channels must be in [1, {MAX_SIDE}]")
    return image


def stages_text(stages) -> str:
    """The tokens of ``stages`` joined by ``-`` (``""`` for none)."""
    return "-".join(s.token for s in stages)


def image_text(image) -> str:
    return "x".join(map(str, image))


def trace_shapes(image: tuple[int, int, int], stages) -> list[tuple[int, int, int]]:
    """Shapes ``[image, after stage 0, ...]``; a stage that cannot work is a ``ConfigError`` naming it.

    Refused: a kernel larger than its (padded) input, a pooling that leaves nothing.
    """
    shapes = [tuple(image)]
    for i, stage in enumerate(stages):
        h, w, c = shapes[-1]
        where = f"stage {i + 1} ({stage.token}) of {stages_text(stages)}"
        if isinstance(stage, Conv):
            if stage.k > min(h, w) + 2 * stage.padding:
                raise ConfigError(f"{where}: a {stage.k}x{stage.k} kernel is larger than its {h}x{w} input "
                                  f"(padding {stage.padding})")
        elif stage.k > min(h, w):
            raise ConfigError(f"{where}: {stage.k}x{stage.k} pooling of a {h}x{w} input leaves nothing")
        shapes.append(stage.out_shape((h, w, c)))
    return shapes
