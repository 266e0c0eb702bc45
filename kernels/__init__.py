"""Numba kernels: pure functions over arrays, no I/O, no validation (see ``genreg`` for wrappers)."""

from .activations import IDENTITY, RELU, SIGMOID, TANH, activate_inplace, fast_tanh
from .conv import conv_brood_predict, conv_features, conv_population_logits, conv_population_predict
from .forward import predict_from_logits
from .population import brood_predict, genome_logits, make_children, population_logits, population_predict
from .rng import stream_key
from .sparse import count_active_features, fill_tiles
from .variation import gene_crossover, mask_crossover, mutate_row, mutate_rows, stream_keys

__all__ = [
    "IDENTITY",
    "RELU",
    "SIGMOID",
    "TANH",
    "activate_inplace",
    "brood_predict",
    "conv_brood_predict",
    "conv_features",
    "conv_population_logits",
    "conv_population_predict",
    "count_active_features",
    "fill_tiles",
    "fast_tanh",
    "gene_crossover",
    "genome_logits",
    "make_children",
    "mask_crossover",
    "mutate_row",
    "mutate_rows",
    "population_logits",
    "population_predict",
    "predict_from_logits",
    "stream_key",
    "stream_keys",
]
