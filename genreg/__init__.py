"""genreg: gradient-free neuroevolution of neural networks on the CPU (NumPy + Numba)."""

from .errors import CheckpointError, ConfigError, DataError, GenregError, PopulationError
from .layout import ACTIVATIONS, Layout, Tensor

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
]
