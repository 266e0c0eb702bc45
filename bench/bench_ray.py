"""An evolution strategy's generation on Ray workers: bytes per generation, driver overhead, 1 vs 2 workers.

A generation is what ``genreg evolve --set strategy=openai-es --ray local --workers N`` does each
step: the driver sends every worker (generation, digest, last fitness, member range), the workers
bring their replicas forward and score their members, the driver joins the values, scores the
centre and runs the update.  Measured per configuration, after one warm-up generation (the
workers' first message carries a full copy of the state, and their kernels load):

- time per generation in this process (the driver alone, all its threads) and on a local Ray
  cluster with 1 and 2 workers of 1 thread each (this machine has 2 cores: the driver shares them);
- bytes sent and received per generation (the pickled messages; Ray's own framing not counted);
- driver overhead: the generation's time minus the time the driver waited for workers (digest,
  messages, joining, the centre's evaluation and the update, done by the driver between waits);
- the per-member cost on one thread and the update's time, the inputs of the model of larger
  clusters (``bench/ray_model.py``).

    python bench/bench_ray.py [--sizes 1000,10000,100000] [--generations 6] [--json OUT]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numba

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import write_report  # noqa: E402

from genreg.distributed.cluster import Cluster, ClusterSpec  # noqa: E402
from genreg.distributed.es import MemberRecipe, RemoteMembers  # noqa: E402
from genreg.distributed.pool import RayPool  # noqa: E402
from genreg.runs.evolve import layout_for  # noqa: E402
from genreg.runs.scoring import EpisodeScorer  # noqa: E402
from genreg.strategies import make_strategy  # noqa: E402
from genreg.strategies.config import from_mapping  # noqa: E402
from genreg.tasks import load_task  # noqa: E402

CONFIGS = {  # name -> config keys (population is set per size)
    "mlp": dict(strategy="openai-es", hidden_sizes=[64], rank=1, samples_per_class=20),
    "conv": dict(strategy="openai-es", conv="c5x8-p2-c5x16-p2", hidden_sizes=[], activation="relu", rank=0,
                 samples_per_class=20),
}


class Generation:
    """One ES generation driven by hand, its members scored here (``remote=None``) or on workers."""

    def __init__(self, task, cfg, remote=None):
        self.task, self.cfg, self.remote = task, cfg, remote
        self.strategy = make_strategy(cfg.strategy)
        self.scorer = EpisodeScorer(task, cfg)
        self.state = self.strategy.init(layout_for(cfg, task), cfg)
        self.update_seconds = 0.0

    def __call__(self) -> None:
        g, state = self.state.generation, self.state
        members = self.strategy.ask(state, self.cfg)
        values = self.remote.score(state, members) if self.remote else self.scorer.members(members, g)
        evaluation = self.scorer.evaluation(values, g)
        evaluation.centre = self.scorer.centre(state.population, g)
        if self.remote:
            self.remote.scored(evaluation.direct_fitness())
        t0 = time.perf_counter()
        self.strategy.score(state, evaluation, self.cfg)
        self.state = self.strategy.breed(state, self.cfg)
        self.update_seconds += time.perf_counter() - t0


def timed(run: Generation, generations: int, pool=None) -> dict:
    """Medians over ``generations`` (after one warm-up) of a generation's seconds and of the part of it the
    driver did not spend waiting for workers; mean update seconds and bytes a generation."""
    run()  # warm-up: kernels load, workers get their full copy
    waited = [0.0]
    if pool is not None:
        wait = pool.wait

        def timed_wait(tickets):
            t0 = time.perf_counter()
            try:
                return wait(tickets)
            finally:
                waited[0] += time.perf_counter() - t0

        pool.wait = timed_wait
        sent0, received0 = pool.bytes_sent, pool.bytes_received
    run.update_seconds = 0.0
    times, driver = [], []
    for _ in range(generations):
        waited[0] = 0.0
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
        driver.append(times[-1] - waited[0])
    out = {"seconds": sorted(times)[generations // 2], "update_seconds": run.update_seconds / generations}
    if pool is not None:
        out.update(driver=sorted(driver)[generations // 2], sent=(pool.bytes_sent - sent0) / generations,
                   received=(pool.bytes_received - received0) / generations)
    return out


def measure(name: str, P: int, generations: int, data_dir) -> dict:
    cfg = from_mapping({**CONFIGS[name], "population": P, "validation_size": 10000})
    task = load_task("mnist", data_dir, seed=0, validation_size=cfg.validation_size)
    row = {"config": name, "population": P, "n_params": layout_for(cfg, task).n_params}
    row["in_process"] = timed(Generation(task, cfg), generations)
    threads = numba.get_num_threads()
    numba.set_num_threads(1)
    one = Generation(task, cfg)
    one()
    t0 = time.perf_counter()
    one.scorer.members(one.strategy.ask(one.state, cfg), one.state.generation)
    row["member_seconds_1_thread"] = (time.perf_counter() - t0) / P
    numba.set_num_threads(threads)
    for workers in (1, 2):
        with Cluster(ClusterSpec("auto", workers=workers)) as cluster:
            pool = RayPool(cluster, MemberRecipe(task, cfg), workers)
            try:
                row[f"ray_{workers}"] = timed(Generation(task, cfg, RemoteMembers(pool)), generations, pool)
            finally:
                pool.close()
    return row


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,10000,100000", help="MLP populations (comma-separated)")
    parser.add_argument("--conv-sizes", default="64", help="ConvNet populations ('' for none)")
    parser.add_argument("--generations", type=int, default=6)
    parser.add_argument("--data-dir", default=os.environ.get("GENREG_DATA"))
    parser.add_argument("--json", metavar="OUT")
    args = parser.parse_args(argv)
    jobs = [("mlp", int(p)) for p in args.sizes.split(",") if p] + [("conv", int(p)) for p in args.conv_sizes.split(",") if p]
    with Cluster(ClusterSpec("local", workers=2)):  # one local cluster (127.0.0.1) for every measurement
        rows = [measure(name, P, args.generations, args.data_dir) for name, P in jobs]
    print(f"\n{'network':<28} {'P':>8} {'here s/gen':>10} {'1 worker':>9} {'2 workers':>9} {'2w/here':>7} "
          f"{'sent B/gen':>11} {'recv B/gen':>11} {'driver s':>9} {'update s':>9} {'us/member':>9}")
    for r in rows:
        two = r["ray_2"]
        shape = "784-64-10 rank 1" if r["config"] == "mlp" else "ConvNet c5x8-p2-c5x16-p2-10"
        print(f"{shape:<28} {r['population']:>8,} {r['in_process']['seconds']:>10.3f} {r['ray_1']['seconds']:>9.3f} "
              f"{two['seconds']:>9.3f} {r['in_process']['seconds'] / two['seconds']:>7.2f} {two['sent']:>11,.0f} "
              f"{two['received']:>11,.0f} {two['driver']:>9.4f} {r['in_process']['update_seconds']:>9.4f} "
              f"{r['member_seconds_1_thread'] * 1e6:>9.1f}")
    print("(here: this process, all threads; 1/2 workers: Ray actors of 1 thread each on this 2-core machine; "
          "driver s: a generation's time not spent waiting for workers; n_params: "
          + ", ".join(f"{r['config']} {r['n_params']:,}" for r in rows[:1] + rows[-1:]) + ")")
    write_report(args.json, rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
