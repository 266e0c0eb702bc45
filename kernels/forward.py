"""Forward passes of dense MLPs stored as flat float32 rows (see ``genreg.layout``).

Inputs arrive as a CSR batch — ``indptr: (B + 1,) int64``, ``indices: (nnz,)
int32``, ``values: (nnz,) float32`` — because MNIST pixels are ~80% zero: the
first layer then costs ``nnz * n_hidden`` multiply-adds instead of
``B * n_in * n_hidden``.  A row ``w: (n_params,)`` holds ``W0: (n_0, n_1)``,
``b0: (n_1,)``, ``W1: (n_1, n_2)``, ... ; ``sizes: (L + 1,) int64`` gives the
widths and ``act`` the hidden activation code (``kernels.activations``).  The
output layer has no activation: kernels return logits.

Every kernel writes into caller-allocated outputs and validates nothing; call
them through ``genreg.forward``.  Parallel kernels split work so that each output
element is computed by exactly one thread in a fixed order, so results are
bit-identical for any number of threads.
"""

import numpy as np
from numba import prange

from ._config import jit, parallel_jit
from .activations import activate_inplace

#: Samples per task in the single-genome kernels.
SAMPLE_CHUNK = 64


@jit
def sparse_input_layer(w, n_in, n_out, indptr, indices, values, s, h):
    """Set ``h: (n_out,)`` to ``b0 + x_s @ W0`` for CSR sample ``s`` (pre-activation)."""
    bias = n_in * n_out
    for j in range(n_out):
        h[j] = w[bias + j]
    for k in range(indptr[s], indptr[s + 1]):
        v = values[k]
        base = indices[k] * n_out
        for j in range(n_out):
            h[j] += v * w[base + j]


@jit
def dense_layer(w, offset, n_in, n_out, x, h):
    """Set ``h: (n_out,)`` to ``b + x @ W`` for the layer whose ``W`` starts at ``offset``."""
    bias = offset + n_in * n_out
    for j in range(n_out):
        h[j] = w[bias + j]
    for i in range(n_in):
        v = x[i]
        base = offset + i * n_out
        for j in range(n_out):
            h[j] += v * w[base + j]


@jit
def forward_sample(w, sizes, act, indptr, indices, values, s, scratch_a, scratch_b):
    """Return the logits ``(sizes[-1],)`` of CSR sample ``s`` (a view into a scratch buffer).

    scratch_a, scratch_b: ``(max(sizes[1:]),) float32`` work buffers.
    """
    n_layers = sizes.shape[0] - 1
    h = scratch_a[: sizes[1]]
    sparse_input_layer(w, sizes[0], sizes[1], indptr, indices, values, s, h)
    offset = sizes[0] * sizes[1] + sizes[1]
    for l in range(1, n_layers):
        activate_inplace(h, act)
        nxt = scratch_b[: sizes[l + 1]] if l % 2 == 1 else scratch_a[: sizes[l + 1]]
        dense_layer(w, offset, sizes[l], sizes[l + 1], h, nxt)
        offset += sizes[l] * sizes[l + 1] + sizes[l + 1]
        h = nxt
    return h


@jit
def argmax_first(h, n):
    """Index of the largest of ``h[:n]`` (first one on ties)."""
    best = 0
    best_value = h[0]
    for j in range(1, n):
        if h[j] > best_value:
            best = j
            best_value = h[j]
    return best


@parallel_jit
def population_logits(W, sizes, act, indptr, indices, values, out):
    """Fill ``out: (P, B, n_out) float32`` with the logits of every genome on every sample.

    W: ``(P, n_params) float32``; the batch is shared by all genomes.
    """
    n_samples = indptr.shape[0] - 1
    n_out = sizes[-1]
    width = np.max(sizes[1:])
    for g in prange(W.shape[0]):
        scratch_a = np.empty(width, np.float32)
        scratch_b = np.empty(width, np.float32)
        w = W[g]
        for s in range(n_samples):
            h = forward_sample(w, sizes, act, indptr, indices, values, s, scratch_a, scratch_b)
            for j in range(n_out):
                out[g, s, j] = h[j]


@parallel_jit
def population_predict(W, sizes, act, indptr, indices, values, labels, n_classes, predictions, n_correct):
    """Fused forward + argmax + scoring for every genome on a shared batch.

    predictions: ``(P, B) int32`` — argmax of the first ``n_classes`` logits.
    n_correct: ``(P,) int64`` — how many predictions equal ``labels: (B,)``.
    """
    n_samples = indptr.shape[0] - 1
    width = np.max(sizes[1:])
    for g in prange(W.shape[0]):
        scratch_a = np.empty(width, np.float32)
        scratch_b = np.empty(width, np.float32)
        w = W[g]
        correct = 0
        for s in range(n_samples):
            h = forward_sample(w, sizes, act, indptr, indices, values, s, scratch_a, scratch_b)
            c = argmax_first(h, n_classes)
            predictions[g, s] = c
            if c == labels[s]:
                correct += 1
        n_correct[g] = correct


@parallel_jit
def genome_logits(w, sizes, act, indptr, indices, values, out):
    """Fill ``out: (N, n_out) float32`` with the logits of one genome ``w`` on N samples."""
    n_samples = indptr.shape[0] - 1
    n_out = sizes[-1]
    width = np.max(sizes[1:])
    n_chunks = (n_samples + SAMPLE_CHUNK - 1) // SAMPLE_CHUNK
    for c in prange(n_chunks):
        scratch_a = np.empty(width, np.float32)
        scratch_b = np.empty(width, np.float32)
        for s in range(c * SAMPLE_CHUNK, min(n_samples, (c + 1) * SAMPLE_CHUNK)):
            h = forward_sample(w, sizes, act, indptr, indices, values, s, scratch_a, scratch_b)
            for j in range(n_out):
                out[s, j] = h[j]
