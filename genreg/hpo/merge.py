"""Weight-merge crossover: a child network starts from its parents' trained weights.

Gonzalez & Varrun (weight-merge-ga-hpo.txt, §3.2): where the parents' tensors
have the same shape they are averaged; where shapes differ, each parent's tensor
is resized to the child's shape (linear interpolation along every axis, corners
aligned: output index ``i`` samples input position ``i·(n_in−1)/(n_out−1)``) and
then averaged; a layer only one parent has is inherited from it; a layer no
parent has keeps the child's fresh initialisation.

Layer correspondence between networks of different depth: hidden layers are
matched by position from the input (child layer ``l`` <- parent layer ``l``),
and the output layer with the output layer (its output units mean the same
thing in every network of a task).  So a deeper parent's extra hidden layers
are dropped, and a shallower parent contributes nothing to the child's extra
hidden layers.

ConvNets (a search's fixed ``conv`` stages): every network of the search has
the same filter and bias tensors, but their filters are not merged.  Two
parents trained from different initialisations share no correspondence between
filters (filter ``o`` of one detects something unrelated to filter ``o`` of the
other: any permutation of the channels is an equally good network), so their
mean is a blur of unrelated detectors, and the dense layer behind the flatten
would read features neither parent was trained on.  A child therefore inherits
every convolution tensor whole from one parent (``conv_from``: the search passes
the better-ranked one); the dense layers are merged as above.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import ndimage

from genreg.errors import ConfigError
from genreg.network.layout import Layout


def resize_tensor(t: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Resize ``t`` to ``shape`` (same number of axes) by linear interpolation, corners aligned.

    Returns a new float32 array; same shape -> a copy.  An axis of length 1
    is replicated when grown; an axis shrunk to 1 keeps its first entry.
    """
    t = np.asarray(t, dtype=np.float32)
    shape = tuple(int(s) for s in shape)
    if t.ndim != len(shape) or any(s < 1 for s in shape):
        raise ValueError(f"cannot resize a tensor of shape {t.shape} to {shape}")
    if t.shape == shape:
        return t.copy()
    zoom = [o / i for o, i in zip(shape, t.shape)]
    # grid_mode=False (the default) aligns corners; order=1 is linear along each axis.
    out = ndimage.zoom(t.astype(np.float64), zoom, order=1, mode="nearest", grid_mode=False)
    if out.shape != shape:  # zoom rounds in*zoom; guard against a float off-by-one
        raise AssertionError(f"zoom produced {out.shape}, expected {shape}")  # pragma: no cover
    return out.astype(np.float32)


def parent_layer(child: Layout, parent: Layout, l: int) -> int | None:
    """Index of the parent's layer that corresponds to child layer ``l`` (None: the parent has none)."""
    if l == child.n_layers - 1:
        return parent.n_layers - 1
    return l if l < parent.n_layers - 1 else None


def merge_weights(child: Layout, parents: Sequence[tuple[Layout, np.ndarray]],
                  init_row: np.ndarray | None = None, conv_from: int = 0) -> np.ndarray:
    """Merge trained parents into a new row for ``child``.

    child: the child's Layout.  parents: ``[(layout, row), ...]`` (usually two),
    ``row: (layout.n_params,) float32``.  init_row: ``(child.n_params,)`` fresh
    initialisation used for layers no parent has (default: zeros).
    Returns ``(child.n_params,) float32``.  Parents must share the child's input
    and output sizes; layouts with parallel blocks are refused.  A ConvNet child's
    convolution tensors are copied whole from ``parents[conv_from]`` (every parent
    must have the child's image and stages).
    """
    if not parents:
        raise ConfigError("merge_weights needs at least one parent")
    for layout in (child, *(p[0] for p in parents)):
        if getattr(layout, "has_blocks", False):
            raise ConfigError(f"merge_weights supports plain MLP layouts only, not parallel blocks ({layout.describe()})")
    for layout, row in parents:
        if layout.n_inputs != child.n_inputs or layout.n_outputs != child.n_outputs:
            raise ConfigError(f"cannot merge a {layout.describe()} parent into a {child.describe()} child: "
                              "input and output sizes must match")
        if np.shape(row) != (layout.n_params,):
            raise ConfigError(f"parent row has shape {np.shape(row)}, its layout needs ({layout.n_params},)")
        if (layout.image, layout.stages) != (child.image, child.stages):
            raise ConfigError(f"cannot merge a {layout.describe()} parent into a {child.describe()} child: "
                              "the convolution stages must be the same")
    if child.is_conv and not 0 <= conv_from < len(parents):
        raise ConfigError(f"conv_from = {conv_from}: there are {len(parents)} parents")
    if init_row is None:
        out = np.zeros(child.n_params, dtype=np.float32)
    else:
        if np.shape(init_row) != (child.n_params,):
            raise ConfigError(f"init_row has shape {np.shape(init_row)}, expected ({child.n_params},)")
        out = np.array(init_row, dtype=np.float32, copy=True)
    if child.is_conv:  # every convolution's filters and bias lie before W0, at the same offsets in every parent
        stop = child.tensor("W0").offset
        out[:stop] = np.asarray(parents[conv_from][1], dtype=np.float32)[:stop]
    for l in range(child.n_layers):
        for kind in ("W", "b"):
            target = child.tensor(f"{kind}{l}")
            pieces = []
            for layout, row in parents:
                pl = parent_layer(child, layout, l)
                if pl is not None:
                    pieces.append(resize_tensor(layout.view(np.asarray(row), f"{kind}{pl}"), target.shape))
            if pieces:
                # Mean of float32 pieces in float64, as (a + b) / 2 for two parents.
                merged = np.mean(np.stack(pieces).astype(np.float64), axis=0)
                out[target.offset : target.stop] = merged.astype(np.float32).ravel()
    return out
