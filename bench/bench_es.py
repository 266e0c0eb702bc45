"""One evolution-strategy generation at populations of 10^3 .. 10^6: time, peak memory, GFLOP/s, NumPy ratio.

A generation is what ``genreg evolve --set strategy=pgpe --set rank=R`` does each step: score
every member of ``centre +/- sigma * eps`` (antithetic pairs, noise regenerated from keys, never
stored) on a shared batch of MNIST training images, then PGPE's update (the noise-weighted sums
and ClipUp).  Network 784-64-10, batch 200 images, rank 1 by default.

Each population size runs in a fresh subprocess, so its peak resident memory (``VmHWM``) is its
own; the table shows it next to the resident memory before the generation (imports, data,
compiled kernels).  In the same subprocess:

- the machine's SGEMM rate (NumPy's BLAS, 1024^3, all threads), for scale;
- GFLOP/s achieved: the multiply-adds the low-rank generation does (the shared first-layer
  product once, ``X @ A`` per pair, the rest per member, the update's factor products), x2;
- a NumPy reference where it fits (P <= 10^4): the same generation with dense perturbations,
  one member at a time (``W + sigma * eps`` drawn from a seeded Generator, ``tanh(X W0 + b0) W1 + b1``,
  cross-entropy), and the update as ``sum_j w_j eps_j`` regenerated from the same seeds.  The ratio
  is NumPy's time over genreg's at equal P (genreg at rank R; NumPy full rank, which is what a
  NumPy user would write).

Peers (EvoTorch's PGPE/SNES) need PyTorch, which genreg never installs: their column says
"not installed" unless ``evotorch`` imports.

With ``--against REV`` each size also scores the same members with ``kernels/es.py`` as it was at
git revision REV (loaded beside today's in the same subprocess) and prints both scoring times,
interleaved, and their ratio: the side-by-side check of a change to the scoring kernel. It also
sums PGPE's update (``Members.noise_sum`` with the squared-noise term) with
``genreg/network/members.py`` as it was at REV, interleaved with today's, and checks the bits.

    python bench/bench_es.py [--sizes 1000,10000,100000,1000000] [--rank 1] [--batch 200] [--activation tanh|relu]
                             [--json OUT]
                             [--against REV]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import environment  # noqa: E402

SIZES = (784, 64, 10)


def _rss(field: str) -> int:
    """This process's ``VmRSS`` or ``VmHWM`` in bytes (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def sgemm_gflops() -> float:
    a = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    a @ a
    best = min(_timed(lambda: a @ a) for _ in range(5))
    return 2 * 1024 ** 3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def generation_flops(batch, P: int, rank: int) -> float:
    """Floating-point operations of one generation (multiply-adds x 2): at rank 0 every member's whole
    forward pass and the update's sum over every parameter; at rank r the low-rank work."""
    nnz = int((batch.values != 0).sum())
    n = SIZES
    pairs = P // 2
    if rank == 0:
        n_params = sum(n[l] * n[l + 1] + n[l + 1] for l in range(len(n) - 1))
        per_member = nnz * n[1] + batch.n_samples * sum(n[l] * n[l + 1] for l in range(1, len(n) - 1))
        return 2.0 * (P * per_member + pairs * n_params)
    shared = nnz * n[1]
    per_pair = nnz * rank + sum(n[l] * n[l + 1] * rank for l in range(len(n) - 1))  # X @ A_0; the update
    per_member = batch.n_samples * (rank * n[1] + sum(n[l] * n[l + 1] + rank * (n[l] + n[l + 1])
                                                      for l in range(1, len(n) - 1)))
    return 2.0 * (shared + pairs * per_pair + P * per_member)


HIDDEN = {"tanh": np.tanh, "relu": lambda z: np.maximum(z, 0.0)}


def numpy_generation(X, y, centre, sigma, P, seed, activation="tanh"):
    """The same generation in plain NumPy: dense perturbations, one member at a time; the update regenerates them."""
    n = SIZES
    splits = np.cumsum([n[0] * n[1], n[1], n[1] * n[2]])
    losses = np.empty(P)
    for j in range(P // 2):
        eps = np.random.default_rng([seed, j]).standard_normal(centre.shape[0], dtype=np.float32)
        for side, sign in enumerate((1.0, -1.0)):
            w = centre + np.float32(sign * sigma) * eps
            W0, b0, W1, b1 = np.split(w, splits)
            z = HIDDEN[activation](X @ W0.reshape(n[0], n[1]) + b0) @ W1.reshape(n[1], n[2]) + b1
            z = z - z.max(axis=1, keepdims=True)
            losses[2 * j + side] = float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))
    ranks = np.argsort(np.argsort(-losses)) / (P - 1) - 0.5
    weights = ranks[0::2] - ranks[1::2]
    grad = np.zeros(centre.shape[0], np.float32)
    for j in range(P // 2):
        grad += np.float32(weights[j]) * np.random.default_rng([seed, j]).standard_normal(centre.shape[0], np.float32)
    return grad


def module_at(rev: str, path: str, name: str):
    """The module at ``path`` (from the repository root) as it was at git revision ``rev``, imported
    beside today's as ``name`` (absolute imports resolve to today's package)."""
    import importlib.util
    import tempfile

    source = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True, check=True,
                            cwd=Path(__file__).resolve().parent.parent).stdout
    folder = Path(tempfile.mkdtemp(prefix="genreg-then-"))
    file = folder / (name.rsplit(".", 1)[-1] + ".py")
    file.write_text(source)
    spec = importlib.util.spec_from_file_location(name, file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def kernels_at(rev: str):
    """``genreg.kernels.es`` as it was at git revision ``rev``, imported beside today's (same package)."""
    return module_at(rev, "kernels/es.py", "genreg.kernels.es_then")


def update_side_by_side(members, rev: str, repeats: int) -> dict:
    """PGPE's update sums (``noise_sum`` with its squared-noise term) of ``members`` with today's
    ``genreg.network.members`` and with the one at git revision ``rev``, alternating, ``repeats`` times
    each after a warm-up: median seconds of each, the ratio, and whether the bits agree."""
    then = module_at(rev, "genreg/network/members.py", "genreg.network.members_then")
    old = then.Members(*(getattr(members, f.name) for f in dataclasses.fields(members)))
    rng = np.random.default_rng(0)
    w, v = rng.standard_normal(members.n_pairs), rng.standard_normal(members.n_pairs)
    a, b = members.noise_sum(w, v), old.noise_sum(w, v)
    same = a[0].tobytes() == b[0].tobytes() and a[1].tobytes() == b[1].tobytes()
    times = {"now": [], "then": []}
    for _ in range(repeats):
        for name, m in (("then", old), ("now", members)):
            times[name].append(_timed(lambda: m.noise_sum(w, v)))
    t_now, t_then = float(np.median(times["now"])), float(np.median(times["then"]))
    return {"update_now": t_now, "update_then": t_then, "update_ratio": t_then / t_now, "update_same_bits": bool(same)}


def score_side_by_side(members, batch, labels, then, repeats: int) -> dict:
    """Score ``members`` with today's kernel and ``then``'s (a module with the same ``score_members``),
    alternating, ``repeats`` times each after a warm-up: median seconds of each and the ratio."""
    import numba

    from genreg.kernels import es as now
    from genreg.network.forward import genome_logits
    from genreg.network.layout import Layout

    centre, shapes, rank, sigma, seed, generation, antithetic, offsets, n_noise = members._args()
    layout = members.layout
    layer0 = Layout(layout.sizes[:2], layout.hidden_activation)
    shared = genome_logits(layer0, centre[: layer0.n_params], batch)
    labels = np.ascontiguousarray(labels, dtype=np.int32)

    def run(module):
        n_correct, loss = np.zeros(members.size, np.int64), np.zeros(members.size)
        module.score_members(centre, layout.sizes_array(), shapes, layout.hidden_code, rank, sigma, seed, generation,
                             antithetic, offsets, n_noise, batch.tile_ptr, batch.rows, batch.values, shared, labels,
                             np.zeros((0, 1), np.float32), layout.n_outputs, n_correct, loss, numba.get_num_threads())
        return loss

    same = np.array_equal(run(now).view(np.int64), run(then).view(np.int64))
    times = {"now": [], "then": []}
    for _ in range(repeats):
        for name, module in (("then", then), ("now", now)):
            times[name].append(_timed(lambda: run(module)))
    t_now, t_then = float(np.median(times["now"])), float(np.median(times["then"]))
    return {"score_now": t_now, "score_then": t_then, "score_ratio": t_then / t_now, "same_bits": bool(same)}


def child(P: int, rank: int, batch_size: int, reference: bool, against: str | None = None,
          activation: str = "tanh") -> dict:
    """Run in a subprocess: one size's timings and memory."""
    from genreg.network.batch import SparseBatch
    from genreg.network.layout import Layout
    from genreg.network.members import Members
    from genreg.strategies.config import Config
    from genreg.strategies.es_base import ESState
    from genreg.strategies.pgpe import PGPE
    from genreg.network.population import Population
    from genreg.tasks import load_task

    task = load_task("mnist")
    X8, y = task.X_train[:batch_size], task.y_train[:batch_size]
    batch = SparseBatch.from_dense(X8)
    layout = Layout(SIZES, activation)
    cfg = Config(strategy="pgpe", rank=rank, population=P, activation=activation)
    strategy = PGPE()
    state = strategy.init(layout, cfg)

    def generation(state, P):
        members = Members(layout, state.population.W[0], state.sigma, rank, 0, state.generation, P)
        _, loss = members.score(batch, labels=y)
        state.fitness = -loss
        return strategy.breed(state, cfg.replace(population=P))

    small = ESState(state.population, 0, 0, state.sigma, strategy.new_moments(layout))
    generation(small, 64)  # compile / load the kernels
    rss_before = _rss("VmRSS")
    repeats = 3 if P <= 100_000 else 1
    times = []
    for g in range(repeats):
        t0 = time.perf_counter()
        state = generation(state, P)
        times.append(time.perf_counter() - t0)
    seconds = float(np.median(times))
    out = {"P": P, "rank": rank, "batch": batch_size, "seconds": seconds, "us_per_member": seconds / P * 1e6,
           "gflops": generation_flops(batch, P, rank) / seconds / 1e9, "rss_before": rss_before,
           "peak_rss": _rss("VmHWM"), "sgemm_gflops": sgemm_gflops()}
    if against:
        members = Members(layout, state.population.W[0], state.sigma, rank, 0, state.generation, P)
        out.update(score_side_by_side(members, batch, y, kernels_at(against), repeats))
        out.update(update_side_by_side(members, against, max(repeats, 3)))
    if reference:
        X = task.X_train[:batch_size].astype(np.float32) / 255
        centre = state.population.W[0].copy()
        numpy_generation(X, y, centre, 0.02, 8, 0, activation)
        t = [_timed(lambda: numpy_generation(X, y, centre, 0.02, P, 1, activation))
             for _ in range(1 if P > 1000 else 3)]
        out["numpy_seconds"] = float(np.median(t))
        out["ratio"] = out["numpy_seconds"] / seconds
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,100000,1000000")
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--activation", choices=sorted(HIDDEN), default="tanh", help="hidden activation (default tanh)")
    parser.add_argument("--numpy-max", type=int, default=10_000, help="largest P the NumPy reference runs at")
    parser.add_argument("--json")
    parser.add_argument("--against", metavar="REV",
                        help="also score with kernels/es.py, and sum the update with genreg/network/members.py, "
                             "of git revision REV")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.rank, args.batch, args.child <= args.numpy_max, args.against,
                               args.activation)))
        return 0
    try:
        import evotorch  # noqa: F401

        peers = "installed (not timed here)"
    except ImportError:
        peers = "not installed (EvoTorch needs PyTorch; genreg never installs it)"
    print("environment:", environment())
    print(f"network {'-'.join(map(str, SIZES))} ({args.activation}), batch {args.batch} MNIST training images, PGPE, rank {args.rank}; "
          f"EvoTorch: {peers}")
    rows = []
    header = (f"{'P':>9} {'s/gen':>8} {'us/member':>10} {'GFLOP/s':>8} {'SGEMM GFLOP/s':>14} {'RSS before':>11} "
              f"{'peak RSS':>9} {'NumPy s':>8} {'ratio':>7}")
    print(header)
    for P in (int(s) for s in args.sizes.split(",")):
        proc = subprocess.run([sys.executable, __file__, "--child", str(P), "--rank", str(args.rank), "--batch",
                               str(args.batch), "--numpy-max", str(args.numpy_max), "--activation", args.activation,
                               *(["--against", args.against] if args.against else [])],
                              capture_output=True, text=True)
        if proc.returncode:
            print(proc.stderr[-2000:])
            return proc.returncode
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append(r)
        numpy = f"{r['numpy_seconds']:8.2f} {r['ratio']:6.1f}x" if "ratio" in r else f"{'-':>8} {'-':>7}"
        print(f"{P:>9} {r['seconds']:8.3f} {r['us_per_member']:10.2f} {r['gflops']:8.1f} {r['sgemm_gflops']:14.1f} "
              f"{r['rss_before'] / 2**20:9.0f}MB {r['peak_rss'] / 2**20:7.0f}MB {numpy}", flush=True)
        if "score_ratio" in r:
            print(f"{'':>9} scoring: {r['score_now']:.3f} s now, {r['score_then']:.3f} s at {args.against}: "
                  f"{r['score_ratio']:.2f}x ({'same' if r['same_bits'] else 'DIFFERENT'} bits)", flush=True)
            print(f"{'':>9} update:  {r['update_now']:.3f} s now, {r['update_then']:.3f} s at {args.against}: "
                  f"{r['update_ratio']:.2f}x ({'same' if r['update_same_bits'] else 'DIFFERENT'} bits)", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment(), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
