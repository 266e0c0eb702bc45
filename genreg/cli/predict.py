"""``genreg predict``: one saved model (a genome pickle or an hpo ``best_model.h5``) on new inputs.

The model's kind is read from the file (HDF5 signature: an hpo model; else a genome pickle); the
input is an image file (.png/.pgm, or .npy/.npz arrays of images) for an image genome, a CSV row
(``--input v1,v2,...``) or CSV file for a tabular model, and ``--angle DEG`` for a trig model.
A tabular genome's input scaling is rebuilt from its task (the run's config.toml, or ``--task``).
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np

from genreg.cli import common
from genreg.errors import CheckpointError, ConfigError
from genreg.genome.checkpoint import HDF5_SIGNATURE

IMAGE_SUFFIXES = (".png", ".pgm", ".pnm", ".jpg", ".jpeg", ".bmp")
#: Files that hold images: image files and NumPy arrays of images.
IMAGE_FILES = IMAGE_SUFFIXES + (".npy", ".npz")
MAX_ROWS_PRINTED = 20


# ----------------------------------------------------------------------------- reading inputs
def read_image_inputs(path, n_inputs: int) -> np.ndarray:
    """Images from ``path`` as ``(n, n_inputs)`` network inputs: uint8 pixels, or floats in [0, 1].

    .png/.pgm/...: one grey image (colour is converted); .npy/.npz: ``(H, W)``, ``(n, H, W)`` or ``(n, H*W)``
    arrays (an .npz's ``X`` or ``images`` array, or its only one).
    """
    path = Path(path)
    side = int(round(n_inputs ** 0.5))
    if path.suffix.lower() in IMAGE_SUFFIXES:
        try:
            from PIL import Image

            with Image.open(path) as im:
                X = np.asarray(im.convert("L"), dtype=np.uint8)
        except ImportError:  # pragma: no cover - Pillow comes with matplotlib
            raise ConfigError(f"{path}: reading images needs Pillow (pip install pillow); or save it as .npy") from None
        except OSError as exc:
            raise ConfigError(f"{path}: not a readable image ({exc})") from None
    elif path.suffix.lower() in (".npy", ".npz"):
        X = _load_array(path)
    else:
        raise ConfigError(f"{path}: an image genome takes a .png/.pgm image or a .npy/.npz array of images "
                          f"({side}x{side} grey)")
    X = np.asarray(X)
    if X.dtype.kind not in "uif" or X.size == 0:
        raise ConfigError(f"{path}: expected numeric pixels, got an array of {X.dtype} with shape {X.shape}")
    if X.size % n_inputs or X.shape[-1] not in (n_inputs, side):
        raise ConfigError(f"{path}: holds an array of shape {X.shape}; this genome takes {side}x{side} grey "
                          f"images ({n_inputs} pixels each)")
    X = X.reshape(-1, n_inputs)
    if X.dtype.kind == "f":
        if not np.isfinite(X).all() or X.min() < 0:
            raise ConfigError(f"{path}: pixels must be finite and >= 0 (uint8 0-255, or floats in [0, 1])")
        X = (X / 255.0 if X.max() > 1.0 else X).astype(np.float32)
    elif X.dtype != np.uint8:
        if X.min() < 0 or X.max() > 255:
            raise ConfigError(f"{path}: integer pixels must be in 0-255")
        X = X.astype(np.uint8)
    return X


def _load_array(path: Path) -> np.ndarray:
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: not a NumPy file ({exc})") from None
    if isinstance(data, np.ndarray):
        return data
    with data:
        keys = list(data.keys())
        key = next((k for k in ("X", "images", "X_test") if k in keys), keys[0] if len(keys) == 1 else None)
        if key is None:
            raise ConfigError(f"{path}: holds arrays {', '.join(keys)}; name the images X (or save one array)")
        return data[key]


def read_table_inputs(source: str, n_inputs: int, names: tuple = (), what: str = "", row: bool = False) -> np.ndarray:
    """Raw feature rows ``(n, n_inputs) float64`` from ``"v1,v2,..."`` (``row``, or a source that is no file) or a
    CSV file (a header row is skipped; with ``n_inputs + 1`` columns and a header naming the features, the extra
    target column is dropped)."""
    path = Path(source)
    if not row and path.suffix.lower() in IMAGE_FILES:
        raise ConfigError(f"{path}: {what or 'the model'} takes rows of {n_inputs} feature values, not images: give "
                          "--input v1,v2,... or a .csv file of rows")
    if not row and (path.suffix.lower() in (".csv", ".txt") or (_is_file(path) and not _numbers(source.split(",")))):
        if not path.is_file():
            raise ConfigError(f"{path}: no such CSV file")
        with open(path, newline="", encoding="utf-8", errors="replace") as fh:
            rows = [r for r in csv.reader(fh) if any(c.strip() for c in r)]
        header = rows[0] if rows and not _numbers(rows[0]) else None
        rows = rows[1:] if header else rows
        if header and names and len(header) > n_inputs and set(names) <= {h.strip() for h in header}:
            index = {h.strip(): i for i, h in enumerate(header)}
            rows = [[r[index[n]] for n in names] for r in rows]
        where = str(path)
    else:
        rows = [source.split(",")]
        where = "--input"
    if not rows:
        raise ConfigError(f"{where}: no rows of numbers")
    out = np.empty((len(rows), n_inputs))
    for i, row in enumerate(rows):
        cells = [c.strip() for c in row]
        bad = next((c for c in cells if not _numbers([c])), None)
        if bad is not None:
            raise ConfigError(f"{where}: {bad!r} is not a number")
        if len(cells) != n_inputs:
            named = f" ({', '.join(names)})" if names and len(names) <= 20 else ""
            raise ConfigError(f"{where}{f' row {i + 1}' if where != '--input' else ''} has {len(cells)} values; "
                              f"{what or 'the model'} needs {n_inputs}{named}")
        out[i] = [float(c) for c in cells]
    if not np.isfinite(out).all():
        raise ConfigError(f"{where}: every value must be finite")
    return out


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # e.g. a row of values too long to be a file name
        return False


def _numbers(cells) -> bool:
    try:
        [float(c) for c in cells]
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- models
def model_kind(path) -> str:
    """``"hpo"`` (an HDF5 ``best_model.h5``) or ``"genome"`` (a pickle); ConfigError for anything else."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"{path} is a folder; predict takes a model file: a best_genome_*.pkl of an evolution "
                          "run or the best_model.h5 of a search")
    if not path.exists():
        raise CheckpointError(f"{path}: no such model file")
    if path.suffix.lower() in (".h5", ".hdf5"):
        return "hpo"
    if path.suffix.lower() in (".pkl", ".pickle"):
        return "genome"
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise CheckpointError(f"{path}: cannot read the model ({exc.strerror})") from None
    if head == HDF5_SIGNATURE:
        return "hpo"
    if head[:1] == b"\x80":  # a pickle (protocol 2+)
        return "genome"
    raise CheckpointError(f"{path} is neither a genome pickle (.pkl from genreg evolve) nor an hpo model "
                          "(best_model.h5 from genreg hpo)")


def run_config(genome, checkpoint) -> dict | None:
    """The config.toml of the run a genome came from (its recorded run directory, else the folder it sits in, else
    ``<name>.config.toml`` beside it, as genomes in checkpoints/ ship), or None when there is none."""
    from genreg.config import load_toml

    checkpoint = Path(checkpoint).resolve()
    candidates = [checkpoint.parent / "config.toml", checkpoint.with_name(checkpoint.stem + ".config.toml")]
    if genome.metadata.get("run_dir"):
        candidates.insert(0, Path(str(genome.metadata["run_dir"])) / "config.toml")
    config = next((c for c in candidates if c.is_file()), None)
    return None if config is None else load_toml(config)


def builtin_spec(name) -> str | None:
    """The spec of the built-in task a genome's metadata names (its task's name: ``wine-red`` is ``wine``), else None."""
    from genreg.tasks.loaders import KNOWN_SPECS

    spec = {"wine-red": "wine"}.get(name, name) if isinstance(name, str) else None
    return spec if spec in KNOWN_SPECS and ":" not in spec else None


def genome_task(genome, checkpoint, task_spec=None, target=None, data_dir=None):
    """The task a genome was evolved on, loaded (for its scaling, classes and splits): ``task_spec`` (with
    ``target``), else the task in its run's config.toml (``run_config``), else the built-in task its metadata
    names; None when none of them names one.

    The splits are rebuilt with the run's seed and validation size (its config.toml, else the genome's
    recorded seed): a CSV's or an npz's test split depends on the seed, and another seed's would hold rows
    the genome was trained on."""
    from genreg.api import as_task

    cfg = run_config(genome, checkpoint)
    if not task_spec and cfg is None:  # no run beside it: a built-in task its metadata names
        task_spec = builtin_spec(genome.metadata.get("task"))
        if task_spec is None:
            return None
    spec = task_spec or str(cfg.get("task", "mnist"))
    seed = cfg.get("seed", 0) if cfg is not None else genome.metadata.get("seed", 0)
    kwargs = {"seed": int(seed) if isinstance(seed, int) else 0}
    same_task = cfg is not None and str(cfg.get("task", "mnist")) == spec
    kwargs["target"] = target or (cfg.get("target") or None if same_task else None)
    if same_task and "validation_size" in cfg:
        kwargs["validation_size"] = int(cfg["validation_size"])
    return as_task(spec, data_dir, **kwargs)


def _softmax(logits: np.ndarray) -> np.ndarray:
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def _print_classes(logits: np.ndarray, classes=(), names=None) -> None:
    p = _softmax(logits)
    labels = np.argmax(logits, axis=1)
    for i, label in enumerate(labels[:MAX_ROWS_PRINTED]):
        name = classes[label] if label < len(classes) else str(label)
        lead = f"{names[i]}: " if names else (f"row {i + 1}: " if len(labels) > 1 else "")
        print(f"{lead}prediction: class {name} (softmax probability {p[i, label]:.4f})")
    if len(labels) > MAX_ROWS_PRINTED:
        counts = np.bincount(labels, minlength=logits.shape[1])
        print(f"... {len(labels)} inputs in all; predicted classes: "
              + ", ".join(f"{classes[k] if k < len(classes) else k}: {c}" for k, c in enumerate(counts) if c))


def _print_values(values: np.ndarray, target: str = "") -> None:
    what = f" ({target})" if target else ""
    for i, row in enumerate(values[:MAX_ROWS_PRINTED]):
        lead = f"row {i + 1}: " if len(values) > 1 else ""
        print(f"{lead}prediction: {', '.join(f'{v:.6g}' for v in row)}{what}")
    if len(values) > MAX_ROWS_PRINTED:
        print(f"... {len(values)} rows in all")


def predict_genome(args: argparse.Namespace) -> int:
    """Predict with a genome pickle: images for an image genome, CSV rows for a tabular one."""
    from genreg.api import Genome

    genome = Genome.load(args.model)
    n_in, layout = genome.layout.n_inputs, genome.layout
    if args.angle is not None:
        raise ConfigError(f"--angle is for a trig model of genreg hpo; {args.model} is a genome ({layout.describe()}): "
                          "give it " + ("an image file" if _is_image_genome(genome, args.model)
                                        else "--input v1,v2,... or a CSV file"))
    source = args.input if args.input is not None else args.inputs
    if _is_image_genome(genome, args.model) and not args.task:
        if source is None or args.input is not None:
            raise ConfigError(f"{args.model} is an image genome ({layout.describe()}): give it an image file "
                              f"(.png/.pgm, 28x28 grey) or a .npy/.npz array of images")
        X = read_image_inputs(source, n_in)
        task_name = str(genome.metadata.get("task", "mnist"))
        classes = _image_classes(task_name, layout.n_outputs)
        logits = genome.outputs(X)[:, :len(classes) or layout.n_outputs]
        names = None if len(X) > 1 else [Path(source).name]
        _print_classes(logits, classes, names)
        print(f"model: genome {layout.describe()} of task {task_name}")
        return 0
    if source is None:
        raise ConfigError(f"{args.model} is a genome on {n_in} features: give --input v1,v2,... or a CSV file of rows")
    task = genome_task(genome, args.model, args.task, args.target, args.data_dir)
    if task is None:
        raise ConfigError(f"{args.model}: its run's config.toml is not beside it, so its task (and the scaling of its "
                          f"inputs) is unknown: name it with --task SPEC (e.g. --task wine, --task csv:FILE --target COL)")
    if task.n_inputs != n_in or layout.n_outputs < task.n_outputs:
        raise ConfigError(f"{args.model} is {layout.describe()} but task {task.name} has {task.n_inputs} inputs and "
                          f"{task.n_outputs} output(s): give the genome's own --task")
    if task.x_mean is None and args.input is None and Path(source).suffix.lower() in IMAGE_FILES:
        X = read_image_inputs(source, n_in)  # an image task's genome given image files
    else:
        X = task.features_from_raw(read_table_inputs(source, n_in, tuple(task.feature_names), f"task {task.name}",
                                                     row=args.input is not None))
    out = genome.outputs(X)[:, :task.n_outputs]
    if task.is_classification:
        _print_classes(out, tuple(str(c) for c in task.classes) or _image_classes(task.name, task.n_outputs))
    else:
        _print_values(task.targets_to_raw(out), task.target)
    print(f"model: genome {layout.describe()} of task {task.describe() if hasattr(task, 'describe') else task.name}")
    return 0


def _is_image_genome(genome, checkpoint) -> bool:
    """Whether ``genome`` reads 28x28 grey images: a ConvNet, or a genome of an image task (by its metadata, else
    its run's config.toml); a genome that names no task (GENREG's published format) when it has 784 inputs."""
    from genreg.tasks.loaders import IMAGE_TASKS

    if genome.layout.n_inputs != 784:
        return False
    if genome.layout.image is not None:
        return True
    task = genome.metadata.get("task")
    if not isinstance(task, str):
        cfg = run_config(genome, checkpoint)
        task = str(cfg.get("task", "mnist")) if cfg is not None else None
    return task is None or task in IMAGE_TASKS


def _image_classes(task_name: str, n: int) -> tuple:
    if task_name == "fashion-mnist":
        try:
            from genreg.tasks.mnist import FASHION_CLASSES

            return tuple(FASHION_CLASSES)
        except ImportError:
            pass
    return tuple(str(i) for i in range(min(n, 10)))


def predict_hpo(args: argparse.Namespace) -> int:
    """Predict with an hpo ``best_model.h5``: CSV rows, or an angle for a trig model."""
    from genreg.hpo.model import load_model, predict_angle

    model = load_model(args.model)
    info = (f"model: {model.layout.shape_name()} trained by genreg hpo on {model.task_spec or model.task} "
            f"(validation {model.metric} {model.val_metric:.3g}, test {model.test_metric:.3g})")
    source = args.input if args.input is not None else args.inputs
    if args.angle is not None:
        if source is not None:
            raise ConfigError("give --angle DEG or input values, not both")
        pred, true, model = predict_angle(args.model, args.angle)
        print(f"angle {args.angle:g} deg: prediction {pred:.6f}   cos({args.angle:g} deg) = {true:.6f}   "
              f"error {pred - true:+.6f}")
        if not 0.0 <= args.angle <= 360.0:
            print("note: the model was trained on angles in [0, 360] deg; outside that range it extrapolates")
        print(info)
        return 0
    n = model.layout.n_inputs
    if source is None:
        hint = " (or --angle DEG for this trig model)" if model.task == "trig" else ""
        raise ConfigError(f"{args.model} is an hpo model on {n} features: give --input v1,v2,... or a CSV file "
                          f"of rows{hint}")
    if model.kind == "classification" and n == 784 and Path(source).suffix.lower() in IMAGE_FILES:
        X = read_image_inputs(source, n)  # uint8 pixels, or floats in [0, 1]
        X = X.astype(np.float64) * (255.0 if X.dtype.kind == "f" else 1.0)  # raw pixels: the model scales them
    else:
        X = read_table_inputs(source, n, model.feature_names, f"{args.model}", row=args.input is not None)
    out = model.predict(X)
    if model.loss == "mse":
        _print_values(out, model.target)
    else:
        _print_classes(out, model.classes)
    print(info)
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    if args.input is not None and args.inputs is not None:
        raise ConfigError("give the input once: a file (INPUT) or --input v1,v2,...")
    if model_kind(args.model) == "hpo":
        if args.task:
            raise ConfigError("--task is for genomes; an hpo model carries its own task and scaling")
        return predict_hpo(args)
    return predict_genome(args)


def add_parser(sub) -> None:
    """Register ``genreg predict``."""
    p = common.add_command(
        sub, "predict",
        "MODEL is a genome pickle "
        "(best_genome_*.pkl of `genreg evolve`) or the best_model.h5 of `genreg hpo`; its kind is read from the "
        "file. Inputs: an image genome takes a .png/.pgm image (28x28 grey) or a .npy/.npz array of images and "
        "prints the class and its softmax probability; a tabular model takes --input v1,v2,... (raw values, in "
        "the data's order and units) or a CSV file of rows (a header row is skipped) and prints the value(s) in "
        "the data's units or the class; a trig model of `genreg hpo` takes --angle DEG. A tabular genome's "
        "inputs are scaled as in its run (its config.toml beside the pickle) or as --task's.",
        "genreg predict runs/first/best_genome_mnist_gen00050.pkl digit.png\n"
        "  genreg predict runs/hpo-wine/best_model.h5 --input 7.4,0.7,0,1.9,0.076,11,34,0.9978,3.51,0.56,9.4",
    )
    p.add_argument("model", metavar="MODEL", help="a genome .pkl or an hpo best_model.h5")
    p.add_argument("inputs", metavar="INPUT", nargs="?",
                   help="a file of inputs: .png/.pgm image, .npy/.npz images, or a .csv of feature rows")
    p.add_argument("--input", metavar="V1,V2,...", help="one row of raw feature values, comma-separated")
    p.add_argument("--angle", type=float, metavar="DEG", help="angle in degrees (trig models of genreg hpo)")
    p.add_argument("--task", metavar="SPEC", help="genomes: the task whose scaling to use, when the run's "
                   "config.toml is not beside the pickle (" + common.TASK_SPECS + ")")
    p.add_argument("--target", metavar="COL", help="with --task csv:FILE: the column the genome predicts")
    common.add_data_dir(p)
    p.set_defaults(func=cmd_predict)
