"""Evolution strategies on a ConvNet at rank 1: the shared first convolution against building every member.

One generation's scoring of ``P`` members (antithetic pairs, rank-1 noise, sigma 0.04) of a ConvNet
on one shared batch of real MNIST training images, as ``genreg evolve --set strategy=openai-es
--set rank=1 --set conv=...`` does each step (the update, the same both ways, is not timed):

- genreg: ``Members.score`` (``kernels/conv_es.py``): the centre's first convolution once per batch,
  each pair's low-rank term ``(patches @ Bt) @ A^T`` added with its sign, then the member's own
  later stages and dense layers;
- reference: the same members built (``Members.build``) and run whole through the population forward
  pass (``population_logits``, ``kernels/conv.py``), the path rank 0 takes (``Members._score_built``
  with ``share=False``), in the same process.

Both are checked to agree (losses to 1e-5 relative).  Printed per shape: time per generation both
ways (median, ``harness.compare``: warmed up past compilation, 3 rounds) and the ratio; the first
convolution's share of the multiply-adds per image.

    GENREG_DATA=/work/shared/data python bench/bench_conv_es.py [--population 64] [--batch 1024] [--json OUT]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import compare, environment, write_report  # noqa: E402

from genreg.network.batch import SparseBatch  # noqa: E402
from genreg.network.layout import Layout  # noqa: E402
from genreg.network.members import Members  # noqa: E402
from genreg.network.population import Population  # noqa: E402
from genreg.tasks import load_mnist  # noqa: E402

SHAPES = ("28x28x1-c3x8-p2-c3x16-p2-10", "28x28x1-c5x8-p2-c5x16-p2-10")  # 3x3 and 5x5 filters


def first_share(layout: Layout) -> tuple[int, int]:
    """(multiply-adds of the first convolution, of the whole forward pass) per image."""
    convs = [cl.out_shape[0] * cl.out_shape[1] * cl.out_shape[2] * cl.fan_in for cl in layout.conv_layers
             if cl.is_conv]
    dense = sum(a * b for a, b in zip(layout.sizes[:-1], layout.sizes[1:]))
    return convs[0], sum(convs) + dense


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", help="directory with the MNIST IDX files (default: $GENREG_DATA/mnist)")
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--rank", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3, help="calls per timing block (3 rounds of blocks)")
    parser.add_argument("--shapes", default=",".join(SHAPES))
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)

    mnist = load_mnist(args.data_dir)
    P, B = args.population, args.batch
    images, labels = mnist.train_images[:B].reshape(B, -1), mnist.train_labels[:B].astype(np.int64)
    batch = SparseBatch.from_dense(images)
    print("environment:", environment())
    results, rows = [], []
    for shape in args.shapes.split(","):
        layout = Layout.parse(shape, "relu")
        centre = Population.random(layout, 1, seed=1).W[0]
        m = Members(layout, centre, np.full(len(layout.tensors), 0.04), args.rank, 0, 0, P, True)

        def candidate(m=m):
            return m.score(batch, labels)

        def reference(m=m):
            return m._score_built(batch, labels, None, None, 0, P, share=False)

        (c_correct, c_loss), (r_correct, r_loss) = candidate(), reference()
        np.testing.assert_allclose(c_loss, r_loss, rtol=1e-5)
        print(f"\n{shape} (relu, {layout.n_params:,} parameters), P={P} x B={B} MNIST images, rank {args.rank}: "
              f"losses agree to {np.abs(c_loss / r_loss - 1).max():.1e}, correct counts differ by at most "
              f"{np.abs(c_correct - r_correct).max()}")
        r = compare(f"{shape}, P={P} x B={B}, rank {args.rank}: one generation's scoring", candidate,
                    {"build + forward": reference}, warmup=1, repeat=args.repeat)
        first, total = first_share(layout)
        t = {x["name"]: x["median_s"] for x in r["timings"]}
        r.update(shape=shape, first_conv_macs=first, forward_macs=total)
        results.append(r)
        rows.append((shape, t["genreg"], t["build + forward"], r["ratio"], first / total))
    print(f"\n{'shape':<30} {'shared (s)':>10} {'build+fwd (s)':>13} {'ratio':>6}  first conv share of MACs")
    for shape, a, b, ratio, share in rows:
        print(f"{shape:<30} {a:>10.3f} {b:>13.3f} {ratio:>5.2f}x  {share:.0%}")
    write_report(args.json, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
