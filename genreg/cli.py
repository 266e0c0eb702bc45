"""The ``genreg`` command: subcommands, each with ``--help``."""

from __future__ import annotations

import argparse
import json
import sys
import time

from . import __version__
from .errors import GenregError


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="D",
        help="directory with the four MNIST IDX files, gzip-compressed or not "
        "(default: $GENREG_DATA/mnist, else ~/.cache/genreg/mnist, downloading if missing)",
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from .data import load_mnist
    from .evaluate import evaluate_checkpoint, format_report

    t0 = time.perf_counter()
    mnist = load_mnist(args.data_dir)
    report = evaluate_checkpoint(args.checkpoint, mnist.test_images, mnist.test_labels, n_classes=10)
    report["total_seconds"] = time.perf_counter() - t0
    report["dataset"] = {"name": "MNIST test", "source": str(mnist.source), "n_images": int(mnist.test_labels.shape[0])}
    print(format_report(report, "test set"))
    print(f"total      : {report['total_seconds']:.2f} s including loading MNIST")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(report, fh, indent=2)
        print(f"wrote {args.json}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="genreg",
        description="Gradient-free neuroevolution of neural networks (trust-based evolution, classic GA).",
    )
    parser.add_argument("--version", action="version", version=f"genreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "eval",
        help="evaluate a pickled genome checkpoint on the 10,000-image MNIST test set",
        description="Evaluate a genome checkpoint (genreg's own format or GENREG's published "
        "format) on the official 10,000-image MNIST test set: overall accuracy, per-digit "
        "accuracy, confusion matrix and time taken. Pickles are opened with a restricted "
        "unpickler that admits plain data only.",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="path of the .pkl genome checkpoint")
    _add_data_dir(p)
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    p.set_defaults(func=cmd_eval)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except GenregError as exc:
        print(f"genreg: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
