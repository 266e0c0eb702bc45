"""Run configuration: flat TOML keys, documented defaults, validation that names the key.

``Config`` is frozen.  It holds every hyper-parameter of a run (network shape,
strategy parameters, run bookkeeping).  ``NETWORK_KEYS`` change the genome's
shape and may not change on resume; everything else may.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import sys
from dataclasses import dataclass, field, fields

from genreg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


@dataclass(frozen=True)
class Config:
    # -- network (fixed for the life of a run) --------------------------------
    hidden_sizes: tuple = (64,)
    """Hidden layer widths, e.g. [64] for 784-64-10."""
    activation: str = "tanh"
    """Hidden activation: tanh, relu, sigmoid or identity."""

    # -- the run ---------------------------------------------------------------
    strategy: str = "genreg"
    """'genreg' (trust-decay selection) or 'ga' (classic GA: pairing, crossover, adaptive mutation)."""
    seed: int = 0
    """The run is a function of its config and this seed."""
    generations: int = 600
    """Generations in total (resume continues up to this number)."""
    population: int = 200
    """Genomes per generation (may change on resume)."""
    images_per_digit: int = 20
    """Episode size: k training images of each digit per generation, the same for every genome."""
    validation_images: int = 10000
    """Validation split carved from the 60k training images (never the test set)."""
    validation_every: int = 10
    """Evaluate the best genome on the validation split every K generations (0 = never)."""
    checkpoint_every: int = 50
    """Write an HDF5 state checkpoint and the best genome pickle every K generations."""
    max_minutes: float = 0.0
    """Wall-clock budget of one `evolve`/`resume` invocation in minutes (0 = none): when it is used up, the run checkpoints and stops."""
    track_weights: int = 100
    """How many fixed weights of the best genome to record each generation (for `genreg plot`)."""

    # -- GENREG (trust-decay) ----------------------------------------------------
    correct_reward: float = 10.0
    """Trust per correctly classified episode image."""
    wrong_penalty: float = -1.5
    """Trust per misclassified episode image."""
    trust_decay: float = 0.2
    """trust <- trust * (1 - trust_decay) + episode trust."""
    survival_cutoff: float = 0.2
    """Top fraction (by trust) that survives and may reproduce, in (0, 1]."""
    trust_inheritance: float = 0.03
    """Fraction of the parent's trust a child starts with."""
    child_mutation_rate: float = 0.07
    """Fraction of a child's weights that receive Gaussian noise."""
    base_mutation_rate: float = 0.08
    """Fraction of weights mutated by base mutation (see base_mutation_share)."""
    base_mutation_share: float = 0.1
    """Fraction of the non-elite new population that also receives base mutation each generation."""
    mutation_scale: float = 0.03
    """Standard deviation of the Gaussian mutation noise (child and base) at generation 0."""
    mutation_scale_end: float = 0.0
    """If > 0: the noise scale shrinks geometrically from mutation_scale to this value at the last generation."""
    parent_weighting: str = "shift"
    """How survivors' trust weighs parent choice: 'shift' (trust - min + 1), 'clip' (max(trust, 0)), 'rank', 'uniform'."""
    elites: int = 1
    """Best genomes carried over unmutated (with their trust) each generation."""

    # -- classic GA ---------------------------------------------------------------
    fitness: str = "accuracy"
    """GA fitness on the episode: 'accuracy' or 'neg_loss' (negative cross-entropy of softmax logits)."""
    selection: str = "tournament"
    """GA pairing bias: 'rank', 'roulette' or 'tournament'."""
    tournament_size: int = 3
    """Contestants per tournament."""
    crossover: str = "mask"
    """How a child combines two parents (both strategies): 'mask' (element-wise), 'gene' (layer/block genes) or 'none' (GENREG: a copy of one parent)."""
    gene_block_rows: int = 0
    """Gene crossover: 0 = whole tensors, k = blocks of k input rows of each weight matrix."""
    ga_mutation_rate: float = 0.05
    """GA: fraction of a child's weights mutated."""
    ga_mutation_scale: float = 0.05
    """GA: initial mutation noise (adapted each generation)."""
    ga_mutation_scale_end: float = 0.01
    """GA: the noise (before adaptation) shrinks geometrically from ga_mutation_scale to this value at the last generation (0 = constant)."""
    adapt_min: float = 0.1
    """GA: the convergence factor never shrinks the mutation below this share of its scale."""
    stagnation_patience: int = 10
    """GA: generations without a new best before mutation grows."""
    stagnation_growth: float = 1.0
    """GA: factor applied to mutation per stagnant patience window (capped at 8x); 1 = off (default, see README)."""

    extra: dict = field(default_factory=dict, compare=False, repr=False)

    # -----------------------------------------------------------------------------
    def validate(self) -> "Config":
        """Raise ``ConfigError`` naming the first invalid key; return self."""

        def need(ok, key, what):
            if not ok:
                raise ConfigError(f"invalid config: {key} = {getattr(self, key)!r}: {what}")

        need(len(self.hidden_sizes) >= 1 and all(isinstance(h, int) and h > 0 for h in self.hidden_sizes),
             "hidden_sizes", "must be a non-empty list of positive integers")
        need(self.activation in ("tanh", "relu", "sigmoid", "identity"), "activation",
             "must be tanh, relu, sigmoid or identity")
        need(self.strategy in ("genreg", "ga"), "strategy", "must be 'genreg' or 'ga'")
        need(self.seed >= 0, "seed", "must be >= 0")
        need(self.generations >= 0, "generations", "must be >= 0")
        need(self.population >= 2, "population", "must be at least 2")
        need(self.images_per_digit >= 1, "images_per_digit", "must be at least 1")
        need(0 < self.validation_images < 60000, "validation_images", "must be in (0, 60000)")
        need(self.validation_every >= 0, "validation_every", "must be >= 0")
        need(self.checkpoint_every >= 1, "checkpoint_every", "must be >= 1")
        need(self.track_weights >= 0, "track_weights", "must be >= 0")
        need(self.max_minutes >= 0, "max_minutes", "must be >= 0 (0 = no limit)")
        need(self.correct_reward > self.wrong_penalty, "correct_reward", "must exceed wrong_penalty")
        need(0 <= self.trust_decay <= 1, "trust_decay", "must be in [0, 1]")
        need(0 < self.survival_cutoff <= 1, "survival_cutoff", "must be in (0, 1]")
        need(0 <= self.trust_inheritance <= 1, "trust_inheritance", "must be in [0, 1]")
        for key in ("child_mutation_rate", "base_mutation_rate", "base_mutation_share", "ga_mutation_rate"):
            need(0 <= getattr(self, key) <= 1, key, "must be in [0, 1]")
        for key in ("mutation_scale", "mutation_scale_end", "ga_mutation_scale", "ga_mutation_scale_end"):
            need(getattr(self, key) >= 0, key, "must be >= 0")
        need(self.parent_weighting in ("shift", "clip", "rank", "uniform"), "parent_weighting",
             "must be shift, clip, rank or uniform")
        need(0 <= self.elites < self.population, "elites", "must be in [0, population)")
        need(self.fitness in ("accuracy", "neg_loss"), "fitness", "must be 'accuracy' or 'neg_loss'")
        need(self.selection in ("rank", "roulette", "tournament"), "selection", "must be rank, roulette or tournament")
        need(self.tournament_size >= 1, "tournament_size", "must be >= 1")
        need(self.crossover in ("mask", "gene", "none"), "crossover", "must be mask, gene or none")
        need(self.gene_block_rows >= 0, "gene_block_rows", "must be >= 0")
        need(0 < self.adapt_min <= 1, "adapt_min", "must be in (0, 1]")
        need(self.stagnation_patience >= 1, "stagnation_patience", "must be >= 1")
        need(self.stagnation_growth >= 1, "stagnation_growth", "must be >= 1")
        return self

    # -----------------------------------------------------------------------------
    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        d["hidden_sizes"] = list(self.hidden_sizes)
        return d

    def to_toml(self) -> str:
        """The resolved config as TOML (every key, defaults included)."""
        return config_to_toml(self.to_dict(), "genreg run configuration")

    def replace(self, **changes) -> "Config":
        return dataclasses.replace(self, **changes).validate()


NETWORK_KEYS = ("hidden_sizes", "activation")
_FIELDS = {f.name: f for f in fields(Config) if f.name != "extra"}


def _coerce(key: str, value):
    """Check a raw value's type against the default's; return it in the field's type."""
    if key == "hidden_sizes":
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"invalid config: hidden_sizes = {value!r}: must be a list of integers")
        return tuple(value)
    return coerce_field(_FIELDS[key].default, key, value, "config")


def from_mapping(mapping: dict, base: Config | None = None) -> Config:
    """Build a validated Config from ``mapping`` on top of ``base`` (default: the defaults)."""
    return build_config(Config, mapping, base, "config", _coerce)


# -- shared by every config class (Config, HybridConfig, HPOConfig) ---------------
def coerce_field(default, key: str, value, what: str = "config"):
    """``value`` in the type of ``default`` (an int is accepted for a float); else ConfigError naming ``key``."""
    if isinstance(default, bool) != isinstance(value, bool):
        expected = "true or false" if isinstance(default, bool) else type(default).__name__
        raise ConfigError(f"invalid {what}: {key} = {value!r}: expected {expected}")
    if isinstance(default, float) and isinstance(value, int):
        return float(value)
    if not isinstance(value, type(default)):
        raise ConfigError(f"invalid {what}: {key} = {value!r}: expected {type(default).__name__}")
    return value


def config_fields(cls) -> dict:
    """The settable fields of a config dataclass, by name."""
    return {f.name: f for f in fields(cls) if f.name != "extra"}


def build_config(cls, mapping: dict, base=None, what: str = "config", coerce=None):
    """A validated ``cls`` from a flat ``mapping`` on top of ``base`` (default: the defaults).

    Unknown keys and values of the wrong type raise ``ConfigError`` naming the key;
    ``coerce(key, value)`` overrides the type check (default: ``coerce_field``).
    """
    known = config_fields(cls)
    unknown = sorted(set(mapping) - set(known))
    if unknown:
        raise ConfigError(f"unknown {what} key(s): {', '.join(unknown)} (known: {', '.join(known)})")
    coerce = coerce or (lambda key, value: coerce_field(known[key].default, key, value, what))
    changes = {key: coerce(key, value) for key, value in mapping.items()}
    return dataclasses.replace(base or cls(), **changes).validate()


def toml_value(value) -> str:
    """One value as TOML (nan as the TOML literal, tuples as arrays)."""
    if isinstance(value, float) and math.isnan(value):
        return "nan"
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def config_to_toml(values: dict, title: str) -> str:
    """``key = value`` lines under a comment naming the resolved configuration."""
    lines = [f"# {title} (resolved: every key, defaults included)"]
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def describe_fields(cls) -> str:
    """Every key of a config dataclass, its default and the docstring under it (for --help)."""
    source = inspect.getsource(cls)
    lines = []
    for name, f in config_fields(cls).items():
        doc = ""
        idx = source.find(f"    {name}:")
        if idx >= 0:
            after = source[idx:].split('"""')
            if len(after) >= 3:
                doc = after[1].strip()
        lines.append(f"  {name} = {toml_value(f.default)}\n      {doc}")
    return "\n".join(lines)


def load_toml(path) -> dict:
    """Read a TOML config file into a flat dict (errors name the file)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"config {path}: tables are not used, put every key at top level (found [{nested[0]}])")
    return data


def parse_overrides(pairs) -> dict:
    """``["key=value", ...]`` from ``--set`` into a dict; values are parsed as TOML values."""
    out = {}
    for pair in pairs or ():
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ConfigError(f"--set expects key=value, got {pair!r}")
        try:
            out[key] = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            out[key] = raw.strip()  # a bare word: a string
    return out


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return describe_fields(Config)
