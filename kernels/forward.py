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
``genreg.network.forward``.  The population entry points (``population_logits``,
``population_predict``, ``brood_predict``, ``genome_logits``) live in
``genreg.kernels.population``: one worker, on threads that take genomes (or tiles)
from a queue; each output element is computed by exactly one thread in a fixed
order, so results are bit-identical for any number of threads.
"""

import numba
import numpy as np

from ._config import jit
from .activations import activate_inplace
from .simd import (
    BLOCK,
    LANES_UNITS,
    TILE,
    lanes_block,
    tile_rows_block1,
    tile_rows_block2,
    tile_rows_block4,
    tile_rows_block8,
    tile_rows_block16,
    tile_rows_block_wide,
)
from .workqueue import claim, run_workers


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
def lanes_layer(w, w_off, stride, b_off, n_in, n_out, x, x_off, x_stride, out, out_off, out_stride):
    """``out[o, s] = b[o] + sum_p x[p, s] * W[p, o]`` for ``LANES`` samples s, the samples along the
    vector lanes (``genreg.kernels.simd.lanes_block``): the same bits as ``tile_layer``.

    W: ``(n_in, >= n_out)`` with row stride ``stride`` at ``w[w_off:]``, b at ``w[b_off:]``;
    x: ``(n_in, LANES)`` at ``x[x_off:]`` with row stride ``x_stride``; out: ``(n_out, LANES)`` at
    ``out[out_off:]`` with row stride ``out_stride`` (flat offsets into C-contiguous float32 arrays:
    for activations ``(units, B)``, group g of LANES samples is at offset ``g * LANES``, stride B).
    Units run ``LANES_UNITS`` at a time, then the rest in one block.
    """
    col = 0
    while col < n_out:
        k = min(LANES_UNITS, n_out - col)
        lanes_block(w, w_off, stride, col, b_off, x, x_off, x_stride, n_in, out, out_off + col * out_stride,
                    out_stride, k)
        col += k


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


@jit
def score_worker(logits, labels, n_classes, predictions, n_correct, queue):
    """One worker of ``predict_from_logits``: scores the genomes it takes from ``queue``."""
    g = claim(queue)
    while g < logits.shape[0]:
        n_correct[g] = score(logits[g], labels, n_classes, predictions[g])
        g = claim(queue)


def predict_from_logits(logits, labels, n_classes, predictions, n_correct, n_workers=None):
    """The scoring half of ``population_predict`` on logits already computed.

    logits: ``(P, B, n_out) float32``; labels: ``(B,)``; predictions: ``(P, B) int32``;
    n_correct: ``(P,) int64``.  The same argmax (first on ties) as the fused kernel;
    ``n_workers`` threads (default ``numba.get_num_threads()``) take genomes from a queue.
    """
    run_workers(score_worker, (logits, labels, int(n_classes), predictions, n_correct),
                numba.get_num_threads() if n_workers is None else n_workers)
