"""`genreg eval` end to end: both checkpoint formats, JSON report, clean errors."""

import json
import pickle

import numpy as np
import pytest

from genreg import Layout
from genreg.genome.checkpoint import save_genome, save_genreg_published
from genreg.cli.main import main
from genreg.genome.evaluate import evaluate_genome
from genreg.genome.checkpoint import load_genome
from genreg.network.population import Population


@pytest.fixture(scope="module")
def genome():
    layout = Layout((784, 64, 10), "tanh")
    return layout, Population.random(layout, 1, seed=3).W[0]


def numpy_accuracy(layout, w, images, labels):
    W0, b0, W1, b1 = (layout.view(w, n).astype(np.float64) for n in ("W0", "b0", "W1", "b1"))
    logits = np.tanh(images / 255.0 @ W0 + b0) @ W1 + b1
    return np.argmax(logits[:, :10], axis=1)


def test_eval_own_format_prints_and_writes_json(tmp_path, mnist, mnist_dir, genome, capsys):
    layout, w = genome
    path = save_genome(tmp_path / "g.pkl", layout, w, trust=12.5, metadata={"generation": 7})
    out_json = tmp_path / "report.json"
    assert main(["eval", str(path), "--data-dir", str(mnist_dir), "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    report = json.loads(out_json.read_text())
    expected = numpy_accuracy(layout, w, mnist.test_images, mnist.test_labels)
    n_correct = int((expected == mnist.test_labels).sum())
    # The float32 kernel and the float64 twin may disagree only on near-ties.
    assert abs(report["n_correct"] - n_correct) <= 2
    assert report["n_total"] == 10000
    assert f"{report['n_correct']}/10000" in text and f"{report['accuracy']:.2f}%" in text
    assert "confusion matrix" in text and "per digit" in text
    confusion = np.array(report["confusion"])
    assert confusion.shape == (10, 10) and confusion.sum() == 10000
    assert confusion.sum(axis=1).tolist() == np.bincount(mnist.test_labels, minlength=10).tolist()
    assert [p["correct"] for p in report["per_class"]] == np.diag(confusion).tolist()
    assert report["generation"] == 7 and report["trust"] == 12.5 and report["format"] == "genreg"


def test_eval_published_format_matches_own_format(tmp_path, mnist, mnist_dir, genome):
    layout, w = genome
    own = evaluate_genome(load_genome(save_genome(tmp_path / "a.pkl", layout, w)), mnist.test_images, mnist.test_labels)
    published = load_genome(save_genreg_published(tmp_path / "b.pkl", layout, w, genome_id=4))
    assert published.source_format == "genreg-published"
    other = evaluate_genome(published, mnist.test_images, mnist.test_labels)
    assert other["confusion"] == own["confusion"]


def test_eval_published_with_extra_outputs_uses_first_ten(tmp_path, mnist, mnist_dir):
    layout = Layout((784, 16, 12), "tanh")
    w = Population.random(layout, 1, seed=5).W[0]
    path = save_genreg_published(tmp_path / "c.pkl", layout, w)
    out_json = tmp_path / "r.json"
    assert main(["eval", str(path), "--data-dir", str(mnist_dir), "--json", str(out_json)]) == 0
    report = json.loads(out_json.read_text())
    expected = numpy_accuracy(layout, w, mnist.test_images, mnist.test_labels)
    assert abs(report["n_correct"] - int((expected == mnist.test_labels).sum())) <= 2


class Evil:
    def __reduce__(self):
        import os

        return (os.system, ("touch PWNED",))


@pytest.mark.parametrize("case", ["hostile", "truncated", "missing", "wrong_inputs"])
def test_eval_bad_checkpoints_exit_cleanly(tmp_path, mnist_dir, genome, capsys, case, monkeypatch):
    monkeypatch.chdir(tmp_path)
    layout, w = genome
    path = tmp_path / "bad.pkl"
    if case == "hostile":
        path.write_bytes(pickle.dumps(Evil()))
    elif case == "truncated":
        data = save_genome(tmp_path / "ok.pkl", layout, w).read_bytes()
        path.write_bytes(data[: len(data) // 2])
    elif case == "wrong_inputs":
        small = Layout((100, 8, 10))
        save_genome(path, small, Population.random(small, 1, seed=0).W[0])
    assert main(["eval", str(path), "--data-dir", str(mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genreg: error:") and "Traceback" not in err
    assert not (tmp_path / "PWNED").exists()


def test_help_for_every_subcommand(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0
    assert "--data-dir" in capsys.readouterr().out
