"""Tabular regression data: wine quality and Boston housing CSVs, and the generated trig task.

Every data set comes out as a regression :class:`genreg.tasks.base.Task`: ``float32``
feature matrices ``X: (n, d)`` and targets ``y: (n, 1)`` for a train / validation / test
split drawn from a seed.  Features (and, by default, targets) are standardised
with the mean and standard deviation of the TRAINING split only; the statistics
are kept so that predictions can be mapped back to the original units.

Every bad file raises :class:`genreg.errors.DataError` whose message names the
file and, where it applies, the row (1-based, as a text editor shows it) and
column (1-based, with its name) — never a NumPy traceback.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks import datasets
from genreg.tasks.base import REGRESSION, Task
from genreg.tasks.datasets import BOSTON_COLUMNS, WINE_COLUMNS  # noqa: F401  (column names, in file order)

#: File names inside ``<data root>/wine-quality`` and ``<data root>/boston-housing``.
WINE_FILES = {"red": "winequality-red.csv", "white": "winequality-white.csv"}
BOSTON_FILE = "boston_housing.csv"


# ----------------------------------------------------------------------------- reading CSVs


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_numeric_csv(path, columns: tuple[str, ...], *, sha256: str | None = None) -> np.ndarray:
    """Read a header-less, comma-separated file of numbers -> ``(n_rows, len(columns)) float64``.

    Raises DataError naming the file (and row/column) for: a missing or
    unreadable file, a checksum mismatch (when ``sha256`` is given), an empty
    file, a row with the wrong number of cells, a non-numeric cell, and a NaN
    or infinite value.  Blank lines are ignored; a header row is refused (the
    shared files have none), with a hint.
    """
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    if sha256 is not None:
        got = _sha256(path)
        if got != sha256:
            raise DataError(f"{path}: checksum mismatch (sha256 {got[:16]}..., expected {sha256[:16]}...)")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from None
    rows = []
    n_cols = len(columns)
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        cells = line.split(",")
        if len(cells) != n_cols:
            raise DataError(
                f"{path}: row {lineno} has {len(cells)} columns, expected {n_cols} ({', '.join(columns)})"
            )
        values = []
        for col, cell in enumerate(cells):
            try:
                v = float(cell)
            except ValueError:
                hint = " (the file must have no header row)" if not rows else ""
                raise DataError(
                    f"{path}: row {lineno}, column {col + 1} ({columns[col]}): {cell.strip()!r} is not a number{hint}"
                ) from None
            if not math.isfinite(v):
                raise DataError(f"{path}: row {lineno}, column {col + 1} ({columns[col]}): value {cell.strip()!r} "
                                f"is not finite")
            values.append(v)
        rows.append(values)
    if not rows:
        raise DataError(f"{path}: empty file (no data rows)")
    return np.asarray(rows, dtype=np.float64)


# ----------------------------------------------------------------------------- locating


def resolve_data_root(data_dir=None) -> Path:
    """The data root holding ``wine-quality/`` and ``boston-housing/``: ``data_dir``, else ``$GENREG_DATA``,
    else the user cache (:func:`genreg.tasks.datasets.resolve_root`)."""
    return datasets.resolve_root(data_dir)


# ----------------------------------------------------------------------------- splitting


def split_indices(n: int, seed: int, val_fraction: float, test_fraction: float):
    """Disjoint sorted ``(train, val, test)`` row indices from a permutation drawn from ``seed``."""
    if not (0 < val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError(f"need 0 < val_fraction, 0 <= test_fraction, sum < 1; got {val_fraction}, {test_fraction}")
    n_val = max(1, int(round(n * val_fraction)))
    n_test = int(round(n * test_fraction))
    if n - n_val - n_test < 2:
        raise DataError(f"{n} rows are too few for a split with {n_val} validation and {n_test} test rows")
    perm = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B1]))
    perm = perm.permutation(n)
    val, test, train = perm[:n_val], perm[n_val : n_val + n_test], perm[n_val + n_test :]
    return np.sort(train), np.sort(val), np.sort(test)


def make_splits(name: str, X, y, *, seed: int, val_fraction: float = 0.2, test_fraction: float = 0.2,
                standardise_target: bool = True, feature_names=(), source: str = "") -> Task:
    """Split ``X: (n, d)``, ``y: (n,)`` or ``(n, 1)`` three ways from ``seed`` and standardise.

    Statistics come from the training rows only; a constant training column
    gets std 1 (it is then only centred).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64).reshape(-1, 1)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    tr, va, te = split_indices(X.shape[0], seed, val_fraction, test_fraction)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow: refused by Task, naming the column
        x_mean, x_std = X[tr].mean(axis=0), X[tr].std(axis=0)
        x_std = np.where(x_std > 0, x_std, 1.0)
        if standardise_target:
            y_mean, y_std = y[tr].mean(axis=0), y[tr].std(axis=0)
            y_std = np.where(y_std > 0, y_std, 1.0)
        else:
            y_mean, y_std = np.zeros(1), np.ones(1)

        def fx(idx):
            return np.ascontiguousarray((X[idx] - x_mean) / x_std, dtype=np.float32)

        def fy(idx):
            return np.ascontiguousarray((y[idx] - y_mean) / y_std, dtype=np.float32)

        parts = {"X_train": fx(tr), "y_train": fy(tr), "X_val": fx(va), "y_val": fy(va), "X_test": fx(te),
                 "y_test": fy(te)}
    return Task(name=name, kind=REGRESSION, **parts, n_outputs=1, source=source, x_mean=x_mean, x_std=x_std,
                y_mean=y_mean, y_std=y_std, feature_names=tuple(feature_names))


# ----------------------------------------------------------------------------- the data sets


def load_wine(data_dir=None, *, color: str = "red", seed: int = 0, val_fraction: float = 0.2,
              test_fraction: float = 0.2, download: bool = True) -> Task:
    """Wine quality (Cortez et al. 2009): 11 features -> quality (3..9), split and standardised.

    color: 'red' (1,599 rows), 'white' (4,898) or 'both' (concatenated, red first).
    data_dir: the data root (holding ``wine-quality/``) or that folder itself; missing files are
    downloaded unless ``download=False`` (:func:`genreg.tasks.datasets.require`).
    """
    if color not in ("red", "white", "both"):
        raise DataError(f"wine color must be 'red', 'white' or 'both', got {color!r}")
    names = [WINE_FILES[c] for c in (("red", "white") if color == "both" else (color,))]
    folder = datasets.require("wine", data_dir, names, download_missing=download)
    parts = [read_numeric_csv(folder / name, WINE_COLUMNS) for name in names]
    data = np.concatenate(parts)
    return make_splits(f"wine-{color}", data[:, :-1], data[:, -1], seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction, feature_names=WINE_COLUMNS[:-1],
                       source=";".join(str(folder / name) for name in names))


def load_boston(data_dir=None, *, seed: int = 0, val_fraction: float = 0.2,
                test_fraction: float = 0.2, download: bool = True) -> Task:
    """Boston housing (Harrison & Rubinfeld 1978): 13 features -> MEDV ($1000s), split and standardised.

    data_dir: the data root (holding ``boston-housing/``) or that folder itself; missing files are
    downloaded unless ``download=False``.
    """
    path = datasets.require("boston", data_dir, download_missing=download) / BOSTON_FILE
    data = read_numeric_csv(path, BOSTON_COLUMNS)
    return make_splits("boston", data[:, :-1], data[:, -1], seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction, feature_names=BOSTON_COLUMNS[:-1], source=str(path))


def make_trig(n: int = 2000, *, seed: int = 0, val_fraction: float = 0.2, test_fraction: float = 0.2) -> Task:
    """cos on [0, 2π] from the angle (radians): ``n`` angles drawn without replacement from a
    fine grid (as the reference's ``create_data``), target ``cos(angle)`` (not standardised,
    so the network's output is cos itself).  The angle is standardised like any feature.
    """
    if n < 10:
        raise ValueError(f"the trig task needs at least 10 samples, got {n}")
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x7816]))
    grid = np.linspace(0.0, 2.0 * np.pi, n + 1000)
    angle = rng.choice(grid, size=n, replace=False)
    return make_splits("trig", angle.reshape(-1, 1), np.cos(angle), seed=seed, val_fraction=val_fraction,
                       test_fraction=test_fraction, standardise_target=False, feature_names=("angle",),
                       source="generated: cos(angle), angle in [0, 2*pi]")
