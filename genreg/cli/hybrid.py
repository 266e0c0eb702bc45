"""``genreg hybrid`` and ``genreg attack``: argument parsing and command logic for hybrid runs."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def _data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="D",
                        help="data root (holding mnist/, wine-quality/, ...) or the folder of the MNIST IDX files "
                        "(default: $GENREG_DATA, else ~/.cache/genreg, downloading MNIST if missing)")


def cmd_hybrid(args: argparse.Namespace) -> int:
    from genreg.config import load_toml, parse_overrides
    from genreg.errors import ConfigError
    from genreg.hybrid.config import from_mapping
    from genreg.hybrid.run import resume_hybrid, start_hybrid

    overrides = parse_overrides(args.set)
    if args.generations is not None:
        overrides["generations"] = args.generations
    t0 = time.perf_counter()
    if args.resume:
        if args.config or args.seed is not None or args.out or args.task or args.target:
            raise ConfigError("--resume continues a run with its saved config: it takes --set, --generations, "
                              "--data-dir and --no-progress, not --config, --seed, --task, --target or --out")
        run_dir = Path(args.resume)
        result = resume_hybrid(run_dir, overrides, args.data_dir, progress=not args.no_progress)
    else:
        mapping = load_toml(args.config) if args.config else {}
        mapping.update(overrides)
        for key in ("seed", "task", "target"):
            if getattr(args, key) is not None:
                mapping[key] = getattr(args, key)
        cfg = from_mapping(mapping)
        task = "" if cfg.task == "mnist" else Path(cfg.task.partition(":")[2] or cfg.task).stem + "-"
        run_dir = Path(args.out) if args.out else Path("runs") / (
            f"hybrid-{task}{cfg.architecture.replace('|', '_')}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
        print(f"run directory: {run_dir}")
        result = start_hybrid(cfg, run_dir, args.data_dir, progress=not args.no_progress)
    return report_hybrid(result, run_dir, t0)


def report_hybrid(result: dict, run_dir, t0: float) -> int:
    """Print a hybrid run's final table (or where it stopped)."""
    from genreg.hybrid.run import format_result

    if "stopped_at" in result:
        print(f"stopped after generation {result['stopped_at']}; continue with: genreg resume {run_dir}")
        return 0
    print(format_result(result))
    print(f"total {time.perf_counter() - t0:.1f} s (population {result['population_seconds']:.1f} s); "
          f"wrote {Path(run_dir) / 'result.json'}")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    from genreg.hybrid.attacks import format_transfer, run_attacks

    report, written = run_attacks(args.run_dir, epsilon=args.epsilon, method=args.method, steps=args.steps,
                                  n_images=args.images, n_children=args.children, data_dir=args.data_dir,
                                  out_dir=args.out)
    print(format_transfer(report))
    for path in written:
        print(f"wrote {path}")
    return 0


def add_hybrid_commands(sub) -> None:
    """Register ``hybrid`` and ``attack`` on the ``genreg`` sub-parser collection."""
    from genreg.hybrid.config import describe_keys

    p = sub.add_parser(
        "hybrid",
        help="train a population of MLPs by SGD between genetic recombinations (hybrid GA + SGD)",
        description="Hybrid mode: each generation, children get every gene (layer, parallel block, or block of "
        "input rows) whole from one of two parents drawn from the best half, 10% fresh random networks join, "
        "every network trains E epochs of SGD, the best P by validation accuracy (or MSE, on a regression --task) "
        "survive. Writes a run directory "
        "(config, metrics.csv, HDF5 checkpoints, per-gene similarity matrices) and, at the end, the test "
        "accuracy of the best network next to a baseline trained alone for the same epochs. "
        "Ctrl-C checkpoints and exits; continue with --resume RUN_DIR.",
        epilog="config keys (defaults reproduce the reference study's protocol):\n" + describe_keys(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (flat, see below)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key (repeatable), e.g. --set architecture=vertical")
    p.add_argument("--seed", type=int, help="random seed (same as --set seed=S)")
    p.add_argument("--task", metavar="SPEC", help="what to learn (default mnist): fashion-mnist, wine, wine-white, "
                   "boston, trig, csv:FILE (with --target), npz:FILE")
    p.add_argument("--target", metavar="COLUMN", help="the column to predict of a csv: task")
    p.add_argument("--generations", type=int, metavar="N", help="generations in total")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/hybrid-<architecture>-seed<S>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue RUN_DIR from its newest checkpoint (with --set / --generations changes; "
                   "architecture and activation may not change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    _data_dir(p)
    p.set_defaults(func=cmd_hybrid)

    p = sub.add_parser(
        "attack",
        help="adversarial-transfer analysis of a hybrid run on images (FGSM / PGD)",
        description="Craft adversarial test images (FGSM, or PGD with --steps) on members of a hybrid run's final "
        "population and measure: (a) each model under attacks crafted on itself, (b) every other member under "
        "an attack crafted on one member, (c) fresh children of the final population under an attack crafted "
        "on another child. The images are the test images of the run's task (mnist or fashion-mnist). Prints a table; "
        "writes attack.json and source x target heat-maps (PNG).",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--epsilon", type=float, default=0.05, help="L-infinity budget in pixel units of [0, 1] (default 0.05)")
    p.add_argument("--method", choices=("fgsm", "pgd"), default="fgsm", help="attack (default fgsm)")
    p.add_argument("--steps", type=int, default=10, help="PGD steps (default 10; step size 2.5 * epsilon / steps)")
    p.add_argument("--images", type=int, default=1000, help="test images attacked (the first N; default 1000)")
    p.add_argument("--children", type=int, default=0,
                   help="fresh children bred from the final population (default: the population size)")
    p.add_argument("--out", metavar="DIR", help="where to write attack.json and the PNGs (default: RUN_DIR)")
    _data_dir(p)
    p.set_defaults(func=cmd_attack)
