"""Configuration of a hybrid GA + SGD run: flat TOML keys, documented defaults, validation naming the key.

Defaults are the protocol of the reference study
(``hybrid-genetic-gradient-evolution.txt``): population 20, 6 generations,
1 epoch of SGD per generation, batch 100, lr 0.01, momentum 0.9, 10% fresh
networks, "horizontal" layer genes 784-256-128-10 on MNIST.  Unlike the reference,
fitness is measured on a validation split carved from the training set; the
test set is used once, for the final report.

The network's ends come from the task (``genreg.tasks.load_task``): an
architecture names its hidden layers (``"256-[64|64]"``), or is a full shape
whose first width is the task's inputs and whose last is its outputs.  A ConvNet
is a full ConvNet shape (``"28x28x1-c5x8-p2-c5x16-p2-10"``, ``Layout.parse``) whose
image is the task's, or its stages and hidden widths only (``"c5x8-p2-c5x16-p2"``,
``"c5x8-p2-64"``: the task's images in front, its outputs behind).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from genreg.config import MAX_SEED, ConfigBase, rule
from genreg.errors import ConfigError
from genreg.network.sgd import TrainConfig
from genreg.network.conv import parse_stages
from genreg.network.layout import Layout

#: Named architectures of the reference study, by their hidden layers (the ends come from the task).
ARCHITECTURES = {
    "horizontal": "256-128",
    "vertical": "256-[64|64]",
}
#: The ends of an MNIST network: what ``HybridConfig.layout()`` assumes when no task is given.
MNIST_ENDS = (784, 10)
#: Tasks whose ends are known without loading them (the config checks a full shape against them).
KNOWN_ENDS = {"mnist": MNIST_ENDS, "fashion-mnist": MNIST_ENDS}
#: The images of an MNIST-like task (a ConvNet's input).
MNIST_IMAGE = (28, 28)


@dataclass(frozen=True)
class HybridConfig(ConfigBase):
    TITLE = "genreg hybrid run configuration"

    @classmethod
    def coerce(cls, key: str, value):
        """As ``ConfigBase.coerce``; a one-layer ``architecture`` given as a number (``--set architecture=16`` parses
        as the integer 16) is refused with the spelling that works."""
        if key == "architecture" and isinstance(value, int) and not isinstance(value, bool):
            raise ConfigError(f"invalid {cls.WHAT}: architecture = {value!r}: expected str: a one-layer architecture "
                              f"is text, --set 'architecture=\"{value}\"'")
        return super().coerce(key, value)

    # -- task and network (fixed for the life of a run) ----------------------------
    task: str = "mnist"
    """What to learn: any genreg.tasks.load_task spec (mnist, fashion-mnist, alphabet, alphabet-fonts, wine, wine-white, boston, trig, csv:FILE, npz:FILE)."""
    target: str = ""
    """The column to predict of a csv: task."""
    architecture: str = "horizontal"
    """Hidden layers: 'horizontal' (256-128), 'vertical' (256-[64|64]: two parallel blocks), any hidden shape such as '300-[50|50|50]' (one layer is text too: "64"), or a full shape such as '784-300-[50|50|50]-10' whose ends are the task's inputs and outputs; a ConvNet on an image task: '28x28x1-c5x8-p2-c5x16-p2-10', or its stages and hidden widths only, 'c5x8-p2-c5x16-p2'."""
    activation: str = rule("relu", choices=("relu", "tanh", "sigmoid", "identity"))
    """Hidden activation: relu, tanh, sigmoid or identity."""

    # -- the run ---------------------------------------------------------------
    seed: int = rule(0, ge=0, le=MAX_SEED)
    """The run is a function of its config and this seed."""
    generations: int = rule(6, ge=1)
    """Generations in total (resume continues up to this number); at least 1: generation 0 scores nothing."""
    population: int = rule(20, ge=2, note="(parents come from the best half)")
    """Networks kept after each generation (P)."""
    fresh_fraction: float = rule(0.1, ge=0, le=1)
    """Fresh random networks added each generation, as a fraction of P (rounded up)."""
    genes: str = rule("layer", choices=("layer", "block", "tile"))
    """Gene crossover unit: 'layer' (each dense block's W and b: the reference's genes), 'block' (gene_block_rows input rows of each weight matrix; each bias its own gene) or 'tile' (gene_block_rows rows x gene_block_cols columns of each weight matrix, as the reference's public notebook cuts them; each bias its own gene)."""
    gene_block_rows: int = rule(64, ge=1)
    """Rows per gene when genes = 'block' or 'tile'."""
    gene_block_cols: int = rule(64, ge=1)
    """Columns per gene when genes = 'tile'."""
    validation_size: int = rule(10000, gt=0, lt=60000)
    """MNIST / Fashion-MNIST: validation images carved from the 60k training images (other tasks split 60/20/20). Fitness is accuracy (classification) or -MSE (regression) on the validation split, never the test set."""
    train_images: int = rule(0, ge=0, note="(0 = all)")
    """Train on the first K rows of the training part only (0 = all; 50,000 for MNIST): for quick trials and tests."""
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
    shuffle: bool = True
    """Reshuffle the training images for every network each epoch (false: every network sees them in the same fixed order every epoch, as the reference's public notebook does, whose data loader does not shuffle)."""

    # -----------------------------------------------------------------------------
    def check(self) -> None:
        """The architecture parses (and fits the task's ends where they are known without loading it);
        SGD settings pass ``TrainConfig.validate`` (Nesterov needs momentum)."""
        try:
            ends = KNOWN_ENDS.get(self.task.strip().lower())
            self.layout(*ends, MNIST_IMAGE) if ends else check_shape(self.shape())
        except ConfigError as exc:
            raise ConfigError(f"invalid config: architecture = {self.architecture!r}: {exc}") from None
        self.need(not self.nesterov or self.momentum > 0, "nesterov", "needs momentum > 0")
        self.train_config().validate()

    @property
    def n_fresh(self) -> int:
        """Fresh random networks per generation: ceil(fresh_fraction * population)."""
        return int(math.ceil(self.fresh_fraction * self.population - 1e-9))

    def shape(self) -> str:
        """The architecture as a shape: a named one's hidden layers, else as written."""
        return ARCHITECTURES.get(self.architecture, self.architecture)

    def layout(self, n_inputs: int = MNIST_ENDS[0], n_outputs: int = MNIST_ENDS[1], input_shape=None) -> Layout:
        """The network of every member for a task with these ends (default: MNIST's 784 and 10) and
        ``input_shape`` (the task's, e.g. ``(28, 28)``; default: MNIST's image for MNIST's ends)."""
        if input_shape is None:
            input_shape = MNIST_IMAGE if (n_inputs, n_outputs) == MNIST_ENDS else (n_inputs,)
        return parse_architecture(self.shape(), self.activation, n_inputs, n_outputs, task=self.task,
                                  input_shape=input_shape)

    def train_config(self, loss: str = "nll") -> TrainConfig:
        """SGD settings of one generation (``epochs = epochs_per_generation``); loss 'nll' or 'mse' (the task's)."""
        return TrainConfig(epochs=self.epochs_per_generation, batch_size=self.batch_size, lr=self.lr,
                           momentum=self.momentum, nesterov=self.nesterov, lr_decay=self.lr_decay,
                           dropout=self.dropout, loss=loss, shuffle=self.shuffle)


#: Keys that fix the network and its data: they may not change on resume.
NETWORK_KEYS = ("task", "target", "architecture", "activation")
#: Keys a resume cannot change either: the seed (the run's streams, a tabular task's split) and the data drawn.
DATA_KEYS = ("seed", "train_images", "validation_size")
_SHAPE = re.compile(r"^(\d+|\[\d+(\|\d+)*\])(-(\d+|\[\d+(\|\d+)*\]))*$")


def parse_shape(shape: str) -> list[tuple[int, ...]]:
    """``"256-[64|64]"`` -> ``[(256,), (64, 64)]``: the widths of each layer's parallel blocks."""
    text = str(shape).replace(" ", "")
    if not _SHAPE.match(text):
        raise ConfigError(f"architecture must be {' or '.join(ARCHITECTURES)}, hidden layers like 256-[64|64], "
                          f"a full shape like 784-256-[64|64]-10 or a ConvNet like 28x28x1-c5x8-p2-10, got {shape!r}")
    return [tuple(int(m) for m in p.strip("[]").split("|")) for p in text.split("-")]


def is_conv_shape(shape: str) -> bool:
    """True for a ConvNet architecture: an image first (``28x28x1-...``) or a stage first (``c5x8-...``)."""
    first = str(shape).replace(" ", "").split("-")[0]
    return _is_image(first) or (first[:1] in ("c", "p", "a") and first[1:2].isdigit())


def _is_image(token: str) -> bool:
    """``"28x28x1"`` or ``"28x28"`` (a stage token starts with a letter)."""
    return token[:1].isdigit() and "x" in token


def check_shape(shape: str) -> None:
    """ConfigError unless ``shape`` is well formed (a ConvNet's stages parse; its fit to a task is checked later)."""
    if not is_conv_shape(shape):
        parse_shape(shape)
        return
    tokens = str(shape).replace(" ", "").split("-")
    if _is_image(tokens[0]):
        Layout.parse("-".join(tokens))
        return
    stages, widths = _split_conv(tokens, shape)
    parse_stages("-".join(stages))


def _split_conv(tokens: list[str], shape: str) -> tuple[list[str], list[int]]:
    """A ConvNet's stage tokens and the dense widths after them."""
    dense_from = next((i for i, t in enumerate(tokens) if not t[:1].isalpha()), len(tokens))
    widths = tokens[dense_from:]
    if not all(t.isdigit() for t in widths):
        raise ConfigError(f"architecture {shape!r}: after a ConvNet's stages come plain dense widths "
                          f"(parallel blocks [a|b] are for MLPs), e.g. c5x8-p2-64")
    return tokens[:dense_from], [int(t) for t in widths]


def conv_architecture(shape: str, activation: str, n_inputs: int, n_outputs: int, ends: str,
                      input_shape) -> Layout:
    """The ConvNet of ``shape`` (full, or stages and hidden widths) on a task with these ends and ``input_shape``."""
    image = tuple(int(v) for v in input_shape) + ((1,) if len(tuple(input_shape)) == 2 else ())
    if len(image) != 3:
        raise ConfigError(f"architecture {shape!r} is a ConvNet, but {ends}, not images")
    tokens = str(shape).replace(" ", "").split("-")
    if _is_image(tokens[0]):
        layout = Layout.parse("-".join(tokens), activation, "identity")
        if layout.image != image or layout.n_outputs != n_outputs:
            raise ConfigError(f"architecture {shape!r} is a ConvNet on {'x'.join(map(str, layout.image))} images with "
                              f"{layout.n_outputs} outputs, but {ends} ({'x'.join(map(str, image))} images)")
        return layout
    stages, widths = _split_conv(tokens, shape)
    return Layout.convnet(image, "-".join(stages), (*widths, n_outputs), activation, "identity")


def parse_architecture(shape: str, activation: str = "relu", n_inputs: int = MNIST_ENDS[0],
                       n_outputs: int = MNIST_ENDS[1], task: str = "", input_shape=None) -> Layout:
    """A Layout with ``n_inputs`` inputs and ``n_outputs`` outputs from ``shape``; ``[a|b|...]`` is a layer of parallel blocks.

    ``shape`` is a full shape when its first width is ``n_inputs`` (then its last must be
    ``n_outputs``), or when it is an MNIST shape (784 ... 10) on a task with other ends (an
    error); otherwise it lists the hidden layers only.  ConfigError names both sizes on a mismatch.
    A ConvNet shape (``is_conv_shape``) needs the task's ``input_shape`` ``(H, W)`` or ``(H, W, C)``.
    """
    what = f"task {task} has" if task else "the task has"
    if is_conv_shape(shape):
        return conv_architecture(shape, activation, n_inputs, n_outputs, f"{what} {n_inputs} inputs and "
                                 f"{n_outputs} outputs", input_shape if input_shape is not None else (n_inputs,))
    layers = parse_shape(shape)
    ends = f"{what} {n_inputs} inputs and {n_outputs} outputs"
    first, last = layers[0], layers[-1]
    full = len(first) == 1 and first[0] == n_inputs and len(layers) >= 2
    if not full and len(layers) >= 2 and first == (MNIST_ENDS[0],) and last == (MNIST_ENDS[1],):
        raise ConfigError(f"architecture {shape!r} is a full shape for {MNIST_ENDS[0]} inputs and "
                          f"{MNIST_ENDS[1]} outputs, but {ends}; give the hidden layers only "
                          f"(e.g. {'-'.join(_text(w) for w in layers[1:-1]) or '64'!r})")
    if full:
        if len(last) != 1 or last[0] != n_outputs:
            raise ConfigError(f"architecture {shape!r} ends with {sum(last)} outputs, but {ends}")
        layers = layers[1:]
    else:
        layers = [*layers, (n_outputs,)]
    sizes = (n_inputs, *(sum(w) for w in layers))
    return Layout(sizes, activation, "identity", blocks=layers)


def _text(widths: tuple[int, ...]) -> str:
    return str(widths[0]) if len(widths) == 1 else "[" + "|".join(map(str, widths)) + "]"


def from_mapping(mapping: dict, base: HybridConfig | None = None) -> HybridConfig:
    """Build a validated HybridConfig from ``mapping`` on top of ``base`` (default: the defaults)."""
    return HybridConfig.from_mapping(mapping, base)


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return HybridConfig.describe()

