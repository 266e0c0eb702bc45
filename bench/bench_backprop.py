"""One epoch of SGD for 784-256-128-10 on the 60k MNIST training images (batch 100, momentum 0.9).

Candidate: ``genreg.network.sgd.train`` on a row of a population buffer, with
single-threaded BLAS (how the hybrid mode trains: one network per core).
References, measured in the same process:
- "numpy textbook": the same network written the obvious way with separate
  W/b arrays (the floor our layout views and validation must not lose to);
- "pytorch cpu": the same network, ``torch.nn.Sequential`` + ``torch.optim.SGD``,
  one thread, only if ``import torch`` works (never a dependency).
Also reported once: genreg's epoch with OpenBLAS's default thread count.

    python bench/bench_backprop.py [--data-dir DIR] [--json OUT] [--rounds 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, environment, write_report  # noqa: E402

from genreg.network import backprop  # noqa: E402

from genreg.network import sgd  # noqa: E402
from genreg.network.blas import blas_threads, get_threads  # noqa: E402
from genreg.tasks import load_mnist, to_float  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.population import Population  # noqa: E402

SIZES = (784, 256, 128, 10)


def numpy_textbook_epoch(params, X, y, lr=0.01, mu=0.9, batch=100, seed=0):
    """Plain NumPy MLP epoch: separate arrays, relu, softmax-NLL, SGD with momentum."""
    velocity = [np.zeros_like(p) for p in params]
    order = np.random.default_rng(seed).permutation(X.shape[0])
    for s in range(0, X.shape[0], batch):
        idx = order[s : s + batch]
        xb, yb = X[idx], y[idx]
        W0, b0, W1, b1, W2, b2 = params
        h1 = np.maximum(xb @ W0 + b0, 0)
        h2 = np.maximum(h1 @ W1 + b1, 0)
        z = h2 @ W2 + b2
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        p /= p.sum(axis=1, keepdims=True)
        p[np.arange(len(yb)), yb] -= 1
        p /= len(yb)
        g2 = h2.T @ p
        d2 = (p @ W2.T) * (h2 > 0)
        g1 = h1.T @ d2
        d1 = (d2 @ W1.T) * (h1 > 0)
        g0 = xb.T @ d1
        grads = [g0, d1.sum(0), g1, d2.sum(0), g2, p.sum(0)]
        for param, v, g in zip(params, velocity, grads):
            v *= mu
            v += g
            param -= lr * v


def torch_epoch_factory(X, y):
    try:
        import torch
    except Exception:  # noqa: BLE001 - any import failure means: no PyTorch column
        return None
    torch.set_num_threads(1)
    Xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    model = torch.nn.Sequential(torch.nn.Linear(784, 256), torch.nn.ReLU(), torch.nn.Linear(256, 128),
                                torch.nn.ReLU(), torch.nn.Linear(128, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()

    def epoch():
        order = torch.randperm(Xt.shape[0])
        for s in range(0, Xt.shape[0], 100):
            idx = order[s : s + 100]
            opt.zero_grad()
            loss_fn(model(Xt[idx]), yt[idx]).backward()
            opt.step()

    return epoch


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--json")
    parser.add_argument("--rounds", type=int, default=3, help="timing rounds (one epoch per callable per round)")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data_dir)
    X, y = to_float(mnist.train_images), mnist.train_labels.astype(np.int64)
    layout = Layout(SIZES, "relu")
    pop = Population.random(layout, 1, seed=0)
    cfg = sgd.TrainConfig(epochs=1, batch_size=100, lr=0.01, momentum=0.9)
    print("environment:", environment(), "| openblas threads by default:", get_threads())
    rng = np.random.default_rng(0)
    params = [(rng.random(s, dtype=np.float32) - 0.5) * 0.1 for s in ((784, 256), (256,), (256, 128), (128,),
                                                                     (128, 10), (10,))]

    with blas_threads(1):
        references = {"numpy textbook (1 BLAS thread)": lambda: numpy_textbook_epoch(params, X, y)}
        torch_epoch = torch_epoch_factory(X, y)
        if torch_epoch is not None:
            references["pytorch cpu (1 thread)"] = torch_epoch
        else:
            print("pytorch not installed: no PyTorch column")
        result = compare("one epoch, 784-256-128-10, 60k MNIST images, batch 100 (genreg: 1 BLAS thread)",
                         lambda: sgd.train(layout, pop.W[0], X, y, cfg, seed=0),
                         references, warmup=1, repeat=1, rounds=args.rounds)
    t0 = time.perf_counter()
    sgd.train(layout, pop.W[0], X, y, cfg, seed=1)
    default_threads = time.perf_counter() - t0
    print(f"  genreg with OpenBLAS's default threads ({get_threads()}): {default_threads:.2f} s for one epoch")
    result["default_blas_threads_seconds"] = default_threads
    write_report(args.json, [result])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
