"""Evaluate one genome on a labelled set: accuracy, per-class accuracy, confusion matrix, timing."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from genreg.network.batch import SparseBatch
from genreg.genome.checkpoint import GenomeCheckpoint, load_genome
from genreg.errors import CheckpointError
from genreg.network.forward import genome_predict


def evaluate_genome(ckpt: GenomeCheckpoint, images: np.ndarray, labels: np.ndarray, n_classes: int = 10) -> dict:
    """Score ``ckpt`` on ``images: (N, n_inputs)`` with ``labels: (N,)`` in [0, n_classes).

    Prediction = argmax of the first ``n_classes`` outputs (GENREG's rule).
    Returns a plain dict (JSON-ready): n_correct, n_total, accuracy (%),
    per_class [{class, correct, total, accuracy}], confusion (n_classes x
    n_classes, rows = true class, columns = predicted), seconds (the forward pass,
    tiles included) and warmup_seconds (loading or compiling the kernels on one image).
    """
    layout = ckpt.layout
    if layout.n_inputs != images.shape[1]:
        raise CheckpointError(
            f"the genome takes {layout.n_inputs} inputs but the images have {images.shape[1]} pixels"
        )
    if layout.n_outputs < n_classes:
        raise CheckpointError(f"the genome has {layout.n_outputs} outputs, fewer than the {n_classes} classes")
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
            }
            for c in range(n_classes)
        ],
        "confusion": confusion.tolist(),
        "seconds": seconds,
        "warmup_seconds": warmup_seconds,
    }


def evaluate_checkpoint(path, images, labels, n_classes: int = 10) -> dict:
    """Load a genome checkpoint (either format) and evaluate it; adds checkpoint facts to the report."""
    t0 = time.perf_counter()
    ckpt = load_genome(path)
    load_seconds = time.perf_counter() - t0
    report = evaluate_genome(ckpt, images, labels, n_classes)
    report = {
        "checkpoint": str(Path(path)),
        "format": ckpt.source_format,
        "layout": ckpt.layout.to_dict(),
        "n_params": ckpt.layout.n_params,
        "trust": ckpt.trust,
        **report,
        "load_seconds": load_seconds,
    }
    for key in ("generation", "genome_id", "seed", "strategy"):
        if key in ckpt.metadata:
            report[key] = ckpt.metadata[key]
    return report


def format_report(report: dict, title: str = "MNIST test set") -> str:
    """Render an evaluation report as text: accuracy, per-class table, confusion matrix, timing."""
    lines = [
        f"checkpoint : {report.get('checkpoint', '-')} ({report.get('format', '-')} format)",
        f"network    : {'-'.join(map(str, report['layout']['sizes']))} "
        f"{report['layout']['hidden_activation']}, {report['n_params']} parameters, fitness {report['trust']:.4g}"
        f"{' (trust)' if report.get('strategy', 'genreg') == 'genreg' else ''}",
        f"{title:<11}: {report['n_correct']}/{report['n_total']} correct = {report['accuracy']:.2f}%",
        "",
        "per digit  :  " + "  ".join(f"{p['class']:>6d}" for p in report["per_class"]),
        "accuracy % :  " + "  ".join(f"{p['accuracy']:6.2f}" for p in report["per_class"]),
        "correct    :  " + "  ".join(f"{p['correct']:>6d}" for p in report["per_class"]),
        "total      :  " + "  ".join(f"{p['total']:>6d}" for p in report["per_class"]),
        "",
        "confusion matrix (rows: true digit, columns: predicted)",
        "       " + "".join(f"{c:>6d}" for c in range(len(report["confusion"]))),
    ]
    for c, row in enumerate(report["confusion"]):
        lines.append(f"  {c:>3d}  " + "".join(f"{v:>6d}" for v in row))
    lines += [
        "",
        f"time       : {report['seconds'] * 1e3:.1f} ms forward pass over {report['n_total']} images"
        f" (+ {report.get('load_seconds', 0.0) * 1e3:.1f} ms loading the checkpoint,"
        f" {report.get('warmup_seconds', 0.0) * 1e3:.0f} ms loading the compiled kernels)",
    ]
    return "\n".join(lines)


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
    from genreg.genome.checkpoint import _atomic_write

    text = json.dumps(jsonable(report), indent=2, allow_nan=False) + "\n"
    try:
        return _atomic_write(path, text.encode())
    except OSError as exc:
        raise GenregError(f"cannot write {path}: {exc.strerror or exc}") from None
