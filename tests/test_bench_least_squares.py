"""bench/least_squares_head.py: the least-squares head is the ridge solution, and the network it writes predicts it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.network import backprop
from genreg.network.layout import Layout
from genreg.network.population import Population
from helpers import bench_module


@pytest.fixture(scope="module")
def lsq():
    return bench_module("least_squares_head.py")


def _ridge(F: np.ndarray, y: np.ndarray, n_classes: int, lam: float) -> np.ndarray:
    """The readable twin: ``[F 1]`` and one-hot ``Y`` in float64, ``solve(F^T F + lam I, F^T Y)``."""
    F1 = np.hstack([F, np.ones((F.shape[0], 1))]).astype(np.float64)
    Y = np.eye(n_classes)[y]
    return np.linalg.solve(F1.T @ F1 + lam * np.eye(F1.shape[1]), F1.T @ Y)


@pytest.mark.parametrize("shape", ["12x12x1-c3x4-p2-10", "36-16-8-5", "36-5"])
def test_head_is_the_ridge_solution_and_the_refit_network_predicts_it(lsq, monkeypatch, shape):
    layout = Layout.parse(shape, hidden_activation="relu")
    row = Population.random(layout, 1, seed=3).W[0].copy()
    rng = np.random.default_rng(0)
    X = rng.random((230, layout.n_inputs), dtype=np.float32)
    y = rng.integers(0, layout.n_outputs, 230)
    monkeypatch.setattr(lsq, "CHUNK", 64)  # the normal equations summed over chunks, the last one short
    heads = lsq.solve_heads(layout, row, X, y, layout.n_outputs, [0.5, 20.0])

    F = lsq.last_layer_inputs(layout, row, X)
    assert F.shape == (230, layout.sizes[-2])
    for lam, A in heads.items():
        expected = _ridge(F, y, layout.n_outputs, lam)
        np.testing.assert_allclose(A, expected, rtol=2e-4, atol=2e-5)
        refit = lsq.with_head(layout, row, A)
        assert refit.dtype == np.float32 and refit.shape == row.shape
        n_head = (layout.sizes[-2] + 1) * layout.n_outputs
        np.testing.assert_array_equal(refit[:-n_head], row[:-n_head])  # only the last layer changed
        outputs = backprop.forward(layout, refit, X)
        np.testing.assert_allclose(outputs, np.hstack([F, np.ones((230, 1), np.float32)]) @ A, rtol=1e-4, atol=1e-4)


def test_main_reports_the_lam_chosen_on_validation(lsq, tmp_path, mnist_dir):
    out = tmp_path / "r.json"
    assert lsq.main(["--layout", "784-8-10", "--lams", "0.1,1000", "--data-dir", str(mnist_dir.parent),
                     "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    scores = result["least_squares"]
    chosen = max(scores, key=lambda k: scores[k]["validation"])
    assert result["chosen_lam"] == float(chosen) and result["chosen_test"] == scores[chosen]["test"]
    assert result["features"] == 8
    assert 0.1 < result["chosen_test"] <= 1.0 and result["as_is"]["test"] < result["chosen_test"]


def test_evolve_starts_from_the_least_squares_network_and_moves_it(lsq, monkeypatch):
    layout = Layout.parse("36-8-4", hidden_activation="relu")
    row = Population.random(layout, 1, seed=1).W[0].copy()
    rng = np.random.default_rng(2)
    data = {name: (rng.random((n, 36), dtype=np.float32), rng.integers(0, 4, n))
            for name, n in (("train", 200), ("validation", 100))}
    seen = []
    monkeypatch.setattr(lsq, "accuracy", lambda layout, r, X, y: seen.append(r.copy()) or 0.5)
    args = type("Args", (), dict(population=6, rank=1, sigma=0.02, step=0.01, evolve=50, seed=0, batch=40))()
    curve = lsq.evolve(layout, row, data, args)
    assert curve == [(50, 0.5)] and len(seen) == 1
    assert np.all(np.isfinite(seen[0])) and not np.array_equal(seen[0], row)


def _shifted_twin(X: np.ndarray, image: tuple, dy: int, dx: int) -> np.ndarray:
    """Pixel by pixel: output (r, c) is input (r - dy, c - dx) where that lies inside the image, else 0."""
    h, w, c = image
    I = X.reshape(-1, h, w, c)
    out = np.zeros_like(I)
    for r in range(h):
        for col in range(w):
            if 0 <= r - dy < h and 0 <= col - dx < w:
                out[:, r, col] = I[:, r - dy, col - dx]
    return out.reshape(X.shape)


@pytest.mark.parametrize("image", [(5, 6, 2), (4, 4, 1)])
def test_shifted_moves_the_content_one_pixel_and_shifts_in_zeros(lsq, image):
    X = np.random.default_rng(1).random((3, int(np.prod(image))), dtype=np.float32) + 1.0  # no zero pixels
    assert lsq.SHIFTS[0] == () and len(set(lsq.SHIFTS[8])) == 8 and set(lsq.SHIFTS[4]) < set(lsq.SHIFTS[8])
    for dy, dx in lsq.SHIFTS[8]:
        out = lsq.shifted(X, image, dy, dx)
        np.testing.assert_array_equal(out, _shifted_twin(X, image, dy, dx))
        h, w, _ = image
        assert np.count_nonzero(out) == X.size - 3 * image[2] * (abs(dy) * w + abs(dx) * h - abs(dy * dx))


def test_head_with_shifts_is_the_ridge_solution_over_the_images_and_their_shifts(lsq, monkeypatch):
    layout = Layout.parse("36-8-5", hidden_activation="relu")
    row = Population.random(layout, 1, seed=4).W[0].copy()
    rng = np.random.default_rng(5)
    X = rng.random((150, 36), dtype=np.float32)
    y = rng.integers(0, 5, 150)
    monkeypatch.setattr(lsq, "CHUNK", 64)
    heads = lsq.solve_heads(layout, row, X, y, 5, [2.0], shifts=lsq.SHIFTS[4], image=(6, 6, 1))
    images = np.vstack([X] + [_shifted_twin(X, (6, 6, 1), dy, dx) for dy, dx in lsq.SHIFTS[4]])
    expected = _ridge(lsq.last_layer_inputs(layout, row, images), np.tile(y, 5), 5, 2.0)
    np.testing.assert_allclose(heads[2.0], expected, rtol=2e-4, atol=2e-5)
    unshifted = lsq.solve_heads(layout, row, X, y, 5, [2.0])[2.0]
    assert not np.allclose(unshifted, heads[2.0], rtol=1e-3)  # the shifted images did enter


def test_main_refuses_shifts_for_inputs_that_are_not_an_image(lsq, capsys):
    with pytest.raises(SystemExit) as stop:
        lsq.main(["--layout", "30-4-10", "--shifts", "4"])
    assert stop.value.code == 2
    assert "--shifts needs images" in capsys.readouterr().err
