"""The configuration base shared by every mode: type checks naming the key, TOML in and out, help text."""

from __future__ import annotations

import dataclasses
import inspect
import json
import math
import sys
from dataclasses import fields

from genreg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


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


#: Keys renamed when genreg became task-agnostic: old name -> new name.
RENAMED_KEYS = {"images_per_digit": "samples_per_class", "validation_images": "validation_size"}


def rename_legacy_keys(mapping: dict) -> dict:
    """A config saved under the old key names (``RENAMED_KEYS``), with today's names."""
    return {RENAMED_KEYS.get(key, key): value for key, value in mapping.items()}


def build_config(cls, mapping: dict, base=None, what: str = "config", coerce=None):
    """A validated ``cls`` from a flat ``mapping`` on top of ``base`` (default: the defaults).

    Unknown keys and values of the wrong type raise ``ConfigError`` naming the key;
    ``coerce(key, value)`` overrides the type check (default: ``coerce_field``).
    """
    known = config_fields(cls)
    unknown = sorted(set(mapping) - set(known))
    renamed = [key for key in unknown if RENAMED_KEYS.get(key) in known]
    if renamed:
        raise ConfigError(f"{what} key {renamed[0]} was renamed {RENAMED_KEYS[renamed[0]]}")
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


