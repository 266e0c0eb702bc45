"""The hybrid study's FGSM as published, beside the correct one; the epsilon sweep; summaries over runs; CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import naive
from genreg.cli import main as cli
from genreg.errors import ConfigError
from genreg.hybrid import attacks
from genreg.hybrid.attack_sweep import parse_epsilons
from genreg.network import backprop, sgd
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.tasks import Task
from helpers import one_error_line, tiny_hybrid_run


@pytest.fixture(scope="module")
def trained(mnist):
    """A 784-32-10 network trained 2 epochs on 1000 images, and 300 test images (float32 in [0, 1])."""
    layout = Layout((784, 32, 10), "relu")
    row = Population.random(layout, 1, seed=0).W[0]
    X = Task.as_float(mnist.train_images[:1000])
    sgd.train(layout, row, X, mnist.train_labels[:1000].astype(np.int64), sgd.TrainConfig(epochs=2, lr=0.05), seed=0)
    return layout, row, Task.as_float(mnist.test_images[:300]), mnist.test_labels[:300].astype(np.int64)


def _per_image_gradients(layout, row, X, y):
    """dL/dx of each image alone (a batch of one, as the notebook's loader)."""
    return np.concatenate([backprop.input_gradient(layout, row, X[i : i + 1], y[i : i + 1])[1]
                           for i in range(X.shape[0])])


def _twin(layout, row, X, y, epsilon):
    return naive.published_fgsm(X, _per_image_gradients(layout, row, X, y), backprop.predict(layout, row, X), y,
                                epsilon)


@pytest.mark.parametrize("epsilon", [0.05, 0.2])
def test_published_attack_equals_the_notebooks_steps_on_random_images(epsilon):
    """0.05: no clamp binds; 0.2 > mean 0.1307: the notebook's clamp at 0 binds for dark pixels pushed down."""
    rng = np.random.default_rng(1)
    layout = Layout((784, 24, 10), "relu")
    row = Population.random(layout, 1, seed=3).W[0]
    X = rng.random((200, 784), dtype=np.float32)
    X[:, :100] = 0.0  # black borders, as MNIST
    y = rng.integers(0, 10, 200)
    adv = attacks.fgsm(layout, row, X, y, **attacks.published_fgsm(epsilon))
    np.testing.assert_allclose(adv, _twin(layout, row, X, y, epsilon), rtol=0, atol=2e-6)


def test_published_attack_equals_the_twin_on_a_trained_network(trained):
    layout, row, X, y = trained
    adv = attacks.craft(layout, row, X, y, 0.05, published=True)
    np.testing.assert_allclose(adv, _twin(layout, row, X, y, 0.05), rtol=0, atol=2e-6)


def test_published_effective_epsilon_is_unclipped_and_pixels_leave_the_unit_range(trained):
    layout, row, X, y = trained
    p = attacks.published_fgsm(0.05)
    assert p["epsilon"] == 0.05 / 0.3081 and abs(p["epsilon"] - 0.1623) < 1e-4
    assert p["clip"] == (-0.1307 / 0.3081, (1 - 0.1307) / 0.3081) and p["skip_misclassified"]
    adv = attacks.fgsm(layout, row, X, y, **p)
    right = backprop.predict(layout, row, X) == y
    step = np.abs(adv[right] - X[right])
    np.testing.assert_allclose(step[step > 0], 0.05 / 0.3081, rtol=1e-5)
    assert (step > 0).mean() > 0.99  # the clamp never binds: every pixel moves by the full step
    assert adv.min() < -0.16 and adv.max() > 1.16


def test_misclassified_images_pass_unattacked(trained):
    layout, row, X, y = trained
    wrong = backprop.predict(layout, row, X) != y
    assert 0 < wrong.sum() < len(y)
    adv = attacks.craft(layout, row, X, y, 0.05, published=True)
    assert np.array_equal(adv[wrong], X[wrong]) and not np.array_equal(adv[~wrong], X[~wrong])
    # accuracy divides by every image: the source's own accuracy counts nothing it got wrong
    assert backprop.accuracy(layout, row, adv, y) <= 1 - wrong.mean()


def test_the_correct_attack_still_clips_and_is_unchanged(trained):
    layout, row, X, y = trained
    adv = attacks.craft(layout, row, X, y, 0.05)
    assert adv.min() >= 0 and adv.max() <= 1 and np.abs(adv - X).max() <= 0.05 + 1e-7
    _, dX = backprop.input_gradient(layout, row, X, y)
    assert np.array_equal(adv, np.clip(X + np.float32(0.05) * np.sign(dX), 0.0, 1.0))
    published = attacks.craft(layout, row, X, y, 0.05, published=True)
    assert backprop.accuracy(layout, row, published, y) < backprop.accuracy(layout, row, adv, y)


def test_the_batch_gradient_has_the_per_image_gradients_sign(trained):
    """The mean loss over B images has, for image i, the gradient of image i's loss divided by B."""
    layout, row, X, y = trained
    _, batch = backprop.input_gradient(layout, row, X, y)
    single = _per_image_gradients(layout, row, X, y)
    np.testing.assert_allclose(single, batch * len(y), rtol=1e-3, atol=1e-7 * np.abs(single).max())
    assert np.array_equal(np.sign(single), np.sign(batch))


def test_pgd_has_no_published_mode(trained):
    layout, row, X, y = trained
    with pytest.raises(ConfigError, match="published"):
        attacks.craft(layout, row, X[:5], y[:5], 0.05, method="pgd", published=True)


def test_the_best_source_is_the_first_of_the_most_accurate():
    M = np.array([[0.1, 0.5, 0.6], [0.7, 0.2, 0.9], [0.3, 0.4, 0.05]])
    best = attacks.best_source(M, [0.9, 0.95, 0.95])
    assert best["index"] == 1 and best["self"] == 0.2
    assert best["transfer"] == {"mean": 0.8, "min": 0.7, "max": 0.9}


def test_parse_epsilons():
    assert parse_epsilons("0.1, 0.02,0.1") == [0.02, 0.1]
    for bad in ("", "0.1,x", "-0.1", "2", "nan", "0.1,,0.2"):
        with pytest.raises(ConfigError, match="--sweep"):
            parse_epsilons(bad)


# -- runs, sweeps, summaries, CLI ------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """Three tiny hybrid runs: two of 784-16-10 (seeds 0, 1), one of 784-8-10."""
    root = tmp_path_factory.mktemp("attack_runs")
    return [tiny_hybrid_run(root / name, arch, 3, seed, mnist_dir)
            for name, arch, seed in (("a0", "16", 0), ("a1", "16", 1), ("b0", "8", 0))]


def test_sweep_writes_every_epsilon_and_the_published_point(runs, mnist_dir, tmp_path, capsys):
    out = tmp_path / "sweep"
    assert cli.main(["attack", str(runs[0]), "--sweep", "0.02,0.1,0.3", "--images", "40", "--children", "3",
                     "--out", str(out), "--data-dir", str(mnist_dir)]) == 0
    text = capsys.readouterr().out
    assert "0.05 pub." in text
    report = json.loads((out / "attack_fgsm_sweep.json").read_text())
    assert report["epsilons"] == [0.02, 0.1, 0.3] and [p["epsilon"] for p in report["points"]] == [0.02, 0.1, 0.3]
    assert report["published"]["effective_epsilon"] == 0.05 / 0.3081
    assert report["points"][0]["self"] >= report["points"][-1]["self"]
    assert (out / "attack_fgsm_sweep.png").stat().st_size > 0
    # the sweep's point at an epsilon is the single attack's figure
    assert cli.main(["attack", str(runs[0]), "--epsilon", "0.1", "--images", "40", "--children", "3",
                     "--out", str(out), "--data-dir", str(mnist_dir)]) == 0
    single = json.loads((out / "attack_fgsm_eps0.1.json").read_text())
    assert single["members"]["self"]["mean"] == report["points"][1]["self"]


def test_published_and_correct_tables_over_runs(runs, mnist_dir, tmp_path, capsys):
    out = tmp_path / "summary"
    common = ["--images", "40", "--children", "3", "--out", str(out), "--data-dir", str(mnist_dir)]
    assert cli.main(["attack", *map(str, runs), *common]) == 0
    assert cli.main(["attack", *map(str, runs), "--as-published", *common]) == 0
    text = capsys.readouterr().out
    assert "FGSM as published" in text and "784-16-10 (2 runs)" in text
    for run in runs:  # each run's own files stay in the run
        assert (run / "attack_fgsm_eps0.05.json").is_file() and (run / "attack_fgsm_published_eps0.05.json").is_file()
    correct = json.loads((out / "attack_fgsm_eps0.05_runs.json").read_text())
    published = json.loads((out / "attack_fgsm_published_eps0.05_runs.json").read_text())
    assert [g["shape"] for g in correct["groups"]] == ["784-16-10", "784-8-10"]
    assert published["published"] and published["effective_epsilon"] == 0.05 / 0.3081 and not correct["published"]
    g = published["groups"][0]
    assert len(g["self"]["runs"]) == 2 and g["self"]["min"] <= g["self"]["mean"] <= g["self"]["max"]
    per_run = json.loads((runs[1] / "attack_fgsm_published_eps0.05.json").read_text())
    assert g["self"]["runs"][1] == per_run["members"]["self"]["mean"]
    kids, working = np.asarray(per_run["children"]["matrix"]), np.asarray(per_run["children"]["working"])
    if working.any():  # (c''): rows of working sources, every other child as target
        expected = np.mean([kids[i, j] for i in np.flatnonzero(working) for j in range(len(kids)) if j != i])
        assert np.isclose(per_run["children"]["working_source_transfer"]["mean"], expected)
    assert "working_source_transfer" in g
    # (a1), (b1): the member with the best clean accuracy as the only source, as the notebook reports
    M, clean = np.asarray(per_run["members"]["matrix"]), np.asarray(per_run["members"]["clean"])
    best = per_run["members"]["best"]
    assert best["index"] == int(np.argmax(clean)) and best["self"] == M[best["index"], best["index"]]
    assert np.isclose(best["transfer"]["mean"], np.delete(M[best["index"]], best["index"]).mean())
    assert g["best_self"]["runs"][1] == best["self"] and g["best_transfer"]["runs"][1] == best["transfer"]["mean"]
    assert "(b1) other members, attack crafted on the best member" in text
    # same members and same children under both attacks
    assert correct["groups"][0]["children_clean"] == g["children_clean"]
    assert cli.main(["attack", str(runs[0]), str(runs[1]), "--sweep", "0.05,0.1", *common]) == 0
    summary = json.loads((out / "attack_fgsm_sweep_runs.json").read_text())
    assert summary["epsilons"] == [0.05, 0.1] and len(summary["groups"][0]["points"]) == 2
    assert summary["groups"][0]["published"]["self"]["mean"] == g["self"]["mean"]
    assert (out / "attack_fgsm_sweep_runs.png").stat().st_size > 0


@pytest.mark.parametrize("args, message", [
    (["--sweep", "0.1,abc"], "--sweep"),
    (["--sweep", "1.5"], "outside [0, 1]"),
    (["--sweep", ""], "--sweep"),
    (["--epsilon", "-1"], "epsilon"),
    (["--epsilon", "nan"], "epsilon"),
    (["--as-published", "--method", "pgd"], "published"),
    (["--sweep", "0.1", "--as-published"], "--as-published"),
])
def test_bad_epsilons_and_sweeps_are_one_line(runs, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert cli.main(["attack", str(runs[0]), *args, "--out", str(out)]) == 2
    assert message in one_error_line(capsys) and not out.exists()


def test_several_runs_need_an_out_folder(runs, capsys):
    assert cli.main(["attack", str(runs[0]), str(runs[1])]) == 2
    assert "--out" in one_error_line(capsys)
    assert cli.main(["attack", str(runs[0]), str(runs[0]), "--out", "x"]) == 2
    assert "twice" in one_error_line(capsys)
