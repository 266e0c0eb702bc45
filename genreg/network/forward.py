"""Validated entry points to the forward kernels: the only functions callers should touch.

MLP layouts run the sparse-tile kernels (``genreg.kernels.population``); ConvNet layouts
(``Layout.is_conv``) run ``genreg.kernels.conv`` on the batch densified to float32 images
(pixels scaled as ``SparseBatch`` scales them), with the same outputs and scoring.
"""

from __future__ import annotations

import numba
import numpy as np

from genreg import kernels
from genreg.errors import ConfigError
from genreg.network.batch import SparseBatch
from genreg.network.layout import Layout
from genreg.network.variation import Brood


def _check_population(layout: Layout, W: np.ndarray) -> None:
    if not layout.is_conv:
        layout.require_plain("the Numba forward kernels")
    elif layout.has_blocks:
        raise ConfigError(f"the Numba forward kernels support ConvNets without parallel blocks only "
                          f"({layout.describe()})")
    if not isinstance(W, np.ndarray) or W.dtype != np.float32 or W.ndim != 2:
        raise TypeError(f"W must be a 2-D float32 array, got {getattr(W, 'dtype', type(W))} {np.shape(W)}")
    if W.shape[1] != layout.n_params:
        raise ValueError(f"W has {W.shape[1]} parameters per genome, layout {layout.describe()} needs {layout.n_params}")
    if not W.flags.c_contiguous:
        raise ValueError("W must be C-contiguous")


def _check_batch(layout: Layout, batch: SparseBatch) -> None:
    if batch.n_features != layout.n_inputs:
        raise ValueError(f"batch has {batch.n_features} features, layout expects {layout.n_inputs} inputs")


def _check_n_classes(layout: Layout, n_classes: int | None) -> int:
    n_classes = layout.n_outputs if n_classes is None else int(n_classes)
    if not 1 <= n_classes <= layout.n_outputs:
        raise ValueError(f"n_classes must be in [1, {layout.n_outputs}], got {n_classes}")
    return n_classes


def _as_batch(X) -> SparseBatch:
    return X if isinstance(X, SparseBatch) else SparseBatch.from_dense(X)


def _as_images(layout: Layout, X) -> np.ndarray:
    """``(B, H * W * C) float32`` C-contiguous images of a ConvNet from a ``SparseBatch`` or a
    ``(B, n_inputs)`` array, with the values the sparse tiles would hold (uint8 pixels / 255)."""
    if isinstance(X, SparseBatch):
        images = X.to_dense()
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"a batch must be 2-D (samples, features), got shape {X.shape}")
        if X.dtype.kind not in "uif":
            raise TypeError(f"a batch must hold numbers, got dtype {X.dtype}")
        images = X.astype(np.float32)
        if X.dtype == np.uint8:
            images /= np.float32(255.0)  # as SparseBatch.from_dense: float32(pixel) / float32(255)
    if images.shape[1] != layout.n_inputs:
        raise ValueError(f"batch has {images.shape[1]} features, layout expects {layout.n_inputs} inputs")
    return np.ascontiguousarray(images, dtype=np.float32)


def _conv_arguments(layout: Layout) -> tuple:
    """(stage table, dense sizes, activation code) of a ConvNet for ``genreg.kernels.conv``."""
    return layout.stage_table(), layout.sizes_array(), layout.hidden_code


def population_logits(layout: Layout, W: np.ndarray, X) -> np.ndarray:
    """Logits of every genome on a shared batch.

    W: ``(P, n_params) float32``; X: ``SparseBatch`` or ``(B, n_inputs)`` array.
    Returns ``(P, B, n_outputs) float32``.
    """
    if layout.is_conv:
        _check_population(layout, W)
        images = _as_images(layout, X)
        out = np.empty((W.shape[0], images.shape[0], layout.n_outputs), dtype=np.float32)
        kernels.conv_population_logits(W, *_conv_arguments(layout), images, out, numba.get_num_threads())
        return out
    batch = _as_batch(X)
    _check_population(layout, W)
    _check_batch(layout, batch)
    out = np.empty((W.shape[0], batch.n_samples, layout.n_outputs), dtype=np.float32)
    kernels.population_logits(
        W, layout.sizes_array(), layout.hidden_code, batch.tile_ptr, batch.rows, batch.values, out,
        numba.get_num_threads(),
    )
    return out


def _predict_arguments(layout: Layout, W: np.ndarray, X, labels, n_classes, n_genomes: int):
    """Checked inputs and new outputs of the fused predict kernels:
    (batch, labels int32, n_classes, predictions ``(n_genomes, B) int32``, n_correct ``(n_genomes,) int64``);
    for a ConvNet the batch is its ``(B, n_inputs) float32`` images."""
    if layout.is_conv:
        _check_population(layout, W)
        batch = _as_images(layout, X)
        n_samples = batch.shape[0]
    else:
        batch = _as_batch(X)
        _check_population(layout, W)
        _check_batch(layout, batch)
        n_samples = batch.n_samples
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    if labels.shape != (n_samples,):
        raise ValueError(f"labels must have shape ({n_samples},), got {labels.shape}")
    n_classes = _check_n_classes(layout, n_classes)
    predictions = np.empty((n_genomes, n_samples), dtype=np.int32)
    return batch, labels, n_classes, predictions, np.empty(n_genomes, dtype=np.int64)


def population_predict(layout: Layout, W: np.ndarray, X, labels: np.ndarray, n_classes: int | None = None):
    """Fused forward, argmax and scoring of every genome on a shared batch.

    W: ``(P, n_params) float32``; X: ``SparseBatch`` or ``(B, n_inputs)``; labels: ``(B,)`` ints.
    n_classes: argmax over the first ``n_classes`` outputs (default: all outputs).
    Returns ``(predictions (P, B) int32, n_correct (P,) int64)``.
    """
    batch, labels, n_classes, predictions, n_correct = _predict_arguments(layout, W, X, labels, n_classes, W.shape[0])
    if layout.is_conv:
        kernels.conv_population_predict(W, *_conv_arguments(layout), batch, labels, n_classes, predictions, n_correct,
                                        numba.get_num_threads())
        return predictions, n_correct
    kernels.population_predict(
        W, layout.sizes_array(), layout.hidden_code, batch.tile_ptr, batch.rows, batch.values,
        labels, n_classes, predictions, n_correct, numba.get_num_threads(),
    )
    return predictions, n_correct


def brood_predict(layout: Layout, brood: Brood, X, labels: np.ndarray, n_classes: int | None = None):
    """``population_predict`` of the children ``brood.build()`` would make, without building them.

    Same results, bit for bit; see ``genreg.variation.Brood``.  X: ``SparseBatch`` or
    ``(B, n_inputs)``; labels: ``(B,)``.  Returns ``(predictions (C, B) int32, n_correct (C,) int64)``.
    """
    batch, labels, n_classes, predictions, n_correct = _predict_arguments(layout, brood.source, X, labels, n_classes,
                                                                          brood.size)
    order = np.argsort(brood.parents, kind="stable")  # children of one parent one after another
    if layout.is_conv:
        kernels.conv_brood_predict(*brood.kernel_arguments(), order, *_conv_arguments(layout), batch, labels,
                                   n_classes, predictions, n_correct, numba.get_num_threads())
        return predictions, n_correct
    kernels.brood_predict(
        *brood.kernel_arguments(), order, layout.sizes_array(), layout.hidden_code, batch.tile_ptr, batch.rows,
        batch.values, labels, n_classes, predictions, n_correct, numba.get_num_threads(),
    )
    return predictions, n_correct


def predict_from_logits(logits: np.ndarray, labels: np.ndarray, n_classes: int):
    """Argmax and scoring of logits ``(P, B, n_out)`` from ``population_logits`` (as the fused kernel does).

    Returns ``(predictions (P, B) int32, n_correct (P,) int64)``.
    """
    logits = np.ascontiguousarray(logits, dtype=np.float32)
    labels = np.ascontiguousarray(labels, dtype=np.int32)
    if logits.ndim != 3 or labels.shape != (logits.shape[1],) or not 1 <= n_classes <= logits.shape[2]:
        raise ValueError(f"need logits (P, B, n_out), labels (B,) and 1 <= n_classes <= n_out; "
                         f"got {logits.shape}, {labels.shape}, {n_classes}")
    predictions = np.empty(logits.shape[:2], dtype=np.int32)
    n_correct = np.empty(logits.shape[0], dtype=np.int64)
    kernels.predict_from_logits(logits, labels, int(n_classes), predictions, n_correct)
    return predictions, n_correct


def genome_logits(layout: Layout, w: np.ndarray, X) -> np.ndarray:
    """Logits of one genome ``w: (n_params,) float32`` on N samples; returns ``(N, n_outputs) float32``."""
    if layout.is_conv:
        w = np.ascontiguousarray(w, dtype=np.float32)
        _check_population(layout, w[None, :])
        images = _as_images(layout, X)
        out = np.empty((1, images.shape[0], layout.n_outputs), dtype=np.float32)
        kernels.conv_population_logits(w[None, :], *_conv_arguments(layout), images, out, numba.get_num_threads())
        return out[0]
    batch = _as_batch(X)
    w = np.ascontiguousarray(w, dtype=np.float32)
    _check_population(layout, w[None, :])
    _check_batch(layout, batch)
    out = np.empty((batch.n_samples, layout.n_outputs), dtype=np.float32)
    kernels.genome_logits(
        w, layout.sizes_array(), layout.hidden_code, batch.tile_ptr, batch.rows, batch.values, out,
        numba.get_num_threads(),
    )
    return out


def genome_predict(layout: Layout, w: np.ndarray, X, n_classes: int | None = None) -> np.ndarray:
    """Predicted class of one genome on N samples (argmax of the first ``n_classes`` logits); ``(N,) int64``."""
    n_classes = _check_n_classes(layout, n_classes)
    return np.argmax(genome_logits(layout, w, X)[:, :n_classes], axis=1)


def conv_features(layout: Layout, w: np.ndarray, X) -> np.ndarray:
    """What a ConvNet genome ``w: (n_params,) float32`` feeds its dense layers: the last stage's output
    on N images, flattened in (h, w, c) order; ``(N, layout.sizes[0]) float32``."""
    if not layout.is_conv:
        raise ValueError("conv_features needs a ConvNet layout")
    w = np.ascontiguousarray(w, dtype=np.float32)
    _check_population(layout, w[None, :])
    images = _as_images(layout, X)
    out = np.empty((images.shape[0], layout.sizes[0]), dtype=np.float32)
    kernels.conv_features(w, layout.stage_table(), layout.hidden_code, images, out, numba.get_num_threads())
    return out
