"""The island model (genreg, ga): several populations evolving side by side, with migrations along a ring.

(Being built: ``start_islands`` and ``resume_islands`` are filled in by the island-model work.)
"""

from __future__ import annotations

from pathlib import Path

from genreg.errors import ConfigError


def is_island_run(run_dir) -> bool:
    """Whether ``run_dir`` holds an island-model run (its config.toml sets islands > 1)."""
    from genreg.config import load_toml

    path = Path(run_dir) / "config.toml"
    if not path.is_file():
        return False
    try:
        return int(load_toml(path).get("islands", 1)) > 1
    except (ValueError, TypeError, ConfigError):
        return False


def start_islands(cfg, run_dir, task, layout, *, cluster=None, progress=True, on_generation=None):
    raise ConfigError("islands > 1: the island model is not built yet")


def resume_islands(run_dir, overrides, data_dir, *, task=None, cluster=None, progress=True, on_generation=None):
    raise ConfigError("islands > 1: the island model is not built yet")
