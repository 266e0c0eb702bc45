"""genreg: gradient-free neuroevolution of neural networks on the CPU (NumPy + Numba)."""

from genreg.errors import CheckpointError, ConfigError, DataError, FitnessError, GenregError, PopulationError
from genreg.network.layout import ACTIVATIONS, Layout, Tensor
from genreg.tasks.base import FitnessTask, Task

__version__ = "0.1.0"

__all__ = [
    "ACTIVATIONS",
    "FitnessError",
    "FitnessTask",
    "Genome",
    "Result",
    "Task",
    "evolve",
    "load_task",
    "resume",
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
    if name in ("evolve", "resume", "Genome", "Result"):  # the run machinery: loaded on first use
        from genreg import api

        return getattr(api, name)
    if name == "load_task":
        from genreg.tasks import load_task

        return load_task
    raise AttributeError(f"module 'genreg' has no attribute {name!r}")
