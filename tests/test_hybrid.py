"""Hybrid GA + SGD: config, breeding, one generation, run directory, resume, plots, attacks, CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.hybrid import attacks

from genreg.network import backprop

from genreg.network import sgd
from genreg.cli.main import main
from genreg.tasks import to_float
from genreg.hybrid.diversity import cosine_similarity, mean_offdiagonal, pca_2d
from genreg.errors import CheckpointError, ConfigError
from genreg.hybrid.recombination import HybridData, step, train_pool
from genreg.hybrid.strategy import breed, founders
from genreg.hybrid.config import HybridConfig, from_mapping, parse_architecture
from genreg.hybrid.run import latest_state, read_similarity, resume_hybrid, start_hybrid
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.network.variation import layer_gene_bounds

SMALL = dict(population=4, generations=2, train_images=1000, validation_size=500, workers=2, lr=0.1, batch_size=50)


@pytest.fixture(scope="module")
def small_data(mnist):
    """1000 training images and 500 validation images (float32 in [0, 1])."""
    train, val = mnist.split_validation(500, seed=0)
    return HybridData(to_float(train.images[:1000]), train.labels[:1000].astype(np.int64),
                      to_float(val.images), val.labels.astype(np.int64))


# -- config -------------------------------------------------------------------------
def test_defaults_are_the_reference_protocol():
    cfg = HybridConfig().validate()
    assert (cfg.population, cfg.generations, cfg.epochs_per_generation, cfg.batch_size, cfg.lr, cfg.momentum) == \
        (20, 6, 1, 100, 0.01, 0.9)
    assert cfg.n_fresh == 2 and cfg.fresh_fraction == 0.1
    assert cfg.layout().shape_name() == "784-256-128-10"
    vertical = from_mapping({"architecture": "vertical"}).layout()
    assert vertical.shape_name() == "784-256-[64|64]-10" and vertical.n_params == cfg.layout().n_params


@pytest.mark.parametrize("key,value", [("population", 1), ("generations", -1), ("fresh_fraction", 1.5),
                                       ("genes", "mask"), ("gene_block_rows", 0), ("lr", 0.0), ("momentum", 1.0),
                                       ("architecture", "784-[64|x]-10"), ("architecture", "784-100-5"),
                                       ("activation", "gelu"), ("dropout", 1.0), ("epochs_per_generation", 0),
                                       ("validation_size", 60000), ("batch_size", 0), ("shuffle", "maybe")])
def test_invalid_config_names_the_key(key, value):
    with pytest.raises(ConfigError, match=key):
        from_mapping({key: value})


def test_config_types_and_unknown_keys():
    with pytest.raises(ConfigError, match="unknown"):
        from_mapping({"populaton": 3})
    with pytest.raises(ConfigError, match="expected"):
        from_mapping({"population": "20"})
    with pytest.raises(ConfigError, match="expected"):
        from_mapping({"baseline": 1})
    assert from_mapping({"lr": 1}).lr == 1.0
    assert parse_architecture("784-100-[30|20|50]-10").blocks == ((100,), (30, 20, 50), (10,))


# -- breeding -----------------------------------------------------------------------
def test_children_take_every_layer_gene_whole_from_one_of_two_distinct_parents():
    cfg = from_mapping({"architecture": "vertical", "population": 6})
    state = founders(cfg)
    state.population.trust[:] = np.arange(6)[::-1]
    children, a, b = breed(state, cfg)
    assert children.shape == (6, state.population.layout.n_params)
    assert (a < 3).all() and (b < 3).all() and (a != b).all()  # the best half, two distinct parents
    bounds = layer_gene_bounds(state.population.layout)
    W = state.population.W
    from_a = 0
    for c in range(6):
        for s, e in zip(bounds[:-1], bounds[1:]):
            seg = children[c, s:e]
            in_a, in_b = np.array_equal(seg, W[a[c], s:e]), np.array_equal(seg, W[b[c], s:e])
            assert in_a or in_b
            from_a += in_a
    assert 0 < from_a < 6 * 4  # both parents contribute
    again, a2, b2 = breed(state, cfg)
    np.testing.assert_array_equal(again, children)  # a function of (seed, generation)


def test_block_genes_cut_weight_matrices_into_row_blocks():
    cfg = from_mapping({"genes": "block", "gene_block_rows": 64, "population": 4})
    state = founders(cfg)
    children, a, b = breed(state, cfg, children=8)
    W0 = state.population.layout.tensor("W0")
    for c in range(8):
        for r in range(0, 784, 64):
            seg = slice(W0.offset + r * 256, W0.offset + min(784, r + 64) * 256)
            assert np.array_equal(children[c, seg], state.population.W[a[c], seg]) or \
                np.array_equal(children[c, seg], state.population.W[b[c], seg])


def test_tile_genes_cut_weight_matrices_into_row_and_column_tiles():
    cfg = from_mapping({"genes": "tile", "gene_block_rows": 64, "gene_block_cols": 64, "population": 4})
    state = founders(cfg)
    children, a, b = breed(state, cfg, children=8)
    W = state.population.W
    W0 = state.population.layout.tensor("W0")  # (784, 256): 13 x 4 tiles
    mixed = 0
    for c in range(8):
        child, pa, pb = (x[W0.offset : W0.stop].reshape(784, 256) for x in (children[c], W[a[c]], W[b[c]]))
        for r in range(0, 784, 64):
            sources = []
            for col in range(0, 256, 64):
                tile = (slice(r, r + 64), slice(col, col + 64))
                from_a, from_b = np.array_equal(child[tile], pa[tile]), np.array_equal(child[tile], pb[tile])
                assert from_a or from_b
                sources.append(from_a)
            mixed += len(set(sources)) == 2  # a row block taken from both parents: finer than row genes
    assert mixed > 0
    # tiles as wide as every matrix are the row blocks, with the same draws
    wide = from_mapping({"genes": "tile", "gene_block_rows": 64, "gene_block_cols": 256, "population": 4})
    rows = from_mapping({"genes": "block", "gene_block_rows": 64, "population": 4})
    assert np.array_equal(breed(state, wide, children=8)[0], breed(state, rows, children=8)[0])


def test_tile_genes_refuse_a_convnet_in_one_line():
    from genreg.network.variation import tile_genes

    with pytest.raises(ConfigError, match="genes = 'tile' cuts dense weight matrices") as err:
        tile_genes(Layout.parse("8x8x1-c3x2-4"), 64, 64)
    assert "\n" not in str(err.value)


# -- one generation -------------------------------------------------------------------
def test_step_trains_ranks_and_keeps_the_best(small_data):
    cfg = from_mapping({**SMALL, "population": 5})
    s1, rec1 = step(founders(cfg), cfg, small_data)
    pop = s1.population
    assert pop.size == 5 and rec1["pool_size"] == 6  # 5 + ceil(10% of 5)
    assert np.all(np.diff(pop.trust) <= 0)  # best first
    assert rec1["best_val_accuracy"] == pop.trust[0] > 0.5
    acc = backprop.accuracy(pop.layout, pop.W[0], small_data.X_val, small_data.y_val)
    assert acc == pytest.approx(pop.trust[0])
    s2, rec2 = step(s1, cfg, small_data)
    assert s2.generation == 2
    assert len(set(s2.population.ids.tolist())) == 5 and s2.population.ids.min() >= 5
    children = s2.population.parent_ids >= 0
    assert set(s2.population.parent_ids[children]) <= set(pop.ids[:2].tolist())  # parents from the best half
    assert rec2["best_val_accuracy"] > rec1["best_val_accuracy"] - 0.05


def test_step_is_deterministic_for_any_number_of_workers(small_data):
    cfg1 = from_mapping({**SMALL, "workers": 1, "architecture": "vertical", "dropout": 0.1})
    cfg2 = from_mapping({**SMALL, "workers": 2, "architecture": "vertical", "dropout": 0.1})
    s1, _ = step(founders(cfg1), cfg1, small_data)
    s2, _ = step(founders(cfg2), cfg2, small_data)
    np.testing.assert_array_equal(s1.population.W, s2.population.W)
    np.testing.assert_array_equal(s1.population.trust, s2.population.trust)
    s3, _ = step(founders(from_mapping({**SMALL, "seed": 1})), from_mapping({**SMALL, "seed": 1}), small_data)
    assert not np.array_equal(s3.population.W, s1.population.W)


def test_without_shuffle_every_network_sees_the_same_order(small_data):
    """shuffle = false (the reference notebook's data loader): two copies of one network, trained in two
    slots, stay identical; with the default per-network shuffle they part."""
    for shuffle in (False, True):
        cfg = from_mapping({**SMALL, "shuffle": shuffle})
        row = founders(cfg).population.W[0]
        W = np.stack([row, row])
        train_pool(W, cfg.layout(), small_data, cfg, generation=1)
        assert not np.array_equal(W[0], row)
        assert np.array_equal(W[0], W[1]) == (not shuffle)


# -- run directory, resume --------------------------------------------------------------
def test_run_directory_and_resume_repeat_the_uninterrupted_run(tmp_path, mnist_dir):
    cfg = from_mapping({**SMALL, "architecture": "vertical"})
    full = start_hybrid(cfg, tmp_path / "full", mnist_dir, progress=False)
    assert {"best_test_accuracy", "baseline_test_accuracy", "population_test_mean"} <= set(full)
    assert json.loads((tmp_path / "full" / "result.json").read_text())["best_test_accuracy"] == full["best_test_accuracy"]
    for name in ("config.toml", "metrics.csv", "checkpoints/state_gen00002.h5", "similarity/gen00000.h5",
                 "similarity/gen00002.h5"):
        assert (tmp_path / "full" / name).exists(), name

    part = start_hybrid(cfg.__class__(**{**cfg.to_dict(), "generations": 1}), tmp_path / "part", mnist_dir,
                        progress=False)
    assert "best_test_accuracy" in part
    resumed = resume_hybrid(tmp_path / "part", {"generations": 2}, mnist_dir, progress=False)
    a, b = latest_state(tmp_path / "full")[1], latest_state(tmp_path / "part")[1]
    assert a.generation == b.generation == 2
    np.testing.assert_array_equal(a.population.W, b.population.W)
    np.testing.assert_array_equal(a.population.ids, b.population.ids)
    assert resumed["best_test_accuracy"] == full["best_test_accuracy"]
    rows = (tmp_path / "part" / "metrics.csv").read_text().strip().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["1", "2"]

    with pytest.raises(ConfigError, match="architecture"):
        resume_hybrid(tmp_path / "part", {"architecture": "horizontal"}, mnist_dir, progress=False)
    config = (tmp_path / "part" / "config.toml").read_text()
    for key, value in (("seed", 7), ("train_images", 500), ("validation_size", 3000)):
        with pytest.raises(ConfigError, match=f"cannot change {key} on resume"):
            resume_hybrid(tmp_path / "part", {key: value, "generations": 3}, mnist_dir, progress=False)
    resume_hybrid(tmp_path / "part", {"lr": 0.5}, mnist_dir, progress=False)  # complete: runs nothing, writes nothing
    assert (tmp_path / "part" / "config.toml").read_text() == config
    with pytest.raises(ConfigError, match="already holds a run"):
        start_hybrid(cfg, tmp_path / "full", mnist_dir, progress=False)


def test_similarity_files_hold_per_gene_matrices(tmp_path, mnist_dir):
    cfg = from_mapping({**SMALL, "generations": 1, "genes": "block", "baseline": False})
    start_hybrid(cfg, tmp_path, mnist_dir, progress=False)
    s0 = read_similarity(tmp_path / "similarity" / "gen00000.h5")
    s1 = read_similarity(tmp_path / "similarity" / "gen00001.h5")
    assert s0["layer_names"] == ["1", "2", "3"] and s0["layers"].shape == (3, 4, 4)
    assert np.abs(mean_offdiagonal(s0["layers"][0])) < 0.05  # random founders: near zero
    assert s1["genes"].shape[1:] == (4, 4) and len(s1["gene_names"]) == s1["genes"].shape[0]
    assert s1["gene_names"][0] == "W0[0:64]"
    np.testing.assert_allclose(np.diagonal(s1["genes"], axis1=1, axis2=2), 1.0)


def test_corrupt_newest_checkpoint_is_skipped(tmp_path, mnist_dir):
    cfg = from_mapping({**SMALL, "generations": 1, "baseline": False})
    start_hybrid(cfg, tmp_path, mnist_dir, progress=False)
    (tmp_path / "checkpoints" / "state_gen00001.h5").write_bytes(b"garbage")
    path, state, _ = latest_state(tmp_path)
    assert state.generation == 0 and path.name == "state_gen00000.h5"
    (tmp_path / "checkpoints" / "state_gen00000.h5").write_bytes(b"garbage")
    with pytest.raises(CheckpointError):
        latest_state(tmp_path)


# -- diversity -----------------------------------------------------------------------------
def test_cosine_similarity_against_a_naive_loop():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(5, 30)).astype(np.float32)
    W[3] = 2 * W[1]
    S = cosine_similarity(W, 4, 20)
    for i in range(5):
        for j in range(5):
            u, v = W[i, 4:20].astype(float), W[j, 4:20].astype(float)
            assert S[i, j] == pytest.approx(u @ v / np.linalg.norm(u) / np.linalg.norm(v), abs=1e-6)
    assert S[1, 3] == pytest.approx(1.0)
    xy = pca_2d(S)
    assert xy.shape == (5, 2) and np.allclose(xy[1], xy[3])


# -- attacks ---------------------------------------------------------------------------------
def test_fgsm_on_a_hand_checkable_linear_model():
    """z = x @ I: softmax(0.5, 0.5) with label 0 -> dL/dx = (-0.5, 0.5) -> x' = x + eps * (-1, +1)."""
    layout = Layout((2, 2), "identity")
    row = layout.flatten([(np.eye(2), np.zeros(2))])
    X = np.array([[0.5, 0.5], [0.02, 0.99]], np.float32)
    y = np.array([0, 0])
    adv = attacks.fgsm(layout, row, X, y, epsilon=0.1)
    np.testing.assert_allclose(adv[0], [0.4, 0.6], atol=1e-7)
    np.testing.assert_allclose(adv[1], [0.0, 1.0], atol=1e-7)  # clipped to the pixel range
    assert np.array_equal(attacks.fgsm(layout, row, X, y, epsilon=0.0), X)
    with pytest.raises(ConfigError, match="epsilon"):
        attacks.fgsm(layout, row, X, y, epsilon=-1)


def test_pgd_stays_in_the_ball_and_hurts_at_least_as_much_as_fgsm(small_data):
    layout = Layout((784, 32, 10), "relu")
    row = Population.random(layout, 1, seed=0).W[0]
    sgd.train(layout, row, small_data.X_train, small_data.y_train, sgd.TrainConfig(epochs=3, lr=0.05), seed=0)
    X, y = small_data.X_val[:200], small_data.y_val[:200]
    f = attacks.fgsm(layout, row, X, y, 0.05)
    p = attacks.pgd(layout, row, X, y, 0.05, steps=5)
    for adv in (f, p):
        assert adv.min() >= 0 and adv.max() <= 1 and np.abs(adv - X).max() <= 0.05 + 1e-6
    clean = backprop.accuracy(layout, row, X, y)
    assert backprop.accuracy(layout, row, p, y) <= backprop.accuracy(layout, row, f, y) + 0.02 < clean
    M = attacks.transfer_matrix(layout, np.stack([row, row]), X, y, 0.05)
    assert M.shape == (2, 2) and np.allclose(M, M[0, 0])  # identical networks: attack transfers fully


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_hybrid_plot_attack(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    args = ["hybrid", "--set", "population=3", "--set", "generations=2", "--set", "train_images=500",
            "--set", "validation_size=500", "--set", "architecture='vertical'", "--set", "baseline=false",
            "--out", str(run), "--no-progress", "--data-dir", str(mnist_dir)]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "784-256-[64|64]-10" in out and "test acc" in out
    assert main(["resume", str(run), "--generations", "3", "--no-progress", "--data-dir", str(mnist_dir)]) == 0
    assert latest_state(run)[1].generation == 3
    assert main(["plot", str(run), "--snapshots", "3"]) == 0
    for name in ("similarity_gen00003.png", "similarity_mean.png", "accuracy.png"):
        assert (run / name).stat().st_size > 0
    assert main(["plot", str(run), "--snapshots", "7"]) == 2
    assert main(["attack", str(run), "--images", "40", "--children", "3", "--data-dir", str(mnist_dir)]) == 0
    out = capsys.readouterr().out
    assert "(c) other children" in out
    report = json.loads((run / "attack_fgsm_eps0.05.json").read_text())
    assert np.asarray(report["members"]["matrix"]).shape == (3, 3)
    assert (run / "attack_fgsm_eps0.05.png").stat().st_size > 0
    assert main(["hybrid", "--set", "population=1", "--out", str(tmp_path / "x")]) == 2
    assert "population" in capsys.readouterr().err
    assert main(["hybrid", "--resume", str(run), "--seed", "3"]) == 2  # the old spelling takes no new seed
    assert "--seed" in capsys.readouterr().err


def test_checkpoint_with_nan_weights_is_refused(tmp_path, mnist_dir):
    import h5py

    from genreg.errors import GenregError

    cfg = from_mapping({**SMALL, "generations": 1, "baseline": False})
    start_hybrid(cfg, tmp_path, mnist_dir, progress=False)
    from genreg.runs.store import array_crc32

    with h5py.File(tmp_path / "checkpoints" / "state_gen00001.h5", "r+") as f:
        f["W"][2, 5] = np.nan
        f["W"].attrs["crc32"] = array_crc32(f["W"][()])  # crafted: its checksum matches
    with pytest.raises(GenregError, match="non-finite"):
        resume_hybrid(tmp_path, {"generations": 2}, mnist_dir, progress=False)


def test_sigint_checkpoints_and_exits_cleanly(tmp_path, mnist_dir):
    import re
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "run"
    args = [sys.executable, "-m", "genreg", "hybrid", "--set", "population=2", "--set", "generations=500",
            "--set", "train_images=200", "--set", "validation_size=200", "--set", "baseline=false",
            "--set", "checkpoint_every=1000", "--out", str(run), "--data-dir", str(mnist_dir), "--no-progress"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    try:
        deadline = time.time() + 120
        while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 2):
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err  # 128 + SIGINT
    g = int(re.search(r"after generation (\d+)", out + err).group(1))
    assert "genreg resume" in out + err
    path, state, _ = latest_state(run)
    assert state.generation == g and path.name == f"state_gen{g:05d}.h5" and g < 500


def test_attack_on_a_missing_run_is_a_clear_error_and_creates_nothing(tmp_path):
    from genreg.hybrid.attacks import run_attacks
    from genreg.errors import GenregError

    missing = tmp_path / "no-such-run"
    with pytest.raises(GenregError, match="no checkpoint"):
        run_attacks(missing)
    assert not missing.exists()


def test_hybrid_population_too_large_for_memory_is_refused_before_writing_anything(tmp_path, mnist_dir):
    from genreg.errors import PopulationError
    from genreg.hybrid.config import from_mapping as hybrid_config
    from genreg.hybrid.run import start_hybrid

    with pytest.raises(PopulationError, match="of memory is available"):
        start_hybrid(hybrid_config({"population": 1_000_000}), tmp_path / "run", mnist_dir, progress=False)
    assert not (tmp_path / "run").exists()


def test_tile_genes_on_a_convnet_are_refused_before_writing_anything(tmp_path, mnist_dir):
    cfg = from_mapping({"architecture": "c3x2-p2", "genes": "tile", "population": 4, "baseline": False})
    with pytest.raises(ConfigError, match="genes = 'tile' cuts dense weight matrices") as err:
        start_hybrid(cfg, tmp_path / "run", mnist_dir, progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_zero_generations_is_refused_up_front(tmp_path, capsys):
    """Generation 0 scores nothing: its result held NaN (not JSON)."""
    from genreg.cli import main as cli

    assert cli.main(["hybrid", "--generations", "0", "--out", str(tmp_path / "run")]) == 2
    assert "generations = 0" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_a_one_layer_architecture_given_as_a_number_says_how_to_write_it():
    with pytest.raises(ConfigError, match="""--set 'architecture="16"'"""):
        from_mapping({**SMALL, "architecture": 16})
    assert from_mapping({**SMALL, "architecture": "16"}).architecture == "16"
