"""Hybrid GA + SGD on ConvNets: architecture strings, layer genes, a short run with resume, plots and attacks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.cli.main import main
from genreg.errors import ConfigError
from genreg.hybrid import attacks
from genreg.hybrid.config import from_mapping, parse_architecture
from genreg.hybrid.diversity import gene_names, layer_names
from genreg.hybrid.recombination import HybridData
from genreg.hybrid.run import latest_state, read_similarity, resume_hybrid, start_hybrid
from genreg.hybrid.strategy import breed, crossover_bounds, founders
from genreg.network import backprop, sgd
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.tasks import to_float

CONV = dict(architecture="c5x4-p2-c3x8-p2", population=3, generations=2, train_images=1000, validation_size=300,
            workers=2, lr=0.1, batch_size=50, baseline=False)


def test_convnet_architectures():
    full = parse_architecture("28x28x1-c5x8-p2-c5x16-p2-10", input_shape=(28, 28))
    assert full.is_conv and full.n_params == 11274 and full.hidden_activation == "relu"
    assert parse_architecture("c5x8-p2-c5x16-p2", input_shape=(28, 28)).to_dict() == full.to_dict()
    hidden = parse_architecture("c3x4s2-a2-32", input_shape=(28, 28), n_outputs=26)
    assert hidden.shape_name() == "28x28x1-c3x4s2-a2-32-26"
    assert from_mapping({"architecture": "c5x8-p2"}).layout().shape_name() == "28x28x1-c5x8-p2-10"  # MNIST's


@pytest.mark.parametrize("mapping, message", [
    ({"architecture": "32x32x3-c5x8-10"}, "ConvNet on 32x32x3 images with 10 outputs, but task mnist has 784"),
    ({"architecture": "c5x8-[32|32]"}, "parallel blocks [a|b] are for MLPs"),
    ({"architecture": "c5-p2"}, "'c5' is not a stage"),
    ({"architecture": "c29x8p0"}, "a 29x29 kernel is larger than its 28x28 input"),
])
def test_bad_convnet_architectures_are_one_line(mapping, message):
    with pytest.raises(ConfigError, match="architecture") as exc:
        from_mapping(mapping)
    assert message in str(exc.value) and "\n" not in str(exc.value)


def test_a_convnet_on_a_tabular_task_is_refused(data_root, tmp_path):
    cfg = from_mapping({**CONV, "task": "wine"})
    with pytest.raises(ConfigError, match="is a ConvNet, but task wine has 11 inputs and 1 outputs, not images"):
        start_hybrid(cfg, tmp_path / "run", data_root, progress=False)
    assert not (tmp_path / "run").exists()


def test_children_take_each_convolution_whole_from_one_parent():
    cfg = from_mapping({**CONV, "population": 6})
    layout = cfg.layout()
    assert layer_names(layout) == ["c1", "c2", "1"]
    bounds = crossover_bounds(cfg, layout)
    assert list(bounds) == [0, layout.tensor("cb0").stop, layout.tensor("cb1").stop, layout.n_params]
    state = founders(cfg, layout)
    state.generation = 1
    children, a, b = breed(state, cfg)
    W = state.population.W
    for c in range(children.shape[0]):
        for g in range(3):
            seg = slice(bounds[g], bounds[g + 1])
            assert np.array_equal(children[c, seg], W[a[c], seg]) or np.array_equal(children[c, seg], W[b[c], seg])
    block = from_mapping({**CONV, "genes": "block", "gene_block_rows": 64})
    names = gene_names(layout, crossover_bounds(block, layout))
    assert names[:2] == ["C0[0:1]", "C0[1:2]"] and "cb0" in names  # one gene a filter


@pytest.fixture(scope="module")
def small_data(mnist):
    train, val = mnist.split_validation(300, seed=0)
    return HybridData(to_float(train.images[:1000]), train.labels[:1000].astype(np.int64),
                      to_float(val.images), val.labels.astype(np.int64))


def test_fgsm_and_pgd_attack_a_convnet(small_data):
    layout = Layout.parse("28x28x1-c5x4-p2-c3x8-p2-10", "relu")
    row = Population.random(layout, 1, seed=0).W[0]
    sgd.train(layout, row, small_data.X_train, small_data.y_train, sgd.TrainConfig(epochs=3, lr=0.05), seed=0)
    X, y = small_data.X_val[:150], small_data.y_val[:150]
    clean = backprop.accuracy(layout, row, X, y)
    assert clean > 0.6
    f = attacks.fgsm(layout, row, X, y, 0.1)
    p = attacks.pgd(layout, row, X, y, 0.1, steps=5)
    for adv in (f, p):
        assert adv.min() >= 0 and adv.max() <= 1 and np.abs(adv - X).max() <= 0.1 + 1e-6
    assert backprop.accuracy(layout, row, p, y) <= backprop.accuracy(layout, row, f, y) + 0.02 < clean - 0.1


def test_a_short_convnet_run_resumes_plots_and_is_attacked(tmp_path, mnist_dir, capsys):
    cfg = from_mapping(CONV)
    result = start_hybrid(cfg, tmp_path / "full", mnist_dir, progress=False)
    assert result["shape"] == "28x28x1-c5x4-p2-c3x8-p2-10"
    assert result["best_val_accuracy"] > 0.4 and result["best_test_accuracy"] > 0.4  # chance: 10%
    sim = read_similarity(tmp_path / "full" / "similarity" / "gen00002.h5")
    assert sim["layer_names"] == ["c1", "c2", "1"] and sim["layers"].shape == (3, 3, 3)
    header = (tmp_path / "full" / "metrics.csv").read_text().splitlines()[0]
    assert "similarity_c1,similarity_c2,similarity_1" in header

    part = start_hybrid(from_mapping({**CONV, "generations": 1}), tmp_path / "part", mnist_dir, progress=False)
    assert "best_test_accuracy" in part
    resume_hybrid(tmp_path / "part", {"generations": 2}, mnist_dir, progress=False)
    a, b = latest_state(tmp_path / "full")[1], latest_state(tmp_path / "part")[1]
    np.testing.assert_array_equal(a.population.W, b.population.W)  # resume repeats the uninterrupted run
    assert a.population.layout.is_conv

    run = tmp_path / "full"
    assert main(["plot", str(run), "--snapshots", "2"]) == 0
    assert (run / "similarity_mean.png").stat().st_size > 0
    assert main(["attack", str(run), "--method", "pgd", "--images", "30", "--children", "2",
                 "--data-dir", str(mnist_dir)]) == 0
    assert "(c) other children" in capsys.readouterr().out
    report = json.loads((run / "attack_pgd_eps0.05.json").read_text())
    assert report["shape"] == "28x28x1-c5x4-p2-c3x8-p2-10"
    assert np.asarray(report["members"]["matrix"]).shape == (3, 3)
