"""A GENREG population stored as its brood (checkpoint format 4, group ``brood``).

A brood (``genreg.network.variation.Brood``) describes the children by the survivors' rows and a
few numbers per child (parents, rates, mutation and crossover stream keys): a fifth of W's size
at GENREG's defaults.  Reading validates the description; ``Brood.build`` then makes the rows
with the same kernel that scored them, so they are the same bits.
"""

from __future__ import annotations

import numpy as np

from genreg.runs.h5fields import read_dataset, write_dataset

#: A brood's arrays (``Brood`` fields) and their dtypes; ``scale`` and ``crossover`` are attributes.
BROOD_ARRAYS = {"source": np.float32, "parents": np.int64, "second": np.int64, "rates": np.float64,
                "base_rates": np.float64, "keys": np.uint64, "base_keys": np.uint64, "crossover_keys": np.uint64,
                "gene_bounds": np.int64}


def write_brood(group, brood) -> None:
    """Store a ``Brood``'s description in ``group`` (``BROOD_ARRAYS`` datasets, scale and crossover attributes)."""
    for name in BROOD_ARRAYS:
        write_dataset(group, name, getattr(brood, name))
    group.attrs["scale"] = float(brood.scale)
    group.attrs["crossover"] = brood.crossover


def read_brood(group):
    """The ``Brood`` stored by ``write_brood``; ValueError (naming the field) if any part is malformed."""
    from genreg.network.variation import Brood

    arrays = {}
    for name, dtype in BROOD_ARRAYS.items():
        data = read_dataset(group, name)
        if data.dtype != dtype or data.ndim != (2 if name == "source" else 1):
            raise ValueError(f"dataset brood/{name} is {data.dtype} {data.shape}, not {np.dtype(dtype)}")
        arrays[name] = np.ascontiguousarray(data)
    scale, crossover = group.attrs["scale"], group.attrs["crossover"]
    if isinstance(crossover, bytes):
        crossover = crossover.decode()
    if not isinstance(scale, (float, np.floating)) or not np.isfinite(scale) or not isinstance(crossover, str):
        raise ValueError(f"brood attributes scale={float(scale) if isinstance(scale, (int, float, np.number)) else scale!r} "
                         f"crossover={crossover!r} are invalid"[:160])
    if not np.all(np.isfinite(arrays["source"])):
        raise ValueError("the brood's rows hold non-finite weights")
    gene_bounds = arrays.pop("gene_bounds")
    return Brood(**arrays, scale=float(scale), crossover=crossover,
                 gene_bounds=gene_bounds if crossover == "gene" else None)
