"""genreg: gradient-free neuroevolution of neural networks on the CPU (NumPy + Numba)."""

from genreg.errors import CheckpointError, ConfigError, DataError, GenregError, PopulationError
from genreg.network.layout import ACTIVATIONS, Layout, Tensor

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "CheckpointError",
    "ConfigError",
    "DataError",
    "GenregError",
    "Layout",
    "PopulationError",
    "Tensor",
    "__version__",
    "merge_weights",
]


def __getattr__(name):
    # merge_weights (the weight-merge crossover) imports scipy: loaded on first use only.
    if name == "merge_weights":
        from genreg.hpo.merge import merge_weights

        return merge_weights
    raise AttributeError(f"module 'genreg' has no attribute {name!r}")
