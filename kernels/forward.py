"""Forward passes of dense MLPs stored as flat float32 rows (see ``genreg.layout``).

Inputs arrive as tiles (``kernels.sparse``): ``tile_ptr: (n_tiles + 1,) int64``,
``rows: (n_active,) int32``, ``values: (n_active, TILE) float32``.  A row
``w: (n_params,)`` holds ``W0: (n_0, n_1)``, ``b0: (n_1,)``, ``W1: (n_1, n_2)``, ... ;
``sizes: (L + 1,) int64`` gives the widths and ``act`` the hidden activation
code (``kernels.activations``).  The output layer has no activation: kernels
return logits.

Every layer is ``out = b + x @ W`` for a tile of samples, computed by
``tile_layer``; for the first layer ``x`` is the tile's active inputs, for the
others the previous layer's activations (all units active).  Kernels write into
caller-allocated outputs and validate nothing; call them through
``genreg.forward``.  Parallel kernels give each output element to exactly one
thread, computed in a fixed order, so results are bit-identical for any number
of threads.
"""

import numpy as np
from numba import prange

from ._config import jit, parallel_jit
from .activations import activate_inplace
from .simd import (
    BLOCK,
    TILE,
    tile_rows_block1,
    tile_rows_block2,
    tile_rows_block4,
    tile_rows_block8,
    tile_rows_block16,
    tile_rows_block_wide,
)


@jit
def tile_layer(w, offset, n_in, n_out, rows, x, start, stop, out):
    """Set ``out: (TILE, n_out)`` (C-contiguous) to ``b + x @ W`` for one tile.

    W: ``(n_in, n_out)`` at ``w[offset:]``, b right after it; the tile's inputs are
    ``x[p, s]`` for input ``rows[p]``, p in [start, stop) (``x: (>= stop, TILE)``).
    """
    bias = offset + n_in * n_out
    for s in range(TILE):
        out[s, :] = w[bias : bias + n_out]
    W = w[offset:]
    j = 0
    while j + BLOCK <= n_out:
        tile_rows_block_wide(W, n_out, j, rows, x, start, stop, out)
        j += BLOCK
    if n_out - j >= 16:
        tile_rows_block16(W, n_out, j, rows, x, start, stop, out)
        j += 16
    if n_out - j >= 8:
        tile_rows_block8(W, n_out, j, rows, x, start, stop, out)
        j += 8
    if n_out - j >= 4:
        tile_rows_block4(W, n_out, j, rows, x, start, stop, out)
        j += 4
    if n_out - j >= 2:
        tile_rows_block2(W, n_out, j, rows, x, start, stop, out)
        j += 2
    if n_out - j >= 1:
        tile_rows_block1(W, n_out, j, rows, x, start, stop, out)


@jit
def forward_tile(w, sizes, act, tile_ptr, rows, values, t, a, b, xt, units):
    """Return the logits ``(TILE, sizes[-1])`` of tile ``t`` (a view into scratch ``a`` or ``b``).

    Per-thread scratch, width = max(sizes[1:]): ``a, b, xt: (TILE * width,) float32``
    (layer outputs as ``(TILE, n_l)``; activations transposed to ``(n_l, TILE)``)
    and ``units = arange(width)``, the "active rows" of a dense layer.
    """
    n_layers = sizes.shape[0] - 1
    out = a[: TILE * sizes[1]].reshape((TILE, sizes[1]))
    tile_layer(w, 0, sizes[0], sizes[1], rows, values, tile_ptr[t], tile_ptr[t + 1], out)
    offset = sizes[0] * sizes[1] + sizes[1]
    for l in range(1, n_layers):
        n_in, n_out = sizes[l], sizes[l + 1]
        activate_inplace(out.ravel(), act)
        x = xt[: n_in * TILE].reshape((n_in, TILE))
        for s in range(TILE):
            for i in range(n_in):
                x[i, s] = out[s, i]
        nxt = b if l % 2 == 1 else a
        out = nxt[: TILE * n_out].reshape((TILE, n_out))
        tile_layer(w, offset, n_in, n_out, units, x, 0, n_in, out)
        offset += n_in * n_out + n_out
    return out


@jit
def scratch(width):
    """Per-thread work buffers of ``forward_tile`` for layers up to ``width`` units wide."""
    return (np.empty(TILE * width, np.float32), np.empty(TILE * width, np.float32),
            np.empty(TILE * width, np.float32), np.arange(width))


@jit
def argmax_first(h, n):
    """Index of the largest of ``h[:n]`` (first one on ties)."""
    best = 0
    best_value = h[0]
    for j in range(1, n):
        if h[j] > best_value:
            best = j
            best_value = h[j]
    return best


@parallel_jit
def population_logits(W, sizes, act, tile_ptr, rows, values, out):
    """Fill ``out: (P, B, n_out) float32`` with the logits of every genome on every sample.

    W: ``(P, n_params) float32``; the batch (B = ``out.shape[1]``) is shared by all genomes.
    """
    n_samples = out.shape[1]
    width = np.max(sizes[1:])
    for g in prange(W.shape[0]):
        a, b, xt, units = scratch(width)
        for t in range(tile_ptr.shape[0] - 1):
            logits = forward_tile(W[g], sizes, act, tile_ptr, rows, values, t, a, b, xt, units)
            for s in range(min(TILE, n_samples - t * TILE)):
                out[g, t * TILE + s, :] = logits[s]


@parallel_jit
def population_predict(W, sizes, act, tile_ptr, rows, values, labels, n_classes, predictions, n_correct):
    """Fused forward + argmax + scoring for every genome on a shared batch.

    labels: ``(B,)``; predictions: ``(P, B) int32`` — argmax of the first
    ``n_classes`` logits; n_correct: ``(P,) int64`` — predictions equal to labels.
    """
    n_samples = labels.shape[0]
    width = np.max(sizes[1:])
    for g in prange(W.shape[0]):
        a, b, xt, units = scratch(width)
        correct = 0
        for t in range(tile_ptr.shape[0] - 1):
            logits = forward_tile(W[g], sizes, act, tile_ptr, rows, values, t, a, b, xt, units)
            for s in range(min(TILE, n_samples - t * TILE)):
                c = argmax_first(logits[s], n_classes)
                predictions[g, t * TILE + s] = c
                if c == labels[t * TILE + s]:
                    correct += 1
        n_correct[g] = correct


@parallel_jit
def predict_from_logits(logits, labels, n_classes, predictions, n_correct):
    """The scoring half of ``population_predict`` on logits already computed.

    logits: ``(P, B, n_out) float32``; labels: ``(B,)``; predictions: ``(P, B) int32``;
    n_correct: ``(P,) int64``.  The same argmax (first on ties) as the fused kernel.
    """
    for g in prange(logits.shape[0]):
        correct = 0
        for s in range(logits.shape[1]):
            c = argmax_first(logits[g, s], n_classes)
            predictions[g, s] = c
            if c == labels[s]:
                correct += 1
        n_correct[g] = correct


@parallel_jit
def genome_logits(w, sizes, act, tile_ptr, rows, values, out):
    """Fill ``out: (N, n_out) float32`` with the logits of one genome ``w`` on N samples."""
    n_samples = out.shape[0]
    width = np.max(sizes[1:])
    for t in prange(tile_ptr.shape[0] - 1):
        a, b, xt, units = scratch(width)
        logits = forward_tile(w, sizes, act, tile_ptr, rows, values, t, a, b, xt, units)
        for s in range(min(TILE, n_samples - t * TILE)):
            out[t * TILE + s, :] = logits[s]
