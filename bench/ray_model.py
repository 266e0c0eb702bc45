"""A model of an evolution strategy's (and an island model's) throughput on 8, 64 and 512 machines.

It takes what ``bench/bench_ray.py --json`` measured on this machine (cost of one member on one
thread, the update's time, the driver's per-generation overhead) and the message sizes of
``genreg.distributed.es``, and assumes machines of ``--cores`` cores (one worker each, running
that many threads with perfect scaling: an upper bound), links of ``--gbit`` Gbit/s and
``--latency`` ms per message.  A generation on N machines takes

    update:   u(P)                                        each worker brings its replica forward first
    members:  P * c / (N * cores)                        then scores its share of the members
    driver:   d(P) + N * (8 P + 16 P / N) / bandwidth     then the driver: its own update, the centre,
                     + N * latency                        digests, and every worker's message (the last
                                                          fitness, 8 P bytes, out; values back)

so the replicated update (twice on the critical path: on the workers, then on the driver) and the
driver's link (the fitness vector sent to every worker) are the serial parts.  u and d are taken
per member from this machine's 2 threads: the update's noise regeneration runs on every thread
of a machine, its low-rank sums on one (for the same bits at any thread count).  For the island model each island sends ``migrants * n_params * 4`` bytes every
``migration_every`` generations.  A model, not a measurement: no real cluster was available.

The update and the driver's own work are fitted as ``a + b P`` over the populations measured (a
constant where only one was): the driver's fixed part is mostly the centre's evaluation.

    python bench/ray_model.py bench_ray.json [--cores 32] [--gbit 10] [--latency 0.2]
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def generation_seconds(P: int, c: float, u: float, d: float, N: int, cores: int, bandwidth: float,
                       latency: float) -> dict:
    members = P * c / (N * cores)
    link = N * (8 * P + 16 * P / N) / bandwidth + N * latency
    return {"members": members, "update": u, "driver": d + link, "total": members + u + d + link}


def fit(P: list, seconds: list) -> tuple[float, float]:
    """``(a, b)`` of ``seconds = a + b P`` by least squares (a constant when only one size was measured)."""
    if len(P) == 1:
        return float(seconds[0]), 0.0
    b, a = np.polyfit(np.asarray(P, float), np.asarray(seconds, float), 1)
    return max(0.0, float(a)), max(0.0, float(b))


POPULATIONS = {"mlp": (10_000, 1_000_000, 10_000_000), "conv": (1_000, 10_000, 100_000)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("measured", help="the JSON bench/bench_ray.py --json wrote")
    parser.add_argument("--cores", type=int, default=32, help="cores per machine (default 32)")
    parser.add_argument("--gbit", type=float, default=10.0, help="link speed in Gbit/s (default 10)")
    parser.add_argument("--latency", type=float, default=0.2, help="ms per message (default 0.2)")
    parser.add_argument("--migrants", type=int, default=2)
    parser.add_argument("--migration-every", type=int, default=10)
    args = parser.parse_args(argv)
    rows = json.load(open(args.measured))["results"]
    bandwidth, latency = args.gbit * 1e9 / 8, args.latency / 1e3
    for config in dict.fromkeys(r["config"] for r in rows):
        mine = [r for r in rows if r["config"] == config]
        P = [r["population"] for r in mine]
        c = float(np.mean([r["member_seconds_1_thread"] for r in mine]))
        u = fit(P, [r["in_process"]["update_seconds"] for r in mine])
        d = fit(P, [r["ray_2"]["driver"] for r in mine])
        print(f"\n{config} ({mine[0]['n_params']:,} parameters), measured at P = {', '.join(f'{p:,}' for p in P)}: "
              f"{c * 1e6:.1f} us a member on 1 thread; update {u[0] * 1e3:.1f} ms + {u[1] * 1e6:.2f} us a member; "
              f"driver {d[0] * 1e3:.1f} ms + {d[1] * 1e6:.2f} us a member")
        print(f"{'P':>11} {'machines':>8} {'members s':>10} {'update s':>9} {'driver s':>9} {'gen/s':>8} "
              f"{'members/s':>12} {'bound by':>9}")
        for pop in POPULATIONS.get(config, (10_000,)):
            for N in (8, 64, 512):
                t = generation_seconds(pop, c, u[0] + u[1] * pop, d[0] + d[1] * pop, N, args.cores, bandwidth,
                                       latency)
                bound = max(("members", "update", "driver"), key=t.get)
                print(f"{pop:>11,} {N:>8} {t['members']:>10.4f} {t['update']:>9.4f} {t['driver']:>9.4f} "
                      f"{1 / t['total']:>8.2f} {pop / t['total']:>12,.0f} {bound:>9}")
        migration = args.migrants * mine[0]["n_params"] * 4
        print(f"island model: {migration:,} bytes per island per migration, {migration / args.migration_every:,.0f} "
              f"a generation ({args.migrants} migrants every {args.migration_every} generations)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
