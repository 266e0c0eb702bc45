"""Variation operators on rows of the population buffer: mutation and crossover.

One implementation each.  Every child (or mutated row) draws from its own
stream ``keys[i]`` (``genreg.kernels.rng``), so results are identical for any number
of threads.  No validation here: call through ``genreg.network.variation``.
"""

import numpy as np
from numba import prange

from ._config import jit, parallel_jit
from .rng import (draw_at, draw_state, exponentials_from_bits, in_normal_tail, next_normal, next_u64, normal_central,
                  normal_quantile, stream_key, uniform_open_from_bits)


#: Mutated entries drawn per block by ``mutate_row``.
DRAW_BLOCK = 32
#: Cap of a geometric gap (float64), far beyond any row: keeps the int conversion defined.
MAX_GAP = 2.0**62


@jit
def fill_draws(state, lam, scale, bits, scratch, exps, steps, noise):
    """Draw the next ``DRAW_BLOCK`` (step, noise) pairs of a stream without advancing it.

    Pair k uses draws 2k + 1 and 2k + 2 after ``state`` (a SplitMix64 state is a
    counter, so any draw can be computed directly): ``steps[k] = 1 + gap``, gap =
    floor(E / lam) (capped at 2**62, beyond any row length) with E ~ Exp(1)
    (``exponentials_from_bits``) and ``noise[k] = float32(scale *
    Z)``, Z = ``normal_quantile(p)`` of a uniform p on (0, 1).  The loops have no
    branches and no library calls, so they vectorise; the 5% of normals in a
    tail (``in_normal_tail``) are redone one by one at the end.  bits:
    ``(DRAW_BLOCK,) uint64``, scratch and exps: ``(DRAW_BLOCK,) float64`` are
    work space; steps: ``(DRAW_BLOCK,) int64``; noise: ``(DRAW_BLOCK,) float32``.
    """
    for k in range(DRAW_BLOCK):
        bits[k] = draw_at(state, 2 * k + 1)
    exponentials_from_bits(bits, scratch, exps)
    for k in range(DRAW_BLOCK):
        steps[k] = 1 + np.int64(min(np.floor(exps[k] / lam), MAX_GAP))
    for k in range(DRAW_BLOCK):
        scratch[k] = uniform_open_from_bits(draw_at(state, 2 * k + 2))
    for k in range(DRAW_BLOCK):
        noise[k] = np.float32(scale * normal_central(scratch[k]))
    n_tail = 0  # compact the tail indices into bits[:n_tail] without branching
    for k in range(DRAW_BLOCK):
        bits[n_tail] = k
        n_tail += in_normal_tail(scratch[k])
    for i in range(n_tail):
        k = bits[i]
        noise[k] = np.float32(scale * normal_quantile(scratch[k]))


@jit
def mutate_row(row, rate, scale, state):
    """Add N(0, scale^2) noise to each entry of ``row: (n,)`` independently with probability ``rate``.

    Positions are visited by geometric skips: the gap before the next mutated
    entry is floor(E / lam), E ~ Exp(1) (``exponentials_from_bits``) and
    lam = -log(1 - rate), which is Geometric(rate).  So the cost is O(rate * n),
    not n.  Each mutated entry then draws its noise, N(0, 1) by inverting a
    uniform (``normal_quantile``): two 64-bit draws per mutated entry, in that
    order.  The draws are computed ``DRAW_BLOCK`` entries at a time by
    ``fill_draws`` (vectorised); the values are exactly those of drawing them
    one at a time.  Returns the number of entries changed.
    """
    n = row.shape[0]
    if rate <= 0.0:
        return 0
    if rate >= 1.0:
        for pos in range(n):
            state, z = next_normal(state)
            row[pos] += np.float32(scale * z)
        return n
    lam = -np.log1p(-rate)
    bits = np.empty(DRAW_BLOCK, np.uint64)
    scratch = np.empty(DRAW_BLOCK, np.float64)
    exps = np.empty(DRAW_BLOCK, np.float64)
    steps = np.empty(DRAW_BLOCK, np.int64)
    noise = np.empty(DRAW_BLOCK, np.float32)
    count = 0
    pos = -1
    while True:
        fill_draws(state, lam, scale, bits, scratch, exps, steps, noise)
        for k in range(DRAW_BLOCK):
            pos += steps[k]
            if pos >= n:
                return count
            row[pos] += noise[k]
            count += 1
        state = draw_state(state, 2 * DRAW_BLOCK)


@parallel_jit
def mutate_rows(W, rows, rate, scale, keys, counts):
    """Mutate rows ``W[rows[i]]`` in place, row i drawing from stream ``keys[i]``.

    W: ``(P, n) float32``; rows: ``(m,) int64`` distinct; keys: ``(m,) uint64``;
    counts: ``(m,) int64`` receives the number of entries changed per row.
    """
    for i in prange(rows.shape[0]):
        counts[i] = mutate_row(W[rows[i]], rate, scale, keys[i])


@jit
def mask_crossover_row(a, b, key, child):
    """Uniform (element-wise mask) crossover of two rows: ``child[j] = a[j] if bit j else b[j]``.

    a, b, child: ``(n,) uint32`` (float32 rows' bits).  Bit j is bit ``j % 64`` of
    draw ``j // 64`` of stream ``key`` (1 = take a).  Each bit becomes an all-ones or
    all-zeros mask (``0 - bit``) and the entries are selected with integer masks: the
    loop has no branch (a coin-flip branch mispredicts half the time) and vectorises
    (variable shifts), and it copies every value, NaN included, bit for bit.
    """
    n = child.shape[0]
    full = n - n % 64
    state = key
    for base in range(0, full, 64):
        state, bits = next_u64(state)
        for half in range(2):  # 32-bit halves: the shifts and masks stay 32-bit lanes
            word = np.uint32((bits >> np.uint64(32 * half)) & np.uint64(0xFFFFFFFF))
            j = base + 32 * half
            for k in range(32):
                take_a = np.uint32(0) - ((word >> np.uint32(k)) & np.uint32(1))
                child[j + k] = (a[j + k] & take_a) | (b[j + k] & ~take_a)
    if full < n:
        state, bits = next_u64(state)
        for t in range(n - full):
            take_a = np.uint32(0) - np.uint32((bits >> np.uint64(t)) & np.uint64(1))
            child[full + t] = (a[full + t] & take_a) | (b[full + t] & ~take_a)


@parallel_jit
def mask_crossover(W, parent_a, parent_b, keys, out):
    """``mask_crossover_row`` of pairs: ``out[c]`` from ``W[parent_a[c]]``, ``W[parent_b[c]]``, stream ``keys[c]``.

    W: ``(P, n) uint32`` (the float32 buffer's bits); parent_a, parent_b, keys:
    ``(C,)``; out: ``(C, n) uint32``.
    """
    for c in prange(out.shape[0]):
        mask_crossover_row(W[parent_a[c]], W[parent_b[c]], keys[c], out[c])


@jit
def gene_crossover_row(a, b, gene_bounds, key, child):
    """Gene crossover of two rows: each gene (a contiguous segment) comes whole from one parent.

    gene_bounds: ``(G + 1,) int64`` segment starts (``gene_bounds[-1] == n``).  Gene g
    comes from ``a`` when bit ``g % 64`` of draw ``g // 64`` of stream ``key`` is 1, else from ``b``.
    """
    state = key
    bits = np.uint64(0)
    for g in range(gene_bounds.shape[0] - 1):
        if g % 64 == 0:
            state, bits = next_u64(state)
        src = a if (bits >> np.uint64(g % 64)) & np.uint64(1) else b
        for i in range(gene_bounds[g], gene_bounds[g + 1]):  # a loop: a slice copy compiles a shape-error path
            child[i] = src[i]


@parallel_jit
def gene_crossover(W, parent_a, parent_b, gene_bounds, keys, out):
    """``gene_crossover_row`` of pairs: ``out[c]`` from ``W[parent_a[c]]``, ``W[parent_b[c]]``, stream ``keys[c]``.

    W: ``(P, n) float32``; parent_a, parent_b, keys: ``(C,)``; out: ``(C, n)``.
    """
    for c in prange(out.shape[0]):
        gene_crossover_row(W[parent_a[c]], W[parent_b[c]], gene_bounds, keys[c], out[c])


#: Crossover codes of ``make_child``.
NO_CROSSOVER, MASK_CROSSOVER, GENE_CROSSOVER = 0, 1, 2


@jit
def make_child(W, a, b, crossover, gene_bounds, crossover_key, rate, base_rate, scale, key, base_key, row):
    """Write one child into ``row: (n,) float32``: parent row ``W[a]`` (``crossover`` = 0),
    or its crossover with ``W[b]`` (1: mask, 2: genes of ``gene_bounds``; stream
    ``crossover_key``); then child mutation (``rate``, stream ``key``) and base mutation
    (``base_rate``, stream ``base_key``), noise scale ``scale``.  Returns the mutations made.
    """
    if crossover == MASK_CROSSOVER:
        mask_crossover_row(W[a].view(np.uint32), W[b].view(np.uint32), crossover_key, row.view(np.uint32))
    elif crossover == GENE_CROSSOVER:
        gene_crossover_row(W[a], W[b], gene_bounds, crossover_key, row)
    else:
        src = W[a]
        for i in range(row.shape[0]):
            row[i] = src[i]
    return mutate_row(row, rate, scale, key) + mutate_row(row, base_rate, scale, base_key)


@jit
def stream_keys(seed, generation, genomes, purpose, keys):
    """``keys[i] = stream_key(seed, generation, genomes[i], purpose)`` for ``genomes: (m,) int64``."""
    for i in range(genomes.shape[0]):
        keys[i] = stream_key(seed, generation, genomes[i], purpose)
