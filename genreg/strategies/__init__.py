"""Strategies: how a scored population becomes the next one.

Every module here that defines a ``Strategy`` subclass with a ``name`` registers
it: adding a strategy means adding one module.  ``make_strategy(name)`` builds one.
"""

from __future__ import annotations

import importlib
import pkgutil

from genreg.errors import ConfigError
from genreg.strategies.base import Evaluation, EvolutionState, Strategy

_SKIP = {"base", "config"}


def strategies() -> dict[str, type[Strategy]]:
    """Every registered strategy class by name (modules of this package are imported once)."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _SKIP:
            importlib.import_module(f"{__name__}.{info.name}")
    found, todo = {}, list(Strategy.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.name:
            found[cls.name] = cls
    return dict(sorted(found.items()))


def make_strategy(name: str) -> Strategy:
    """A new strategy object by name (ConfigError listing the known names)."""
    known = strategies()
    if name not in known:
        raise ConfigError(f"unknown strategy {name!r} (known: {', '.join(known)})")
    return known[name]()


__all__ = ["Evaluation", "EvolutionState", "Strategy", "make_strategy", "strategies"]
