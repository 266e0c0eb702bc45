"""SparseBatch: a batch of inputs cut into tiles of active features, the input of every forward kernel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreg import kernels
from genreg.kernels.simd import TILE


@dataclass(frozen=True)
class SparseBatch:
    """B input vectors of length ``n_features`` in tiles of ``TILE`` samples, zeros dropped.

    tile_ptr: ``(n_tiles + 1,) int64`` — tile t owns entries ``tile_ptr[t]:tile_ptr[t+1]``.
    rows: ``(n_active,) int32`` — features non-zero in at least one sample of the tile (ascending).
    values: ``(n_active, TILE) float32`` — the tile's values there (uint8 pixels become pixel/255).
    n_samples: B; samples past B in the last tile are zero padding.
    """

    tile_ptr: np.ndarray
    rows: np.ndarray
    values: np.ndarray
    n_samples: int
    n_features: int

    @property
    def n_tiles(self) -> int:
        return self.tile_ptr.shape[0] - 1

    @property
    def density(self) -> float:
        """Fraction of the dense B x n_features work the kernels actually do."""
        return self.rows.shape[0] * TILE / max(1, self.n_tiles * TILE * self.n_features)

    @classmethod
    def from_dense(cls, X: np.ndarray) -> "SparseBatch":
        """Build from ``X: (B, n_features)``; uint8 is read as pixels and scaled by 1/255."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"a batch must be 2-D (samples, features), got shape {X.shape}")
        if X.dtype.kind not in "uif":
            raise TypeError(f"a batch must hold numbers, got dtype {X.dtype}")
        if X.dtype.kind == "f" and X.dtype != np.float32:
            X = X.astype(np.float32)
        X = np.ascontiguousarray(X)
        # Pixels are stored as uint8 and become pixel/255 only here, where a kernel needs them.
        divisor = np.float32(255.0) if X.dtype == np.uint8 else np.float32(1.0)
        n_tiles = -(-X.shape[0] // TILE)
        counts = np.empty(n_tiles, dtype=np.int64)
        kernels.count_active_features(X, counts)
        tile_ptr = np.zeros(n_tiles + 1, dtype=np.int64)
        np.cumsum(counts, out=tile_ptr[1:])
        rows = np.empty(tile_ptr[-1], dtype=np.int32)
        values = np.empty((tile_ptr[-1], TILE), dtype=np.float32)
        kernels.fill_tiles(X, divisor, tile_ptr, rows, values)
        return cls(tile_ptr, rows, values, int(X.shape[0]), int(X.shape[1]))

    def to_dense(self) -> np.ndarray:
        """Return the batch as ``(B, n_features) float32``."""
        X = np.zeros((self.n_tiles * TILE, self.n_features), dtype=np.float32)
        for t in range(self.n_tiles):
            sl = slice(self.tile_ptr[t], self.tile_ptr[t + 1])
            X[t * TILE : (t + 1) * TILE, self.rows[sl]] = self.values[sl].T
        return X[: self.n_samples]
