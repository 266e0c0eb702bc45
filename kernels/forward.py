"""Forward passes of dense MLPs stored as flat float32 rows (see ``genreg.network.layout``).

Inputs arrive as tiles (``genreg.kernels.sparse``): ``tile_ptr: (n_tiles + 1,) int64``,
``rows: (n_active,) int32``, ``values: (n_active, TILE) float32``.  A row
``w: (n_params,)`` holds ``W0: (n_0, n_1)``, ``b0: (n_1,)``, ``W1: (n_1, n_2)``, ... ;
``sizes: (L + 1,) int64`` gives the widths and ``act`` the hidden activation
code (``genreg.kernels.activations``).  The output layer has no activation: kernels
return logits.

Every layer is ``out = b + x @ W`` for a tile of samples, computed by
``tile_layer``; for the first layer ``x`` is the tile's active inputs, for the
others the previous layer's activations (all units active), read in place
through a transposed view.  Layer outputs live in two per-thread buffers
``(TILE, width)`` (``scratch``) and use their first ``padded_width(n_l)``
columns; columns past ``n_l`` are padding that no later step reads.  Kernels
write into caller-allocated outputs and validate nothing; call them through
``genreg.network.forward``.  Parallel kernels hand out genomes (or tiles) through a
queue (``genreg.kernels.workqueue``); each output element is computed by exactly one
thread in a fixed order, so results are bit-identical for any number of threads.
"""

import numpy as np
from numba import prange

from ._config import jit, parallel_jit
from .activations import activate_inplace
from .variation import make_child
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
from .workqueue import claim


@jit
def padded_width(n):
    """Columns of a layer output of ``n`` units that ``tile_layer`` writes: ``n`` rounded up.

    ``BLOCK``-wide blocks, then one block of ``q`` = the next power of two
    >= ``r = n % BLOCK`` (``q <= BLOCK``, since BLOCK is 16 or 32).
    """
    r = n % BLOCK
    q = 1
    while q < r:
        q *= 2
    return n - r + (q if r > 0 else 0)


@jit
def tile_layer(w, offset, n_in, n_out, rows, x, start, stop, out):
    """Set ``out[:, :n_out]`` to ``b + x @ W`` for one tile.

    W: ``(n_in, n_out)`` at ``w[offset:]``, b right after it; the tile's inputs are
    ``x[p, s]`` for input ``rows[p]``, p in [start, stop) (``x: (>= stop, TILE)``,
    any strides); ``out: (TILE, >= padded_width(n_out))``, C-contiguous.

    Units run in ``BLOCK``-wide blocks, and the last ``r = n_out % BLOCK`` in one
    block of ``q`` lanes, the next power of two >= r (so q - r < r).  Its padded
    lanes j = n_out .. n_out + q - r - 1 read ``W[i, j]`` past the end of row i of
    W: the next row's first weights or, for the last row, the first q - r < r <=
    n_out entries of b, which follows W in the genome row.  Every read therefore
    stays inside ``w[offset : offset + (n_in + 1) * n_out]``, for any n_out and
    BLOCK.  The padded columns ``out[:, n_out:padded_width(n_out)]`` get values
    (starting from 0, not from b) that nothing reads.
    """
    W = w[offset:]
    b = w[offset + n_in * n_out : offset + n_in * n_out + n_out]
    j = 0
    while j + BLOCK <= n_out:
        tile_rows_block_wide(W, n_out, j, rows, x, start, stop, b, out)
        j += BLOCK
    q = padded_width(n_out) - j  # the last block's lanes: 0 or a power of two
    if q == BLOCK:
        tile_rows_block_wide(W, n_out, j, rows, x, start, stop, b, out)
    elif q == 16:
        tile_rows_block16(W, n_out, j, rows, x, start, stop, b, out)
    elif q == 8:
        tile_rows_block8(W, n_out, j, rows, x, start, stop, b, out)
    elif q == 4:
        tile_rows_block4(W, n_out, j, rows, x, start, stop, b, out)
    elif q == 2:
        tile_rows_block2(W, n_out, j, rows, x, start, stop, b, out)
    elif q == 1:
        tile_rows_block1(W, n_out, j, rows, x, start, stop, b, out)


@jit
def scratch(sizes):
    """Per-thread buffers of ``forward_tiles`` for a net of layer widths ``sizes``.

    Returns ``a, b: (TILE, width) float32``, width = the largest
    ``padded_width(n_l)``, and ``units = arange(width)``, the "active rows" of a
    dense layer.  Every layer uses these two arrays whole, with row stride
    ``width``: making views of other shapes per tile costs a few percent.
    """
    width = 0
    for n in sizes[1:]:
        width = max(width, padded_width(n))
    return np.empty((TILE, width), np.float32), np.empty((TILE, width), np.float32), np.arange(width)


@jit
def forward_tiles(w, sizes, act, tile_ptr, rows, values, t_begin, t_end, a, b, units, out):
    """Write the logits of genome ``w`` on the samples of tiles ``t_begin .. t_end - 1`` into ``out``.

    out: ``(B, >= sizes[-1]) float32``; sample ``t * TILE + s`` (if < B) goes to that row.
    ``a, b, units``: per-thread scratch from ``scratch(sizes)``.  Layer l writes
    ``a`` if l is even, else ``b``, and each dense layer reads the previous
    output in place through its transpose.  (Spelled out per parity: swapping
    array variables or taking views per tile costs a few percent.)
    """
    aT, bT = a.T, b.T
    for t in range(t_begin, t_end):
        tile_layer(w, 0, sizes[0], sizes[1], rows, values, tile_ptr[t], tile_ptr[t + 1], a)
        offset = sizes[0] * sizes[1] + sizes[1]
        for l in range(1, sizes.shape[0] - 1):
            n_in, n_out = sizes[l], sizes[l + 1]
            if l % 2 == 1:
                activate_inplace(a, n_in, act)
                tile_layer(w, offset, n_in, n_out, units, aT, 0, n_in, b)
            else:
                activate_inplace(b, n_in, act)
                tile_layer(w, offset, n_in, n_out, units, bT, 0, n_in, a)
            offset += n_in * n_out + n_out
        logits = a if sizes.shape[0] % 2 == 0 else b
        for s in range(min(TILE, out.shape[0] - t * TILE)):
            for j in range(sizes[-1]):
                out[t * TILE + s, j] = logits[s, j]


@jit
def score(logits, labels, n_classes, predictions):
    """Set ``predictions: (B,)`` to the argmax of the first ``n_classes`` of ``logits: (B, n_out)``
    (first one on ties) and return how many equal ``labels: (B,)``."""
    correct = 0
    for s in range(logits.shape[0]):
        best, best_value = 0, logits[s, 0]
        for j in range(1, n_classes):
            better = logits[s, j] > best_value  # selects rather than branches: unpredictable
            best = j if better else best
            best_value = logits[s, j] if better else best_value
        predictions[s] = best
        correct += best == labels[s]
    return correct


@parallel_jit
def population_logits(W, sizes, act, tile_ptr, rows, values, out, n_workers):
    """Fill ``out: (P, B, n_out) float32`` with the logits of every genome on every sample.

    W: ``(P, n_params) float32``; the batch (B = ``out.shape[1]``) is shared by all
    genomes; ``n_workers`` (the number of threads) loops take genomes from a queue
    (``genreg.kernels.workqueue``).
    """
    queue = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        a, b, units = scratch(sizes)
        g = claim(queue)
        while g < W.shape[0]:
            forward_tiles(W[g], sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, out[g])
            g = claim(queue)


@parallel_jit
def population_predict(W, sizes, act, tile_ptr, rows, values, labels, n_classes, predictions, n_correct, n_workers):
    """Fused forward + argmax + scoring for every genome on a shared batch.

    labels: ``(B,)``; predictions: ``(P, B) int32`` — argmax of the first
    ``n_classes`` logits; n_correct: ``(P,) int64`` — predictions equal to labels;
    ``n_workers`` loops take genomes from a queue, as in ``population_logits``.
    """
    queue = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        a, b, units = scratch(sizes)
        logits = np.empty((labels.shape[0], sizes[-1]), np.float32)
        g = claim(queue)
        while g < W.shape[0]:
            forward_tiles(W[g], sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, logits)
            n_correct[g] = score(logits, labels, n_classes, predictions[g])
            g = claim(queue)


@parallel_jit
def brood_predict(source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                  base_keys, order, sizes, act, tile_ptr, rows, values, labels, n_classes, predictions, n_correct,
                  n_workers):
    """``population_predict`` for children that exist only as parents plus random streams.

    Child c is the row ``make_children`` would build (``genreg.kernels.variation.make_child``):
    ``source[parents[c]]``, or its crossover with ``source[second[c]]``, then child and
    base mutation.  Each worker builds one child at a time in its own row (cache-resident;
    the parents' rows mostly too, as children are taken in ``order``: grouped by first
    parent), scores it and reuses the row, so nothing of size ``(C, n)`` is written.
    source: ``(R, n) float32``; parents, second, crossover_keys, keys, base_keys, order:
    ``(C,)``; rates, base_rates: ``(C,) float64``; the rest as in ``population_predict``
    (predictions: ``(C, B)``, n_correct: ``(C,)``).
    """
    queue = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        a, b, units = scratch(sizes)
        logits = np.empty((labels.shape[0], sizes[-1]), np.float32)
        row = np.empty(source.shape[1], np.float32)
        i = claim(queue)
        while i < order.shape[0]:
            c = order[i]
            make_child(source, parents[c], second[c], crossover, gene_bounds, crossover_keys[c], rates[c],
                       base_rates[c], scale, keys[c], base_keys[c], row)
            forward_tiles(row, sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, logits)
            n_correct[c] = score(logits, labels, n_classes, predictions[c])
            i = claim(queue)


@parallel_jit
def predict_from_logits(logits, labels, n_classes, predictions, n_correct):
    """The scoring half of ``population_predict`` on logits already computed.

    logits: ``(P, B, n_out) float32``; labels: ``(B,)``; predictions: ``(P, B) int32``;
    n_correct: ``(P,) int64``.  The same argmax (first on ties) as the fused kernel.
    """
    for g in prange(logits.shape[0]):
        n_correct[g] = score(logits[g], labels, n_classes, predictions[g])


@parallel_jit
def genome_logits(w, sizes, act, tile_ptr, rows, values, out, n_workers):
    """Fill ``out: (N, n_out) float32`` with the logits of one genome ``w`` on N samples.

    ``n_workers`` loops take tiles from a queue, as in ``population_logits``.
    """
    queue = np.zeros(1, np.int64)
    for _ in prange(n_workers):
        a, b, units = scratch(sizes)
        t = claim(queue)
        while t < tile_ptr.shape[0] - 1:
            forward_tiles(w, sizes, act, tile_ptr, rows, values, t, t + 1, a, b, units, out)
            t = claim(queue)
