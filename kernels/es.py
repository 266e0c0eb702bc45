"""Evolution-strategy kernels: score perturbed members without building them, and sum their noise.

A generation's members are ``centre + sign * sigma * eps``: member k belongs to pair
``j = k // 2`` with ``sign = +1`` for even k and ``-1`` for odd k (antithetic sampling), or
to ``j = k`` with ``sign = +1`` without it.  ``eps`` is never stored: each tensor ``t`` of pair
``j`` is regenerated from its own counter-based stream ``stream_key(seed, generation, j,
NOISE + t)`` (``genreg.kernels.rng``; draw k is computed directly, so blocks of draws
vectorise).  Tensors are numbered as in the layout: ``2l`` is ``W_l: (n_l, n_{l+1})``,
``2l + 1`` is ``b_l: (n_{l+1},)``.

- full rank (``rank == 0``): entry ``p`` (row-major) of tensor t is draw ``p + 1`` of its stream;
- rank r >= 1: ``eps(W_l) = A @ Bt / sqrt(r)`` with ``A: (n_l, r)`` draws ``1 .. n_l r`` and
  ``Bt: (r, n_{l+1})`` the ``r n_{l+1}`` draws after them (both row-major; EGGROLL's low-rank
  perturbation); biases are full rank.  Every entry of ``eps`` has variance 1 either way.

Normals are ``normal_quantile`` of the draws' uniforms (``genreg.kernels.rng``).  ``sigma`` is one
value per tensor (``(2L,)``) or, at full rank only, one per parameter (``(n_params,)``).
Scoring a pair at rank r costs the centre's first layer once per batch for every member
(``shared = b_0 + X @ W_0``, computed by the caller) plus, per sample and layer, ``r n_in``
for both members of the pair together and ``r n_out`` for each.  Every member is scored by
one thread in a fixed order and every gradient entry is summed by one thread over the pairs
in order, so results are bit-identical for any number of threads.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

from ._config import inline_jit, jit
from .activations import activate_inplace
from .forward import forward_tiles, padded_width, scratch, tile_layer
from .rng import draw_at, in_normal_tail, normal_central, normal_quantile, stream_key, uniform_open_from_bits
from .simd import TILE
from .workqueue import claim, run_workers

#: Purposes of the noise streams: tensor t of a pair draws from purpose NOISE + t.
NOISE = 64
#: Columns of the first layer's stacked low-rank factors a scoring item computes at once (pairs x rank).
PAIR_COLUMNS = 32

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@intrinsic
def _float64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits``."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@inline_jit
def exp_nonpositive(x):
    """exp(x) for float64 ``x <= 0`` without a library call, so that loops of it vectorise.

    x = k ln 2 + r with |r| <= ln 2 / 2 (ln 2 in two parts); exp(r) by its Taylor series to
    degree 12 (truncation below 2e-16 relative); 2**k from the exponent bits.  x below -708
    gives exp(-708) (about 3e-308).
    """
    x = -708.0 if x < -708.0 else x
    k = np.floor(x * _LOG2E + 0.5)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _float64_from_bits((np.int64(k) + 1023) << 52)


@jit
def fill_normals(key, first, n, scale, uniforms, tails, out, start):
    """``out[start + i] = float32(scale * z)``, z the normal of draw ``first + i + 1`` of stream ``key``, i < n.

    The loops have no branch and no library call, so they vectorise; the 5% of draws in a tail
    of the normal are redone one by one.  uniforms: ``(>= n,) float64``, tails: ``(>= n,) int64``
    work space; out: float32.
    """
    for i in range(n):
        uniforms[i] = uniform_open_from_bits(draw_at(key, first + i + 1))
    for i in range(n):
        out[start + i] = np.float32(scale * normal_central(uniforms[i]))
    n_tail = 0  # compact the tail indices without branching
    for i in range(n):
        tails[n_tail] = i
        n_tail += in_normal_tail(uniforms[i])
    for m in range(n_tail):
        i = tails[m]
        out[start + i] = np.float32(scale * normal_quantile(uniforms[i]))


@jit
def lowrank_noise(seed, generation, j, sizes, rank, sigma, noise, offsets, uniforms, tails):
    """Pair ``j``'s scaled factors: for layer l, ``A * sigma[2l] / sqrt(r)`` at ``offsets[l, 0]``,
    ``Bt`` at ``offsets[l, 1]`` and the bias noise ``* sigma[2l + 1]`` at ``offsets[l, 2]`` (no sign).

    The layout lets ``tile_layer`` read them as two small layers: ``A: (n_l, r)`` followed by r
    zeros (its bias, written by the caller, never here), and ``Bt: (r, n_{l+1})`` followed by e.
    """
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        key = stream_key(seed, generation, j, NOISE + 2 * l)
        fill_normals(key, 0, n_in * rank, sigma[2 * l] / np.sqrt(rank), uniforms, tails, noise, offsets[l, 0])
        fill_normals(key, n_in * rank, n_out * rank, 1.0, uniforms, tails, noise, offsets[l, 1])
        fill_normals(stream_key(seed, generation, j, NOISE + 2 * l + 1), 0, n_out, sigma[2 * l + 1], uniforms, tails,
                     noise, offsets[l, 2])


@jit
def full_member(centre, seed, generation, j, sizes, sign, sigma, uniforms, tails, draws, row):
    """Write member ``centre + sign * sigma * eps`` of pair ``j`` (full rank) into ``row``
    (``draws``: float32 work space as long as the largest tensor)."""
    offset, t = 0, 0
    for l in range(sizes.shape[0] - 1):
        for size in (sizes[l] * sizes[l + 1], sizes[l + 1]):
            fill_normals(stream_key(seed, generation, j, NOISE + t), 0, size, 1.0, uniforms, tails, draws, 0)
            per_parameter = sigma.shape[0] == centre.shape[0]
            for p in range(size):
                s = sigma[offset + p] if per_parameter else sigma[t]
                row[offset + p] = centre[offset + p] + np.float32(sign * s * np.float64(draws[p]))
            offset += size
            t += 1


@jit
def lowrank_member(centre, sizes, rank, sign, noise, offsets, row):
    """Write ``centre + sign * (A @ Bt, e)`` of the pair's factors in ``noise`` into ``row``."""
    offset = 0
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        oa, ob, oe = offsets[l, 0], offsets[l, 1], offsets[l, 2]
        for i in range(n_in):
            for o in range(n_out):
                d = np.float32(0.0)
                for q in range(rank):
                    d += noise[oa + i * rank + q] * noise[ob + q * n_out + o]
                row[offset + i * n_out + o] = centre[offset + i * n_out + o] + np.float32(sign) * d
        offset += n_in * n_out
        for o in range(n_out):
            row[offset + o] = centre[offset + o] + np.float32(sign) * noise[oe + o]
        offset += n_out


@jit
def add_signed(term, sign, n_out, out):
    """``out[:, :n_out] += sign * term[:, :n_out]`` for a tile."""
    for s in range(TILE):
        for o in range(n_out):
            out[s, o] += sign * term[s, o]


@jit
def score_tile(logits, n_valid, first, n_classes, labels, targets, exps):
    """(correct, summed loss) of the first ``n_valid`` samples of a tile (sample s is ``first + s``):
    softmax cross-entropy and argmax hits for labels, squared error averaged over outputs for targets."""
    correct, total = 0, 0.0
    for s in range(n_valid):
        sample = first + s
        if targets.shape[0] > 0:
            err = 0.0
            for o in range(targets.shape[1]):
                d = np.float64(logits[s, o]) - np.float64(targets[sample, o])
                err += d * d
            total += err / targets.shape[1]
            continue
        best, top = 0, logits[s, 0]
        for c in range(1, n_classes):
            better = logits[s, c] > top
            best = c if better else best
            top = logits[s, c] if better else top
        for c in range(n_classes):
            exps[c] = exp_nonpositive(np.float64(logits[s, c]) - np.float64(top))
        sum_exp = 0.0
        for c in range(n_classes):
            sum_exp += exps[c]
        total += np.float64(top) + np.log(sum_exp) - np.float64(logits[s, labels[sample]])
        correct += best == labels[sample]
    return correct, total


@jit
def full_rank_pair(centre, sizes, act, sigma, seed, generation, j, sides, tile_ptr, rows, values, labels, targets,
                   n_classes, uniforms, tails, draws, row, logits, a, b, units, exps, correct, total):
    """Full rank: build each member of pair j in ``row``, run it whole, add its (correct, loss) to ``[side]``."""
    for side in range(sides):
        full_member(centre, seed, generation, j, sizes, 1.0 - 2.0 * side, sigma, uniforms, tails, draws, row)
        forward_tiles(row, sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, logits)
        c, e = score_tile(logits, logits.shape[0], 0, n_classes, labels, targets, exps)
        correct[side] += c
        total[side] += e


@jit
def member_worker(centre, sizes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr, rows,
                  values, shared, labels, targets, n_classes, n_correct, loss, queue):
    """Take blocks of ``PAIR_BLOCK`` pairs (or single members) from ``queue``: member k's ``n_correct[k]``
    and mean ``loss[k]`` (cross-entropy, or squared error when ``targets: (B, k)`` is not empty) on
    the batch (tiles; labels ``(B,) int32``).

    rank >= 1: layer 0 is ``shared: (B, n_1)`` (= b_0 + X @ W_0 of the centre) plus the pair's
    low-rank term; ``X @ A_0`` is one ``tile_layer`` product for the whole block (the block's A_0
    side by side as one matrix), shared by both members of each pair.  rank 0: each member's row is
    built in a buffer of this worker and run whole.
    """
    a, b, units = scratch(sizes)
    aT, bT = a.T, b.T
    L = sizes.shape[0] - 1
    n_samples = labels.shape[0] if targets.shape[0] == 0 else targets.shape[0]
    largest = 0
    for l in range(L):
        largest = max(largest, sizes[l] * sizes[l + 1])
    r = max(rank, 1)
    block = max(1, PAIR_COLUMNS // r)  # pairs per item
    work = max(n_noise, largest)
    uniforms, tails = np.empty(work, np.float64), np.empty(work, np.int64)
    noise = np.zeros((block, n_noise), np.float32)  # (the zero "bias" after each A stays zero)
    stacked = np.zeros((sizes[0] + 1) * block * r if rank > 0 else 0, np.float32)  # the block's A_0, then zeros
    draws = np.empty(largest if rank == 0 else 0, np.float32)
    wide = max(a.shape[1], padded_width(block * r))
    u0 = np.zeros((TILE, wide), np.float32)  # a tile's X @ A_0 for the block
    u = np.zeros((TILE, wide), np.float32)  # a tile's h @ A_l (columns 0..rank-1 read)
    u0T, uT = u0.T, u.T
    units = np.arange(max(wide, units.shape[0]))
    within = units % r  # row of Bt_0 that column p of u0 multiplies
    first = np.empty((TILE, a.shape[1]), np.float32)  # e_0 + (X @ A_0) @ Bt_0 of a tile
    term = np.empty((TILE, a.shape[1]), np.float32)  # e_l + (h @ A_l) @ Bt_l of a tile
    exps = np.empty(sizes[L], np.float64)
    row = np.empty(centre.shape[0] if rank == 0 else 0, np.float32)
    logits = np.empty((n_samples if rank == 0 else 0, sizes[L]), np.float32)
    n_tiles = tile_ptr.shape[0] - 1
    n_members = n_correct.shape[0]
    sides = 2 if antithetic else 1
    n_pairs = (n_members + 1) // 2 if antithetic else n_members
    correct = np.zeros((block, 2), np.int64)
    total = np.zeros((block, 2), np.float64)
    item = claim(queue)
    while item * block < n_pairs:
        j0 = item * block
        nb = min(block, n_pairs - j0)
        correct[:] = 0
        total[:] = 0.0
        if rank == 0:
            for jj in range(nb):
                full_rank_pair(centre, sizes, act, sigma, seed, generation, j0 + jj, sides, tile_ptr, rows, values,
                               labels, targets, n_classes, uniforms, tails, draws, row, logits, a, b, units, exps,
                               correct[jj], total[jj])
        else:
            width = nb * r
            for jj in range(nb):
                lowrank_noise(seed, generation, j0 + jj, sizes, rank, sigma, noise[jj], offsets, uniforms, tails)
                for i in range(sizes[0]):
                    for q in range(r):
                        stacked[i * width + jj * r + q] = noise[jj, offsets[0, 0] + i * r + q]
            for c in range(width):
                stacked[sizes[0] * width + c] = np.float32(0.0)
            for t in range(n_tiles):
                tile_layer(stacked, 0, sizes[0], width, rows, values, tile_ptr[t], tile_ptr[t + 1], u0)
                n_valid = min(TILE, n_samples - t * TILE)
                for jj in range(nb):
                    pair = noise[jj]
                    # e_0 + (X @ A_0) @ Bt_0, shared by both members of the pair
                    tile_layer(pair, offsets[0, 1], r, sizes[1], within, u0T, jj * r, jj * r + r, first)
                    for side in range(sides):
                        sign = np.float32(1.0 - 2.0 * side)
                        for s in range(TILE):
                            sample = t * TILE + min(s, n_valid - 1)  # padding samples repeat the last (never scored)
                            for o in range(sizes[1]):
                                a[s, o] = shared[sample, o] + sign * first[s, o]
                        offset = sizes[0] * sizes[1] + sizes[1]
                        for l in range(1, L):
                            n_in, n_out = sizes[l], sizes[l + 1]
                            if l % 2 == 1:
                                activate_inplace(a, n_in, act)
                                tile_layer(centre, offset, n_in, n_out, units, aT, 0, n_in, b)
                                tile_layer(pair, offsets[l, 0], n_in, r, units, aT, 0, n_in, u)
                                tile_layer(pair, offsets[l, 1], r, n_out, units, uT, 0, r, term)
                                add_signed(term, sign, n_out, b)
                            else:
                                activate_inplace(b, n_in, act)
                                tile_layer(centre, offset, n_in, n_out, units, bT, 0, n_in, a)
                                tile_layer(pair, offsets[l, 0], n_in, r, units, bT, 0, n_in, u)
                                tile_layer(pair, offsets[l, 1], r, n_out, units, uT, 0, r, term)
                                add_signed(term, sign, n_out, a)
                            offset += n_in * n_out + n_out
                        c, e = score_tile(a if L % 2 == 1 else b, n_valid, t * TILE, n_classes, labels, targets, exps)
                        correct[jj, side] += c
                        total[jj, side] += e
        for jj in range(nb):
            for side in range(sides):
                k = sides * (j0 + jj) + side
                if k < n_members:
                    n_correct[k] = correct[jj, side]
                    loss[k] = total[jj, side] / n_samples
        item = claim(queue)


def score_members(centre, sizes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr, rows,
                  values, shared, labels, targets, n_classes, n_correct, loss, n_workers=None):
    """Score every member on a shared batch (see ``member_worker``); ``n_workers`` threads take pairs."""
    run_workers(member_worker, (centre, sizes, int(act), int(rank), sigma, int(seed), int(generation),
                                bool(antithetic), offsets, int(n_noise), tile_ptr, rows, values, shared, labels,
                                targets, int(n_classes), n_correct, loss),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def build_worker(centre, sizes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out, queue):
    """Take items from ``queue``: write member ``members[i]`` into ``out[i]``."""
    largest = 0
    for l in range(sizes.shape[0] - 1):
        largest = max(largest, sizes[l] * sizes[l + 1])
    uniforms, tails = np.empty(max(n_noise, largest), np.float64), np.empty(max(n_noise, largest), np.int64)
    noise = np.zeros(n_noise, np.float32)
    draws = np.empty(largest, np.float32)
    i = claim(queue)
    while i < members.shape[0]:
        k = members[i]
        j = k // 2 if antithetic else k
        sign = -1.0 if antithetic and k % 2 == 1 else 1.0
        if rank == 0:
            full_member(centre, seed, generation, j, sizes, sign, sigma, uniforms, tails, draws, out[i])
        else:
            lowrank_noise(seed, generation, j, sizes, rank, sigma, noise, offsets, uniforms, tails)
            lowrank_member(centre, sizes, rank, sign, noise, offsets, out[i])
        i = claim(queue)


def build_members(centre, sizes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out,
                  n_workers=None):
    """``out[i]`` = the parameters of member ``members[i]``: ``(m, n_params) float32``."""
    run_workers(build_worker, (centre, sizes, int(rank), sigma, int(seed), int(generation), bool(antithetic), offsets,
                               int(n_noise), np.ascontiguousarray(members, dtype=np.int64), out),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def gradient_worker(sizes, seed, generation, weights, square_weights, items, grad, square_grad, queue):
    """Take items ``(tensor, first, stop)`` from ``queue``: for entries ``first .. stop - 1`` of that
    tensor's full-rank noise, ``grad = sum_j weights[j] * eps_j`` and (if ``square_weights`` is not
    empty) ``square_grad = sum_j square_weights[j] * (eps_j ** 2 - 1)``, summed over pairs j in order
    in float64 (``grad``, ``square_grad``: ``(n_params,) float64``, indexed by parameter).  Low-rank
    weight matrices are summed as products of their factors instead (``noise_factors``)."""
    squares = square_weights.shape[0] > 0
    largest = 1
    for i in range(items.shape[0]):
        largest = max(largest, items[i, 2] - items[i, 1])
    uniforms, tails = np.empty(largest, np.float64), np.empty(largest, np.int64)
    draws = np.empty(largest, np.float32)
    i = claim(queue)
    while i < items.shape[0]:
        t, first, stop = items[i, 0], items[i, 1], items[i, 2]
        offset = 0
        for m in range(t):
            offset += sizes[m // 2] * sizes[m // 2 + 1] if m % 2 == 0 else sizes[m // 2 + 1]
        for j in range(weights.shape[0]):
            w = weights[j]
            w2 = square_weights[j] if squares else 0.0
            if w == 0.0 and w2 == 0.0:
                continue
            fill_normals(stream_key(seed, generation, j, NOISE + t), first, stop - first, 1.0, uniforms, tails, draws, 0)
            for p in range(stop - first):
                grad[offset + first + p] += w * np.float64(draws[p])
            if squares:
                for p in range(stop - first):
                    z = np.float64(draws[p])
                    square_grad[offset + first + p] += w2 * (z * z - 1.0)
        i = claim(queue)


def noise_gradient(sizes, seed, generation, weights, square_weights, items, grad, square_grad, n_workers=None):
    """The weighted sums of the pairs' full-rank noise (see ``gradient_worker``), over ``items: (m, 3) int64``."""
    run_workers(gradient_worker, (sizes, int(seed), int(generation), weights, square_weights, items, grad,
                                  square_grad),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def factor_worker(sizes, l, rank, seed, generation, first_pair, weights, square_weights, a_out, b_out, a2_out, b2_out,
                  queue):
    """Take pairs from ``queue``: the weighted factors of layer l's low-rank noise for ``noise_factors``.

    Pair ``j = first_pair + i`` fills rows ``i r .. i r + r - 1`` of ``a_out: (J r, n_l)`` with
    ``weights[j] * A_j.T / sqrt(r)`` and of ``b_out: (J r, n_{l+1})`` with ``Bt_j``, so that
    ``a_out.T @ b_out = sum_j weights[j] * eps_j``.  If ``a2_out`` is not empty, rows
    ``(i r + q) r + q'`` of ``a2_out: (J r^2, n_l)`` and ``b2_out: (J r^2, n_{l+1})`` hold
    ``square_weights[j] * A_q * A_q' / r`` and ``B_q * B_q'``, so that ``a2_out.T @ b2_out =
    sum_j square_weights[j] * eps_j**2``.
    """
    n_in, n_out = sizes[l], sizes[l + 1]
    uniforms, tails = np.empty((n_in + n_out) * rank, np.float64), np.empty((n_in + n_out) * rank, np.int64)
    factors = np.empty((n_in + n_out) * rank, np.float32)
    squares = a2_out.shape[0] > 0
    i = claim(queue)
    while i < a_out.shape[0] // rank:
        j = first_pair + i
        fill_normals(stream_key(seed, generation, j, NOISE + 2 * l), 0, (n_in + n_out) * rank, 1.0, uniforms, tails,
                     factors, 0)
        w = np.float32(weights[j] / np.sqrt(rank))
        for q in range(rank):
            for k in range(n_in):
                a_out[i * rank + q, k] = w * factors[k * rank + q]
            for o in range(n_out):
                b_out[i * rank + q, o] = factors[n_in * rank + q * n_out + o]
        if squares:
            w2 = np.float32(square_weights[j] / rank)
            for q in range(rank):
                for q2 in range(rank):
                    row = (i * rank + q) * rank + q2
                    for k in range(n_in):
                        a2_out[row, k] = w2 * factors[k * rank + q] * factors[k * rank + q2]
                    for o in range(n_out):
                        b2_out[row, o] = factors[n_in * rank + q * n_out + o] * factors[n_in * rank + q2 * n_out + o]
        i = claim(queue)


def noise_factors(sizes, l, rank, seed, generation, first_pair, weights, square_weights, a_out, b_out, a2_out, b2_out,
                  n_workers=None):
    """Fill the weighted low-rank factors of pairs ``first_pair ..`` (see ``factor_worker``)."""
    run_workers(factor_worker, (sizes, int(l), int(rank), int(seed), int(generation), int(first_pair), weights,
                                square_weights, a_out, b_out, a2_out, b2_out),
                numba.get_num_threads() if n_workers is None else n_workers)
