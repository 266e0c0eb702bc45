"""Population forward passes of ConvNets (``genreg.network.layout``: convolution and pooling stages, then dense).

A ConvNet row holds, stage after stage, each convolution's filters ``C: (C_out, k, k, C_in)``
and bias ``cb: (C_out,)``, then the dense layers exactly as an MLP row.  The stages come
as ``table: (n_stages, 12) int64`` (``Layout.stage_table()``, columns ``layout.STAGE_COLUMNS``:
kind, k, stride, padding, h_in, w_in, c_in, h_out, w_out, c_out, offset_C, offset_b) and the
dense part as ``sizes`` (``(n_flat, hidden..., n_out)``) and the activation code ``act``.
Images are dense, channels last: ``X: (B, H * W * C) float32`` (pixels already scaled).

One serial worker (``conv_worker``) runs on threads that take items from a queue
(``genreg.kernels.workqueue``); an item is one genome on one chunk of images.  Per item
the worker copies the genome's filters into its own scratch, transposed to
``(k, k, C_in, C_out)`` with the bias after them (the layout of a dense layer's ``W, b``),
then takes the chunk's images ``TILE`` at a time: each image runs through the stages
alone (its activations, a few tens of kB, stay in L1/L2), its flattened output goes into
column ``s`` of a ``(n_flat, TILE)`` block, and the dense layers run on the ``TILE``
images at once through ``forward.forward_tiles``, the MLP kernels' own code.

Convolution (``convolve``): the input is copied into a zero-padded buffer, ``(H + 2p, W + 2p, C_in)``,
so no window needs a bounds check; the output pixels, in raster order, run in blocks of ``NPIX``
(offset tables made once per worker, so a block may span two rows; the last block is completed
with copies of the last pixel), times channel blocks of 16, 8 or 4 lanes, each one register
block of ``genreg.kernels.conv_simd``: for every filter row ``kh`` the ``k * C_in`` inputs of a
window row are contiguous in the padded image.  Every output element starts at its bias and adds
its ``k * k * C_in`` terms in the order (kh, kw, c_in) ascending, one IEEE fused multiply-add
each, whatever the block, the chunk or the thread: results are bit-identical for any number of
threads.  Then the hidden activation (``activate_inplace``), then pooling in channel vectors
(max: a later entry wins only if greater; average: the window's sum in (kh, kw) order divided
by k * k).
"""

import numba
import numpy as np

from ._config import jit
from .activations import activate_inplace
from .conv_simd import NPIX, block4, block8, block16, pool1, pool4, pool8, pool16
from .forward import forward_tiles, scratch, score
from .population import _NO_F64, _NO_I64, _NO_LABELS, _NO_LOGITS, _NO_PREDICTIONS, _NO_U64  # empty placeholders
from .simd import TILE
from .variation import make_child
from .workqueue import claim, run_workers

CONV, MAX_POOL, AVG_POOL = 0, 1, 2  # genreg.network.conv

@jit
def block_lanes(co, col):
    """Lanes of the channel block starting at ``col``: 16 while 16 or more channels are left, else the
    smallest of 8, 4 that covers the rest (at least 4)."""
    r = co - col
    return 16 if r >= 16 else (8 if r > 4 else 4)


@jit
def conv_pixels(wt, w_off, co, lanes, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0):
    """``NPIX`` pixels of a ``lanes``-wide channel block (see ``_make_conv_block``)."""
    if lanes == 16:
        block16(wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0)
    elif lanes == 8:
        block8(wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0)
    else:
        block4(wt, w_off, co, x, x_offs, k, x_kh, run, out, o_offs, o_add, i0)


@jit
def conv_scratch(table, n_in):
    """Per-worker buffers: the transposed filters ``wt`` (every convolution's ``(k * k * C_in + 1) * C_out``
    floats, plus 32 spare), each convolution's offset in ``wt`` (``(n_stages,) int64``), the padded input
    ``pad_buf``, two activation buffers ``a, b: (1, n)`` (the largest of the image (``n_in`` floats) and
    every stage's input and output, then a dump
    area for ``convolve``: ``C_out + 16`` floats, then ``NPIX`` blocks of 16) and each convolution's pixel
    offset tables ``pix: (n_stages, 3, n_pix) int64`` (n_pix: the most output pixels of a convolution,
    rounded up to NPIX): for output pixel p in raster order (the last block completed with copies of
    the last pixel), the start of its window in the padded input, where it goes in the output (the
    dump area for the copies) and where its lanes go when a channel block is partial."""
    n_w, n_pad, n_act, n_pix, c_max = 0, 1, max(1, n_in), NPIX, 0
    offsets = np.zeros(table.shape[0], np.int64)
    for st in range(table.shape[0]):
        k, pad, h, w, c = table[st, 1], table[st, 3], table[st, 4], table[st, 5], table[st, 6]
        n_act = max(n_act, table[st, 7] * table[st, 8] * table[st, 9], h * w * c)
        if table[st, 0] == CONV:
            offsets[st] = n_w
            n_w += (k * k * c + 1) * table[st, 9]
            n_pad = max(n_pad, (h + 2 * pad) * (w + 2 * pad) * c)
            n_pix = max(n_pix, -(-table[st, 7] * table[st, 8] // NPIX) * NPIX)
            c_max = max(c_max, table[st, 9])
    n_buf = n_act + c_max + 16 + NPIX * 16
    pix = np.zeros((table.shape[0], 3, n_pix), np.int64)
    for st in range(table.shape[0]):
        if table[st, 0] == CONV:
            stride, c, wp = table[st, 2], table[st, 6], table[st, 5] + 2 * table[st, 3]
            wo, co = table[st, 8], table[st, 9]
            n = table[st, 7] * wo
            for p in range(-(-n // NPIX) * NPIX):
                q = min(p, n - 1)
                oh = q // wo
                pix[st, 0, p] = (oh * stride * wp + (q - oh * wo) * stride) * c
                pix[st, 1, p] = p * co if p < n else n * co
                pix[st, 2, p] = n * co + co + 16 + (p % NPIX) * 16
    return (np.zeros(n_w + 32, np.float32), offsets, np.zeros(n_pad, np.float32),
            np.zeros((1, n_buf), np.float32), np.zeros((1, n_buf), np.float32), pix)


@jit
def transpose_filters(w, table, offsets, wt):
    """Copy each convolution's ``C: (C_out, k, k, C_in)`` from row ``w`` into ``wt`` as
    ``(k, k, C_in, C_out)``, followed by its bias ``(C_out,)``, at ``offsets[stage]``."""
    for st in range(table.shape[0]):
        if table[st, 0] != CONV:
            continue
        n_taps, c_out, src, dst = table[st, 1] * table[st, 1] * table[st, 6], table[st, 9], table[st, 10], offsets[st]
        for o in range(c_out):
            for q in range(n_taps):
                wt[dst + q * c_out + o] = w[src + o * n_taps + q]
        for o in range(c_out):
            wt[dst + n_taps * c_out + o] = w[table[st, 11] + o]


@jit
def convolve(x, table, st, wt, offset, pad_buf, pix, out):
    """Stage ``st`` (a convolution, no activation) of one image: ``out[:h_out * w_out * c_out]`` (HWC)
    from ``x`` (HWC).  The input is first copied into ``pad_buf`` with its zero border; then the output
    pixels, in raster order, run in blocks of ``NPIX`` (see ``conv_scratch`` for the offset tables ``pix``:
    ``(3, >= n_pix) int64``), times channel blocks of 16/8/4 lanes (a block with lanes past ``C_out`` is
    stored after the dump area and copied)."""
    k, pad = table[st, 1], table[st, 3]  # the stride is in the pixel offset tables
    h, w, c = table[st, 4], table[st, 5], table[st, 6]
    ho, wo, co = table[st, 7], table[st, 8], table[st, 9]
    wp = w + 2 * pad
    if pad > 0:
        for i in range((h + 2 * pad) * wp * c):
            pad_buf[i] = np.float32(0.0)
    for i in range(h):
        row, src = ((i + pad) * wp + pad) * c, i * w * c
        for j in range(w * c):
            pad_buf[row + j] = x[src + j]
    n_pix = ho * wo
    n_blocks = -(-n_pix // NPIX)
    tmp = n_pix * co + co + 16
    x_offs, o_offs, t_offs = pix[0], pix[1], pix[2]
    run = k * c
    for blk in range(n_blocks):
        i0 = blk * NPIX
        col = 0
        while col < co:
            lanes = block_lanes(co, col)
            if col + lanes <= co:
                conv_pixels(wt, offset + col, co, lanes, pad_buf, x_offs, k, wp * c, run, out, o_offs, col, i0)
            else:
                conv_pixels(wt, offset + col, co, lanes, pad_buf, x_offs, k, wp * c, run, out, t_offs, 0, i0)
                for p in range(min(NPIX, n_pix - i0)):
                    for j in range(co - col):
                        out[(i0 + p) * co + col + j] = out[tmp + p * 16 + j]
            col += lanes


@jit
def pool(x, table, st, out):
    """Stage ``st`` (a pooling of stride k, remainder dropped) of one image: ``out`` (HWC) from ``x`` (HWC),
    channels in vectors of 16, 8, 4, then one at a time (``_make_pool_block``)."""
    k, w, c = table[st, 1], table[st, 5], table[st, 6]
    ho, wo = table[st, 7], table[st, 8]
    average = table[st, 0] == AVG_POOL
    for oh in range(ho):
        for ow in range(wo):
            o = (oh * wo + ow) * c
            i = ((oh * k) * w + ow * k) * c
            j = 0
            while j + 16 <= c:
                pool16(x, i + j, w * c, c, k, average, out, o + j)
                j += 16
            if j + 8 <= c:
                pool8(x, i + j, w * c, c, k, average, out, o + j)
                j += 8
            if j + 4 <= c:
                pool4(x, i + j, w * c, c, k, average, out, o + j)
                j += 4
            while j < c:
                pool1(x, i + j, w * c, c, k, average, out, o + j)
                j += 1


@jit
def run_stages(table, act, wt, offsets, pad_buf, pix, a, b, first, stop):
    """Run stages ``first .. stop - 1`` of one image whose input to stage ``first`` is in ``a[0]`` (HWC);
    returns the buffer (``a`` or ``b``, ``(1, n)`` scratch) that holds the last stage's output.  A
    convolution is followed by the hidden activation."""
    cur, nxt = a, b
    for st in range(first, stop):
        if table[st, 0] == CONV:
            convolve(cur[0], table, st, wt, offsets[st], pad_buf, pix[st], nxt[0])
            activate_inplace(nxt, table[st, 7] * table[st, 8] * table[st, 9], act)
        else:
            pool(cur[0], table, st, nxt[0])
        cur, nxt = nxt, cur
    return cur


@jit
def image_features(x, table, act, wt, offsets, pad_buf, pix, a, b, values, s):
    """Run every stage on one image ``x: (H * W * C,)`` and write its flat output into ``values[:, s]``
    (``a, b: (1, n)`` scratch)."""
    for i in range(x.shape[0]):
        a[0, i] = x[i]
    cur = run_stages(table, act, wt, offsets, pad_buf, pix, a, b, 0, table.shape[0])
    for i in range(values.shape[0]):
        values[i, s] = cur[0, i]


@jit
def conv_worker(source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                base_keys, build, order, chunk, table, sizes, act, X, labels, n_classes, predictions, item_correct,
                logits_out, queue):
    """Take items from ``queue`` until none is left: item i is genome ``c = order[i // n_chunks]`` on images
    ``k * chunk .. (k + 1) * chunk - 1`` (k = i % n_chunks, ``chunk`` a multiple of TILE).

    The genome is the child ``c`` (if ``build``, made in a row of this worker's own) or
    ``source[parents[c]]``; its logits go to ``logits_out[c]`` (``(C, B, n_out)``), or, if
    ``logits_out`` is empty, their argmax over the first ``n_classes`` to ``predictions[c]``
    and the number equal to ``labels`` to ``item_correct[i]``.
    """
    B = X.shape[0]
    n_chunks = max(1, (B + chunk - 1) // chunk)
    wt, offsets, pad_buf, a, b, pix = conv_scratch(table, X.shape[1])
    n_flat = sizes[0]
    values = np.zeros((n_flat, TILE), np.float32)
    tile_ptr = np.zeros(2, np.int64)
    tile_ptr[1] = n_flat
    rows = np.arange(n_flat).astype(np.int32)
    da, db, units = scratch(sizes)
    scoring = logits_out.shape[0] == 0
    tile_logits = np.zeros((TILE, sizes[-1]), np.float32)
    row = np.empty(source.shape[1] if build else 0, np.float32)
    dense_offset = 0
    for st in range(table.shape[0]):
        if table[st, 0] == CONV:
            dense_offset = table[st, 11] + table[st, 9]
    i = claim(queue)
    while i < order.shape[0] * n_chunks:
        c = order[i // n_chunks]
        begin = (i % n_chunks) * chunk
        end = min(begin + chunk, B)
        if build:
            make_child(source, parents[c], second[c], crossover, gene_bounds, crossover_keys[c], rates[c],
                       base_rates[c], scale, keys[c], base_keys[c], row)
            w = row
        else:
            w = source[parents[c]]
        transpose_filters(w, table, offsets, wt)
        dense = w[dense_offset:]
        correct = 0
        for t0 in range(begin, end, TILE):
            n = min(TILE, end - t0)
            for s in range(TILE):
                if s < n:
                    image_features(X[t0 + s], table, act, wt, offsets, pad_buf, pix, a, b, values, s)
                else:
                    for f in range(n_flat):
                        values[f, s] = np.float32(0.0)
            if scoring:
                forward_tiles(dense, sizes, act, tile_ptr, rows, values, 0, 1, da, db, units, tile_logits)
                correct += score(tile_logits[:n], labels[t0:t0 + n], n_classes, predictions[c, t0:t0 + n])
            else:
                forward_tiles(dense, sizes, act, tile_ptr, rows, values, 0, 1, da, db, units, logits_out[c, t0:t0 + n])
        if scoring:
            item_correct[i] = correct
        i = claim(queue)


def _chunk(n_items, B, n_workers):
    """Images per item: the whole batch when genomes alone keep the workers busy, else fewer
    (any chunk gives the same results: every image is computed alone)."""
    per_genome = max(1, -(-4 * n_workers // max(1, n_items)))
    chunk = -(-B // per_genome)
    return max(TILE, -(-chunk // TILE) * TILE)


def _run(source, children, order, table, sizes, act, X, labels, n_classes, predictions, logits_out, n_workers):
    """Run ``conv_worker`` on ``n_workers`` threads; returns each genome's number of correct predictions
    (zeros unless scoring).  ``children``: the child description (source through base_keys) or None."""
    n_workers = numba.get_num_threads() if n_workers is None else max(1, int(n_workers))
    build = children is not None
    if not build:
        parents = np.arange(source.shape[0], dtype=np.int64)
        children = (source, parents, parents, 0, _NO_I64, _NO_U64, _NO_F64, _NO_F64, 0.0, _NO_U64, _NO_U64)
    source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys, base_keys = children
    order = np.ascontiguousarray(order, dtype=np.int64)
    B = X.shape[0]
    chunk = max(TILE, -(-B // TILE) * TILE) if build else _chunk(order.shape[0], B, n_workers)
    n_chunks = max(1, -(-B // chunk))
    item_correct = np.zeros(order.shape[0] * n_chunks, np.int64)
    if order.shape[0] and B:
        run_workers(conv_worker,
                    (source, parents, second, int(crossover), gene_bounds, crossover_keys, rates, base_rates,
                     float(scale), keys, base_keys, build, order, int(chunk), table, sizes, int(act), X, labels,
                     int(n_classes), predictions, item_correct, logits_out),
                    n_workers)
    counts = np.zeros(order.shape[0], np.int64)
    np.add.at(counts, np.repeat(order, n_chunks), item_correct)
    return counts


def conv_population_logits(W, table, sizes, act, X, out, n_workers=None):
    """Fill ``out: (P, B, n_out) float32`` with the logits of every ConvNet genome ``W: (P, n_params) float32``
    on the images ``X: (B, H * W * C) float32``; ``n_workers`` threads take (genome, chunk of images) items."""
    _run(W, None, np.arange(W.shape[0]), table, sizes, act, X, _NO_LABELS, 1, _NO_PREDICTIONS, out, n_workers)


def conv_population_predict(W, table, sizes, act, X, labels, n_classes, predictions, n_correct, n_workers=None):
    """Fused forward, argmax of the first ``n_classes`` logits (first on ties) and scoring of every genome.

    labels: ``(B,) int32``; predictions: ``(P, B) int32``; n_correct: ``(P,) int64``.
    """
    n_correct[:] = _run(W, None, np.arange(W.shape[0]), table, sizes, act, X, labels, n_classes, predictions,
                        _NO_LOGITS, n_workers)


def conv_brood_predict(source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                       base_keys, order, table, sizes, act, X, labels, n_classes, predictions, n_correct,
                       n_workers=None):
    """``conv_population_predict`` of children that exist only as parents plus random streams
    (as ``genreg.kernels.population.brood_predict``: each worker builds one child at a time in its own row)."""
    children = (source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                base_keys)
    n_correct[:] = _run(source, children, order, table, sizes, act, X, labels, n_classes, predictions, _NO_LOGITS,
                        n_workers)


@jit
def features_worker(w, table, act, X, chunk, out, queue):
    """Take chunks of ``chunk`` images from ``queue`` until none is left; write each image's flattened
    stage output into its row of ``out``."""
    wt, offsets, pad_buf, a, b, pix = conv_scratch(table, X.shape[1])
    transpose_filters(w, table, offsets, wt)
    values = np.zeros((out.shape[1], 1), np.float32)
    i = claim(queue)
    while i * chunk < X.shape[0]:
        for s in range(i * chunk, min((i + 1) * chunk, X.shape[0])):
            image_features(X[s], table, act, wt, offsets, pad_buf, pix, a, b, values, 0)
            for f in range(out.shape[1]):
                out[s, f] = values[f, 0]
        i = claim(queue)


def conv_features(w, table, act, X, out, n_workers=None):
    """Fill ``out: (B, n_flat) float32`` with the output of the stages of one ConvNet row ``w: (n_params,)
    float32`` (convolutions with the activation ``act``, pooling; flattened h, w, c) for the images
    ``X: (B, H * W * C) float32``, on ``n_workers`` threads (each image is computed alone: the same bits
    for any number of threads)."""
    n_workers = numba.get_num_threads() if n_workers is None else max(1, int(n_workers))
    if X.shape[0]:
        run_workers(features_worker, (w, table, int(act), X, 64, out), n_workers)
