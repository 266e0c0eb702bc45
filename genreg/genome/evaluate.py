"""Evaluate one genome on a labelled set: accuracy, per-class accuracy, confusion matrix, timing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genreg.network.batch import SparseBatch
from genreg.genome.checkpoint import GenomeCheckpoint, load_genome
from genreg.errors import CheckpointError, GenregError
from genreg.network.forward import genome_predict
from genreg.network.layout import Layout


def network_name(layout: Layout) -> str:
    """How reports name a network: its widths ``784-64-10``, or a ConvNet's shape ``28x28x1-c5x8-p2-10``."""
    return layout.shape_name() if layout.is_conv else "-".join(map(str, layout.sizes))


def fits(layout: Layout, n_inputs: int, n_outputs: int, input_shape=None) -> bool:
    """Whether a genome of ``layout`` can run on a task of ``n_inputs`` features and ``n_outputs`` outputs; a
    ConvNet also needs the task's image shape (``input_shape``, e.g. ``(28, 28)``) when the task has one."""
    if layout.n_inputs != n_inputs or layout.n_outputs < n_outputs:
        return False
    shape = tuple(int(v) for v in input_shape or ())
    if layout.is_conv and len(shape) in (2, 3):
        return tuple(layout.image) == shape + (1,) * (3 - len(shape))
    return True


def evaluate_genome(ckpt: GenomeCheckpoint, images: np.ndarray, labels: np.ndarray, n_classes: int = 10,
                    classes=None, *, source: str = "the genome", data: str = "the data have",
                    input_shape=None) -> dict:
    """Score ``ckpt`` on ``images: (N, n_inputs)`` with ``labels: (N,)`` in [0, n_classes).

    Prediction = argmax of the first ``n_classes`` outputs (GENREG's rule).
    classes: the ``n_classes`` class names (e.g. "A".."Z"), kept in the report when given.
    Returns a plain dict (JSON-ready): n_correct, n_total, accuracy (%),
    per_class [{class, name?, correct, total, accuracy}], classes?, confusion (n_classes x
    n_classes, rows = true class, columns = predicted), seconds (the forward pass,
    tiles included) and warmup_seconds (loading or compiling the kernels on one image).
    A genome whose sizes do not fit the images and classes (or, a ConvNet, the images' shape
    ``input_shape``): one CheckpointError naming ``source`` and its sizes, then ``data`` (e.g. "task
    alphabet has") and the sizes needed.
    """
    layout = ckpt.layout
    if not fits(layout, images.shape[1], n_classes, input_shape):
        shape = f"{'x'.join(map(str, input_shape))} images ({images.shape[1]} inputs)" if layout.is_conv and \
            input_shape else f"{images.shape[1]} inputs"
        raise CheckpointError(
            f"{source} is a {network_name(layout)} network but {data} {shape} and "
            f"{n_classes} classes: evaluate it on the task it was evolved for (--task)"
        )
    names = None if classes is None or len(classes) != n_classes else [str(c) for c in classes]
    if names == [str(c) for c in range(n_classes)]:  # digits: the class numbers say it all (reports as before)
        names = None
    # One image first: loads (or compiles) the kernels, so ``seconds`` is the forward pass itself.
    t_warm = time.perf_counter()
    genome_predict(layout, ckpt.weights, SparseBatch.from_dense(images[:1]), n_classes=n_classes)
    warmup_seconds = time.perf_counter() - t_warm
    t0 = time.perf_counter()
    predictions = genome_predict(layout, ckpt.weights, SparseBatch.from_dense(images), n_classes=n_classes)
    seconds = time.perf_counter() - t0
    labels = np.asarray(labels, dtype=np.int64)
    confusion = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(confusion, (labels, predictions), 1)
    totals = confusion.sum(axis=1)
    correct = np.diag(confusion)
    n_correct, n_total = int(correct.sum()), int(labels.shape[0])
    return {
        "n_correct": n_correct,
        "n_total": n_total,
        "accuracy": 100.0 * n_correct / max(1, n_total),
        "per_class": [
            {
                "class": c,
                "correct": int(correct[c]),
                "total": int(totals[c]),
                "accuracy": 100.0 * int(correct[c]) / max(1, int(totals[c])),
                **({"name": names[c]} if names else {}),
            }
            for c in range(n_classes)
        ],
        **({"classes": names} if names else {}),
        "confusion": confusion.tolist(),
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
    }


def evaluate_checkpoint(path, images, labels, n_classes: int = 10, classes=None, task: str = "",
                        input_shape=None) -> dict:
    """Load a genome checkpoint (either format) and evaluate it; adds checkpoint facts to the report.

    classes: the class names; default: those of the task the genome's metadata names (``task``
    key, written by evolution runs) when it has ``n_classes`` of them, and ``task`` is not another one.
    """
    t0 = time.perf_counter()
    ckpt = load_genome(path)
    load_seconds = time.perf_counter() - t0
    if classes is None:
        classes = _metadata_classes(ckpt, n_classes, task)
    report = evaluate_genome(ckpt, images, labels, n_classes, classes, source=str(path),
                             data=f"task {task} has" if task else "the data have", input_shape=input_shape)
    report = {
        "checkpoint": str(Path(path)),
        "format": ckpt.source_format,
        "layout": ckpt.layout.to_dict(),
        "n_params": ckpt.layout.n_params,
        "trust": ckpt.trust,
        **report,
        "load_seconds": load_seconds,
        **({"task": task} if task else {}),
    }
    for key in ("generation", "genome_id", "seed", "strategy"):
        if key in ckpt.metadata:
            report[key] = ckpt.metadata[key]
    return report


def _metadata_classes(ckpt: GenomeCheckpoint, n_classes: int, task: str = ""):
    """The class names of the task named in ``ckpt``'s metadata (if known without data, and ``n_classes``)."""
    from genreg.tasks.loaders import known_classes

    name = ckpt.metadata.get("task") if isinstance(ckpt.metadata, dict) else None
    if not isinstance(name, str) or (task and task.strip().lower() != name.strip().lower()):
        return None
    names = known_classes(name)
    return names if len(names) == n_classes else None


def _is_digits(report: dict) -> bool:
    """Whether the report is of MNIST (its task, else a genome that names no task): classes are digits, inputs images."""
    return report.get("task", "mnist") == "mnist"


def _class_table(report: dict) -> list[str]:
    """The per-class rows and the confusion matrix: digits (as before) or class numbers, or the classes' names."""
    per_class, names = report["per_class"], report.get("classes")
    if not names or names == [str(c) for c in range(len(per_class))]:
        word = "digit" if _is_digits(report) else "class"
        lines = [
            f"per {word:<7}:  " + "  ".join(f"{p['class']:>6d}" for p in per_class),
            "accuracy % :  " + "  ".join(f"{p['accuracy']:6.2f}" for p in per_class),
            "correct    :  " + "  ".join(f"{p['correct']:>6d}" for p in per_class),
            "total      :  " + "  ".join(f"{p['total']:>6d}" for p in per_class),
            "",
            f"confusion matrix (rows: true {word}, columns: predicted)",
            "       " + "".join(f"{c:>6d}" for c in range(len(report["confusion"]))),
        ]
        return lines + [f"  {c:>3d}  " + "".join(f"{v:>6d}" for v in row) for c, row in enumerate(report["confusion"])]
    width = max(len(n) for n in names)
    lines = [f"per class  : {'class':<{width}}  accuracy %  correct / total"]
    lines += [f"             {n:<{width}}  {p['accuracy']:10.2f}  {p['correct']:>7d} / {p['total']}"
              for n, p in zip(names, per_class)]
    cell = max(4, min(width, 12) + 1)
    short = [n[:cell - 1] for n in names]
    lines += ["", "confusion matrix (rows: true class, columns: predicted)",
              " " * (width + 2) + "".join(f"{n:>{cell}}" for n in short)]
    lines += [f"{n:<{width}}  " + "".join(f"{v:>{cell}d}" for v in row) for n, row in zip(names, report["confusion"])]
    return lines


def format_report(report: dict, title: str = "MNIST test set") -> str:
    """Render an evaluation report as text: accuracy, per-class table (class names when the report
    has them), confusion matrix, timing."""
    lines = [
        f"checkpoint : {report.get('checkpoint', '-')} ({report.get('format', '-')} format)",
        f"network    : {_report_network(report['layout'])} "
        f"{report['layout']['hidden_activation']}, {report['n_params']} parameters, fitness {report['trust']:.4g}"
        f"{' (trust)' if report.get('strategy', 'genreg') == 'genreg' else ''}",
        f"{title:<11}: {report['n_correct']}/{report['n_total']} correct = {report['accuracy']:.2f}%",
        "",
        *_class_table(report),
    ]
    lines += [
        "",
        f"time       : {report['seconds'] * 1e3:.1f} ms forward pass over {report['n_total']} "
        f"{'images' if _is_digits(report) or report['layout'].get('image') else 'inputs'}"
        f" (+ {report.get('load_seconds', 0.0) * 1e3:.1f} ms loading the checkpoint,"
        f" {report.get('warmup_seconds', 0.0) * 1e3:.0f} ms loading the compiled kernels)",
    ]
    return "\n".join(lines)


def _report_network(layout: dict) -> str:
    """A report's network: ``784-64-10``, or a ConvNet's shape."""
    if layout.get("image") is not None:
        try:
            return Layout.from_dict(layout).shape_name()
        except GenregError:
            pass
    return "-".join(map(str, layout["sizes"]))


def jsonable(value):
    """``value`` as strict JSON data: sets and tuples become lists, bytes hex strings, complex numbers
    ``[re, im]``, dict keys strings, numpy values Python ones, NaN and infinities strings."""
    if isinstance(value, dict):
        return {str(k) if not isinstance(k, str) else k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return sorted((jsonable(v) for v in value), key=repr)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    if isinstance(value, complex):
        return [jsonable(value.real), jsonable(value.imag)]
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def write_report(path, report: dict) -> Path:
    """Write ``report`` as JSON to ``path``: built completely first, then written atomically
    (GenregError naming the path if it cannot be written)."""
    import json

    from genreg.errors import GenregError
    from genreg.atomic import write_atomic

    text = json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n"
    try:
        return write_atomic(path, text.encode())
    except OSError as exc:
        raise GenregError(f"cannot write {path}: {exc.strerror or exc}") from None
