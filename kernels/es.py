"""Evolution-strategy kernels: score perturbed members without building them, and sum their noise.

A generation's members are ``centre + sign * sigma * eps``: member k belongs to pair
``j = k // 2`` with ``sign = +1`` for even k and ``-1`` for odd k (antithetic sampling), or
to ``j = k`` with ``sign = +1`` without it.  ``eps`` is never stored: each tensor ``t`` of pair
``j`` is regenerated from its own counter-based stream ``stream_key(seed, generation, j,
NOISE + t)`` (``genreg.kernels.rng``).  Tensors are numbered as in the layout: ``2l`` is
``W_l: (n_l, n_{l+1})``, ``2l + 1`` is ``b_l: (n_{l+1},)``.

- full rank (``rank == 0``): entry ``p`` (row-major) of tensor t is draw ``p + 1`` of its stream;
- rank r >= 1: ``eps(W_l) = A @ B.T / sqrt(r)`` with ``A: (n_l, r)`` draws ``1 .. n_l r`` and
  ``B: (n_{l+1}, r)`` the ``n_{l+1} r`` draws after them (row-major, EGGROLL's low-rank
  perturbation); biases are full rank.  Every entry of ``eps`` has variance 1 either way.

``sigma`` is one value per tensor (``(2L,)``) or, at full rank only, one per parameter
(``(n_params,)``).  Scoring a member at rank r costs the centre's first layer once per batch
(``shared = b_0 + X @ W_0``, computed by the caller for every member) plus
``r (n_in + n_out)`` per sample and layer, instead of ``n_in n_out``.  Every member is scored
by one thread in a fixed order and every gradient entry is summed by one thread over the
pairs in order, so results are bit-identical for any number of threads.
"""

import numba
import numpy as np

from ._config import jit
from .activations import activate_inplace
from .forward import forward_tiles, scratch, tile_layer
from .rng import draw_state, next_normal, stream_key
from .simd import TILE
from .workqueue import claim, run_workers

#: Purposes of the noise streams: tensor t of a pair draws from purpose NOISE + t.
NOISE = 64


@jit
def fill_normals(state, out, start, n, scale):
    """``out[start + i] = scale * z_i`` for the next n normals of the stream at ``state``; returns the state."""
    for i in range(n):
        state, z = next_normal(state)
        out[start + i] = np.float32(scale * z)
    return state


@jit
def lowrank_noise(seed, generation, j, sizes, rank, sign, sigma, noise, offsets):
    """Pair ``j``'s scaled factors: for layer l, ``A * sign * sigma[2l] / sqrt(r)`` at ``offsets[l, 0]``,
    ``B`` at ``offsets[l, 1]`` and the bias noise ``* sign * sigma[2l + 1]`` at ``offsets[l, 2]``."""
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        state = stream_key(seed, generation, j, NOISE + 2 * l)
        state = fill_normals(state, noise, offsets[l, 0], n_in * rank, sign * sigma[2 * l] / np.sqrt(rank))
        fill_normals(state, noise, offsets[l, 1], n_out * rank, 1.0)
        fill_normals(stream_key(seed, generation, j, NOISE + 2 * l + 1), noise, offsets[l, 2], n_out,
                     sign * sigma[2 * l + 1])


@jit
def full_member(centre, seed, generation, j, sizes, sign, sigma, row):
    """Write member ``centre + sign * sigma * eps`` of pair ``j`` (full rank) into ``row``."""
    offset, t = 0, 0
    for l in range(sizes.shape[0] - 1):
        for size in (sizes[l] * sizes[l + 1], sizes[l + 1]):
            state = stream_key(seed, generation, j, NOISE + t)
            for p in range(offset, offset + size):
                state, z = next_normal(state)
                s = sigma[p] if sigma.shape[0] == centre.shape[0] else sigma[t]
                row[p] = centre[p] + np.float32(sign * s * z)
            offset += size
            t += 1


@jit
def lowrank_member(centre, seed, generation, j, sizes, rank, sign, sigma, noise, offsets, row):
    """Write member ``centre + sign * sigma * eps`` of pair ``j`` (rank ``rank``) into ``row``."""
    lowrank_noise(seed, generation, j, sizes, rank, sign, sigma, noise, offsets)
    offset = 0
    for l in range(sizes.shape[0] - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        oa, ob, oe = offsets[l, 0], offsets[l, 1], offsets[l, 2]
        for i in range(n_in):
            for o in range(n_out):
                d = np.float32(0.0)
                for q in range(rank):
                    d += noise[oa + i * rank + q] * noise[ob + o * rank + q]
                row[offset + i * n_out + o] = centre[offset + i * n_out + o] + d
        offset += n_in * n_out
        for o in range(n_out):
            row[offset + o] = centre[offset + o] + noise[oe + o]
        offset += n_out


@jit
def add_lowrank(h, n_in, n_out, noise, oa, ob, oe, rank, u, out):
    """``out[:, :n_out] += (h[:, :n_in] @ A) @ B.T + e`` for one tile (u: ``(TILE, rank)`` scratch)."""
    for s in range(TILE):
        for q in range(rank):
            acc = np.float32(0.0)
            for i in range(n_in):
                acc += h[s, i] * noise[oa + i * rank + q]
            u[s, q] = acc
    for s in range(TILE):
        for o in range(n_out):
            d = noise[oe + o]
            for q in range(rank):
                d += u[s, q] * noise[ob + o * rank + q]
            out[s, o] += d


@jit
def score_logits(logits, s, n_classes, labels, targets, sample):
    """Of sample ``sample`` (row s of ``logits``): (correct, cross-entropy) for labels, (0, squared error) for targets."""
    if targets.shape[0] > 0:
        err = 0.0
        for o in range(targets.shape[1]):
            d = np.float64(logits[s, o]) - np.float64(targets[sample, o])
            err += d * d
        return 0, err / targets.shape[1]
    best, top = 0, logits[s, 0]
    for c in range(1, n_classes):
        better = logits[s, c] > top
        best = c if better else best
        top = logits[s, c] if better else top
    total = 0.0
    for c in range(n_classes):
        total += np.exp(np.float64(logits[s, c]) - np.float64(top))
    loss = np.float64(top) + np.log(total) - np.float64(logits[s, labels[sample]])
    return int(best == labels[sample]), loss


@jit
def member_worker(centre, sizes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr, rows,
                  values, shared, labels, targets, n_classes, n_correct, loss, queue):
    """Take members from ``queue``: member k's ``n_correct[k]`` and mean ``loss[k]`` (cross-entropy, or
    squared error when ``targets: (B, k)`` is not empty) on the batch (tiles; labels ``(B,) int32``).

    rank >= 1: layer 0 is ``shared: (B, n_1)`` (= b_0 + X @ W_0 of the centre) plus the member's
    low-rank term; rank 0: the member's row is built in a buffer of this worker and run whole.
    """
    a, b, units = scratch(sizes)
    aT, bT = a.T, b.T
    L = sizes.shape[0] - 1
    n_samples = labels.shape[0] if targets.shape[0] == 0 else targets.shape[0]
    noise = np.empty(n_noise, np.float32)
    u = np.empty((TILE, max(rank, 1)), np.float32)
    row = np.empty(centre.shape[0] if rank == 0 else 0, np.float32)
    logits = np.empty((n_samples if rank == 0 else 0, sizes[L]), np.float32)
    n_tiles = tile_ptr.shape[0] - 1
    k = claim(queue)
    while k < n_correct.shape[0]:
        j = k // 2 if antithetic else k
        sign = -1.0 if antithetic and k % 2 == 1 else 1.0
        correct, total = 0, 0.0
        if rank == 0:
            full_member(centre, seed, generation, j, sizes, sign, sigma, row)
            forward_tiles(row, sizes, act, tile_ptr, rows, values, 0, n_tiles, a, b, units, logits)
            for s in range(n_samples):
                c, e = score_logits(logits, s, n_classes, labels, targets, s)
                correct += c
                total += e
        else:
            lowrank_noise(seed, generation, j, sizes, rank, sign, sigma, noise, offsets)
            for t in range(n_tiles):
                # layer 0: the shared product plus (X @ A) @ B.T + e over the tile's active inputs
                for s in range(TILE):
                    for q in range(rank):
                        u[s, q] = np.float32(0.0)
                oa = offsets[0, 0]
                for p in range(tile_ptr[t], tile_ptr[t + 1]):
                    i = rows[p]
                    for q in range(rank):
                        w = noise[oa + i * rank + q]
                        for s in range(TILE):
                            u[s, q] += values[p, s] * w
                n1, ob, oe = sizes[1], offsets[0, 1], offsets[0, 2]
                for s in range(TILE):
                    sample = min(t * TILE + s, n_samples - 1)  # padding samples repeat the last (never scored)
                    for o in range(n1):
                        d = shared[sample, o] + noise[oe + o]
                        for q in range(rank):
                            d += u[s, q] * noise[ob + o * rank + q]
                        a[s, o] = d
                offset = sizes[0] * sizes[1] + sizes[1]
                for l in range(1, L):
                    n_in, n_out = sizes[l], sizes[l + 1]
                    if l % 2 == 1:
                        activate_inplace(a, n_in, act)
                        tile_layer(centre, offset, n_in, n_out, units, aT, 0, n_in, b)
                        add_lowrank(a, n_in, n_out, noise, offsets[l, 0], offsets[l, 1], offsets[l, 2], rank, u, b)
                    else:
                        activate_inplace(b, n_in, act)
                        tile_layer(centre, offset, n_in, n_out, units, bT, 0, n_in, a)
                        add_lowrank(b, n_in, n_out, noise, offsets[l, 0], offsets[l, 1], offsets[l, 2], rank, u, a)
                    offset += n_in * n_out + n_out
                out = a if L % 2 == 1 else b
                for s in range(min(TILE, n_samples - t * TILE)):
                    c, e = score_logits(out, s, n_classes, labels, targets, t * TILE + s)
                    correct += c
                    total += e
        n_correct[k] = correct
        loss[k] = total / n_samples
        k = claim(queue)


def score_members(centre, sizes, act, rank, sigma, seed, generation, antithetic, offsets, n_noise, tile_ptr, rows,
                  values, shared, labels, targets, n_classes, n_correct, loss, n_workers=None):
    """Score every member on a shared batch (see ``member_worker``); ``n_workers`` threads take members."""
    run_workers(member_worker, (centre, sizes, int(act), int(rank), sigma, int(seed), int(generation),
                                bool(antithetic), offsets, int(n_noise), tile_ptr, rows, values, shared, labels,
                                targets, int(n_classes), n_correct, loss),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def build_worker(centre, sizes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out, queue):
    """Take items from ``queue``: write member ``members[i]`` into ``out[i]``."""
    noise = np.empty(n_noise, np.float32)
    i = claim(queue)
    while i < members.shape[0]:
        k = members[i]
        j = k // 2 if antithetic else k
        sign = -1.0 if antithetic and k % 2 == 1 else 1.0
        if rank == 0:
            full_member(centre, seed, generation, j, sizes, sign, sigma, out[i])
        else:
            lowrank_member(centre, seed, generation, j, sizes, rank, sign, sigma, noise, offsets, out[i])
        i = claim(queue)


def build_members(centre, sizes, rank, sigma, seed, generation, antithetic, offsets, n_noise, members, out,
                  n_workers=None):
    """``out[i]`` = the parameters of member ``members[i]``: ``(m, n_params) float32``."""
    run_workers(build_worker, (centre, sizes, int(rank), sigma, int(seed), int(generation), bool(antithetic), offsets,
                               int(n_noise), np.ascontiguousarray(members, dtype=np.int64), out),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def gradient_worker(sizes, rank, seed, generation, weights, square_weights, items, grad, square_grad, queue):
    """Take items ``(tensor, first, stop)`` from ``queue``: for entries ``first .. stop - 1`` of that
    tensor, ``grad = sum_j weights[j] * eps_j`` and (if ``square_weights`` is not empty)
    ``square_grad = sum_j square_weights[j] * (eps_j ** 2 - 1)``, summed over pairs j in order in
    float64 (``grad``, ``square_grad``: ``(n_params,) float64``, indexed by parameter)."""
    n_pairs = weights.shape[0]
    squares = square_weights.shape[0] > 0
    width = 0
    for l in range(sizes.shape[0] - 1):
        width = max(width, sizes[l + 1])
    bvec = np.empty(width * max(rank, 1), np.float32)
    arow = np.empty(max(rank, 1), np.float32)
    i = claim(queue)
    while i < items.shape[0]:
        t, first, stop = items[i, 0], items[i, 1], items[i, 2]
        l = t // 2
        n_in, n_out = sizes[l], sizes[l + 1]
        offset = 0
        for m in range(l):
            offset += sizes[m] * sizes[m + 1] + sizes[m + 1]
        if t % 2 == 1:
            offset += n_in * n_out
        lowrank = rank > 0 and t % 2 == 0
        for j in range(n_pairs):
            w = weights[j]
            w2 = square_weights[j] if squares else 0.0
            if w == 0.0 and w2 == 0.0:
                continue
            key = stream_key(seed, generation, j, NOISE + t)
            if not lowrank:
                state = draw_state(key, first)
                for p in range(first, stop):
                    state, z = next_normal(state)
                    grad[offset + p] += w * z
                    if squares:
                        square_grad[offset + p] += w2 * (z * z - 1.0)
                continue
            # rows first // n_out .. of W_l: A's rows from their draws, B whole
            fill_normals(draw_state(key, n_in * rank), bvec, 0, n_out * rank, 1.0)
            scale = 1.0 / np.sqrt(rank)
            for r_ in range(first // n_out, stop // n_out):
                fill_normals(draw_state(key, r_ * rank), arow, 0, rank, 1.0)
                for o in range(n_out):
                    e = 0.0
                    for q in range(rank):
                        e += np.float64(arow[q]) * np.float64(bvec[o * rank + q])
                    e *= scale
                    grad[offset + r_ * n_out + o] += w * e
                    if squares:
                        square_grad[offset + r_ * n_out + o] += w2 * (e * e - 1.0)
        i = claim(queue)


def noise_gradient(sizes, rank, seed, generation, weights, square_weights, items, grad, square_grad, n_workers=None):
    """The weighted sums of the pairs' noise (see ``gradient_worker``), over ``items: (m, 3) int64``."""
    run_workers(gradient_worker, (sizes, int(rank), int(seed), int(generation), weights, square_weights, items, grad,
                                  square_grad),
                numba.get_num_threads() if n_workers is None else n_workers)
