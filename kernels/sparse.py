"""Dense rows to tiles: the input format of the forward kernels.

A batch of B samples is cut into tiles of ``TILE`` consecutive samples.  For each
tile we keep only the features that are non-zero in at least one of its
samples (``rows``) and the tile's values there (``values: (n_active, TILE)``,
zero where a sample is inactive; padding samples past B are all zero).  MNIST
pixels are ~80% zero; about half of the 784 pixels are active in a tile of 8.
"""

import numpy as np
from numba import prange

from ._config import jit, parallel_jit
from .simd import TILE


@jit
def tile_active_mask(X, t, mask):
    """Set ``mask: (n,) bool`` to the features non-zero in any sample of tile ``t`` of ``X: (B, n)``."""
    mask[:] = False
    for s in range(t * TILE, min(X.shape[0], (t + 1) * TILE)):
        row = X[s]
        for i in range(row.shape[0]):
            mask[i] |= row[i] != 0


@parallel_jit
def count_active_features(X, counts):
    """Fill ``counts: (n_tiles,) int64`` with the number of features active in each tile of ``X: (B, n)``."""
    for t in prange(counts.shape[0]):
        mask = np.empty(X.shape[1], np.bool_)
        tile_active_mask(X, t, mask)
        counts[t] = np.count_nonzero(mask)


@parallel_jit
def fill_tiles(X, divisor, tile_ptr, rows, values):
    """Write the tiles of ``X: (B, n)`` (``tile_ptr: (n_tiles + 1,)`` already holds the starts).

    rows: ``(n_active,) int32`` feature index; values: ``(n_active, TILE) float32`` = X / divisor.
    """
    for t in prange(tile_ptr.shape[0] - 1):
        mask = np.empty(X.shape[1], np.bool_)
        tile_active_mask(X, t, mask)
        p = tile_ptr[t]
        for i in range(X.shape[1]):
            if mask[i]:
                rows[p] = i
                p += 1
        start, stop = tile_ptr[t], tile_ptr[t + 1]
        values[start:stop, :] = np.float32(0.0)
        for s in range(t * TILE, min(X.shape[0], (t + 1) * TILE)):
            row = X[s]
            for p in range(start, stop):
                values[p, s - t * TILE] = np.float32(row[rows[p]]) / divisor
