"""User data files as tasks: a CSV with a header row (``csv:PATH``) and NumPy archives (``npz:PATH``).

CSV: every column but the target is a numeric feature.  The target decides the kind:

- classification when its values are not all numbers (classes: the distinct strings), or when
  they are all whole numbers with at most :data:`MAX_INTEGER_CLASSES` distinct values, each
  seen at least :data:`MIN_CLASS_COUNT` times (classes: those integers);
- regression otherwise (targets standardised from the training rows).

A target column that is numeric but for a few cells (some cells are numbers, and the others are
all missing-value marks such as ``NA``, or just one cell, or at most :data:`MAX_BAD_TARGET_SHARE`
of the rows) is taken as numbers with holes: DataError naming the first bad cell, not a
classification of strings.

Classes are numbered ``0..k-1`` in sorted order (numerically for integers) and their names kept.
npz: arrays ``X`` and ``y``, or ``X_train``/``y_train`` with optional ``X_val``/``y_val`` and
``X_test``/``y_test``; read with ``allow_pickle=False``.  Both then follow
:mod:`genreg.tasks.arrays` (60/20/20 split from the seed, features standardised from training rows).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks.arrays import build_task
from genreg.tasks.base import CLASSIFICATION, REGRESSION, Task

MAX_INTEGER_CLASSES = 20
MIN_CLASS_COUNT = 2
#: Cells that mark a missing value (compared lower-case) in an otherwise numeric target column.
MISSING_MARKS = frozenset({"na", "n/a", "#n/a", "n.a.", "nan", "null", "none", "nil", "missing", "?", "-", "--", "."})
#: A target column with at most this share of non-numeric cells (or one; and at least one number) is numeric.
MAX_BAD_TARGET_SHARE = 0.01
NPZ_KEYS = ("X", "y", "X_train", "y_train", "X_val", "y_val", "X_test", "y_test")


def _existing_file(path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if not path.is_file():
        raise DataError(f"{path}: not a regular file")
    return path.resolve()


# ----------------------------------------------------------------------------- CSV


def read_csv_table(path) -> tuple[list[str], np.ndarray, list[int]]:
    """Read a comma-separated file with a header row -> ``(columns, cells (n, c) str, line numbers)``.

    Blank lines are skipped; line numbers are 1-based as a text editor shows them.
    Raises DataError naming the file (and line) for an unreadable file, a header with an empty or
    repeated name, no data rows, or a row with the wrong number of cells.
    """
    path = _existing_file(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a UTF-8 text file ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from None
    reader = csv.reader(text.splitlines())
    header, rows, lines = None, [], []
    try:
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                continue
            if len(row) != len(header):
                raise DataError(f"{path}: row {reader.line_num} has {len(row)} cells, the header "
                                f"{len(header)} ({', '.join(header)})")
            rows.append(row)
            lines.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{path}: row {reader.line_num}: {exc}") from None
    if header is None:
        raise DataError(f"{path}: empty file (a header row naming the columns, then data rows)")
    for j, name in enumerate(header):
        if not name:
            raise DataError(f"{path}: column {j + 1} has no name in the header row (a saved index? "
                            f"write the file without it)")
        if name in header[:j]:
            raise DataError(f"{path}: column name {name!r} appears twice in the header row{no_header_hint(header)}")
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    return header, np.array(rows, dtype=str).reshape(len(rows), len(header)), lines


def _numbers(cells: np.ndarray, path: Path, columns: list[str], col_index: list[int], lines: list[int]) -> np.ndarray:
    """Cells ``(n, k) str`` as float64; DataError at the first empty, non-numeric or non-finite cell."""
    try:
        values = cells.astype(np.float64)
    except ValueError:
        values = None
    if values is None or not np.all(np.isfinite(values)):
        for i in range(cells.shape[0]):
            for j in range(cells.shape[1]):
                cell = cells[i, j].strip()
                where = f"{path}: row {lines[i]}, column {col_index[j] + 1} ({columns[col_index[j]]})"
                if not cell:
                    raise DataError(f"{where}: empty cell")
                try:
                    v = float(cell)
                except ValueError:
                    raise DataError(f"{where}: {cell!r} is not a number") from None
                if not np.isfinite(v):
                    raise DataError(f"{where}: value {cell!r} is not finite")
    return values


def _target_kind(raw: np.ndarray, name: str, kind: str | None, where) -> tuple[np.ndarray, tuple, str]:
    """The target column ``(n,) str`` -> (labels int64 or values float64, class names, why)."""
    try:
        values = raw.astype(np.float64)
    except ValueError:
        values = None
    if values is None:  # some value is not a number: string classes
        if kind == REGRESSION:
            bad = next(i for i, v in enumerate(raw) if not is_number(v))
            raise DataError(f"{where(bad)}: {raw[bad].strip()!r} is not a number (regression needs numeric targets)")
        if kind is None:
            _refuse_holes(raw, where)
        classes, labels = np.unique(raw, return_inverse=True)
        return labels.astype(np.int64), tuple(str(c) for c in classes), "its values are not all numbers"
    if not np.all(np.isfinite(values)):
        bad = int(np.flatnonzero(~np.isfinite(values))[0])
        raise DataError(f"{where(bad)}: value {raw[bad].strip()!r} is not finite")
    whole = bool(np.all(values == np.round(values)))
    distinct, labels, counts = np.unique(values, return_inverse=True, return_counts=True)
    if kind is None:
        if not whole:
            kind, why = REGRESSION, "its values are not all whole numbers"
        elif distinct.size > MAX_INTEGER_CLASSES:
            kind, why = REGRESSION, f"it has {distinct.size} distinct integer values (more than {MAX_INTEGER_CLASSES})"
        elif counts.min() < MIN_CLASS_COUNT:
            value = distinct[int(np.argmin(counts))]
            kind, why = REGRESSION, f"the integer value {_fmt(value)} is seen only once"
        else:
            kind, why = CLASSIFICATION, (f"its values are {distinct.size} distinct integers, each seen at least "
                                         f"{MIN_CLASS_COUNT} times")
    else:
        why = "kind given"
    if kind == REGRESSION:
        return values, (), why
    return labels.astype(np.int64), tuple(_fmt(v) for v in distinct), why


def _refuse_holes(raw: np.ndarray, where) -> None:
    """DataError at the first non-numeric cell of a target column ``raw: (n,) str`` that is numeric
    but for a few cells (all missing-value marks, or one, or at most MAX_BAD_TARGET_SHARE of the rows)."""
    bad = [i for i, v in enumerate(raw) if not is_number(v)]
    n_numbers = raw.size - len(bad)
    if n_numbers == 0:
        return
    few = len(bad) <= max(1.0, MAX_BAD_TARGET_SHARE * raw.size)
    if not few and any(raw[i].strip().lower() not in MISSING_MARKS for i in bad):
        return
    first = raw[bad[0]].strip()
    raise DataError(f"{where(bad[0])}: {first!r} is not a number, in a numeric target column ({n_numbers} of "
                    f"{raw.size} values are numbers, {len(bad)} not); remove or fill the row")


def no_header_hint(header: list[str]) -> str:
    """A hint for an error about the header row when ``header`` looks like a row of data (most cells numbers)."""
    n_numbers = sum(is_number(cell) for cell in header)
    if n_numbers * 2 < len(header) or n_numbers == 0:
        return ""
    return (f" (the first row looks like data, {n_numbers} of its {len(header)} cells are numbers: the file seems "
            f"to have no header row; its first line must name the columns)")


def is_number(cell: str) -> bool:
    """Whether ``cell`` parses as a float."""
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def load_csv_task(path, target: str | None, *, seed: int = 0, kind: str | None = None) -> Task:
    """The task of a CSV file with a header row: predict column ``target`` from the others.

    Splits 60/20/20 from ``seed`` (stratified by class for classification); features, and
    regression targets, are standardised with the training rows' statistics.
    """
    path = _existing_file(path)
    if not target:
        raise DataError(f"{path}: a CSV task needs the target column: give --target COLUMN "
                        f"(target= from Python)")
    columns, cells, lines = read_csv_table(path)
    if target not in columns:
        raise DataError(f"{path}: no column {target!r}; the columns are: {_listed(columns)}{no_header_hint(columns)}")
    t = columns.index(target)
    features = [j for j in range(len(columns)) if j != t]
    if not features:
        raise DataError(f"{path}: the target {target!r} is the only column; there are no features")
    X = _numbers(cells[:, features], path, columns, features, lines)
    raw_y = np.char.strip(cells[:, t])
    empty = np.flatnonzero(raw_y == "")
    if empty.size:
        raise DataError(f"{path}: row {lines[int(empty[0])]}, column {t + 1} ({target}): empty cell")
    y, classes, why = _target_kind(raw_y, target, kind,
                                   lambda i: f"{path}: row {lines[i]}, column {t + 1} ({target})")
    return build_task(path.stem, {"train": X}, {"train": y}, seed=seed, kind=REGRESSION if not classes else None,
                      spec=f"csv:{path}", source=str(path), what=str(path), classes=classes, kind_reason=why,
                      feature_names=tuple(columns[j] for j in features), target=target, row_numbers=lines)


def _listed(names: list[str], most: int = 30) -> str:
    """``names`` comma-separated, the first ``most`` of them (and how many more)."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


# ----------------------------------------------------------------------------- npz


def _npz_array(npz, key: str, path: Path) -> np.ndarray:
    try:
        return npz[key]
    except ValueError as exc:
        if "pickle" in str(exc):
            raise DataError(f"{path}: array {key!r} holds Python objects (dtype object), which genreg does not "
                            f"unpickle; save numeric (or string) arrays") from None
        raise DataError(f"{path}: cannot read array {key!r} ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, zipfile.LargeZipFile) as exc:
        raise DataError(f"{path}: cannot read array {key!r} ({type(exc).__name__}: {exc})") from None


def load_npz_task(path, *, seed: int = 0, kind: str | None = None) -> Task:
    """The task of a NumPy ``.npz`` archive: ``X``, ``y`` (split 60/20/20 from ``seed``), or
    ``X_train``, ``y_train`` with optional ``X_val``/``y_val``, ``X_test``/``y_test``
    (missing parts carved from the training rows).  Other arrays in the archive are ignored.
    """
    path = _existing_file(path)
    try:
        with path.open("rb") as fh:
            magic = fh.read(6)
    except OSError as exc:
        raise DataError(f"{path}: cannot read file ({exc.strerror})") from None
    if magic == b"\x93NUMPY":
        raise DataError(f"{path}: holds a single array (.npy); expected an .npz archive with arrays X and y "
                        f"(numpy.savez(path, X=..., y=...))")
    if not magic.startswith(b"PK"):
        raise DataError(f"{path}: not an .npz archive (no zip header); expected arrays X and y saved with "
                        f"numpy.savez(path, X=..., y=...)")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(f"{path}: not a readable .npz archive ({type(exc).__name__}: {exc})") from None
    with npz:
        keys = list(npz.files)
        found = ", ".join(keys) if keys else "none"
        if "X_train" in keys or "y_train" in keys:
            if "X" in keys or "y" in keys:
                raise DataError(f"{path}: holds both X/y and X_train/y_train; keep one layout (keys: {found})")
            layout = ("X_train", "y_train")
        else:
            layout = ("X", "y")
        for key in layout:
            if key not in keys:
                raise DataError(f"{path}: no array {key!r}; expected X and y, or X_train and y_train "
                                f"(optionally X_val, y_val, X_test, y_test); keys found: {found}")
        arrays = {k: _npz_array(npz, k, path) for k in NPZ_KEYS if k in keys}
    Xs = {"train": arrays[layout[0]], "val": arrays.get("X_val"), "test": arrays.get("X_test")}
    ys = {"train": arrays[layout[1]], "val": arrays.get("y_val"), "test": arrays.get("y_test")}
    return build_task(path.stem, Xs, ys, seed=seed, kind=kind, spec=f"npz:{path}", source=str(path),
                      what=str(path), train_keys=layout)
