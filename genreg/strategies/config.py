"""Run configuration: flat TOML keys, documented defaults, validation that names the key.

``Config`` is frozen.  It holds every hyper-parameter of a run (network shape,
strategy parameters, run bookkeeping).  ``NETWORK_KEYS`` change the genome's
shape and may not change on resume; everything else may.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from genreg.config import MAX_SEED, ConfigBase, rule


@dataclass(frozen=True)
class Config(ConfigBase):
    TITLE = "genreg run configuration"

    # -- network (fixed for the life of a run) --------------------------------
    hidden_sizes: tuple = rule((64,), items=True, empty=True, gt=0)
    """Hidden dense layer widths, e.g. [64] for 784-64-10 ([] for none: after a ConvNet's stages, or a linear model)."""
    conv: str = ""
    """Convolution and pooling stages before the dense layers, e.g. 'c5x8-p2-c5x16-p2' (an image task; '' = an MLP): c<k>x<channels>[s<stride>][p<padding>], p<k> max pooling, a<k> average pooling."""
    activation: str = rule("tanh", choices=("tanh", "relu", "sigmoid", "identity"))
    """Hidden activation: tanh, relu, sigmoid or identity."""
    task: str = rule("mnist", nonempty=True)
    """The problem: mnist, fashion-mnist, alphabet, alphabet-fonts, wine, wine-white, boston, trig, csv:FILE (with target), npz:FILE"""
    target: str = ""
    """csv tasks: the name of the target column"""

    # -- the run ---------------------------------------------------------------
    strategy: str = rule("genreg", nonempty=True)
    """A registered strategy (genreg.strategies): 'genreg' (trust-decay selection), 'ga' (classic GA: pairing, crossover, adaptive mutation), or an evolution strategy moving one centre: 'openai-es', 'pgpe', 'snes'."""
    seed: int = rule(0, ge=0, le=MAX_SEED)
    """The run is a function of its config and this seed."""
    generations: int = rule(600, ge=0)
    """Generations in total (resume continues up to this number)."""
    population: int = rule(200, ge=2)
    """Genomes per generation (may change on resume)."""
    samples_per_class: int = rule(20, ge=1)
    """Episode size: k training images of each digit per generation, the same for every genome."""
    validation_size: int = rule(10000, gt=0, lt=60000)
    """Validation split carved from the 60k training images (never the test set)."""
    validation_every: int = rule(10, ge=0)
    """Evaluate the best genome on the validation split every K generations (0 = never)."""
    checkpoint_every: int = rule(50, ge=1)
    """Write an HDF5 state checkpoint and the best genome pickle every K generations."""
    keep_all_genomes: bool = False
    """Keep the best genome pickle of every checkpoint (default: only the newest and the one that scored best on validation)."""
    max_minutes: float = rule(0.0, ge=0, note="(0 = no limit)")
    """Wall-clock budget of one `evolve`/`resume` invocation in minutes (0 = none): when it is used up, the run checkpoints and stops."""
    track_weights: int = rule(100, ge=0)
    """How many fixed weights of the best genome to record each generation (for `genreg plot`)."""

    # -- GENREG (trust-decay) ----------------------------------------------------
    correct_reward: float = rule(10.0, gt="wrong_penalty")
    """Trust per correctly classified episode image."""
    wrong_penalty: float = -1.5
    """Trust per misclassified episode image."""
    trust_decay: float = rule(0.2, ge=0, le=1)
    """trust <- trust * (1 - trust_decay) + episode trust."""
    survival_cutoff: float = rule(0.2, gt=0, le=1)
    """Top fraction (by trust) that survives and may reproduce, in (0, 1]."""
    trust_inheritance: float = rule(0.03, ge=0, le=1)
    """Fraction of the parent's trust a child starts with."""
    child_mutation_rate: float = rule(0.07, ge=0, le=1)
    """Fraction of a child's weights that receive Gaussian noise."""
    base_mutation_rate: float = rule(0.08, ge=0, le=1)
    """Fraction of weights mutated by base mutation (see base_mutation_share)."""
    base_mutation_share: float = rule(0.1, ge=0, le=1)
    """Fraction of the non-elite new population that also receives base mutation each generation."""
    mutation_scale: float = rule(0.03, ge=0)
    """Standard deviation of the Gaussian mutation noise (child and base) at generation 0."""
    mutation_scale_end: float = rule(0.0, ge=0)
    """If > 0: the noise scale shrinks geometrically from mutation_scale to this value at the last generation."""
    parent_weighting: str = rule("shift", choices=("shift", "clip", "rank", "uniform"))
    """How survivors' trust weighs parent choice: 'shift' (trust - min + 1), 'clip' (max(trust, 0)), 'rank', 'uniform'."""
    elites: int = rule(1, ge=0, lt="population")
    """Best genomes carried over unmutated each generation (GENREG: as children that start with trust_inheritance of their trust, like any child; GA: with their fitness)."""

    # -- classic GA ---------------------------------------------------------------
    fitness: str = rule("accuracy", choices=("accuracy", "neg_loss"))
    """GA fitness on the episode: 'accuracy' or 'neg_loss' (negative cross-entropy of softmax logits)."""
    selection: str = rule("tournament", choices=("rank", "roulette", "tournament"))
    """GA pairing bias: 'rank', 'roulette' or 'tournament'."""
    tournament_size: int = rule(3, ge=1)
    """Contestants per tournament."""
    crossover: str = rule("mask", choices=("mask", "gene", "none"))
    """How a child combines two parents (both strategies): 'mask' (element-wise), 'gene' (layer/block genes) or 'none' (GENREG: a copy of one parent)."""
    gene_block_rows: int = rule(0, ge=0)
    """Gene crossover: 0 = whole tensors, k = blocks of k input rows of each weight matrix (and, in a ConvNet, each filter of a convolution, one output channel's k x k x C_in weights, is a gene)."""
    ga_mutation_rate: float = rule(0.05, ge=0, le=1)
    """GA: fraction of a child's weights mutated."""
    ga_mutation_scale: float = rule(0.05, ge=0)
    """GA: initial mutation noise (adapted each generation)."""
    ga_mutation_scale_end: float = rule(0.01, ge=0)
    """GA: the noise (before adaptation) shrinks geometrically from ga_mutation_scale to this value at the last generation (0 = constant)."""
    adapt_min: float = rule(0.1, gt=0, le=1)
    """GA: the convergence factor never shrinks the mutation below this share of its scale."""
    stagnation_patience: int = rule(10, ge=1)
    """GA: generations without a new best before mutation grows."""
    stagnation_growth: float = rule(1.0, ge=1)
    """GA: factor applied to mutation per stagnant patience window (capped at 8x); 1 = off (default; docs/ga.md)."""

    # -- island model (genreg, ga) ---------------------------------------------------
    islands: int = rule(1, ge=1)
    """Island model (genreg, ga): this many populations of `population` genomes evolve side by side (on Ray workers with --ray); every migration_every generations the best `migrants` genomes of each island replace the worst of the next island along a ring."""
    migration_every: int = rule(10, ge=1)
    """Island model: generations between migrations."""
    migrants: int = rule(2, ge=0)
    """Island model: genomes each island sends to the next at a migration (0 = isolated islands)."""

    # -- evolution strategies (openai-es, pgpe, snes) -------------------------------
    rank: int = rule(1, ge=0)
    """ES: rank r of each weight matrix's perturbation A B^T / sqrt(r), regenerated from seeds (0 = full-rank Gaussian noise)."""
    sigma: float = rule(0.02, gt=0)
    """ES: standard deviation of the perturbations (PGPE, SNES: its starting value, then learned)."""
    learning_rate: float = rule(0.0, ge=0, note="(0 = the strategy's default)")
    """ES: the centre's step: OpenAI-ES Adam's step size (default 0.01), PGPE ClipUp's step size (default 0.1 sigma sqrt(n_params)), SNES's mean learning rate (default 1.0)."""
    learning_rate_end: float = rule(0.0, ge=0, note="(0 = constant)")
    """ES: if > 0, the centre's step shrinks geometrically from learning_rate (or the strategy's default) to this value at the last generation."""
    sigma_learning_rate: float = rule(0.0, ge=0, note="(0 = the strategy's default)")
    """PGPE, SNES: learning rate of sigma (PGPE default 0.1; SNES default (3 + ln d) / (5 sqrt d), d the number of sigmas)."""
    weight_decay: float = rule(0.0, ge=0)
    """OpenAI-ES: L2 coefficient pulling the centre towards zero (added to Adam's gradient)."""
    momentum: float = rule(0.9, ge=0, lt=1)
    """PGPE: ClipUp's momentum."""
    max_speed: float = rule(0.0, ge=0, note="(0 = twice the step size)")
    """PGPE: ClipUp's largest step norm."""

    extra: dict = field(default_factory=dict, compare=False, repr=False)

    # -----------------------------------------------------------------------------
    def check(self) -> None:
        """The strategy must be registered (a module of ``genreg.strategies`` defines it)."""
        from genreg.strategies import strategies

        known = strategies()
        self.need(self.strategy in known, "strategy", f"must be one of {', '.join(known)}")
        self.need(self.population % 2 == 0 or not known[self.strategy].reports_centre, "population",
                  f"{self.strategy} scores its members in antithetic pairs (+eps, -eps): give an even population")
        self.need(self.islands == 1 or self.migrants < self.population, "migrants",
                  f"an island sends fewer genomes than its population ({self.population})")
        check_conv(self)


def check_conv(cfg) -> None:
    """``cfg.conv`` must parse as stages (their fit to the task's images is checked with the task)."""
    from genreg.errors import ConfigError
    from genreg.network.conv import parse_stages

    try:
        parse_stages(cfg.conv)
    except ConfigError as exc:
        cfg.need(False, "conv", str(exc))


NETWORK_KEYS = ("hidden_sizes", "activation", "conv")


def from_mapping(mapping: dict, base: Config | None = None) -> Config:
    """Build a validated Config from ``mapping`` on top of ``base`` (default: the defaults)."""
    return Config.from_mapping(mapping, base)


def describe_keys() -> str:
    """Every key, its default and its documentation (for --help)."""
    return Config.describe()
