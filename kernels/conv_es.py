"""Evolution-strategy members of a ConvNet at rank r >= 1: the first convolution's centre part computed once.

Member k of pair j has first-convolution filters ``C + sign * A_j Bt_j`` and bias ``cb + sign * e_j``
(the filter tensor ``(C_out, k, k, C_in)`` read as a ``(C_out, k k C_in)`` matrix; ``A_j: (C_out, r)``
scaled by ``sigma_C / sqrt(r)``, ``Bt_j: (r, k k C_in)``, ``e_j`` scaled by ``sigma_cb``:
``genreg.kernels.es_noise.lowrank_noise``).  The first convolution's input (the images, after any
poolings before it) is the same for every member, and a convolution is linear in its filters, so
for output pixel p and channel c

    pre[p, c] = (conv(x, C)[p, c] + cb[c]) + sign * (e[c] + sum_i A[c, i] u[i, p]),  u[i, p] = patch_p . Bt[i]

``centre_conv`` computes ``conv(x, C) + cb`` once per image for all members with the ConvNet
kernels' own ``convolve`` (so with no noise on the first convolution a member's logits are those
of its built row, bit for bit).  ``member_worker`` computes each pair's term once for both its
members (``lowrank_term``): ``u``, the r filters ``Bt`` slid over the padded image (one vectorised
loop over the output pixels per tap, taps in (kh, kw, c_in) order from zero), then ``e + u A^T``
as a 1 x 1 convolution of ``u`` (filters A, bias e) by ``convolve`` again.  Each member adds the
term with its sign to the centre's part; the activation, the later stages and the dense layers
run as in ``genreg.kernels.conv`` (``run_stages``, ``forward_tiles``) on the member's row, built
beforehand by ``genreg.kernels.es.build_members``.  Per pair and image this costs
``H1 W1 k k C_in r`` + ``H1 W1 C_out r`` multiply-adds instead of ``2 H1 W1 k k C_in C_out``.

Items are (tile of ``TILE`` images, block of ``PAIRS_PER_ITEM`` pairs); every logit is computed
by one thread in a fixed order, so results are bit-identical for any number of threads and do
not depend on which other members are computed with a member.
"""

import numba
import numpy as np

from ._config import jit
from .activations import activate_inplace
from .conv import CONV, conv_scratch, convolve, run_stages, transpose_filters
from .es_noise import lowrank_noise
from .forward import forward_tiles, scratch
from .simd import TILE
from .workqueue import claim, run_workers

#: Pairs an item runs on its tile of images (their shared part stays in cache meanwhile).
PAIRS_PER_ITEM = 8


@jit
def first_conv(table):
    """The stage number of the first convolution (-1 if there is none)."""
    for st in range(table.shape[0]):
        if table[st, 0] == CONV:
            return st
    return -1


@jit
def stage_input(x, table, act, wt, offsets, pad_buf, pix, a, b, f):
    """Copy image ``x`` into ``a[0]`` and run stages ``0 .. f - 1`` (poolings: no member's weights);
    returns the buffer holding the input of stage ``f``."""
    for i in range(x.shape[0]):
        a[0, i] = x[i]
    return run_stages(table, act, wt, offsets, pad_buf, pix, a, b, 0, f)


@jit
def centre_worker(centre, table, act, X, f, shared, queue):
    """Take images from ``queue``: ``shared[i] = conv(X[i], C) + cb`` (``(H1 * W1 * C_out,)``, HWC), the
    centre's stage-``f`` convolution before its activation (``f``: the first convolution)."""
    wt, offsets, pad_buf, a, b, pix = conv_scratch(table, X.shape[1])
    transpose_filters(centre, table, offsets, wt)
    n = table[f, 7] * table[f, 8] * table[f, 9]
    i = claim(queue)
    while i < X.shape[0]:
        src = stage_input(X[i], table, act, wt, offsets, pad_buf, pix, a, b, f)
        dst = b if f % 2 == 0 else a  # the other buffer
        convolve(src[0], table, f, wt, offsets[f], pad_buf, pix[f], dst[0])
        for q in range(n):
            shared[i, q] = dst[0, q]
        i = claim(queue)


@jit
def pad_input(x, table, f, padded):
    """``padded[:] = x`` (HWC, stage ``f``'s input) with the stage's zero border: ``(H + 2p, W + 2p, C)``."""
    pad, h, w, c = table[f, 3], table[f, 4], table[f, 5], table[f, 6]
    wp = w + 2 * pad
    for i in range(padded.shape[0]):
        padded[i] = np.float32(0.0)
    for i in range(h):
        row, src = ((i + pad) * wp + pad) * c, i * w * c
        for j in range(w * c):
            padded[row + j] = x[src + j]


@jit
def grid_table(table, f, rank):
    """The stage table ``(1, 12) int64`` of ``u @ A^T + e`` as a 1 x 1 convolution (``lowrank_term``): input
    ``(H1, W + 2 pad, r)`` (the grid of ``u``), output ``(H1, W1, C_out)``, so that ``conv_scratch``'s offset
    tables read pixel (oh, ow) of the grid at ``(oh (W + 2 pad) + ow) r`` and crop the columns ow >= W1."""
    grid = np.zeros((1, table.shape[1]), np.int64)
    grid[0, 0], grid[0, 1], grid[0, 2], grid[0, 3] = CONV, 1, 1, 0
    grid[0, 4], grid[0, 5], grid[0, 6] = table[f, 7], table[f, 5] + 2 * table[f, 3], rank
    grid[0, 7], grid[0, 8], grid[0, 9] = table[f, 7], table[f, 8], table[f, 9]
    return grid


@jit
def lowrank_term(padded, table, f, bt, at_e, rank, u, u_pix, grid, grid_pad, grid_pix, term):
    """``term[p * C_out + c] = e[c] + sum_i A[c, i] u[i, p]`` (``term: (>= H1 W1 C_out + dump,)``) with
    ``u[i, p] = sum_t patch_p[t] Bt[i, t]`` (taps t in (kh, kw, c_in) order, from zero) of the padded input
    ``padded`` of convolution ``f``.

    ``u: (r, >= H1 w_p)`` holds output pixel (oh, ow) at ``oh w_p + ow`` (w_p = W + 2 pad), so that a tap is
    one loop over ``q = oh w_p + ow`` reading ``padded[q stride C_in + tap]`` (contiguous at stride 1 with
    one channel; the columns ow >= W1 are computed and never read).  Then ``u`` (pixel-major in ``u_pix``
    when r > 1) is an ``(H1, w_p, r)`` image and ``term`` its 1 x 1 convolution with filters A and bias e:
    ``convolve`` on the stage ``grid`` (``grid_table``; ``grid_pad``, ``grid_pix`` from ``conv_scratch(grid)``),
    ``at_e = (A^T (r, C_out), e (C_out,), 32 spare)`` being its transposed filters.  bt: ``(r k k C_in,)``.
    """
    k, stride, pad = table[f, 1], table[f, 2], table[f, 3]
    w, c = table[f, 5], table[f, 6]
    ho, wo = table[f, 7], table[f, 8]
    wp = w + 2 * pad
    n_q = (ho - 1) * wp + wo
    step = stride * c
    n_taps = k * k * c
    for i in range(rank):
        ui = u[i]
        for q in range(n_q):
            ui[q] = np.float32(0.0)
        for kh in range(k):
            for kw in range(k):
                for ch in range(c):
                    weight = bt[i * n_taps + (kh * k + kw) * c + ch]
                    at = (kh * wp + kw) * c + ch
                    if step == 1:  # (spelled out so that it vectorises)
                        src = padded[at : at + n_q]
                        for q in range(n_q):
                            ui[q] += src[q] * weight
                    else:
                        for q in range(n_q):
                            ui[q] += padded[at + q * step] * weight
    if rank == 1:
        convolve(u[0], grid, 0, at_e, 0, grid_pad, grid_pix[0], term)
        return
    for q in range(n_q):
        for i in range(rank):
            u_pix[q * rank + i] = u[i, q]
    convolve(u_pix, grid, 0, at_e, 0, grid_pad, grid_pix[0], term)


@jit
def member_features(shared, img, term, sign, n, table, act, wt, offsets, pad_buf, pix, a, b, f, values, s):
    """One member on one image: ``a[0, :n] = shared[img] + sign * term``, the activation, stages ``f + 1 ..``,
    the flat output into ``values[:, s]``."""
    for q in range(n):
        a[0, q] = shared[img, q] + sign * term[q]
    activate_inplace(a, n, act)
    cur = run_stages(table, act, wt, offsets, pad_buf, pix, a, b, f + 1, table.shape[0])
    for i in range(values.shape[0]):
        values[i, s] = cur[0, i]


@jit
def member_worker(rows, sides, factor_a, factor_b, rank, shared, X, begin, end, table, sizes, act, out, queue):
    """Take items from ``queue``: item i is images ``begin + t * TILE ..`` (t = i // n_blocks, at most
    ``end``) times pairs ``g * PAIRS_PER_ITEM ..`` (g = i % n_blocks) of this call; writes the logits of each
    member of those pairs on those images into ``out[m, image]`` (``(m, B, n_out) float32``).

    rows: ``(m, n_params) float32`` the members' rows; sides: ``(n_pairs, 2) int64``, the row of each
    pair's + and - member (-1: not in this call); factor_a: ``(n_pairs, (r + 1) C_out + 32)``, factor_b:
    ``(n_pairs, r k k C_in)``: each pair's scaled first-convolution noise (``first_factors``); shared:
    ``(end - begin, H1 * W1 * C_out)`` the centre's first convolution (``centre_worker``) of images
    ``begin .. end - 1``; X: ``(B, H * W * C) float32`` the images.
    """
    f = first_conv(table)
    n = table[f, 7] * table[f, 8] * table[f, 9]
    pad, h, w, c = table[f, 3], table[f, 4], table[f, 5], table[f, 6]
    padded = np.zeros((TILE, (h + 2 * pad) * (w + 2 * pad) * c), np.float32)
    n_grid = table[f, 7] * (w + 2 * pad)
    u = np.zeros((rank, n_grid), np.float32)
    u_pix = np.zeros(n_grid * rank, np.float32)
    grid = grid_table(table, f, rank)
    _, _, grid_pad, term, _, grid_pix = conv_scratch(grid, 0)
    wt, offsets, pad_buf, a, b, pix = conv_scratch(table, X.shape[1])
    wt_minus = wt.copy()
    n_flat = sizes[0]
    plus, minus = np.zeros((n_flat, TILE), np.float32), np.zeros((n_flat, TILE), np.float32)
    tile_ptr = np.zeros(2, np.int64)
    tile_ptr[1] = n_flat
    flat_rows = np.arange(n_flat).astype(np.int32)
    da, db, units = scratch(sizes)
    dense_offset = 0
    for st in range(table.shape[0]):
        if table[st, 0] == CONV:
            dense_offset = table[st, 11] + table[st, 9]
    n_pairs = sides.shape[0]
    n_blocks = -(-n_pairs // PAIRS_PER_ITEM)
    n_tiles = -(-(end - begin) // TILE)
    i = claim(queue)
    while i < n_tiles * n_blocks:
        t0 = begin + (i // n_blocks) * TILE
        n_img = min(TILE, end - t0)
        for s in range(n_img):
            src = stage_input(X[t0 + s], table, act, wt, offsets, pad_buf, pix, a, b, f)
            pad_input(src[0], table, f, padded[s])
        j0 = (i % n_blocks) * PAIRS_PER_ITEM
        for j in range(j0, min(n_pairs, j0 + PAIRS_PER_ITEM)):
            kp, km = sides[j, 0], sides[j, 1]
            if kp >= 0:
                transpose_filters(rows[kp], table, offsets, wt)
            if km >= 0:
                transpose_filters(rows[km], table, offsets, wt_minus)
            for s in range(TILE):
                if s < n_img:
                    lowrank_term(padded[s], table, f, factor_b[j], factor_a[j], rank, u, u_pix, grid, grid_pad,
                                 grid_pix, term[0])
                    img = t0 + s - begin
                    if kp >= 0:
                        member_features(shared, img, term[0], np.float32(1.0), n, table, act, wt, offsets, pad_buf,
                                        pix, a, b, f, plus, s)
                    if km >= 0:
                        member_features(shared, img, term[0], np.float32(-1.0), n, table, act, wt_minus, offsets,
                                        pad_buf, pix, a, b, f, minus, s)
                else:
                    for q in range(n_flat):
                        plus[q, s] = np.float32(0.0)
                        minus[q, s] = np.float32(0.0)
            if kp >= 0:
                forward_tiles(rows[kp, dense_offset:], sizes, act, tile_ptr, flat_rows, plus, 0, 1, da, db, units,
                              out[kp, t0:t0 + n_img])
            if km >= 0:
                forward_tiles(rows[km, dense_offset:], sizes, act, tile_ptr, flat_rows, minus, 0, 1, da, db, units,
                              out[km, t0:t0 + n_img])
        i = claim(queue)


@jit
def factor_worker(seed, generation, pair0, shapes, rank, sigma, offsets, n_noise, factor_a, factor_b, queue):
    """Take pairs from ``queue``: pair ``pair0 + j``'s first-convolution noise (tensor pair 0 of the row):
    ``factor_a[j] = (A^T (r, C_out), e (C_out,))`` (A scaled by ``sigma_C / sqrt(r)``, the bias noise e by
    ``sigma_cb``; the 32 floats after them stay zero) and ``factor_b[j] = Bt (r, k k C_in)``."""
    largest = 0
    for l in range(shapes.shape[0]):
        largest = max(largest, shapes[l, 0] * shapes[l, 1], shapes[l, 2])
    uniforms, tails = np.empty(max(n_noise, largest), np.float64), np.empty(max(n_noise, largest), np.int64)
    noise = np.zeros(n_noise, np.float32)
    co = shapes[0, 0]
    j = claim(queue)
    while j < factor_a.shape[0]:
        lowrank_noise(seed, generation, pair0 + j, shapes, rank, sigma, noise, offsets, uniforms, tails)
        for o in range(co):
            for i in range(rank):
                factor_a[j, i * co + o] = noise[offsets[0, 0] + o * rank + i]
            factor_a[j, rank * co + o] = noise[offsets[0, 2] + o]
        for q in range(factor_b.shape[1]):
            factor_b[j, q] = noise[offsets[0, 1] + q]
        j = claim(queue)


def _threads(n_workers):
    return numba.get_num_threads() if n_workers is None else max(1, int(n_workers))


def first_factors(seed, generation, pair0, shapes, rank, sigma, offsets, n_noise, n_pairs, n_workers=None):
    """Pairs ``pair0 .. pair0 + n_pairs - 1``'s first-convolution noise (``factor_worker``):
    ``((A^T, e, 32 zeros) (n_pairs, (r + 1) C_out + 32), Bt (n_pairs, r k k C_in)) float32``."""
    factor_a = np.zeros((n_pairs, (rank + 1) * int(shapes[0, 0]) + 32), np.float32)
    factor_b = np.zeros((n_pairs, rank * int(shapes[0, 1])), np.float32)
    if n_pairs:
        run_workers(factor_worker, (int(seed), int(generation), int(pair0), shapes, int(rank), sigma, offsets,
                                    int(n_noise), factor_a, factor_b), _threads(n_workers))
    return factor_a, factor_b


def centre_conv(centre, table, act, X, n_workers=None):
    """The centre's first convolution (bias included, no activation) of every image ``X: (B, H * W * C)``:
    ``(B, H1 * W1 * C_out) float32`` (HWC)."""
    f = int(first_conv(table))
    shared = np.zeros((X.shape[0], int(table[f, 7] * table[f, 8] * table[f, 9])), np.float32)
    if X.shape[0]:
        run_workers(centre_worker, (centre, table, int(act), X, f, shared), _threads(n_workers))
    return shared


def member_logits(rows, sides, factors, rank, shared, X, begin, end, table, sizes, act, out, n_workers=None):
    """Fill ``out[:, begin:end]`` with the logits of the members in ``rows`` (see ``member_worker``; factors:
    ``first_factors``'s two arrays)."""
    if sides.shape[0] and end > begin:
        run_workers(member_worker, (rows, sides, *factors, int(rank), shared, X, int(begin), int(end),
                                    table, sizes, int(act), out), _threads(n_workers))
