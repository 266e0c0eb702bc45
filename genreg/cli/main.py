"""The ``genreg`` command: subcommands, each with ``--help``, a one-line description and an example.

Grammar shared by every subcommand (genreg.cli.common): ``--generations N`` is the total number of
generations a run reaches; ``--data-dir DIR`` the data root; ``--out`` the run directory a run command
creates (or the folder / file an analysis writes); ``--seed S`` the run's seed.  Every kind of run
continues with ``genreg resume RUN_DIR``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from genreg import __version__
from genreg.cli import common
from genreg.errors import GenregError, RunInterrupted

#: ``genreg --help``: the subcommands by what they are for (their lines: common.SUMMARIES).
GROUPS = (("train", ("evolve", "sgd", "hybrid", "hpo", "resume")), ("use a model", ("eval", "predict", "attack")),
          ("inspect", ("plot", "embed", "data")))


def cmd_eval(args: argparse.Namespace) -> int:
    from genreg.api import Genome, as_task
    from genreg.cli.predict import genome_task
    from genreg.errors import ConfigError
    from genreg.genome.evaluate import evaluate_checkpoint, format_report, write_report

    t0 = time.perf_counter()
    genome = Genome.load(args.checkpoint)
    task = genome_task(genome, args.checkpoint, args.task, args.target, args.data_dir)  # --task, else its run's
    if task is None:  # no config.toml beside it, no built-in task in its metadata: MNIST, if it names none
        named = genome.metadata.get("task")
        if genome.layout.n_inputs != 784 or (isinstance(named, str) and named != "mnist"):
            what = f"was evolved on task {named!r}" if isinstance(named, str) else \
                f"is a genome on {genome.layout.n_inputs} inputs"
            raise ConfigError(f"{args.checkpoint} {what} and its run's config.toml is not beside it: name its task "
                              "with --task SPEC (e.g. --task wine, --task csv:FILE --target COL, --task npz:FILE)")
        task = as_task("mnist", args.data_dir)
    if not task.is_classification:
        return _eval_regression(args, task, t0)
    report = evaluate_checkpoint(args.checkpoint, task.X_test, task.y_test, n_classes=task.n_outputs,
                                 classes=getattr(task, "classes", None) or None, task=task.name,
                                 input_shape=task.input_shape)
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

    from genreg.genome.evaluate import fits

    genome = Genome.load(args.checkpoint)
    if not fits(genome.layout, task.n_inputs, task.n_outputs, task.input_shape):
        raise CheckpointError(f"the genome is {genome.layout.describe()} but task {task.name} has {task.n_inputs} "
                              f"inputs and {task.n_outputs} output(s): give the genome's own --task")
    report = {"checkpoint": str(args.checkpoint), "task": task.name, **genome.evaluate(task),
              "total_seconds": time.perf_counter() - t0}
    print(f"{task.name} test set ({report['n']} rows): mean squared error {report['mse']:.6g}, "
          f"mean absolute error {report['mae']:.6g} (in the data's units)")
    if args.json:
        write_report(args.json, report)
        print(f"wrote {args.json}")
    return 0


def _config_args(parser: argparse.ArgumentParser, fresh: bool) -> None:
    if fresh:
        common.add_config(parser, "population=300")
        common.add_seed(parser)
        common.add_run_out(parser, "runs/<strategy>-seed<S>-<time>")
        from genreg.strategies.config import Config

        common.add_task(parser, Config.task)
    else:
        common.add_set(parser, "population=300")
    common.add_generations(parser)
    common.add_no_progress(parser)
    common.add_data_dir(parser)
    common.add_cluster(parser)


def cmd_evolve(args: argparse.Namespace) -> int:
    from genreg.runs.evolve import start_run
    from genreg.strategies.config import from_mapping

    mapping = common.config_mapping(args, ("seed", "generations", "task", "target"))
    cfg = from_mapping(mapping)
    out = Path(args.out) if args.out else Path("runs") / f"{cfg.strategy}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    from genreg.api import as_task

    task = as_task(cfg.task, args.data_dir, seed=cfg.seed, validation_size=cfg.validation_size,
                   target=cfg.target or None) if cfg.task not in ("mnist", "fashion-mnist") else None
    if task is not None:
        print(f"task {task.describe()}")
    common.ensure_data(cfg.task, args.data_dir, out)
    print(f"run directory: {out}")
    t0 = time.perf_counter()
    state = start_run(cfg, out, args.data_dir, progress=not args.no_progress, task=task,
                      cluster=common.cluster_spec(args))
    name = task.name if task is not None else cfg.task
    best = out / f"best_genome_{name}_gen{state.generation:05d}.pkl"
    print(f"{common.span(state.generation)} in {time.perf_counter() - t0:.1f} s"
          + (f"; best genome: {best}" if best.exists() else " (no genome evaluated yet)"))
    print(_size_line(out))
    return 0


def _size_line(run_dir) -> str:
    """"run directory: DIR holds N MB" (what the run costs on disk)."""
    from genreg.network.population import format_bytes
    from genreg.runs.rundir import disk_usage

    return f"run directory: {run_dir} holds {format_bytes(disk_usage(run_dir))}"


def cmd_resume(args: argparse.Namespace) -> int:
    from genreg.config import parse_overrides
    from genreg.runs.rundir import run_kind

    overrides = parse_overrides(args.set)
    if args.generations is not None:
        overrides["generations"] = args.generations
    kind = run_kind(args.run_dir)
    t0 = time.perf_counter()
    if kind == "sgd":
        from genreg.runs.sgd import refuse_resume

        refuse_resume(args.run_dir)
    if kind == "hybrid":
        from genreg.cli.hybrid import report_hybrid
        from genreg.hybrid.run import resume_hybrid

        result = resume_hybrid(args.run_dir, overrides, args.data_dir, progress=not args.no_progress)
        return report_hybrid(result, args.run_dir, t0)
    if kind == "hpo":
        from genreg.cli.hpo import report_hpo
        from genreg.hpo.search import resume_hpo

        result = resume_hpo(args.run_dir, overrides, args.data_dir, progress=not args.no_progress)
        return report_hpo(result, Path(args.run_dir))
    from genreg.runs.evolve import resume_run

    state = resume_run(args.run_dir, overrides, args.data_dir, progress=not args.no_progress,
                       cluster=common.cluster_spec(args))
    print(f"{common.span(state.generation)} done after {time.perf_counter() - t0:.1f} s")
    print(_size_line(args.run_dir))
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from genreg.errors import CheckpointError
    from genreg.runs.rundir import run_kind

    try:
        kind = run_kind(args.run_dir)
    except CheckpointError:
        raise CheckpointError(f"{args.run_dir} is not a run directory: plot takes the folder a genreg evolve, "
                              "hybrid, hpo or sgd run wrote (it holds genreg-run.json and metrics.csv or "
                              "generations.csv)") from None
    snapshots = args.snapshots or args.generations_alias
    if snapshots and kind != "hybrid":
        raise GenregError(f"--snapshots applies to hybrid runs; {args.run_dir} is an {kind} run")
    if snapshots and not all(part.strip().isdigit() for part in snapshots.split(",")):
        raise GenregError(f"--snapshots expects comma-separated generation numbers, got {snapshots!r}")
    if kind == "hybrid":
        from genreg.plots.hybrid import plot_hybrid_run

        paths = plot_hybrid_run(args.run_dir, args.out, generations=snapshots)
    elif kind == "hpo":
        from genreg.plots.hpo import plot_hpo_run

        paths = plot_hpo_run(args.run_dir, args.out)
    elif kind == "sgd":
        from genreg.plots.sgd import plot_sgd_run

        paths = plot_sgd_run(args.run_dir, args.out)
    else:
        from genreg.plots.run import plot_run

        paths = plot_run(args.run_dir, args.out)
    for path in paths:
        print(f"wrote {path}")
    return 0


def _overview(has_data: bool) -> str:
    """The grouped list of subcommands, the shared options and an example (``genreg --help``)."""
    width = max(len(name) for _, cmds in GROUPS for name in cmds)
    lines = ["Gradient-free neuroevolution of neural networks (trust-based evolution, classic GA).", ""]
    for title, cmds in GROUPS:
        lines.append(f"{title}:")
        lines += [f"  {name:<{width}}  {common.SUMMARIES[name]}" for name in cmds if name != "data" or has_data]
    lines += ["", "shared options:",
              "  --generations N  the total number of generations a run reaches",
              "  --data-dir DIR   the data root (default: $GENREG_DATA, else ~/.cache/genreg)",
              "  --out            the run directory a run command creates",
              "  --seed S         the run's seed"]
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    from genreg.cli import embed  # registers its line in common.SUMMARIES before the overview is written

    has_data = _data_module() is not None
    parser = argparse.ArgumentParser(
        prog="genreg", usage="genreg [-h] [--version] COMMAND ...",
        description=_overview(has_data),
        epilog="example:\n  genreg evolve --generations 50 --set population=300 --out runs/first\n"
        "  genreg resume runs/first --generations 100\n\n`genreg COMMAND --help` describes one command.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"genreg {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", help=argparse.SUPPRESS, prog="genreg")

    p = common.add_command(
        sub, "eval",
        "Evaluate a genome checkpoint (genreg's own format or GENREG's published format) on the test "
        "split of its task: accuracy, per-class accuracy, confusion matrix and time taken (classification), or "
        "mean squared / absolute error (regression). The task is --task, else the one in the run's config.toml "
        "beside the pickle, else MNIST; its splits are drawn with the run's seed (config.toml, else the genome's "
        "recorded seed), so the test split is the one the run held out. Pickles are opened with a restricted unpickler that admits plain data only.",
        "genreg eval runs/first/best_genome_mnist_gen00050.pkl --json report.json",
    )
    p.add_argument("checkpoint", metavar="CHECKPOINT", help="path of the .pkl genome checkpoint")
    common.add_task(p, "the task in the run's config.toml beside CHECKPOINT, else mnist")
    common.add_data_dir(p)
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")
    p.set_defaults(func=cmd_eval)

    from genreg.strategies.config import describe_keys

    keys_help = "config keys (defaults reproduce the published GENREG protocol):\n" + describe_keys()
    p = common.add_command(
        sub, "evolve",
        "Evolve a population of networks (inputs and outputs from the task, hidden_sizes between) "
        "by trust-decay selection (strategy=genreg), a classic GA (strategy=ga) or an evolution strategy "
        "(strategy=openai-es, pgpe or snes), on MNIST or any --task. Writes "
        "a run directory with the resolved config, metrics, HDF5 checkpoints and best-genome pickles. Ctrl-C "
        "checkpoints and exits (status 130); `genreg resume RUN_DIR` continues.",
        "genreg evolve --generations 50 --seed 1 --set population=300 --out runs/first", keys_help,
    )
    _config_args(p, fresh=True)
    p.set_defaults(func=cmd_evolve)

    p = common.add_command(
        sub, "resume",
        "Continue RUN_DIR (an evolution, hybrid or hpo run) from its newest checkpoint up to "
        "--generations in total (default: the run's own total); the kind of run is read from "
        "RUN_DIR/genreg-run.json. Parameters (rates, decay, cutoff, samples per class, population...) may change "
        "with --set; keys that change the network's shape or its task are refused. The keys below are an "
        "evolution run's; a hybrid run or a search takes its own (genreg hybrid --help, genreg hpo --help).",
        "genreg resume runs/first --generations 100", keys_help,
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    _config_args(p, fresh=False)
    p.set_defaults(func=cmd_resume)

    p = common.add_command(
        sub, "plot",
        "Write the PNG figures of a run (evolution, hybrid, hpo or sgd; the kind is read from the run "
        "directory): fitness or trust and accuracy curves, per-class accuracy and tracked weights (evolution); "
        "validation curves, similarity PCA and histograms (hybrid); traits against the metric, architectures, "
        "best metric per generation and fitness cost (hpo); the learning curve (sgd).",
        "genreg plot runs/first --out figures",
    )
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--out", metavar="DIR", help="the folder to write the PNGs into (default: RUN_DIR)")
    p.add_argument("--snapshots", metavar="G1,G2,...",
                   help="hybrid runs: generations whose similarity PCA and histograms to draw (default: first, "
                   "middle, last)")
    p.add_argument("--generations", dest="generations_alias", metavar="G1,G2,...", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_plot)

    from genreg.cli.hpo import add_hpo_commands
    from genreg.cli.hybrid import add_hybrid_commands
    from genreg.cli.predict import add_parser as add_predict
    from genreg.cli.sgd import add_parser as add_sgd

    add_sgd(sub)
    add_hpo_commands(sub)
    add_predict(sub)
    add_hybrid_commands(sub)
    embed.add_parser(sub)
    if has_data:
        _data_module().add_parser(sub)
    return parser


def _data_module():
    """genreg.cli.data (``genreg data``), or None while it is not there."""
    try:
        from genreg.cli import data
    except ImportError:
        return None
    return data


def joined_values(argv: list[str]) -> list[str]:
    """``--input -1,2`` as ``--input=-1,2``: argparse takes a value that starts with '-' (a negative first
    feature) for an option and refuses it."""
    out = []
    for arg in argv:
        if out and out[-1] == "--input" and arg[:1] == "-" and (arg[1:2].isdigit() or arg[1:2] == "."):
            out[-1] = f"--input={arg}"
        else:
            out.append(arg)
    return out


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(joined_values(list(sys.argv[1:] if argv is None else argv)))
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        status = args.func(args)
        sys.stdout.flush()  # here, so that a closed pipe is caught below rather than at exit
        return status
    except RunInterrupted as exc:  # the loop has said where it stopped and how to continue
        return 128 + exc.signal
    except GenregError as exc:
        print(f"genreg: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`genreg eval ... | head`): nothing left to say
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # so the exit's flush stays quiet
        return 141
    except OSError as exc:  # an output that cannot be written: a full disk, a read-only folder, ...
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"genreg: error: cannot write {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("genreg: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
