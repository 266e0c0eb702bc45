"""bench/evolved_units.py: the greedy pick is matching pursuit with one-column ridge fits, mutants stay near
their parents, and a short run on MNIST learns an MLP that genreg evaluates."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.api import Genome, as_task
from helpers import bench_module


@pytest.fixture(scope="module")
def units():
    return bench_module("evolved_units.py")


def _pick_twin(G, R, lam, n_pick):
    """Readable float64 twin: for each pick, every candidate's centred one-column ridge fit to the current
    residual, the best taken off it."""
    G, R = G.astype(np.float64), R.astype(np.float64).copy()
    Gc = G - G.mean(axis=0)
    chosen = []
    for _ in range(n_pick):
        best, best_k = -np.inf, -1
        for k in range(G.shape[1]):
            if k in chosen:
                continue
            g = Gc[:, k]
            explained = float(np.sum((g @ R) ** 2) / (g @ g + lam))
            if explained > best:
                best, best_k = explained, k
        g = Gc[:, best_k]
        R -= np.outer(g, (g @ R) / (g @ g + lam))
        chosen.append(best_k)
    return chosen, R


def test_pick_is_greedy_matching_pursuit(units):
    rng = np.random.default_rng(0)
    G = np.maximum(rng.standard_normal((400, 30)), 0).astype(np.float32)
    R = rng.standard_normal((400, 3)).astype(np.float32)
    R[:, 1] += 2.0 * G[:, 7] - G[:, 21]
    want, R_want = _pick_twin(G, R, 2.0, 5)
    R_got = R.copy()
    chosen, mean, betas, gains = units.pick(G, R_got, 2.0, 5)
    assert chosen == want and 7 in chosen and 21 in chosen
    assert betas.shape == (5, 3) and len(set(chosen)) == 5
    np.testing.assert_allclose(R_got, R_want, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(mean, G.mean(axis=0), rtol=1e-6)
    assert all(a >= 0 for a in gains)
    # Each pick takes its gain off the residual's squared norm (plus lam |beta|^2).
    before = float(np.sum(R.astype(np.float64) ** 2))
    after = float(np.sum(R_got.astype(np.float64) ** 2))
    assert after == pytest.approx(before - sum(gains) - 2.0 * float(np.sum(betas**2)), rel=1e-4)


def test_mutants_stay_near_their_parents(units):
    rng = np.random.default_rng(1)
    W, b = units.random_units(rng, 6)
    Wm, bm = units.mutants(rng, W, b, 3, 0.3)
    assert Wm.shape == (784, 18) and bm.shape == (18,) and Wm.dtype == np.float32
    parent = np.repeat(np.arange(6), 3)
    rel = np.linalg.norm(Wm - W[:, parent], axis=0) / np.linalg.norm(W[:, parent], axis=0)
    assert np.all((rel > 0.2) & (rel < 0.4))  # sd 0.3 relative to |w| over 784 weights
    cos = np.einsum("ik,ik->k", Wm, W[:, parent]) / np.linalg.norm(Wm, axis=0) / np.linalg.norm(W[:, parent], axis=0)
    assert np.all(cos > 0.9)


def test_a_short_run_learns_mnist_and_writes_a_genome_genreg_evaluates(units, mnist_dir, tmp_path):
    out, report = tmp_path / "u.pkl", tmp_path / "u.json"
    assert units.main(["--units", "96", "--block", "32", "--candidates", "256", "--fit", "3000", "--lams", "1,30",
                       "--refresh", "--data-dir", str(mnist_dir.parent), "--out", str(out), "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["layout"].startswith("784-96-10") and result["steps"] == 3
    assert result["test_accuracy"] > 0.8  # 96 hidden units; chance is 0.1
    genome = Genome.load(out)
    assert genome.evaluate(as_task("mnist", mnist_dir.parent, seed=0))["accuracy"] == pytest.approx(result["test_accuracy"])


def test_a_block_larger_than_the_pool_is_a_one_line_error(units, capsys):
    with pytest.raises(SystemExit) as stop:
        units.main(["--block", "300", "--candidates", "200"])
    assert stop.value.code == 2 and "--block cannot exceed --candidates" in capsys.readouterr().err
