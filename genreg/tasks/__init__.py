"""Tasks: every data source as a :class:`Task` (``load_task``, ``from_arrays``), or a :class:`FitnessTask`.

Where the data lives and how it is downloaded: :mod:`genreg.tasks.datasets` (``genreg data``).
Also the loaders underneath: MNIST / Fashion-MNIST IDX files (download, validation splits,
balanced episodes), the tabular CSVs and the trig task, CSV and npz files.
"""

from genreg.tasks.arrays import from_arrays
from genreg.tasks.base import CLASSIFICATION, FITNESS, REGRESSION, BatchSampler, FitnessTask, Task
from genreg.tasks.loaders import KNOWN_SPECS, load_task
from genreg.tasks.mnist import FASHION_CLASSES, FILES, MIRRORS, MNIST, SHA256, EpisodeSampler, load_fashion_mnist, load_mnist, resolve_data_dir
from genreg.tasks.idx import Split, read_idx_images, read_idx_labels, to_float
from genreg.tasks.tabular import load_boston, load_wine, make_trig

__all__ = [
    "CLASSIFICATION",
    "FASHION_CLASSES",
    "FILES",
    "FITNESS",
    "KNOWN_SPECS",
    "MIRRORS",
    "MNIST",
    "REGRESSION",
    "SHA256",
    "BatchSampler",
    "EpisodeSampler",
    "FitnessTask",
    "Split",
    "Task",
    "from_arrays",
    "load_boston",
    "load_fashion_mnist",
    "load_mnist",
    "load_task",
    "load_wine",
    "make_trig",
    "read_idx_images",
    "read_idx_labels",
    "resolve_data_dir",
    "to_float",
]
