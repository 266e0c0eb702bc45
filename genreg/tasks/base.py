"""What a strategy needs from a problem: a ``Task`` (labelled data) or a ``FitnessTask`` (a callable).

A ``Task`` holds a train / validation / test split of inputs ``X: (n, n_inputs)``
(``uint8`` pixels, read as pixel/255, or ``float32`` features) and targets:
``(n,) int64`` class labels for classification, ``(n, n_outputs) float32``
standardised targets for regression.  It samples the training episodes every
genome of a generation shares (balanced per class for classification), from an
explicit seed, and says how a prediction is scored.

A ``FitnessTask`` has no data: the user's callable scores a whole population
``W: (P, n_params) float32 -> (P,)`` (higher is better).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import numpy as np

from genreg.errors import DataError, FitnessError, GenregError

CLASSIFICATION = "classification"
REGRESSION = "regression"
FITNESS = "fitness"


@dataclass(frozen=True, eq=False)
class Task:
    """A labelled data set split three ways.

    X_*: ``(n, n_inputs)`` uint8 (pixels) or float32.  y_*: ``(n,) int64`` labels in
    ``0..n_outputs-1`` (classification) or ``(n, n_outputs) float32`` targets
    standardised with the training split's ``y_mean``/``y_std`` (regression).
    x_mean, x_std: ``(n_inputs,)`` scaling already applied to float features
    (network input = (raw - x_mean) / x_std); ``None`` for pixels.
    spec: how ``genreg.tasks.load_task`` builds this task again (``""`` for arrays
    given from Python, which must be given again to resume).
    target: what is predicted (a CSV's target column), if it has a name.
    kind_reason: why ``kind`` was chosen when it was inferred from the data (CSV, npz, arrays).
    """

    name: str
    kind: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    n_outputs: int
    spec: str = ""
    source: str = ""
    classes: tuple = ()
    input_shape: tuple = ()
    x_mean: np.ndarray | None = None
    x_std: np.ndarray | None = None
    y_mean: np.ndarray | None = None
    y_std: np.ndarray | None = None
    feature_names: tuple = ()
    target: str = ""
    kind_reason: str = ""

    def __post_init__(self):
        if self.kind not in (CLASSIFICATION, REGRESSION):
            raise DataError(f"task {self.name}: kind must be {CLASSIFICATION!r} or {REGRESSION!r}, got {self.kind!r}")
        for part in ("train", "val", "test"):
            X, y = getattr(self, f"X_{part}"), getattr(self, f"y_{part}")
            if X.ndim != 2 or X.shape[1] != self.X_train.shape[1]:
                raise DataError(f"task {self.name}: X_{part} must be (n, {self.X_train.shape[1]}), got {X.shape}")
            if y.shape[0] != X.shape[0]:
                raise DataError(f"task {self.name}: X_{part} has {X.shape[0]} rows but y_{part} {y.shape[0]}")
        if self.X_train.shape[0] == 0:
            raise DataError(f"task {self.name}: the training split is empty")
        self._check_statistics()
        for part in ("train", "val", "test"):  # e.g. a CSV value of 1e308 overflows once scaled to float32
            for what, array in (("X", getattr(self, f"X_{part}")), ("y", getattr(self, f"y_{part}"))):
                if array.dtype.kind == "f" and not np.isfinite(array).all():
                    row, col = np.argwhere(~np.isfinite(array.reshape(array.shape[0], -1)))[0]
                    raise DataError(f"task {self.name}: {what}_{part} row {row + 1}, {self._column(what, col)}, is not "
                                    "finite after scaling to float32 (a value too large, or NaN, in the data)")
        if not self.input_shape:
            object.__setattr__(self, "input_shape", (self.X_train.shape[1],))
        if self.kind == REGRESSION:
            for name in ("y_mean", "y_std"):
                if getattr(self, name) is None:
                    object.__setattr__(self, name, np.zeros(self.n_outputs) if name == "y_mean" else np.ones(self.n_outputs))

    def _column(self, what: str, col: int) -> str:
        """How messages name column ``col`` of ``X`` or ``y``."""
        if what == "X" and col < len(self.feature_names):
            return f"column {self.feature_names[col]!r}"
        return f"column {self.target!r}" if what == "y" and self.target else f"column {col + 1}"

    def _check_statistics(self) -> None:
        """DataError when a scaling statistic (``x_mean``, ``x_std``: ``(n_inputs,)``; ``y_mean``, ``y_std``)
        is not finite: that column's training values were too large to standardise in float64."""
        for what, mean, std in (("X", self.x_mean, self.x_std), ("y", self.y_mean, self.y_std)):
            if mean is None or std is None:
                continue
            bad = np.flatnonzero(~(np.isfinite(np.asarray(mean, dtype=np.float64))
                                   & np.isfinite(np.asarray(std, dtype=np.float64))))
            if bad.size:
                raise DataError(f"task {self.name}: {what} {self._column(what, int(bad[0]))}: the training mean or "
                                f"standard deviation overflows float64 (values too large to standardise); rescale "
                                f"the column")

    # -- shape -------------------------------------------------------------------------
    @property
    def n_inputs(self) -> int:
        return int(self.X_train.shape[1])

    @property
    def is_classification(self) -> bool:
        return self.kind == CLASSIFICATION

    @property
    def loss(self) -> str:
        """The training loss that fits the task: 'nll' (softmax cross-entropy) or 'mse'."""
        return "nll" if self.is_classification else "mse"

    def class_name(self, label: int) -> str:
        return str(self.classes[label]) if self.classes else str(label)

    def describe(self) -> str:
        what = f"{self.n_outputs} classes" if self.is_classification else f"{self.n_outputs} regression target(s)"
        if self.target:
            what += f" of {self.target!r}"
        if self.kind_reason:
            what += f" ({self.kind}: {self.kind_reason})"
        return (f"{self.name}: {self.n_inputs} inputs, {what}; {len(self.y_train)} train / {len(self.y_val)} "
                f"validation / {len(self.y_test)} test")

    # -- inputs --------------------------------------------------------------------------
    @staticmethod
    def as_float(X: np.ndarray) -> np.ndarray:
        """Network inputs as float32 ``(n, n_inputs)``: pixels become pixel/255, floats pass through."""
        if X.dtype == np.uint8:
            return X.astype(np.float32) / np.float32(255.0)
        return np.ascontiguousarray(X, dtype=np.float32)

    # -- episodes ------------------------------------------------------------------------
    def sampler(self, samples_per_class: int, seed: int) -> "EpisodeSampler | BatchSampler":
        """The source of every generation's episode: ``samples_per_class`` examples of each
        class (classification), or ``samples_per_class * n_outputs`` random rows (regression)."""
        from genreg.tasks.mnist import EpisodeSampler

        if self.is_classification:
            return EpisodeSampler(self.y_train, samples_per_class, seed, n_classes=self.n_outputs,
                                  class_names=self.classes, held_out={"validation": self.y_val, "test": self.y_test})
        return BatchSampler(self.y_train.shape[0], samples_per_class * max(1, self.n_outputs), seed)

    # -- scoring -------------------------------------------------------------------------
    def targets_to_raw(self, y: np.ndarray) -> np.ndarray:
        """Regression: standardised targets ``(n, k)`` in the data's units (float64)."""
        return np.asarray(y, dtype=np.float64) * self.y_std + self.y_mean

    def features_from_raw(self, X: np.ndarray) -> np.ndarray:
        """Raw features ``(n, d)`` as the network reads them: standardised as the task's were (float32).  A task of
        pixels (uint8 inputs) takes uint8 pixels as they are (the network reads pixel/255) and other numbers as
        pixel values: 0-255 (divided by 255 here, float32), or already in [0, 1] when none exceeds 1."""
        X = np.asarray(X)
        if self.x_mean is None:
            if self.X_train.dtype != np.uint8 or X.dtype == np.uint8 or not X.size or X.max() <= 1.0:
                return X
            return (X.astype(np.float64) / 255.0).astype(np.float32)
        return ((X.astype(np.float64) - self.x_mean) / self.x_std).astype(np.float32)


def episode_inputs(sampler, X: np.ndarray, idx: np.ndarray, episode: int) -> np.ndarray:
    """The inputs of episode ``episode``: ``X[idx]``, or what the sampler's ``episode_inputs(X, idx, episode)``
    makes of them (e.g. augmented images), ``(len(idx), d)`` of ``X``'s dtype."""
    hook = getattr(sampler, "episode_inputs", None)
    return X[idx] if hook is None else hook(X, idx, episode)


class BatchSampler:
    """Episodes of ``size`` distinct training rows drawn uniformly from ``(seed, episode)``."""

    def __init__(self, n_rows: int, size: int, seed: int):
        if size < 1:
            raise ValueError(f"episode size must be >= 1, got {size}")
        self.n_rows, self.size, self.seed = int(n_rows), min(int(size), int(n_rows)), int(seed)

    @property
    def episode_size(self) -> int:
        return self.size

    def indices(self, episode: int) -> np.ndarray:
        """``(size,) int64`` row indices of episode ``episode`` (sorted)."""
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, int(episode)]))
        return np.sort(rng.choice(self.n_rows, size=self.size, replace=False)).astype(np.int64)


@dataclass(frozen=True, eq=False)
class FitnessTask:
    """A problem without labels: ``fitness(W)`` scores a whole population (higher is better).

    fitness: called with ``W: (P, n_params) float32`` (read-only), and with
    ``generation=g`` as well if it takes a ``generation`` parameter (to draw that
    generation's episodes); returns ``(P,)`` finite numbers.
    n_inputs, n_outputs: the ends of the network the rows encode (``genreg.Layout``).
    """

    fitness: object
    n_inputs: int
    n_outputs: int
    name: str = "fitness"
    kind: str = field(default=FITNESS, init=False)
    spec: str = field(default="", init=False)
    source: str = "a Python callable"

    def __post_init__(self):
        if not callable(self.fitness):
            raise GenregError(f"fitness task {self.name}: fitness must be callable, got {type(self.fitness).__name__}")
        for key in ("n_inputs", "n_outputs"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise GenregError(f"fitness task {self.name}: {key} must be a positive integer, got {value!r}")

    is_classification = False

    @property
    def input_shape(self) -> tuple:
        """``(n_inputs,)``: the rows a fitness callable scores have no image shape."""
        return (self.n_inputs,)

    def describe(self) -> str:
        return f"{self.name}: {self.n_inputs} inputs, {self.n_outputs} outputs, scored by {self.source}"

    def _takes_generation(self) -> bool:
        try:
            return "generation" in inspect.signature(self.fitness).parameters
        except (TypeError, ValueError):
            return False

    def score(self, W: np.ndarray, generation: int) -> np.ndarray:
        """``(P,) float64`` fitness of the rows ``W: (P, n_params)``; FitnessError if the callable
        raises or returns anything but ``P`` finite numbers."""
        view = W.view()
        view.flags.writeable = False
        try:
            out = self.fitness(view, generation=generation) if self._takes_generation() else self.fitness(view)
        except Exception as exc:  # noqa: BLE001 - the user's code: any error becomes one clear line
            raise FitnessError(f"fitness task {self.name}: the fitness callable raised "
                               f"{type(exc).__name__}: {exc}") from exc
        try:
            values = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError):
            raise FitnessError(f"fitness task {self.name}: the fitness callable must return {W.shape[0]} numbers, "
                               f"got {type(out).__name__}") from None
        if values.shape != (W.shape[0],):
            raise FitnessError(f"fitness task {self.name}: the fitness callable must return shape ({W.shape[0]},) "
                               f"for {W.shape[0]} genomes, got {values.shape}")
        if not np.all(np.isfinite(values)):
            bad = int(np.flatnonzero(~np.isfinite(values))[0])
            raise FitnessError(f"fitness task {self.name}: the fitness callable returned {values[bad]} "
                               f"for genome {bad} (fitness must be finite)")
        return values
