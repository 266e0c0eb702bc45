"""Population: one C-contiguous float32 buffer ``W[P, n_params]`` plus per-genome arrays.

A genome is a row of ``W``; its tensors are found through the ``Layout``.  No
per-genome objects exist anywhere: strategies and kernels work on whole arrays.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np

from genreg.errors import PopulationError
from genreg.network.layout import Layout
from genreg.streams import FOUNDERS
from genreg.network.variation import Brood, clone

#: Bytes of per-genome bookkeeping: trust (f8), id (i8), parent id (i8), age (i4).
PER_GENOME_BYTES = 8 + 8 + 8 + 4


def available_memory() -> int:
    """Bytes of memory the system can still give us (MemAvailable on Linux)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 1 << 62  # unknown: do not refuse


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"  # pragma: no cover


def population_bytes(layout: Layout, size: int, copies: int = 1) -> int:
    """Bytes needed for ``copies`` populations of ``size`` genomes (weights + bookkeeping)."""
    return copies * size * (layout.n_params * 4 + PER_GENOME_BYTES)


def check_population_size(layout: Layout, size: int, copies: int = 1) -> int:
    """Refuse a population that is empty or would not fit in memory; return the bytes needed."""
    if not isinstance(size, (int, np.integer)) or size <= 0:
        raise PopulationError(f"population size must be a positive integer, got {size!r}")
    needed = population_bytes(layout, int(size), copies)
    available = available_memory()
    if needed > available:
        raise PopulationError(
            f"a population of {size} genomes of {layout.describe()} needs {format_bytes(needed)} "
            f"({needed} bytes{f' for {copies} copies' if copies > 1 else ''}) but only "
            f"{format_bytes(available)} ({available} bytes) of memory is available"
        )
    return needed


#: Bytes an evolution run needs whatever its population: the validation and episode
#: batches, per-thread forward scratch, h5py's and the checkpoint thread's buffers
#: (measured: about 25 MB beyond the loaded MNIST data set at population 2).
RUN_OVERHEAD_BYTES = 64 << 20


def run_rows(population: int, strategy: str, survival_cutoff: float = 0.2, built: bool = True) -> int:
    """Count the genome rows an evolution run of ``population`` (P) genomes holds at its peak.

    Every strategy: 2P while a checkpoint is written (during the next generation): the
    ``CheckpointWriter``'s snapshot of every genome, and the HDF5 file image built in memory
    before it is written out (``genreg.runs.store.atomic_h5``).  The run keeps no other
    reference to the founders or to the checkpoint it resumed from.  Then by strategy, with
    S = ceil(``survival_cutoff`` * P) survivors:

    "genreg", children scored unbuilt (``built=False``: classification without a loss):
        2S, the survivors' rows the brood is made from and the spare of two generations ago;
    "genreg", children built (regression, fitness callables: ``Population.build``):
        2P + S, this and the last generation's rows and the new survivors' rows;
    "ga" (and any other strategy): 3P, the population, the children, and the next
        population the children are copied into beside the elites.
    """
    P = int(population)
    if strategy == "genreg":
        S = max(1, math.ceil(survival_cutoff * P))
        return 2 * P + (2 * P + S if built else 2 * S)
    return 2 * P + 3 * P


#: The evolution strategies (``genreg.strategies.es_base``): members are keys, not rows.
ES_STRATEGIES = ("openai-es", "pgpe", "snes")
#: An evolution strategy's arrays of length n_params (float64): centre, sigma, two moments, the noise
#: sums and the update's temporaries, and the checkpoint's snapshot of them.
ES_VECTORS = 16
#: Bytes per member of an evolution strategy: correct count, loss, fitness, ranks, sort and pair buffers.
ES_MEMBER_BYTES = 96
#: Members an evolution strategy builds at once for a fitness callable (``genreg.runs.evolve.FITNESS_CHUNK``).
ES_CHUNK_ROWS = 256


def run_bytes(layout: Layout, population: int, strategy: str, *, survival_cutoff: float = 0.2,
              built: bool = True, samples: int = 0) -> int:
    """Estimate the peak bytes an evolution run allocates beyond the data set it has loaded.

    ``run_rows`` genome rows (``n_params`` float32 + bookkeeping each), plus each
    genome's outputs on an episode of ``samples`` examples (logits and predictions,
    4 bytes each: ``samples * (n_outputs + 1) * 4``), plus ``RUN_OVERHEAD_BYTES``.
    The measured peak RSS growth of 784-64-10 runs on MNIST is 0.5 to 1 times this
    (tests/test_memory_estimate.py).
    """
    P = int(population)
    if strategy in ES_STRATEGIES:  # O(n_params + P): no member is ever stored
        chunk = min(P, ES_CHUNK_ROWS) * layout.n_params * 4 if built else 0
        return ES_VECTORS * layout.n_params * 8 + P * ES_MEMBER_BYTES + chunk + RUN_OVERHEAD_BYTES
    rows = run_rows(P, strategy, survival_cutoff, built)
    episode = P * int(samples) * (layout.n_outputs + 1) * 4
    return rows * (layout.n_params * 4 + PER_GENOME_BYTES) + episode + RUN_OVERHEAD_BYTES


def check_run_size(layout: Layout, population: int, strategy: str, *, held: int = 0, **kwargs) -> int:
    """Refuse an evolution run whose ``run_bytes`` would not fit in memory; return the bytes needed.

    held: bytes ``run_bytes`` counts that the process already holds (on resume: the
    loaded population).  kwargs: ``run_bytes``' survival_cutoff, built, samples.
    """
    if not isinstance(population, (int, np.integer)) or population <= 0:
        raise PopulationError(f"population size must be a positive integer, got {population!r}")
    needed = max(0, run_bytes(layout, int(population), strategy, **kwargs) - int(held))
    available = available_memory()
    if needed > available:
        raise PopulationError(
            f"a {strategy} run of population {population} ({layout.describe()}) needs about "
            f"{format_bytes(needed)} ({needed} bytes) but only {format_bytes(available)} "
            f"({available} bytes) of memory is available"
        )
    return needed


@dataclass
class Population:
    """The state of every genome.

    W: ``(P, n_params) float32``, C-contiguous — one row per genome; or None while
    the genomes exist only as ``brood`` (children described by their parents and
    mutation streams: GENREG scores them without building them, see
    ``genreg.variation.Brood``).  ``build()`` makes W; ``genomes(rows)`` gives rows either way.
    trust: ``(P,) float64`` — accumulated trust (GENREG) or fitness.
    ids: ``(P,) int64`` — unique genome ids; parent_ids: ``(P,) int64`` (-1 for founders).
    age: ``(P,) int32`` — generations each genome has lived.
    next_id: the id the next new genome receives.
    """

    layout: Layout
    W: np.ndarray | None
    trust: np.ndarray
    ids: np.ndarray
    parent_ids: np.ndarray
    age: np.ndarray
    next_id: int
    brood: Brood | None = None

    def __post_init__(self):
        if self.W is None:
            if self.brood is None or self.brood.source.shape[1] != self.layout.n_params:
                raise PopulationError(f"a population without W needs a brood of {self.layout.describe()} genomes")
            P = self.brood.size
        else:
            W = self.W
            if not isinstance(W, np.ndarray) or W.ndim != 2 or W.shape[0] < 1 or W.dtype != np.float32 or not W.flags.c_contiguous:
                raise PopulationError(
                    f"W must be a C-contiguous (P, n_params) float32 array with P >= 1, got "
                    f"{type(W).__name__} {getattr(W, 'dtype', '')} {np.shape(W)}"
                )
            P = W.shape[0]
            if self.W.shape[1] != self.layout.n_params:
                raise PopulationError(f"W has {self.W.shape[1]} parameters per genome; {self.layout.describe()} needs {self.layout.n_params}")
        for name in ("trust", "ids", "parent_ids", "age"):
            if getattr(self, name).shape != (P,):
                raise PopulationError(f"{name} must have shape ({P},), got {getattr(self, name).shape}")

    @property
    def size(self) -> int:
        return self.ids.shape[0]

    def build(self) -> np.ndarray:
        """W, built from the brood first if need be (the genomes do not change, only how they are held)."""
        if self.W is None:
            self.W = self.brood.build()
            self.brood = None
        return self.W

    def genomes(self, rows, out: np.ndarray | None = None) -> np.ndarray:
        """Copies of the genomes ``rows``: ``(k, n_params) float32`` (in ``out`` if it fits and is free)."""
        rows = np.ascontiguousarray(rows, dtype=np.int64)
        if self.W is None:
            return self.brood.build(rows, out)
        return clone(self.W, rows, out)

    @classmethod
    def random(cls, layout: Layout, size: int, seed: int, scale: float | None = None) -> "Population":
        """A founder population with weights drawn uniformly, as PyTorch's ``nn.Linear`` does.

        Every tensor of layer l is U(-a, a) with a = ``scale`` or 1/sqrt(n_l)
        (fan-in).  Deterministic in ``seed``.
        """
        check_population_size(layout, size)
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), FOUNDERS]))
        W = rng.random((size, layout.n_params), dtype=np.float32)
        for l in range(layout.n_layers):
            a = np.float32(scale if scale is not None else 1.0 / np.sqrt(layout.sizes[l]))
            for t in layout.layer_tensors(l):
                block = W[:, t.offset : t.stop]
                block *= np.float32(2) * a
                block -= a
        return cls(
            layout=layout,
            W=W,
            trust=np.zeros(size, dtype=np.float64),
            ids=np.arange(size, dtype=np.int64),
            parent_ids=np.full(size, -1, dtype=np.int64),
            age=np.zeros(size, dtype=np.int32),
            next_id=int(size),
        )

    def check_finite(self) -> None:
        """Raise ``PopulationError`` naming the genomes whose weights contain NaN or inf."""
        bad = np.flatnonzero(~np.isfinite(self.build()).all(axis=1))
        if bad.size:
            raise PopulationError(
                f"{bad.size} genome(s) have non-finite weights (rows {bad[:10].tolist()}"
                f"{'...' if bad.size > 10 else ''}, ids {self.ids[bad[:10]].tolist()})"
            )
