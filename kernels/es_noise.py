"""Regenerating an evolution strategy's noise (genreg.kernels.es_noise): the draws behind every member.

Tensor ``t`` of pair ``j`` in generation g draws from the counter-based stream
``stream_key(seed, g, j, NOISE + t)``; draw k is computed directly (``rng.draw_at``), so blocks of
draws vectorise and any entry can be recomputed alone.  Full rank: entry p (row-major) of a tensor
is draw p + 1.  Rank r: ``eps(W) = A @ Bt / sqrt(r)``, ``A: (rows, r)`` draws 1 .. rows r and
``Bt: (r, cols)`` the draws after them; biases are full rank.  See ``genreg.kernels.es``.

The row is a sequence of (weight, bias) tensor pairs, described by ``shapes: (m, 3) int64``, one
line ``(rows, cols, bias)`` per pair: the weight tensor is read as a ``(rows, cols)`` matrix
(row-major, as it lies in the row) followed by its ``bias`` entries.  An MLP's layer l is
``(n_l, n_{l+1}, n_{l+1})``; a ConvNet's filters ``C: (C_out, k, k, C_in)`` are
``(C_out, k k C_in, C_out)`` (one filter a matrix row), before its dense layers.
"""

import numpy as np

from ._config import jit
from .rng import draw_at, in_normal_tail, normal_central, normal_quantile, stream_key, uniform_open_from_bits

#: Purposes of the noise streams: tensor t of a pair draws from purpose NOISE + t.
NOISE = 64


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
def lowrank_noise(seed, generation, j, shapes, rank, sigma, noise, offsets, uniforms, tails):
    """Pair ``j``'s scaled factors: for tensor pair l, ``A * sigma[2l] / sqrt(r)`` at ``offsets[l, 0]``,
    ``Bt`` at ``offsets[l, 1]`` and the bias noise ``* sigma[2l + 1]`` at ``offsets[l, 2]`` (no sign).

    The layout lets ``tile_layer`` read them as two small layers: ``A: (rows, r)`` followed by r
    zeros (its bias, written by the caller, never here), and ``Bt: (r, cols)`` followed by e.
    """
    for l in range(shapes.shape[0]):
        n_in, n_out = shapes[l, 0], shapes[l, 1]
        key = stream_key(seed, generation, j, NOISE + 2 * l)
        fill_normals(key, 0, n_in * rank, sigma[2 * l] / np.sqrt(rank), uniforms, tails, noise, offsets[l, 0])
        fill_normals(key, n_in * rank, n_out * rank, 1.0, uniforms, tails, noise, offsets[l, 1])
        fill_normals(stream_key(seed, generation, j, NOISE + 2 * l + 1), 0, shapes[l, 2], sigma[2 * l + 1], uniforms,
                     tails, noise, offsets[l, 2])


@jit
def full_member(centre, seed, generation, j, shapes, sign, sigma, uniforms, tails, draws, row):
    """Write member ``centre + sign * sigma * eps`` of pair ``j`` (full rank) into ``row``
    (``draws``: float32 work space as long as the largest tensor)."""
    offset, t = 0, 0
    for l in range(shapes.shape[0]):
        for size in (shapes[l, 0] * shapes[l, 1], shapes[l, 2]):
            fill_normals(stream_key(seed, generation, j, NOISE + t), 0, size, 1.0, uniforms, tails, draws, 0)
            per_parameter = sigma.shape[0] == centre.shape[0]
            for p in range(size):
                s = sigma[offset + p] if per_parameter else sigma[t]
                row[offset + p] = centre[offset + p] + np.float32(sign * s * np.float64(draws[p]))
            offset += size
            t += 1


@jit
def lowrank_member(centre, shapes, rank, sign, noise, offsets, row):
    """Write ``centre + sign * (A @ Bt, e)`` of the pair's factors in ``noise`` into ``row``."""
    offset = 0
    for l in range(shapes.shape[0]):
        n_in, n_out = shapes[l, 0], shapes[l, 1]
        oa, ob, oe = offsets[l, 0], offsets[l, 1], offsets[l, 2]
        for i in range(n_in):
            for o in range(n_out):
                d = np.float32(0.0)
                for q in range(rank):
                    d += noise[oa + i * rank + q] * noise[ob + q * n_out + o]
                row[offset + i * n_out + o] = centre[offset + i * n_out + o] + np.float32(sign) * d
        offset += n_in * n_out
        for o in range(shapes[l, 2]):
            row[offset + o] = centre[offset + o] + np.float32(sign) * noise[oe + o]
        offset += shapes[l, 2]
