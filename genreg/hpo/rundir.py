"""The individuals of a trait search and its run directory's files (CSV rows, ``population.h5``).

    OUT/evaluations.csv    one row per fitness evaluation (``EVAL_COLUMNS``, ``evaluation_row``)
    OUT/generations.csv    one row per generation (``GEN_COLUMNS``)
    OUT/population.h5      the population after the last finished generation (``write_population``)
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.errors import CheckpointError, GenregError
from genreg.hpo.model import POPULATION_FORMAT, POPULATION_VERSION
from genreg.hpo.traits import TRAITS, Traits
from genreg.network.layout import Layout
from genreg.runs import store
from genreg.runs.store import check_format, read_dataset, write_dataset


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
    with store.atomic_h5(path) as f:  # the one HDF5 writer of every run kind (an OSError names the file)
        f.attrs["format"] = POPULATION_FORMAT
        f.attrs["format_version"] = POPULATION_VERSION
        f.attrs["generation"] = generation
        f.attrs["metric"] = metric
        for ind in population:
            g = f.create_group(str(ind.id))
            write_dataset(g, "row", ind.row)
            g.attrs["layout"] = json.dumps(ind.layout.to_dict())
            g.attrs["traits"] = json.dumps(ind.traits.to_dict())
            g.attrs["metric"] = ind.metric
            g.attrs["generation"] = ind.generation
            g.attrs["parents"] = list(ind.parents)
            g.attrs["provenance"] = ind.provenance
    return path


def read_population(path) -> tuple[int, list]:
    """Read ``population.h5``: (generation, individuals as written by ``write_population``).

    Errors (CheckpointError) name the file: unreadable, no individuals, a generation that is not a whole number >= 0.
    """
    import h5py

    path = Path(path)
    try:
        with h5py.File(path, "r") as f:
            check_format(f, path, POPULATION_FORMAT, POPULATION_VERSION, "hpo population file")
            generation = f.attrs["generation"]
            if isinstance(generation, np.ndarray) and generation.shape == ():
                generation = generation[()]
            if isinstance(generation, (bool, np.bool_)) or not isinstance(generation, (int, np.integer)) \
                    or generation < 0:
                raise ValueError(f"generation must be a whole number >= 0, got {generation!r}"[:120])
            generation = int(generation)
            population = []
            for name, g in f.items():
                population.append(Individual(
                    id=int(name), traits=Traits.from_dict(json.loads(g.attrs["traits"])),
                    layout=Layout.from_dict(json.loads(g.attrs["layout"])),
                    row=np.ascontiguousarray(read_dataset(g, "row"), dtype=np.float32), generation=int(g.attrs["generation"]),
                    parents=tuple(int(p) for p in g.attrs["parents"]), provenance=str(g.attrs["provenance"]),
                    metric=float(g.attrs["metric"])))
        if not population:
            raise ValueError("it holds no individuals")
    except CheckpointError:
        raise
    except (OSError, KeyError, ValueError, TypeError, GenregError) as exc:
        raise CheckpointError(f"cannot read {path}: {type(exc).__name__}: {exc}"[:300]) from None
    return generation, sorted(population, key=lambda ind: ind.id)


def has_population(out) -> bool:
    """Whether the search in ``out`` has finished a generation (its checkpoint ``population.h5`` exists)."""
    return (Path(out) / "population.h5").is_file()


def read_rows(path, columns, before: int) -> list[dict]:
    """The rows of a search CSV (``evaluations.csv``, ``generations.csv``) of generations < ``before``, as
    dicts of strings; a torn last line (a kill or a full disk mid-write) is left out.

    CheckpointError naming the file if it is missing, not UTF-8, has other columns or a damaged row.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path} is missing: a search cannot resume without it (start a new search)")
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = [r for r in csv.reader(fh) if r]
        if not rows or tuple(rows[0]) != tuple(columns):
            raise ValueError("its header is not the search's columns")
        body = rows[1:]
        if body and (len(body[-1]) != len(columns) or not body[-1][0].isdigit()):
            body = body[:-1]
        for i, r in enumerate(body):
            if len(r) != len(columns) or not r[0].isdigit():
                raise ValueError(f"row {i + 2} is not {len(columns)} values starting with a generation")
    except (OSError, UnicodeDecodeError, csv.Error, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged ({type(exc).__name__}: {str(exc)[:80]}); "
                              "the search cannot resume from it") from None
    return [dict(zip(columns, r)) for r in body if int(r[0]) < before]
