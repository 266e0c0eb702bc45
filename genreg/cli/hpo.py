"""The ``genreg hpo`` subcommand (registered by ``genreg.cli``); ``genreg predict`` is genreg.cli.predict."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genreg.cli import common


def cmd_hpo(args: argparse.Namespace) -> int:
    from genreg.hpo.config import hpo_from_mapping
    from genreg.hpo.search import run_hpo

    alias = common.resume_alias(args, "hpo")
    if alias is not None:
        return alias
    mapping = common.config_mapping(args, ("task", "seed", "generations", "population", "epochs"))
    if args.target is not None:
        mapping["target_column"] = args.target
    if args.merge is not None:
        mapping["merge"] = args.merge
    cfg = hpo_from_mapping(mapping)
    task = Path(cfg.task.partition(":")[2]).stem if ":" in cfg.task else cfg.task
    out = Path(args.out) if args.out else Path("runs") / (
        f"hpo-{task}-{'merge' if cfg.merge else 'basic'}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    common.ensure_data(cfg.task, args.data_dir, out)
    print(f"run directory: {out}")
    result = run_hpo(cfg, out, args.data_dir, progress=not args.no_progress)
    return report_hpo(result, out)


def report_hpo(result, out: Path) -> int:
    """Print a search's summary: evaluations, generations, the best network and where it is."""
    import json

    from genreg.config import load_toml
    from genreg.tasks.loaders import IMAGE_TASKS

    metric = json.loads((out / "summary.json").read_text())["metric"]
    best = result.best
    n = len(result.evaluations)
    print(f"{common.plural(n, 'fitness evaluation')}, {common.span(result.generations_run)} "
          f"(stopped by {result.stopped_by}) in {result.total_seconds:.1f} s; mean fitness time "
          f"{sum(r['fitness_seconds'] for r in result.evaluations) / max(n, 1):.2f} s")
    print(f"best: individual {best.id} (generation {best.generation}) {best.layout.shape_name()}  "
          f"validation {best.metric:.5g}  test {result.test_metric:.5g} ({metric})")
    print("traits: " + ", ".join(f"{k}={v}" for k, v in best.traits.to_dict().items()))
    task = str(load_toml(out / "config.toml").get("task", "")) if (out / "config.toml").is_file() else ""
    how = "--angle DEG" if task == "trig" else "IMAGE.png" if task in IMAGE_TASKS else "--input v1,v2,..."
    print(f"best network: {out / 'best_model.h5'} (genreg predict {out / 'best_model.h5'} {how})")
    return 0


_report = report_hpo  # the name older callers import


def add_hpo_commands(sub) -> None:
    """Register ``hpo`` on the CLI's subparsers."""
    from genreg.hpo.config import HPOConfig, describe_hpo_keys

    p = common.add_command(
        sub, "hpo",
        "Genetic search over hidden-layer widths (cosine profile), batch size, learning rate, "
        "momentum, learning-rate decay and dropout; each individual's fitness is SGD training (early "
        "stopping) scored on a validation split. Generation 0 trains the random founders; --generations N "
        "counts it (N generations in total). --merge starts children from their parents' merged "
        "weights. Writes a run directory (CSV, HDF5) and the best network to RUN_DIR/best_model.h5 "
        "(`genreg predict` reads it); `genreg resume RUN_DIR` continues.",
        "genreg hpo --task wine --generations 6 --population 10 --seed 0", "config keys:\n" + describe_hpo_keys(),
    )
    common.add_task(p, HPOConfig.task)
    p.add_argument("--target-column", dest="target", metavar="COL", help=argparse.SUPPRESS)  # the old spelling
    p.add_argument("--merge", action=argparse.BooleanOptionalAction, default=None,
                   help=f"weight-merge crossover on/off (default: {'on' if HPOConfig.merge else 'off'})")
    common.add_config(p, "epochs=30")
    common.add_seed(p)
    common.add_generations(p)
    p.add_argument("--population", type=int, metavar="P",
                   help=f"individuals per generation (default: {HPOConfig.population})")
    p.add_argument("--epochs", type=int, metavar="E",
                   help=f"most SGD epochs per fitness evaluation (default: {HPOConfig.epochs})")
    common.add_run_out(p, "runs/hpo-<task>-<mode>-seed<S>-<time>")
    common.add_no_progress(p)
    common.add_data_dir(p)
    common.add_resume_alias(p)
    p.set_defaults(func=cmd_hpo)
