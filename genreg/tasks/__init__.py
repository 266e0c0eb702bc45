"""Data sets: MNIST loading, validation splits and balanced episode sampling; tabular CSVs and the trig task."""

from genreg.tasks.mnist import (
    FILES,
    MIRRORS,
    MNIST,
    SHA256,
    EpisodeSampler,
    Split,
    load_mnist,
    read_idx_images,
    read_idx_labels,
    resolve_data_dir,
    to_float,
)
from genreg.tasks.tabular import TabularSplits, load_boston, load_wine, make_trig

__all__ = [
    "FILES",
    "MIRRORS",
    "MNIST",
    "SHA256",
    "EpisodeSampler",
    "Split",
    "TabularSplits",
    "load_boston",
    "load_mnist",
    "load_wine",
    "make_trig",
    "read_idx_images",
    "read_idx_labels",
    "resolve_data_dir",
    "to_float",
]
