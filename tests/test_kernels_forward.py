"""Forward kernels against a slow, obvious float64 NumPy twin.

The kernels (``kernels.forward`` through the validated wrappers in
``genreg.forward``) work on sparse tiles with explicit SIMD blocks and a
rational tanh; the twin ``naive.forward`` (``tests/naive.py``) works on dense float64
matrices with ``np.tanh``.
Agreement to 1e-5 relative error over many shapes, activations, batch sizes and
population sizes is the evidence that the tiling, the register blocks, the
layer ping-pong buffers and the row layout are all right.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

import naive
from genreg.kernels.forward import padded_width
from genreg.kernels.simd import BLOCK, TILE
from genreg.network import forward
from genreg.network.batch import SparseBatch
from genreg.network.layout import Layout
from helpers import random_weights, random_inputs, random_brood, ACTS, _seed


RTOL = 1e-5


def assert_close(got: np.ndarray, ref: np.ndarray, what: str = "") -> None:
    assert got.shape == ref.shape, (what, got.shape, ref.shape)
    assert np.isfinite(ref).all(), "twin produced non-finite values; test set-up is wrong"
    scale = max(1.0, float(np.abs(ref).max()))
    err = float(np.abs(got.astype(np.float64) - ref).max())
    assert err <= RTOL * scale, f"{what}: max abs error {err:.3g} > {RTOL} * {scale:.3g}"
    np.testing.assert_allclose(got, ref, rtol=RTOL, atol=RTOL * scale, err_msg=what)


SHAPES = [(784, 64, 10), (784, 16, 10), (30, 7, 3), (20, 33, 5), (50, 100, 61, 17), (10, 1), (5, 3, 2, 4)]


BATCH_SIZES = [1, 3, 13, 50]


# --------------------------------------------------------------------------
# Logits against the twin
# --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["float32", "uint8"])
@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("act", ACTS)
def test_population_and_genome_logits_match_twin(act, sizes, B, kind):
    layout = Layout(sizes, hidden_activation=act)
    rng = np.random.default_rng(_seed(act, sizes, B, kind))
    X, X64 = random_inputs(kind, B, layout.n_inputs, rng)
    batch = SparseBatch.from_dense(X)
    for P in range(1, 6):
        W = random_weights(layout, P, rng)
        ref = np.stack([naive.forward(layout, W[g], X64) for g in range(P)])
        got = forward.population_logits(layout, W, batch)
        assert got.dtype == np.float32 and got.shape == (P, B, layout.n_outputs)
        assert_close(got, ref, f"population_logits P={P}")
        # A dense array is accepted in place of a SparseBatch, with the same result.
        np.testing.assert_array_equal(forward.population_logits(layout, W, X), got)
        for g in range(P):
            one = forward.genome_logits(layout, W[g], batch)
            assert one.dtype == np.float32 and one.shape == (B, layout.n_outputs)
            assert_close(one, ref[g], f"genome_logits P={P} g={g}")


@pytest.mark.parametrize("act", ACTS)
def test_logits_do_not_depend_on_tile_mates(act):
    """A sample's logits are the same alone and inside a batch (finite weights)."""
    layout = Layout((40, 19, 6), hidden_activation=act)
    rng = np.random.default_rng(_seed("tile-mates", act))
    X, _ = random_inputs("float32", 2 * TILE + 3, layout.n_inputs, rng)
    W = random_weights(layout, 3, rng)
    together = forward.population_logits(layout, W, X)
    for s in (0, TILE - 1, TILE, X.shape[0] - 1):
        alone = forward.population_logits(layout, W, X[s : s + 1])
        np.testing.assert_array_equal(alone[:, 0], together[:, s])


@pytest.mark.parametrize("act", ACTS)
def test_real_mnist_logits_match_twin(mnist, act):
    layout = Layout((784, 64, 10), hidden_activation=act)
    rng = np.random.default_rng(_seed("mnist", act))
    idx = rng.choice(mnist.test_images.shape[0], size=100, replace=False)
    X = mnist.test_images[idx]
    assert X.dtype == np.uint8 and X.shape == (100, 784)
    X64 = X.astype(np.float64) / 255.0
    W = random_weights(layout, 3, rng)
    got = forward.population_logits(layout, W, X)
    ref = np.stack([naive.forward(layout, W[g], X64) for g in range(3)])
    assert_close(got, ref, "MNIST population_logits")
    for g in range(3):
        assert_close(forward.genome_logits(layout, W[g], X), ref[g], f"MNIST genome_logits g={g}")


# --------------------------------------------------------------------------
# Predictions
# --------------------------------------------------------------------------


def _assert_predictions_match_twin(layout, w_row, X64, pred, n_classes):
    """Kernel predictions agree with the twin, except where the twin's top two are within tolerance."""
    ref = naive.forward(layout, w_row, X64)[:, :n_classes]
    tol = RTOL * max(1.0, float(np.abs(ref).max()))
    ref_pred = np.argmax(ref, axis=1)
    differ = np.flatnonzero(pred != ref_pred)
    assert ((pred >= 0) & (pred < n_classes)).all()
    for s in differ:
        # The class the kernel chose must be (numerically) as good as the twin's best.
        assert ref[s, pred[s]] >= ref[s].max() - tol, (
            f"sample {s}: kernel says {pred[s]} (twin logit {ref[s, pred[s]]}), "
            f"twin says {ref_pred[s]} (logit {ref[s].max()})"
        )


@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("act", ACTS)
def test_population_predict(act, sizes, B):
    layout = Layout(sizes, hidden_activation=act)
    rng = np.random.default_rng(_seed("predict", act, sizes, B))
    X, X64 = random_inputs("uint8", B, layout.n_inputs, rng)
    batch = SparseBatch.from_dense(X)
    n_out = layout.n_outputs
    for P in range(1, 6):
        W = random_weights(layout, P, rng)
        for n_classes in sorted({1, max(1, n_out - 1), n_out}):
            labels = rng.integers(0, n_classes, size=B)
            pred, n_correct = forward.population_predict(layout, W, batch, labels, n_classes)
            assert pred.shape == (P, B) and n_correct.shape == (P,)
            logits = forward.population_logits(layout, W, batch)
            # Same kernel path: the argmax of the first n_classes logits, exactly.
            np.testing.assert_array_equal(pred, np.argmax(logits[..., :n_classes], axis=2))
            np.testing.assert_array_equal(n_correct, (pred == labels[None, :]).sum(axis=1))
            # The scoring half alone, on those logits, agrees with the fused kernel.
            pred2, n_correct2 = forward.predict_from_logits(logits, labels, n_classes)
            np.testing.assert_array_equal(pred2, pred)
            np.testing.assert_array_equal(n_correct2, n_correct)
            for g in range(P):
                _assert_predictions_match_twin(layout, W[g], X64, pred[g], n_classes)
        # Default n_classes = all outputs.
        labels = rng.integers(0, n_out, size=B)
        pred, n_correct = forward.population_predict(layout, W, batch, labels)
        logits = forward.population_logits(layout, W, batch)
        np.testing.assert_array_equal(pred, np.argmax(logits, axis=2))
        np.testing.assert_array_equal(n_correct, (pred == labels[None, :]).sum(axis=1))


@pytest.mark.parametrize("crossover", ["none", "mask", "gene"])
@pytest.mark.parametrize("B", BATCH_SIZES)
@pytest.mark.parametrize("sizes", SHAPES, ids=lambda s: "-".join(map(str, s)))
@pytest.mark.parametrize("act", ACTS)
def test_brood_predict_equals_built_children(act, sizes, B, crossover):
    """Scoring children from parents + crossover and mutation streams gives exactly the scores of the built rows."""
    layout = Layout(sizes, hidden_activation=act)
    rng = np.random.default_rng(_seed("brood", act, sizes, B, crossover))
    X, _ = random_inputs("uint8", B, layout.n_inputs, rng)
    batch = SparseBatch.from_dense(X)
    W = random_weights(layout, 4, rng)
    brood = random_brood(layout, W, rng, crossover)
    labels = rng.integers(0, layout.n_outputs, size=B)
    got = forward.brood_predict(layout, brood, batch, labels)
    want = forward.population_predict(layout, brood.build(), batch, labels)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_population_predict_scores_correct_labels():
    """n_correct counts hits: labels built from the predictions give a perfect score, shifted ones zero."""
    layout = Layout((30, 7, 3), hidden_activation="tanh")
    rng = np.random.default_rng(5)
    X, _ = random_inputs("float32", 37, 30, rng)
    W = random_weights(layout, 4, rng)
    pred, _ = forward.population_predict(layout, W, X, np.zeros(37, np.int64))
    for g in range(4):
        _, n_correct = forward.population_predict(layout, W, X, pred[g])
        assert n_correct[g] == 37
        _, n_correct = forward.population_predict(layout, W, X, (pred[g] + 1) % 3)
        assert n_correct[g] == 0


@pytest.mark.parametrize("act", ACTS)
def test_genome_predict_first_n_classes(act):
    """GENREG's "argmax of the first 10 outputs" on a net with more outputs."""
    layout = Layout((30, 12, 16), hidden_activation=act)
    rng = np.random.default_rng(_seed("genome_predict", act))
    X, X64 = random_inputs("float32", 50, 30, rng)
    W = random_weights(layout, 3, rng)
    # Make the extra outputs dominant, so ignoring n_classes would be visible.
    b1 = layout.tensor("b1")
    W[:, b1.offset + 10 : b1.stop] = 100.0
    for g in range(3):
        pred = forward.genome_predict(layout, W[g], X, n_classes=10)
        assert pred.shape == (50,)
        assert (pred < 10).all()
        logits = forward.genome_logits(layout, W[g], X)
        np.testing.assert_array_equal(pred, np.argmax(logits[:, :10], axis=1))
        _assert_predictions_match_twin(layout, W[g], X64, pred, 10)
        full = forward.genome_predict(layout, W[g], X)
        assert (full >= 10).all()
        pop_pred, _ = forward.population_predict(layout, W[g : g + 1], X, np.zeros(50, int), n_classes=10)
        np.testing.assert_array_equal(pop_pred[0], pred)


# --------------------------------------------------------------------------
# Layer widths: the padded remainder block
# --------------------------------------------------------------------------

# Every remainder class of n % BLOCK for BLOCK = 16 (AVX2) and 32 (AVX-512):
# powers of two, one past, one short, and several full blocks plus a remainder.
WIDTHS = [1, 2, 3, 5, 7, 9, 10, 15, 16, 17, 31, 33, 47, 63, 64, 65, 100]


def test_padded_width_covers_the_layer_and_pads_less_than_the_remainder():
    """The memory-safety argument of ``tile_layer``: padding q - r < r, and q a power of two <= BLOCK."""
    for n in range(1, 300):
        padded, r = padded_width(n), n % BLOCK
        assert padded >= n
        if r == 0:
            assert padded == n
        else:
            q = padded - (n - r)
            assert q & (q - 1) == 0 and r <= q <= BLOCK and q - r < r, (n, padded)


@pytest.mark.parametrize("n", WIDTHS)
@pytest.mark.parametrize("act", ACTS)
@pytest.mark.parametrize("shape", ["23-n-n", "23-70-n-9"])
def test_every_remainder_width_matches_twin(shape, act, n):
    """Hidden and output layers of width n (also after a wider layer): logits match the
    twin, and the argmax never picks a padding lane (q - r of the q lanes of the last block)."""
    layout = Layout(tuple(n if v == "n" else int(v) for v in shape.split("-")), hidden_activation=act)
    rng = np.random.default_rng(_seed("widths", shape, act, n))
    B = 2 * TILE + 3
    X, X64 = random_inputs("uint8", B, layout.n_inputs, rng)
    batch = SparseBatch.from_dense(X)
    W = random_weights(layout, 3, rng)
    ref = np.stack([naive.forward(layout, W[g], X64) for g in range(3)])
    logits = forward.population_logits(layout, W, batch)
    assert_close(logits, ref, f"population_logits n={n}")
    for g in range(3):
        assert_close(forward.genome_logits(layout, W[g], batch), ref[g], f"genome_logits n={n} g={g}")
    labels = rng.integers(0, layout.n_outputs, size=B)
    pred, n_correct = forward.population_predict(layout, W, batch, labels)
    np.testing.assert_array_equal(pred, np.argmax(logits, axis=2))
    np.testing.assert_array_equal(n_correct, (pred == labels).sum(axis=1))
    for g in range(3):
        _assert_predictions_match_twin(layout, W[g], X64, pred[g], layout.n_outputs)


_GUARD_PAGE_SCRIPT = textwrap.dedent(
    """
    import ctypes, mmap, sys
    import numpy as np
    from genreg.network import forward
    from genreg.network.layout import ACTIVATIONS, Layout

    def before_guard_page(a):
        # A copy of float32 ``a`` whose last byte is the last one before an unreadable page.
        n_pages = -(-a.nbytes // mmap.PAGESIZE) + 1
        buf = np.frombuffer(mmap.mmap(-1, n_pages * mmap.PAGESIZE), dtype=np.uint8)
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
        guard = buf.ctypes.data + (n_pages - 1) * mmap.PAGESIZE
        assert libc.mprotect(guard, mmap.PAGESIZE, 0) == 0, ctypes.get_errno()  # 0 = PROT_NONE
        start = (n_pages - 1) * mmap.PAGESIZE - a.nbytes
        out = buf[start : start + a.nbytes].view(np.float32).reshape(a.shape)
        out[...] = a
        return out

    rng = np.random.default_rng(7)
    X = (rng.integers(1, 256, size=(19, 23)) * (rng.random((19, 23)) < 0.3)).astype(np.uint8)
    labels = np.zeros(19, dtype=np.int64)
    for n in [int(v) for v in sys.argv[1:]]:
        for act in ACTIVATIONS:
            layout = Layout((23, n, n), hidden_activation=act)
            W = rng.normal(0.0, 0.3, size=(2, layout.n_params)).astype(np.float32)
            G = before_guard_page(W)  # the last genome's row ends at the guard page
            for run in (
                lambda V: forward.population_logits(layout, V, X),
                lambda V: forward.population_predict(layout, V, X, labels)[0],
                lambda V: forward.genome_logits(layout, V[1], X),
            ):
                np.testing.assert_array_equal(run(G), run(W))
    print("ok")
    """
)


def test_kernels_never_read_past_the_genome_row():
    """The padded remainder block reads past a weight matrix's rows but never past the genome's
    row: with the row ending right before an unreadable page, an over-read is a segfault."""
    proc = subprocess.run(
        [sys.executable, "-c", _GUARD_PAGE_SCRIPT, *map(str, WIDTHS)], capture_output=True, text=True, timeout=600
    )
    assert proc.returncode == 0 and proc.stdout.split() == ["ok"], (proc.returncode, proc.stderr[-2000:])


# --------------------------------------------------------------------------
# Non-finite weights
# --------------------------------------------------------------------------

@pytest.mark.parametrize("where,act", [(where, act) for where in ("b0", "W0", "W1", "b1") for act in ACTS])
def test_nan_weights_propagate_to_logits(where, act):
    """A NaN on a path to every output shows up as NaN logits for that genome, and only that genome."""
    layout = Layout((30, 7, 3), hidden_activation=act)
    rng = np.random.default_rng(_seed("nan", where, act))
    X, _ = random_inputs("float32", 13, 30, rng)
    X[:, 4] = 1.0  # feature 4 is active in every sample
    W = random_weights(layout, 3, rng)
    t = layout.tensor(where)
    view = W[1, t.offset : t.stop].reshape(t.shape)
    if where == "W0":
        view[4, :] = np.nan  # all weights leaving the always-active input 4
    elif where == "W1":
        view[:, :] = np.nan
    else:
        view[:] = np.nan
    logits = forward.population_logits(layout, W, X)
    assert np.isnan(logits[1]).all(), f"NaN in {where} was hidden: {logits[1]}"
    assert np.isfinite(logits[[0, 2]]).all()
    assert np.isfinite(forward.genome_logits(layout, W[0], X)).all()
    assert np.isnan(forward.genome_logits(layout, W[1], X)).all()


def test_nonfinite_weight_poisons_its_tile_not_finite_genomes():
    """Documented contract (kernels/simd.py): weights must be finite; a non-finite weight on
    input i makes every sample of a tile in which input i is active non-finite, and a
    sample alone (no tile-mate using input i) stays finite."""
    layout = Layout((6, 3, 2), hidden_activation="identity")
    rng = np.random.default_rng(11)
    w = random_weights(layout, 1, rng)[0]
    layout.view(w, "W0")[0, 1] = np.inf
    X = np.zeros((2, 6), dtype=np.float32)
    X[:, 2] = 1.0
    X[1, 0] = 1.0  # only sample 1 uses input 0
    together = forward.genome_logits(layout, w, X)
    alone = forward.genome_logits(layout, w, X[:1])
    assert np.isfinite(alone).all()
    assert not np.isfinite(together[1]).all()
    assert not np.isfinite(together[0]).all()


# --------------------------------------------------------------------------
# Determinism across thread counts
# --------------------------------------------------------------------------

_DETERMINISM_SCRIPT = textwrap.dedent(
    """
    import hashlib, numba, numpy as np
    from genreg.network import forward
    from genreg.network.layout import Layout
    from genreg.network.variation import Brood
    layout = Layout((784, 32, 10), hidden_activation="tanh")
    rng = np.random.default_rng(1234)
    W = rng.normal(0.0, 0.05, size=(20, layout.n_params)).astype(np.float32)
    X = (rng.integers(0, 256, size=(64, 784)) * (rng.random((64, 784)) < 0.25)).astype(np.uint8)
    labels = rng.integers(0, 10, size=64)
    pred, n_correct = forward.population_predict(layout, W, X, labels)
    logits = forward.population_logits(layout, W, X)
    one = forward.genome_logits(layout, W[3], X)
    keys = np.arange(30, dtype=np.uint64) * np.uint64(7919)
    brood = Brood(W, rng.integers(0, 20, size=30), np.full(30, 0.07), np.where(np.arange(30) % 3 == 0, 0.08, 0.0),
                  keys, keys + np.uint64(1), 0.03, second=rng.integers(0, 20, size=30), crossover="mask",
                  crossover_keys=keys + np.uint64(2))
    pred_b, n_correct_b = forward.brood_predict(layout, brood, X, labels)
    h = hashlib.sha256()
    for a in (pred, n_correct, logits, one, pred_b, n_correct_b):
        h.update(np.ascontiguousarray(a).tobytes())
    print(numba.get_num_threads(), h.hexdigest())
    """
)


def test_results_identical_for_any_thread_count(digest_with_threads):
    t1, h1 = digest_with_threads(_DETERMINISM_SCRIPT, 1)
    t2, h2 = digest_with_threads(_DETERMINISM_SCRIPT, 2)
    assert (t1, t2) == (1, 2)
    assert h1 == h2
