"""``genreg sgd``: the gradient baseline, one network of an evolution run's shape trained by minibatch SGD."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from genreg.cli import common


def cmd_sgd(args: argparse.Namespace) -> int:
    from genreg.runs.sgd import check_new_run, format_result, from_mapping, load_task_for, train_run

    mapping = common.config_mapping(args, ("seed", "epochs", "task", "target"))
    cfg = from_mapping(mapping)
    name = Path(cfg.task.partition(":")[2] or cfg.task).stem
    out = Path(args.out) if args.out else Path("runs") / f"sgd-{name}-seed{cfg.seed}-{time.strftime('%Y%m%d-%H%M%S')}"
    common.ensure_data(cfg.task, args.data_dir, out)
    check_new_run(out)  # before the task is loaded
    task = load_task_for(cfg, args.data_dir)
    print(f"task {task.describe()}")
    print(f"run directory: {out}")
    result = train_run(cfg, out, args.data_dir, progress=not args.no_progress, task=task)
    print(format_result(result))
    return 0


def add_parser(sub) -> None:
    """Register ``sgd`` on the ``genreg`` sub-parser collection."""
    from genreg.runs.sgd import SGDConfig, describe_keys

    p = common.add_command(
        sub, "sgd",
        "The gradient baseline: one network of the shape genreg evolve would build (the task's inputs and "
        "outputs, hidden_sizes between, or with conv a ConvNet on the task's images; the same founder weights for "
        "the seed) trained by minibatch SGD with "
        "genreg's NumPy backprop, on any labelled --task. Each epoch trains on `copies` copies of the training "
        "rows, augmented afresh on tasks that augment their episodes (alphabet-fonts). Writes a run directory: "
        "config.toml, metrics.csv (one row an epoch), the genome that scored best on validation "
        "(best_genome_<task>_epochNNNN.pkl, read by genreg eval) and result.json; prints that genome's "
        "validation and test scores. `genreg plot RUN_DIR` draws the learning curves. Not resumable: runs are "
        "short.",
        "genreg sgd --task alphabet-fonts --epochs 30 --set hidden_sizes=[128] --set copies=4 --out runs/sgd-fonts",
        "config keys:\n" + describe_keys(),
    )
    common.add_config(p, "hidden_sizes=[128]")
    common.add_seed(p)
    common.add_task(p, SGDConfig.task)
    p.add_argument("--epochs", type=int, metavar="N", help="epochs of SGD (same as --set epochs=N)")
    common.add_run_out(p, "runs/sgd-<task>-seed<S>-<time>")
    common.add_no_progress(p)
    common.add_data_dir(p)
    p.set_defaults(func=cmd_sgd)
