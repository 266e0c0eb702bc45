"""The update's sums of an evolution strategy's noise (genreg.kernels.es_update), never storing a member.

``sum_j w_j eps_j`` and ``sum_j v_j (eps_j**2 - 1)`` over the pairs j of a generation: full-rank
tensors entry by entry (``gradient_worker``: one thread per block of entries, pairs in order), and
low-rank weight matrices as stacked, weighted factors (``factor_worker``) whose matrix product
the caller takes (``genreg.network.members.Members.noise_sum``).  See ``genreg.kernels.es``.
"""

import numba
import numpy as np

from ._config import jit
from .es_noise import NOISE, fill_normals
from .rng import stream_key
from .workqueue import claim, run_workers


@jit
def gradient_worker(shapes, seed, generation, weights, square_weights, items, grad, square_grad, queue):
    """Take items ``(tensor, first, stop)`` from ``queue``: for entries ``first .. stop - 1`` of that
    tensor's full-rank noise, ``grad = sum_j weights[j] * eps_j`` and (if ``square_weights`` is not
    empty) ``square_grad = sum_j square_weights[j] * (eps_j ** 2 - 1)``, summed over pairs j in order
    in float64 (``grad``, ``square_grad``: ``(n_params,) float64``, indexed by parameter).  Low-rank
    weight matrices are summed as products of their factors instead (``noise_factors``).  shapes:
    ``(m, 3) int64`` the row's tensor pairs (``genreg.kernels.es_noise``: an MLP's layers, a ConvNet's
    convolutions then its dense layers)."""
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
            offset += shapes[m // 2, 0] * shapes[m // 2, 1] if m % 2 == 0 else shapes[m // 2, 2]
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


def noise_gradient(shapes, seed, generation, weights, square_weights, items, grad, square_grad, n_workers=None):
    """The weighted sums of the pairs' full-rank noise (see ``gradient_worker``), over ``items: (m, 3) int64``."""
    run_workers(gradient_worker, (shapes, int(seed), int(generation), weights, square_weights, items, grad,
                                  square_grad),
                numba.get_num_threads() if n_workers is None else n_workers)


@jit
def factor_worker(shapes, l, rank, seed, generation, first_pair, weights, square_weights, a_out, b_out, a2_out, b2_out,
                  queue):
    """Take pairs from ``queue``: the weighted factors of tensor pair l's low-rank noise for ``noise_factors``
    (``n_l, n_{l+1}`` below are ``shapes[l, 0], shapes[l, 1]``: a weight matrix's rows and columns).

    Pair ``j = first_pair + i`` fills rows ``i r .. i r + r - 1`` of ``a_out: (J r, n_l)`` with
    ``weights[j] * A_j.T / sqrt(r)`` and of ``b_out: (J r, n_{l+1})`` with ``Bt_j``, so that
    ``a_out.T @ b_out = sum_j weights[j] * eps_j``.  If ``a2_out`` is not empty, rows
    ``(i r + q) r + q'`` of ``a2_out: (J r^2, n_l)`` and ``b2_out: (J r^2, n_{l+1})`` hold
    ``square_weights[j] * A_q * A_q' / r`` and ``B_q * B_q'``, so that ``a2_out.T @ b2_out =
    sum_j square_weights[j] * eps_j**2``.
    """
    n_in, n_out = shapes[l, 0], shapes[l, 1]
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


def noise_factors(shapes, l, rank, seed, generation, first_pair, weights, square_weights, a_out, b_out, a2_out, b2_out,
                  n_workers=None):
    """Fill the weighted low-rank factors of pairs ``first_pair ..`` (see ``factor_worker``)."""
    run_workers(factor_worker, (shapes, int(l), int(rank), int(seed), int(generation), int(first_pair), weights,
                                square_weights, a_out, b_out, a2_out, b2_out),
                numba.get_num_threads() if n_workers is None else n_workers)
