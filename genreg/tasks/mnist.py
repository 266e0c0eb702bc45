"""MNIST and Fashion-MNIST: where their IDX files live, where to download them, and balanced episodes.

Images stay ``uint8`` in memory: ``(N, 784)`` rows of 28x28 pixels, row-major;
labels are ``(N,) uint8`` in ``0..9``.  Arrays returned by :func:`load_mnist` and
:func:`load_fashion_mnist` are read-only because one loaded copy is shared by
every caller in the process; use :func:`to_float` (a fresh ``float32`` array) or
``.copy()`` to get writable data.  Reading, downloading and checking the files
is :mod:`genreg.tasks.idx`; where they live and where they come from, :mod:`genreg.tasks.datasets`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks import datasets
from genreg.tasks.datasets import (FASHION_CLASSES, FASHION_GZ_MD5, FASHION_GZ_SHA256, FASHION_MIRRORS,
                                   FASHION_SOURCE, FILES, MIRRORS, MNIST_SOURCE, SHA256)
from genreg.tasks.idx import ImageSet, Split, load_idx, to_float

#: A loaded MNIST-like data set (the arrays and their directory).
MNIST = ImageSet
DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
#: At most this many classes are listed in an error message (the rest are counted).
MAX_LISTED_CLASSES = 10

__all__ = ["DOWNLOAD_TIMEOUT", "FASHION_CLASSES", "FASHION_GZ_MD5", "FASHION_GZ_SHA256", "FASHION_MIRRORS",
           "FASHION_SOURCE", "FILES", "MIRRORS", "MNIST", "MNIST_SOURCE", "SHA256", "EpisodeSampler", "Split",
           "load_fashion_mnist", "load_mnist", "resolve_data_dir", "resolve_fashion_dir", "to_float"]


def _load(name: str, data_dir, download: bool, mirrors) -> ImageSet:
    folder = datasets.require(name, data_dir, download_missing=download, mirrors=mirrors, timeout=DOWNLOAD_TIMEOUT)
    return load_idx(datasets.get(name).idx, folder, hint=datasets.hint(name))


# ----------------------------------------------------------------------------- MNIST


def resolve_data_dir(data_dir=None) -> Path:
    """The MNIST folder, absolute: ``<root>/mnist`` where the data root is ``data_dir``, else
    ``$GENREG_DATA``, else ``$XDG_CACHE_HOME/genreg`` (default ``~/.cache/genreg``).

    A ``data_dir`` that holds the files itself, or is named ``mnist``, is taken as the folder
    (see :func:`genreg.tasks.datasets.dataset_dir`).
    """
    return datasets.dataset_dir("mnist", data_dir)


def load_mnist(data_dir=None, *, download: bool = True, mirrors=None) -> ImageSet:
    """Load (downloading missing files unless ``download=False``) the MNIST data set.

    data_dir: the data root, or the folder of the four IDX files (see :func:`resolve_data_dir`).
    mirrors: base URLs to download from (default ``$GENREG_MNIST_MIRRORS`` or :data:`MIRRORS`).
    Downloads are verified against :data:`SHA256` before being moved into the folder.
    The result is cached in-process, keyed on the directory (and the files' size/mtime).
    Raises DataError when files are missing, unobtainable, corrupt or inconsistent.
    """
    return _load("mnist", data_dir, download, mirrors)


# ----------------------------------------------------------------------------- Fashion-MNIST


def resolve_fashion_dir(data_dir=None) -> Path:
    """The Fashion-MNIST folder, absolute: ``<root>/fashion-mnist`` (the root as for MNIST).

    A ``data_dir`` named ``fashion-mnist`` is taken as the folder itself.  (Never the root's own
    files: MNIST's files have the same names.)
    """
    return datasets.dataset_dir("fashion-mnist", data_dir)


def load_fashion_mnist(data_dir=None, *, download: bool = True, mirrors=None) -> ImageSet:
    """Load (downloading missing files unless ``download=False``) Fashion-MNIST: 60,000 training and
    10,000 test 28x28 images of :data:`FASHION_CLASSES`.

    data_dir: the data root (see :func:`resolve_fashion_dir`).
    mirrors: base URLs (default ``$GENREG_FASHION_MNIST_MIRRORS`` or :data:`FASHION_MIRRORS`);
    downloads are checked against :data:`FASHION_GZ_SHA256` and :data:`FASHION_GZ_MD5`.
    """
    return _load("fashion-mnist", data_dir, download, mirrors)


# ----------------------------------------------------------------------------- episodes


class EpisodeSampler:
    """Balanced episodes: ``k_per_class`` example indices of each of ``n_classes`` classes.

    labels: ``(N,)`` integer labels in ``0..n_classes-1`` (e.g. ``Split.labels``).
    ``indices(episode)`` is fully determined by ``(seed, episode)``; indices within
    one class are distinct.  Output order is class-major: all of class 0, then 1, ...
    class_names: ``(n_classes,)`` names for error messages (default: the class numbers).
    held_out: ``{"validation": (n_val,) labels, ...}``, to say when a class missing from
    ``labels`` is found only there.
    """

    def __init__(self, labels, k_per_class: int, seed: int, n_classes: int = 10, *, class_names: tuple = (),
                 held_out: dict | None = None):
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
        self.k_per_class, self.n_classes, self.seed = int(k_per_class), int(n_classes), int(seed)
        for what, value, low in (("k_per_class", self.k_per_class, 1), ("n_classes", self.n_classes, 1),
                                 ("seed", self.seed, 0)):
            if value < low:
                raise ValueError(f"{what} must be >= {low}, got {value}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise DataError(f"labels must lie in 0..{self.n_classes - 1}, found {labels.min()}..{labels.max()}")
        counts = np.bincount(labels.astype(np.int64), minlength=self.n_classes)
        if counts.min() < self.k_per_class:
            raise DataError(too_few_message(counts, self.k_per_class, class_names, held_out or {}))
        order = np.argsort(labels, kind="stable").astype(np.int64)
        self._by_class = tuple(np.split(order, np.cumsum(counts)[:-1]))
        self.episode = 0  # the episode number the next draw() uses

    @property
    def episode_size(self) -> int:
        return self.n_classes * self.k_per_class

    def indices(self, episode: int) -> np.ndarray:
        """``(n_classes * k_per_class,) int64`` row indices for episode number ``episode``."""
        episode = int(episode)
        if episode < 0:
            raise ValueError(f"episode must be non-negative, got {episode}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, episode]))
        k, out = self.k_per_class, np.empty(self.episode_size, dtype=np.int64)
        for c, members in enumerate(self._by_class):
            out[c * k : (c + 1) * k] = members[rng.choice(members.size, size=k, replace=False)]
        return out

    def draw(self) -> np.ndarray:
        """Indices for the next episode number (then advance the counter)."""
        out = self.indices(self.episode)
        self.episode += 1
        return out


def too_few_message(counts: np.ndarray, k: int, class_names: tuple = (), held_out: dict | None = None) -> str:
    """One line saying which classes have fewer than ``k`` training examples (``counts: (n_classes,)``)
    and what to do: lower ``samples_per_class`` when every class has some, else give the missing
    classes training rows (naming the ``held_out`` parts a class is found only in).
    At most :data:`MAX_LISTED_CLASSES` classes are listed.
    """
    short = np.flatnonzero(counts < k)
    items = [f"{_class_label(c, class_names)}: {counts[c]}{_only_in(c, counts, held_out or {})}"
             for c in short[:MAX_LISTED_CLASSES]]
    if short.size > MAX_LISTED_CLASSES:
        items.append(f"and {short.size - MAX_LISTED_CLASSES} more classes")
    message = (f"episodes of {k} samples per class need {k} training examples of every class; "
               f"too few in {', '.join(items)}")
    fewest = int(counts.min())
    if fewest > 0:
        return message + f"; lower samples_per_class to {fewest} (--set samples_per_class={fewest})"
    return message + "; every class needs training examples (add training rows of it, or drop the class)"


def _class_label(c: int, class_names: tuple) -> str:
    return f"class {class_names[c]!r}" if c < len(class_names) else f"class {c}"


def _only_in(c: int, counts: np.ndarray, held_out: dict) -> str:
    """`` (found only in the test labels)`` for a class with no training example that ``held_out`` has."""
    if counts[c]:
        return ""
    parts = [part for part, labels in held_out.items() if np.any(np.asarray(labels) == c)]
    return f" (found only in the {' and '.join(parts)} labels, not in training)" if parts else ""
