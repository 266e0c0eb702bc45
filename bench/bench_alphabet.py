"""One generation of GENREG's alphabet protocol (P=200, the 26 letters, 10000-128-26) against plain NumPy.

Candidate: genreg's generation as the run loop does it (``bench_generation.py`` on MNIST), on a
population that evolves from call to call: the episode's 26 images as a sparse batch (a letter
inks about 13% of its 100x100 field, so the first layer reads only those pixels' weight rows),
children scored by the fused forward kernel without being stored, trust update, selection, then the
survivors' rows built as the next brood's parents.  Reference: the same generation in plain NumPy
(``bench_generation.numpy_generation``): a stacked dense GEMM over all 10,000 inputs, full-size
random masks for crossover and mutation, Gaussian noise for mutation.  Both run in this process,
warmed up past compilation, in interleaved blocks (``harness.compare``).

    python bench/bench_alphabet.py [--data-dir DIR] [--json OUT] [--repeat N]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_forward import numpy_population_stacked  # noqa: E402
from bench_generation import numpy_generation  # noqa: E402
from harness import compare, environment, write_report  # noqa: E402

from genreg.network.batch import SparseBatch  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.population import Population  # noqa: E402
from genreg.runs import episodes  # noqa: E402
from genreg.strategies.base import EvolutionState  # noqa: E402
from genreg.strategies.config import Config  # noqa: E402
from genreg.strategies.genreg import Genreg  # noqa: E402
from genreg.tasks import load_task  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="data root for the cached renderings (default: as genreg)")
    parser.add_argument("--json")
    parser.add_argument("--repeat", type=int, default=3, help="calls per timing block (3 rounds of blocks)")
    args = parser.parse_args(argv)

    cfg = Config(hidden_sizes=(128,))
    task = load_task("alphabet", args.data_dir)
    layout = Layout((task.n_inputs, *cfg.hidden_sizes, task.n_outputs), cfg.activation)
    sampler = task.sampler(cfg.samples_per_class, cfg.seed)  # every episode: the 26 letters
    pop = Population.random(layout, cfg.population, seed=0)
    strategy = Genreg()
    loop = {"state": EvolutionState(pop, 0), "spare": None}
    print("environment:", environment())
    print(f"network {layout.describe()}, population {cfg.population}, episode {sampler.episode_size} images, "
          f"{100 * (task.X_train > 0).mean():.1f}% of the input pixels inked")

    def genreg_generation():
        state = loop["state"]
        idx = sampler.indices(state.generation)
        pop = state.population
        evaluation = episodes.classify(pop, SparseBatch.from_dense(task.X_train[idx]), task.y_train[idx], 26, False)
        strategy.score(state, evaluation, cfg)
        previous = pop.W if pop.W is not None else pop.brood.source
        loop["state"] = strategy.breed(state, cfg, out=loop["spare"])
        loop["spare"] = previous

    rng = np.random.default_rng(0)

    def reference():
        return numpy_generation(cfg, layout, pop.W, pop.trust, task.X_train, task.y_train, rng,
                                numpy_population_stacked)

    result = compare(f"GENREG generation: P={cfg.population}, the 26 letters, {layout.describe().split(' ')[0]} "
                     "(evaluate + select + breed)", genreg_generation,
                     {"numpy, stacked dense GEMM": reference}, repeat=args.repeat)
    median = [t for t in result["timings"] if t["name"] == "genreg"][0]["median_s"]
    print(f"  => 1,862 generations (GENREG's report) at this speed: {1862 * median:.0f} s (evaluation + breeding only)")
    write_report(args.json, [result])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
