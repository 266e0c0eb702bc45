"""Configuration of an architecture / hyper-parameter search (``genreg hpo``).

``HPOConfig`` is frozen and flat like every mode's config (:class:`genreg.config.ConfigBase`):
every key has a default, a rule and a docstring, ``validate()`` names the first bad key, and TOML
files and ``--set key=value`` overrides go through :func:`hpo_from_mapping`.
The trait ranges (``*_min`` / ``*_max``) bound every value the GA draws.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from genreg.config import MAX_SEED, ConfigBase, rule
from genreg.strategies.config import check_conv
from genreg.tasks.loaders import IMAGE_TASKS  # (a conv search needs one, or an npz: file of images)

#: The built-in tasks (``csv:FILE`` and ``npz:FILE`` name the user's own).
TASKS = ("trig", "boston", "wine", "wine-white", "mnist", "fashion-mnist")


@dataclass(frozen=True)
class HPOConfig(ConfigBase):
    WHAT = "hpo config"
    TITLE = "genreg hpo configuration"

    # -- the search ---------------------------------------------------------------
    task: str = "trig"
    """Data set: trig (cos on [0, 2pi], MSE), boston, wine, wine-white (MAE), mnist, fashion-mnist (accuracy), csv:FILE (with target_column) or npz:FILE (genreg.tasks.load_task)."""
    target_column: str = ""
    """The column to predict of a csv: task."""
    seed: int = rule(0, ge=0, le=MAX_SEED)
    """The search (traits, initial weights, training order, splits) is a function of its config and this seed."""
    population: int = rule(10, ge=4)
    """Individuals per generation (at least 4)."""
    generations: int = rule(6, ge=1)
    """Generations in total (resume continues up to this number): generation 0 trains the random founders, each later one breeds and trains children."""
    target: float = rule(math.nan, finite=False)
    """Stop early once the best validation metric reaches this value (>= for accuracy, <= for errors); nan = off."""
    merge: bool = False
    """Weight-merge crossover: children start from their parents' merged trained weights instead of a fresh init."""
    survivor_fraction: float = rule(0.5, gt=0, lt=1)
    """Share of the population kept each generation (the best); the rest are children of survivors."""
    mutation_rate: float = rule(0.01, ge=0, le=1)
    """Probability that a child has 1-3 traits re-drawn (the reference's 1%)."""
    mutation: str = rule("redraw", choices=("redraw", "gene_store"))
    """'redraw' (a fresh value from the trait's range) or 'gene_store' (a value from a store drawn at the start)."""
    gene_store_size: int = rule(20, ge=1)
    """Values per trait in the gene store (mutation = 'gene_store')."""

    # -- fitness: SGD training ------------------------------------------------------
    epochs: int = rule(20, ge=1)
    """Most SGD epochs per fitness evaluation (E)."""
    patience: int = rule(3, ge=0)
    """Stop training after this many epochs without a better validation loss (0 = always train E epochs)."""
    min_delta: float = rule(1e-4, ge=0)
    """Relative improvement of the validation loss that counts as better (early stopping)."""
    metric: str = rule("auto", choices=("auto", "accuracy", "mae", "mse"))
    """Validation metric: auto (accuracy for classification, mse for trig, mae for other regression), accuracy, mae or mse."""
    activation: str = rule("relu", choices=("relu", "tanh", "sigmoid", "identity"))
    """Hidden activation: relu, tanh, sigmoid or identity."""
    conv: str = ""
    """Fixed ConvNet stages in front of every searched network's dense layers, e.g. 'c5x8-p2-c5x16-p2' (an image task: mnist, fashion-mnist or npz: images; '' = MLPs): the traits shape the dense layers after them."""

    # -- trait ranges (inclusive) ---------------------------------------------------
    layers_min: int = rule(1, ge=1)
    """Fewest hidden layers (n of the cosine profile)."""
    layers_max: int = rule(4, ge="layers_min")
    """Most hidden layers."""
    width_min: int = rule(8, ge="min_layer_width")
    """Smallest first-layer width (A of the cosine profile)."""
    width_max: int = rule(64, ge="width_min")
    """Largest first-layer width."""
    decay_min: float = rule(0.0, ge=0)
    """Smallest width decay (w of A*cos(w*linspace(0, pi/2, n)); 0 = all layers as wide as the first)."""
    decay_max: float = rule(1.0, ge="decay_min")
    """Largest width decay (1 = the last layer shrinks to min_layer_width)."""
    min_layer_width: int = rule(2, ge=1)
    """No hidden layer is narrower than this (the profile is clipped)."""
    batch_min: int = rule(16, ge=1)
    """Smallest mini-batch size."""
    batch_max: int = rule(128, ge="batch_min")
    """Largest mini-batch size."""
    lr_min: float = rule(0.002, gt=0)
    """Smallest SGD learning rate (drawn log-uniformly)."""
    lr_max: float = rule(0.2, ge="lr_min")
    """Largest SGD learning rate."""
    momentum_min: float = rule(0.0, ge=0)
    """Smallest momentum."""
    momentum_max: float = rule(0.95, ge="momentum_min", lt=1)
    """Largest momentum."""
    lr_decay_min: float = rule(0.0, ge=0)
    """Smallest learning-rate decay (the backprop module's lr_decay)."""
    lr_decay_max: float = rule(0.01, ge="lr_decay_min")
    """Largest learning-rate decay."""
    dropout_min: float = rule(0.0, ge=0)
    """Smallest dropout rate (after the first hidden layer, as the reference)."""
    dropout_max: float = rule(0.3, ge="dropout_min", lt=1)
    """Largest dropout rate."""

    # -- data ---------------------------------------------------------------------------
    val_fraction: float = rule(0.2, gt=0, lt=1)
    """wine/boston/trig: share of rows in the validation split (csv: and npz: tasks split 60/20/20)."""
    test_fraction: float = rule(0.2, ge=0, lt=1)
    """wine/boston/trig: share of rows in the test split (scored for the best network only)."""
    trig_samples: int = rule(2000, ge=50)
    """Trig task: number of generated angles."""
    wine_color: str = rule("red", choices=("red", "white", "both"))
    """Task wine: red, white or both."""
    mnist_train: int = rule(10000, ge=0, note="(0 = all)")
    """MNIST / Fashion-MNIST: training images used (a seeded subset of those left after the validation split; 0 = all)."""
    mnist_val: int = rule(2000, gt=0, lt=60000)
    """MNIST / Fashion-MNIST: validation images (carved from the 60,000 training images, never the test set)."""

    # -----------------------------------------------------------------------------------
    def resolved_metric(self, kind: str | None = None) -> str:
        """The validation metric, with ``auto`` resolved for the task (``kind``: the loaded task's kind)."""
        from genreg.hpo.metrics import resolve_metric

        return resolve_metric(self.metric, self.task, kind)

    def check(self) -> None:
        """The task is a known spec; survivors leave room for children; the metric fits a built-in task;
        the splits leave training rows; ``conv`` parses, on an image task."""
        name, (prefix, _, path) = self.task.strip().lower(), self.task.partition(":")
        self.need(name in TASKS or (prefix.lower() in ("csv", "npz") and path.strip()), "task",
                  f"must be one of {', '.join(TASKS)}, csv:FILE or npz:FILE")
        self.need(not self.target_column or prefix.lower() == "csv", "target_column", "applies to csv: tasks only")
        self.need(self.target_column or prefix.lower() != "csv", "target_column",
                  "a csv: task needs the column to predict (--target-column COLUMN)")
        self.need(2 <= round(self.population * self.survivor_fraction) < self.population, "survivor_fraction",
                  "must keep at least 2 survivors and leave room for a child")
        if name in TASKS:  # a csv: / npz: task's kind is known once it is loaded (hpo.metrics checks it then)
            self.need((self.resolved_metric() == "accuracy") == (name in ("mnist", "fashion-mnist")), "metric",
                      "accuracy is the classification metric (mnist, fashion-mnist); regression tasks use mae or mse")
        self.need(self.val_fraction + self.test_fraction < 0.9, "test_fraction",
                  "must leave at least 10% of the rows for training (val_fraction + test_fraction < 0.9)")
        check_conv(self)
        self.need(not self.conv or name not in TASKS or name in IMAGE_TASKS, "conv",
                  f"needs an image task ({', '.join(IMAGE_TASKS)} or npz: images), not {name}")


def hpo_from_mapping(mapping: dict, base: HPOConfig | None = None) -> HPOConfig:
    """Build a validated HPOConfig from ``mapping`` on top of ``base`` (default: the defaults)."""
    return HPOConfig.from_mapping(mapping, base)


def describe_hpo_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return HPOConfig.describe()
