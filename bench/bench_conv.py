"""ConvNet population forward pass: genreg's kernel against two NumPy/SciPy references doing the same work.

EvoJAX's MNIST ConvNet, ``28x28x1-c5x8-p2-c5x16-p2-10`` (relu, 11,274 parameters): a population
of 64 genomes scores one shared batch of 1,024 real MNIST training images (forward pass, argmax,
number correct per genome), as one generation of ``genreg evolve --set conv=c5x8-p2-c5x16-p2
--set 'hidden_sizes=[]' --set activation=relu`` does.  All sides start from the uint8 images.

- genreg: ``genreg.network.forward.population_predict`` (``kernels/conv.py``).
- reference A, im2col + BLAS: each convolution as one SGEMM of the im2col matrix
  ``(B * H' * W', k * k * C_in)`` by the genome's filters ``(k * k * C_in, C_out)``; the first
  convolution's im2col (its input, the images, is shared) is built once and multiplied by the
  filters of 8 genomes at a time; pooling and the dense layer in NumPy.
- reference B, SciPy: each convolution as ``scipy.signal.fftconvolve`` over the image axes of
  ``(B, H + 2p, W + 2p, C_in, 1)`` and the flipped filters ``(1, k, k, C_in, C_out)``, summed over
  C_in (``correlate``'s direct method and ``correlate2d`` per channel pair are far slower); the first
  convolution for 8 genomes at a time.

Both references are checked against the kernel's logits.  Printed: time per generation (median,
harness.compare), GFLOP/s achieved (2 x the multiply-adds of convolutions and dense layers), the
machine's SGEMM rate (NumPy's BLAS, 1024^3, measured in this run), the ratio against the faster
reference, and the same on one thread (Numba and BLAS) unless ``--no-single``.

    GENREG_DATA=/work/shared/data python bench/bench_conv.py [--population 64] [--batch 1024] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numba
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from scipy.signal import fftconvolve

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, environment, write_report  # noqa: E402

from genreg.network.forward import population_logits, population_predict  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.population import Population  # noqa: E402
from genreg.tasks import load_mnist  # noqa: E402

SHAPE = "28x28x1-c5x8-p2-c5x16-p2-10"
GROUP = 8  # genomes per first-convolution product in the references
CHUNK = 128  # images per step of the references (measured: 64-256 all about as fast, the whole batch slower)


def sgemm_gflops() -> float:
    """The machine's SGEMM rate: NumPy's BLAS on 1024^3, best of 5 (as bench_es.py)."""
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2 * 1024 ** 3 / best / 1e9


def _one_blas_thread(fn, *args):
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1):
        return fn(*args)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def forward_flops(layout: Layout, B: int, P: int) -> float:
    """2 x the multiply-adds of every convolution and dense layer, for P genomes on B images."""
    macs = sum(cl.out_shape[0] * cl.out_shape[1] * cl.out_shape[2] * cl.fan_in for cl in layout.conv_layers
               if cl.is_conv)
    macs += sum(a * b for a, b in zip(layout.sizes[:-1], layout.sizes[1:]))
    return 2.0 * macs * B * P


# ------------------------------------------------------------------ the references' shared pieces


def genome_tensors(layout: Layout, W: np.ndarray):
    """Per conv layer ``(filters (P, C_out, k, k, C_in), bias (P, C_out))`` and per dense layer ``(W, b)``."""
    def stacked(t):
        return W[:, t.offset:t.stop].reshape((W.shape[0], *t.shape))

    convs = [(stacked(cl.C), stacked(cl.b)) if cl.is_conv else None for cl in layout.conv_layers]
    dense = [(stacked(layout.tensor(f"W{l}")), stacked(layout.tensor(f"b{l}"))) for l in range(layout.n_layers)]
    return convs, dense


def pool(x: np.ndarray, k: int, kind: str) -> np.ndarray:
    """``(B, H, W, C)`` -> ``(B, H // k, W // k, C)``: max or average over k x k windows (elementwise over
    the k * k strided slices, much faster than a reduction over a reshaped view)."""
    H, W = x.shape[1] // k * k, x.shape[2] // k * k
    parts = [x[:, i:H:k, j:W:k] for i in range(k) for j in range(k)]
    out = parts[0].copy()
    for part in parts[1:]:
        np.maximum(out, part, out=out) if kind == "max" else np.add(out, part, out=out)
    return out if kind == "max" else out / np.float32(k * k)


def dense_logits(layout: Layout, h: np.ndarray, dense, g: int) -> np.ndarray:
    h = h.reshape(h.shape[0], -1)
    for l, (Wl, bl) in enumerate(dense):
        h = h @ Wl[g] + bl[g]
        if l < len(dense) - 1:
            h = np.maximum(h, 0)
    return h


def im2col(x: np.ndarray, k: int, stride: int, pad: int) -> np.ndarray:
    """``(B, H, W, C)`` -> ``(B * H' * W', k * k * C)``, columns in the filters' (kh, kw, c) order."""
    x = np.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    win = sliding_window_view(x, (k, k), axis=(1, 2))[:, ::stride, ::stride]  # (B, H', W', C, k, k)
    B, Ho, Wo = win.shape[:3]
    return np.ascontiguousarray(win.transpose(0, 1, 2, 4, 5, 3)).reshape(B * Ho * Wo, -1), (B, Ho, Wo)


def reference_logits(layout: Layout, W: np.ndarray, images: np.ndarray, first_conv, conv_fn) -> np.ndarray:
    """``(P, B, n_out)`` logits, ``CHUNK`` images at a time (the intermediates then stay in cache).

    The first convolution runs for ``GROUP`` genomes at a time (``first_conv``: the images are shared),
    and so do the poolings right after it (on their stacked channels); every later convolution runs
    per genome (``conv_fn(h, filters, bias, stage)``); relu after every convolution.
    """
    convs, dense = genome_tensors(layout, W)
    x_all = (images.astype(np.float32) / np.float32(255)).reshape(-1, *layout.image)
    stages = layout.conv_layers
    j = 1
    while j < len(stages) and not stages[j].is_conv:
        j += 1  # stages[1:j]: the poolings run on the group's stacked channels
    P = W.shape[0]
    out = np.empty((P, x_all.shape[0], layout.n_outputs), np.float32)
    for i0 in range(0, x_all.shape[0], CHUNK):
        shared = first_conv(x_all[i0:i0 + CHUNK], stages[0].stage)  # what the first convolution can share
        for g0 in range(0, P, GROUP):
            h_all = shared(convs[0][0][g0:g0 + GROUP], convs[0][1][g0:g0 + GROUP])  # (b, H', W', G * C_out)
            for cl in stages[1:j]:
                h_all = pool(h_all, cl.stage.k, cl.stage.kind)
            G = min(GROUP, P - g0)
            h_all = h_all.reshape(*h_all.shape[:3], G, -1)
            for i in range(G):
                g = g0 + i
                h = h_all[:, :, :, i]
                for cl, t in zip(stages[j:], convs[j:]):
                    if cl.is_conv:
                        h = np.maximum(conv_fn(h, t[0][g], t[1][g], cl.stage), 0)
                    else:
                        h = pool(h, cl.stage.k, cl.stage.kind)
                out[g, i0:i0 + CHUNK] = dense_logits(layout, h, dense, g)
    return out


# ------------------------------------------------------------------ reference A: im2col + SGEMM


def im2col_first(x, stage):
    cols, (B, Ho, Wo) = im2col(x, stage.k, stage.stride, stage.padding)

    def apply(filters, bias):  # filters (G, C_out, k, k, C_in)
        G, C_out = filters.shape[:2]
        F = filters.reshape(G * C_out, -1).T  # (k k C_in, G C_out)
        return np.maximum(cols @ F + bias.reshape(-1), 0).reshape(B, Ho, Wo, G * C_out)

    return apply


def im2col_conv(h, filters, bias, stage):
    cols, (B, Ho, Wo) = im2col(h, stage.k, stage.stride, stage.padding)
    return (cols @ filters.reshape(filters.shape[0], -1).T + bias).reshape(B, Ho, Wo, -1)


# ------------------------------------------------------------------ reference B: scipy.signal.fftconvolve


def _fft_conv(x, filters, stage):
    """x (B, H, W, C_in); filters (N, k, k, C_in) -> (B, H', W', N) without bias."""
    p, s = stage.padding, stage.stride
    xp = np.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))[..., None]  # (B, Hp, Wp, C_in, 1)
    f = filters.transpose(1, 2, 3, 0)[None, ::-1, ::-1]  # (1, k, k, C_in, N), flipped: correlation
    y = fftconvolve(xp, f, mode="valid", axes=(1, 2)).sum(axis=3)
    return y[:, ::s, ::s].astype(np.float32)


def fft_first(x, stage):
    def apply(filters, bias):
        G, C_out = filters.shape[:2]
        return np.maximum(_fft_conv(x, filters.reshape(G * C_out, *filters.shape[2:]), stage) + bias.reshape(-1), 0)

    return apply


def fft_conv(h, filters, bias, stage):
    return _fft_conv(h, filters, stage) + bias


REFERENCES = {"numpy im2col + SGEMM": (im2col_first, im2col_conv), "scipy.signal.fftconvolve": (fft_first, fft_conv)}


def predict(layout, W, images, labels, first_conv, conv_fn):
    logits = reference_logits(layout, W, images, first_conv, conv_fn)
    predictions = np.argmax(logits, axis=2)
    return predictions, (predictions == labels).sum(axis=1)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="directory with the MNIST IDX files (default: $GENREG_DATA/mnist)")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="calls per timing block (3 rounds of blocks)")
    parser.add_argument("--no-single", action="store_true", help="skip the one-thread measurement")
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data_dir)
    layout = Layout.parse(SHAPE, "relu")
    P, B = args.population, args.batch
    W = Population.random(layout, P, seed=1).W
    images, labels = mnist.train_images[:B].reshape(B, -1), mnist.train_labels[:B].astype(np.int64)
    print("environment:", environment())
    print(f"{layout.describe()}: population {P} x batch {B} real MNIST training images")

    # The references against the kernel's logits (8 genomes x 256 images: reference B is slow).
    sub_W, sub_images = W[:8], images[:256]
    logits = population_logits(layout, sub_W, sub_images)
    for name, (first, conv) in REFERENCES.items():
        ref = reference_logits(layout, sub_W, sub_images, first, conv)
        err, scale = float(np.abs(ref - logits).max()), float(np.abs(ref).max())
        assert err <= 1e-4 * max(1.0, scale), f"{name} disagrees with the kernel: {err:.3g} (scale {scale:.3g})"
        print(f"{name}: max |logit difference| {err:.2e} (largest logit {scale:.2f}), 8 genomes x 256 images")
    flops = forward_flops(layout, B, P)
    _, correct = population_predict(layout, W, images, labels)
    _, correct_ref = predict(layout, W, images, labels, *REFERENCES["numpy im2col + SGEMM"])
    assert np.abs(correct - correct_ref).max() <= 2, "kernel and reference A score the genomes differently"

    def candidate():
        return population_predict(layout, W, images, labels)

    from threadpoolctl import threadpool_limits

    results, rows = [], []
    settings = [("all threads", numba.get_num_threads())] + ([] if args.no_single else [("one thread", 1)])
    for label, n in settings:
        numba.set_num_threads(n)
        with threadpool_limits(limits=None if n == settings[0][1] else n):
            sgemm = sgemm_gflops()
            # One call of each reference; the fastest is timed against genreg in rounds, the others shown once.
            refs = {name: (lambda f=f: predict(layout, W, images, labels, *f)) for name, f in REFERENCES.items()}
            if n > 1:  # its GEMMs are small: BLAS on one thread may well be faster
                refs["numpy im2col + SGEMM, BLAS on 1 thread"] = lambda: _one_blas_thread(
                    predict, layout, W, images, labels, *REFERENCES["numpy im2col + SGEMM"])
            once = {name: _timed(fn) for name, fn in refs.items()}
            fastest = min(once, key=once.get)
            print(f"\n{label}: one call of each reference: " + ", ".join(f"{k} {v:.2f} s" for k, v in once.items()))
            r = compare(f"{SHAPE} (relu), P={P} x B={B}, forward + argmax + scoring, {label} ({n})", candidate,
                        {fastest: refs[fastest]},
                        warmup=1, repeat=args.repeat)
        t = next(x for x in r["timings"] if x["name"] == "genreg")["median_s"]
        r.update(threads=n, sgemm_gflops=sgemm, gflops=flops / t / 1e9, seconds=t, reference_once_s=once)
        results.append(r)
        rows.append((label, n, t, flops / t / 1e9, sgemm, r["ratio"], fastest, max(once.values()) / t))
    numba.set_num_threads(settings[0][1])
    print(f"\n{'':<12} {'threads':>7} {'s/generation':>13} {'GFLOP/s':>8} {'SGEMM GFLOP/s':>14} {'ratio':>6}  "
          f"vs faster reference   (vs slower, one call)")
    for label, n, t, gf, sg, ratio, ref, slow in rows:
        print(f"{label:<12} {n:>7} {t:>13.3f} {gf:>8.1f} {sg:>14.1f} {ratio:>5.2f}x  {ref:<20} ({slow:.1f}x)")
    print(f"({flops / 1e9:.1f} GFLOP a generation: 2 x multiply-adds of the convolutions and the dense layer)")
    write_report(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
