"""One GENREG generation (P=200, 200-image episode, 784-64-10) against plain NumPy.

Candidate: genreg's generation as the run loop does it, on a population that
evolves from call to call: build the episode batch, score the children (built
one at a time from their parents' rows by mask crossover, child and base
mutation, mutation cost proportional to the mutation rate, and scored by the
fused forward kernel without being stored), trust update, selection, then
build the survivors' rows (into the buffer of the generation before last) as
the next brood's parents.  Reference: the same generation in plain NumPy:
forward by a stacked GEMM or a per-genome loop of matmuls (both timed, the
faster counts), full-size random masks for crossover and mutation, and
Gaussian noise for mutation.

    python bench/bench_generation.py [--data-dir DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_forward import numpy_population_loop, numpy_population_stacked  # noqa: E402
from harness import compare, environment, write_report  # noqa: E402

from genreg.network.batch import SparseBatch  # noqa: E402
from genreg.strategies.config import Config  # noqa: E402
from genreg.tasks import EpisodeSampler, load_mnist  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.population import Population  # noqa: E402
from genreg.runs import episodes  # noqa: E402
from genreg.strategies.base import EvolutionState  # noqa: E402
from genreg.strategies.genreg import Genreg  # noqa: E402


def numpy_generation(cfg: Config, layout, W, trust, images, labels, rng, forward):
    """The GENREG generation in plain NumPy; returns (new W, new trust)."""
    tensors = [W[:, t.offset : t.stop].reshape((W.shape[0],) + t.shape) for t in layout.tensors]
    _, correct = forward(*tensors, images, labels)
    trust = trust * (1 - cfg.trust_decay) + correct * cfg.correct_reward + (labels.size - correct) * cfg.wrong_penalty
    order = np.argsort(-trust, kind="stable")
    survivors = order[: math.ceil(cfg.survival_cutoff * W.shape[0])]
    w = trust[survivors] - trust[survivors].min() + 1.0

    def draw():
        return np.concatenate([order[: cfg.elites], rng.choice(survivors, size=cfg.population - cfg.elites, p=w / w.sum())])

    parents = draw()
    second = draw() if cfg.crossover == "mask" else parents
    W_new = W[parents]
    if cfg.crossover == "mask":  # element-wise, with a full-size random mask
        W_new = np.where(rng.random(W_new.shape, dtype=np.float32) < 0.5, W_new, W[second])
    children = W_new[cfg.elites :]
    scale = np.float32(cfg.mutation_scale)
    # Full-size random masks; noise drawn only where the mask is set (the faster
    # of the two obvious NumPy ways: full-size noise arrays cost ~5x more here).
    flat = children.reshape(-1)
    hit = np.flatnonzero(rng.random(flat.size, dtype=np.float32) < cfg.child_mutation_rate)
    flat[hit] += rng.standard_normal(hit.size, dtype=np.float32) * scale
    chosen = np.flatnonzero(rng.random(children.shape[0]) < cfg.base_mutation_share)
    for row in chosen:
        hit = np.flatnonzero(rng.random(W.shape[1], dtype=np.float32) < cfg.base_mutation_rate)
        children[row, hit] += rng.standard_normal(hit.size, dtype=np.float32) * scale
    return W_new, cfg.trust_inheritance * (trust[parents] + trust[second]) / 2


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir")
    parser.add_argument("--json")
    parser.add_argument("--repeat", type=int, default=7, help="calls per timing block (3 rounds of blocks)")
    args = parser.parse_args(argv)

    cfg = Config()
    mnist = load_mnist(args.data_dir)
    layout = Layout((784, *cfg.hidden_sizes, 10), cfg.activation)
    sampler = EpisodeSampler(mnist.train_labels, cfg.samples_per_class, cfg.seed)
    pop = Population.random(layout, cfg.population, seed=0)
    strategy = Genreg()
    loop = {"state": EvolutionState(pop, 0), "spare": None}
    print("environment:", environment())

    def genreg_generation():
        state = loop["state"]
        idx = sampler.indices(state.generation)
        labels = mnist.train_labels[idx].astype(np.int64)
        pop = state.population
        evaluation = episodes.classify(pop, SparseBatch.from_dense(mnist.train_images[idx]), labels, 10, False)
        strategy.score(state, evaluation, cfg)
        previous = pop.W if pop.W is not None else pop.brood.source
        loop["state"] = strategy.breed(state, cfg, out=loop["spare"])
        loop["spare"] = previous

    counter = {"g": 0}
    rng = np.random.default_rng(0)

    def reference(forward):
        def run():
            g = counter["g"] = counter["g"] + 1
            idx = sampler.indices(g)
            return numpy_generation(cfg, layout, pop.W, pop.trust, mnist.train_images[idx],
                                    mnist.train_labels[idx].astype(np.int64), rng, forward)
        return run

    result = compare(
        "GENREG generation: P=200, 200-image episode, 784-64-10 (evaluate + select + breed)",
        genreg_generation,
        {"numpy, stacked-GEMM forward": reference(numpy_population_stacked),
         "numpy, per-genome-loop forward": reference(numpy_population_loop)},
        repeat=args.repeat,
    )
    median = [t for t in result["timings"] if t["name"] == "genreg"][0]["median_s"]
    print(f"  => 600 generations at this speed: {600 * median:.1f} s (evaluation + breeding only)")
    write_report(args.json, [result])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
