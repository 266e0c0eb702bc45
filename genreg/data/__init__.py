"""Data sets: MNIST loading, validation splits and balanced episode sampling."""

from .mnist import (
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

__all__ = [
    "FILES",
    "MIRRORS",
    "MNIST",
    "SHA256",
    "EpisodeSampler",
    "Split",
    "load_mnist",
    "read_idx_images",
    "read_idx_labels",
    "resolve_data_dir",
    "to_float",
]
