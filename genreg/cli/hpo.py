"""The ``genreg hpo`` and ``genreg predict`` subcommands (registered by ``genreg.cli``)."""

from __future__ import annotations

import argparse
import time
from pathlib import Path


def cmd_hpo(args: argparse.Namespace) -> int:
    from genreg.config import load_toml, parse_overrides
    from genreg.hpo.search import run_hpo
    from genreg.hpo.config import hpo_from_mapping

    if args.resume:
        from genreg.hpo.search import resume_hpo

        overrides = parse_overrides(args.set)
        if args.generations is not None:
            overrides["generations"] = args.generations
        out = Path(args.resume)
        print(f"resuming {out}")
        result = resume_hpo(out, overrides, args.data_dir, progress=not args.no_progress)
        return _report(result, out)
    mapping = load_toml(args.config) if args.config else {}
    mapping.update(parse_overrides(args.set))
    for key in ("task", "target_column", "seed", "generations", "population", "epochs"):
        if getattr(args, key) is not None:
            mapping[key] = getattr(args, key)
    if args.merge is not None:
        mapping["merge"] = args.merge
    cfg = hpo_from_mapping(mapping)
    task = Path(cfg.task.partition(":")[2]).stem if ":" in cfg.task else cfg.task
    out = Path(args.out) if args.out else Path("runs") / (
        f"hpo-{task}-{'merge' if cfg.merge else 'basic'}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"run directory: {out}")
    result = run_hpo(cfg, out, args.data_dir, progress=not args.no_progress)
    return _report(result, out)


def _report(result, out: Path) -> int:
    import json

    metric = json.loads((out / "summary.json").read_text())["metric"]
    best = result.best
    print(f"{len(result.evaluations)} fitness evaluations, {result.generations_run} generations "
          f"(stopped by {result.stopped_by}) in {result.total_seconds:.1f} s; mean fitness time "
          f"{sum(r['fitness_seconds'] for r in result.evaluations) / len(result.evaluations):.2f} s")
    print(f"best: individual {best.id} (generation {best.generation}) {best.layout.shape_name()}  "
          f"validation {best.metric:.5g}  test {result.test_metric:.5g} ({metric})")
    print("traits: " + ", ".join(f"{k}={v}" for k, v in best.traits.to_dict().items()))
    print(f"best network: {out / 'best_model.h5'}")
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    from genreg.errors import ConfigError
    from genreg.hpo.model import predict_angle, predict_input

    if (args.angle is None) == (args.input is None):
        raise ConfigError("predict needs --input v1,v2,... (raw feature values), or --angle DEG for a trig model")
    if args.input is not None:
        out, model = predict_input(args.model, args.input)
        what = f"{model.task_spec}" + (f" ({model.target})" if model.target else "")
        if "outputs" in out:
            print(f"prediction: {', '.join(f'{v:.6g}' for v in out['outputs'])}   ({what})")
        else:
            print(f"prediction: class {out['class']} (label {out['label']}, probability "
                  f"{out['probabilities'][out['label']]:.4f})   ({what})")
        print(f"model: {model.layout.shape_name()} trained by genreg hpo (validation {model.metric} "
              f"{model.val_metric:.3g}, test {model.test_metric:.3g})")
        return 0
    pred, true, model = predict_angle(args.model, args.angle)
    print(f"angle {args.angle:g} deg: prediction {pred:.6f}   cos({args.angle:g} deg) = {true:.6f}   "
          f"error {pred - true:+.6f}")
    if not 0.0 <= args.angle <= 360.0:
        print("note: the model was trained on angles in [0, 360] deg; outside that range it extrapolates")
    print(f"model: {model.layout.shape_name()} trained by genreg hpo (validation {model.metric} "
          f"{model.val_metric:.3g}, test {model.test_metric:.3g})")
    return 0


def add_hpo_commands(sub) -> None:
    """Register ``hpo`` and ``predict`` on the CLI's subparsers."""
    from genreg.hpo.config import TASKS, describe_hpo_keys

    p = sub.add_parser(
        "hpo",
        help="search network architecture and training hyper-parameters with a GA (SGD fitness)",
        description="Genetic search over hidden-layer widths (cosine profile), batch size, learning rate, "
        "momentum, learning-rate decay and dropout; each individual's fitness is SGD training (early "
        "stopping) scored on a validation split. --merge starts children from their parents' merged "
        "weights. Writes a run directory (CSV, HDF5) and the best network to RUN_DIR/best_model.h5.",
        epilog="config keys:\n" + describe_hpo_keys(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--task", metavar="SPEC", help=f"data set (default: trig): {', '.join(TASKS)}, csv:FILE "
                   "(with --target-column) or npz:FILE")
    p.add_argument("--target-column", metavar="COLUMN", help="the column to predict of a csv: task")
    p.add_argument("--merge", action=argparse.BooleanOptionalAction, default=None,
                   help="weight-merge crossover on/off (default: off)")
    p.add_argument("--config", metavar="FILE.toml", help="TOML file of config keys (flat)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key (repeatable)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--generations", type=int, metavar="G", help="breeding rounds after generation 0")
    p.add_argument("--population", type=int, metavar="P", help="individuals per generation")
    p.add_argument("--epochs", type=int, metavar="E", help="most SGD epochs per fitness evaluation")
    p.add_argument("--out", metavar="RUN_DIR", help="run directory (default: runs/hpo-<task>-<mode>-seed<S>-<time>)")
    p.add_argument("--resume", metavar="RUN_DIR",
                   help="continue a search after its last finished generation (only --generations and "
                   "--set generations=/target= may change)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--data-dir", metavar="D",
                   help="data root holding mnist/, wine-quality/, boston-housing/ (default: $GENREG_DATA)")
    p.set_defaults(func=cmd_hpo)

    p = sub.add_parser(
        "predict",
        help="print a saved hpo model's prediction for raw feature values (or, for trig, an angle)",
        description="Load a best_model.h5 written by `genreg hpo` and print its prediction for --input (raw "
        "feature values, comma-separated, in the data's order and units; the model's saved statistics scale "
        "them): the predicted value(s) in the data's units, or the class and its probability. For a trig "
        "model, --angle DEG prints the prediction next to cos(angle).",
    )
    p.add_argument("model", metavar="MODEL.h5")
    p.add_argument("--input", metavar="V1,V2,...", help="raw feature values, comma-separated")
    p.add_argument("--angle", type=float, metavar="DEG", help="angle in degrees (trig models)")
    p.set_defaults(func=cmd_predict)

