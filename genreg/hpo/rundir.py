"""The individuals of a trait search and its run directory's files (CSV rows, ``population.h5``).

    OUT/evaluations.csv    one row per fitness evaluation (``EVAL_COLUMNS``, ``evaluation_row``)
    OUT/generations.csv    one row per generation (``GEN_COLUMNS``)
    OUT/population.h5      the population after the last finished generation (``write_population``)
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.errors import CheckpointError, ConfigError
from genreg.hpo.model import POPULATION_FORMAT, POPULATION_VERSION
from genreg.hpo.traits import TRAITS, Traits
from genreg.network.layout import Layout
from genreg.runs.rundir import write_marker
from genreg.runs.store import atomic_h5, check_format


@dataclass(eq=False)
class Individual:
    """One network of the search: traits, layout and (trained) weights ``row: (n_params,) float32``.

    provenance: one letter per trait (``TRAITS`` order): 'r' random (generation
    0), 'a' / 'b' from ``parents[0]`` / ``parents[1]``, 'm' re-drawn by mutation.
    """

    id: int
    traits: Traits
    layout: Layout
    row: np.ndarray
    generation: int
    parents: tuple[int, int] = (-1, -1)
    provenance: str = "r" * len(TRAITS)
    merged: bool = False
    metric: float = math.nan
    init_metric: float = math.nan
    epochs: int = 0
    fitness_seconds: float = math.nan
    fitness_cpu_seconds: float = math.nan
    merge_seconds: float = 0.0
    error: str = ""


EVAL_COLUMNS = ("generation", "id", "parent_a", "parent_b", "provenance", "merged", *TRAITS, "hidden_sizes",
                "n_params", "init_metric", "metric", "epochs", "fitness_seconds", "fitness_cpu_seconds",
                "merge_seconds", "error")
GEN_COLUMNS = ("generation", "best_id", "best_metric", "mean_metric", "median_metric", "evaluations",
               "mean_fitness_seconds", "generation_seconds", "total_seconds")


def evaluation_row(ind: Individual) -> dict:
    """``ind``'s row of ``evaluations.csv`` (keys ``EVAL_COLUMNS``)."""
    t = ind.traits.to_dict()
    return {"generation": ind.generation, "id": ind.id, "parent_a": ind.parents[0], "parent_b": ind.parents[1],
            "provenance": ind.provenance, "merged": int(ind.merged), **t,
            "hidden_sizes": "-".join(map(str, ind.layout.sizes[1:-1])), "n_params": ind.layout.n_params,
            "init_metric": ind.init_metric, "metric": ind.metric, "epochs": ind.epochs,
            "fitness_seconds": ind.fitness_seconds, "fitness_cpu_seconds": ind.fitness_cpu_seconds,
            "merge_seconds": ind.merge_seconds, "error": ind.error}


def write_population(path, population: list, generation: int, metric: str) -> Path:
    """``population.h5``: group ``/<id>`` per individual with ``row`` and JSON attributes (written atomically)."""
    path = Path(path)
    with atomic_h5(path) as f:
        f.attrs["format"] = POPULATION_FORMAT
        f.attrs["format_version"] = POPULATION_VERSION
        f.attrs["generation"] = generation
        f.attrs["metric"] = metric
        for ind in population:
            g = f.create_group(str(ind.id))
            g.create_dataset("row", data=ind.row)
            g.attrs["layout"] = json.dumps(ind.layout.to_dict())
            g.attrs["traits"] = json.dumps(ind.traits.to_dict())
            g.attrs["metric"] = ind.metric
            g.attrs["generation"] = ind.generation
            g.attrs["parents"] = list(ind.parents)
            g.attrs["provenance"] = ind.provenance
    return path


def read_population(path) -> tuple[int, list]:
    """Read ``population.h5``: (generation, individuals as written by ``write_population``).  Errors name the file."""
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            check_format(f, path, POPULATION_FORMAT, POPULATION_VERSION, "hpo population file")
            generation = int(f.attrs["generation"])
            population = []
            for name, g in f.items():
                population.append(Individual(
                    id=int(name), traits=Traits.from_dict(json.loads(g.attrs["traits"])),
                    layout=Layout.from_dict(json.loads(g.attrs["layout"])),
                    row=np.ascontiguousarray(g["row"][()], dtype=np.float32), generation=int(g.attrs["generation"]),
                    parents=tuple(int(p) for p in g.attrs["parents"]), provenance=str(g.attrs["provenance"]),
                    metric=float(g.attrs["metric"])))
    except (OSError, KeyError, ValueError) as exc:
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    return generation, sorted(population, key=lambda ind: ind.id)


def prepare_dir(out: Path) -> None:
    """Refuse a folder that already holds a search; mark ``out`` as an hpo run (creating it)."""
    if (out / "evaluations.csv").exists():
        raise ConfigError(f"{out} already holds a search (evaluations.csv); choose another --out")
    write_marker(out, "hpo")
