"""What limits an evolution-strategy generation: its scoring with parts switched off, and its update.

``bench_es.py`` times a whole generation; this asks where its time goes.  It copies genreg's kernels
into a temporary folder four times, each copy with ``kernels/es.py`` edited a little further, and
scores the same members with each copy, interleaved, in one process:

- ``full``: unchanged (compiled without Numba's cache, like the others);
- ``no softmax``: ``score_batch`` keeps the argmax and takes ``-z_label`` as a sample's loss (no
  exponentials, no logs);
- ``no noise``: besides, a worker draws its first block's noise only and reuses it;
- ``products only``: besides, no ``shared + sign * first`` for the first layer and no activation.

What ``products only`` still does is what any low-rank generation of this network has to do per
member: ``X @ A_0`` over the sparse tiles (per pair), the pair's first-layer term, each member's
``[h @ W_1, h @ A_1]`` product and the second layer's rank-1 term.  The edited copies give wrong
losses: only their times mean something.  The update (``Members.noise_sum`` with PGPE's squared-noise
term, today's code) is timed after them.  The differences between rows are the parts' costs.

    python bench/bench_es_parts.py [--population 1000000] [--activation relu|tanh] [--repeat 3]
"""

from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import environment  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SIZES = (784, 64, 10)

#: Each variant's edits of ``kernels/es.py`` (old text, new text), applied on top of the variants before it.
EDITS = {
    "full": [],
    "no softmax": [(
        "    n = n_classes * width\n",
        "    for s in range(width):  # edited: argmax, and -z_label as the loss\n"
        "        best[s] = 0\n"
        "    for c in range(1, n_classes):\n"
        "        for s in range(width):\n"
        "            best[s] = c if logits[c, s] > logits[best[s], s] else best[s]\n"
        "    for s in range(n_samples):\n"
        "        correct += best[s] == labels[s]\n"
        "        total -= np.float64(logits[labels[s], s])\n"
        "    return correct, total\n",
    )],
    "no noise": [
        ("    item = claim(queue)\n    while", "    drawn = False  # edited: the first block's noise only\n"
                                            "    item = claim(queue)\n    while"),
        ("            lowrank_noise(seed, generation, pair0",
         "            if not drawn:\n                lowrank_noise(seed, generation, pair0"),
        ("        for c in range(columns):\n            stacked[",
         "        drawn = True\n        for c in range(columns):\n            stacked["),
    ],
    "products only": [
        ("                    a_flat[k] = shared_flat[k] + sign * first_flat[k]\n", "                    pass\n"),
        ("                    activate_inplace(h_flat", "                    pass  # activate_inplace(h_flat"),
    ],
}


#: What each variant switches off, beyond the variant before it.
PARTS = {"no softmax": "the softmax's exponentials and logs", "no noise": "the scoring's noise",
         "products only": "the first layer's add and the activation"}


def edited_sources() -> dict[str, str]:
    """Variant -> the text of its ``es.py``; a clear error if an edit no longer finds its text once."""
    text = (ROOT / "kernels" / "es.py").read_text()
    out = {}
    for variant, edits in EDITS.items():
        for old, new in edits:
            if text.count(old) != 1:
                raise SystemExit(f"bench_es_parts: kernels/es.py changed; the {variant!r} edit does not find "
                                 f"{old.strip()[:40]!r} exactly once: update EDITS")
            text = text.replace(old, new)
        out[variant] = text
    return out


def load_variants(folder: Path) -> dict:
    """Variant -> its ``es`` module, each from its own copy of the kernels package in ``folder`` (no cache)."""
    modules = {}
    for i, (variant, text) in enumerate(edited_sources().items()):
        package = folder / f"genreg_parts_{i}"
        shutil.copytree(ROOT / "kernels", package, ignore=shutil.ignore_patterns("__pycache__"))
        config = package / "_config.py"
        config.write_text(config.read_text().replace("cache=True", "cache=False"))
        (package / "es.py").write_text(text)
        modules[variant] = package.name
    sys.path.insert(0, str(folder))
    try:
        return {variant: importlib.import_module(name + ".es") for variant, name in modules.items()}
    finally:
        sys.path.remove(str(folder))


def setup(P: int, activation: str, batch_size: int = 200):
    """(score(module, n) -> losses, members, weights for the update) for P rank-1 members of 784-64-10."""
    import numba

    from genreg.network.batch import SparseBatch
    from genreg.network.forward import genome_logits
    from genreg.network.layout import Layout
    from genreg.network.members import Members
    from genreg.strategies.config import Config
    from genreg.strategies.pgpe import PGPE
    from genreg.tasks import load_task

    task = load_task("mnist")
    batch = SparseBatch.from_dense(task.X_train[:batch_size])
    labels = np.ascontiguousarray(task.y_train[:batch_size], dtype=np.int32)
    layout = Layout(SIZES, activation)
    state = PGPE().init(layout, Config(strategy="pgpe", rank=1, population=P, activation=activation))
    members = Members(layout, state.population.W[0], state.sigma, 1, 0, 0, P)
    centre, shapes, rank, sigma, seed, generation, antithetic, offsets, n_noise = members._args()
    layer0 = Layout(layout.sizes[:2], layout.hidden_activation)
    shared = genome_logits(layer0, centre[: layer0.n_params], batch)

    def score(module, n: int = P) -> np.ndarray:
        n_correct, loss = np.zeros(n, np.int64), np.zeros(n)
        module.score_members(centre, layout.sizes_array(), shapes, layout.hidden_code, rank, sigma, seed, generation,
                             antithetic, offsets, n_noise, batch.tile_ptr, batch.rows, batch.values, shared, labels,
                             np.zeros((0, 1), np.float32), layout.n_outputs, n_correct, loss, numba.get_num_threads())
        return loss

    return score, members


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=1_000_000)
    parser.add_argument("--activation", choices=("relu", "tanh"), default="relu")
    parser.add_argument("--repeat", type=int, default=3, help="timed rounds (each scores with every variant)")
    args = parser.parse_args(argv)
    P = args.population
    print("environment:", environment())
    print(f"network {'-'.join(map(str, SIZES))} ({args.activation}), rank 1, P = {P:,}, batch 200 MNIST images")
    score, members = setup(P, args.activation)
    with tempfile.TemporaryDirectory() as folder:
        modules = load_variants(Path(folder))
        for module in modules.values():
            score(module, 256)  # compile
        times = {variant: [] for variant in modules}
        for _ in range(args.repeat):
            for variant, module in modules.items():
                t0 = time.perf_counter()
                score(module)
                times[variant].append(time.perf_counter() - t0)
    n_pairs = members.n_pairs
    weights = np.linspace(-0.5, 0.5, n_pairs)
    members.noise_sum(weights, weights)  # warm up
    update = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        members.noise_sum(weights, weights)
        update.append(time.perf_counter() - t0)
    print(f"{'scoring':<16} {'min s':>8} {'median s':>9}   the part switched off (min before - min after)")
    before = None
    for variant, ts in times.items():
        part = "" if before is None else f"{PARTS[variant]}: {before - min(ts):.3f} s"
        print(f"{variant:<16} {min(ts):8.3f} {np.median(ts):9.3f}   {part}")
        before = min(ts)
    print(f"{'update':<16} {min(update):8.3f} {np.median(update):9.3f}   (Members.noise_sum, today's code)")
    print(f"products only + update: {before + min(update):.2f} s a generation, with the softmax and the scoring's "
          f"noise free")
    return 0


if __name__ == "__main__":
    sys.exit(main())
