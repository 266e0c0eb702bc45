"""bench/evolved_detectors.py: detector features as the twin computes them, the fitness is the ridge fit's
explained residual, evolution keeps its best, and a short run on MNIST learns a network genreg evaluates."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

import naive
from genreg.api import Genome, as_task
from helpers import bench_module


@pytest.fixture(scope="module")
def det():
    return bench_module("evolved_detectors.py")


def test_detector_features_are_each_filters_pooled_relu_map(det):
    rng = np.random.default_rng(0)
    X = rng.random((3, 784), dtype=np.float32)
    filters, bias = det.random_filters(rng, 5)
    G = det.detector_features(filters, bias, X)
    assert G.shape == (5, 3, 196) and G.dtype == np.float32
    for k in range(5):
        for i in range(3):
            conv = naive.conv_image(X[i].reshape(28, 28, 1), filters[k].reshape(1, 5, 5, 1), bias[k : k + 1], 1, 2)
            want = naive.pool_image(np.maximum(conv, 0.0), 2, "max").ravel()
            np.testing.assert_allclose(G[k, i], want, rtol=1e-5, atol=1e-5)


def test_fitness_is_what_the_ridge_fit_takes_off_the_residual(det):
    """||R - Gc beta||^2 + lam ||beta||^2 = ||R||^2 - explained, for the ridge solution beta."""
    rng = np.random.default_rng(1)
    G = rng.random((300, 12), dtype=np.float32)
    R = rng.standard_normal((300, 4)).astype(np.float32)
    R[:, 0] += 3.0 * G[:, 2]  # something to explain
    for lam in (0.1, 30.0):
        mean, beta, explained = det.ridge_fit(G, R, lam)
        Gc = G.astype(np.float64) - G.mean(axis=0, dtype=np.float64)
        np.testing.assert_allclose(mean, G.mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(beta, np.linalg.solve(Gc.T @ Gc + lam * np.eye(12), Gc.T @ R), rtol=1e-4, atol=1e-6)
        left = np.sum((R - Gc @ beta) ** 2) + lam * np.sum(beta**2)
        np.testing.assert_allclose(left, np.sum(R.astype(np.float64) ** 2) - explained, rtol=1e-4)
        if lam < 1.0:  # a light penalty explains at least the planted signal
            assert explained > 0.9 * np.sum((3.0 * (G[:, 2] - G[:, 2].mean())) ** 2)


def test_more_generations_never_lose_the_best_detector(det, mnist):
    X = np.asarray(mnist.train_images[:400], np.float32) / np.float32(255.0)
    Y = np.eye(10, dtype=np.float32)[mnist.train_labels[:400]]
    R = Y - Y.mean(axis=0)
    args = type("Args", (), dict(candidates=12, elite=2, immigrants=2, mutation=0.3))()
    found = []
    for generations in (1, 3):
        args.generations = generations
        found.append(det.evolve_detector(np.random.default_rng(5), X, R, 0.4, args))
    founders = det.random_filters(np.random.default_rng(5), 12)
    G = det.detector_features(*founders, X)
    best_founder = max(det.ridge_fit(G[k], R, 0.4)[2] for k in range(12))
    assert found[0][2] == pytest.approx(best_founder)
    assert found[1][2] >= found[0][2]
    f, b, fitness = found[1]
    assert f.shape == (25,) and np.isclose(np.linalg.norm(f), 1.0, atol=1e-5)
    assert fitness == pytest.approx(det.ridge_fit(det.detector_features(f[None], np.array([b], np.float32), X)[0],
                                                  R, 0.4)[2], rel=1e-5)


@pytest.mark.parametrize("refresh", [False, True])
def test_a_short_run_learns_mnist_and_writes_a_genome_genreg_evaluates(det, mnist_dir, tmp_path, refresh):
    out, curve, report, png = tmp_path / "d.pkl", tmp_path / "curve.csv", tmp_path / "d.json", tmp_path / "d.png"
    assert det.main(["--detectors", "3", "--fit", "1500", "--generations", "2", "--candidates", "20", "--elite", "4",
                     "--immigrants", "4", "--lams", "0.1,10", "--data-dir", str(mnist_dir.parent),
                     "--out", str(out), "--curve", str(curve), "--json", str(report), "--plot", str(png)] + ["--refresh"] * refresh) == 0
    result = json.loads(report.read_text())
    assert result["layout"].startswith("28x28x1-c5x3-p2-10") and result["steps"] == 3
    assert result["validation"][str(result["head_penalty"])] == max(result["validation"].values())
    assert result["test_accuracy"] > 0.85  # 3 detectors; chance is 0.1
    rows = list(csv.reader(curve.open()))
    assert rows[0][:2] == ["detectors", "seconds"] and [r[0] for r in rows[1:]] == ["1", "2", "3", "head"]
    residuals = [float(r[3]) for r in rows[1:4]]
    if not refresh:  # on the same fit images, each stagewise fit takes something off the residual
        assert residuals[0] > residuals[1] > residuals[2]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    grown, head, noun = det.read_curve(curve)
    assert len(grown) == 3 and head[1] == result["test_accuracy"] and noun == "detectors"
    png.unlink()
    assert det.main(["--replot", str(curve), "--plot", str(png)]) == 0 and png.stat().st_size > 1000
    genome = Genome.load(out)
    task = as_task("mnist", mnist_dir.parent, seed=0)
    assert genome.evaluate(task)["accuracy"] == pytest.approx(result["test_accuracy"])


def test_shifts_change_only_the_head_and_are_recorded(det, mnist_dir, tmp_path):
    rows, results = {}, {}
    for shifts in (0, 4):
        out, report = tmp_path / f"d{shifts}.pkl", tmp_path / f"d{shifts}.json"
        assert det.main(["--detectors", "2", "--fit", "1000", "--generations", "1", "--candidates", "20", "--elite",
                         "4", "--immigrants", "4", "--lams", "1", "--shifts", str(shifts), "--data-dir",
                         str(mnist_dir.parent), "--out", str(out), "--json", str(report)]) == 0
        rows[shifts], results[shifts] = Genome.load(out), json.loads(report.read_text())
    layout = rows[0].layout
    for name in ("C0", "cb0"):  # the same detectors grown ...
        np.testing.assert_array_equal(layout.view(rows[0].row, name), layout.view(rows[4].row, name))
    assert not np.array_equal(rows[0].row, rows[4].row)  # ... under another head
    assert results[4]["settings"]["shifts"] == 4 and results[0]["settings"]["shifts"] == 0
    assert results[4]["stagewise_test_accuracy"] == results[0]["stagewise_test_accuracy"]
    assert results[4]["test_accuracy"] > 0.8


@pytest.mark.parametrize("argv, message", [
    (["--replot", "curve.csv"], "--replot needs --plot"),
    (["--candidates", "20", "--elite", "8", "--immigrants", "8"], "at least one mutant per elite"),
    (["--shifts", "3"], "invalid choice: 3"),
])
def test_bad_options_are_one_line_errors(det, capsys, argv, message):
    with pytest.raises(SystemExit) as stop:
        det.main(argv)
    assert stop.value.code == 2 and message in capsys.readouterr().err
