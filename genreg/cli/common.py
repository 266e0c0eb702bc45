"""Argument definitions every ``genreg`` subcommand shares, so that one option means one thing everywhere.

``--generations N``  the total number of generations the run reaches (a resume continues up to N);
``--data-dir D``     the data root holding one folder per dataset (mnist/, fashion-mnist/, wine-quality/,
                     boston-housing/), else $GENREG_DATA, else ~/.cache/genreg (passed through unchanged);
``--out``            the run directory a run command creates, or the folder / file an analysis writes
                     (each command's help says which);
``--seed S``         the run's seed (same as ``--set seed=S``).
"""

from __future__ import annotations

import argparse
import sys
import textwrap

DATA_DIR_HELP = ("data root holding one folder per dataset (mnist/, fashion-mnist/, wine-quality/, "
                 "boston-housing/) (default: $GENREG_DATA, else ~/.cache/genreg)")
GENERATIONS_HELP = "total number of generations the run reaches (a resume continues up to N)"
SEED_HELP = "the run's random seed (same as --set seed=S)"
TASK_SPECS = ("mnist, fashion-mnist, alphabet, alphabet-fonts, wine, wine-white, boston, trig, csv:FILE (with --target COL) "
              "or npz:FILE")


#: Each subcommand's one-line description (its --help's first line and its line in ``genreg --help``).
SUMMARIES = {
    "evolve": "evolve networks without gradients (GENREG, a classic GA or an evolution strategy)",
    "sgd": "train one network of the same shape by minibatch SGD (the gradient baseline)",
    "hybrid": "train a population by SGD between genetic recombinations",
    "hpo": "search architectures and SGD hyper-parameters with a GA",
    "resume": "continue any run (evolve, hybrid or hpo) up to --generations",
    "eval": "score a genome on its task's test set",
    "predict": "a saved model's prediction for an image, a CSV row or file, or an angle",
    "attack": "adversarial transfer (FGSM / PGD) within a hybrid run's population",
    "plot": "write the PNG figures of a run",
    "embed": "2-D maps of genomes' hidden activations on the test set (PCA, UMAP), class overlap",
    "data": "list the datasets, where they are looked for, and download them",
}


def add_command(sub, name: str, details: str, example: str, more: str = "") -> argparse.ArgumentParser:
    """A subcommand whose --help reads: its one-line summary, ``details`` (wrapped), then the example and ``more``."""
    description = SUMMARIES[name][0].upper() + SUMMARIES[name][1:] + "."
    if details:
        description += "\n\n" + textwrap.fill(details, 90)
    return sub.add_parser(name, description=description, epilog=epilog(example, more),
                          formatter_class=argparse.RawDescriptionHelpFormatter)


def plural(n: int, word: str) -> str:
    """``"1 generation"``, ``"2 generations"``."""
    return f"{n} {word}{'' if n == 1 else 's'}"


def span(done: int, first: int = 0) -> str:
    """The generations a run has done, counted and numbered: ``"261 generations (0-260)"``.

    first: the label of the first generation (0 for evolution and search runs, 1 for hybrid runs,
    whose generation 0 is the untrained founders)."""
    if done <= 0:
        return "0 generations"
    last = first + done - 1
    return f"{plural(done, 'generation')} ({first}-{last})" if done > 1 else f"1 generation ({first})"


def add_data_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help=DATA_DIR_HELP)


def add_generations(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generations", type=int, metavar="N", help=GENERATIONS_HELP)


def add_seed(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, metavar="S", help=SEED_HELP)


def add_run_out(parser: argparse.ArgumentParser, default: str) -> None:
    """``--out RUN_DIR``: the run directory a run command creates."""
    parser.add_argument("--out", metavar="RUN_DIR", help=f"the run directory to create (default: {default})")


def add_task(parser: argparse.ArgumentParser, default: str = "the config's task") -> None:
    """``--task SPEC`` and its ``--target COL`` (the value stays None unless given; ``default`` says what applies)."""
    parser.add_argument("--task", metavar="SPEC", help=f"the problem: {TASK_SPECS} (default: {default})")
    parser.add_argument("--target", metavar="COL", help="csv: tasks: the name of the column to predict")


def add_config(parser: argparse.ArgumentParser, example: str) -> None:
    """``--config FILE.toml`` and ``--set KEY=VALUE``."""
    parser.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (flat, listed below)")
    add_set(parser, example)


def add_set(parser: argparse.ArgumentParser, example: str) -> None:
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one config key (repeatable), e.g. --set {example}")


def add_no_progress(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_cluster(parser: argparse.ArgumentParser) -> None:
    """``--ray ADDRESS``, ``--workers N``, ``--threads-per-worker T``: where an evolution runs (see ``cluster_spec``)."""
    group = parser.add_argument_group("running on Ray (optional extra: pip install 'genreg[ray]')")
    group.add_argument("--ray", metavar="ADDRESS",
                       help="run on Ray workers: 'auto' (the cluster RAY_ADDRESS names or a running local one, "
                            "else a new local one), 'local' (a new one on this machine, bound to 127.0.0.1) or a "
                            "cluster's address (HOST:PORT); an evolution strategy's members, or an island model's "
                            "islands, are spread over the workers; results are the same bits as in-process")
    group.add_argument("--workers", type=int, metavar="N", help="worker processes (default: one per CPU)")
    group.add_argument("--threads-per-worker", type=int, default=1, metavar="T",
                       help="Numba threads (and CPUs reserved) per worker (default 1)")


def cluster_spec(args: argparse.Namespace):
    """The ``ClusterSpec`` of ``--ray/--workers/--threads-per-worker`` (None without --ray)."""
    if args.ray is None:
        if args.workers is not None:
            from genreg.errors import ConfigError

            raise ConfigError("--workers needs --ray (auto, local or a cluster's address)")
        return None
    from genreg.distributed.cluster import ClusterSpec

    return ClusterSpec(args.ray, args.workers, args.threads_per_worker)


def add_resume_alias(parser: argparse.ArgumentParser) -> None:
    """A hidden ``--resume RUN_DIR``: the old spelling of ``genreg resume RUN_DIR`` (see ``resume_alias``)."""
    parser.add_argument("--resume", metavar="RUN_DIR", help=argparse.SUPPRESS)


def resume_alias(args: argparse.Namespace, command: str) -> int | None:
    """Run ``genreg resume`` for a deprecated ``genreg COMMAND --resume RUN_DIR`` (one notice on stderr);
    None when ``--resume`` was not given.  Options only a new run takes are refused, naming them."""
    if not getattr(args, "resume", None):
        return None
    from genreg.errors import ConfigError

    fresh = [f"--{name.replace('_', '-')}" for name in ("config", "seed", "out", "task", "target", "target_column",
                                                        "population", "epochs", "merge")
             if getattr(args, name, None) is not None]
    if fresh:
        raise ConfigError(f"genreg resume continues a run with its saved config: it does not take {', '.join(fresh)} "
                          f"(use --set KEY=VALUE for the keys a resume may change)")
    print(f"genreg: note: `genreg {command} --resume DIR` is deprecated; use `genreg resume {args.resume}`",
          file=sys.stderr)
    from genreg.cli.main import cmd_resume

    args.run_dir = args.resume
    return cmd_resume(args)


def epilog(example: str, more: str = "") -> str:
    """A subcommand's epilog: an example first, then ``more`` (e.g. its config keys)."""
    text = f"example:\n  {example}"
    return text + ("\n\n" + more if more else "")


def ensure_data(task: str, data_dir, out) -> None:
    """Fetch a built-in data set's files if missing (``genreg.tasks.datasets.require``) before a run
    announces its directory ``out``: a start that fails on data then names no folder it never creates.
    A ``out`` that cannot be a folder is refused first (before any data is looked for)."""
    from genreg.runs.rundir import check_folder_path
    from genreg.tasks import datasets

    check_folder_path(out)

    name = str(task).strip().lower()
    if name in datasets.DATASETS or name in datasets.ALIASES:
        datasets.require(name, data_dir)


def config_mapping(args: argparse.Namespace, keys) -> dict:
    """The keys a new run starts from: ``--config FILE``, then ``--set KEY=VALUE``, then each option of
    ``keys`` that was given."""
    from genreg.config import load_toml, parse_overrides

    mapping = load_toml(args.config) if args.config else {}
    mapping.update(parse_overrides(args.set))
    mapping.update({key: getattr(args, key) for key in keys if getattr(args, key) is not None})
    return mapping
