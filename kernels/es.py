"""Evolution-strategy kernels: score perturbed members without building them (the noise is drawn by
``genreg.kernels.es_noise``; the update's sums are ``genreg.kernels.es_update``).

A generation's members are ``centre + sign * sigma * eps``: member k belongs to pair
``j = k // 2`` with ``sign = +1`` for even k and ``-1`` for odd k (antithetic sampling), or
to ``j = k`` with ``sign = +1`` without it.  ``eps`` is never stored: each tensor ``t`` of pair
``j`` is regenerated from its own counter-based stream ``stream_key(seed, generation, j,
NOISE + t)`` (``genreg.kernels.rng``; draw k is computed directly, so blocks of draws
vectorise).  Tensors are numbered as in the layout: ``2l`` is ``W_l: (n_l, n_{l+1})``,
``2l + 1`` is ``b_l: (n_{l+1},)`` (a ConvNet's filters and biases come first, each filter tensor
read as a ``(C_out, k k C_in)`` matrix: ``shapes`` in ``genreg.kernels.es_noise``; the
scoring kernel here takes MLPs only, a ConvNet's members are built by ``build_members``).

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
from .es_noise import full_member, lowrank_member, lowrank_noise
from .forward import forward_tiles, padded_width, scratch, tile_layer
from .simd import TILE
from .workqueue import claim, run_workers

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
def add_signed(term, sign, n_out, out):
    """``out[:, :n_out] += sign * term[:, :n_out]`` for a tile."""
    for s in range(TILE):
        for o in range(n_out):
            out[s, o] += sign * term[s, o]


@jit
def score_tile(logits, n_valid, first, n_classes, labels, targets, exps):
    """(correct, summed loss) of the first ``n_valid`` samples of a tile (sample s is ``first + s``):
    softmax cross-entropy and argmax hits for labels, squared error averaged over outputs for targets.

    exps: ``(>= n_valid * (n_classes + 2),) float64`` work space.  The exponentials of all the
    tile's logits are one flat loop and the sums run across the samples (both vectorise), but each
    sample's argmax, sum and log take its classes in order: the same bits as a sample-by-sample loop.
    """
    correct, total = 0, 0.0
    if targets.shape[0] > 0:
        for s in range(n_valid):
            sample = first + s
            err = 0.0
            for o in range(targets.shape[1]):
                d = np.float64(logits[s, o]) - np.float64(targets[sample, o])
                err += d * d
            total += err / targets.shape[1]
        return correct, total
    n = n_valid * n_classes
    tops, sums = exps[n : n + n_valid], exps[n + n_valid : n + 2 * n_valid]
    for s in range(n_valid):
        best, top = 0, logits[s, 0]
        for c in range(1, n_classes):  # the first largest logit (a NaN never wins)
            better = logits[s, c] > top
            best = c if better else best
            top = logits[s, c] if better else top
        correct += best == labels[first + s]
        tops[s] = top
        for c in range(n_classes):
            exps[s * n_classes + c] = np.float64(logits[s, c]) - np.float64(top)
    for k in range(n):
        exps[k] = exp_nonpositive(exps[k])
    for s in range(n_valid):
        sums[s] = 0.0
    for c in range(n_classes):
        for s in range(n_valid):
            sums[s] += exps[s * n_classes + c]
    for s in range(n_valid):
        total += tops[s] + np.log(sums[s]) - np.float64(logits[s, labels[first + s]])
    return correct, total


@jit
def full_rank_pair(centre, sizes, shapes, act, sigma, seed, generation, j, sides, tile_ptr, rows, values, labels,
                   targets, n_classes, uniforms, tails, draws, row, logits, a, b, units, exps, correct, total):
    """Full rank: build each member of pair j in ``row``, run it whole, add its (correct, loss) to ``[side]``."""
    for side in range(sides):
        full_member(centre, seed, generation, j, shapes, 1.0 - 2.0 * side, sigma, uniforms, tails, draws, row)
        forward_tiles(row, sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, logits)
        c, e = score_tile(logits, logits.shape[0], 0, n_classes, labels, targets, exps)
        correct[side] += c
        total[side] += e


@jit
def joint_layers(centre, sizes, r):
    """The centre's layers l >= 1 with r zero columns after each: ``(joint, at)``, layer l's
    ``[W_l, 0]: (n_l, n_{l+1} + r)`` then ``[b_l, 0]`` at ``joint[at[l]:]`` (r = 0: empty).

    A pair's ``A_l: (n_l, r)`` is written into the zero columns, so that one ``tile_layer`` gives
    ``[b_l + h @ W_l, h @ A_l]``: each column's terms are added in the same order as in two
    separate products (the same bits), and ``h`` is read once.
    """
    L = sizes.shape[0] - 1
    at = np.zeros(L, np.int64)
    if r == 0:
        return np.zeros(0, np.float32), at
    n = 0
    for l in range(1, L):
        at[l] = n
        n += (sizes[l] + 1) * (sizes[l + 1] + r)
    joint = np.zeros(n, np.float32)
    offset = sizes[0] * sizes[1] + sizes[1]
    for l in range(1, L):
        n_in, n_out = sizes[l], sizes[l + 1]
        for i in range(n_in + 1):  # row n_in is the bias
            for o in range(n_out):
                joint[at[l] + i * (n_out + r) + o] = centre[offset + i * n_out + o]
        offset += n_in * n_out + n_out
    return joint, at


@jit
def lowrank_term(out, n_out, r, u):
    """``u[:, :r] = out[:, n_out : n_out + r]`` (a tile's ``h @ A_l`` from the joint product)."""
    for s in range(TILE):
        for q in range(r):
            u[s, q] = out[s, n_out + q]


@jit
def member_worker(centre, sizes, shapes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr, rows,
                  values, shared, labels, targets, n_classes, pair0, n_correct, loss, queue):
    """Take blocks of ``PAIR_BLOCK`` pairs (or single members) from ``queue``: member ``first + k``'s ``n_correct[k]``
    and mean ``loss[k]`` (first = 2 ``pair0`` with antithetic pairs, else ``pair0``; a member's result does
    not depend on which others are scored with it) (cross-entropy, or squared error when ``targets: (B, k)`` is not empty) on
    the batch (tiles; labels ``(B,) int32``).  An MLP only: sizes ``(L + 1,)`` its widths, shapes
    ``(L, 3)`` its ``(n_l, n_{l+1}, n_{l+1})`` (``genreg.kernels.es_noise``).

    rank >= 1: layer 0 is ``shared: (B, n_1)`` (= b_0 + X @ W_0 of the centre) plus the pair's
    low-rank term; ``X @ A_0`` is one ``tile_layer`` product for the whole block (the block's A_0
    side by side as one matrix), shared by both members of each pair.  rank 0: each member's row is
    built in a buffer of this worker and run whole.
    """
    L = sizes.shape[0] - 1
    r = max(rank, 1)
    a, b, units = scratch(sizes)
    if rank > 0:  # layer l >= 1 writes n_{l+1} + r columns (its output, then h @ A_l)
        out_width = a.shape[1]
        for l in range(1, L + 1):
            out_width = max(out_width, padded_width(sizes[l] + r))
        a, b = np.zeros((TILE, out_width), np.float32), np.zeros((TILE, out_width), np.float32)
    aT, bT = a.T, b.T
    n_samples = labels.shape[0] if targets.shape[0] == 0 else targets.shape[0]
    largest = 0
    for l in range(L):
        largest = max(largest, sizes[l] * sizes[l + 1])
    block = max(1, PAIR_COLUMNS // r)  # pairs per item
    work = max(n_noise, largest)
    uniforms, tails = np.empty(work, np.float64), np.empty(work, np.int64)
    noise = np.zeros((block, n_noise), np.float32)  # (the zero "bias" after each A stays zero)
    stacked = np.zeros((sizes[0] + 1) * block * r if rank > 0 else 0, np.float32)  # the block's A_0, then zeros
    draws = np.empty(largest if rank == 0 else 0, np.float32)
    n_tiles = tile_ptr.shape[0] - 1
    wide = max(a.shape[1], padded_width(block * r))
    u0s = np.zeros((n_tiles if rank > 0 else 0, TILE, wide), np.float32)  # each tile's X @ A_0 for the block
    u = np.zeros((TILE, wide), np.float32)  # a tile's h @ A_l (columns 0..rank-1 read)
    uT = u.T
    units = np.arange(max(wide, units.shape[0]))
    within = units % r  # row of Bt_0 that column p of u0 multiplies
    joint, joint_at = joint_layers(centre, sizes, r if rank > 0 else 0)
    first = np.empty((TILE, a.shape[1]), np.float32)  # e_0 + (X @ A_0) @ Bt_0 of a tile
    term = np.empty((TILE, a.shape[1]), np.float32)  # e_l + (h @ A_l) @ Bt_l of a tile
    exps = np.empty((n_samples if rank == 0 else TILE) * (sizes[L] + 2), np.float64)
    row = np.empty(centre.shape[0] if rank == 0 else 0, np.float32)
    logits = np.empty((n_samples if rank == 0 else 0, sizes[L]), np.float32)
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
                full_rank_pair(centre, sizes, shapes, act, sigma, seed, generation, pair0 + j0 + jj, sides, tile_ptr,
                               rows, values, labels, targets, n_classes, uniforms, tails, draws, row, logits, a, b, units, exps,
                               correct[jj], total[jj])
        else:
            width = nb * r
            for jj in range(nb):
                lowrank_noise(seed, generation, pair0 + j0 + jj, shapes, rank, sigma, noise[jj], offsets, uniforms,
                              tails)
                for i in range(sizes[0]):
                    for q in range(r):
                        stacked[i * width + jj * r + q] = noise[jj, offsets[0, 0] + i * r + q]
            for c in range(width):
                stacked[sizes[0] * width + c] = np.float32(0.0)
            for t in range(n_tiles):
                tile_layer(stacked, 0, sizes[0], width, rows, values, tile_ptr[t], tile_ptr[t + 1], u0s[t])
            for jj in range(nb):
                pair = noise[jj]
                for l in range(1, L):  # A_l of the pair beside the centre's W_l
                    n_in, n_out, at = sizes[l], sizes[l + 1], joint_at[l]
                    for i in range(n_in):
                        for q in range(r):
                            joint[at + i * (n_out + r) + n_out + q] = pair[offsets[l, 0] + i * r + q]
                for t in range(n_tiles):
                    n_valid = min(TILE, n_samples - t * TILE)
                    # e_0 + (X @ A_0) @ Bt_0, shared by both members of the pair
                    tile_layer(pair, offsets[0, 1], r, sizes[1], within, u0s[t].T, jj * r, jj * r + r, first)
                    for side in range(sides):
                        sign = np.float32(1.0 - 2.0 * side)
                        for s in range(TILE):
                            sample = t * TILE + min(s, n_valid - 1)  # padding samples repeat the last (never scored)
                            for o in range(sizes[1]):
                                a[s, o] = shared[sample, o] + sign * first[s, o]
                        for l in range(1, L):
                            n_in, n_out = sizes[l], sizes[l + 1]
                            # [b_l + h @ W_l, h @ A_l] in one product, then + sign (e_l + (h @ A_l) @ Bt_l)
                            if l % 2 == 1:
                                activate_inplace(a, n_in, act)
                                tile_layer(joint, joint_at[l], n_in, n_out + r, units, aT, 0, n_in, b)
                                lowrank_term(b, n_out, r, u)
                                tile_layer(pair, offsets[l, 1], r, n_out, units, uT, 0, r, term)
                                add_signed(term, sign, n_out, b)
                            else:
                                activate_inplace(b, n_in, act)
                                tile_layer(joint, joint_at[l], n_in, n_out + r, units, bT, 0, n_in, a)
                                lowrank_term(a, n_out, r, u)
                                tile_layer(pair, offsets[l, 1], r, n_out, units, uT, 0, r, term)
                                add_signed(term, sign, n_out, a)
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


def score_members(centre, sizes, shapes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr,
                  rows, values, shared, labels, targets, n_classes, n_correct, loss, n_workers=None, pair0=0):
    """Score ``n_correct.shape[0]`` members from pair ``pair0`` on a shared batch (see ``member_worker``);
    ``n_workers`` threads take pairs."""
    run_workers(member_worker, (centre, sizes, shapes, int(act), int(rank), sigma, int(seed), int(generation),
                                bool(antithetic), offsets, int(n_noise), tile_ptr, rows, values, shared, labels,
                                targets, int(n_classes), int(pair0), n_correct, loss),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def build_worker(centre, shapes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out, queue):
    """Take items from ``queue``: write member ``members[i]`` into ``out[i]`` (any row of tensor pairs ``shapes``,
    ``genreg.kernels.es_noise``: an MLP or a ConvNet)."""
    largest = 0
    for l in range(shapes.shape[0]):
        largest = max(largest, shapes[l, 0] * shapes[l, 1], shapes[l, 2])
    uniforms, tails = np.empty(max(n_noise, largest), np.float64), np.empty(max(n_noise, largest), np.int64)
    noise = np.zeros(n_noise, np.float32)
    draws = np.empty(largest, np.float32)
    i = claim(queue)
    while i < members.shape[0]:
        k = members[i]
        j = k // 2 if antithetic else k
        sign = -1.0 if antithetic and k % 2 == 1 else 1.0
        if rank == 0:
            full_member(centre, seed, generation, j, shapes, sign, sigma, uniforms, tails, draws, out[i])
        else:
            lowrank_noise(seed, generation, j, shapes, rank, sigma, noise, offsets, uniforms, tails)
            lowrank_member(centre, shapes, rank, sign, noise, offsets, out[i])
        i = claim(queue)


def build_members(centre, shapes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out,
                  n_workers=None):
    """``out[i]`` = the parameters of member ``members[i]``: ``(m, n_params) float32``."""
    run_workers(build_worker, (centre, shapes, int(rank), sigma, int(seed), int(generation), bool(antithetic), offsets,
                               int(n_noise), np.ascontiguousarray(members, dtype=np.int64), out),
                numba.get_num_threads() if n_workers is None else n_workers)
