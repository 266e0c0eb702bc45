"""Diversity of a population: per-gene cosine-similarity matrices, and their 2-D PCA.

The reference study measures how alike the members' genes are with the
cosine similarity of each gene's parameters across the population, a P x P
matrix per gene and generation, and pictures it with a PCA of that matrix
(each member = its row of similarities) and a histogram of its values.
"""

from __future__ import annotations

import numpy as np

from genreg.network.layout import Layout


def gene_names(layout: Layout, bounds: np.ndarray) -> list[str]:
    """A readable name per gene segment ``bounds[g]:bounds[g+1]`` (tensor name, row range for blocks)."""
    names = []
    for start, stop in zip(bounds[:-1], bounds[1:]):
        inside = [t for t in layout.tensors if t.offset < stop and t.stop > start]
        if len(inside) == 1 and (inside[0].offset, inside[0].stop) != (start, stop):
            t = inside[0]
            cols = t.size // t.shape[0]  # a weight matrix's row, or a convolution's filter
            names.append(f"{t.name}[{(start - t.offset) // cols}:{(stop - t.offset) // cols}]")
        else:
            names.append("+".join(t.name for t in inside))
    return names


def layer_names(layout: Layout) -> list[str]:
    """Layer genes named as in the reference: 1, 2, 3 or, with parallel blocks, 1, 2a, 2b, 3; a ConvNet's
    convolutions first, c1, c2, ... (the genes of ``variation.layer_gene_bounds``)."""
    names = [f"c{i + 1}" for i in range(sum(cl.is_conv for cl in layout.conv_layers))]
    for l, layer in enumerate(layout.layers):
        for blk in layer:
            names.append(str(l + 1) if len(layer) == 1 else f"{l + 1}{chr(ord('a') + blk.index) if blk.index < 26 else blk.index}")
    return names


def cosine_similarity(W: np.ndarray, start: int, stop: int) -> np.ndarray:
    """P x P cosine similarities of the segments ``W[:, start:stop]``: ``(P, P) float32``.

    W: ``(P, n_params)``.  A zero segment has similarity 0 with everything (and 1 with itself).
    """
    seg = W[:, start:stop].astype(np.float64)
    norms = np.linalg.norm(seg, axis=1)
    unit = seg / np.where(norms > 0, norms, 1.0)[:, None]
    S = unit @ unit.T
    np.fill_diagonal(S, 1.0)
    return np.clip(S, -1.0, 1.0).astype(np.float32)


def similarity_matrices(W: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """One similarity matrix per gene: ``(G, P, P) float32`` for ``bounds: (G + 1,)``."""
    return np.stack([cosine_similarity(W, int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])])


def mean_offdiagonal(S: np.ndarray) -> float:
    """Mean similarity between distinct members of ``S: (P, P)`` (NaN for P = 1)."""
    P = S.shape[0]
    if P < 2:
        return float("nan")
    return float((S.sum(dtype=np.float64) - np.trace(S, dtype=np.float64)) / (P * (P - 1)))


def offdiagonal(S: np.ndarray) -> np.ndarray:
    """The ``P (P - 1) / 2`` similarities between distinct members (upper triangle)."""
    return S[np.triu_indices(S.shape[0], k=1)]


def pca_2d(S: np.ndarray) -> np.ndarray:
    """2-D PCA of the rows of ``S: (P, P)`` (member i = its similarities to all): ``(P, 2)``.

    The sign of each component is fixed (largest |loading| positive) so that
    plots of successive generations are comparable.
    """
    X = S.astype(np.float64) - S.mean(axis=0, keepdims=True)
    U, s, Vt = np.linalg.svd(X, full_matrices=False)
    coords = np.zeros((S.shape[0], 2))
    k = min(2, s.size)
    for c in range(k):
        sign = np.sign(Vt[c][np.argmax(np.abs(Vt[c]))]) or 1.0
        coords[:, c] = U[:, c] * s[c] * sign
    return coords
