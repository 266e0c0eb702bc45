"""Evolved hidden units with a least-squares head: an MLP ``784-H-10`` (relu) grown a block of units at a time.

Gradient-free, but not end to end: the hidden units are evolved, the last layer is solved in
closed form (ridge regression against one-hot targets).  The dense counterpart of
``evolved_detectors.py``; no gradient is computed anywhere.

Each round:

- a pool of ``--candidates`` units (784 weights + bias): in the first round random (weights
  ~ N(0, 1/784), so ``|w|`` is about 1; biases ~ N(0, 0.1^2)); later, ``--mutants`` Gaussian mutants
  of every unit the previous round chose (sd ``--mutation`` relative to ``|w|`` and to 0.1 for the
  bias) and random units for the rest;
- ``--block`` units are chosen from it one after another: each is the candidate whose ridge fit
  (one column, centred) explains most of the residual left by the units chosen before it,
  ``(g^T R)^2 / (g^T g + lam)`` summed over classes, on ``--fit`` training images; its fit is then
  taken off the residual (forward stagewise, matching pursuit over the pool).

After ``--units`` units or ``--minutes`` minutes the last layer over all units is solved jointly on
the whole training split (penalty chosen on validation, test only reported) and the genome is
saved in genreg's format.

    GENREG_DATA=../shared/data python bench/evolved_units.py --units 8192 --out units.pkl --curve curve.csv
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from evolved_detectors import CurveLog, common_arguments, finish, load_data, replotted

N_IN = 784
BIAS_SD = 0.1


def unit_features(W: np.ndarray, b: np.ndarray, X: np.ndarray) -> np.ndarray:
    """``relu(X @ W + b)``: ``(N, K) float32`` for units ``W: (784, K)``, ``b: (K,)`` and ``X: (N, 784)``."""
    return np.maximum(X @ W + b, np.float32(0.0))


def random_units(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random units: ``W: (784, n)`` ~ N(0, 1/784), ``b: (n,)`` ~ N(0, 0.1^2), float32."""
    return ((rng.standard_normal((N_IN, n)) / np.sqrt(N_IN)).astype(np.float32),
            (BIAS_SD * rng.standard_normal(n)).astype(np.float32))


def mutants(rng, W: np.ndarray, b: np.ndarray, per_unit: int, sd: float) -> tuple[np.ndarray, np.ndarray]:
    """``per_unit`` Gaussian mutants of each unit ``W[:, k], b[k]``: ``(784, K * per_unit)``, ``(K * per_unit,)``."""
    W = np.repeat(W, per_unit, axis=1)
    scale = np.linalg.norm(W, axis=0) / np.sqrt(N_IN)
    W = W + sd * scale * rng.standard_normal(W.shape)
    return W.astype(np.float32), (np.repeat(b, per_unit) + sd * BIAS_SD * rng.standard_normal(W.shape[1])).astype(np.float32)


def pick(G: np.ndarray, R: np.ndarray, lam: float, n_pick: int) -> tuple[list, np.ndarray, np.ndarray, list]:
    """Choose ``n_pick`` columns of ``G: (N, K)`` one after another, each the one whose centred ridge fit
    explains most of the residual ``R: (N, c)`` left by those before it.

    Returns the chosen indices, the column means ``(K,)``, each chosen column's coefficients
    ``(n_pick, c) float64`` and what each explained; ``R`` is updated in place.
    """
    mean = G.mean(axis=0)
    Gc = G - mean
    norms = np.einsum("nk,nk->k", Gc, Gc, dtype=np.float64) + lam
    C = (Gc.T @ R).astype(np.float64)  # (K, c)
    chosen, betas, gains = [], [], []
    for _ in range(min(n_pick, G.shape[1])):
        fit = np.einsum("kc,kc->k", C, C) / norms
        fit[chosen] = -np.inf
        k = int(np.argmax(fit))
        beta = C[k] / norms[k]
        g = Gc[:, k]
        R -= np.outer(g, beta).astype(np.float32)
        C -= np.outer((Gc.T @ g).astype(np.float64), beta)
        chosen.append(k)
        betas.append(beta)
        gains.append(float(fit[k]))
    return chosen, mean, np.array(betas), gains


def grow(data: dict, args, curve_path=None) -> tuple[np.ndarray, np.ndarray, list]:
    """Evolve units until ``args.units`` or ``args.minutes``: ``(W (784, H), b (H,), curve)``."""
    rng = np.random.default_rng(args.seed)
    X, y = data["train"]
    onehot = np.eye(10, dtype=np.float32)
    n_fit = min(args.fit, X.shape[0])
    lam = args.fit_penalty * n_fit
    fit = rng.choice(X.shape[0], n_fit, replace=False)
    Xf, Y = X[fit], onehot[y[fit]]
    base = Y.mean(axis=0)
    R = Y - base
    logits = {name: np.tile(base, (data[name][0].shape[0], 1)).astype(np.float64) for name in ("validation", "test")}
    W_all, b_all, stages = [], [], []
    last, n_units = None, 0
    log = CurveLog(curve_path, "units")
    while n_units < args.units:
        if args.minutes is not None and log.seconds() > 60.0 * args.minutes:
            break
        if args.refresh and W_all:
            fit = rng.choice(X.shape[0], n_fit, replace=False)
            Xf, Y = X[fit], onehot[y[fit]]
            R = Y - base
            for (W, b), (mean, betas) in zip(zip(W_all, b_all), stages):
                R -= ((unit_features(W, b, Xf) - mean) @ betas).astype(np.float32)
        if last is None:
            W, b = random_units(rng, args.candidates)
        else:
            Wm, bm = mutants(rng, *last, args.mutants, args.mutation)
            Wr, br = random_units(rng, max(0, args.candidates - Wm.shape[1]))
            W, b = np.hstack([Wm, Wr]), np.concatenate([bm, br])
        n_pick = min(args.block, args.units - n_units)
        chosen, mean, betas, gains = pick(unit_features(W, b, Xf), R, lam, n_pick)
        last = (W[:, chosen], b[chosen])
        W_all.append(last[0])
        b_all.append(last[1])
        stages.append((mean[chosen], betas))
        n_units += len(chosen)
        for name in logits:
            logits[name] += (unit_features(*last, data[name][0]) - mean[chosen]) @ betas
        log.add(n_units, sum(gains), R, logits, data)
    return np.hstack(W_all), np.concatenate(b_all), log.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--units", type=int, default=8192, help="hidden units to grow (default 8192)")
    parser.add_argument("--block", type=int, default=256, help="units chosen per round (default 256)")
    parser.add_argument("--candidates", type=int, default=2048, help="pool per round (default 2048)")
    parser.add_argument("--mutants", type=int, default=4, help="mutants of each unit the last round chose")
    parser.add_argument("--mutation", type=float, default=0.3, help="mutation sd, relative (default 0.3)")
    common_arguments(parser)
    args = parser.parse_args(argv)
    if replotted(parser, args):
        return 0
    if args.block > args.candidates:
        parser.error("--block cannot exceed --candidates")

    from genreg.network.layout import Layout

    started = time.perf_counter()
    data = load_data(args)
    W, b, curve = grow(data, args, args.curve)
    layout = Layout((N_IN, W.shape[1], 10), "relu")
    row = np.zeros(layout.n_params, np.float32)
    layout.view(row, "W0")[...] = W
    layout.view(row, "b0")[...] = b
    finish(layout, row, data, args, curve, time.perf_counter() - started, started,
           f"{W.shape[1]} evolved units, least-squares head", noun="units")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
