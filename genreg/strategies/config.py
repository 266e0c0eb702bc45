"""Run configuration: flat TOML keys, documented defaults, validation that names the key.

``Config`` is frozen.  It holds every hyper-parameter of a run (network shape,
strategy parameters, run bookkeeping).  ``NETWORK_KEYS`` change the genome's
shape and may not change on resume; everything else may.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields

from genreg.config import build_config, coerce_field, config_to_toml, describe_fields
from genreg.errors import ConfigError



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
    samples_per_class: int = 20
    """Episode size: k training images of each digit per generation, the same for every genome."""
    validation_size: int = 10000
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
        need(self.samples_per_class >= 1, "samples_per_class", "must be at least 1")
        need(0 < self.validation_size < 60000, "validation_size", "must be in (0, 60000)")
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


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return describe_fields(Config)
