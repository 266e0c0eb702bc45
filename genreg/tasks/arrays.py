"""Arrays to a :class:`~genreg.tasks.base.Task`: kind, class labels, splits and scaling.

The rules every array source (``from_arrays``, npz files, CSV files) follows:

- X: ``(n, d)`` numbers (``(n, *shape)`` is flattened, ``shape`` kept as ``input_shape``;
  ``(n,)`` is one feature).  ``uint8`` X stays pixels (read as pixel/255); any other X
  becomes float32 standardised with the mean / std of the TRAINING rows (a constant
  column gets std 1).
- y: integers or booleans -> classification: labels that are exactly ``0..k-1`` (over all
  parts) are the class numbers themselves; any other integers (``{1, 2}``, ``{-1, 1}``,
  ``{0, 1000000}``) are numbered ``0..k-1`` in sorted order, their values kept as the class
  names in ``Task.classes`` (as a CSV's integer classes are); strings -> classification,
  classes mapped to ``0..k-1`` in sorted order (names kept in ``Task.classes``);
  floats -> regression, ``(n,)`` becoming ``(n, 1)``, standardised from the training rows.
  ``kind`` overrides the choice (float labels must then be whole numbers).  A classification
  task needs at least 2 classes.
- Parts not given are carved from the training rows from ``seed``: 20 % validation and
  20 % test (60/20/20 when neither is given), per class for classification (stratified).
- A column whose training values are too large to standardise in float64 (its mean or standard
  deviation overflows, around 1e154 and beyond), or a validation / test value too far from the
  training rows to fit in float32 once scaled, is refused, naming the column and the row.
"""

from __future__ import annotations

import numpy as np

from genreg.errors import DataError
from genreg.tasks.base import CLASSIFICATION, REGRESSION, Task

VAL_FRACTION = 0.2
TEST_FRACTION = 0.2
PARTS = ("train", "val", "test")


def split_rows(n: int, seed: int, labels=None, *, val_fraction: float = VAL_FRACTION,
               test_fraction: float = TEST_FRACTION, what: str = "data"):
    """Disjoint sorted ``(train, val, test)`` row indices ``(k,) int64`` from ``seed``.

    labels: ``(n,)`` class labels to stratify on (each class split in the same
    proportions, keeping at least one of its rows for training), or ``None``.
    A part with a zero fraction is empty; a part with a positive one is never.
    """
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x5B1]))
    groups = [np.arange(n)] if labels is None else [np.flatnonzero(labels == c) for c in np.unique(labels)]
    parts: tuple[list, list, list] = ([], [], [])
    for members in groups:
        members = members[rng.permutation(members.size)]
        m = members.size
        n_val, n_test = int(m * val_fraction + 0.5), int(m * test_fraction + 0.5)
        while m - n_val - n_test < 1:  # keep a training row of every class
            if n_test >= n_val:
                n_test -= 1
            else:
                n_val -= 1
        parts[1].append(members[:n_val])
        parts[2].append(members[n_val:n_val + n_test])
        parts[0].append(members[n_val + n_test:])
    out = tuple(np.sort(np.concatenate(p)).astype(np.int64) for p in parts)
    for name, idx, fraction in (("validation", out[1], val_fraction), ("test", out[2], test_fraction)):
        if fraction > 0 and idx.size == 0:
            raise DataError(f"{what}: {n} rows are too few to split into train / validation / test "
                            f"(the {name} part would be empty)")
    return out


# ----------------------------------------------------------------------------- checking arrays


def _check_numeric(a: np.ndarray, key: str, what: str) -> None:
    if a.dtype == object:
        raise DataError(f"{what}: {key} holds Python objects (dtype object); give numeric arrays")
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == bool) or np.issubdtype(a.dtype, np.complexfloating):
        raise DataError(f"{what}: {key} must hold real numbers, got dtype {a.dtype}")
    if np.issubdtype(a.dtype, np.floating):
        bad = ~np.isfinite(a)
        if bad.any():
            row = int(np.argwhere(bad)[0][0])
            raise DataError(f"{what}: {key} has a non-finite value ({a[bad].flat[0]}) in row {row}")


def _features(X, key: str, what: str) -> np.ndarray:
    """``X`` as ``(n, d)``; 1-D is one feature, more dimensions are flattened."""
    X = np.asarray(X)
    _check_numeric(X, key, what)
    if X.ndim == 0:
        raise DataError(f"{what}: {key} must be an array of rows, got a scalar")
    return X.reshape(-1, 1) if X.ndim == 1 else X.reshape(X.shape[0], -1)


def _y_kind(ys: dict[str, np.ndarray], kind: str | None, keys: dict, what: str) -> tuple[str, str]:
    """The task kind from the targets' dtype (and ``kind``), and why."""
    y = ys["train"]
    if y.dtype.kind in "US":
        if kind == REGRESSION:
            raise DataError(f"{what}: {keys['train'][1]} holds strings, which cannot be regression targets")
        return CLASSIFICATION, "the labels are strings"
    for part, arr in ys.items():
        _check_numeric(arr, keys[part][1], what)
    if kind is not None:
        if kind not in (CLASSIFICATION, REGRESSION):
            raise DataError(f"{what}: kind must be {CLASSIFICATION!r} or {REGRESSION!r}, got {kind!r}")
        return kind, "kind given"
    if y.dtype == bool or np.issubdtype(y.dtype, np.integer):
        return CLASSIFICATION, f"the targets are integers ({y.dtype})"
    return REGRESSION, f"the targets are floats ({y.dtype})"


def _labels(ys: dict[str, np.ndarray], keys: dict, what: str) -> tuple[dict[str, np.ndarray], int, tuple]:
    """Classification targets -> ``(n,) int64`` labels per part, n_outputs, class names."""
    flat = {}
    for key, y in ys.items():
        if y.ndim == 2 and y.shape[1] == 1:
            y = y[:, 0]
        if y.ndim != 1:
            raise DataError(f"{what}: class labels {keys[key][1]} must be 1-D, got shape {y.shape}")
        flat[key] = y
    if flat["train"].dtype.kind in "US":
        classes = np.unique(np.concatenate([np.char.strip(y.astype(str)) for y in flat.values()]))
        return ({k: np.searchsorted(classes, np.char.strip(y.astype(str))).astype(np.int64) for k, y in flat.items()},
                len(classes), tuple(str(c) for c in classes))
    out = {}
    for key, y in flat.items():
        if np.issubdtype(y.dtype, np.floating) and not np.all(y == np.round(y)):
            raise DataError(f"{what}: class labels {keys[key][1]} must be whole numbers, "
                            f"found {y[y != np.round(y)][0]}")
        if np.issubdtype(y.dtype, np.floating) and y.size and np.abs(y).max() >= 2.0 ** 53:
            raise DataError(f"{what}: class labels {keys[key][1]} must be integers below 2**53, "
                            f"found {np.abs(y).max():.3g}")
        out[key] = y.astype(np.int64)
    return _number_classes(out)


def _number_classes(labels: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], int, tuple]:
    """Integer labels ``(n,) int64`` per part -> class numbers, n_outputs, class names.

    Labels that are exactly ``0..k-1`` over all parts are kept as they are (no names); any other
    set of values is numbered in sorted order, the values becoming the class names.
    """
    values = np.unique(np.concatenate(list(labels.values())))
    if values[0] == 0 and values[-1] == values.size - 1:
        return labels, int(values.size), ()
    return ({k: np.searchsorted(values, v).astype(np.int64) for k, v in labels.items()}, int(values.size),
            tuple(str(int(v)) for v in values))


def _check_classes(n_outputs: int, classes: tuple, ys: dict, label_key: str, what: str) -> None:
    """A classification task needs two classes: DataError when every label is the same."""
    if n_outputs < 2:
        only = classes[0] if classes else str(int(ys["train"][0]))
        raise DataError(f"{what}: every label in {label_key} is {only!r}; a classification task needs at least "
                        f"2 classes: add rows of another class")


class _Cells:
    """How error messages name a column and a cell of the data, as the user knows them.

    CSV files (``row_numbers`` given): column names and the file's line numbers.  Arrays:
    ``X[:, j]`` and ``X[i, j]`` indices into the array given (``y``, ``y_test``, ...), through
    the carving of validation / test rows out of the training arrays (``origins``).
    """

    def __init__(self, keys: dict, origins: dict, row_numbers=None, feature_names: tuple = (), target: str = ""):
        self.keys, self.origins, self.row_numbers = keys, origins, row_numbers
        self.feature_names, self.target = feature_names, target

    def column(self, which: int, j: int, n_cols: int) -> str:
        """Column ``j`` of the features (``which`` 0) or targets (1)."""
        if which == 0 and j < len(self.feature_names):
            return f"column {self.feature_names[j]!r}"
        if which == 1 and self.target:
            return f"column {self.target!r}"
        key = self.keys["train"][which]
        return key if which == 1 and n_cols == 1 else f"{key}[:, {j}]"

    def cell(self, which: int, part: str, i: int, j: int, n_cols: int) -> str:
        """Row ``i``, column ``j`` of part ``part`` (after carving)."""
        source, idx = self.origins[part]
        row = int(idx[i]) if idx is not None else int(i)
        if self.row_numbers is not None:
            return f"row {self.row_numbers[row]}"
        key = self.keys[source][which]
        return f"{key}[{row}]" if which == 1 and n_cols == 1 else f"{key}[{row}, {j}]"


def _scale(arrays: dict[str, np.ndarray], which: int, cells: _Cells,
           what: str) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Standardise every part ``(n, d)`` with the training part's mean / std (float32 out, float64 stats).

    which: 0 for features, 1 for targets (for error messages).  DataError when a training column is
    too large to standardise in float64, or a scaled value does not fit in float32.
    """
    train = arrays["train"].astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):  # overflow is refused below
        mean, std = train.mean(axis=0), train.std(axis=0)
        _refuse_overflow(train, mean, std, which, cells, what)
        std = np.where(std > 0, std, 1.0)
        scaled = {k: np.ascontiguousarray((a.astype(np.float64) - mean) / std, dtype=np.float32)
                  for k, a in arrays.items()}
    for part, a in scaled.items():
        _refuse_float32_overflow(part, a, arrays[part], mean, std, which, cells, what)
    return scaled, mean, std


def _refuse_overflow(train: np.ndarray, mean: np.ndarray, std: np.ndarray, which: int, cells: _Cells,
                     what: str) -> None:
    """DataError naming the first column ``j`` of ``train: (n, d) float64`` whose mean or std overflowed."""
    bad = np.flatnonzero(~(np.isfinite(mean) & np.isfinite(std)))
    if not bad.size:
        return
    j, d = int(bad[0]), train.shape[1]
    i = int(np.argmax(np.abs(train[:, j])))
    raise DataError(f"{what}: {cells.column(which, j, d)}: values up to {abs(train[i, j]):.1e} "
                    f"({cells.cell(which, 'train', i, j, d)}) are too large to standardise in float64/float32; "
                    f"rescale them (e.g. divide the column by a power of ten)")


def _refuse_float32_overflow(part: str, scaled: np.ndarray, raw: np.ndarray, mean: np.ndarray, std: np.ndarray,
                             which: int, cells: _Cells, what: str) -> None:
    """DataError naming the first value of ``raw: (n, d)`` whose scaled value ``scaled`` is not finite."""
    bad = ~np.isfinite(scaled)
    if not bad.any():
        return
    i, j = (int(v) for v in np.argwhere(bad)[0])
    value, d = float(raw[i, j]), scaled.shape[1]
    raise DataError(f"{what}: {cells.column(which, j, d)}: value {value:.3g} ({cells.cell(which, part, i, j, d)}) "
                    f"is {abs(value - mean[j]) / std[j]:.1e} training standard deviations from the training mean, "
                    f"too far to fit in float32; rescale the column or remove the row")


# ----------------------------------------------------------------------------- the task


def build_task(name: str, Xs: dict, ys: dict, *, seed: int = 0, kind: str | None = None, spec: str = "",
               source: str = "", what: str | None = None, classes: tuple = (), kind_reason: str = "",
               feature_names: tuple = (), target: str = "", train_keys: tuple[str, str] = ("X", "y"),
               row_numbers=None) -> Task:
    """A Task from raw parts ``Xs``/``ys`` keyed ``train`` (required), ``val``, ``test``.

    Missing (``None``) parts are carved from the training rows (see the module docstring).
    classes: the class names when ``ys`` are already labels ``0..k-1`` (CSV files).
    train_keys: what error messages call the training arrays (``X_<part>``, ``y_<part>`` the others).
    row_numbers: ``(n,)`` what error messages call the training rows (a CSV file's line numbers).
    """
    what = what or name
    keys = {"train": train_keys, "val": ("X_val", "y_val"), "test": ("X_test", "y_test")}
    for part in ("val", "test"):
        if (Xs.get(part) is None) != (ys.get(part) is None):
            given, missing = keys[part] if Xs.get(part) is not None else keys[part][::-1]
            raise DataError(f"{what}: {given} is given without {missing}")
    if Xs.get("train") is None or ys.get("train") is None:
        raise DataError(f"{what}: {' and '.join(train_keys)} are required")
    input_shape = tuple(np.shape(Xs["train"])[1:])  # before flattening: (28, 28) for images
    Xs = {k: _features(v, keys[k][0], what) for k, v in Xs.items() if v is not None}
    ys = {k: np.asarray(v) for k, v in ys.items() if v is not None}
    for part in Xs:
        (xk, yk), X = keys[part], Xs[part]
        if ys[part].ndim == 0 or ys[part].shape[0] != X.shape[0]:
            raise DataError(f"{what}: {xk} has {X.shape[0]} rows but {yk} has shape {ys[part].shape}")
        if X.shape[1] != Xs["train"].shape[1]:
            raise DataError(f"{what}: {xk} has {X.shape[1]} features per row, {keys['train'][0]} "
                            f"{Xs['train'].shape[1]}")
    if Xs["train"].shape[0] == 0:
        raise DataError(f"{what}: {keys['train'][0]} has no rows")
    if classes:
        task_kind, reason, n_outputs = CLASSIFICATION, kind_reason, len(classes)
        ys = {k: v.astype(np.int64) for k, v in ys.items()}
    else:
        task_kind, reason = _y_kind(ys, kind, keys, what)
        reason = kind_reason or reason
        if task_kind == CLASSIFICATION:
            ys, n_outputs, classes = _labels(ys, keys, what)
        else:
            ys = {k: v.reshape(-1, 1) if v.ndim == 1 else v.reshape(v.shape[0], -1) for k, v in ys.items()}
            n_outputs = ys["train"].shape[1]
    if task_kind == CLASSIFICATION:
        _check_classes(n_outputs, classes, ys, f"column {target!r}" if target else keys["train"][1], what)
    Xs, ys, origins = _carve(Xs, ys, seed, task_kind, what)
    cells = _Cells(keys, origins, row_numbers, tuple(feature_names), target)
    x_mean = x_std = y_mean = y_std = None
    if any(X.dtype != np.uint8 for X in Xs.values()):  # pixels only if every part is uint8
        Xs, x_mean, x_std = _scale(Xs, 0, cells, what)
    if task_kind == REGRESSION:
        ys, y_mean, y_std = _scale(ys, 1, cells, what)
    return Task(name=name, kind=task_kind, X_train=Xs["train"], y_train=ys["train"], X_val=Xs["val"],
                y_val=ys["val"], X_test=Xs["test"], y_test=ys["test"], n_outputs=int(n_outputs), spec=spec,
                source=source, classes=tuple(classes), input_shape=input_shape, x_mean=x_mean, x_std=x_std,
                y_mean=y_mean, y_std=y_std, feature_names=tuple(feature_names), target=target, kind_reason=reason)


def _carve(Xs: dict, ys: dict, seed: int, kind: str, what: str) -> tuple[dict, dict, dict]:
    """Carve the missing validation / test parts out of the training rows.

    Also returns where each part's rows come from: ``{part: (source part, (n_part,) row indices
    into it, or None for all its rows in order)}``.
    """
    missing = [p for p in ("val", "test") if p not in Xs]
    origins = {part: (part, None) for part in Xs}
    if not missing:
        return Xs, ys, origins
    X, y = Xs["train"], ys["train"]
    train, val, test = split_rows(X.shape[0], seed, y if kind == CLASSIFICATION else None,
                                  val_fraction=VAL_FRACTION if "val" in missing else 0.0,
                                  test_fraction=TEST_FRACTION if "test" in missing else 0.0, what=what)
    Xs, ys = dict(Xs), dict(ys)
    for part, idx in (("val", val), ("test", test)):
        if part in missing:
            Xs[part], ys[part] = X[idx], y[idx]
            origins[part] = ("train", idx)
    Xs["train"], ys["train"] = X[train], y[train]
    origins["train"] = ("train", train)
    return Xs, ys, origins


def from_arrays(X, y, *, name: str = "arrays", kind: str | None = None, seed: int = 0, X_val=None, y_val=None,
                X_test=None, y_test=None) -> Task:
    """A Task from NumPy arrays (see the module docstring for the rules).

    X: ``(n, d)`` (or ``(n, *shape)``) numbers, ``uint8`` read as pixels.  y: ``(n,)`` integer or
    string class labels, or ``(n,)`` / ``(n, k)`` float regression targets.
    X_val/y_val, X_test/y_test: given parts (else carved from X, y from ``seed``).
    kind: ``'classification'`` or ``'regression'`` to override the choice made from y's dtype.
    The task's ``spec`` is ``""``: arrays must be given again to resume a run.
    """
    return build_task(name, {"train": X, "val": X_val, "test": X_test}, {"train": y, "val": y_val, "test": y_test},
                      seed=seed, kind=kind, source="arrays given from Python")
