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

from ._config import jit
from .activations import activate_inplace
from .exp import exp_nonpositive_inplace
from .logarithm import log_inplace
from .es_noise import full_member, lowrank_member, lowrank_noise
from .forward import forward_tiles, lanes_layer, padded_width, scratch, tile_layer
from .simd import LANES, TILE
from .workqueue import claim, run_workers

#: Columns of the first layer's stacked low-rank factors a scoring item computes at once (pairs x rank).
PAIR_COLUMNS = 32


@jit
def add_signed(out, sign, term, n):
    """``out[:n] += sign * term[:n]`` (float32, 1-D)."""
    for k in range(n):
        out[k] += sign * term[k]


@jit
def place_factor(factor, at, n_in, r, out, out_at, stride):
    """``out[out_at + i * stride + q] = factor[at + i * r + q]`` for i < n_in, q < r: a pair's ``A: (n_in, r)``
    (row-major in its noise) into r columns of a wider row-major matrix of row stride ``stride``.  A scalar
    copy, column by column, with unsigned indices (no negative-index fix-ups)."""
    for q in range(r):
        for i in range(n_in):
            out[np.uint64(out_at + i * stride + q)] = factor[np.uint64(at + i * r + q)]


@jit
def score_batch(logits, n_samples, n_classes, labels, targets, work, best, group):
    """(correct, summed loss) of a member on a batch, the samples along the columns:
    ``logits: (>= n_outputs, B')`` (B' >= n_samples; columns past n_samples are ignored).  Softmax
    cross-entropy and argmax hits (the first largest logit; a NaN never wins) for ``labels: (B,)``,
    squared error averaged over outputs for ``targets: (B, k)`` when not empty.  Each sample's loss is
    ``top + log(sum_c exp(z_c - top)) - z_label`` in float64 (``exp.exp_nonpositive``, classes in
    order; the log has glibc's bits, ``logarithm.log_inplace``); the losses are added sample by sample
    within groups of ``group`` samples, and the groups' sums in order (``TILE`` at rank r >= 1, the
    whole batch at rank 0: what each path has always done).

    work: ``(>= (n_classes + 5) B',) float64``, best: ``(B',) int64`` work space.  Argmax, shift,
    exponentials and sums are loops across the samples (they vectorise); each sample still takes its
    classes in order.
    """
    width = logits.shape[1]
    correct, total = 0, 0.0
    if targets.shape[0] > 0:
        for t in range(0, n_samples, group):
            e = 0.0
            for s in range(t, min(n_samples, t + group)):
                err = 0.0
                for o in range(targets.shape[1]):
                    d = np.float64(logits[o, s]) - np.float64(targets[s, o])
                    err += d * d
                e += err / targets.shape[1]
            total += e
        return correct, total
    n = n_classes * width
    tops, sums, losses = work[n : n + width], work[n + width : n + 2 * width], work[n + 2 * width : n + 3 * width]
    for s in range(width):
        best[s] = 0
        tops[s] = logits[0, s]  # a float32 value
    for c in range(1, n_classes):  # the first largest logit (a NaN never wins)
        for s in range(width):
            better = np.float64(logits[c, s]) > tops[s]
            best[s] = c if better else best[s]
            tops[s] = np.float64(logits[c, s]) if better else tops[s]
    for s in range(n_samples):
        correct += best[s] == labels[s]
    for c in range(n_classes):
        for s in range(width):
            work[c * width + s] = np.float64(logits[c, s]) - tops[s]
    exp_nonpositive_inplace(work, n)
    for s in range(width):
        sums[s] = 0.0
    for c in range(n_classes):
        for s in range(width):
            sums[s] += work[c * width + s]
    log_inplace(sums, n_samples, work[n + 3 * width : n + 5 * width].reshape((2, width)), best)  # best: free now
    for s in range(n_samples):
        losses[s] = tops[s] + sums[s] - np.float64(logits[labels[s], s])
    for t in range(0, n_samples, group):
        e = 0.0
        for s in range(t, min(n_samples, t + group)):
            e += losses[s]
        total += e
    return correct, total


@jit
def full_rank_pair(centre, sizes, shapes, act, sigma, seed, generation, j, sides, tile_ptr, rows, values, labels,
                   targets, n_classes, uniforms, tails, draws, row, logits, a, b, units, exps, columns, best, correct,
                   total):
    """Full rank: build each member of pair j in ``row``, run it whole, add its (correct, loss) to ``[side]``
    (``logits: (B, n_out)``, their transpose ``columns: (n_out, B)``, ``exps``, ``best``: ``score_batch``'s
    work space)."""
    for side in range(sides):
        full_member(centre, seed, generation, j, shapes, 1.0 - 2.0 * side, sigma, uniforms, tails, draws, row)
        forward_tiles(row, sizes, act, tile_ptr, rows, values, 0, tile_ptr.shape[0] - 1, a, b, units, logits)
        n_samples = logits.shape[0]
        for o in range(logits.shape[1]):
            for s in range(n_samples):
                columns[o, s] = logits[s, o]
        c, e = score_batch(columns, n_samples, n_classes, labels, targets, exps, best, n_samples)
        correct[side] += c
        total[side] += e


@jit
def joint_layers(centre, sizes, r):
    """The centre's layers l >= 1 with r zero columns after each: ``(joint, at)``, layer l's
    ``[W_l, 0]: (n_l, n_{l+1} + r)`` then ``[b_l, 0]`` at ``joint[at[l]:]`` (r = 0: empty).

    A pair's ``A_l: (n_l, r)`` is written into the zero columns, so that one ``lanes_layer`` gives
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
def full_rank_worker(centre, sizes, shapes, act, sigma, seed, generation, antithetic, tile_ptr, rows, values, labels,
                     targets, n_classes, pair0, n_correct, loss, queue):
    """One worker of ``score_members`` at rank 0: take pairs (or single members) from ``queue``, build each
    member's row in a buffer of this worker and run it whole (``full_rank_pair``).

    Writes member ``first + k``'s ``n_correct[k]`` and mean ``loss[k]`` (first = 2 ``pair0`` with antithetic
    pairs, else ``pair0``; a member's result does not depend on which others are scored with it):
    cross-entropy on labels ``(B,) int32``, or squared error when ``targets: (B, k)`` is not empty.  An
    MLP only: sizes ``(L + 1,)`` its widths, shapes ``(L, 3)`` its ``(n_l, n_{l+1}, n_{l+1})``
    (``genreg.kernels.es_noise``); the batch arrives as sparse tiles.
    """
    a, b, units = scratch(sizes)
    n_samples = labels.shape[0] if targets.shape[0] == 0 else targets.shape[0]
    largest = 0
    for l in range(sizes.shape[0] - 1):
        largest = max(largest, sizes[l] * sizes[l + 1], sizes[l + 1])
    uniforms, tails = np.empty(largest, np.float64), np.empty(largest, np.int64)
    draws = np.empty(largest, np.float32)
    exps = np.empty(n_samples * (sizes[-1] + 5), np.float64)
    row = np.empty(centre.shape[0], np.float32)
    logits = np.empty((n_samples, sizes[-1]), np.float32)
    columns = np.empty((sizes[-1], n_samples), np.float32)
    best = np.empty(n_samples, np.int64)
    n_members = n_correct.shape[0]
    sides = 2 if antithetic else 1
    n_pairs = (n_members + 1) // 2 if antithetic else n_members
    correct, total = np.zeros(2, np.int64), np.zeros(2, np.float64)
    j = claim(queue)
    while j < n_pairs:
        correct[:] = 0
        total[:] = 0.0
        full_rank_pair(centre, sizes, shapes, act, sigma, seed, generation, pair0 + j, sides, tile_ptr, rows, values,
                       labels, targets, n_classes, uniforms, tails, draws, row, logits, a, b, units, exps, columns, best,
                       correct, total)
        for side in range(sides):
            k = sides * j + side
            if k < n_members:
                n_correct[k] = correct[side]
                loss[k] = total[side] / n_samples
        j = claim(queue)


@jit
def lowrank_worker(centre, sizes, shapes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr,
                   rows, values, shared, labels, targets, n_classes, pair0, n_correct, loss, queue):
    """One worker of ``score_members`` at rank r >= 1: take blocks of ``PAIR_COLUMNS // r`` pairs from
    ``queue``; results as in ``full_rank_worker``.

    Layer 0 of a member is ``shared: (B, n_1)`` (= b_0 + X @ W_0 of the centre) plus the pair's
    low-rank term: ``X @ A_0`` is one ``tile_layer`` product over the sparse tiles for the whole block
    (the block's A_0 side by side as one matrix), shared by both members of each pair.  From there a
    member's activations are ``(units, B')`` arrays, the batch padded to ``B'``, a multiple of
    ``LANES`` (padding repeats the last sample and is never scored), and each product runs ``LANES``
    samples at a time along the vector lanes (``lanes_layer``): ``e_0 + (X @ A_0) @ Bt_0`` once for the
    pair, then for each member its hidden units, each later layer's ``[b_l + h @ W_l, h @ A_l]`` as one
    product (``joint_layers``) plus ``sign (e_l + (h @ A_l) @ Bt_l)``, and ``score_batch``.  Every
    element gets the same terms in the same order as in a sample-by-sample evaluation, so the same bits.
    """
    L = sizes.shape[0] - 1
    r = rank
    n1 = sizes[1]
    n_samples = labels.shape[0] if targets.shape[0] == 0 else targets.shape[0]
    n_tiles = tile_ptr.shape[0] - 1
    width = ((n_samples + LANES - 1) // LANES) * LANES  # B'
    block = max(1, PAIR_COLUMNS // r)  # pairs per item
    shared_t = np.empty((n1, width), np.float32)
    for o in range(n1):
        for s in range(width):
            shared_t[o, s] = shared[min(s, n_samples - 1), o]
    height = n1
    for l in range(1, L + 1):
        height = max(height, sizes[l] + r)  # layer l >= 1 writes n_{l+1} + r rows
    a, b = np.zeros((height, width), np.float32), np.zeros((height, width), np.float32)
    first = np.zeros((n1, width), np.float32)  # e_0 + (X @ A_0) @ Bt_0 of the pair
    term = np.zeros((height, width), np.float32)  # e_l + (h @ A_l) @ Bt_l
    a_flat, b_flat, first_flat, term_flat = a.reshape(-1), b.reshape(-1), first.reshape(-1), term.reshape(-1)
    shared_flat = shared_t.reshape(-1)
    work = n_noise
    for l in range(L):
        work = max(work, sizes[l] * sizes[l + 1])
    uniforms, tails = np.empty(work, np.float64), np.empty(work, np.int64)
    noise = np.zeros((block, n_noise), np.float32)
    stacked = np.zeros((sizes[0] + 1) * block * r, np.float32)  # the block's A_0, then zeros (the bias)
    u0_tile = np.zeros((TILE, padded_width(block * r)), np.float32)  # a tile's X @ A_0 for the block
    u0 = np.zeros((block * r, width), np.float32)  # X @ A_0 of the block, one row per column of A_0
    joint, joint_at = joint_layers(centre, sizes, r)
    scores = np.empty((sizes[L] + 5) * width, np.float64)
    best = np.empty(width, np.int64)
    n_members = n_correct.shape[0]
    sides = 2 if antithetic else 1
    n_pairs = (n_members + 1) // 2 if antithetic else n_members
    item = claim(queue)
    while item * block < n_pairs:
        j0 = item * block
        nb = min(block, n_pairs - j0)
        columns = nb * r
        for jj in range(nb):
            lowrank_noise(seed, generation, pair0 + j0 + jj, shapes, rank, sigma, noise[jj], offsets, uniforms, tails)
            place_factor(noise[jj], offsets[0, 0], sizes[0], r, stacked, jj * r, columns)  # A_0 in columns jj r ..
        for c in range(columns):
            stacked[sizes[0] * columns + c] = np.float32(0.0)
        for t in range(n_tiles):
            tile_layer(stacked, 0, sizes[0], columns, rows, values, tile_ptr[t], tile_ptr[t + 1], u0_tile)
            for c in range(columns):
                for s in range(TILE):
                    u0[c, t * TILE + s] = u0_tile[s, c]
        for jj in range(nb):
            pair = noise[jj]
            for l in range(1, L):  # A_l of the pair beside the centre's W_l
                place_factor(pair, offsets[l, 0], sizes[l], r, joint, joint_at[l] + sizes[l + 1], sizes[l + 1] + r)
            for g in range(0, width, LANES):  # e_0 + (X @ A_0) @ Bt_0, shared by both members of the pair
                lanes_layer(pair, offsets[0, 1], n1, offsets[0, 1] + r * n1, r, n1, u0, jj * r * width + g, width,
                            first, g, width)
            for side in range(sides):
                sign = np.float32(1.0 - 2.0 * side)
                for k in range(n1 * width):  # flat loops over (units, B') vectorise
                    a_flat[k] = shared_flat[k] + sign * first_flat[k]
                h, out, h_flat, out_flat = a, b, a_flat, b_flat
                for l in range(1, L):
                    n_in, n_out, at = sizes[l], sizes[l + 1], joint_at[l]
                    # [b_l + h @ W_l, h @ A_l] in one product, then + sign (e_l + (h @ A_l) @ Bt_l)
                    activate_inplace(h_flat[: n_in * width].reshape((1, n_in * width)), n_in * width, act)
                    for g in range(0, width, LANES):
                        lanes_layer(joint, at, n_out + r, at + n_in * (n_out + r), n_in, n_out + r, h, g, width, out,
                                    g, width)
                        lanes_layer(pair, offsets[l, 1], n_out, offsets[l, 1] + r * n_out, r, n_out, out,
                                    n_out * width + g, width, term, g, width)
                    add_signed(out_flat, sign, term_flat, n_out * width)
                    h, out, h_flat, out_flat = out, h, out_flat, h_flat
                c, e = score_batch(h, n_samples, n_classes, labels, targets, scores, best, TILE)
                k = sides * (j0 + jj) + side
                if k < n_members:
                    n_correct[k] = c
                    loss[k] = e / n_samples
        item = claim(queue)


def score_members(centre, sizes, shapes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr,
                  rows, values, shared, labels, targets, n_classes, n_correct, loss, n_workers=None, pair0=0):
    """Score ``n_correct.shape[0]`` members from pair ``pair0`` on a shared batch (``lowrank_worker``, or ``full_rank_worker`` at rank 0);
    ``n_workers`` threads take pairs."""
    n_workers = numba.get_num_threads() if n_workers is None else n_workers
    if rank == 0:
        run_workers(full_rank_worker, (centre, sizes, shapes, int(act), sigma, int(seed), int(generation),
                                       bool(antithetic), tile_ptr, rows, values, labels, targets, int(n_classes),
                                       int(pair0), n_correct, loss), n_workers)
    else:
        run_workers(lowrank_worker, (centre, sizes, shapes, int(act), int(rank), sigma, int(seed), int(generation),
                                     bool(antithetic), offsets, int(n_noise), tile_ptr, rows, values, shared, labels,
                                     targets, int(n_classes), int(pair0), n_correct, loss), n_workers)


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
