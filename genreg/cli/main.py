"""The ``genreg`` command: subcommands, each with ``--help``."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genreg import __version__
from genreg.errors import GenregError, RunInterrupted


def _add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data-dir",
        metavar="D",
        help="directory with the four MNIST IDX files, gzip-compressed or not "
        "(default: $GENREG_DATA/mnist, else ~/.cache/genreg/mnist, downloading if missing)",
    )


def cmd_eval(args: argparse.Namespace) -> int:
    from genreg.api import as_task
    from genreg.genome.evaluate import evaluate_checkpoint, format_report, write_report

    t0 = time.perf_counter()
    task = as_task(args.task, args.data_dir, target=args.target)
    if not task.is_classification:
        return _eval_regression(args, task, t0)
    report = evaluate_checkpoint(args.checkpoint, task.X_test, task.y_test, n_classes=task.n_outputs)
    report["total_seconds"] = time.perf_counter() - t0
    report["dataset"] = {"name": f"{task.name} test", "source": str(task.source), "n_images": int(task.y_test.shape[0])}
    print(format_report(report, f"{task.name} test set"))
    print(f"total      : {report['total_seconds']:.2f} s including loading {task.name}")
    if args.json:
        write_report(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _eval_regression(args: argparse.Namespace, task, t0: float) -> int:
    """``genreg eval`` of a regression genome: mean squared and absolute error on the test split, in the data's units."""
    from genreg.api import Genome
    from genreg.errors import CheckpointError
    from genreg.genome.evaluate import write_report

    genome = Genome.load(args.checkpoint)
    if genome.layout.n_inputs != task.n_inputs or genome.layout.n_outputs < task.n_outputs:
        raise CheckpointError(f"the genome is {genome.layout.describe()} but task {task.name} has {task.n_inputs} "
                              f"inputs and {task.n_outputs} output(s)")
    report = {"checkpoint": str(args.checkpoint), "task": task.name, **genome.evaluate(task),
              "total_seconds": time.perf_counter() - t0}
    print(f"{task.name} test set ({report['n']} rows): mean squared error {report['mse']:.6g}, "
          f"mean absolute error {report['mae']:.6g} (in the data's units)")
    if args.json:
        write_report(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _add_task(parser: argparse.ArgumentParser, default: str | None) -> None:
    parser.add_argument("--task", metavar="T", default=default,
                        help="the problem: mnist, fashion-mnist, wine, wine-white, boston, trig, csv:FILE "
                        "(with --target COL) or npz:FILE" + (f" (default: {default})" if default else
                                                              " (default: the config's task, mnist)"))
    parser.add_argument("--target", metavar="COL", help="csv tasks: the name of the target column")


def _config_args(parser: argparse.ArgumentParser, fresh: bool) -> None:
    if fresh:
        parser.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (flat, see below)")
        parser.add_argument("--seed", type=int, help="random seed (same as --set seed=S)")
        parser.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/<strategy>-seed<S>-<time>)")
        _add_task(parser, None)
    parser.add_argument("--generations", type=int, metavar="N", help="generations in total")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override one config key (repeatable), e.g. --set population=300")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    _add_data_dir(parser)


def cmd_evolve(args: argparse.Namespace) -> int:
    from pathlib import Path

    from genreg.config import load_toml, parse_overrides
    from genreg.runs.evolve import start_run
    from genreg.strategies.config import from_mapping

    mapping = load_toml(args.config) if args.config else {}
    mapping.update(parse_overrides(args.set))
    for key in ("seed", "generations", "task", "target"):
        if getattr(args, key) is not None:
            mapping[key] = getattr(args, key)
    cfg = from_mapping(mapping)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.strategy}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    from genreg.api import as_task

    task = as_task(cfg.task, args.data_dir, seed=cfg.seed, validation_size=cfg.validation_size,
                   target=cfg.target or None) if cfg.task not in ("mnist", "fashion-mnist") else None
    if task is not None:
        print(f"task {task.describe()}")
    print(f"run directory: {out}")
    t0 = time.perf_counter()
    state = start_run(cfg, out, args.data_dir, progress=not args.no_progress, task=task)
    name = task.name if task is not None else cfg.task
    best = out / f"best_genome_{name}_gen{state.generation:05d}.pkl"
    print(f"{state.generation} generation{'s' if state.generation != 1 else ''} in {time.perf_counter() - t0:.1f} s"
          + (f"; best genome: {best}" if best.exists() else " (no genome evaluated yet)"))
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from genreg.config import parse_overrides
    from genreg.runs.rundir import run_kind

    overrides = parse_overrides(args.set)
    if args.generations is not None:
        overrides["generations"] = args.generations
    kind = run_kind(args.run_dir)
    t0 = time.perf_counter()
    if kind == "hybrid":
        from genreg.cli.hybrid import report_hybrid
        from genreg.hybrid.run import resume_hybrid

        result = resume_hybrid(args.run_dir, overrides, args.data_dir, progress=not args.no_progress)
        return report_hybrid(result, args.run_dir, t0)
    if kind == "hpo":
        from genreg.cli.hpo import _report
        from genreg.hpo.search import resume_hpo

        result = resume_hpo(args.run_dir, overrides, args.data_dir, progress=not args.no_progress)
        return _report(result, Path(args.run_dir))
    from genreg.runs.evolve import resume_run

    state = resume_run(args.run_dir, overrides, args.data_dir, progress=not args.no_progress)
    print(f"at generation {state.generation} after {time.perf_counter() - t0:.1f} s")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from genreg.plots.hybrid import plot_hybrid_run
    from genreg.hybrid.run import is_hybrid_run
    from genreg.plots.run import plot_run
    from genreg.plots.hpo import is_hpo_run, plot_hpo_run

    if is_hybrid_run(args.run_dir):
        def plot(run_dir, out):
            return plot_hybrid_run(run_dir, out, generations=args.generations)
    elif is_hpo_run(args.run_dir):
        plot = plot_hpo_run
    else:
        plot = plot_run
    for path in plot(args.run_dir, args.out):
        print(f"wrote {path}")
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
    _add_task(p, "mnist")
    _add_data_dir(p)
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")
    p.set_defaults(func=cmd_eval)

    from genreg.strategies.config import describe_keys

    keys_help = "config keys (defaults reproduce the published GENREG protocol):\n" + describe_keys()
    p = sub.add_parser(
        "evolve",
        help="evolve a population of networks without gradients (MNIST, or any --task)",
        description="Evolve a population of networks (inputs and outputs from the task, hidden_sizes between) "
        "by trust-decay selection (strategy=genreg) or a classic GA (strategy=ga), on MNIST or any --task: "
        "fashion-mnist, wine, wine-white, boston, trig, csv:FILE --target COL, npz:FILE. Writes a run directory "
        "with the resolved config, metrics, HDF5 checkpoints and best-genome pickles. Ctrl-C checkpoints and "
        "exits (status 130); `genreg resume RUN_DIR` continues.",
        epilog=keys_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _config_args(p, fresh=True)
    p.set_defaults(func=cmd_evolve)

    p = sub.add_parser(
        "resume",
        help="continue any run (evolution, hybrid or search) from its last checkpoint",
        description="Continue RUN_DIR from its newest loadable checkpoint up to --generations in total; the kind "
        "of run is read from RUN_DIR/genreg-run.json. Parameters (rates, decay, cutoff, samples per class, "
        "population...) may change with --set; keys that change the network's shape or its task (hidden_sizes, "
        "activation, task, target) are refused. The keys below are an evolution run's; a hybrid run or a search "
        "takes its own (genreg hybrid --help, genreg hpo --help).",
        epilog=keys_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _config_args(p, fresh=False)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser(
        "plot",
        help="write PNG figures of a run",
        description="Write PNGs of a run: trust and accuracy curves (best, mean, validation), per-digit "
        "accuracy over generations, and the values of the tracked weights of the best genome. On a "
        "`genreg hpo` run directory: traits against the validation metric, the sampled architectures, "
        "the best metric per generation and the cost of every fitness evaluation.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="where to write the PNGs (default: RUN_DIR)")
    p.add_argument("--generations", metavar="G1,G2,...",
                   help="hybrid runs: generations whose similarity PCA and histograms to draw (default: first, middle, last)")
    p.set_defaults(func=cmd_plot)

    from genreg.cli.hpo import add_hpo_commands

    add_hpo_commands(sub)

    from genreg.cli.hybrid import add_hybrid_commands

    add_hybrid_commands(sub)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return args.func(args)
    except RunInterrupted as exc:  # the loop has said where it stopped and how to continue
        return 128 + exc.signal
    except GenregError as exc:
        print(f"genreg: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # an output that cannot be written: a full disk, a read-only folder, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"genreg: error: cannot write {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
