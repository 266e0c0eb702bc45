"""Score a population on one episode of a task: the fused forward kernels, or the user's callable.

Every genome of a generation sees the same episode.  Classification counts
correct predictions (and, when a strategy asks, the mean cross-entropy);
regression measures the mean squared error of the standardised targets; a
fitness task calls the user's function on the built rows.
"""

from __future__ import annotations

import numpy as np

from genreg.network.batch import SparseBatch
from genreg.network.forward import brood_predict, genome_logits, population_logits, population_predict, predict_from_logits
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.strategies.base import Evaluation


def mean_cross_entropy(logits: np.ndarray, labels: np.ndarray, n_classes: int) -> np.ndarray:
    """Mean softmax cross-entropy per genome: logits ``(P, B, >= C)``, labels ``(B,)`` -> ``(P,)``."""
    z = logits[:, :, :n_classes].astype(np.float64)
    z = z - z.max(axis=2, keepdims=True)
    log_softmax = z - np.log(np.exp(z).sum(axis=2, keepdims=True))
    return -log_softmax[:, np.arange(labels.shape[0]), labels].mean(axis=1)


def mean_squared_error(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """Mean squared error per genome: outputs ``(P, B, >= k)``, targets ``(B, k)`` -> ``(P,) float64``."""
    k = targets.shape[1]
    err = outputs[:, :, :k].astype(np.float64) - targets[None, :, :].astype(np.float64)
    return np.mean(err * err, axis=(1, 2))


def classify(pop: Population, batch: SparseBatch, labels: np.ndarray, n_classes: int,
             with_loss: bool) -> Evaluation:
    """One forward pass of every genome over a classification episode (labels ``(B,) int64``).

    A brood's children (GENREG) are scored without being built; ``with_loss`` computes
    logits once and derives both the predictions and the cross-entropy from them.
    """
    layout = pop.layout
    if with_loss:
        logits = population_logits(layout, pop.build(), batch)
        predictions, n_correct = predict_from_logits(logits, labels, n_classes)
        loss = mean_cross_entropy(logits, labels, n_classes)
    elif pop.W is None:
        (predictions, n_correct), loss = brood_predict(layout, pop.brood, batch, labels, n_classes), None
    else:
        (predictions, n_correct), loss = population_predict(layout, pop.W, batch, labels, n_classes), None
    return Evaluation(labels.shape[0], n_correct=n_correct, loss=loss, predictions=predictions, labels=labels)


def regress(pop: Population, batch: SparseBatch, targets: np.ndarray) -> Evaluation:
    """Every genome's mean squared error on a regression episode (targets ``(B, k)`` standardised)."""
    outputs = population_logits(pop.layout, pop.build(), batch)
    return Evaluation(targets.shape[0], loss=mean_squared_error(outputs, targets))


def validation_score(layout: Layout, row: np.ndarray, batch: SparseBatch, y: np.ndarray, classification: bool,
                     n_outputs: int) -> float:
    """Accuracy (classification) or mean squared error of standardised targets (regression) of one genome."""
    logits = genome_logits(layout, row, batch)
    if classification:
        return float((np.argmax(logits[:, :n_outputs], axis=1) == y).mean())
    return float(mean_squared_error(logits[None], y)[0])
