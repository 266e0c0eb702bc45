"""The population kernels: build children, run forward passes, score them; one worker for all.

Every entry point here (``make_children``, ``population_logits``,
``population_predict``, ``brood_predict``, ``genome_logits``) runs the same
serial worker ``population_worker`` on ``n_workers`` threads that take items
from one queue (``genreg.kernels.workqueue``).  A top-level Numba kernel costs
seconds to compile on a cold cache, its callees included (LLVM optimises the
whole call tree again in each), so one worker instead of five keeps a first run
short.  Each output element is computed by exactly one thread in a fixed order,
so results are bit-identical for any number of threads.

A population is described as children (``genreg.kernels.variation.make_child``):
``source`` rows and, per child c, parents ``parents[c]``, ``second[c]``, the
crossover code and stream, the child and base mutation rates and streams.  A
plain population reads ``source[parents[c]]`` as it is (``build`` false).
"""

import numba
import numpy as np

from ._config import jit
from .forward import forward_tiles, scratch, score
from .variation import make_child
from .workqueue import claim, run_workers


@jit
def population_worker(source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                      base_keys, build, order, chunk, sizes, act, tile_ptr, rows, values, labels, n_classes,
                      predictions, n_correct, logits_out, built, counts, queue):
    """Take items from ``queue`` until none is left.

    If ``built`` is not empty: item i builds child i into ``built[i]`` (``(C, n) float32``) and
    sets ``counts[i]`` to the mutations made; nothing else.  Otherwise item i is genome
    ``c = order[i // n_chunks]`` on tiles ``k * chunk .. (k + 1) * chunk - 1``, k = i % n_chunks
    (n_chunks = ceil(n_tiles / chunk), at least 1): the child ``c`` (if ``build``, made in a
    row of this worker's own) or ``source[parents[c]]``; its logits go to ``logits_out[c]``
    (``(C, B, n_out)``) or, if ``logits_out`` is empty, to a buffer of this worker's that
    ``score`` turns into ``predictions[c]`` and ``n_correct[c]`` (chunk then covers all tiles).
    """
    if built.shape[0] > 0:
        i = claim(queue)
        while i < built.shape[0]:
            counts[i] = make_child(source, parents[i], second[i], crossover, gene_bounds, crossover_keys[i], rates[i],
                                   base_rates[i], scale, keys[i], base_keys[i], built[i])
            i = claim(queue)
        return
    a, b, units = scratch(sizes)
    n_tiles = tile_ptr.shape[0] - 1
    n_chunks = max(1, (n_tiles + chunk - 1) // chunk)
    scoring = logits_out.shape[0] == 0
    logits = np.empty((labels.shape[0] if scoring else 0, sizes[-1]), np.float32)
    row = np.empty(source.shape[1] if build else 0, np.float32)
    i = claim(queue)
    while i < order.shape[0] * n_chunks:
        c = order[i // n_chunks]
        t = (i % n_chunks) * chunk
        if build:
            make_child(source, parents[c], second[c], crossover, gene_bounds, crossover_keys[c], rates[c],
                       base_rates[c], scale, keys[c], base_keys[c], row)
            w = row
        else:
            w = source[parents[c]]
        out = logits if scoring else logits_out[c]
        forward_tiles(w, sizes, act, tile_ptr, rows, values, t, min(t + chunk, n_tiles), a, b, units, out)
        if scoring:
            n_correct[c] = score(logits, labels, n_classes, predictions[c])
        i = claim(queue)


_NO_I64 = np.zeros(0, np.int64)
_NO_U64 = np.zeros(0, np.uint64)
_NO_F64 = np.zeros(0, np.float64)
_NO_LABELS = np.zeros(0, np.int32)
_NO_PREDICTIONS = np.zeros((0, 0), np.int32)
_NO_LOGITS = np.zeros((0, 0, 0), np.float32)
_NO_ROWS = np.zeros((0, 0), np.float32)
_NO_SIZES = np.zeros(2, np.int64)
_NO_TILES = (np.zeros(1, np.int64), np.zeros(0, np.int32), np.zeros((0, 1), np.float32))
_ONE = np.zeros(1, np.int64)


def _run(source, children, order, chunk, sizes, act, tiles, labels, n_classes, predictions, n_correct, logits_out,
         built, counts, n_workers):
    """Run ``population_worker`` on ``n_workers`` threads; ``children``: the child description
    (source through base_keys), or None to read ``source[order[i]]`` as it is."""
    build = children is not None
    if not build:
        parents = np.arange(source.shape[0], dtype=np.int64)
        children = (source, parents, parents, 0, _NO_I64, _NO_U64, _NO_F64, _NO_F64, 0.0, _NO_U64, _NO_U64)
    source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys, base_keys = children
    run_workers(population_worker,
                (source, parents, second, int(crossover), gene_bounds, crossover_keys, rates, base_rates, float(scale),
                 keys, base_keys, build, np.ascontiguousarray(order, dtype=np.int64), max(1, int(chunk)), sizes,
                 int(act), *tiles, labels, int(n_classes), predictions, n_correct, logits_out, built, counts),
                numba.get_num_threads() if n_workers is None else n_workers)


def make_children(W, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                  base_keys, out, counts, n_workers=None):
    """Children in one pass over memory: ``out[c]`` = ``make_child`` of parents ``W[parents[c]]``
    and ``W[second[c]]`` (crossover code ``crossover``, stream ``crossover_keys[c]``), child
    mutation ``rates[c]`` (stream ``keys[c]``) and base mutation ``base_rates[c]`` (stream
    ``base_keys[c]``) while the row is still in cache.

    W: ``(P, n) float32``; parents, second, crossover_keys, keys, base_keys, counts: ``(C,)``;
    rates, base_rates: ``(C,) float64`` (0 = none); gene_bounds: ``(G + 1,) int64`` (read for
    gene crossover only); out: ``(C, n) float32``; ``counts[c]`` receives the number of
    mutations made (an entry hit by both counts twice).  ``n_workers`` threads (default:
    ``numba.get_num_threads()``) take children from a queue.
    """
    if out.shape[0] == 0:
        return
    children = (W, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys, base_keys)
    _run(W, children, _NO_I64, 1, _NO_SIZES, 0, _NO_TILES, _NO_LABELS, 1, _NO_PREDICTIONS, _NO_I64, _NO_LOGITS,
         out, counts, n_workers)


def population_logits(W, sizes, act, tile_ptr, rows, values, out, n_workers):
    """Fill ``out: (P, B, n_out) float32`` with the logits of every genome on every sample.

    W: ``(P, n_params) float32``; the batch (B = ``out.shape[1]``) is shared by all
    genomes; ``n_workers`` threads take genomes from a queue.
    """
    _run(W, None, np.arange(W.shape[0]), tile_ptr.shape[0], sizes, act, (tile_ptr, rows, values), _NO_LABELS, 1,
         _NO_PREDICTIONS, _NO_I64, out, _NO_ROWS, _NO_I64, n_workers)


def population_predict(W, sizes, act, tile_ptr, rows, values, labels, n_classes, predictions, n_correct, n_workers):
    """Fused forward + argmax + scoring for every genome on a shared batch.

    labels: ``(B,) int32``; predictions: ``(P, B) int32`` — argmax of the first
    ``n_classes`` logits; n_correct: ``(P,) int64`` — predictions equal to labels;
    ``n_workers`` threads take genomes from a queue.
    """
    _run(W, None, np.arange(W.shape[0]), tile_ptr.shape[0], sizes, act, (tile_ptr, rows, values), labels, n_classes,
         predictions, n_correct, _NO_LOGITS, _NO_ROWS, _NO_I64, n_workers)


def brood_predict(source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                  base_keys, order, sizes, act, tile_ptr, rows, values, labels, n_classes, predictions, n_correct,
                  n_workers):
    """``population_predict`` for children that exist only as parents plus random streams.

    Child c is the row ``make_children`` would build: ``source[parents[c]]``, or its
    crossover with ``source[second[c]]``, then child and base mutation.  Each worker builds
    one child at a time in its own row (cache-resident; the parents' rows mostly too, as
    children are taken in ``order``: grouped by first parent), scores it and reuses the row,
    so nothing of size ``(C, n)`` is written.  source: ``(R, n) float32``; parents, second,
    crossover_keys, keys, base_keys, order: ``(C,)``; rates, base_rates: ``(C,) float64``;
    the rest as in ``population_predict`` (predictions: ``(C, B)``, n_correct: ``(C,)``).
    """
    children = (source, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                base_keys)
    _run(source, children, order, tile_ptr.shape[0], sizes, act, (tile_ptr, rows, values), labels, n_classes,
         predictions, n_correct, _NO_LOGITS, _NO_ROWS, _NO_I64, n_workers)


def genome_logits(w, sizes, act, tile_ptr, rows, values, out, n_workers):
    """Fill ``out: (N, n_out) float32`` with the logits of one genome ``w: (n_params,) float32`` on N samples.

    ``n_workers`` threads take tiles (one per item) from a queue.
    """
    _run(w[None, :], None, _ONE, 1, sizes, act, (tile_ptr, rows, values), _NO_LABELS, 1, _NO_PREDICTIONS, _NO_I64,
         out[None], _NO_ROWS, _NO_I64, n_workers)
