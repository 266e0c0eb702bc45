"""A baseline without evolution: a network's features with its last layer solved by least squares.

For a network, either a founder drawn at random from a shape string (``--layout``; the same
seeded founder a run starts from) or a saved genome (``--genome``), the activations that enter its
last layer are computed for the task's training split.  The last layer is then replaced by the
ridge-regression solution against one-hot targets, ``(F^T F + lam I) A = F^T Y`` (``F`` with a
column of ones for the bias), one solve per ``lam``.  This is the closed form of an extreme
learning machine's or a random-features model's readout: no gradient and no evolution.  The ``lam``
with the best validation accuracy is chosen; the test split is only reported.

It says how much of an evolved network's accuracy its features could give with a least-squares
head, and what random features give on their own (``docs/conv.md``, ``docs/es.md``).

``--evolve N`` then runs N generations of OpenAI-ES (``genreg.strategies.openai_es``, its own
update) from the refit network: ``--population`` rank-``--rank`` members, sigma ``--sigma``, Adam's
step ``--step``, fitness minus the squared error to the one-hot targets (what the least-squares
head minimises) on a fresh ``--batch`` of training images each generation, printing validation
accuracy every 50 generations: whether evolution improves on the closed form.

    GENREG_DATA=../shared/data python bench/least_squares_head.py --layout 28x28x1-c5x64-p2-10 --activation relu
    GENREG_DATA=../shared/data python bench/least_squares_head.py --genome checkpoints/mnist/openai-es-conv-....pkl
    GENREG_DATA=../shared/data python bench/least_squares_head.py --layout 784-2048-10 --evolve 500
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

CHUNK = 5000  # training images whose features are held at once

#: The one-pixel shifts of every training image a head can be fitted on as well (``shifts=SHIFTS[n]``):
#: ``(dy, dx)``, the content moved dy rows down and dx columns right.
_ALONG_AXES = ((1, 0), (-1, 0), (0, 1), (0, -1))
SHIFTS = {0: (), 4: _ALONG_AXES, 8: _ALONG_AXES + ((1, 1), (1, -1), (-1, 1), (-1, -1))}


def shifted(X: np.ndarray, image: tuple, dy: int, dx: int) -> np.ndarray:
    """Images moved ``dy`` rows down and ``dx`` columns right, zeros shifted in: ``(n, h w c)`` for
    ``X: (n, h w c)`` in ``(h, w, c)`` order, ``image = (h, w, c)``."""
    h, w, c = image
    I = X.reshape(-1, h, w, c)
    out = np.zeros_like(I)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = I[:, max(-dy, 0) : h - max(dy, 0),
                                                                         max(-dx, 0) : w - max(dx, 0)]
    return out.reshape(X.shape)


def last_layer_inputs(layout, row: np.ndarray, X: np.ndarray) -> np.ndarray:
    """The activations that enter the last layer: ``(n, n_{L-1}) float32`` for ``X: (n, n_inputs) float32``."""
    from genreg.network import backprop, conv_backprop

    h = conv_backprop.features(layout, row, X)[0] if layout.is_conv else X
    _, hidden, _ = backprop._forward(layout, row, h, (0.0,) * (layout.n_layers - 1), None, keep=True)
    return hidden[-1]


def solve_heads(layout, row, X: np.ndarray, y: np.ndarray, n_classes: int, lams, features=None, shifts=(),
                image=(28, 28, 1)) -> dict:
    """``{lam: A}``, ``A: (n_{L-1} + 1, n_classes) float32`` (last row the bias), from the training split;
    ``features(layout, row, X)`` gives what enters the last layer (default ``last_layer_inputs``).

    With ``shifts`` (``(dy, dx)`` pairs, e.g. ``SHIFTS[4]``) each training image ``X: (n, h w c)`` of shape
    ``image`` also enters moved by each shift, with its own label (data augmentation; n (1 + len(shifts))
    rows in the normal equations, built chunk by chunk)."""
    features = features or last_layer_inputs
    n_feat = layout.sizes[-2]
    gram = np.zeros((n_feat + 1, n_feat + 1))
    cross = np.zeros((n_feat + 1, n_classes))
    for s in range(0, X.shape[0], CHUNK):
        targets = np.eye(n_classes, dtype=np.float32)[y[s : s + CHUNK]]
        for dy, dx in ((0, 0),) + tuple(shifts):
            images = X[s : s + CHUNK] if (dy, dx) == (0, 0) else shifted(X[s : s + CHUNK], image, dy, dx)
            F = features(layout, row, images)
            F = np.hstack([F, np.ones((F.shape[0], 1), np.float32)])
            gram += F.T @ F
            cross += F.T @ targets
    heads = {}
    for lam in lams:  # gram + lam I without an identity matrix beside it (the same values, one matrix fewer)
        system = gram.copy()
        system[np.diag_indices_from(system)] += lam
        heads[lam] = np.linalg.solve(system, cross).astype(np.float32)
        del system
    return heads


def with_head(layout, row: np.ndarray, A: np.ndarray) -> np.ndarray:
    """``row`` with its last layer's weights and bias set to ``A`` (rows 0..n-1, then the bias row)."""
    out = row.copy()
    last = layout.layers[-1][0]
    layout.view(out, last.W.name)[...] = A[:-1]
    layout.view(out, last.b.name)[...] = A[-1]
    return out


def accuracy(layout, row, X, y) -> float:
    from genreg.network import backprop

    return float(backprop.accuracy(layout, row, X, y))


def evolve(layout, row: np.ndarray, data: dict, args) -> list[tuple[int, float]]:
    """OpenAI-ES from ``row``: ``[(generation, validation accuracy)]`` every 50 generations."""
    from genreg.network.batch import SparseBatch
    from genreg.network.population import Population
    from genreg.strategies import make_strategy
    from genreg.strategies.config import Config

    cfg = Config(strategy="openai-es", population=args.population, rank=args.rank, sigma=args.sigma,
                 learning_rate=args.step, generations=args.evolve, seed=args.seed)
    strategy = make_strategy("openai-es")
    centre = Population(layout, row[None, :].copy(), np.zeros(1), np.zeros(1, np.int64), np.full(1, -1, np.int64),
                        np.zeros(1, np.int32), 1)
    state = strategy.load_state(centre, 0, {})
    X, y = data["train"]
    onehot = np.eye(layout.n_outputs, dtype=np.float32)
    rng = np.random.default_rng(args.seed)
    curve = []
    for g in range(args.evolve):
        pick = rng.choice(X.shape[0], args.batch, replace=False)
        members = strategy.ask(state, cfg)
        _, loss = members.score(SparseBatch.from_dense(X[pick]), targets=onehot[y[pick]])
        state.fitness = -loss
        state = strategy.breed(state, cfg)
        if (g + 1) % 50 == 0 or g + 1 == args.evolve:
            curve.append((g + 1, accuracy(layout, state.population.W[0], *data["validation"])))
            print(f"OpenAI-ES generation {g + 1}: validation {curve[-1][1]:.2%}", flush=True)
    return curve


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    which = parser.add_mutually_exclusive_group(required=True)
    which.add_argument("--layout", help="a shape string: a random founder of it (seed --seed)")
    which.add_argument("--genome", help="a saved genome: its features, its last layer refit")
    parser.add_argument("--activation", default="relu", help="hidden activation of --layout (default relu)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--lams", default="0.01,0.1,1,10,100", help="ridge penalties tried (comma-separated)")
    parser.add_argument("--shifts", type=int, choices=sorted(SHIFTS), default=0,
                        help="fit the head on every training image and its 4 or 8 one-pixel shifts as well "
                             "(a ConvNet's image, or square inputs; default 0)")
    parser.add_argument("--task", default="mnist")
    parser.add_argument("--data-dir")
    parser.add_argument("--json", help="write the figures here")
    es = parser.add_argument_group("evolving on from the least-squares network")
    es.add_argument("--evolve", type=int, default=0, metavar="N", help="OpenAI-ES generations (default 0: none)")
    es.add_argument("--population", type=int, default=1000)
    es.add_argument("--rank", type=int, default=1)
    es.add_argument("--sigma", type=float, default=0.02)
    es.add_argument("--step", type=float, default=0.0003, help="Adam's step (default 0.0003)")
    es.add_argument("--batch", type=int, default=500, help="training images a generation (default 500)")
    args = parser.parse_args(argv)

    from genreg.api import Genome, as_task
    from genreg.network.layout import Layout
    from genreg.network.population import Population

    if args.genome:
        genome = Genome.load(args.genome)
        layout, row, source = genome.layout, np.asarray(genome.row, np.float32), args.genome
    else:
        layout = Layout.parse(args.layout, hidden_activation=args.activation)
        row, source = Population.random(layout, 1, seed=args.seed).W[0].copy(), f"random founder, seed {args.seed}"
    side = int(round(layout.n_inputs ** 0.5))
    image = (tuple(layout.image) + (1,))[:3] if layout.is_conv else (side, side, 1)
    if args.shifts and image[0] * image[1] * image[2] != layout.n_inputs:
        parser.error(f"--shifts needs images: a ConvNet layout or a square number of inputs, not {layout.n_inputs}")
    task = as_task(args.task, args.data_dir, seed=args.seed)
    data = {}
    for name, key in (("train", "train"), ("validation", "val"), ("test", "test")):
        X = getattr(task, f"X_{key}")
        data[name] = (np.asarray(X, np.float32) / (255.0 if X.dtype == np.uint8 else 1.0), getattr(task, f"y_{key}"))
    lams = [float(v) for v in args.lams.split(",")]
    print(f"{layout.describe()}: {source}; {layout.sizes[-2]} features enter the last layer")

    t0 = time.perf_counter()
    heads = solve_heads(layout, row, *data["train"], layout.n_outputs, lams, shifts=SHIFTS[args.shifts], image=image)
    seconds = time.perf_counter() - t0
    result = {"network": layout.describe(), "source": source, "features": int(layout.sizes[-2]), "shifts": args.shifts,
              "solve_seconds": round(seconds, 1), "as_is": {}, "least_squares": {}}
    for name in ("validation", "test"):
        result["as_is"][name] = accuracy(layout, row, *data[name])
    print(f"as it is: validation {result['as_is']['validation']:.2%}, test {result['as_is']['test']:.2%}")
    for lam, A in heads.items():
        refit = with_head(layout, row, A)
        scores = {name: accuracy(layout, refit, *data[name]) for name in ("validation", "test")}
        result["least_squares"][str(lam)] = scores
        print(f"least-squares head, lam {lam:g}: validation {scores['validation']:.2%}, test {scores['test']:.2%}")
    best = max(result["least_squares"], key=lambda k: result["least_squares"][k]["validation"])
    result["chosen_lam"] = float(best)
    result["chosen_test"] = result["least_squares"][best]["test"]
    print(f"chosen on validation: lam {float(best):g}, test {result['chosen_test']:.2%} "
          f"(features and solve {seconds:.1f} s)")
    if args.evolve:
        start = with_head(layout, row, heads[float(best)])
        result["evolved"] = [{"generation": g, "validation": a} for g, a in evolve(layout, start, data, args)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
