"""SparseBatch: a batch of inputs in CSR form, the input format of every forward kernel."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SparseBatch:
    """B input vectors of length ``n_features``, zeros dropped (CSR).

    indptr: ``(B + 1,) int64`` — sample ``s`` owns entries ``indptr[s]:indptr[s+1]``.
    indices: ``(nnz,) int32`` — feature index of each stored entry (ascending per sample).
    values: ``(nnz,) float32`` — its value (for uint8 images: pixel / 255).
    """

    indptr: np.ndarray
    indices: np.ndarray
    values: np.ndarray
    n_features: int

    @property
    def n_samples(self) -> int:
        return self.indptr.shape[0] - 1

    @property
    def density(self) -> float:
        """Fraction of non-zero entries."""
        return self.values.shape[0] / max(1, self.n_samples * self.n_features)

    @classmethod
    def from_dense(cls, X: np.ndarray) -> "SparseBatch":
        """Build from ``X: (B, n_features)``; uint8 is read as pixels and scaled by 1/255."""
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"a batch must be 2-D (samples, features), got shape {X.shape}")
        rows, cols = np.nonzero(X)
        values = X[rows, cols]
        if X.dtype == np.uint8:
            values = values.astype(np.float32) / np.float32(255.0)
        else:
            values = values.astype(np.float32)
        counts = np.bincount(rows, minlength=X.shape[0])
        indptr = np.zeros(X.shape[0] + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        return cls(indptr, cols.astype(np.int32), np.ascontiguousarray(values), int(X.shape[1]))

    def to_dense(self) -> np.ndarray:
        """Return the batch as ``(B, n_features) float32``."""
        X = np.zeros((self.n_samples, self.n_features), dtype=np.float32)
        rows = np.repeat(np.arange(self.n_samples), np.diff(self.indptr))
        X[rows, self.indices] = self.values
        return X
