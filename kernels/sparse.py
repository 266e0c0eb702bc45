"""Dense rows to tiles: the input format of the forward kernels.

A batch of B samples is cut into tiles of ``TILE`` consecutive samples.  For each
tile we keep only the features that are non-zero in at least one of its
samples (``rows``) and the tile's values there (``values: (n_active, TILE)``,
zero where a sample is inactive; padding samples past B are all zero).  MNIST
pixels are ~80% zero; about half of the 784 pixels are active in a tile of 8.
"""

import numba
import numpy as np

from ._config import jit
from .simd import TILE
from .workqueue import claim, run_workers


@jit
def tile_active_mask(X, t, mask):
    """Set ``mask: (n,) bool`` to the features non-zero in any sample of tile ``t`` of ``X: (B, n)``; returns their number."""
    mask[:] = False
    for s in range(t * TILE, min(X.shape[0], (t + 1) * TILE)):
        row = X[s]
        for i in range(row.shape[0]):
            mask[i] |= row[i] != 0
    count = 0
    for i in range(mask.shape[0]):
        count += mask[i]
    return count


@jit
def tiles_worker(X, divisor, tile_ptr, rows, values, counts, queue):
    """One worker of ``count_active_features`` (if ``counts`` is not empty) or of ``fill_tiles``:
    counts or writes the tiles it takes from ``queue`` (``genreg.kernels.workqueue``)."""
    mask = np.empty(X.shape[1], np.bool_)
    n_tiles = counts.shape[0] if counts.shape[0] > 0 else tile_ptr.shape[0] - 1
    t = claim(queue)
    while t < n_tiles:
        n_active = tile_active_mask(X, t, mask)
        if counts.shape[0] > 0:
            counts[t] = n_active
        else:
            p = tile_ptr[t]
            for i in range(X.shape[1]):
                if mask[i]:
                    rows[p] = i
                    p += 1
            start, stop = tile_ptr[t], tile_ptr[t + 1]
            for p in range(start, stop):
                for s in range(TILE):
                    values[p, s] = np.float32(0.0)
            for s in range(t * TILE, min(X.shape[0], (t + 1) * TILE)):
                row = X[s]
                for p in range(start, stop):
                    values[p, s - t * TILE] = np.float32(row[rows[p]]) / divisor
        t = claim(queue)


_NO_PTR = np.zeros(1, np.int64)
_NO_ROWS = np.zeros(0, np.int32)
_NO_VALUES = np.zeros((0, TILE), np.float32)
_NO_COUNTS = np.zeros(0, np.int64)


#: Below this many entries of X, one thread cuts the tiles faster than two (waking a pool thread
#: costs ~60 us; measured on 2 cores: 200 MNIST images 131 us on one thread, 240 us on two).
SERIAL_ENTRIES = 1 << 19


def _workers(X) -> int:
    return 1 if X.size < SERIAL_ENTRIES else numba.get_num_threads()


def count_active_features(X, counts):
    """Fill ``counts: (n_tiles,) int64`` with the number of features active in each tile of ``X: (B, n)``."""
    if counts.shape[0] > 0:
        run_workers(tiles_worker, (X, np.float32(1.0), _NO_PTR, _NO_ROWS, _NO_VALUES, counts), _workers(X))


def fill_tiles(X, divisor, tile_ptr, rows, values):
    """Write the tiles of ``X: (B, n)`` (``tile_ptr: (n_tiles + 1,)`` already holds the starts).

    rows: ``(n_active,) int32`` feature index; values: ``(n_active, TILE) float32`` = X / divisor.
    """
    run_workers(tiles_worker, (X, np.float32(divisor), tile_ptr, rows, values, _NO_COUNTS), _workers(X))
