"""Forward-kernel benchmarks against NumPy/BLAS references doing the same work.

(a) one 784-64-10 genome over the 10,000-image MNIST test set (predicted classes);
(b) 200 such genomes over a shared batch of 200 MNIST training images (one
    balanced GENREG episode, 20 per digit), predicted classes and number
    correct per genome, against the faster of a stacked GEMM over all genomes
    and a per-genome loop of matmuls.

Both sides start from the uint8 images, so the candidate pays for building its
sparse batch and the references for converting to float32.

    python bench/bench_forward.py [--data-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, environment, write_report  # noqa: E402

from genreg.network.batch import SparseBatch  # noqa: E402
from genreg.tasks import EpisodeSampler, load_mnist  # noqa: E402
from genreg.network.forward import genome_predict, population_predict  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.population import Population  # noqa: E402


def numpy_genome_predict(W0, b0, W1, b1, images):
    h = np.tanh(images.astype(np.float32) / np.float32(255) @ W0 + b0)
    return np.argmax(h @ W1 + b1, axis=1)


def numpy_population_stacked(W0, b0, W1, b1, images, labels):
    """All genomes at once: (P, B, H) = X @ W0[P] as one batched GEMM."""
    X = images.astype(np.float32) / np.float32(255)
    h = np.tanh(np.matmul(X, W0) + b0[:, None, :])
    predictions = np.argmax(np.matmul(h, W1) + b1[:, None, :], axis=2)
    return predictions, (predictions == labels).sum(axis=1)


def numpy_population_loop(W0, b0, W1, b1, images, labels):
    """One GEMM per genome."""
    X = images.astype(np.float32) / np.float32(255)
    predictions = np.empty((W0.shape[0], X.shape[0]), dtype=np.int64)
    for g in range(W0.shape[0]):
        predictions[g] = np.argmax(np.tanh(X @ W0[g] + b0[g]) @ W1[g] + b1[g], axis=1)
    return predictions, (predictions == labels).sum(axis=1)


def stacked_tensors(layout: Layout, W: np.ndarray):
    """Views of W as (P, ...) tensors for the NumPy references."""
    out = []
    for t in layout.tensors:
        out.append(W[:, t.offset : t.stop].reshape((W.shape[0],) + t.shape))
    return [np.ascontiguousarray(x) for x in out]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="directory with the MNIST IDX files (default: $GENREG_DATA/mnist)")
    parser.add_argument("--json", help="also write the results to this JSON file")
    parser.add_argument("--repeat", type=int, default=7, help="calls per timing block (3 rounds of blocks)")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data_dir)
    layout = Layout((784, 64, 10), "tanh")
    print("environment:", environment())
    results = []

    # (a) one genome, 10k test images.
    pop1 = Population.random(layout, 1, seed=1)
    w = pop1.W[0]
    W0, b0, W1, b1 = (x[0] for x in stacked_tensors(layout, pop1.W))
    test_images = mnist.test_images

    def genreg_a():
        return genome_predict(layout, w, SparseBatch.from_dense(test_images), n_classes=10)

    def numpy_a():
        return numpy_genome_predict(W0, b0, W1, b1, test_images)

    assert np.mean(genreg_a() == numpy_a()) > 0.999, "candidate and reference disagree"
    results.append(compare("(a) one 784-64-10 genome, 10,000 test images", genreg_a, {"numpy (BLAS GEMM)": numpy_a}, repeat=args.repeat))
    test_batch = SparseBatch.from_dense(test_images)
    results.append(
        compare(
            "(a') the same, sparse test batch built once (as `genreg eval` reuses it)",
            lambda: genome_predict(layout, w, test_batch, n_classes=10),
            {"numpy (BLAS GEMM)": numpy_a},
            repeat=args.repeat,
        )
    )

    # (b) 200 genomes, shared batch of 200 training images.
    pop = Population.random(layout, 200, seed=2)
    tensors = stacked_tensors(layout, pop.W)
    # The batch is a GENREG episode: 20 images of each digit, class-major.
    idx = EpisodeSampler(mnist.train_labels, 20, seed=0).indices(0)
    images, labels = mnist.train_images[idx], mnist.train_labels[idx].astype(np.int64)

    def genreg_b():
        return population_predict(layout, pop.W, SparseBatch.from_dense(images), labels, n_classes=10)

    _, correct = genreg_b()
    _, correct_ref = numpy_population_loop(*tensors, images, labels)
    assert np.abs(correct - correct_ref).max() <= 1, "candidate and reference disagree"
    results.append(
        compare(
            "(b) 200 genomes x 200 shared MNIST images (784-64-10, fused tanh/argmax/score)",
            genreg_b,
            {
                "numpy stacked GEMM": lambda: numpy_population_stacked(*tensors, images, labels),
                "numpy per-genome loop": lambda: numpy_population_loop(*tensors, images, labels),
            },
            repeat=args.repeat,
        )
    )
    write_report(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
