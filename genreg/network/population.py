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
from genreg.network.variation import Brood, clone
from genreg.streams import FOUNDERS

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


#: A checkpoint's HDF5 image is built in an ``io.BytesIO`` (``genreg.runs.store.atomic_h5``), which
#: over-allocates by an eighth as it grows: the image of ``r`` rows may hold ``9r/8``.
IMAGE_NUM, IMAGE_DEN = 9, 8


def run_rows(population: int, strategy: str, survival_cutoff: float = 0.2, built: bool = True) -> int:
    """Count the genome rows an evolution run of ``population`` (P) genomes holds at its peak.

    A checkpoint of r rows is written during the next generation: the ``CheckpointWriter``'s
    snapshot (r) and the HDF5 image built in memory (up to 9r/8: ``IMAGE_NUM``); the
    generation-0 checkpoint stores the founders as their seed (no rows).  With
    S = ceil(``survival_cutoff`` * P) survivors:

    "genreg", children scored unbuilt (``built=False``: classification without a loss):
        P + S, the buffer the founders were drawn into (reused for survivors' rows) and the
        brood's S rows, then a checkpoint of the brood (S rows): P + 2S + 9S/8;
    "genreg", children built (regression, fitness callables: ``Population.build``):
        2P + S, this and the last generation's rows and the new survivors' rows, then a
        checkpoint of W: 3P + S + 9P/8;
    "ga" (and any other strategy): 3P, the population, the children, and the next
        population the children are copied into beside the elites, then a checkpoint: 4P + 9P/8.

    Measured (peak RSS growth, ``python tests/test_memory_estimate.py``, 784-64-10 on MNIST,
    5 generations, a checkpoint every 2): GENREG 1.43, 1.43 and 1.41 populations at P = 2,000,
    5,000 and 20,000 (this count with the episodes: 1.67); GA 5.06, 4.67 and 5.02 at P = 2,000,
    5,000 and 10,000 (5.17).
    """
    P = int(population)

    def checkpoint(rows: int) -> int:
        return rows + -(-rows * IMAGE_NUM // IMAGE_DEN)

    if strategy == "genreg":
        S = max(1, math.ceil(survival_cutoff * P))
        return P + S + checkpoint(S) if not built else 2 * P + S + checkpoint(P)
    return 3 * P + checkpoint(P)


#: The evolution strategies (``genreg.strategies.es_base``): members are keys, not rows.
ES_STRATEGIES = ("openai-es", "pgpe", "snes")
#: An evolution strategy's arrays of length n_params (float64): centre, sigma, two moments, the noise
#: sums and the update's temporaries, and the checkpoint's snapshot of them.
ES_VECTORS = 16
#: Bytes per member of an evolution strategy: correct count, loss, fitness, ranks, sort and pair buffers.
ES_MEMBER_BYTES = 96
#: Members an evolution strategy builds at once for a fitness callable (``genreg.runs.scoring.FITNESS_CHUNK``),
#: or to score a ConvNet's members (``genreg.network.members.SCORE_CHUNK``).
ES_CHUNK_ROWS = 256
#: Images a ConvNet forward worker holds at once (the dense layers run on a tile of this many).
CONV_TILE = 64


def conv_scratch_bytes(layout: Layout, threads: int | None = None) -> int:
    """Scratch of a ConvNet's forward pass: per thread, one image's stages (each input zero-padded, each
    output), ``CONV_TILE`` flattened images and their dense activations, the genome's filters and a
    child's row (a brood's children are built one at a time), float32; 0 for an MLP.

    threads: default Numba's thread count."""
    if not layout.is_conv:
        return 0
    if threads is None:
        import numba

        threads = numba.get_num_threads()
    filters = max((cl.b.stop for cl in layout.conv_layers if cl.is_conv), default=0)
    floats = CONV_TILE * (layout.sizes[0] + 2 * max(layout.sizes)) + filters + layout.n_params
    for cl in layout.conv_layers:
        h, w, c = cl.in_shape
        pad = cl.stage.padding if cl.is_conv else 0
        floats += (h + 2 * pad) * (w + 2 * pad) * c + math.prod(cl.out_shape)
    return 4 * int(threads) * floats


def run_bytes(layout: Layout, population: int, strategy: str, *, survival_cutoff: float = 0.2,
              built: bool = True, samples: int = 0, rank: int = 0) -> int:
    """Estimate the peak bytes an evolution run allocates beyond the data set it has loaded.

    ``run_rows`` genome rows (``n_params`` float32 + bookkeeping each), plus each
    genome's outputs on an episode of ``samples`` examples (logits and predictions,
    4 bytes each: ``samples * (n_outputs + 1) * 4``), plus ``RUN_OVERHEAD_BYTES``.
    The measured peak RSS growth of 784-64-10 runs on MNIST is 0.80 to 0.96 times this
    at P = 2,000 to 20,000 (``run_rows``; tests/test_memory_estimate.py).  A ConvNet adds its
    forward pass's scratch (``conv_scratch_bytes``); an evolution strategy on a ConvNet builds its
    members ``ES_CHUNK_ROWS`` at a time (rows and their logits) whatever ``built`` says, and at rank >= 1
    holds the episode as float32 and the centre's first convolution on a block of it (``SHARED_BYTES``).
    At ``rank`` r >= 1 its update's factors grow as r^2 for PGPE and SNES (``members.update_bytes``).
    """
    P = int(population)
    conv = conv_scratch_bytes(layout)
    if strategy in ES_STRATEGIES:  # O(n_params + P): no member is ever stored
        rows = min(P, ES_CHUNK_ROWS)
        chunk = rows * layout.n_params * 4 if built or layout.is_conv else 0
        if layout.is_conv:
            from genreg.network.members import SHARED_BYTES

            chunk += rows * int(samples) * layout.n_outputs * 4 * 9  # float32 logits, four float64 temporaries
            chunk += int(samples) * layout.n_inputs * 4 + SHARED_BYTES  # rank >= 1: float32 images, centre's block
        import numba

        from genreg.network.members import update_bytes

        update = update_bytes(layout, (P + 1) // 2, int(rank), strategy != "openai-es", numba.get_num_threads())
        return ES_VECTORS * layout.n_params * 8 + P * ES_MEMBER_BYTES + chunk + conv + update + RUN_OVERHEAD_BYTES
    rows = run_rows(P, strategy, survival_cutoff, built)
    episode = P * int(samples) * (layout.n_outputs + 1) * 4
    return rows * (layout.n_params * 4 + PER_GENOME_BYTES) + episode + conv + RUN_OVERHEAD_BYTES


def check_run_size(layout: Layout, population: int, strategy: str, *, held: int = 0, **kwargs) -> int:
    """Refuse an evolution run whose ``run_bytes`` would not fit in memory; return the bytes needed.

    held: bytes ``run_bytes`` counts that the process already holds (on resume: the
    loaded population).  kwargs: ``run_bytes``' survival_cutoff, built, samples, rank.
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


#: Founder parameters one task of ``founder_fill`` draws and scales (4 MiB of float32: cache-sized).
FOUNDER_BLOCK = 1 << 20


@dataclass(frozen=True)
class Founders:
    """What a founder population is: its seed and weight scale (None: each layer's fan-in bound)."""

    seed: int
    scale: float | None = None


def founder_stream(seed: int, start: int) -> np.random.Generator:
    """The founders' generator of ``seed``, positioned at its ``start``-th float32 draw.

    ``Population.random`` once drew every founder from one ``default_rng(SeedSequence([seed,
    FOUNDERS]))`` (PCG64).  A float32 draw takes 32 bits of a 64-bit output, the low half
    first, and keeps the high half for the next draw.  So: jump over ``start // 2`` outputs
    (``PCG64.advance``, O(log n)) and, if ``start`` is odd, draw (and drop) one low half.
    """
    bits = np.random.PCG64(np.random.SeedSequence([int(seed), FOUNDERS]))
    bits.advance(int(start) // 2)
    rng = np.random.Generator(bits)
    if start % 2:
        rng.random(dtype=np.float32)
    return rng


def _scale_founders(layout: Layout, block: np.ndarray, scale: float | None) -> None:
    """Map uniform [0, 1) draws to U(-a, a), a = 1/sqrt(fan-in) per layer, in place.

    block: ``(k, n_params) float32``."""
    for fan_in, tensors in layout.tensor_groups():
        a = np.float32(scale if scale is not None else 1.0 / np.sqrt(fan_in))
        for t in tensors:
            part = block[:, t.offset : t.stop]
            part *= np.float32(2) * a
            part -= a


def founder_fill(layout: Layout, seed: int, out: np.ndarray, *, scale: float | None = None, first: int = 0,
                 threads: int | None = None) -> np.ndarray:
    """Fill ``out`` with founder rows ``first, first + 1, ...`` of ``seed``: out ``(k, n_params) float32``, C order.

    Blocks of ``FOUNDER_BLOCK`` parameters are drawn from jumped-ahead copies of the stream
    (``founder_stream``) on ``threads`` threads (default: Numba's thread count; NumPy's fill
    releases the GIL): the same bits for any block size or thread count.
    """
    n = layout.n_params
    if out.dtype != np.float32 or out.ndim != 2 or out.shape[1] != n or not out.flags.c_contiguous:
        raise PopulationError(f"founder rows go into a C-contiguous (k, {n}) float32 array, got "
                              f"{out.dtype} {out.shape}")
    step = max(1, FOUNDER_BLOCK // n)
    starts = range(0, out.shape[0], step)

    def fill(r0: int) -> None:
        block = out[r0 : r0 + step]
        founder_stream(seed, (first + r0) * n).random(out=block, dtype=np.float32)
        _scale_founders(layout, block, scale)

    if threads is None:
        import numba

        threads = numba.get_num_threads()
    if threads <= 1 or len(starts) <= 1:
        for r0 in starts:
            fill(r0)
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(min(threads, len(starts)), thread_name_prefix="genreg-founders") as pool:
            list(pool.map(fill, starts))
    return out


def founder_rows(layout: Layout, seed: int, rows, scale: float | None = None) -> np.ndarray:
    """Founder rows ``rows`` of ``seed`` alone (a founder is its key: (seed, row)): ``(k, n_params) float32``."""
    rows = np.asarray(rows, dtype=np.int64).reshape(-1)
    if rows.size and rows.min() < 0:
        raise PopulationError(f"founder rows are numbered from 0, got {int(rows.min())}")
    out = np.empty((rows.size, layout.n_params), dtype=np.float32)
    for j, i in enumerate(rows):
        founder_stream(seed, int(i) * layout.n_params).random(out=out[j], dtype=np.float32)
    _scale_founders(layout, out, scale)
    return out


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
    founders: set by ``random``: W was drawn as the founders of this seed (the checkpoint
    of generation 0 stores that instead of W).  Whoever changes W in place clears it.
    """

    layout: Layout
    W: np.ndarray | None
    trust: np.ndarray
    ids: np.ndarray
    parent_ids: np.ndarray
    age: np.ndarray
    next_id: int
    brood: Brood | None = None
    founders: "Founders | None" = None

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
        (fan-in).  Deterministic in ``seed``: row i is ``founder_rows(layout, seed, [i])``,
        drawn on several threads (``founder_fill``) as the same bits a single stream gives.
        """
        check_population_size(layout, size)
        W = np.empty((size, layout.n_params), dtype=np.float32)
        founder_fill(layout, seed, W, scale=scale)
        return cls(
            layout=layout,
            W=W,
            trust=np.zeros(size, dtype=np.float64),
            ids=np.arange(size, dtype=np.int64),
            parent_ids=np.full(size, -1, dtype=np.int64),
            age=np.zeros(size, dtype=np.int32),
            next_id=int(size),
            founders=Founders(int(seed), None if scale is None else float(scale)),
        )

    def check_finite(self) -> None:
        """Raise ``PopulationError`` naming the genomes whose weights contain NaN or inf."""
        bad = np.flatnonzero(~np.isfinite(self.build()).all(axis=1))
        if bad.size:
            raise PopulationError(
                f"{bad.size} genome(s) have non-finite weights (rows {bad[:10].tolist()}"
                f"{'...' if bad.size > 10 else ''}, ids {self.ids[bad[:10]].tolist()})"
            )
