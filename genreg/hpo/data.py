"""The data of a search: its config's task as a :class:`~genreg.tasks.Task` (``search_task``).

Every task comes from ``genreg.tasks.load_task`` with the search's seed and split
fractions, except where the search's own keys describe the data:

- ``mnist`` / ``fashion-mnist``: the validation split is ``mnist_val`` images drawn with
  the search's seed (not ``load_task``'s fixed 10,000 drawn with seed 0), and training
  uses a seeded subset of ``mnist_train`` images (``image_search_task``); the task keeps the
  images' shape (28 x 28, the input of a ``conv`` search's ConvNets);
- ``trig`` with ``trig_samples`` angles, and ``wine`` with ``wine_color`` white or both.

Inputs are float32: MNIST pixels become pixel/255, and the task records that scaling
(``x_mean`` 0, ``x_std`` 255) so that a saved model reads raw pixels.
"""

from __future__ import annotations

import numpy as np

from genreg.tasks import CLASSIFICATION, Task, load_task, tabular, to_float
from genreg.tasks.loaders import IMAGE_TASKS, tabular_task


def search_task(cfg, data_dir=None) -> Task:
    """The data of ``cfg.task`` (an HPOConfig), split (and scaled) from ``cfg.seed``."""
    name = cfg.task.strip().lower()
    if name in IMAGE_TASKS:
        return image_search_task(cfg, data_dir)
    fractions = {"val_fraction": cfg.val_fraction, "test_fraction": cfg.test_fraction}
    if name == "trig":
        return tabular_task("trig", tabular.make_trig(cfg.trig_samples, seed=cfg.seed, **fractions))
    if name == "wine" and cfg.wine_color == "both":
        return tabular_task("wine", tabular.load_wine(data_dir, color="both", seed=cfg.seed, **fractions))
    spec = "wine-white" if name == "wine" and cfg.wine_color == "white" else cfg.task
    return load_task(spec, data_dir, seed=cfg.seed, target=cfg.target_column or None, **fractions)


def image_search_task(cfg, data_dir=None) -> Task:
    """MNIST / Fashion-MNIST as the search has always split them: ``mnist_val`` validation images by
    ``split_validation(mnist_val, seed=cfg.seed)``, ``mnist_train`` of the rest (a sorted sample drawn
    from ``(seed, 0x3A1)``; 0 = all), the official test set.  X: ``(n, 784) float32`` pixel/255."""
    from genreg.tasks import FASHION_CLASSES, load_fashion_mnist, load_mnist
    from genreg.tasks.datasets import FASHION_SOURCE, MNIST_SOURCE

    fashion = cfg.task.strip().lower() == "fashion-mnist"
    data = load_fashion_mnist(data_dir) if fashion else load_mnist(data_dir)  # downloading, as every command does
    train, val = data.split_validation(cfg.mnist_val, seed=cfg.seed)
    idx = np.arange(len(train))
    if 0 < cfg.mnist_train < len(train):
        rng = np.random.default_rng(np.random.SeedSequence([cfg.seed, 0x3A1]))
        idx = np.sort(rng.choice(len(train), size=cfg.mnist_train, replace=False))
    n_pixels = train.images.shape[1]
    return Task(name="fashion-mnist" if fashion else "mnist", kind=CLASSIFICATION,
                X_train=to_float(train.images[idx]), y_train=train.labels[idx].astype(np.int64),
                X_val=to_float(val.images), y_val=val.labels.astype(np.int64),
                X_test=to_float(data.test_images), y_test=data.test_labels.astype(np.int64), n_outputs=10,
                spec=cfg.task, source=str(data.source),
                classes=FASHION_CLASSES if fashion else tuple(str(d) for d in range(10)),
                x_mean=np.zeros(n_pixels), x_std=np.full(n_pixels, 255.0),
                input_shape=tuple((FASHION_SOURCE if fashion else MNIST_SOURCE).image_shape))
