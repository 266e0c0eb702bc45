"""Numba kernels: pure functions over arrays, no I/O, no validation (see ``genreg`` for wrappers)."""

from .activations import IDENTITY, RELU, SIGMOID, TANH, activate_inplace, fast_tanh
from .forward import genome_logits, population_logits, population_predict
from .sparse import count_active_features, fill_tiles

__all__ = [
    "IDENTITY",
    "RELU",
    "SIGMOID",
    "TANH",
    "activate_inplace",
    "count_active_features",
    "fill_tiles",
    "fast_tanh",
    "genome_logits",
    "population_logits",
    "population_predict",
]
