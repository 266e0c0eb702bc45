"""Slow, obvious twins of the kernels, for tests to compare with the fast code.

As in STUMPY's ``tests/naive.py``: ``naive.thing(...)`` computes what the fast
``thing(...)`` documents, in plain Python and NumPy, written to be read rather
than to be fast.  Each twin names the kernel it covers.  Two kinds of forward
twin: ``forward`` is the textbook float64 network (tests allow a small
relative error), ``population_logits`` and friends repeat the kernels' float32
arithmetic step by step (one rounded fused multiply-add per term, the rational
tanh), so they agree bit for bit.

Sections: random streams (``kernels/rng.py``), variation
(``kernels/variation.py``), tiles (``kernels/sparse.py``), activations
(``kernels/activations.py``), forward passes (``kernels/forward.py``,
``kernels/simd.py``), then the NumPy code checked the same way: backprop
(``genreg.network.backprop``), weight merge (``genreg.hpo.merge``), GENREG trust.
"""

from __future__ import annotations

import itertools
import math

import numpy as np

# ---------------------------------------------------------------- random streams (kernels/rng.py)

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
LN2 = 0.6931471805599453


def mix64(z: int) -> int:
    """SplitMix64 finaliser of a 64-bit int (twin of ``rng.mix64``)."""
    z = ((z ^ (z >> 30)) * M1) & MASK64
    z = ((z ^ (z >> 27)) * M2) & MASK64
    return z ^ (z >> 31)


def stream_key(seed: int, generation: int, genome: int, purpose: int) -> int:
    """Key of the stream (seed, generation, genome, purpose) (twin of ``kernels.stream_key``)."""
    k = mix64((seed + GOLDEN) & MASK64)
    k = mix64(k ^ ((generation + GOLDEN) & MASK64))
    k = mix64(k ^ ((genome + GOLDEN) & MASK64))
    return mix64(k ^ ((purpose + GOLDEN) & MASK64))


def stream_keys(seed: int, generation: int, genomes, purpose: int) -> np.ndarray:
    """``(m,) uint64`` keys of ``genomes: (m,)`` (twin of ``kernels.stream_keys``)."""
    return np.array([stream_key(seed, generation, int(g), int(purpose)) for g in genomes], dtype=np.uint64)


def draw_at(state: int, k: int) -> int:
    """Bits of draw ``k`` (1-based) after ``state`` (twin of ``rng.draw_at``; ``rng.draw_state`` is the sum)."""
    return mix64((state + k * GOLDEN) & MASK64)


def uniform_open(bits: int) -> float:
    """(top 53 bits + 0.5) / 2**53, in (0, 1) (twin of ``rng.uniform_open_from_bits``)."""
    return (float(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0)


def exponential_of_bits(bits: int) -> float:
    """-log(u), u = the 64 bits as a binary fraction, in the kernel's operations and order
    (twin of one entry of ``rng.exponentials_from_bits``)."""
    if bits == 0:
        return 64.0 * LN2
    z = 64 - bits.bit_length()  # leading zeros
    f = float(((bits << (z + 1)) & MASK64) >> 12) * (1.0 / 4503599627370496.0)  # the 52 bits after the first 1
    s = f / (2.0 + f)  # log(1 + f) = 2 atanh(s), odd series through s**19
    s2 = s * s
    p = 1.0 / 19.0
    for d in (17, 15, 13, 11, 9, 7, 5, 3):
        p = p * s2 + 1.0 / d
    p = p * s2 + 1.0
    return (z + 1) * LN2 - 2.0 * s * p


ACKLAM_A = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02,
            1.383577518672690e02, -3.066479806614716e01, 2.506628277459239e00)
ACKLAM_B = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02,
            6.680131188771972e01, -1.328068155288572e01)
ACKLAM_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00,
            -2.549671348754055e00, 4.374664141464968e00, 2.938163982698783e00)
ACKLAM_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00)


def normal_quantile(p: float) -> float:
    """Acklam's standard normal quantile, Horner steps in the kernel's order
    (twin of ``rng.normal_quantile``; its central branch is ``rng.normal_central``)."""
    a, b, c, d = ACKLAM_A, ACKLAM_B, ACKLAM_C, ACKLAM_D

    def tail(q):
        return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) / (
            (((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0)

    if p < 0.02425:
        return tail(math.sqrt(-2.0 * math.log(p)))
    if p > 1.0 - 0.02425:
        return -tail(math.sqrt(-2.0 * math.log(1.0 - p)))
    q = p - 0.5
    r = q * q
    return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q / (
        ((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0)


class Stream:
    """One SplitMix64 stream drawn one value at a time (twin of ``rng.next_u64`` and ``rng.next_normal``).

    ``draws`` counts the 64-bit draws made, so tests can reason about cost.
    """

    def __init__(self, key: int):
        self.state = int(key) & MASK64
        self.draws = 0

    def u64(self) -> int:
        self.state = (self.state + GOLDEN) & MASK64
        self.draws += 1
        return mix64(self.state)

    def exponential(self) -> float:
        return exponential_of_bits(self.u64())

    def normal(self) -> float:
        return normal_quantile(uniform_open(self.u64()))


# ---------------------------------------------------------------- variation (kernels/variation.py)


def mutate_row(row: np.ndarray, rate: float, scale: float, key: int):
    """Mutate a copy of ``row: (n,) float32`` as ``kernels.mutate_row`` documents (its twin).

    Visit entries by geometric skips (gap = floor(E / lam), E ~ Exp(1), lam = -log(1 - rate));
    each visited entry gets ``float32(scale * Z)``, Z ~ N(0, 1); the skip and the noise are the
    stream's next two draws.  rate 1 visits every entry (one draw each).
    Returns (new row ``(n,) float32``, positions ``(k,) int64`` in visiting order, draws made).
    """
    row = np.array(row, dtype=np.float32, copy=True)
    stream = Stream(key)
    positions = []
    n = row.shape[0]
    if rate <= 0.0:
        return row, np.array(positions, dtype=np.int64), stream.draws
    lam = -math.log1p(-rate) if rate < 1.0 else math.inf
    pos = -1
    while True:
        if rate < 1.0:
            gap = math.floor(stream.exponential() / lam)
            if gap >= n - pos - 1:
                break
            pos += 1 + int(gap)
        else:
            pos += 1
            if pos >= n:
                break
        row[pos] = np.float32(row[pos] + np.float32(scale * stream.normal()))
        positions.append(pos)
    return row, np.array(positions, dtype=np.int64), stream.draws


def mutate_rows(W: np.ndarray, rows, rate: float, scale: float, keys):
    """``mutate_row`` of ``W[rows[i]]`` with stream ``keys[i]`` (twin of ``kernels.mutate_rows``).

    W: ``(P, n) float32`` (not modified).  Returns (new W ``(P, n)``, counts ``(m,) int64``).
    """
    W = np.array(W, dtype=np.float32, copy=True)
    counts = np.zeros(len(rows), dtype=np.int64)
    for i, (r, key) in enumerate(zip(rows, keys)):
        W[r], positions, _ = mutate_row(W[r], rate, scale, int(key))
        counts[i] = positions.size
    return W, counts


def mask_bits(key: int, n: int) -> np.ndarray:
    """``(n,) bool``: True where a mask-crossover child takes parent a (bit j % 64 of draw j // 64)."""
    stream = Stream(key)
    bits = np.empty(n, dtype=bool)
    for base in range(0, n, 64):
        word = stream.u64()
        for t in range(min(64, n - base)):
            bits[base + t] = bool((word >> t) & 1)
    return bits


def mask_crossover(W: np.ndarray, parent_a, parent_b, keys) -> np.ndarray:
    """Children ``(C, n)``: entry j from ``W[parent_a[c]]`` where ``mask_bits(keys[c])[j]``, else from
    ``W[parent_b[c]]``, bit for bit (twin of ``kernels.mask_crossover``; W: ``(P, n)`` float32 or its uint32 bits)."""
    bits = np.asarray(W).view(np.uint32)  # NaN payloads are copied, not compared
    out = np.empty((len(keys), bits.shape[1]), dtype=np.uint32)
    for c, (a, b, key) in enumerate(zip(parent_a, parent_b, keys)):
        out[c] = np.where(mask_bits(int(key), bits.shape[1]), bits[a], bits[b])
    return out.view(np.asarray(W).dtype)


def gene_bits(key: int, n_genes: int) -> np.ndarray:
    """``(G,) bool``: True where a gene-crossover child takes gene g from parent a (bit g % 64 of draw g // 64)."""
    return mask_bits(key, n_genes)


def gene_crossover(W: np.ndarray, parent_a, parent_b, gene_bounds, keys) -> np.ndarray:
    """Children ``(C, n) float32``: gene g = ``[gene_bounds[g], gene_bounds[g + 1])`` whole from
    ``W[parent_a[c]]`` or ``W[parent_b[c]]`` by ``gene_bits`` (twin of ``kernels.gene_crossover``)."""
    out = np.empty((len(keys), W.shape[1]), dtype=W.dtype)
    for c, (a, b, key) in enumerate(zip(parent_a, parent_b, keys)):
        from_a = gene_bits(int(key), len(gene_bounds) - 1)
        for g in range(len(gene_bounds) - 1):
            seg = slice(gene_bounds[g], gene_bounds[g + 1])
            out[c, seg] = W[a, seg] if from_a[g] else W[b, seg]
    return out


#: Crossover codes of ``kernels.make_children``.
CROSSOVERS = {0: "none", 1: "mask", 2: "gene"}


def make_children(W, parents, second, crossover, gene_bounds, crossover_keys, rates, base_rates, scale, keys,
                  base_keys):
    """Children ``(C, n) float32``: copy (crossover "none"/0) or cross (1 "mask", 2 "gene") the parents, then
    child mutation (``rates``, ``keys``), then base mutation (``base_rates``, ``base_keys``)
    (twin of ``kernels.make_children`` and of ``Brood.build``).  Returns (children, mutations made ``(C,)``).
    """
    crossover = CROSSOVERS.get(crossover, crossover)
    out = np.empty((len(parents), W.shape[1]), dtype=np.float32)
    counts = np.zeros(len(parents), dtype=np.int64)
    for c in range(len(parents)):
        pair = ([parents[c]], [second[c]], [crossover_keys[c]])
        if crossover == "mask":
            row = mask_crossover(W, *pair)[0]
        elif crossover == "gene":
            row = gene_crossover(W, pair[0], pair[1], gene_bounds, pair[2])[0]
        else:
            row = W[parents[c]]
        row, child, _ = mutate_row(row, rates[c], scale, int(keys[c]))
        out[c], base, _ = mutate_row(row, base_rates[c], scale, int(base_keys[c]))
        counts[c] = child.size + base.size
    return out, counts


# ---------------------------------------------------------------- tiles (kernels/sparse.py)


def scaled_inputs(X: np.ndarray) -> np.ndarray:
    """``X: (B, n)`` as the kernels read it, ``(B, n) float32``: uint8 pixels divided by 255 in float32."""
    X = np.asarray(X)
    return X.astype(np.float32) / np.float32(255.0 if X.dtype == np.uint8 else 1.0)


def tiles(X: np.ndarray, tile: int):
    """Cut ``X: (B, n)`` into tiles of ``tile`` samples (twin of ``kernels.count_active_features`` + ``fill_tiles``).

    Returns ``tile_ptr: (n_tiles + 1,) int64``, ``rows: (n_active,) int32`` (per tile, in ascending order,
    the features non-zero in some sample of it) and ``values: (n_active, tile) float32`` (``scaled_inputs``
    there; zero for inactive samples and padding past B).
    """
    X = np.asarray(X)
    V = scaled_inputs(X)
    tile_ptr, rows, values = [0], [], []
    for t in range(-(-X.shape[0] // tile)):
        samples = range(t * tile, min(X.shape[0], (t + 1) * tile))
        for i in range(X.shape[1]):
            if any(X[s, i] != 0 for s in samples):
                rows.append(i)
                column = np.zeros(tile, dtype=np.float32)
                for s in samples:
                    column[s - t * tile] = V[s, i]
                values.append(column)
        tile_ptr.append(len(rows))
    return (np.array(tile_ptr, dtype=np.int64), np.array(rows, dtype=np.int32),
            np.array(values, dtype=np.float32).reshape(len(rows), tile))


# ---------------------------------------------------------------- activations (kernels/activations.py)

#: Hidden activations in float64, by name (the codes of ``kernels.activations`` index ``ACTIVATION_NAMES``).
HIDDEN = {
    "identity": lambda h: h,
    "tanh": np.tanh,
    "relu": lambda h: np.maximum(h, 0.0),
    "sigmoid": lambda h: 1.0 / (1.0 + np.exp(-h)),
}
ACTIVATION_NAMES = ("identity", "tanh", "relu", "sigmoid")


def activate(h: np.ndarray, act) -> np.ndarray:
    """The textbook activation (name or code) of ``h`` in float64 (twin of ``kernels.activate_inplace``, to ~1e-6)."""
    with np.errstate(over="ignore"):
        return HIDDEN[ACTIVATION_NAMES[act] if isinstance(act, (int, np.integer)) else act](np.asarray(h, np.float64))


_TANH_P = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
           1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)
_TANH_Q = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


def fast_tanh(x: np.ndarray) -> np.ndarray:
    """The kernel's float32 rational tanh of ``x`` (any shape), each operation rounded to float32
    (twin of ``kernels.fast_tanh``: Eigen's ``generic_fast_tanh_float``)."""
    f = np.float32
    x = np.asarray(x, dtype=np.float32)
    xc = np.where(x > f(7.90531110763549805), f(7.90531110763549805), x)  # NaN passes through
    xc = np.where(xc < -f(7.90531110763549805), -f(7.90531110763549805), xc)
    x2 = xc * xc
    p = np.full_like(x2, f(_TANH_P[0]))
    for c in _TANH_P[1:]:
        p = p * x2 + f(c)
    q = np.full_like(x2, f(_TANH_Q[0]))
    for c in _TANH_Q[1:]:
        q = q * x2 + f(c)
    with np.errstate(invalid="ignore"):
        return np.where(np.abs(x) < f(0.0004), x, (xc * p) / q)


def activate_float32(h: np.ndarray, act) -> np.ndarray:
    """Activation (name or code) of ``h`` in the kernel's float32 operations
    (bit-exact twin of ``kernels.activate_inplace``)."""
    name = ACTIVATION_NAMES[act] if isinstance(act, (int, np.integer)) else act
    h = np.asarray(h, dtype=np.float32)
    if name == "tanh":
        return fast_tanh(h)
    if name == "relu":
        return np.where(h < 0, np.float32(0.0), h)  # NaN and -0 stay
    if name == "sigmoid":
        return np.float32(0.5) * (np.float32(1.0) + fast_tanh(np.float32(0.5) * h))
    return h.copy()


# ---------------------------------------------------------------- forward passes (kernels/forward.py, simd.py)


def layers(layout, w_row: np.ndarray):
    """``[(W_l: (n_l, n_{l+1}), b_l: (n_{l+1},))]`` read from the row by hand (W input-major, then b),
    independent of ``Layout.unflatten``, so a wrong layout offset is caught too."""
    sizes, offset, out = layout.sizes, 0, []
    for l in range(len(sizes) - 1):
        n_in, n_out = sizes[l], sizes[l + 1]
        W = w_row[offset : offset + n_in * n_out].reshape(n_in, n_out)
        offset += n_in * n_out
        out.append((W, w_row[offset : offset + n_out]))
        offset += n_out
    assert offset == w_row.shape[0]
    return out


def forward(layout, w_row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Logits ``(B, n_outputs) float64`` of genome ``w_row`` on ``X: (B, n_inputs) float64``, the textbook
    way: ``h = act(h @ W + b)``, no activation on the output (twin of the forward kernels, to ~1e-5)."""
    h = np.asarray(X, dtype=np.float64)
    pairs = layers(layout, np.asarray(w_row, dtype=np.float64))
    for l, (W, b) in enumerate(pairs):
        h = h @ W + b
        if l < len(pairs) - 1:
            h = HIDDEN[layout.hidden_activation](h)
    return h


def predict(layout, w_row: np.ndarray, X: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """``(B,)`` argmax of the first ``n_classes`` float64 logits of ``forward``."""
    n_classes = layout.n_outputs if n_classes is None else n_classes
    return np.argmax(forward(layout, w_row, X)[:, :n_classes], axis=1)


def fma_float32(a, b, c) -> np.ndarray:
    """float32 ``a * b + c`` rounded once, as IEEE fma (arrays broadcast).

    a * b is exact in float64 (24 + 24 bits); the float64 sum is made round-to-odd (TwoSum gives its
    exact error; an inexact sum with an even last bit moves one ulp towards the exact value), and
    rounding a round-to-odd value with >= 24 + 2 bits to float32 rounds correctly (Boldo & Melquiond,
    "Emulation of FMA and correctly rounded sums", IEEE Trans. Computers 57(4), 2008).
    """
    p = np.asarray(a, np.float64) * np.asarray(b, np.float64)
    c = np.asarray(c, np.float64)
    s = p + c
    v = s - p
    err = (p - (s - v)) + (c - v)  # TwoSum: s + err == p + c exactly
    even = (np.ascontiguousarray(s).view(np.uint64) & np.uint64(1)) == 0
    s = np.where((err != 0) & even, np.nextafter(s, np.where(err > 0, np.inf, -np.inf)), s)
    return s.astype(np.float32)


def dense_lanes(W: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``(n_out, S) float32``: ``b[o] + sum_p x[p, s] W[p, o]`` for inputs ``x: (n_in, S)`` (samples along
    the columns), each unit starting at its bias and adding its inputs' terms in ascending order, one
    fma each (the arithmetic of ``kernels.forward.lanes_layer``)."""
    acc = np.tile(np.asarray(b, np.float32)[:, None], (1, x.shape[1]))
    for p in range(x.shape[0]):
        acc = fma_float32(x[p][None, :], np.asarray(W[p], np.float32)[:, None], acc)
    return acc


def exp_nonpositive(x: np.ndarray) -> np.ndarray:
    """``kernels.exp``'s exp of float64 ``x <= 0``, step by step in float64 (each step one IEEE operation)."""
    x = np.maximum(np.asarray(x, np.float64), -708.0, where=~np.isnan(x), out=np.array(x, np.float64))
    k = np.floor(x * 1.4426950408889634 + 0.5)
    r = (x - k * 6.93147180369123816490e-01) - k * 1.90821492927058770002e-10
    p = np.full_like(x, 1.0 / math.factorial(12))
    for n in range(11, -1, -1):  # Horner: 1/11!, ..., 1/2, 1, 1
        p = p * r + 1.0 / math.factorial(n)
    with np.errstate(invalid="ignore"):
        two_k = ((np.where(np.isnan(k), 0, k).astype(np.int64) + 1023) << 52).view(np.float64)
    return np.where(np.isnan(k), np.nan, p * two_k)


def softmax_scores(logits: np.ndarray, labels, tile: int) -> tuple[int, float]:
    """(correct, summed cross-entropy) of ``logits: (B, K) float32`` as the ES kernels sum it: per sample
    ``top + log(sum exp(z - top)) - z[label]`` in float64 (exp of ``exp_nonpositive``), added sample by
    sample within tiles of ``tile`` samples, the tiles' sums added in order; argmax the first largest."""
    z = np.asarray(logits, np.float64)
    top = z.max(axis=1)
    e = exp_nonpositive(z - top[:, None])
    total_sum = np.zeros(len(z))
    for c in range(z.shape[1]):
        total_sum = total_sum + e[:, c]
    losses = top + np.log(total_sum) - z[np.arange(len(z)), labels]
    total = 0.0
    for t in range(0, len(z), tile):
        chunk = 0.0
        for value in losses[t : t + tile]:
            chunk += value
        total += chunk
    return int((np.argmax(z, axis=1) == labels).sum()), total


def genome_logits(layout, w_row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Logits ``(B, n_outputs) float32`` of genome ``w_row`` on ``X: (B, n_inputs)`` in the kernels' arithmetic
    (bit-exact twin of ``kernels.genome_logits``; ``simd.tile_rows_block``'s documented loop).

    Each unit starts at its bias and adds its inputs' terms in ascending order, one fma each; a term
    of a zero input leaves the sum as it is, so skipping it (as the tiles do) changes nothing.
    """
    h = scaled_inputs(X)
    pairs = layers(layout, np.asarray(w_row, dtype=np.float32))
    for l, (W, b) in enumerate(pairs):
        acc = np.tile(b, (h.shape[0], 1))
        for i in range(W.shape[0]):
            acc = fma_float32(h[:, i : i + 1], W[i], acc)
        h = activate_float32(acc, layout.hidden_activation) if l < len(pairs) - 1 else acc
    return h


def population_logits(layout, W: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``(P, B, n_outputs) float32``: ``genome_logits`` of each row of ``W: (P, n_params)`` (twin of the kernel)."""
    return np.stack([genome_logits(layout, w, X) for w in W])


def predict_from_logits(logits: np.ndarray, labels, n_classes: int):
    """Argmax of the first ``n_classes`` of ``logits: (P, B, n_out)`` (first on ties; a later entry wins only
    if it is greater, so NaN never does) and hits against ``labels: (B,)`` (twin of ``kernels.predict_from_logits``).
    Returns ``(predictions (P, B) int32, n_correct (P,) int64)``."""
    P, B = logits.shape[:2]
    predictions = np.zeros((P, B), dtype=np.int32)
    n_correct = np.zeros(P, dtype=np.int64)
    for g in range(P):
        for s in range(B):
            best = 0
            for j in range(1, n_classes):
                if logits[g, s, j] > logits[g, s, best]:
                    best = j
            predictions[g, s] = best
            n_correct[g] += best == labels[s]
    return predictions, n_correct


def population_predict(layout, W: np.ndarray, X: np.ndarray, labels, n_classes: int):
    """``predict_from_logits`` of ``population_logits`` (twin of ``kernels.population_predict``)."""
    return predict_from_logits(population_logits(layout, W, X), labels, n_classes)


def brood_predict(layout, children_args: tuple, X: np.ndarray, labels, n_classes: int):
    """``population_predict`` of ``make_children(*children_args)`` (twin of ``kernels.brood_predict``)."""
    return population_predict(layout, make_children(*children_args)[0], X, labels, n_classes)


def padded_width(n: int, block: int) -> int:
    """Columns ``tile_layer`` writes for a layer of n units: full blocks, then the remainder r = n % block
    rounded up to a power of two (twin of ``kernels.forward.padded_width``)."""
    r = n % block
    if r == 0:
        return n
    return n - r + min(q for q in (1, 2, 4, 8, 16, 32, 64) if q >= r)



# ---------------------------------------------------------------- ConvNets (kernels/conv.py)


def conv_image(x: np.ndarray, filters: np.ndarray, bias: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """One convolution of one image, no activation (twin of ``kernels.conv.convolve``, in float64).

    x: ``(H, W, C_in)``; filters: ``(C_out, k, k, C_in)``; bias: ``(C_out,)``.  Output pixel (i, j),
    channel o is ``bias[o] + sum over kh, kw, c of x[i * stride + kh - padding, j * stride + kw - padding, c]
    * filters[o, kh, kw, c]``, inputs outside the image being zero.  Returns ``(H', W', C_out) float64``.
    """
    H, W, C = x.shape
    n_out, k = filters.shape[0], filters.shape[1]
    padded = np.zeros((H + 2 * padding, W + 2 * padding, C))
    padded[padding : padding + H, padding : padding + W] = x
    filters = np.asarray(filters, np.float64)
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    out = np.zeros((Ho, Wo, n_out))
    for i in range(Ho):
        for j in range(Wo):
            window = padded[i * stride : i * stride + k, j * stride : j * stride + k, :]  # (k, k, C_in)
            for o in range(n_out):
                out[i, j, o] = float(bias[o]) + float(np.sum(window * filters[o]))
    return out


def pool_image(x: np.ndarray, k: int, kind: str) -> np.ndarray:
    """k x k pooling of stride k (``kind`` "max" or "avg"; a remainder row/column is dropped) of
    ``x: (H, W, C)`` (twin of ``kernels.conv.pool``).  Returns ``(H // k, W // k, C)``."""
    H, W, C = x.shape
    out = np.zeros((H // k, W // k, C), dtype=x.dtype)
    for i in range(H // k):
        for j in range(W // k):
            window = x[i * k : (i + 1) * k, j * k : (j + 1) * k, :].reshape(k * k, C)
            out[i, j] = window.max(axis=0) if kind == "max" else window.sum(axis=0) / (k * k)
    return out


def convnet_features(layout, w_row: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, int]:
    """The stages' output ``(B, n_flat) float64`` of ConvNet genome ``w_row`` on ``X: (B, H * W * C)``
    (uint8 pixels become pixel/255), and where the dense layers start in the row (twin of
    ``kernels.conv.conv_features``).

    Every stage on each image, the hidden activation after each convolution, the flatten in (h, w, c)
    order; the filters and biases are read from the row by hand.
    """
    X = scaled_inputs(X).astype(np.float64)
    w_row = np.asarray(w_row, np.float64)
    act = HIDDEN[layout.hidden_activation]
    offset = 0
    images = X.reshape((X.shape[0], *layout.image))
    for stage in layout.stages:
        if hasattr(stage, "channels"):
            c_in = images.shape[3]
            n = stage.channels * stage.k * stage.k * c_in
            filters = w_row[offset : offset + n].reshape(stage.channels, stage.k, stage.k, c_in)
            bias = w_row[offset + n : offset + n + stage.channels]
            offset += n + stage.channels
            images = np.stack([act(conv_image(x, filters, bias, stage.stride, stage.padding)) for x in images])
        else:
            images = np.stack([pool_image(x, stage.k, stage.kind) for x in images])
    return images.reshape(images.shape[0], -1), offset


def convnet_logits(layout, w_row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Logits ``(B, n_outputs) float64`` of ConvNet genome ``w_row`` on ``X: (B, H * W * C)`` (uint8 pixels
    become pixel/255) (twin of ``kernels.conv.conv_population_logits``, to ~1e-5): ``convnet_features``,
    then the dense layers as ``forward``."""
    h, offset = convnet_features(layout, w_row, X)
    act = HIDDEN[layout.hidden_activation]
    dense = np.asarray(w_row, np.float64)[offset:]
    for l in range(layout.n_layers):
        n_in, n_out = layout.sizes[l], layout.sizes[l + 1]
        W = dense[: n_in * n_out].reshape(n_in, n_out)
        b = dense[n_in * n_out : n_in * n_out + n_out]
        dense = dense[n_in * n_out + n_out :]
        h = h @ W + b
        if l < layout.n_layers - 1:
            h = act(h)
    assert dense.size == 0
    return h


# ---------------------------------------------------------------- NumPy code checked by twins

def numeric_gradient(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar ``f`` at ``x: (n,) float64`` (twin of ``backprop.loss_and_grad``'s
    gradient; ``x`` is restored)."""
    g = np.empty_like(x)
    for i in range(x.size):
        old = x[i]
        x[i] = old + eps
        a = f(x)
        x[i] = old - eps
        b = f(x)
        x[i] = old
        g[i] = (a - b) / (2 * eps)
    return g


def nll(z: np.ndarray, y: np.ndarray) -> float:
    """Mean negative log-likelihood of integer labels ``y: (B,)`` under ``softmax(z)``, ``z: (B, K)``."""
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean()


def sgd(row: np.ndarray, grad, epochs: int, lr: float, momentum: float, nesterov: bool, lr_decay: float):
    """Full-batch SGD with momentum, PyTorch's convention: ``v <- momentum v + g``, step ``v`` (Nesterov:
    ``g + momentum v``), ``w <- w - lr / (1 + lr_decay e) * step`` (twin of ``sgd.train``, one batch
    per epoch, no shuffling).  ``grad(w) -> g``; returns the new row (float64)."""
    w = np.array(row, dtype=np.float64)
    v = np.zeros_like(w)
    for e in range(epochs):
        g = grad(w)
        v = momentum * v + g
        w -= lr / (1 + lr_decay * e) * (g + momentum * v if nesterov else v)
    return w


def resize_position(i: int, n_in: int, n_out: int) -> float:
    """Input position sampled by output index i of an axis resized from n_in to n_out (corners aligned)."""
    return 0.0 if n_out == 1 else i * (n_in - 1) / (n_out - 1)


def resize_tensor(t: np.ndarray, shape) -> np.ndarray:
    """Multilinear interpolation of ``t`` to ``shape``, one output element at a time, float64
    (twin of ``genreg.hpo.merge.resize_tensor``)."""
    t = np.asarray(t, dtype=np.float64)
    out = np.empty(shape)
    for idx in itertools.product(*(range(s) for s in shape)):
        pos = [resize_position(i, n_in, n_out) for i, n_in, n_out in zip(idx, t.shape, shape)]
        value = 0.0
        # sum over the 2^d surrounding grid points, weighted by the linear hat function
        for corner in itertools.product(*[(int(np.floor(p)), int(np.floor(p)) + 1) for p in pos]):
            weight = 1.0
            for c, p, n in zip(corner, pos, t.shape):
                weight *= max(0.0, 1.0 - abs(p - c)) if c < n else 0.0
            if weight:
                value += weight * t[corner]
        out[idx] = value
    return out


def merge_weights(child, parents, init_row: np.ndarray) -> np.ndarray:
    """Layer by layer: output layer <-> output layer, hidden layers by position; average the parents' tensors
    that exist, resized; keep ``init_row`` elsewhere (twin of ``genreg.hpo.merge.merge_weights``).
    parents: ``[(layout, row)]``; returns ``(child.n_params,) float64``."""
    out = init_row.astype(np.float64).copy()
    L = child.n_layers
    for l in range(L):
        for kind in "Wb":
            target = child.tensor(f"{kind}{l}")
            found = []
            for layout, row in parents:
                if l == L - 1:
                    pl = layout.n_layers - 1
                elif l < layout.n_layers - 1:
                    pl = l
                else:
                    continue
                found.append(resize_tensor(layout.view(row, f"{kind}{pl}"), target.shape))
            if found:
                out[target.offset : target.stop] = (sum(found) / len(found)).ravel()
    return out


def trust_update(trust, n_correct, n_images: int, decay: float, reward: float, penalty: float) -> np.ndarray:
    """GENREG's trust after an episode, genome by genome: ``t (1 - decay) + hits reward + misses penalty``
    (twin of ``Genreg.score``)."""
    return np.array([t * (1.0 - decay) + (c * reward + (n_images - c) * penalty)
                     for t, c in zip(np.asarray(trust).tolist(), np.asarray(n_correct).tolist())])


# ---------------------------------------------------------------- evolution strategies (kernels/es.py)

ES_NOISE = 64  # kernels.es.NOISE


def es_noise(layout, seed: int, generation: int, pair: int, rank: int) -> list:
    """Pair ``pair``'s unscaled noise, one float64 array per tensor (W_0, b_0, W_1, ...), drawn as
    ``kernels.es`` documents: full rank entry by entry; rank r: ``A @ Bt / sqrt(r)`` for weights."""
    out = []
    for t, tensor in enumerate(layout.tensors):
        stream = Stream(stream_key(seed, generation, pair, ES_NOISE + t))
        if rank > 0 and t % 2 == 0:
            n_in, n_out = tensor.shape
            A = np.array([stream.normal() for _ in range(n_in * rank)]).reshape(n_in, rank)
            Bt = np.array([stream.normal() for _ in range(n_out * rank)]).reshape(rank, n_out)
            out.append(A @ Bt / math.sqrt(rank))
        else:
            out.append(np.array([stream.normal() for _ in range(tensor.size)]).reshape(tensor.shape))
    return out


def es_member(layout, centre, sigma, rank: int, seed: int, generation: int, k: int, antithetic: bool = True):
    """Member ``k``'s row in float64: ``centre + sign * sigma * eps`` (sigma per tensor or per parameter)."""
    pair, sign = (k // 2, -1.0 if k % 2 else 1.0) if antithetic else (k, 1.0)
    eps = np.concatenate([e.ravel() for e in es_noise(layout, seed, generation, pair, rank)])
    sigma = np.asarray(sigma, np.float64)
    if sigma.shape[0] != layout.n_params:
        sigma = np.concatenate([np.full(t.size, sigma[i]) for i, t in enumerate(layout.tensors)])
    return np.asarray(centre, np.float64) + sign * sigma * eps


def es_scores(layout, rows, X, labels=None, targets=None):
    """``(n_correct (P,), mean loss (P,))`` of float64 rows: softmax cross-entropy or squared error."""
    n_correct, loss = [], []
    for row in rows:
        z = forward(layout, row, scaled_inputs(X))
        if targets is not None:
            n_correct.append(0)
            loss.append(float(np.mean((z[:, : targets.shape[1]] - targets) ** 2)))
        else:
            n_correct.append(int((np.argmax(z, axis=1) == labels).sum()))
            loss.append(nll(z, labels))
    return np.array(n_correct), np.array(loss)


def es_noise_sum(layout, rank: int, seed: int, generation: int, weights, square_weights=None):
    """``sum_j weights[j] eps_j`` and ``sum_j square_weights[j] (eps_j**2 - 1)`` over pairs, ``(n_params,)`` each."""
    grad = np.zeros(layout.n_params)
    squares = np.zeros(layout.n_params)
    for j, w in enumerate(weights):
        eps = np.concatenate([e.ravel() for e in es_noise(layout, seed, generation, j, rank)])
        grad += w * eps
        if square_weights is not None:
            squares += square_weights[j] * (eps * eps - 1.0)
    return grad, squares


def conv_es_noise(layout, seed: int, generation: int, pair: int, rank: int):
    """A ConvNet pair's unscaled noise, one float64 array per tensor (``C0, cb0, ..., W0, b0, ...``, as in the
    row), and the first convolution's factors ``(A: (C_out, r), Bt: (r, k k C_in))`` (rank r >= 1; ``None``
    at rank 0): a weight tensor is the matrix of its first axis by the rest, ``A @ Bt / sqrt(r)``."""
    out, factors = [], None
    for t, tensor in enumerate(layout.tensors):
        stream = Stream(stream_key(seed, generation, pair, ES_NOISE + t))
        if rank > 0 and t % 2 == 0:
            rows, cols = tensor.shape[0], tensor.size // tensor.shape[0]
            A = np.array([stream.normal() for _ in range(rows * rank)]).reshape(rows, rank)
            Bt = np.array([stream.normal() for _ in range(cols * rank)]).reshape(rank, cols)
            factors = (A, Bt) if t == 0 else factors
            out.append((A @ Bt / math.sqrt(rank)).reshape(tensor.shape))
        else:
            out.append(np.array([stream.normal() for _ in range(tensor.size)]).reshape(tensor.shape))
    return out, factors


def patches(x: np.ndarray, k: int, stride: int, padding: int) -> np.ndarray:
    """The windows of a convolution over ``x: (H, W, C)``, one row per output pixel in raster order, each in
    the filters' (kh, kw, c) order: ``(H' W', k k C)`` (zeros outside the image)."""
    H, W, C = x.shape
    padded = np.zeros((H + 2 * padding, W + 2 * padding, C))
    padded[padding : padding + H, padding : padding + W] = x
    Ho, Wo = (H + 2 * padding - k) // stride + 1, (W + 2 * padding - k) // stride + 1
    return np.array([padded[i * stride : i * stride + k, j * stride : j * stride + k, :].ravel()
                     for i in range(Ho) for j in range(Wo)])


def conv_es_logits(layout, centre, sigma, rank: int, seed: int, generation: int, k: int, X: np.ndarray,
                   antithetic: bool = True) -> np.ndarray:
    """Logits ``(B, n_outputs) float64`` of ConvNet member ``k`` (rank r >= 1, sigma per tensor) with its first
    convolution computed as the shared product (twin of ``kernels.conv_es``; ``X`` as ``convnet_logits``).

    The first convolution of image x is the centre's ``conv(x, C) + cb`` plus the member's
    ``sign * (patches @ (sigma_C A Bt / sqrt(r)).T + sigma_cb e)`` written as ``u = patches @ Bt.T``,
    ``(u @ A.T) sigma_C / sqrt(r)``; then its activation, every later stage and the dense layers with the
    member's own row (``convnet_logits``'s arithmetic).
    """
    pair, sign = (k // 2, -1.0 if k % 2 else 1.0) if antithetic else (k, 1.0)
    noise, (A, Bt) = conv_es_noise(layout, seed, generation, pair, rank)
    sigma = np.asarray(sigma, np.float64)
    row = np.asarray(centre, np.float64) + sign * np.concatenate([sigma[t] * e.ravel() for t, e in enumerate(noise)])
    centre = np.asarray(centre, np.float64)
    act = HIDDEN[layout.hidden_activation]
    images = scaled_inputs(X).astype(np.float64).reshape((X.shape[0], *layout.image))
    stages = list(layout.conv_layers)
    first = next(i for i, cl in enumerate(stages) if cl.is_conv)
    for cl in stages[:first]:  # poolings before the first convolution: the same for every member
        images = np.stack([pool_image(x, cl.stage.k, cl.stage.kind) for x in images])
    cl = stages[first]
    s = cl.stage
    C, cb = centre[cl.C.offset : cl.C.stop].reshape(cl.C.shape), centre[cl.b.offset : cl.b.stop]
    out = []
    for x in images:
        shared = conv_image(x, C, cb, s.stride, s.padding).reshape(-1, s.channels)  # (H1 W1, C_out), every member
        u = patches(x, s.k, s.stride, s.padding) @ Bt.T  # (H1 W1, r): patch_p . Bt[i]
        term = (u @ A.T) * sigma[0] / math.sqrt(rank) + sigma[1] * noise[1]  # this pair's low-rank part
        out.append(act(shared + sign * term).reshape(cl.out_shape))
    images = np.stack(out)
    for cl in stages[first + 1 :]:
        if cl.is_conv:
            filters, bias = row[cl.C.offset : cl.C.stop].reshape(cl.C.shape), row[cl.b.offset : cl.b.stop]
            images = np.stack([act(conv_image(x, filters, bias, cl.stage.stride, cl.stage.padding)) for x in images])
        else:
            images = np.stack([pool_image(x, cl.stage.k, cl.stage.kind) for x in images])
    h = images.reshape(images.shape[0], -1)
    for l in range(layout.n_layers):
        W, b = layout.tensor(f"W{l}"), layout.tensor(f"b{l}")
        h = h @ row[W.offset : W.stop].reshape(W.shape) + row[b.offset : b.stop]
        if l < layout.n_layers - 1:
            h = act(h)
    return h


# ---------------------------------------------------------------- founders (genreg.network.population)


def founders(layout, size: int, seed: int, scale: float | None = None) -> np.ndarray:
    """``Population.random``'s W as it was drawn before founders were drawn in parallel blocks:
    one stream, every row at once, then each layer's tensors scaled to U(-a, a): ``(size, n_params) float32``."""
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 0x1417]))  # genreg.streams.FOUNDERS
    W = rng.random((size, layout.n_params), dtype=np.float32)
    for l in range(layout.n_layers):
        a = np.float32(scale if scale is not None else 1.0 / np.sqrt(layout.sizes[l]))
        for t in layout.layer_tensors(l):
            block = W[:, t.offset : t.stop]
            block *= np.float32(2) * a
            block -= a
    return W


# ---------------------------------------------------------------- the hybrid study's published FGSM
def published_fgsm(X: np.ndarray, grad: np.ndarray, source_pred: np.ndarray, y: np.ndarray, epsilon: float,
                   mean: float = 0.1307, std: float = 0.3081) -> np.ndarray:
    """Twin of ``genreg.hybrid.attacks.fgsm(**published_fgsm(epsilon))``, image by image, in float32.

    The steps of the study's notebook (GavinCooke2000/Genetic_ML, GeneticMNIST.ipynb, cell 29):
    an image the source misclassifies passes unattacked; otherwise denormalise (x * std + mean),
    add epsilon * sign(grad), clamp to [0, 1], normalise ((p - mean) / std).
    X, grad: (N, n_in) float32 (grad = dL/dx of the source at x); source_pred, y: (N,).
    """
    m, s, e = np.float32(mean), np.float32(std), np.float32(epsilon)
    out = np.empty_like(X, dtype=np.float32)
    for i in range(X.shape[0]):
        x = X[i].astype(np.float32)
        if source_pred[i] != y[i]:
            out[i] = x
            continue
        denormed = x * s + m
        perturbed = np.clip(denormed + e * np.sign(grad[i]).astype(np.float32), np.float32(0), np.float32(1))
        out[i] = (perturbed - m) / s
    return out
