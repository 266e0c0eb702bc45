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

Convolution: the input is copied into a zero-padded buffer, ``(H + 2p, W + 2p, C_in)``, so
no window needs a bounds check; then for each output row, blocks of ``NPIX`` output pixels
(and a remainder block) times all output channels are computed by ``conv_block``, whose
accumulators stay in registers: for every filter row ``kh``, the ``k * C_in`` inputs of a
window row are contiguous in the padded image, so the block reads them as a strided view
``x[q, s]`` (q the tap, s the pixel).  Every output element starts at its bias and adds its
``k * k * C_in`` terms in the order (kh, kw, c_in) ascending, one IEEE fused multiply-add
each, whatever the block shape, the chunk or the thread: results are bit-identical for any
number of threads.  Then the hidden activation (``activate_inplace``), then pooling
(max: a later entry wins only if greater; average: the window's sum in (kh, kw) order
divided by k * k).
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import jit
from .activations import activate_inplace
from .forward import forward_tiles, scratch, score
from .simd import TILE
from .variation import make_child
from .workqueue import claim, run_workers

CONV, MAX_POOL, AVG_POOL = 0, 1, 2  # genreg.network.conv

#: Output pixels per register block of ``conv_block``.
NPIX = 8


@intrinsic
def fma32(typingctx, a, b, c):
    """IEEE fused multiply-add of three float32: ``a * b + c`` rounded once."""
    sig = types.float32(types.float32, types.float32, types.float32)

    def codegen(context, builder, signature, args):
        f32 = ir.FloatType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(f32, [f32] * 3), "llvm.fma.f32")
        return builder.call(fn, list(args))

    return sig, codegen


@jit
def conv_block(wt, w_off, co, x, x0, x_kh, k, run, x_pix, npix, out, o0):
    """Output pixels ``p < npix`` times channels ``j < co`` of one convolution:
    ``out[o0 + p * co + j] = bias[j] + sum over kh < k, q < run of x[x0 + kh * x_kh + q + p * x_pix] * Wt[kh * run + q, j]``,
    terms in that order, one fma each; ``Wt: (k * run, co)`` at ``wt[w_off:]``, the bias right after it."""
    nb = w_off + k * run * co
    for p in range(npix):
        for j in range(co):
            out[o0 + p * co + j] = wt[nb + j]
    for kh in range(k):
        for q in range(run):
            wr = w_off + (kh * run + q) * co
            for p in range(npix):
                v = x[x0 + kh * x_kh + q + p * x_pix]
                for j in range(co):
                    out[o0 + p * co + j] = fma32(v, wt[wr + j], out[o0 + p * co + j])


@jit
def conv_scratch(table):
    """Per-worker buffers: the transposed filters ``wt`` (every convolution's ``(k * k * C_in + 1) * C_out``
    floats, plus 32 spare), each convolution's offset in ``wt`` (``(n_stages,) int64``), the padded input
    ``pad_buf`` and two activation buffers ``a, b: (1, n)`` (the largest stage input or output)."""
    n_w, n_pad, n_act = 0, 1, 1
    offsets = np.zeros(table.shape[0], np.int64)
    for st in range(table.shape[0]):
        k, pad, h, w, c = table[st, 1], table[st, 3], table[st, 4], table[st, 5], table[st, 6]
        n_act = max(n_act, table[st, 7] * table[st, 8] * table[st, 9], h * w * c)
        if table[st, 0] == CONV:
            offsets[st] = n_w
            n_w += (k * k * c + 1) * table[st, 9]
            n_pad = max(n_pad, (h + 2 * pad) * (w + 2 * pad) * c)
    return (np.zeros(n_w + 32, np.float32), offsets, np.zeros(n_pad, np.float32),
            np.zeros((1, n_act), np.float32), np.zeros((1, n_act), np.float32))


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
def convolve(x, table, st, wt, offset, pad_buf, out):
    """Stage ``st`` (a convolution, no activation) of one image: ``out[:h_out * w_out * c_out]`` (HWC)
    from ``x`` (HWC); the input is first copied into ``pad_buf`` with its zero border."""
    k, stride, pad = table[st, 1], table[st, 2], table[st, 3]
    h, w, c = table[st, 4], table[st, 5], table[st, 6]
    ho, wo, co = table[st, 7], table[st, 8], table[st, 9]
    wp = w + 2 * pad
    if pad > 0:
        for i in range((h + 2 * pad) * wp * c):
            pad_buf[i] = np.float32(0.0)
    for i in range(h):
        for j in range(w * c):
            pad_buf[((i + pad) * wp + pad) * c + j] = x[i * w * c + j]
    run = k * c
    for oh in range(ho):
        x_row = oh * stride * wp * c
        ow = 0
        while ow + NPIX <= wo:
            conv_block(wt, offset, co, pad_buf, x_row + ow * stride * c, wp * c, k, run, stride * c, NPIX,
                       out, (oh * wo + ow) * co)
            ow += NPIX
        if ow < wo:
            conv_block(wt, offset, co, pad_buf, x_row + ow * stride * c, wp * c, k, run, stride * c, wo - ow,
                       out, (oh * wo + ow) * co)


@jit
def pool(x, table, st, out):
    """Stage ``st`` (a pooling of stride k, remainder dropped) of one image: ``out`` (HWC) from ``x`` (HWC)."""
    k, w, c = table[st, 1], table[st, 5], table[st, 6]
    ho, wo = table[st, 7], table[st, 8]
    average = table[st, 0] == AVG_POOL
    area = np.float32(k * k)
    for oh in range(ho):
        for ow in range(wo):
            o = (oh * wo + ow) * c
            for kh in range(k):
                for kw in range(k):
                    i = ((oh * k + kh) * w + ow * k + kw) * c
                    if kh == 0 and kw == 0:
                        for j in range(c):
                            out[o + j] = x[i + j]
                    elif average:
                        for j in range(c):
                            out[o + j] += x[i + j]
                    else:
                        for j in range(c):
                            out[o + j] = x[i + j] if x[i + j] > out[o + j] else out[o + j]
            if average:
                for j in range(c):
                    out[o + j] = out[o + j] / area


@jit
def image_features(x, table, act, wt, offsets, pad_buf, a, b, values, s):
    """Run every stage on one image ``x: (H * W * C,)`` and write its flat output into ``values[:, s]``
    (``a, b: (1, n)`` scratch)."""
    cur, nxt = a, b
    for i in range(x.shape[0]):
        cur[0, i] = x[i]
    for st in range(table.shape[0]):
        if table[st, 0] == CONV:
            convolve(cur[0], table, st, wt, offsets[st], pad_buf, nxt[0])
            activate_inplace(nxt, table[st, 7] * table[st, 8] * table[st, 9], act)
        else:
            pool(cur[0], table, st, nxt[0])
        cur, nxt = nxt, cur
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
    wt, offsets, pad_buf, a, b = conv_scratch(table)
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
                    image_features(X[t0 + s], table, act, wt, offsets, pad_buf, a, b, values, s)
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


_NO_I64 = np.zeros(0, np.int64)
_NO_U64 = np.zeros(0, np.uint64)
_NO_F64 = np.zeros(0, np.float64)
_NO_LABELS = np.zeros(0, np.int32)
_NO_PREDICTIONS = np.zeros((0, 0), np.int32)
_NO_LOGITS = np.zeros((0, 0, 0), np.float32)


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
