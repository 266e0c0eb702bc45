"""``genreg embed``: 2-D maps of genomes' last hidden layer on their task's test set, and how much the classes overlap.

For each CHECKPOINT (genreg's genome pickle or GENREG's published one) it writes
``<name>-<method>.csv`` (x, y, label, class per test point, in the test set's order) and
``<name>-<method>.json`` (the map's settings, the genome's accuracy, silhouette per class, the
nearest-centroid confusion and the most overlapping class pairs); one PNG holds every map side by side.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from genreg.atomic import write_atomic
from genreg.cli import common
from genreg.errors import CheckpointError, ConfigError



def load_task_for(genome, checkpoint, args, cache: dict):
    """The task to map ``genome`` on: --task, else its run's config.toml, else MNIST for a 784-input genome."""
    from genreg.api import as_task
    from genreg.cli.predict import genome_task

    if args.task:
        key = ("spec", args.task, args.target)
        if key not in cache:
            cache[key] = as_task(args.task, args.data_dir, target=args.target)
        return cache[key]
    task = genome_task(genome, checkpoint, data_dir=args.data_dir)
    if task is not None:
        return task
    if genome.layout.n_inputs != 784:
        raise ConfigError(f"{checkpoint} is a genome on {genome.layout.n_inputs} inputs and its run's config.toml is "
                          "not beside it: name its task with --task SPEC")
    if "mnist" not in cache:
        cache["mnist"] = as_task("mnist", args.data_dir)
    return cache["mnist"]


def check_fit(genome, task, checkpoint) -> None:
    """Refuse, in one line, a task that is not classification or whose sizes the genome does not have."""
    from genreg.genome.evaluate import fits

    layout = genome.layout
    if not task.is_classification:
        raise ConfigError(f"task {task.name} is {task.kind}: an embedding map colours points by class, so it needs "
                          "a classification task")
    if not fits(layout, task.n_inputs, task.n_outputs, task.input_shape):
        raise CheckpointError(f"{checkpoint} is {layout.shape_name()} but task {task.name} has {task.n_inputs} inputs "
                              f"and {task.n_outputs} classes: give the genome's own --task")
    if len(task.y_test) == 0:
        raise ConfigError(f"task {task.name} has no test split to map")


def class_names(task) -> tuple:
    """The task's class names (digits, letters, garments), else 0..n-1."""
    names = tuple(str(c) for c in task.classes)
    return names if len(names) == task.n_outputs else tuple(str(c) for c in range(task.n_outputs))


def file_names(checkpoints) -> list[str]:
    """A file-name stem per checkpoint: its own stem, prefixed by its folder's name where two stems are equal."""
    stems = [Path(c).stem for c in checkpoints]
    return [f"{Path(c).resolve().parent.name}-{s}" if stems.count(s) > 1 else s for c, s in zip(checkpoints, stems)]


def json_text(report: dict) -> str:
    """``report`` as indented JSON with each list of numbers (explained variance, a confusion row) on one line."""
    import re

    text = json.dumps(report, indent=1)
    return re.sub(r"\[\s+(-?[\d.e+-]+(?:,\s+-?[\d.e+-]+)*)\s+\]",
                  lambda m: "[" + ", ".join(m.group(1).replace(",", " ").split()) + "]", text) + "\n"


def summary_lines(emb, n_top: int = 5) -> list[str]:
    """What ``genreg embed`` prints for one map."""
    o = emb.overlap
    how = emb.method.upper()
    if emb.method == "pca":
        ev = emb.details["explained_variance"]
        how += f" (PC 1 {100 * ev[0]:.1f}%, PC 2 {100 * ev[1]:.1f}% of the variance)"
    else:
        how += f" (seed {emb.seed}, n_neighbors {emb.details['n_neighbors']}, min_dist {emb.details['min_dist']})"
    per_class = "  ".join(f"{k} {v:+.2f}" if v is not None else f"{k} -" for k, v in o["silhouette_per_class"].items())
    pairs = ", ".join(f"{p['a_name']}/{p['b_name']} {100 * p['share']:.1f}% ({p['a_to_b']} {p['a_name']}->{p['b_name']}, "
                      f"{p['b_to_a']} {p['b_name']}->{p['a_name']})" for p in o["overlapping_pairs"][:n_top]) or "none"
    lines = [] if np.bincount(emb.labels).max(initial=0) > 1 else [
        "note       : one point per class: the silhouette and the centroids say nothing about overlap here"]
    return lines + [f"map        : {how} of {emb.layer}",
            f"silhouette : mean {o['silhouette_mean']:+.3f} over {o['n_points']} points; per class: {per_class}",
            f"centroids  : {100 * o['nearest_centroid_accuracy']:.2f}% of points lie nearest their own class's centroid",
            f"overlap    : most mixed pairs (share of the pair's points nearest the other's centroid): {pairs}"]


def cmd_embed(args: argparse.Namespace) -> int:
    from genreg.api import Genome
    from genreg.genome.embed import embed_genome, write_coordinates
    from genreg.plots.embed import plot_embeddings

    t0 = time.perf_counter()
    out = Path(args.out) if args.out else Path(args.checkpoints[0]).resolve().parent
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file; give a folder to write the maps into")
    names = [args.name] if args.name and len(args.checkpoints) == 1 else file_names(args.checkpoints)
    cache, embeddings, loaded = {}, [], []
    for checkpoint in args.checkpoints:  # every checkpoint is checked before anything is written
        if Path(checkpoint).is_dir():
            raise CheckpointError(f"{checkpoint} is a folder; embed takes genome checkpoint files (.pkl)")
        genome = Genome.load(checkpoint)
        task = load_task_for(genome, checkpoint, args, cache)
        check_fit(genome, task, checkpoint)
        classes = class_names(task)
        if loaded and classes != loaded[0][3]:
            raise ConfigError(f"{checkpoint}: its task {task.name} has other classes than the first map's; maps side "
                              "by side need the same classes (run genreg embed once per task)")
        loaded.append((checkpoint, genome, task, classes))
    for (checkpoint, genome, task, classes), name in zip(loaded, names):
        emb = embed_genome(genome.layout, genome.row, task.X_test, task.y_test, classes, args.method, args.seed,
                           title=name if len(names) > 1 else "")
        embeddings.append(emb)
        print(f"checkpoint : {checkpoint}: {genome.layout.describe()}; {task.name} test set, {len(task.y_test)} "
              f"points; {100 * emb.accuracy:.2f}% correct")
        for line in summary_lines(emb):
            print(line)
        out.mkdir(parents=True, exist_ok=True)
        csv_path, json_path = out / f"{name}-{args.method}.csv", out / f"{name}-{args.method}.json"
        write_coordinates(csv_path, emb)
        report = {"checkpoint": str(checkpoint), "network": genome.layout.describe(), "task": task.name,
                  "split": "test", "n_points": int(len(emb.labels)), "method": emb.method, "seed": emb.seed,
                  "layer": emb.layer, **emb.details, "accuracy": emb.accuracy, "classes": list(classes),
                  **emb.overlap, "coordinates": csv_path.name}
        write_atomic(json_path, json_text(report).encode("utf-8"))
        print(f"wrote {csv_path}\nwrote {json_path}")
    figure = out / f"{args.name or (names[0] if len(names) == 1 else 'compare')}-{args.method}.png"
    plot_embeddings(embeddings, figure)
    print(f"wrote {figure}")
    print(f"total      : {time.perf_counter() - t0:.1f} s")
    return 0


def add_parser(sub) -> None:
    """Register ``genreg embed``."""
    p = common.add_command(
        sub, "embed",
        "Map the last hidden layer's activations (after its activation, e.g. tanh) of each CHECKPOINT on the "
        "test split of its task to 2-D: PCA (always; components' signs fixed) or UMAP (--method umap, with the "
        "optional extra genreg[embed]; seeded). Prints and writes how much the classes overlap: the silhouette "
        "per class and a nearest-centroid confusion of the map, with the most mixed class pairs. Several "
        "checkpoints give one figure with their maps side by side. The task is --task, else the one in the "
        "run's config.toml beside each checkpoint, else MNIST.",
        "genreg embed runs/h32/best_genome_mnist_gen00600.pkl runs/h64/best_genome_mnist_gen00600.pkl "
        "--method umap --out maps",
    )
    p.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                   help="genome checkpoint (.pkl: genreg's format or GENREG's published one)")
    common.add_task(p, "the task in the run's config.toml beside CHECKPOINT, else mnist")
    p.add_argument("--method", choices=("pca", "umap"), default="pca",
                   help="the projection: pca (default) or umap (needs pip install 'genreg[embed]')")
    p.add_argument("--map-seed", dest="seed", type=int, default=0, metavar="S",
                   help="UMAP's seed, and the seed of the silhouette's sample when a test set has more than 10,000 "
                   "points (default: 0)")
    # --seed means "the run's seed" in every other command (genreg.cli.common); here it is the map's, so it is
    # accepted but documented under its own name
    p.add_argument("--seed", dest="seed", type=int, help=argparse.SUPPRESS)
    p.add_argument("--out", metavar="DIR", help="the folder to write the PNG, CSV and JSON files into (default: "
                   "the first CHECKPOINT's folder)")
    p.add_argument("--name", metavar="NAME", help="name the files NAME-<method>.png (and, for one checkpoint, "
                   "NAME-<method>.csv and .json); without it the name is the checkpoint's, or 'compare' for several")
    common.add_data_dir(p)
    p.set_defaults(func=cmd_embed)
