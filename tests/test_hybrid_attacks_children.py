"""The attack study's children bred as the notebook's child experiment (block genes, parents from all members)."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from genreg.cli import main as cli
from genreg.hybrid import attacks
from genreg.hybrid.config import HybridConfig
from genreg.hybrid.strategy import HybridState, breed
from genreg.network.population import Population
from genreg.network.variation import gene_bounds
from genreg.streams import ATTACK_OFFSET
from helpers import one_error_line, tiny_hybrid_run


def _state(architecture="horizontal", P=20, generation=6):
    cfg = dataclasses.replace(HybridConfig(), architecture=architecture, seed=3)
    pop = Population.random(cfg.layout(), P, seed=11)
    return HybridState(pop, generation, np.full(P, -1, dtype=np.int64)), cfg


@pytest.mark.parametrize("architecture", ["horizontal", "vertical"])
def test_every_block_comes_whole_from_one_of_the_two_parents(architecture):
    state, cfg = _state(architecture)
    W = state.population.W
    kids, a, b = attacks.breed_children(state, cfg, 30, as_published=True)
    bounds = gene_bounds(state.population.layout, attacks.PUBLISHED_GENE_ROWS)
    from_a = np.zeros((30, len(bounds) - 1), dtype=bool)
    for c in range(30):
        assert a[c] != b[c]
        for g, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
            is_a, is_b = np.array_equal(kids[c, lo:hi], W[a[c], lo:hi]), np.array_equal(kids[c, lo:hi], W[b[c], lo:hi])
            assert is_a != is_b, (c, g)  # whole from exactly one parent (random weights never coincide)
            from_a[c, g] = is_a
    assert 0.35 < from_a.mean() < 0.65  # each gene from either parent with probability 1/2
    assert from_a.any(axis=1).all() and (~from_a).any(axis=1).all()  # every child mixes both parents


def test_the_blocks_have_the_notebooks_row_split():
    """GeneticLinear(gene_size=64): ceil(n_in / 64) input blocks per weight matrix (13, 4, 2); biases whole."""
    state, cfg = _state()
    layout = state.population.layout
    bounds = gene_bounds(layout, attacks.PUBLISHED_GENE_ROWS)
    sizes = np.diff(bounds)
    rows = [t for t in layout.tensors if len(t.shape) == 2]
    assert [t.shape for t in rows] == [(784, 256), (256, 128), (128, 10)]
    expected = [64 * 256] * 12 + [16 * 256] + [256] + [64 * 128] * 4 + [128] + [64 * 10] * 2 + [10]
    assert sizes.tolist() == expected
    assert attacks.children_protocol(cfg, True) == {"genes": "block", "gene_block_rows": 64, "parents": "all"}
    assert attacks.children_protocol(cfg) == {"genes": "layer", "gene_block_rows": None, "parents": "best half"}


def test_parents_come_from_all_members_and_the_default_from_the_best_half():
    state, cfg = _state()
    _, a, b = attacks.breed_children(state, cfg, 400, as_published=True)
    parents = np.concatenate([a, b])
    assert set(parents.tolist()) == set(range(20)) and np.all(a != b)
    counts = np.bincount(parents, minlength=20)
    assert counts.min() > 0.5 * counts.mean()  # uniform over all 20
    _, a0, b0 = attacks.breed_children(state, cfg, 400)
    assert max(a0.max(), b0.max()) < 10


def test_children_are_deterministic_and_the_default_is_the_runs_breed():
    state, cfg = _state("vertical")
    one = attacks.breed_children(state, cfg, 8, as_published=True)
    two = attacks.breed_children(state, cfg, 8, as_published=True)
    for x, y in zip(one, two):
        np.testing.assert_array_equal(x, y)
    default = attacks.breed_children(state, cfg, 8)
    expected = breed(state, cfg, children=8, generation=7, purpose_offset=ATTACK_OFFSET)
    for x, y in zip(default, expected):
        np.testing.assert_array_equal(x, y)
    assert not np.array_equal(one[0], default[0])
    other = attacks.breed_children(dataclasses.replace(state, generation=7), cfg, 8, as_published=True)
    assert not np.array_equal(one[0], other[0])  # keyed by the generation, as every attack stream


# -- CLI -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def runs(tmp_path_factory, mnist_dir):
    """Two tiny 784-16-10 hybrid runs (population 4, seeds 0 and 1)."""
    root = tmp_path_factory.mktemp("child_runs")
    return [tiny_hybrid_run(root / f"r{seed}", "16", 4, seed, mnist_dir) for seed in (0, 1)]


def test_cli_children_as_published(runs, mnist_dir, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--as-published", "--images", "40", "--children", "5", "--out", str(out), "--data-dir", str(mnist_dir)]
    assert cli.main(["attack", *map(str, runs), *common]) == 0
    assert cli.main(["attack", *map(str, runs), "--children-as-published", *common]) == 0
    assert "parents from all members" in capsys.readouterr().out
    plain = json.loads((runs[0] / "attack_fgsm_published_eps0.05.json").read_text())
    nb = json.loads((runs[0] / "attack_fgsm_published_eps0.05_notebook_children.json").read_text())
    assert (runs[0] / "attack_fgsm_published_eps0.05_notebook_children.png").stat().st_size > 0
    assert nb["children_as_published"] and not plain["children_as_published"]
    assert nb["children"]["protocol"] == {"genes": "block", "gene_block_rows": 64, "parents": "all"}
    assert plain["children"]["protocol"]["parents"] == "best half"
    assert nb["members"] == plain["members"]  # the same members under the same attack
    assert max(max(p) for p in nb["children"]["parents"]) >= 2 > max(max(p) for p in plain["children"]["parents"])
    summary = json.loads((out / "attack_fgsm_published_eps0.05_notebook_children_runs.json").read_text())
    assert summary["children_as_published"] and summary["groups"][0]["children_transfer"]["runs"][0] == \
        nb["children"]["transfer"]["mean"]
    # the sweep breeds the same children
    assert cli.main(["attack", str(runs[0]), "--sweep", "0.1", "--children-as-published", "--images", "40",
                     "--children", "5", "--out", str(tmp_path / "sw"), "--data-dir", str(mnist_dir)]) == 0
    sweep = json.loads((tmp_path / "sw" / "attack_fgsm_sweep_notebook_children.json").read_text())
    assert sweep["children_as_published"]
    assert sweep["published"]["children_transfer"] == nb["children"]["transfer"]["mean"]


@pytest.mark.parametrize("args, message", [
    (["--children", "-1"], "--children"),
    (["--children", "0"], "--children must be a positive number"),
    (["--epsilon", "2"], "epsilon must be a number in [0, 1]"),
    (["--as-published", "--method", "pgd"], "published"),
    (["--images", "0"], "--images"),
])
def test_cli_errors_are_one_line(runs, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    assert cli.main(["attack", str(runs[0]), "--children-as-published", *args, "--out", str(out)]) == 2
    assert message in one_error_line(capsys) and not out.exists()


def test_cli_error_on_a_missing_run(tmp_path, capsys):
    assert cli.main(["attack", str(tmp_path / "nope"), "--children-as-published"]) == 2
    assert "nope" in one_error_line(capsys)



def test_every_run_is_checked_before_the_first_is_attacked(runs, tmp_path, capsys):
    wine = tmp_path / "wine"
    assert cli.main(["hybrid", "--task", "wine", "--generations", "1", "--set", "population=4", "--set",
                     "architecture=\"8\"", "--no-progress", "--out", str(wine)]) == 0
    before = sorted(p.name for p in runs[0].iterdir())
    assert cli.main(["attack", str(runs[0]), str(wine), "--images", "20", "--out", str(tmp_path / "out")]) == 2
    assert "not one of images and classes" in one_error_line(capsys)
    assert sorted(p.name for p in runs[0].iterdir()) == before and not (tmp_path / "out").exists()
