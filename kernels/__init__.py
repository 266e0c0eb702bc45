"""Numba kernels: pure functions over arrays, no I/O, no validation (see ``genreg`` for wrappers)."""

from .activations import IDENTITY, RELU, SIGMOID, TANH, activate_inplace, fast_tanh
from .forward import genome_logits, population_logits, population_predict

__all__ = [
    "IDENTITY",
    "RELU",
    "SIGMOID",
    "TANH",
    "activate_inplace",
    "fast_tanh",
    "genome_logits",
    "population_logits",
    "population_predict",
]
