"""A founder population stored as "the founders of seed S" (checkpoint format 6, group ``founders``).

A generation-0 population, as ``Population.random`` drew it, is written as its seed and weight
scale, its shape (rows, n_params) and a CRC-32 of each 16 MiB of W, instead of W itself; reading
draws it again in parallel (``founder_fill``: the same bits) and checks it against those CRCs, so a
damaged description is a ValueError (a one-line CheckpointError from ``read_checkpoint``), never a
wrong population.  A stale mark (W changed in place after it was drawn) is caught by probe rows
when writing (W is stored as it is) or by the CRCs when reading.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from genreg.network.layout import Layout
from genreg.network.population import Founders, Population, check_population_size, founder_fill, founder_rows
from genreg.runs.h5fields import array_crc32, read_dataset, whole_attr, write_dataset
from genreg.strategies.base import EvolutionState

#: Founder rows whose values ``write_checkpoint`` draws again before it stores W as a description.
FOUNDER_PROBES = 16
#: Bytes of W each CRC-32 of a founders description covers (computed on several threads).
FOUNDER_CRC_BYTES = 16 << 20


def founders_of(state: EvolutionState) -> Founders | None:
    """``state``'s founders description if its W is still ``Population.random``'s (generation 0, a few
    rows drawn again are equal), else None (store W).  The bookkeeping arrays are stored as they are."""
    pop = state.population
    founders = pop.founders
    if founders is None or state.generation != 0 or pop.W is None or not 0 <= founders.seed < 2**63:
        return None
    rows = np.unique(np.linspace(0, pop.size - 1, min(pop.size, FOUNDER_PROBES)).round().astype(np.int64))
    if not np.array_equal(founder_rows(pop.layout, founders.seed, rows, founders.scale), pop.W[rows]):
        return None  # W was changed in place after it was drawn: store it as it is
    return founders


def _block_crcs(W: np.ndarray, rows: int) -> np.ndarray:
    """CRC-32 of each block of ``rows`` rows of W, on Numba's thread count (zlib releases the GIL): ``(k,) uint32``."""
    import numba

    starts = range(0, W.shape[0], rows)
    with ThreadPoolExecutor(max(1, min(numba.get_num_threads(), len(starts)))) as pool:
        return np.fromiter(pool.map(lambda r: array_crc32(W[r : r + rows]), starts), dtype=np.uint32, count=len(starts))


def write_founders(group, founders: Founders, pop: Population, crc_bytes: int = FOUNDER_CRC_BYTES) -> None:
    """Store W as "the founders of seed S": attributes seed, scale (absent: each layer's fan-in bound),
    rows, n_params, crc_rows, and dataset crc32: the CRC-32 of each block of crc_rows rows of W
    (about ``crc_bytes`` bytes of W each)."""
    crc_rows = max(1, crc_bytes // (4 * pop.layout.n_params))
    group.attrs["seed"] = np.int64(founders.seed)
    if founders.scale is not None:
        group.attrs["scale"] = float(founders.scale)
    for name, value in (("rows", pop.size), ("n_params", pop.layout.n_params), ("crc_rows", crc_rows)):
        group.attrs[name] = np.int64(value)
    write_dataset(group, "crc32", _block_crcs(pop.W, crc_rows))


def read_founders(group) -> tuple:
    """(Founders, rows, n_params, crc_rows, crc32) stored by ``write_founders``; ValueError naming a malformed field."""
    seed, rows, n_params, crc_rows = (whole_attr(group.attrs[k], f"founders/{k}")
                                      for k in ("seed", "rows", "n_params", "crc_rows"))
    scale = group.attrs.get("scale")
    if scale is not None:
        if isinstance(scale, np.ndarray) and scale.shape == ():
            scale = scale[()]
        if not isinstance(scale, (float, np.floating)) or not np.isfinite(scale):
            raise ValueError(f"founders/scale must be a finite number, got {scale!r}"[:120])
        scale = float(scale)
    crcs = read_dataset(group, "crc32")
    if crc_rows < 1 or crcs.dtype != np.uint32 or crcs.shape != (-(-rows // crc_rows),):
        raise ValueError(f"dataset founders/crc32 is {crcs.dtype} {crcs.shape}, not the CRC-32 of each "
                         f"{crc_rows} of {rows} rows")
    return Founders(seed, scale), rows, n_params, crc_rows, crcs


def build_founders(description: tuple, layout: Layout, size: int) -> np.ndarray:
    """W of the founders ``description`` (``read_founders``) for ``size`` genomes of ``layout``, drawn
    again in parallel; ValueError unless it matches the file's rows and the CRC-32 of the rows written."""
    founders, rows, n_params, crc_rows, crcs = description
    if rows != size or n_params != layout.n_params:
        raise ValueError(f"the founders description has {rows} rows of {n_params} parameters; the file holds "
                         f"{size} genomes of {layout.describe()} ({layout.n_params} parameters)")
    check_population_size(layout, size)
    W = founder_fill(layout, founders.seed, np.empty((size, n_params), dtype=np.float32), scale=founders.scale)
    bad = np.flatnonzero(_block_crcs(W, crc_rows) != crcs)
    if bad.size:
        raise ValueError(f"the founders of seed {founders.seed} do not match the rows they were stored from "
                         f"(rows {bad[0] * crc_rows}..{min(size, (bad[0] + 1) * crc_rows) - 1}): the file is damaged")
    return W
