"""Shipped genomes (genreg.genome.evaluate): each scores on the MNIST test set what its .eval.json records."""

import json
from pathlib import Path

import pytest

from genreg.genome.evaluate import evaluate_checkpoint


SHIPPED = sorted((Path(__file__).resolve().parents[1] / "checkpoints" / "mnist").glob("*.pkl"))


def test_genomes_are_shipped():
    assert len(SHIPPED) >= 2 and all(p.with_suffix(".eval.json").is_file() for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_genome_scores_what_its_eval_report_says(path, mnist):
    """Each genome in checkpoints/mnist/ loads (through the restricted unpickler) and, on the
    official test set, gets exactly the confusion matrix its ``.eval.json`` records."""
    report = json.loads(path.with_suffix(".eval.json").read_text())
    fresh = evaluate_checkpoint(path, mnist.test.images, mnist.test.labels)
    assert fresh["layout"] == report["layout"] and fresh["n_total"] == report["n_total"] == 10000
    assert fresh["confusion"] == report["confusion"] and fresh["n_correct"] == report["n_correct"]
