"""The shared config base (genreg.config.ConfigBase) through the three configs built on it."""

from __future__ import annotations

import dataclasses
import math

import pytest

from genreg.config import MAX_SEED, RENAMED_KEYS, ConfigBase, Rule, config_fields, load_toml, parse_overrides, rule
from genreg.errors import ConfigError
from genreg.hpo.config import HPOConfig
from genreg.hybrid.config import HybridConfig
from genreg.strategies.config import Config, from_mapping

CONFIGS = (Config, HybridConfig, HPOConfig)


def _ids(cases):
    return [f"{c.__name__}.{key}={value!r}" for c, key, value in cases]


def _rule(cls, key) -> Rule | None:
    return config_fields(cls)[key].metadata.get("rule")


def _bad_values(cls, key) -> list:
    """Values of the wrong type, non-finite or outside the field's rule."""
    default = config_fields(cls)[key].default
    r = _rule(cls, key) or Rule()
    base = cls()
    bound = lambda b: getattr(base, b) if isinstance(b, str) else b  # noqa: E731
    step = 1 if isinstance(default, int) and not isinstance(default, bool) else 0.5
    out = []
    if isinstance(default, bool):
        out += [1, "yes"]
    elif isinstance(default, int):
        out += [True, 1.5, "3"]
    elif isinstance(default, float):
        out += [True, "0.5"] + ([math.inf, -math.inf, math.nan] if r.finite else [])
    elif isinstance(default, str):
        out += [3]
    if r.choices:
        out.append("no-such-choice")
    if r.nonempty:
        out += ["", "  "]
    if r.items:
        out += ([] if r.empty else [[]]) + [[0], [-1, 4], [2.5], [True]]
    elif not r.choices:
        if r.ge is not None:
            out.append(bound(r.ge) - step)
        if r.gt is not None:
            out.append(bound(r.gt))
        if r.le is not None:
            out.append(bound(r.le) + step)
        if r.lt is not None:
            out.append(bound(r.lt))
    return out


BAD = [(c, key, value) for c in CONFIGS for key in config_fields(c) for value in _bad_values(c, key)]


@pytest.mark.parametrize("cls", CONFIGS)
def test_defaults_validate(cls):
    cfg = cls()
    assert cfg.validate() is cfg
    assert isinstance(cfg, ConfigBase)


@pytest.mark.parametrize("cls, key, value", BAD, ids=_ids(BAD))
def test_every_rule_fires_naming_key_and_value(cls, key, value):
    with pytest.raises(ConfigError) as info:
        cls.from_mapping({key: value})
    message = str(info.value)
    assert message.startswith(f"invalid {cls.WHAT}: {key} = "), message
    assert ": expected " in message or ": must " in message, message


@pytest.mark.parametrize("cls, key, value", BAD, ids=_ids(BAD))
def test_validate_refuses_the_same_values_set_directly(cls, key, value):
    """A config built in code (no coercion) is checked as strictly as one read from TOML."""
    value = tuple(value) if isinstance(value, list) else value
    with pytest.raises(ConfigError, match=f"{key} = "):
        dataclasses.replace(cls(), **{key: value}).validate()


def test_bad_value_list_covers_every_kind_of_rule():
    kinds = {type(config_fields(c)[key].default) for c, key, _ in BAD}
    assert kinds == {bool, int, float, str, tuple}
    assert len(BAD) > 150


@pytest.mark.parametrize("cls", CONFIGS)
def test_seed_range(cls):
    assert cls.from_mapping({"seed": MAX_SEED}).seed == MAX_SEED
    for bad in (-1, MAX_SEED + 1):
        with pytest.raises(ConfigError, match=rf"seed = {bad}: must be in \[0, {MAX_SEED}\]"):
            cls.from_mapping({"seed": bad})


def test_messages_name_key_value_and_requirement():
    cases = [
        (Config, {"survival_cutoff": 0.0}, r"invalid config: survival_cutoff = 0.0: must be in \(0, 1\]"),
        (Config, {"elites": 200}, r"invalid config: elites = 200: must be in \[0, population\)"),
        (Config, {"correct_reward": -2}, r"correct_reward = -2.0: must be > wrong_penalty"),
        (Config, {"max_minutes": -1}, r"max_minutes = -1.0: must be >= 0 \(0 = no limit\)"),
        (Config, {"hidden_sizes": [0]}, r"hidden_sizes = \(0,\): must be a list of positive integers"),
        (Config, {"conv": "c3x8-q2"}, r"conv = 'c3x8-q2': 'q2' is not a stage: use c<k>x<channels>"),
        (Config, {"conv": "c3x8p5"}, r"conv = 'c3x8p5': .*padding 5 must be smaller than the kernel"),
        (Config, {"hidden_sizes": "64"}, r"hidden_sizes = '64': must be a list of integers"),
        (Config, {"activation": "gelu"}, r"activation = 'gelu': must be tanh, relu, sigmoid or identity"),
        (Config, {"strategy": "x"}, r"strategy = 'x': must be one of ga, genreg"),
        (Config, {"task": ""}, r"task = '': must be a non-empty string"),
        (Config, {"mutation_scale": math.inf}, r"mutation_scale = inf: must be finite"),
        (Config, {"population": True}, r"population = True: expected int"),
        (HybridConfig, {"baseline": 1}, r"baseline = 1: expected true or false"),
        (HybridConfig, {"population": 1}, r"population = 1: must be >= 2 \(parents come from the best half\)"),
        (HybridConfig, {"momentum": 1.0}, r"invalid config: momentum = 1.0: must be in \[0, 1\)"),
        (HybridConfig, {"nesterov": True, "momentum": 0.0}, r"nesterov = True: needs momentum > 0"),
        (HybridConfig, {"architecture": "784-100-5"}, r"architecture = '784-100-5': .*784 inputs"),
        (HPOConfig, {"layers_min": 3, "layers_max": 2}, r"invalid hpo config: layers_max = 2: must be >= layers_min"),
        (HPOConfig, {"momentum_max": 1.0}, r"momentum_max = 1.0: must be in \[momentum_min, 1\)"),
        (HPOConfig, {"population": 4, "survivor_fraction": 0.2}, r"survivor_fraction = 0.2: must keep at least 2"),
        (HPOConfig, {"task": "wine", "metric": "accuracy"}, r"metric = 'accuracy': accuracy is the classification"),
        (HPOConfig, {"val_fraction": 0.5, "test_fraction": 0.45}, r"test_fraction = 0.45: must leave at least 10%"),
    ]
    for cls, mapping, pattern in cases:
        with pytest.raises(ConfigError, match=pattern):
            cls.from_mapping(mapping)


def test_hpo_target_may_be_nan_or_inf():
    assert math.isnan(HPOConfig().target)
    assert HPOConfig.from_mapping({"target": math.inf}).target == math.inf


SAMPLES = {
    Config: {"hidden_sizes": [32, 8], "strategy": "ga", "mutation_scale": 0.125, "population": 31, "seed": MAX_SEED,
             "task": "csv:data.csv", "target": "price", "max_minutes": 2},
    HybridConfig: {"architecture": "784-100-[30|20]-10", "baseline": False, "lr": 0.5, "genes": "block", "dropout": 0.25},
    HPOConfig: {"task": "boston", "merge": True, "target": 2.5, "lr_min": 1e-5, "mutation": "gene_store"},
}


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("changed", [False, True])
def test_toml_round_trip(cls, changed, tmp_path):
    cfg = cls.from_mapping(SAMPLES[cls]) if changed else cls()
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    again = cls.from_mapping(load_toml(path))
    assert again.to_dict() == cfg.to_dict() or (cls is HPOConfig and math.isnan(cfg.target))
    assert repr(again) == repr(cfg)


@pytest.mark.parametrize("cls", CONFIGS)
def test_toml_is_flat_in_field_order_under_a_title(cls):
    text = cls().to_toml()
    lines = text.splitlines()
    assert lines[0].startswith(f"# {cls.TITLE}")
    assert [line.split(" = ")[0] for line in lines[1:]] == list(config_fields(cls))
    assert cls().to_toml("other title").startswith("# other title")


def test_toml_titles_are_unchanged():
    assert Config().to_toml().startswith("# genreg run configuration (")
    assert HybridConfig().to_toml().startswith("# genreg hybrid run configuration (")
    assert HPOConfig().to_toml().startswith("# genreg hpo configuration (")


@pytest.mark.parametrize("cls", CONFIGS)
def test_replace_coerces_and_validates(cls):
    cfg = cls()
    again = cfg.replace(seed=5)
    assert again.seed == 5 and cfg.seed == 0 and type(again) is cls
    float_key = {Config: "wrong_penalty", HybridConfig: "lr", HPOConfig: "lr_max"}[cls]
    assert isinstance(cfg.replace(**{float_key: 1}).to_dict()[float_key], float)
    with pytest.raises(ConfigError, match="seed = -1"):
        cfg.replace(seed=-1)
    with pytest.raises(ConfigError, match="population = True"):
        cfg.replace(population=True)
    with pytest.raises(ConfigError, match="unknown .*no_such_key"):
        cfg.replace(no_such_key=1)


def test_config_replace_takes_a_list_for_hidden_sizes():
    assert Config().replace(hidden_sizes=[3, 4]).hidden_sizes == (3, 4)
    assert Config.from_mapping({"hidden_sizes": 32}).hidden_sizes == (32,)


@pytest.mark.parametrize("cls", CONFIGS)
def test_describe_lists_every_key_with_its_docstring(cls):
    text = cls.describe()
    lines = text.splitlines()
    keys = [line.strip().split(" = ")[0] for line in lines[::2]]
    assert keys == list(config_fields(cls))
    assert all(doc.strip() for doc in lines[1::2])


def test_module_level_helpers_still_work():
    from genreg.hpo.config import describe_hpo_keys, hpo_from_mapping
    from genreg.hybrid import config as hybrid
    from genreg.strategies import config as evolve

    assert evolve.from_mapping({"seed": 3}) == Config(seed=3)
    assert evolve.from_mapping({"seed": 4}, evolve.from_mapping({"population": 9})).population == 9
    assert evolve.describe_keys() == Config.describe()
    assert evolve.NETWORK_KEYS == ("hidden_sizes", "activation", "conv")
    assert hybrid.from_mapping({"seed": 3}) == HybridConfig(seed=3)
    assert hybrid.describe_keys() == HybridConfig.describe()
    assert hpo_from_mapping({"seed": 3}).seed == 3
    assert describe_hpo_keys() == HPOConfig.describe()


def test_evolve_config_task_and_target_follow_activation():
    keys = list(config_fields(Config))
    assert keys[keys.index("activation") + 1:keys.index("activation") + 3] == ["task", "target"]
    assert (Config().task, Config().target) == ("mnist", "")


@pytest.mark.parametrize("cls", CONFIGS)
@pytest.mark.parametrize("old", sorted(RENAMED_KEYS))
def test_renamed_keys(cls, old):
    new = RENAMED_KEYS[old]
    if new in config_fields(cls):
        with pytest.raises(ConfigError, match=f"key {old} was renamed {new}"):
            cls.from_mapping({old: 1})
    else:
        with pytest.raises(ConfigError, match=f"unknown {cls.WHAT} key.*{old}"):
            cls.from_mapping({old: 1})


@pytest.mark.parametrize("cls", CONFIGS)
def test_unknown_keys_are_named(cls):
    with pytest.raises(ConfigError, match=f"unknown {cls.WHAT} key\\(s\\): populaton"):
        cls.from_mapping({"populaton": 3})


def test_a_new_config_needs_only_fields_rules_and_check():
    @dataclasses.dataclass(frozen=True)
    class Tiny(ConfigBase):
        WHAT = "tiny config"
        TITLE = "tiny"

        low: int = rule(1, ge=0)
        """The low end."""
        high: int = rule(5, gt="low", le=10)
        """The high end."""
        scale: float = 1.0
        """Any finite number."""
        mode: str = rule("a", choices=("a", "b"))
        """a or b."""

        def check(self):
            self.need(self.high - self.low != 3, "high", "must not be low + 3")

    assert Tiny().validate() == Tiny()
    assert Tiny.from_mapping({"high": 7, "scale": 2}).scale == 2.0
    for mapping, pattern in [({"low": -1}, r"invalid tiny config: low = -1: must be >= 0"),
                             ({"high": 1}, r"high = 1: must be in \(low, 10\]"),
                             ({"high": 11}, r"high = 11: must be in \(low, 10\]"),
                             ({"high": 4}, r"high = 4: must not be low \+ 3"),
                             ({"scale": math.nan}, r"scale = nan: must be finite"),
                             ({"mode": "c"}, r"mode = 'c': must be a or b")]:
        with pytest.raises(ConfigError, match=pattern):
            Tiny.from_mapping(mapping)
    assert "The high end." in Tiny.describe()
    assert Tiny().to_toml().splitlines() == ["# tiny (resolved: every key, defaults included)",
                                             "low = 1", "high = 5", "scale = 1.0", 'mode = "a"']


def test_rule_requirements_in_words():
    assert Rule(ge=0, le=1).requirement() == "must be in [0, 1]"
    assert Rule(gt=0, lt=1).requirement() == "must be in (0, 1)"
    assert Rule(ge=0, lt="population").requirement() == "must be in [0, population)"
    assert Rule(ge=1).requirement() == "must be >= 1"
    assert Rule(lt=3).requirement() == "must be < 3"
    assert Rule(choices=("x", "y", "z")).requirement() == "must be x, y or z"
    assert Rule(items=True, gt=0).requirement() == "must be a non-empty list of positive integers"
    assert Rule(items=True, ge=2).requirement() == "must be a non-empty list of integers >= 2"
    assert Rule(ge=0, note="(0 = off)").requirement() == "must be >= 0 (0 = off)"


def test_parse_overrides_types():
    got = parse_overrides([
        "population=30", "mutation_scale=0.1", "hidden_sizes=[32, 16]", "strategy=ga",
        'selection="rank"', " trust_decay = 0.5 ", "seed=7",
    ])
    assert got == {"population": 30, "mutation_scale": 0.1, "hidden_sizes": [32, 16], "strategy": "ga",
                   "selection": "rank", "trust_decay": 0.5, "seed": 7}
    assert isinstance(got["population"], int) and isinstance(got["mutation_scale"], float)
    cfg = from_mapping(got)
    assert cfg.hidden_sizes == (32, 16) and cfg.strategy == "ga"
    assert parse_overrides(None) == {}
    for bad in ("population", "=3"):
        with pytest.raises(ConfigError, match="key=value"):
            parse_overrides([bad])


def test_load_toml_bad_file_names_it(tmp_path):
    bad = tmp_path / "broken.toml"
    bad.write_text("population = \nhidden_sizes = [64\n")
    with pytest.raises(ConfigError, match="broken.toml"):
        load_toml(bad)
    with pytest.raises(ConfigError, match="missing.toml"):
        load_toml(tmp_path / "missing.toml")
    nested = tmp_path / "nested.toml"
    nested.write_text("[genreg]\npopulation = 3\n")
    with pytest.raises(ConfigError, match="nested.toml"):
        load_toml(nested)
