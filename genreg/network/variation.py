"""Validated entry points to the variation kernels, with the run's random streams.

Every random decision of generation ``g`` draws from a stream keyed by
(seed, g, genome slot, purpose): mutation and crossover inside the kernels
(one stream per child), parent choice in NumPy (one Generator per purpose).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genreg import kernels
from genreg.errors import ConfigError
from genreg.kernels.variation import GENE_CROSSOVER, MASK_CROSSOVER, NO_CROSSOVER

from genreg.network.layout import Layout


def _check_W(W):
    if not isinstance(W, np.ndarray) or W.dtype != np.float32 or W.ndim != 2 or not W.flags.c_contiguous:
        raise TypeError("W must be a C-contiguous 2-D float32 array")


def mutate(W: np.ndarray, rows, rate: float, scale: float, keys: np.ndarray) -> np.ndarray:
    """Gaussian mutation in place: each entry of ``W[rows[i]]`` gets N(0, scale^2) noise with probability ``rate``.

    W: ``(P, n) float32``; rows: ``(m,)`` distinct row indices; keys: ``(m,) uint64``
    streams.  Cost O(rate * n) per row.  Returns ``(m,) int64`` entries changed per row.
    """
    _check_W(W)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    if rows.size and (rows.min() < 0 or rows.max() >= W.shape[0] or np.unique(rows).size != rows.size):
        raise ValueError("rows must be distinct indices into W")
    if not 0.0 <= rate <= 1.0 or not scale >= 0.0:
        raise ValueError(f"need 0 <= rate <= 1 and scale >= 0, got rate={rate}, scale={scale}")
    counts = np.zeros(rows.shape[0], dtype=np.int64)
    kernels.mutate_rows(W, rows, float(rate), float(scale), np.ascontiguousarray(keys, dtype=np.uint64), counts)
    return counts


def _out(W: np.ndarray, rows: int, out):
    """``out`` if it is a usable ``(rows, n) float32`` C-contiguous buffer distinct from W, else a new one."""
    if out is None or out.shape != (rows, W.shape[1]) or out.dtype != np.float32 or not out.flags.c_contiguous \
            or np.shares_memory(out, W):
        return np.empty((rows, W.shape[1]), dtype=np.float32)
    return out


def clone_mutate(W: np.ndarray, parents, rates, scale: float, keys, out=None, *, base_rates=0.0,
                 base_keys=0) -> tuple[np.ndarray, np.ndarray]:
    """Children in one pass: ``children[c] = W[parents[c]]``, then Gaussian mutation at
    rate ``rates[c]`` (stream ``keys[c]``) and at ``base_rates[c]`` (stream ``base_keys[c]``).

    W: ``(P, n) float32``; parents, keys, base_keys: ``(C,)`` (or scalars);
    rates, base_rates: ``(C,)`` in [0, 1] (0 = none).  ``out``: an optional
    ``(C, n) float32`` buffer to reuse (e.g. the previous generation's), which
    saves allocating and page-faulting 40 MB a generation.  Returns (children
    ``(C, n)``, mutations made per child ``(C,)``).
    """
    _check_W(W)
    parents = np.ascontiguousarray(parents, dtype=np.int64)
    rates, base_rates = (np.array(np.broadcast_to(r, parents.shape), dtype=np.float64) for r in (rates, base_rates))
    keys, base_keys = (np.array(np.broadcast_to(k, parents.shape), dtype=np.uint64) for k in (keys, base_keys))
    if parents.size and (parents.min() < 0 or parents.max() >= W.shape[0]):
        raise ValueError("parents must be row indices into W")
    if not (np.all((rates >= 0.0) & (rates <= 1.0) & (base_rates >= 0.0) & (base_rates <= 1.0)) and scale >= 0.0):
        raise ValueError(f"need 0 <= rates <= 1 and scale >= 0, got scale={scale}")
    out = _out(W, parents.shape[0], out)
    counts = np.zeros(parents.shape[0], dtype=np.int64)
    kernels.make_children(W, parents, parents, NO_CROSSOVER, _NO_BOUNDS, keys, rates, base_rates, float(scale), keys,
                          base_keys, out, counts)
    return out, counts


#: Crossover names and the codes the kernels take (``kernels.variation.make_child``).
CROSSOVER_CODES = {"none": NO_CROSSOVER, "mask": MASK_CROSSOVER, "gene": GENE_CROSSOVER}
_NO_BOUNDS = np.zeros(1, dtype=np.int64)


@dataclass(frozen=True)
class Brood:
    """Children described, not built: child c is exactly what ``make_children`` makes,

        source[parents[c]]   (crossover "none"), or its crossover with source[second[c]]
                             ("mask" or "gene" with ``gene_bounds``; stream crossover_keys[c]),
        + child mutation (rates[c], stream keys[c])
        + base mutation (base_rates[c], stream base_keys[c]),  noise scale ``scale``.

    A GENREG generation scores every child but breeds only from the survivors, so
    most children never need a row of their own: ``genreg.forward.brood_predict``
    scores them from their parents' rows, and ``build`` makes the rows still needed.
    source: ``(R, n) float32``; parents, second: ``(C,) int64`` rows of source
    (``second`` defaults to ``parents``); rates, base_rates: ``(C,) float64`` in [0, 1];
    keys, base_keys, crossover_keys: ``(C,) uint64``.
    """

    source: np.ndarray
    parents: np.ndarray
    rates: np.ndarray
    base_rates: np.ndarray
    keys: np.ndarray
    base_keys: np.ndarray
    scale: float
    second: np.ndarray | None = None
    crossover: str = "none"
    crossover_keys: np.ndarray | None = None
    gene_bounds: np.ndarray | None = None

    def __post_init__(self):
        _check_W(self.source)
        if self.second is None:
            object.__setattr__(self, "second", self.parents)
        if self.crossover_keys is None:
            object.__setattr__(self, "crossover_keys", np.zeros(self.parents.shape, dtype=np.uint64))
        if self.crossover not in CROSSOVER_CODES:
            raise ValueError(f"crossover must be one of {sorted(CROSSOVER_CODES)}, got {self.crossover!r}")
        if self.crossover == "gene":
            bounds = None if self.gene_bounds is None else np.ascontiguousarray(self.gene_bounds, dtype=np.int64)
            if bounds is None or bounds.ndim != 1 or bounds.size < 2 or bounds[0] != 0 \
                    or bounds[-1] != self.source.shape[1] or np.any(np.diff(bounds) <= 0):
                raise ValueError("gene crossover needs gene_bounds increasing strictly from 0 to n_params")
            object.__setattr__(self, "gene_bounds", bounds)
        else:
            object.__setattr__(self, "gene_bounds", _NO_BOUNDS)
        C = self.parents.shape
        if not (self.rates.shape == self.base_rates.shape == self.keys.shape == self.base_keys.shape
                == self.second.shape == self.crossover_keys.shape == C):
            raise ValueError("parents, second, rates, base_rates and the keys must have the same length")
        if self.parents.dtype != np.int64 or self.second.dtype != np.int64 or self.keys.dtype != np.uint64 \
                or self.base_keys.dtype != np.uint64 or self.crossover_keys.dtype != np.uint64 \
                or self.rates.dtype != np.float64 or self.base_rates.dtype != np.float64:
            raise TypeError("Brood needs int64 parents, float64 rates and uint64 keys")
        for rows in (self.parents, self.second):
            if rows.size and (rows.min() < 0 or rows.max() >= self.source.shape[0]):
                raise ValueError("parents must be row indices into source")
        if not (np.all((self.rates >= 0.0) & (self.rates <= 1.0) & (self.base_rates >= 0.0) & (self.base_rates <= 1.0))
                and self.scale >= 0.0):
            raise ValueError(f"need 0 <= rates <= 1 and scale >= 0, got scale={self.scale}")

    @property
    def size(self) -> int:
        return self.parents.shape[0]

    def kernel_arguments(self, c=slice(None)) -> tuple:
        """The description of children ``c`` as ``kernels.make_children`` and ``kernels.brood_predict`` take it
        (source through base_keys)."""
        return (self.source, self.parents[c], self.second[c], CROSSOVER_CODES[self.crossover], self.gene_bounds,
                self.crossover_keys[c], self.rates[c], self.base_rates[c], float(self.scale), self.keys[c],
                self.base_keys[c])

    def build(self, children=None, out=None) -> np.ndarray:
        """Rows of ``children`` (default: all), ``(k, n) float32``, in a new buffer or in ``out``."""
        c = np.arange(self.size) if children is None else np.ascontiguousarray(children, dtype=np.int64)
        if c.size and (c.min() < 0 or c.max() >= self.size):
            raise ValueError(f"children must be indices into a brood of {self.size}")
        out = _out(self.source, c.shape[0], out)
        counts = np.zeros(c.shape[0], dtype=np.int64)  # (the brood was checked when it was made)
        kernels.make_children(*self.kernel_arguments(c), out, counts)
        return out


def clone(W: np.ndarray, parents, out=None) -> np.ndarray:
    """New (or reused ``out``) buffer ``(C, n)`` with ``out[c] = W[parents[c]]``."""
    return clone_mutate(W, parents, 0.0, 0.0, np.uint64(0), out)[0]


def _pairs(W, parent_a, parent_b, keys):
    _check_W(W)
    a = np.ascontiguousarray(parent_a, dtype=np.int64)
    b = np.ascontiguousarray(parent_b, dtype=np.int64)
    keys = np.ascontiguousarray(keys, dtype=np.uint64)
    if not (a.shape == b.shape == keys.shape):
        raise ValueError("parent_a, parent_b and keys must have the same length")
    return a, b, keys, np.empty((a.shape[0], W.shape[1]), dtype=np.float32)


def mask_crossover(W: np.ndarray, parent_a, parent_b, keys) -> np.ndarray:
    """Element-wise uniform crossover of pairs of rows of ``W``; returns children ``(C, n) float32``."""
    a, b, keys, out = _pairs(W, parent_a, parent_b, keys)
    kernels.mask_crossover(W.view(np.uint32), a, b, keys, out.view(np.uint32))
    return out


def gene_crossover(W: np.ndarray, parent_a, parent_b, keys, gene_bounds: np.ndarray) -> np.ndarray:
    """Gene crossover (each gene whole from one parent); genes from ``gene_bounds(layout, ...)``."""
    a, b, keys, out = _pairs(W, parent_a, parent_b, keys)
    bounds = np.ascontiguousarray(gene_bounds, dtype=np.int64)
    if bounds[0] != 0 or bounds[-1] != W.shape[1] or np.any(np.diff(bounds) <= 0):
        raise ValueError("gene_bounds must increase strictly from 0 to n_params")
    kernels.gene_crossover(W, a, b, bounds, keys, out)
    return out


def gene_bounds(layout: Layout, block_rows: int = 0) -> np.ndarray:
    """Segment starts of the genes of a row: ``(G + 1,) int64``.

    block_rows = 0: a gene is a whole tensor (layer genes).  block_rows = k > 0:
    each weight matrix is cut into blocks of k input rows (the weights leaving k
    input units, contiguous in the input-major layout), and each ConvNet filter
    tensor ``C{i}: (C_out, k, k, C_in)`` into its filters (one output channel's
    ``(k, k, C_in)`` weights, contiguous; whatever k); a bias stays one gene.
    """
    bounds = [0]
    for t in layout.tensors:
        if block_rows > 0 and len(t.shape) == 2:
            row = t.shape[1]
            for start in range(block_rows, t.shape[0], block_rows):
                bounds.append(t.offset + start * row)
        elif block_rows > 0 and len(t.shape) == 4:  # a convolution's filters: one gene each
            step = t.size // t.shape[0]
            bounds += range(t.offset + step, t.stop, step)
        bounds.append(t.stop)
    return np.asarray(bounds, dtype=np.int64)


def tile_genes(layout: Layout, block_rows: int, block_cols: int) -> tuple[np.ndarray, np.ndarray]:
    """Genes that are tiles of ``block_rows`` input rows x ``block_cols`` output columns of each weight
    matrix (each bias one gene), as a reordering of the row that makes every gene contiguous.

    Returns ``(order (n_params,) int64, bounds (G + 1,) int64)``: ``W[:, order]`` holds the genes one
    after another, gene g at ``bounds[g]:bounds[g + 1]``, in the order tensor, row block, column block
    (with ``block_cols`` >= every matrix's width, the order is the identity and the genes are those of
    ``gene_bounds(layout, block_rows)``).  Dense layers only.
    """
    order, bounds = [], [0]
    for t in layout.tensors:
        if len(t.shape) == 1:  # a bias: one gene
            order.append(np.arange(t.offset, t.stop))
            bounds.append(bounds[-1] + t.size)
            continue
        if len(t.shape) != 2:
            raise ConfigError(f"genes = 'tile' cuts dense weight matrices into tiles; {t.name} is a "
                              f"{len(t.shape)}-d tensor {t.shape}: use genes = 'block' for a ConvNet")
        rows, cols = t.shape
        index = np.arange(t.offset, t.stop).reshape(rows, cols)
        for r0 in range(0, rows, block_rows):
            for c0 in range(0, cols, block_cols):
                tile = index[r0 : r0 + block_rows, c0 : c0 + block_cols].ravel()
                order.append(tile)
                bounds.append(bounds[-1] + tile.size)
    return np.concatenate(order).astype(np.int64), np.asarray(bounds, dtype=np.int64)


def tile_crossover(W: np.ndarray, parent_a, parent_b, keys, order: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """``gene_crossover`` over the genes of ``tile_genes``: each tile whole from one parent.

    The population's columns are put in gene order, crossed with contiguous genes, and put back.
    """
    inverse = np.empty_like(order)
    inverse[order] = np.arange(order.shape[0])
    # indexing columns gives a copy in column order: C order is asked for on both sides
    return np.ascontiguousarray(gene_crossover(np.ascontiguousarray(W[:, order]), parent_a, parent_b, keys,
                                               bounds)[:, inverse])


def layer_gene_bounds(layout: Layout) -> np.ndarray:
    """Segment starts of layer genes: each block's ``[W, b]`` is one gene, ``(G + 1,) int64``.

    A plain layer is one gene (the reference's ``GeneticLinear``); a layer of
    parallel blocks gives one gene per block (the reference's 2a, 2b); a ConvNet's
    convolutions come first, each ``[C, cb]`` one gene.
    """
    convs = [cl.b.stop for cl in layout.conv_layers if cl.is_conv]
    return np.asarray([0] + convs + [blk.end for layer in layout.layers for blk in layer], dtype=np.int64)
