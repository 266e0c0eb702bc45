"""The configuration base shared by every mode: type checks naming the key, TOML in and out, help text."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import json
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

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


def absolute_file_spec(spec: str) -> str:
    """A task spec naming a file (``csv:PATH``, ``npz:PATH``) with its path made absolute, so that a run's
    config.toml names the same file from any working folder; other specs as they are."""
    prefix, colon, rest = spec.partition(":")
    if colon and rest and prefix.strip().lower() in ("csv", "npz"):
        return f"{prefix}:{Path(rest).expanduser().absolute()}"
    return spec


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
    """One value as TOML (nan and inf as TOML literals, tuples as arrays)."""
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    return json.dumps(list(value) if isinstance(value, tuple) else value)


def config_to_toml(values: dict, title: str) -> str:
    """``key = value`` lines under a comment naming the resolved configuration."""
    lines = [f"# {title} (resolved: every key, defaults included)"]
    lines += [f"{key} = {toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


@functools.lru_cache(maxsize=None)
def _class_source(cls) -> str:
    """A class's source text, read once (``inspect.getsource`` re-reads and re-parses its module)."""
    return inspect.getsource(cls)


def field_doc(cls, name: str) -> str:
    """The docstring under field ``name`` in the class (or base class) that declares it."""
    owner = next((c for c in cls.__mro__ if name in c.__dict__.get("__annotations__", {})), cls)
    source = _class_source(owner)
    idx = source.find(f"    {name}:")
    after = source[idx:].split('"""') if idx >= 0 else []
    return after[1].strip() if len(after) >= 3 else ""


def describe_fields(cls) -> str:
    """Every key of a config dataclass, its default and the docstring under it (for --help)."""
    return "\n".join(f"  {name} = {toml_value(f.default)}\n      {field_doc(cls, name)}"
                     for name, f in config_fields(cls).items())


def load_toml(path) -> dict:
    """Read a TOML config file into a flat dict (errors name the file)."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config {path} is not valid TOML: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start}): TOML files are UTF-8") from None
    nested = [k for k, v in data.items() if isinstance(v, dict)]
    if nested:
        raise ConfigError(f"config {path}: tables are not used, put every key at top level (found [{nested[0]}])")
    return data


def load_run_config(run_dir) -> dict:
    """A run directory's config.toml (``load_toml``); ConfigError if it is empty: a run writes every key, so an
    empty file is a write cut short (by a full disk, before configs were written atomically), not "all defaults"."""
    path = Path(run_dir) / "config.toml"
    data = load_toml(path)
    if not data:
        raise ConfigError(f"config {path} is empty (a write cut short): the run's settings are lost; start it "
                          f"again with genreg evolve (or hybrid, hpo) and the same settings")
    return data


def write_config(path, text: str) -> Path:
    """Write a run's config file atomically (``genreg.atomic.write_atomic``): a kill or a full disk leaves the
    old file or the new one, never an empty or cut one."""
    from genreg.atomic import write_atomic

    return write_atomic(path, text.encode("utf-8"))


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




# -- the base every mode's config extends --------------------------------------------
MAX_SEED = 2**32 - 1


@dataclass(frozen=True)
class Rule:
    """What one config field accepts beyond its type: bounds, choices, list items, finiteness.

    A bound is a number or the name of another field (``lt="population"``);
    ``ge``/``gt`` close or open the low end, ``le``/``lt`` the high end.
    """

    ge: object = None
    gt: object = None
    le: object = None
    lt: object = None
    choices: tuple = ()
    finite: bool = True
    items: bool = False
    empty: bool = False
    nonempty: bool = False
    note: str = ""

    def requirement(self) -> str:
        """The rule in words, as the tail of an error message ("must be in [0, 1]")."""
        low, high = _first(self.ge, self.gt), _first(self.le, self.lt)
        if self.choices:
            names = [str(c) for c in self.choices]
            text = "must be " + (" or ".join(names) if len(names) < 3 else ", ".join(names[:-1]) + " or " + names[-1])
        elif self.items:
            kind = "positive integers" if self.gt == 0 and high is None else "integers" + _bounds(self)
            text = f"must be a {'' if self.empty else 'non-empty '}list of {kind}"
        elif self.nonempty:
            text = "must be a non-empty string"
        elif low is not None and high is not None:
            text = f"must be in {'[' if self.ge is not None else '('}{low}, {high}{']' if self.le is not None else ')'}"
        elif low is not None or high is not None:
            text = "must be" + _bounds(self)
        else:
            text = "must be finite"
        return f"{text} {self.note}" if self.note else text

    def holds(self, value, config) -> bool:
        """Does ``value`` satisfy the rule (bounds naming fields read from ``config``)?"""
        if self.choices:
            return value in self.choices
        if self.nonempty:
            return bool(value.strip())
        values = value if self.items else (value,)
        if self.items and not ((values or self.empty) and all(isinstance(v, int) and not isinstance(v, bool) for v in values)):
            return False
        bound = lambda b: getattr(config, b) if isinstance(b, str) else b  # noqa: E731
        for v in values:
            if self.ge is not None and not v >= bound(self.ge):
                return False
            if self.gt is not None and not v > bound(self.gt):
                return False
            if self.le is not None and not v <= bound(self.le):
                return False
            if self.lt is not None and not v < bound(self.lt):
                return False
        return True


def _first(*values):
    return next((v for v in values if v is not None), None)


def _bounds(r: Rule) -> str:
    parts = [f"{op} {b}" for op, b in ((">=", r.ge), (">", r.gt), ("<=", r.le), ("<", r.lt)) if b is not None]
    return " " + " and ".join(parts) if parts else ""


def rule(default, **kwargs):
    """A dataclass field with ``default`` and a :class:`Rule` built from ``kwargs`` (see ``Rule``)."""
    return dataclasses.field(default=default, metadata={"rule": Rule(**kwargs)})


@dataclass(frozen=True)
class ConfigBase:
    """Flat, frozen, documented configuration: subclasses declare fields (with ``rule(...)``) and ``check()``.

    Every field's type is that of its default: an int field takes a real int (not a
    bool), a float field a finite number unless its rule says ``finite=False``.
    """

    #: Names the config in error messages ("invalid config: ...", "unknown hpo config key(s)").
    WHAT = "config"
    #: The comment heading ``to_toml()``.
    TITLE = "genreg configuration"

    def need(self, ok: bool, key: str, what: str) -> None:
        """Raise ``ConfigError`` "invalid <WHAT>: key = value: what" unless ``ok``."""
        if not ok:
            raise ConfigError(f"invalid {self.WHAT}: {key} = {getattr(self, key)!r}: {what}")

    def validate(self):
        """Raise ``ConfigError`` naming the first invalid key; return self."""
        known = config_fields(type(self))
        for key, f in known.items():
            self.need(_has_type(getattr(self, key), f.default), key, f"expected {_type_name(f.default)}")
            if isinstance(f.default, float) and f.metadata.get("rule", Rule()).finite:
                self.need(math.isfinite(getattr(self, key)), key, "must be finite")
        for key, f in known.items():
            r = f.metadata.get("rule")
            if r is not None:
                self.need(r.holds(getattr(self, key), self), key, r.requirement())
        self.check()
        return self

    def check(self) -> None:
        """Cross-field checks of a subclass (raise through ``self.need``)."""

    @classmethod
    def coerce(cls, key: str, value):
        """A raw value (TOML, --set) in the type of field ``key``: ints for floats, lists as tuples; a list of
        integers (``rule(items=True)``, e.g. ``hidden_sizes``) also takes one integer."""
        field_ = config_fields(cls)[key]
        default = field_.default
        if isinstance(default, tuple):
            items = field_.metadata.get("rule", Rule()).items
            if items and isinstance(value, int) and not isinstance(value, bool):
                value = [value]
            if not isinstance(value, (list, tuple)):
                what = "must be a list of integers" if items else "expected a list"
                raise ConfigError(f"invalid {cls.WHAT}: {key} = {value!r}: {what}")
            return tuple(value)
        value = coerce_field(default, key, value, cls.WHAT)
        return absolute_file_spec(value) if key == "task" else value

    @classmethod
    def from_mapping(cls, mapping: dict, base=None):
        """A validated config from flat ``mapping`` on top of ``base`` (default: the defaults)."""
        return build_config(cls, mapping, base, cls.WHAT, cls.coerce)

    @classmethod
    def describe(cls) -> str:
        """Every key, its default and its documentation (for --help)."""
        return describe_fields(cls)

    def replace(self, **changes):
        """A validated copy with ``changes`` (coerced and checked like a config file's keys)."""
        return self.from_mapping(changes, self)

    def to_dict(self) -> dict:
        """Every key in declaration order (tuples as lists)."""
        return {key: list(v) if isinstance(v, tuple) else v
                for key in config_fields(type(self)) for v in (getattr(self, key),)}

    def to_toml(self, title: str | None = None) -> str:
        """The resolved config as flat TOML (every key, defaults included)."""
        return config_to_toml(self.to_dict(), title or self.TITLE)


def _type_name(default) -> str:
    return {bool: "true or false", tuple: "list"}.get(type(default), type(default).__name__)


def _has_type(value, default) -> bool:
    """Is ``value`` of the type of ``default`` (bools only for bools, ints also for floats)?"""
    if isinstance(default, bool) or isinstance(value, bool):
        return isinstance(default, bool) and isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, (int, float))
    return isinstance(value, type(default))
