"""``load_task``: every data source genreg knows, by name, as a :class:`~genreg.tasks.base.Task`.

Specs:

- ``mnist``, ``fashion-mnist``: 28x28 uint8 images, 10 classes.  Validation: the
  ``split_validation(validation_size or 10000, seed=0)`` rows of the training set (seed 0
  whatever the run's seed, so every run of a data set validates on the same images);
  test: the official test set.
- ``alphabet``, ``alphabet-fonts``: rendered capitals A-Z, 100x100, 26 classes (:mod:`genreg.tasks.alphabet`:
  one clean DejaVu Sans Bold rendering per letter as train = validation = test; or training, validation and
  test *fonts*), rendered from matplotlib's bundled fonts and cached under the data root's ``alphabet/``.
- ``wine`` (red), ``wine-white``, ``boston``, ``trig``: regression, split 60/20/20 from ``seed``
  (or ``val_fraction`` / ``test_fraction``) and standardised as :mod:`genreg.tasks.tabular` does.
- ``csv:PATH`` (with ``target``), ``npz:PATH``: see :mod:`genreg.tasks.files`.

The data sets are looked for under one data root (``data_dir``, else ``$GENREG_DATA``, else the user
cache: :mod:`genreg.tasks.datasets`); missing files are downloaded and verified (``download=True``).
"""

from __future__ import annotations

import dataclasses

from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks import tabular
from genreg.tasks.base import CLASSIFICATION, REGRESSION, Task
from genreg.tasks.files import load_csv_task, load_npz_task
from genreg.tasks.idx import IdxSource, ImageSet
from genreg.tasks.mnist import FASHION_SOURCE, MNIST_SOURCE, load_fashion_mnist, load_mnist

#: The specs ``load_task`` accepts (``PATH`` stands for a file).
KNOWN_SPECS = ("mnist", "fashion-mnist", "alphabet", "alphabet-fonts", "wine", "wine-white", "boston", "trig", "csv:PATH", "npz:PATH")
DEFAULT_VALIDATION_SIZE = 10000
#: The built-in tasks of 28x28 grey images.
IMAGE_TASKS = ("mnist", "fashion-mnist")
#: What the built-in regression tasks predict.
TABULAR_TARGETS = {"wine": "quality", "wine-white": "quality", "boston": "MEDV", "trig": "cos(angle)"}


def load_task(spec: str, data_dir=None, *, seed: int = 0, validation_size: int | None = None,
              target: str | None = None, download: bool = True, kind: str | None = None,
              val_fraction: float | None = None, test_fraction: float | None = None) -> Task:
    """The task named by ``spec`` (see the module docstring), split from ``seed``.

    data_dir: the data root holding one folder per data set (default ``$GENREG_DATA``, else
    ``$XDG_CACHE_HOME/genreg``, i.e. ``~/.cache/genreg``); a data set's own folder is accepted too.
    download: fetch missing MNIST / Fashion-MNIST / wine / Boston files (else a DataError says how).
    validation_size: validation images carved from the MNIST / Fashion-MNIST training set (default
    10000); other data sets split 60/20/20 and ignore it.
    A ``csv:`` / ``npz:`` path is read as given (relative to the working directory); the task's
    ``spec`` holds it made absolute.  target: the CSV column to predict (``csv:`` only).  kind: ``'classification'`` or
    ``'regression'`` to override the kind inferred from a CSV / npz file's targets.
    val_fraction, test_fraction: the shares of wine / boston / trig rows that validate and test
    (default 0.2 each); other tasks refuse them.
    Raises DataError for an unknown spec and for missing, unreadable or inconsistent data.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise DataError(f"no task given; known tasks: {', '.join(KNOWN_SPECS)}")
    spec = spec.strip()
    if kind is not None and kind not in (CLASSIFICATION, REGRESSION):
        raise DataError(f"task {spec}: kind must be {CLASSIFICATION!r} or {REGRESSION!r}, got {kind!r}")
    prefix, _, rest = spec.partition(":")
    fractions = {"val_fraction": 0.2 if val_fraction is None else float(val_fraction),
                 "test_fraction": 0.2 if test_fraction is None else float(test_fraction)}
    if spec.lower() not in TABULAR_TARGETS and fractions != {"val_fraction": 0.2, "test_fraction": 0.2}:
        raise DataError(f"task {spec}: val_fraction / test_fraction apply to {', '.join(TABULAR_TARGETS)} only "
                        "(csv: and npz: tasks split 60/20/20, MNIST-like tasks by validation_size)")
    if rest and prefix.lower() in ("csv", "npz"):
        path = Path(rest).expanduser()
        if prefix.lower() == "csv":
            return load_csv_task(path, target, seed=seed, kind=kind)
        _no_target(spec, target)
        return load_npz_task(path, seed=seed, kind=kind)
    name = spec.lower()
    if name in ("csv:", "npz:"):
        raise DataError(f"task {spec}: give the file after the colon ({name}PATH)")
    if name not in KNOWN_SPECS:
        hint = " (a file needs csv:PATH or npz:PATH)" if Path(spec).suffix.lower() in (".csv", ".npz") else ""
        raise DataError(f"unknown task {spec!r}{hint}; known tasks: {', '.join(KNOWN_SPECS)}")
    _no_target(spec, target)
    natural = CLASSIFICATION if name in ("mnist", "fashion-mnist", "alphabet", "alphabet-fonts") else REGRESSION
    if kind is not None and kind != natural:
        raise DataError(f"task {name} is {natural}; kind={kind!r} applies to csv: and npz: tasks only")
    if name == "mnist":
        return image_task(name, load_mnist(data_dir, download=download), MNIST_SOURCE, validation_size)
    if name == "fashion-mnist":
        return image_task(name, load_fashion_mnist(data_dir, download=download), FASHION_SOURCE, validation_size)
    if name == "alphabet":
        from genreg.tasks.alphabet import load_alphabet

        return load_alphabet(data_dir)
    if name == "alphabet-fonts":
        from genreg.tasks.alphabet import load_alphabet_fonts

        return load_alphabet_fonts(data_dir)
    fractions["seed"] = seed
    if name == "trig":
        splits = tabular.make_trig(**fractions)
    elif name == "boston":
        splits = tabular.load_boston(data_dir, download=download, **fractions)
    else:
        splits = tabular.load_wine(data_dir, color="white" if name == "wine-white" else "red", download=download,
                                   **fractions)
    return tabular_task(name, splits)


def known_classes(spec: str) -> tuple:
    """The class names of a built-in classification task, known without its data (``()`` otherwise)."""
    name = str(spec).strip().lower()
    if name in ("alphabet", "alphabet-fonts"):
        from genreg.tasks.alphabet import LETTERS

        return LETTERS
    return {"mnist": tuple(MNIST_SOURCE.classes), "fashion-mnist": tuple(FASHION_SOURCE.classes)}.get(name, ())


def _no_target(spec: str, target) -> None:
    if target:
        raise DataError(f"task {spec}: a target column (--target {target}) applies to csv: tasks only")


def image_task(spec: str, data: ImageSet, source: IdxSource, validation_size: int | None = None) -> Task:
    """An IDX image data set as a Task: ``validation_size`` (default 10000) training images, chosen
    by ``split_validation(validation_size, seed=0)``, validate; the test set tests.

    X: ``(n, rows*cols) uint8`` pixels; y: ``(n,) int64`` labels; classes named by ``source``.
    """
    n_val = DEFAULT_VALIDATION_SIZE if validation_size is None else int(validation_size)
    try:
        train, val = data.split_validation(n_val, seed=0)
    except ValueError as exc:
        raise DataError(f"task {spec}: validation_size {n_val}: {exc}") from None
    return Task(name=spec, kind=CLASSIFICATION, X_train=train.images, y_train=train.labels.astype(np.int64),
                X_val=val.images, y_val=val.labels.astype(np.int64), X_test=data.test_images,
                y_test=data.test_labels.astype(np.int64), n_outputs=len(source.classes), spec=spec,
                source=str(data.source), classes=tuple(source.classes), input_shape=tuple(source.image_shape))


def tabular_task(spec: str, s: Task) -> Task:
    """A tabular data set (``genreg.tasks.tabular``: regression, split and scaled) named by ``spec``."""
    return dataclasses.replace(s, spec=spec, target=TABULAR_TARGETS.get(spec, ""))
