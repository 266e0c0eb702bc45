"""MNIST and Fashion-MNIST: where their IDX files live, where to download them, and balanced episodes.

Images stay ``uint8`` in memory: ``(N, 784)`` rows of 28x28 pixels, row-major;
labels are ``(N,) uint8`` in ``0..9``.  Arrays returned by :func:`load_mnist` and
:func:`load_fashion_mnist` are read-only because one loaded copy is shared by
every caller in the process; use :func:`to_float` (a fresh ``float32`` array) or
``.copy()`` to get writable data.  Reading, downloading and checking the files
is :mod:`genreg.tasks.idx`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks.idx import IdxSource, ImageSet, Split, default_root, find_file, load_idx, to_float

#: A loaded MNIST-like data set (the arrays and their directory).
MNIST = ImageSet

#: The four files, without the optional ``.gz`` suffix (the same names for Fashion-MNIST).
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: sha256 of the *decompressed* MNIST files: pins the content whatever the gzip wrapping.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Base URLs tried in order; each serves ``<base>/<file>.gz``.  Overridden by the
#: ``mirrors=`` argument or by ``$GENREG_MNIST_MIRRORS`` (comma-separated).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation

#: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence): the labels 0..9 name these articles.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
#: Base URLs tried in order (overridden by ``$GENREG_FASHION_MNIST_MIRRORS``): the data folder
#: of github.com/zalandoresearch/fashion-mnist and the project's S3 mirror, which serve the same .gz files.
FASHION_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# No published checksum of the *decompressed* Fashion-MNIST files was found, so a download is
# checked as the .gz file the mirrors publish, against both published digests:
#: md5 of the .gz files: the "Get the Data" table of the zalandoresearch/fashion-mnist README
#: (torchvision's FashionMNIST.resources list the same).
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: sha256 of the .gz files (26421880, 29515, 4422102 and 5148 bytes): tensorflow/datasets,
#: tensorflow_datasets/url_checksums/fashion_mnist.txt.
FASHION_GZ_SHA256 = {
    "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

MNIST_SOURCE = IdxSource(title="MNIST", folder="mnist", files=FILES, mirrors=MIRRORS,
                         mirrors_env="GENREG_MNIST_MIRRORS", classes=tuple(str(d) for d in range(10)),
                         sha256=SHA256)
FASHION_SOURCE = IdxSource(title="Fashion-MNIST", folder="fashion-mnist", files=FILES, mirrors=FASHION_MIRRORS,
                           mirrors_env="GENREG_FASHION_MNIST_MIRRORS", classes=FASHION_CLASSES,
                           gz_sha256=FASHION_GZ_SHA256, gz_md5=FASHION_GZ_MD5)


# ----------------------------------------------------------------------------- MNIST


def resolve_data_dir(data_dir=None) -> Path:
    """The MNIST directory, absolute: ``data_dir`` if given, else ``$GENREG_DATA/mnist``,
    else ``$XDG_CACHE_HOME/genreg/mnist`` (default ``~/.cache/genreg/mnist``).

    An explicit ``data_dir`` that lacks the files but has a ``mnist/`` subdirectory
    holding them (a data root such as ``GENREG_DATA``) resolves to that subdirectory.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not any(find_file(path, n) for n in FILES) and any(find_file(path / "mnist", n) for n in FILES):
            path = path / "mnist"
    else:
        path = default_root() / "mnist"
    return path.resolve()


def load_mnist(data_dir=None, *, download: bool = True, mirrors=None) -> ImageSet:
    """Load (downloading missing files unless ``download=False``) the MNIST data set.

    data_dir: directory of the four IDX files (see :func:`resolve_data_dir`).
    mirrors: base URLs to download from (default ``$GENREG_MNIST_MIRRORS`` or :data:`MIRRORS`).
    Downloads are verified against :data:`SHA256` before being moved into ``data_dir``.
    The result is cached in-process, keyed on the directory (and the files' size/mtime).
    Raises DataError when files are missing, unobtainable, corrupt or inconsistent.
    """
    return load_idx(MNIST_SOURCE, resolve_data_dir(data_dir), download=download, mirrors=mirrors,
                    timeout=DOWNLOAD_TIMEOUT)


# ----------------------------------------------------------------------------- Fashion-MNIST


def resolve_fashion_dir(data_dir=None) -> Path:
    """The Fashion-MNIST directory, absolute: ``<root>/fashion-mnist`` where the root is ``data_dir``,
    else ``$GENREG_DATA``, else ``$XDG_CACHE_HOME/genreg`` (default ``~/.cache/genreg``).

    A ``data_dir`` named ``fashion-mnist`` is taken as the folder itself.  (Never the root's own
    files: MNIST's files have the same names.)
    """
    root = Path(data_dir).expanduser() if data_dir is not None else default_root()
    return (root if root.name == FASHION_SOURCE.folder else root / FASHION_SOURCE.folder).resolve()


def load_fashion_mnist(data_dir=None, *, download: bool = True, mirrors=None) -> ImageSet:
    """Load (downloading missing files unless ``download=False``) Fashion-MNIST: 60,000 training and
    10,000 test 28x28 images of :data:`FASHION_CLASSES`.

    data_dir: the data root (see :func:`resolve_fashion_dir`).
    mirrors: base URLs (default ``$GENREG_FASHION_MNIST_MIRRORS`` or :data:`FASHION_MIRRORS`);
    downloads are checked against :data:`FASHION_GZ_SHA256` and :data:`FASHION_GZ_MD5`.
    """
    return load_idx(FASHION_SOURCE, resolve_fashion_dir(data_dir), download=download, mirrors=mirrors,
                    timeout=DOWNLOAD_TIMEOUT)


# ----------------------------------------------------------------------------- episodes


class EpisodeSampler:
    """Balanced episodes: ``k_per_class`` example indices of each of ``n_classes`` classes.

    labels: ``(N,)`` integer labels in ``0..n_classes-1`` (e.g. ``Split.labels``).
    ``indices(episode)`` is fully determined by ``(seed, episode)``; indices within
    one class are distinct.  Output order is class-major: all of class 0, then 1, ...
    """

    def __init__(self, labels, k_per_class: int, seed: int, n_classes: int = 10):
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
        short = [f"class {c}: {counts[c]}" for c in range(self.n_classes) if counts[c] < self.k_per_class]
        if short:
            raise DataError(f"episodes of {self.k_per_class} samples per class need that many training examples "
                            f"of every class; too few in {', '.join(short)}")
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
