"""genreg.runs.sgd: the gradient baseline's config, epochs (augmented on alphabet-fonts), run files, determinism."""

from __future__ import annotations

import json

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.genome.checkpoint import load_genome
from genreg.network.population import Population
from genreg.runs.rundir import run_kind
from genreg.runs.sgd import EpochData, SGDConfig, from_mapping, layout_for, load_task_for, train_run
from genreg.runs.history import read_history
from genreg.tasks import load_task
from genreg.tasks.base import FitnessTask, episode_inputs


# ----------------------------------------------------------------------------- config
@pytest.mark.parametrize("mapping, key", [
    ({"lr": -1}, "lr"), ({"lr": 0}, "lr"), ({"copies": 0}, "copies"), ({"epochs": 0}, "epochs"),
    ({"batch_size": 0}, "batch_size"), ({"momentum": 1.0}, "momentum"), ({"dropout": 1.0}, "dropout"),
    ({"conv": "c5"}, "conv"), ({"conv": "c5x8p5"}, "conv"), ({"hidden_sizes": [0]}, "hidden_sizes"),
    ({"hidden_sizes": "wide"}, "hidden_sizes"), ({"activation": "gelu"}, "activation"),
    ({"nesterov": True, "momentum": 0.0}, "nesterov"), ({"seed": -1}, "seed"), ({"lr": "fast"}, "lr"),
    ({"task": " "}, "task"), ({"nesterov": 1}, "nesterov"), ({"train_size": -1}, "train_size"),
])
def test_a_bad_key_is_one_line_naming_it(mapping, key):
    with pytest.raises(ConfigError) as exc:
        from_mapping(mapping)
    message = str(exc.value)
    assert "\n" not in message and f"{key} = " in message and message.startswith("invalid sgd config")


def test_unknown_keys_are_named_and_the_defaults_are_the_probe_settings():
    with pytest.raises(ConfigError, match="unknown sgd config key\\(s\\): generations"):
        from_mapping({"generations": 3})
    cfg = SGDConfig().validate()
    assert (cfg.batch_size, cfg.lr, cfg.momentum, cfg.copies, cfg.hidden_sizes) == (32, 0.01, 0.9, 1, (64,))
    assert from_mapping({"hidden_sizes": 128}).hidden_sizes == (128,)  # one integer is one layer
    tc = from_mapping({"lr": 0.05, "dropout": 0.2}).train_config("mse")
    assert (tc.epochs, tc.lr, tc.dropout, tc.loss, tc.momentum) == (1, 0.05, 0.2, "mse", 0.9)


# ----------------------------------------------------------------------------- epochs
@pytest.fixture(scope="module")
def fonts_root(tmp_path_factory):
    return tmp_path_factory.mktemp("alphabet-root")


@pytest.fixture(scope="module")
def fonts(fonts_root):
    return load_task("alphabet-fonts", fonts_root)


def test_alphabet_fonts_epochs_are_augmented_afresh_and_reproducible(fonts):
    cfg = from_mapping({"task": "alphabet-fonts", "copies": 2, "seed": 3})
    data = EpochData(fonts, cfg)
    n = fonts.X_train.shape[0]
    assert data.augmented and data.rows.shape == (2 * n,)
    assert np.array_equal(data.y, np.tile(fonts.y_train, 2))
    a0, a1 = data.inputs(0), data.inputs(1)
    assert a0.shape == (2 * n, 10000) and a0.dtype == np.float32 and 0 <= a0.min() and a0.max() <= 1
    assert not np.array_equal(a0, a1)  # a fresh augmentation every epoch
    assert not np.array_equal(a0[:n], a0[n:])  # and every copy its own
    assert not np.array_equal(a0[:n], fonts.X_train / np.float32(255))  # not the clean renderings
    again = EpochData(fonts, cfg)
    assert np.array_equal(a0, again.inputs(0)) and np.array_equal(a1, again.inputs(1))
    hook = episode_inputs(fonts.sampler(1, 3), fonts.X_train, data.rows, 1)  # the evolution runs' episode hook
    assert np.array_equal(a1, hook.astype(np.float32) / np.float32(255))


def test_tasks_without_a_hook_train_on_their_rows(data_root):
    task = load_task("wine", data_root, seed=0)
    data = EpochData(task, from_mapping({"task": "wine", "copies": 3, "train_size": 100}))
    assert not data.augmented and data.inputs(0) is data.inputs(5)
    assert np.array_equal(data.inputs(0), np.tile(task.X_train[:100], (3, 1)))
    assert data.y.shape == (300, 1) and data.y.dtype == np.float32


def test_alphabet_fonts_learns_far_above_chance(fonts, tmp_path):
    cfg = from_mapping({"task": "alphabet-fonts", "hidden_sizes": [32], "epochs": 5, "copies": 2, "seed": 1})
    result = train_run(cfg, tmp_path / "run", progress=False, task=fonts)
    assert result["validation_accuracy"] > 0.3 and result["test_accuracy"] > 0.2  # chance: 1/26
    m = read_history(tmp_path / "run" / "metrics.csv")
    assert list(m["epoch"]) == [0, 1, 2, 3, 4] and m["loss"][-1] < m["loss"][0]
    assert result["best_epoch"] == int(np.argmax(m["validation_accuracy"]))


# ----------------------------------------------------------------------------- runs
WINE = {"task": "wine", "hidden_sizes": [16], "epochs": 12, "seed": 2}


def test_a_wine_run_converges_and_writes_its_files(data_root, tmp_path):
    cfg = from_mapping(WINE)
    result = train_run(cfg, tmp_path / "run", data_root, progress=False)
    run = tmp_path / "run"
    assert run_kind(run) == "sgd"
    kept = f"best_genome_wine-red_epoch{result['best_epoch']:04d}.pkl"
    assert sorted(p.name for p in run.iterdir() if not p.name.startswith(".")) == sorted(
        ["genreg-run.json", "config.toml", "metrics.csv", "result.json", kept])
    m = read_history(run / "metrics.csv")
    assert list(m) == ["epoch", "lr", "loss", "train_mse", "validation_mse", "seconds"]
    assert m["loss"][-1] < m["loss"][0] and result["validation_mse"] < 0.85  # a standardised target's variance is ~1
    assert result["validation_mse"] == pytest.approx(m["validation_mse"].min())
    assert json.loads((run / "result.json").read_text())["test_mse"] == pytest.approx(result["test_mse"])
    from genreg.api import Genome  # the test MSE in the data's units is what `genreg eval` of the genome says
    from genreg.tasks import load_task

    task = load_task(cfg.task, data_root, seed=cfg.seed)
    assert result["test_mse_data_units"] == Genome.load(result["best_genome"]).evaluate(task)["mse"]
    genome = load_genome(result["best_genome"])
    assert genome.metadata["strategy"] == "sgd" and genome.metadata["epoch"] == result["best_epoch"]
    assert genome.metadata["selection_metric"] == "validation_mse"
    assert genome.layout.sizes == (11, 16, 1)
    from genreg.cli.predict import genome_task

    assert genome_task(genome, result["best_genome"], data_dir=data_root).name == "wine-red"


def test_same_seed_same_bits_other_seed_other_network(data_root, tmp_path):
    runs = [train_run(from_mapping(WINE), tmp_path / name, data_root, progress=False) for name in ("a", "b")]
    other = train_run(from_mapping({**WINE, "seed": 3}), tmp_path / "c", data_root, progress=False)
    a, b, c = (load_genome(r["best_genome"]).weights for r in (*runs, other))
    assert a.tobytes() == b.tobytes() and a.shape == c.shape and a.tobytes() != c.tobytes()
    ma, mb = (read_history(tmp_path / name / "metrics.csv") for name in ("a", "b"))
    for key in ("loss", "train_mse", "validation_mse"):
        assert ma[key].tobytes() == mb[key].tobytes()


def test_the_founder_is_evolutions_first_founder(data_root):
    cfg = from_mapping(WINE)
    task = load_task_for(cfg, data_root)
    layout = layout_for(cfg, task)
    assert layout.sizes == (11, 16, 1)
    assert np.array_equal(Population.random(layout, 1, seed=2).W[0], Population.random(layout, 5, seed=2).W[0])


def test_an_mnist_subset_learns(mnist_dir, tmp_path):
    cfg = from_mapping({"epochs": 2, "train_size": 3000, "validation_size": 2000, "hidden_sizes": [32]})
    result = train_run(cfg, tmp_path / "run", mnist_dir.parent, progress=False)
    assert result["validation_accuracy"] > 0.8 and result["test_accuracy"] > 0.8


def test_refusals(tmp_path, data_root):
    fitness = FitnessTask(lambda W: np.zeros(W.shape[0]), 2, 1)
    with pytest.raises(ConfigError, match="labelled data"):
        train_run(SGDConfig(), tmp_path / "f", progress=False, task=fitness)
    cfg = from_mapping({**WINE, "epochs": 1})
    train_run(cfg, tmp_path / "run", data_root, progress=False)
    with pytest.raises(ConfigError, match="already holds an sgd run; choose another --out"):
        train_run(cfg, tmp_path / "run", data_root, progress=False)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not a genreg run"):
        train_run(cfg, tmp_path / "other", data_root, progress=False)
    assert [p.name for p in (tmp_path / "other").iterdir()] == ["notes.txt"]


def test_a_run_that_diverged_at_once_may_start_again_in_its_folder(data_root, tmp_path):
    from genreg.errors import TrainingError

    run = tmp_path / "run"
    with pytest.raises(TrainingError, match="diverged in epoch 0"):
        train_run(from_mapping({"task": "boston", "lr": 50.0, "epochs": 2}), run, data_root, progress=False)
    assert not (run / "metrics.csv").exists() and not list(run.glob("*.pkl"))
    result = train_run(from_mapping({"task": "boston", "epochs": 2}), run, data_root, progress=False)
    assert result["best_epoch"] in (0, 1) and "lr = 0.01\n" in (run / "config.toml").read_text()


# ----------------------------------------------------------------------------- ConvNets
CONV = {"epochs": 2, "train_size": 2000, "validation_size": 1000, "conv": "c5x4-p2-c3x8-p2", "hidden_sizes": [],
        "activation": "relu", "lr": 0.05}


def test_a_convnet_is_declared_as_for_evolve(mnist_dir):
    cfg = from_mapping(CONV)
    assert cfg.hidden_sizes == () and cfg.conv == "c5x4-p2-c3x8-p2"
    assert 'conv = "c5x4-p2-c3x8-p2"' in cfg.to_toml() and "hidden_sizes = []" in cfg.to_toml()
    task = load_task_for(cfg, mnist_dir.parent)
    layout = layout_for(cfg, task)
    assert layout.is_conv and layout.shape_name() == "28x28x1-c5x4-p2-c3x8-p2-10"
    assert layout_for(from_mapping({"hidden_sizes": [32]}), task).sizes == (784, 32, 10)  # MLPs as before


def test_a_convnet_on_a_tabular_task_is_refused_before_anything_is_written(data_root, tmp_path):
    with pytest.raises(ConfigError, match="conv = 'c3x4' needs image inputs"):
        train_run(from_mapping({**WINE, "conv": "c3x4"}), tmp_path / "run", data_root, progress=False)
    assert not (tmp_path / "run").exists()


def test_an_mnist_convnet_learns(mnist_dir, tmp_path):
    result = train_run(from_mapping(CONV), tmp_path / "run", mnist_dir.parent, progress=False)
    assert result["shape"] == "28x28x1-c5x4-p2-c3x8-p2-10"
    assert result["validation_accuracy"] > 0.8 and result["test_accuracy"] > 0.8  # chance: 10%
    m = read_history(tmp_path / "run" / "metrics.csv")
    assert list(m["epoch"]) == [0, 1] and m["loss"][-1] < m["loss"][0]
    genome = load_genome(result["best_genome"])
    assert genome.layout.is_conv and genome.layout.shape_name() == result["shape"]
    assert genome.metadata["strategy"] == "sgd"
    again = train_run(from_mapping(CONV), tmp_path / "again", mnist_dir.parent, progress=False)
    assert load_genome(again["best_genome"]).weights.tobytes() == genome.weights.tobytes()  # same seed, same bits
