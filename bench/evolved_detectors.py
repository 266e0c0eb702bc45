"""Evolved detectors with a least-squares head: a ConvNet ``28x28x1-c5xM-p2-10`` grown one detector at a time.

Gradient-free, but not end to end: the 5x5 detectors (filters) are evolved, the last layer is
solved in closed form (ridge regression against one-hot targets), as in GENREG's later work with
evolved 5x5 detectors and a linear head.  No gradient is computed anywhere.

Detector m is the winner of a small evolution over single filters (5x5 weights + bias):

- ``--candidates`` founders, random unit-norm filters with biases ~ N(0, 0.5^2);
- fitness: how much of the current residual ``R = Y - model so far`` (``(n_fit, 10)``, one-hot targets
  ``Y`` on ``--fit`` training images) a ridge fit on the candidate's pooled relu map explains,
  ``tr(C^T (G^T G + lam I)^-1 C)`` with ``G: (n_fit, 196)`` its centred features and ``C = G^T R``;
- each of ``--generations`` generations keeps the ``--elite`` best, gives each ``(candidates -
  elite - immigrants) / elite`` Gaussian mutants (sd ``--mutation`` on the unit-norm filter, then
  renormalised; sd ``--mutation`` on the bias) and adds ``--immigrants`` random filters;
- the best candidate ever seen joins the network, and its ridge fit is taken off the residual
  (forward stagewise fitting), so the next detector is chosen for what is still unexplained.

Every candidate of a generation is one channel of one ``c5xK-p2`` ConvNet, whose features come
from ``genreg.network.forward.conv_features`` (the population kernels' own stages).  After
``--detectors`` detectors or ``--minutes`` minutes, the last layer over all detectors' features is
solved jointly on the whole training split (``least_squares_head.solve_heads``; with ``--shifts 4`` or
``8`` on each training image's one-pixel shifts as well; the penalty chosen on validation, the test split
only reported) and the genome is saved in genreg's format (``genreg
eval`` reads it).  ``--curve`` writes, per detector, the wall time and the stagewise model's
validation and test accuracy.

    GENREG_DATA=../shared/data python bench/evolved_detectors.py --detectors 64 --out detectors.pkl --curve curve.csv
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

import numpy as np

from least_squares_head import SHIFTS, solve_heads, with_head

K = 5  # filter size
POOL = 2


def layout_for(n_filters: int):
    """``28x28x1-c5x{n}-p2-10``, relu."""
    from genreg.network.layout import Layout

    return Layout.parse(f"28x28x1-c{K}x{n_filters}-p{POOL}-10", hidden_activation="relu")


def filter_row(layout, filters: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """A row of ``layout`` with ``C0 = filters: (n, 25)`` and ``cb0 = bias: (n,)``, the dense part zero."""
    row = np.zeros(layout.n_params, np.float32)
    layout.view(row, "C0")[...] = filters.reshape(layout.view(row, "C0").shape)
    layout.view(row, "cb0")[...] = bias
    return row


def detector_features(filters: np.ndarray, bias: np.ndarray, X: np.ndarray) -> np.ndarray:
    """Each filter's pooled relu map: ``(n_filters, N, 196) float32`` for ``X: (N, 784) float32``."""
    from genreg.network.forward import conv_features

    layout = layout_for(filters.shape[0])
    F = conv_features(layout, filter_row(layout, filters, bias), X)  # (N, 196 * n) in (h, w, c) order
    return np.ascontiguousarray(F.reshape(X.shape[0], -1, filters.shape[0]).transpose(2, 0, 1))


def ridge_fit(G: np.ndarray, R: np.ndarray, lam: float) -> tuple[np.ndarray, np.ndarray, float]:
    """``(mean, beta, explained)`` of the ridge fit of ``R: (N, c)`` on centred ``G: (N, d)``:
    ``beta = (Gc^T Gc + lam I)^-1 Gc^T R`` (``(d, c)``) and ``explained = tr(C^T beta)``, ``C = Gc^T R``."""
    mean = G.mean(axis=0)
    Gc = G - mean
    C = (Gc.T @ R).astype(np.float64)
    beta = np.linalg.solve((Gc.T @ Gc).astype(np.float64) + lam * np.eye(G.shape[1]), C)
    return mean, beta, float(np.sum(C * beta))


def random_filters(rng, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit-norm 5x5 filters ``(n, 25)`` and biases ``(n,)`` ~ N(0, 0.5^2)."""
    f = rng.standard_normal((n, K * K))
    return (f / np.linalg.norm(f, axis=1, keepdims=True)).astype(np.float32), (0.5 * rng.standard_normal(n)).astype(np.float32)


def evolve_detector(rng, X: np.ndarray, R: np.ndarray, lam: float, args) -> tuple[np.ndarray, float, float]:
    """One detector: ``(filter (25,), bias, best fitness)`` after ``args.generations`` generations."""
    filters, bias = random_filters(rng, args.candidates)
    best = (None, 0.0, -np.inf)
    per_elite = (args.candidates - args.elite - args.immigrants) // args.elite
    for _ in range(args.generations):
        G = detector_features(filters, bias, X)
        fitness = np.array([ridge_fit(G[k], R, lam)[2] for k in range(filters.shape[0])])
        order = np.argsort(-fitness, kind="stable")
        if fitness[order[0]] > best[2]:
            best = (filters[order[0]].copy(), float(bias[order[0]]), float(fitness[order[0]]))
        elite = order[: args.elite]
        kids = np.repeat(filters[elite], per_elite, axis=0) + args.mutation * rng.standard_normal((args.elite * per_elite, K * K))
        kids /= np.linalg.norm(kids, axis=1, keepdims=True)
        kid_bias = np.repeat(bias[elite], per_elite) + args.mutation * rng.standard_normal(args.elite * per_elite)
        new_f, new_b = random_filters(rng, args.immigrants)
        filters = np.vstack([filters[elite], kids.astype(np.float32), new_f])
        bias = np.concatenate([bias[elite], kid_bias.astype(np.float32), new_b])
    return best


class CurveLog:
    """The growth curve: after each step, the count grown, seconds since the start, the step's fitness, the
    mean squared residual and the stagewise model's validation and test accuracy; printed, and written as
    CSV to ``path`` if given."""

    def __init__(self, path, noun: str):
        self.rows, self.noun, self.start = [], noun, time.perf_counter()
        self.handle = open(path, "w", newline="") if path else None
        self.writer = csv.writer(self.handle) if path else None
        if self.writer:
            self.writer.writerow([noun, "seconds", "fitness", "residual", "validation_accuracy", "test_accuracy"])

    def seconds(self) -> float:
        return time.perf_counter() - self.start

    def add(self, count: int, fitness: float, R: np.ndarray, logits: dict, data: dict) -> None:
        acc = {name: float(np.mean(np.argmax(logits[name], axis=1) == data[name][1])) for name in logits}
        row = [count, round(self.seconds(), 2), round(fitness, 3), round(float(np.mean(R * R)), 6),
               acc["validation"], acc["test"]]
        self.rows.append(row)
        print(f"{count} {self.noun}: {row[1]:.0f} s, fitness {fitness:.1f}, residual {row[3]:.4f}, "
              f"validation {acc['validation']:.2%}", flush=True)
        if self.writer:
            self.writer.writerow(row)
            self.handle.flush()

    def close(self) -> list:
        if self.handle:
            self.handle.close()
        return self.rows


def stagewise_outputs(filters: list, biases: list, stages: list, base: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The grown model's outputs ``(N, 10) float64`` on ``X: (N, 784)``: ``base + sum over detectors m of
    (G_m(X) - mean_m) @ beta_m`` (``stages``: the ``(mean_m, beta_m)`` of each detector's ridge fit)."""
    out = np.tile(base, (X.shape[0], 1)).astype(np.float64)
    if stages:
        G = detector_features(np.array(filters), np.array(biases, np.float32), X)
        for g, (mean, beta) in zip(G, stages):
            out += (g - mean) @ beta
    return out


def grow(data: dict, args, curve_path=None) -> tuple[np.ndarray, np.ndarray, list]:
    """Evolve detectors until ``args.detectors`` or ``args.minutes``; ``(filters (M, 25), biases (M,), curve)``.

    With ``args.refresh`` every detector is chosen and fitted on fresh fit images (their residual
    computed from the model grown so far), else all on the first draw."""
    rng = np.random.default_rng(args.seed)
    X, y = data["train"]
    onehot = np.eye(10, dtype=np.float32)
    n_fit = min(args.fit, X.shape[0])
    lam = args.fit_penalty * n_fit
    filters, biases, stages = [], [], []
    log = CurveLog(curve_path, "detectors")
    for m in range(args.detectors):
        if args.minutes is not None and log.seconds() > 60.0 * args.minutes:
            break
        if m == 0 or args.refresh:
            fit = rng.choice(X.shape[0], n_fit, replace=False)
            Xf, Y = X[fit], onehot[y[fit]]
            if m == 0:  # the model starts at the first fit images' class frequencies
                base = Y.mean(axis=0)
                logits = {name: stagewise_outputs([], [], [], base, data[name][0]) for name in ("validation", "test")}
            R = (Y - stagewise_outputs(filters, biases, stages, base, Xf)).astype(np.float32)
        f, b, fitness = evolve_detector(rng, Xf, R, lam, args)
        filters.append(f)
        biases.append(b)
        fb = (f[None, :], np.array([b], np.float32))
        G = detector_features(*fb, Xf)[0]
        mean, beta, _ = ridge_fit(G, R, lam)
        stages.append((mean, beta))
        R = R - ((G - mean) @ beta).astype(np.float32)
        for name in logits:
            logits[name] += (detector_features(*fb, data[name][0])[0] - mean) @ beta
        log.add(m + 1, fitness, R, logits, data)
    return np.array(filters), np.array(biases, np.float32), log.close()


def read_curve(path: str) -> tuple[list, tuple, str]:
    """The rows of a ``--curve`` CSV (as written), its head row's ``(seconds, test accuracy)`` and what
    its first column counts."""
    header, *rows = list(csv.reader(open(path, newline="")))
    grown = [[float(v) for v in r] for r in rows if r[0] != "head"]
    head = [(float(r[1]), float(r[5])) for r in rows if r[0] == "head"]
    return grown, head[-1], header[0]


def plot(curve: list, head: tuple, path: str, noun: str = "detectors") -> None:
    """Test accuracy against minutes: the stagewise model per detector, then the joint head (``(seconds, test)``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    ax.plot([r[1] / 60 for r in curve], [100 * r[5] for r in curve], label=f"{noun} so far, stagewise head")
    ax.plot([head[0] / 60], [100 * head[1]], "o", label=f"{int(curve[-1][0])} {noun}, joint least-squares head")
    ax.set_xlabel("minutes")
    ax.set_ylabel("test accuracy (%)")
    ax.set_ylim(90, 100)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def replotted(parser: argparse.ArgumentParser, args) -> bool:
    """With ``--replot``: draw ``--plot`` from the CSV and say so (nothing else runs)."""
    if not args.replot:
        return False
    if not args.plot:
        parser.error("--replot needs --plot")
    grown, head, noun = read_curve(args.replot)
    plot(grown, head, args.plot, noun)
    return True


def common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every grown network shares: budget, fit images, the final head, outputs."""
    parser.add_argument("--minutes", type=float, help="stop growing after this long (default: no limit)")
    parser.add_argument("--fit", type=int, default=20000, help="training images the features are chosen on")
    parser.add_argument("--refresh", action="store_true", help="fresh fit images for every step")
    parser.add_argument("--fit-penalty", type=float, default=1e-3, help="ridge penalty per fit image while growing")
    parser.add_argument("--lams", default="0.1,1,10", help="penalties of the final head (comma-separated)")
    parser.add_argument("--shifts", type=int, choices=sorted(SHIFTS), default=0,
                        help="fit the final head on every training image and its 4 (up, down, left, right) or 8 "
                             "(and diagonal) one-pixel shifts as well (default 0: the images only)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir")
    parser.add_argument("--out", help="save the genome here (genreg format)")
    parser.add_argument("--curve", help="write the growth curve (CSV) here")
    parser.add_argument("--json", help="write the figures here")
    parser.add_argument("--plot", help="draw the curve (PNG) here")
    parser.add_argument("--replot", metavar="CURVE_CSV", help="only draw --plot from a --curve CSV written before")


def load_data(args) -> dict:
    """``{"train" | "validation" | "test": (X (n, 784) float32 pixels / 255, y (n,))}`` of MNIST."""
    from genreg.api import as_task

    task = as_task("mnist", args.data_dir, seed=args.seed)
    data = {}
    for name, key in (("train", "train"), ("validation", "val"), ("test", "test")):
        X = getattr(task, f"X_{key}")
        data[name] = (np.asarray(X, np.float32) / np.float32(255.0), np.asarray(getattr(task, f"y_{key}")))
    return data


def finish(layout, row: np.ndarray, data: dict, args, curve: list, grown: float, started: float, method: str,
           noun: str = "detectors", features=None) -> dict:
    """Solve the last layer jointly (penalty chosen on validation), report, and write what ``args`` asks for."""
    from genreg.genome.checkpoint import save_genome
    from genreg.network.forward import genome_logits

    def accuracy(r, split):
        return float(np.mean(np.argmax(genome_logits(layout, r, data[split][0]), 1) == data[split][1]))

    lams = [float(v) for v in args.lams.split(",")]
    heads = solve_heads(layout, row, *data["train"], 10, lams, features=features, shifts=SHIFTS[args.shifts])
    scores = {lam: accuracy(with_head(layout, row, A), "validation") for lam, A in heads.items()}
    lam = max(lams, key=lambda v: (scores[v], -v))
    row = with_head(layout, row, heads[lam])
    test = accuracy(row, "test")
    seconds = time.perf_counter() - started
    result = {"layout": layout.describe(), "method": method, "steps": len(curve), "grow_seconds": round(grown, 1),
              "seconds": round(seconds, 1), "head_penalty": lam, "validation": scores, "test_accuracy": test,
              "stagewise_test_accuracy": curve[-1][5] if curve else None, "settings": vars(args)}
    print(f"{layout.describe()}: {method} (penalty {lam}): validation {scores[lam]:.2%}, test {test:.2%}, "
          f"{seconds:.0f} s in all", flush=True)
    if args.curve:
        with open(args.curve, "a", newline="") as handle:
            csv.writer(handle).writerow(["head", round(seconds, 2), "", "", scores[lam], test])
    if args.plot:
        plot(curve, (seconds, test), args.plot, noun)
    if args.out:
        save_genome(args.out, layout, row, metadata={"method": method, "validation_accuracy": scores[lam],
                                                      "test_accuracy": test, "seconds": round(seconds, 1),
                                                      "settings": vars(args)})
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--detectors", type=int, default=64, help="detectors to grow (default 64)")
    parser.add_argument("--candidates", type=int, default=64, help="filters per generation (default 64)")
    parser.add_argument("--generations", type=int, default=4, help="generations per detector (default 4)")
    parser.add_argument("--elite", type=int, default=8)
    parser.add_argument("--immigrants", type=int, default=8, help="random filters added each generation")
    parser.add_argument("--mutation", type=float, default=0.3, help="mutation sd (default 0.3)")
    common_arguments(parser)
    args = parser.parse_args(argv)
    if replotted(parser, args):
        return 0
    if args.candidates < args.elite + args.immigrants + args.elite:
        parser.error("--candidates must leave at least one mutant per elite")

    from genreg.network.forward import conv_features

    started = time.perf_counter()
    data = load_data(args)
    filters, biases, curve = grow(data, args, args.curve)
    layout = layout_for(filters.shape[0])
    finish(layout, filter_row(layout, filters, biases), data, args, curve, time.perf_counter() - started, started,
           f"{filters.shape[0]} evolved detectors, least-squares head", features=conv_features)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
