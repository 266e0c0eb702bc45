"""Alphabet genomes (genreg.genome): both formats at 10000-128-26, letters in the report, sizes checked."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest

from genreg.config import load_toml

from genreg.errors import CheckpointError
from genreg.genome.checkpoint import load_genome, save_genome
from genreg.genome.evaluate import evaluate_checkpoint, format_report
from genreg.network.layout import Layout
from genreg.tasks import load_task

SHIPPED = sorted((Path(__file__).resolve().parents[1] / "checkpoints" / "alphabet").glob("*.pkl"))


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task("alphabet", tmp_path_factory.mktemp("root"))


def published_controller(path: Path, w1, b1, w2, b2) -> Path:
    """A pickle laid out as GENREG's published controller dict (nested lists of floats)."""
    obj = {"controller": {"input_size": w1.shape[1], "hidden_size": w1.shape[0], "output_size": w2.shape[0],
                          "w1": w1.tolist(), "b1": b1.tolist(), "w2": w2.tolist(), "b2": b2.tolist()},
           "genome": {"id": 7, "trust": 123.5, "proteins": []}}
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def test_published_alphabet_controller_reads_and_scores(tmp_path, task):
    rng = np.random.default_rng(0)
    w1 = rng.normal(0, 0.05, (128, 10000)).astype(np.float32)
    b1 = rng.normal(0, 0.05, 128).astype(np.float32)
    w2 = rng.normal(0, 0.5, (26, 128)).astype(np.float32)
    b2 = np.zeros(26, np.float32)
    path = published_controller(tmp_path / "best_genome_alphabet_gen01862.pkl", w1, b1, w2, b2)
    ckpt = load_genome(path)
    assert ckpt.source_format == "genreg-published" and ckpt.layout.sizes == (10000, 128, 26)
    assert ckpt.layout.n_params == 1_283_482  # 10000*128 + 128 + 128*26 + 26 (GENREG quotes 1,290,394)
    report = evaluate_checkpoint(path, task.X_test, task.y_test, n_classes=26, classes=task.classes)
    x = Task_float(task.X_test)
    expected = np.argmax(np.tanh(x @ w1.T + b1) @ w2.T + b2, axis=1)
    assert report["n_correct"] == int((expected == task.y_test).sum())
    assert report["classes"] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    text = format_report(report, "alphabet test set")
    assert "per digit" not in text
    for letter in "AMZ":
        assert any(line.split()[:1] == [letter] for line in text.splitlines())


def Task_float(X):
    return X.astype(np.float32) / np.float32(255.0)


def test_own_format_names_letters_from_its_metadata(tmp_path, task):
    layout = Layout((10000, 8, 26), "tanh")
    row = np.random.default_rng(1).normal(0, 0.1, layout.n_params).astype(np.float32)
    path = save_genome(tmp_path / "g.pkl", layout, row, metadata={"task": "alphabet"})
    report = evaluate_checkpoint(path, task.X_test, task.y_test, n_classes=26)  # no names given: the metadata's
    assert [p["name"] for p in report["per_class"]] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    assert "confusion matrix (rows: true class" in format_report(report, "alphabet test set")
    json.dumps(report)


def test_mnist_reports_keep_digits(tmp_path):
    layout = Layout((784, 4, 10), "tanh")
    row = np.zeros(layout.n_params, np.float32)
    path = save_genome(tmp_path / "m.pkl", layout, row, metadata={"task": "mnist"})
    X, y = np.zeros((3, 784), np.uint8), np.array([0, 1, 2])
    report = evaluate_checkpoint(path, X, y)
    assert "classes" not in report and "name" not in report["per_class"][0]
    assert "per digit" in format_report(report)


@pytest.mark.parametrize("sizes", [(784, 8, 10), (10000, 8, 10)])
def test_sizes_that_do_not_fit_the_task_are_one_clear_error(tmp_path, task, sizes):
    layout = Layout(sizes, "tanh")
    path = save_genome(tmp_path / "x.pkl", layout, np.zeros(layout.n_params, np.float32))
    with pytest.raises(CheckpointError) as err:
        evaluate_checkpoint(path, task.X_test, task.y_test, n_classes=26, task="alphabet")
    msg = str(err.value)
    assert "\n" not in msg and "x.pkl" in msg and "-".join(map(str, sizes)) in msg and "task alphabet has 10000 inputs and 26 classes" in msg


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_alphabet_genomes_score_what_their_reports_say(path, task, tmp_path):
    """Every genome in checkpoints/alphabet/ scores on its own task (its config) exactly what its eval report
    says; the published protocol's genome scores 26/26."""
    report = json.loads(path.with_suffix(".eval.json").read_text())
    name = load_toml(path.with_suffix(".config.toml"))["task"]
    own = task if name == "alphabet" else load_task(name, tmp_path)
    fresh = evaluate_checkpoint(path, own.X_test, own.y_test, n_classes=26)
    assert fresh["n_correct"] == report["n_correct"] and fresh["confusion"] == report["confusion"]
    assert fresh["classes"] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    if "genreg-protocol" in path.name:
        assert report["n_correct"] == 26


def test_cli_eval_of_a_published_alphabet_pickle_prints_letters(tmp_path, task, capsys):
    """`genreg eval FILE --task alphabet` on GENREG's format (no metadata): the task's letters name the classes."""
    from genreg.cli.main import main

    rng = np.random.default_rng(1)
    path = published_controller(tmp_path / "g.pkl", rng.normal(0, 0.05, (128, 10000)), rng.normal(0, 0.05, 128),
                                rng.normal(0, 0.5, (26, 128)), np.zeros(26))
    assert main(["eval", str(path), "--task", "alphabet", "--data-dir", str(tmp_path / "root")]) == 0
    rows = [line.split() for line in capsys.readouterr().out.splitlines() if line.strip().endswith("/ 1")]
    assert [r[-5] for r in rows] == list("ABCDEFGHIJKLMNOPQRSTUVWXYZ")  # letters, not 0..25


def test_reports_of_other_tasks_say_class_not_digit(tmp_path):
    layout = Layout((16, 4, 3), "tanh")
    path = save_genome(tmp_path / "t.pkl", layout, np.zeros(layout.n_params, np.float32), metadata={"task": "codes"})
    X, y = np.zeros((3, 16), np.uint8), np.array([0, 1, 2])
    text = format_report(evaluate_checkpoint(path, X, y, n_classes=3, task="codes"))
    assert "per class" in text and "true class" in text and "digit" not in text and "over 3 inputs" in text
