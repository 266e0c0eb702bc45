"""The evolve config (genreg.strategies.config): defaults, refusals naming the key, overrides, TOML."""

from __future__ import annotations

import pytest

from genreg.config import load_toml
from genreg.errors import ConfigError
from genreg.strategies.config import NETWORK_KEYS, Config, from_mapping


# --------------------------------------------------------------------------
# Config
# --------------------------------------------------------------------------


def test_defaults_validate_and_reproduce_the_published_protocol():
    cfg = Config().validate()
    assert from_mapping({}) == cfg
    assert cfg.population == 200
    assert cfg.hidden_sizes == (64,)
    assert cfg.activation == "tanh"
    assert cfg.samples_per_class == 20
    assert cfg.correct_reward == 10.0
    assert cfg.wrong_penalty == -1.5
    assert cfg.trust_decay == 0.2
    assert cfg.survival_cutoff == 0.2
    assert cfg.trust_inheritance == 0.03
    assert cfg.child_mutation_rate == 0.07
    assert cfg.base_mutation_rate == 0.08
    assert cfg.strategy == "genreg"
    assert set(NETWORK_KEYS) == {"hidden_sizes", "activation", "conv"}


@pytest.mark.parametrize(
    "key, value",
    [
        ("child_mutation_rate", -0.01),
        ("base_mutation_rate", -0.5),
        ("ga_mutation_rate", -1.0),
        ("base_mutation_share", -0.1),
        ("child_mutation_rate", 1.5),
        ("mutation_scale", -0.03),
        ("survival_cutoff", 0),
        ("survival_cutoff", 1.5),
        ("population", 0),
        ("population", "20"),
        ("strategy", "annealing"),
        ("selection", "lottery"),
        ("crossover", "half"),
        ("activation", "gelu"),
        ("hidden_sizes", [0]),
        ("hidden_sizes", "64"),
        ("trust_decay", 1.2),
        ("elites", 200),
        ("generations", 2.5),
        ("seed", True),
    ],
)
def test_invalid_values_are_refused_naming_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        from_mapping({key: value})


def test_unknown_key_is_refused_naming_it():
    with pytest.raises(ConfigError, match="populaton"):
        from_mapping({"populaton": 100})


def test_ints_are_accepted_for_float_keys_and_replace_validates():
    cfg = from_mapping({"correct_reward": 12, "hidden_sizes": 32})
    assert cfg.correct_reward == 12.0 and isinstance(cfg.correct_reward, float)
    assert cfg.hidden_sizes == (32,)
    with pytest.raises(ConfigError, match="survival_cutoff"):
        cfg.replace(survival_cutoff=0.0)


def test_to_toml_round_trips(tmp_path):
    cfg = from_mapping({"strategy": "ga", "hidden_sizes": [32, 8], "mutation_scale": 0.125, "population": 31})
    path = tmp_path / "config.toml"
    path.write_text(cfg.to_toml())
    assert from_mapping(load_toml(path)) == cfg
