"""Configuration of a hybrid GA + SGD run: flat TOML keys, documented defaults, validation naming the key.

Defaults are the protocol of the reference study
(``hybrid-genetic-gradient-evolution.txt``): population 20, 6 generations,
1 epoch of SGD per generation, batch 100, lr 0.01, momentum 0.9, 10% fresh
networks, "horizontal" layer genes 784-256-128-10.  Unlike the reference,
fitness is measured on a validation split carved from the training set; the
test set is used once, for the final report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from genreg.config import MAX_SEED, ConfigBase, rule
from genreg.errors import ConfigError
from genreg.network.sgd import TrainConfig
from genreg.network.layout import Layout

#: Named architectures of the reference study.
ARCHITECTURES = {
    "horizontal": "784-256-128-10",
    "vertical": "784-256-[64|64]-10",
}


@dataclass(frozen=True)
class HybridConfig(ConfigBase):
    TITLE = "genreg hybrid run configuration"

    # -- network (fixed for the life of a run) --------------------------------
    architecture: str = "horizontal"
    """'horizontal' (784-256-128-10), 'vertical' (784-256-[64|64]-10: two parallel blocks), or any shape such as '784-300-[50|50|50]-10'."""
    activation: str = rule("relu", choices=("relu", "tanh", "sigmoid", "identity"))
    """Hidden activation: relu, tanh, sigmoid or identity."""

    # -- the run ---------------------------------------------------------------
    seed: int = rule(0, ge=0, le=MAX_SEED)
    """The run is a function of its config and this seed."""
    generations: int = rule(6, ge=0)
    """Generations in total (resume continues up to this number)."""
    population: int = rule(20, ge=2, note="(parents come from the best half)")
    """Networks kept after each generation (P)."""
    fresh_fraction: float = rule(0.1, ge=0, le=1)
    """Fresh random networks added each generation, as a fraction of P (rounded up)."""
    genes: str = rule("layer", choices=("layer", "block"))
    """Gene crossover unit: 'layer' (each dense block's W and b: the reference's genes) or 'block' (gene_block_rows input rows of each weight matrix; each bias its own gene)."""
    gene_block_rows: int = rule(64, ge=1)
    """Rows per gene when genes = 'block'."""
    validation_size: int = rule(10000, gt=0, lt=60000)
    """Validation split carved from the 60k training images: fitness is accuracy on it (never the test set)."""
    train_images: int = rule(0, ge=0, note="(0 = all)")
    """Train on the first K images of the training part only (0 = all 50,000): for quick trials and tests."""
    baseline: bool = True
    """Also train one network alone for generations * epochs_per_generation epochs (the reference's baseline)."""
    workers: int = rule(0, ge=0)
    """Networks trained concurrently, each with single-threaded BLAS (0 = one per CPU). Results do not depend on it."""
    checkpoint_every: int = rule(1, ge=1)
    """Write an HDF5 state checkpoint every K generations (and at the end)."""

    # -- SGD -----------------------------------------------------------------------
    epochs_per_generation: int = rule(1, ge=1)
    """Epochs of SGD every network receives each generation (E)."""
    batch_size: int = rule(100, ge=1)
    """Minibatch size."""
    lr: float = rule(0.01, gt=0)
    """SGD learning rate."""
    momentum: float = rule(0.9, ge=0, lt=1)
    """SGD momentum (the velocity restarts at zero each generation)."""
    nesterov: bool = False
    """Nesterov momentum."""
    lr_decay: float = rule(0.0, ge=0)
    """lr_e = lr / (1 + lr_decay * e), e = epochs of the lineage so far (generation * E + epoch)."""
    dropout: float = rule(0.0, ge=0, lt=1)
    """Dropout rate of every hidden layer during training."""

    # -----------------------------------------------------------------------------
    def check(self) -> None:
        """The architecture parses; SGD settings pass ``TrainConfig.validate`` (Nesterov needs momentum)."""
        try:
            self.layout()
        except ConfigError as exc:
            raise ConfigError(f"invalid config: architecture = {self.architecture!r}: {exc}") from None
        self.need(not self.nesterov or self.momentum > 0, "nesterov", "needs momentum > 0")
        self.train_config().validate()

    @property
    def n_fresh(self) -> int:
        """Fresh random networks per generation: ceil(fresh_fraction * population)."""
        return int(math.ceil(self.fresh_fraction * self.population - 1e-9))

    def layout(self) -> Layout:
        """The network of every member (784 inputs, 10 outputs for MNIST)."""
        return parse_architecture(ARCHITECTURES.get(self.architecture, self.architecture), self.activation)

    def train_config(self) -> TrainConfig:
        """SGD settings of one generation (``epochs = epochs_per_generation``)."""
        return TrainConfig(epochs=self.epochs_per_generation, batch_size=self.batch_size, lr=self.lr,
                           momentum=self.momentum, nesterov=self.nesterov, lr_decay=self.lr_decay,
                           dropout=self.dropout, loss="nll", shuffle=True)


NETWORK_KEYS = ("architecture", "activation")
_SHAPE = re.compile(r"^\d+(-(\d+|\[\d+(\|\d+)*\]))+$")


def parse_architecture(shape: str, activation: str = "relu") -> Layout:
    """``"784-256-[64|64]-10"`` -> Layout with parallel blocks where a layer is ``[a|b|...]``."""
    text = str(shape).replace(" ", "")
    if not _SHAPE.match(text):
        raise ConfigError(
            f"architecture must be {' or '.join(ARCHITECTURES)} or a shape like 784-256-[64|64]-10, got {shape!r}"
        )
    parts = text.split("-")
    widths = [tuple(int(m) for m in p.strip("[]").split("|")) for p in parts[1:]]
    sizes = (int(parts[0]), *(sum(w) for w in widths))
    if sizes[0] != 784 or sizes[-1] != 10:
        raise ConfigError(f"architecture {shape!r}: MNIST networks need 784 inputs and 10 outputs")
    return Layout(sizes, activation, "identity", blocks=widths)


def from_mapping(mapping: dict, base: HybridConfig | None = None) -> HybridConfig:
    """Build a validated HybridConfig from ``mapping`` on top of ``base`` (default: the defaults)."""
    return HybridConfig.from_mapping(mapping, base)


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return HybridConfig.describe()

