"""How well an evolution strategy's update points along the true gradient, by population size and rank.

For a genome (a checkpoint, e.g. a centre halfway through a run), on one batch of MNIST training
images: the true gradient of the mean cross-entropy by backpropagation (``genreg.network.backprop``),
and OpenAI-ES's estimate from P antithetic members (centred-rank weights, ``Members.noise_sum``).
Prints the cosine between minus the true gradient and the estimate, averaged over a few
generations' noise, for each P and rank.  A cosine near 1 would be gradient descent; an
estimate from P members in n dimensions has a cosine of roughly sqrt(P / n) at best.

    python bench/es_gradient_quality.py CHECKPOINT [--sizes 100,1000,10000] [--ranks 0,1] [--batch 500]
"""

from __future__ import annotations

import argparse
import sys

import numpy as np


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint")
    parser.add_argument("--sizes", default="100,1000,10000")
    parser.add_argument("--ranks", default="0,1")
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--sigma", type=float, default=0.02)
    parser.add_argument("--draws", type=int, default=3, help="generations of noise averaged per cell")
    parser.add_argument("--data-dir")
    args = parser.parse_args(argv)

    from genreg.api import Genome
    from genreg.network import backprop
    from genreg.network.batch import SparseBatch
    from genreg.network.members import Members
    from genreg.strategies.es_base import centred_ranks, pair_weights
    from genreg.tasks import load_task

    genome = Genome.load(args.checkpoint)
    layout, row = genome.layout, np.ascontiguousarray(genome.row, dtype=np.float32)
    task = load_task("mnist", args.data_dir)
    X8, y = task.X_train[: args.batch], task.y_train[: args.batch]
    _, grad = backprop.loss_and_grad(layout, row, X8.astype(np.float32) / 255, y)
    descent = -np.asarray(grad, np.float64)
    batch = SparseBatch.from_dense(X8)
    print(f"{layout.describe()}, {layout.n_params} parameters, batch {args.batch}, sigma {args.sigma}")
    print(f"{'P':>7} {'rank':>5} {'cosine (mean of draws)':>24} {'sqrt(P/n)':>10}")
    for rank in (int(r) for r in args.ranks.split(",")):
        for P in (int(p) for p in args.sizes.split(",")):
            cosines = []
            for g in range(args.draws):
                sigma = np.full(2 * layout.n_layers, args.sigma)
                members = Members(layout, row, sigma, rank, 0, g, P)
                _, loss = members.score(batch, labels=y)
                weights, _ = pair_weights(centred_ranks(-loss))
                estimate, _ = members.noise_sum(weights)
                estimate /= members.parameter_sigma()
                cosines.append(float(estimate @ descent / (np.linalg.norm(estimate) * np.linalg.norm(descent))))
            print(f"{P:>7} {rank:>5} {np.mean(cosines):>24.3f} {np.sqrt(P / layout.n_params):>10.3f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
