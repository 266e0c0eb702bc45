"""Configuration of an architecture / hyper-parameter search (``genreg hpo``).

``HPOConfig`` is frozen and flat like :class:`genreg.config.Config`: every key
has a default and a docstring, ``validate()`` names the first bad key, and TOML
files and ``--set key=value`` overrides go through :func:`hpo_from_mapping`.
The trait ranges (``*_min`` / ``*_max``) bound every value the GA draws.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from genreg.config import build_config, config_to_toml, describe_fields
from genreg.errors import ConfigError

TASKS = ("trig", "boston", "wine", "mnist")


@dataclass(frozen=True)
class HPOConfig:
    # -- the search ---------------------------------------------------------------
    task: str = "trig"
    """Data set: trig (cos on [0, 2pi], MSE), boston (MAE), wine (MAE) or mnist (accuracy)."""
    seed: int = 0
    """The search (traits, initial weights, training order, splits) is a function of its config and this seed."""
    population: int = 10
    """Individuals per generation (at least 4)."""
    generations: int = 5
    """Breeding rounds after the initial population is evaluated (G)."""
    target: float = math.nan
    """Stop early once the best validation metric reaches this value (>= for accuracy, <= for errors); nan = off."""
    merge: bool = False
    """Weight-merge crossover: children start from their parents' merged trained weights instead of a fresh init."""
    survivor_fraction: float = 0.5
    """Share of the population kept each generation (the best); the rest are children of survivors."""
    mutation_rate: float = 0.01
    """Probability that a child has 1-3 traits re-drawn (the reference's 1%)."""
    mutation: str = "redraw"
    """'redraw' (a fresh value from the trait's range) or 'gene_store' (a value from a store drawn at the start)."""
    gene_store_size: int = 20
    """Values per trait in the gene store (mutation = 'gene_store')."""

    # -- fitness: SGD training ------------------------------------------------------
    epochs: int = 20
    """Most SGD epochs per fitness evaluation (E)."""
    patience: int = 3
    """Stop training after this many epochs without a better validation loss (0 = always train E epochs)."""
    min_delta: float = 1e-4
    """Relative improvement of the validation loss that counts as better (early stopping)."""
    metric: str = "auto"
    """Validation metric: auto (accuracy for mnist, mse for trig, mae otherwise), accuracy, mae or mse."""
    activation: str = "relu"
    """Hidden activation: relu, tanh, sigmoid or identity."""

    # -- trait ranges (inclusive) ---------------------------------------------------
    layers_min: int = 1
    """Fewest hidden layers (n of the cosine profile)."""
    layers_max: int = 4
    """Most hidden layers."""
    width_min: int = 8
    """Smallest first-layer width (A of the cosine profile)."""
    width_max: int = 64
    """Largest first-layer width."""
    decay_min: float = 0.0
    """Smallest width decay (w of A*cos(w*linspace(0, pi/2, n)); 0 = all layers as wide as the first)."""
    decay_max: float = 1.0
    """Largest width decay (1 = the last layer shrinks to min_layer_width)."""
    min_layer_width: int = 2
    """No hidden layer is narrower than this (the profile is clipped)."""
    batch_min: int = 16
    """Smallest mini-batch size."""
    batch_max: int = 128
    """Largest mini-batch size."""
    lr_min: float = 0.002
    """Smallest SGD learning rate (drawn log-uniformly)."""
    lr_max: float = 0.2
    """Largest SGD learning rate."""
    momentum_min: float = 0.0
    """Smallest momentum."""
    momentum_max: float = 0.95
    """Largest momentum."""
    lr_decay_min: float = 0.0
    """Smallest learning-rate decay (the backprop module's lr_decay)."""
    lr_decay_max: float = 0.01
    """Largest learning-rate decay."""
    dropout_min: float = 0.0
    """Smallest dropout rate (after the first hidden layer, as the reference)."""
    dropout_max: float = 0.3
    """Largest dropout rate."""

    # -- data ---------------------------------------------------------------------------
    val_fraction: float = 0.2
    """Tabular/trig tasks: share of rows in the validation split."""
    test_fraction: float = 0.2
    """Tabular/trig tasks: share of rows in the test split (scored for the best network only)."""
    trig_samples: int = 2000
    """Trig task: number of generated angles."""
    wine_color: str = "red"
    """Wine task: red, white or both."""
    mnist_train: int = 10000
    """MNIST: training images used (a seeded subset of the 50,000 left after the validation split; 0 = all)."""
    mnist_val: int = 2000
    """MNIST: validation images (carved from the 60,000 training images, never the test set)."""

    # -----------------------------------------------------------------------------------
    def resolved_metric(self) -> str:
        if self.metric != "auto":
            return self.metric
        return {"mnist": "accuracy", "trig": "mse"}.get(self.task, "mae")

    def validate(self) -> "HPOConfig":
        """Raise ``ConfigError`` naming the first invalid key; return self."""

        def need(ok, key, what):
            if not ok:
                raise ConfigError(f"invalid hpo config: {key} = {getattr(self, key)!r}: {what}")

        need(self.task in TASKS, "task", f"must be one of {', '.join(TASKS)}")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.population >= 4, "population", "must be at least 4")
        need(self.generations >= 0, "generations", "must be >= 0")
        need(0 < self.survivor_fraction < 1, "survivor_fraction", "must be in (0, 1)")
        need(2 <= round(self.population * self.survivor_fraction) < self.population, "survivor_fraction",
             "must keep at least 2 survivors and leave room for a child")
        need(0 <= self.mutation_rate <= 1, "mutation_rate", "must be in [0, 1]")
        need(self.mutation in ("redraw", "gene_store"), "mutation", "must be 'redraw' or 'gene_store'")
        need(self.gene_store_size >= 1, "gene_store_size", "must be >= 1")
        need(self.epochs >= 1, "epochs", "must be >= 1")
        need(self.patience >= 0, "patience", "must be >= 0")
        need(self.min_delta >= 0, "min_delta", "must be >= 0")
        need(self.metric in ("auto", "accuracy", "mae", "mse"), "metric", "must be auto, accuracy, mae or mse")
        need((self.resolved_metric() == "accuracy") == (self.task == "mnist"), "metric",
             "accuracy is the classification metric (mnist); regression tasks use mae or mse")
        need(self.activation in ("relu", "tanh", "sigmoid", "identity"), "activation",
             "must be relu, tanh, sigmoid or identity")
        for low, high, floor in (("layers_min", "layers_max", 1), ("width_min", "width_max", 1),
                                 ("batch_min", "batch_max", 1)):
            need(getattr(self, low) >= floor, low, f"must be >= {floor}")
            need(getattr(self, high) >= getattr(self, low), high, f"must be >= {low}")
        need(self.min_layer_width >= 1, "min_layer_width", "must be >= 1")
        need(self.width_min >= self.min_layer_width, "width_min", "must be >= min_layer_width")
        need(0 <= self.decay_min, "decay_min", "must be >= 0")
        need(self.decay_max >= self.decay_min, "decay_max", "must be >= decay_min")
        need(self.lr_min > 0, "lr_min", "must be > 0")
        need(self.lr_max >= self.lr_min, "lr_max", "must be >= lr_min")
        need(self.momentum_min >= 0, "momentum_min", "must be >= 0")
        need(self.momentum_min <= self.momentum_max < 1, "momentum_max", "must be in [momentum_min, 1)")
        need(self.lr_decay_min >= 0, "lr_decay_min", "must be >= 0")
        need(self.lr_decay_max >= self.lr_decay_min, "lr_decay_max", "must be >= lr_decay_min")
        need(self.dropout_min >= 0, "dropout_min", "must be >= 0")
        need(self.dropout_min <= self.dropout_max < 1, "dropout_max", "must be in [dropout_min, 1)")
        need(0 < self.val_fraction < 1, "val_fraction", "must be in (0, 1)")
        need(0 <= self.test_fraction < 1 and self.val_fraction + self.test_fraction < 0.9, "test_fraction",
             "must be in [0, 1) and leave at least 10% of the rows for training")
        need(self.trig_samples >= 50, "trig_samples", "must be >= 50")
        need(self.wine_color in ("red", "white", "both"), "wine_color", "must be red, white or both")
        need(self.mnist_train >= 0, "mnist_train", "must be >= 0 (0 = all)")
        need(0 < self.mnist_val < 60000, "mnist_val", "must be in (0, 60000)")
        return self

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_toml(self) -> str:
        """The resolved config as TOML (every key; nan written as the TOML literal)."""
        return config_to_toml(self.to_dict(), "genreg hpo configuration")

    def replace(self, **changes) -> "HPOConfig":
        return dataclasses.replace(self, **changes).validate()




def hpo_from_mapping(mapping: dict, base: HPOConfig | None = None) -> HPOConfig:
    """Build a validated HPOConfig from ``mapping`` on top of ``base`` (default: the defaults)."""
    return build_config(HPOConfig, mapping, base, "hpo config")


def describe_hpo_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return describe_fields(HPOConfig)
