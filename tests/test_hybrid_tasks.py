"""Hybrid GA + SGD on any task: a CSV classification task, Boston regression (MSE), shapes against task ends."""

import csv
import json

import numpy as np
import pytest

from genreg.cli.main import main
from genreg.errors import ConfigError
from genreg.hybrid.config import from_mapping, parse_architecture
from genreg.hybrid.run import format_result, load_data, resume_hybrid, start_hybrid, task_layout

TINY = {"generations": 2, "population": 3, "workers": 1, "batch_size": 16, "baseline": True}


def blobs_csv(path, n_per_class=40):
    """Three Gaussian blobs in 2-D plus a noise column; the label is a word (string classes)."""
    rng = np.random.default_rng(0)
    rows = []
    for c, name in enumerate(("red", "green", "blue")):
        centre = np.array([3.0 * c, -2.0 * c])
        for _ in range(n_per_class):
            x = centre + rng.normal(size=2)
            rows.append([f"{x[0]:.4f}", f"{x[1]:.4f}", f"{rng.normal():.4f}", name])
    rng.shuffle(rows)
    path.write_text("a,b,noise,colour\n" + "".join(",".join(r) + "\n" for r in rows))
    return path


def test_architectures_take_their_ends_from_the_task():
    assert parse_architecture("256-128", n_inputs=13, n_outputs=1).sizes == (13, 256, 128, 1)
    vertical = parse_architecture("300-[50|50|50]", n_inputs=11, n_outputs=1)
    assert vertical.sizes == (11, 300, 150, 1) and vertical.blocks == ((300,), (50, 50, 50), (1,))
    assert parse_architecture("13-8-1", n_inputs=13, n_outputs=1).sizes == (13, 8, 1)  # a full shape
    assert from_mapping({"architecture": "vertical"}).layout(5, 3).shape_name() == "5-256-[64|64]-3"
    assert from_mapping({}).layout().shape_name() == "784-256-128-10"  # MNIST's ends by default


@pytest.mark.parametrize("shape,words", [("784-32-10", ["784 inputs and 10 outputs", "13 inputs and 1 outputs"]),
                                         ("13-8-3", ["3 outputs", "13 inputs and 1 outputs"])])
def test_a_full_shape_that_does_not_fit_the_task_is_refused(tmp_path, data_root, shape, words):
    cfg = from_mapping({**TINY, "task": "boston", "architecture": shape})
    with pytest.raises(ConfigError) as err:
        start_hybrid(cfg, tmp_path / "run", data_root, progress=False)
    assert all(w in str(err.value) for w in words) and "boston" in str(err.value)
    assert not (tmp_path / "run").exists()  # refused before anything is written
    with pytest.raises(ConfigError, match="784-100-5"):  # MNIST's ends are known without loading it
        from_mapping({"architecture": "784-100-5"})


def test_csv_classification_run_and_resume(tmp_path):
    path = blobs_csv(tmp_path / "blobs.csv")
    cfg = from_mapping({**TINY, "task": f"csv:{path}", "target": "colour", "architecture": "8", "lr": 0.05})
    result = start_hybrid(cfg, tmp_path / "run", progress=False)
    assert result["shape"] == "3-8-3" and result["metric"] == "accuracy"
    assert 0.0 <= result["best_test_accuracy"] <= 1.0 and "baseline_test_accuracy" in result
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert len(rows) == 2 and "best_val_accuracy" in rows[0]
    # resuming to more generations continues on the same task; the task may not change
    more = resume_hybrid(tmp_path / "run", {"generations": 3}, progress=False)
    assert more["generations"] == 3
    with pytest.raises(ConfigError, match="task"):
        resume_hybrid(tmp_path / "run", {"task": "boston", "generations": 4}, progress=False)


def test_boston_regression_is_scored_by_validation_mse(tmp_path, data_root):
    cfg = from_mapping({**TINY, "task": "boston", "architecture": "16", "lr": 0.01})
    result = start_hybrid(cfg, tmp_path / "run", data_root, progress=False)
    assert result["metric"] == "mse" and result["shape"] == "13-16-1"
    assert not any("accuracy" in k for k in result)
    assert 0 < result["best_val_mse"] < 200 and 0 < result["best_test_mse"] and "baseline_test_mse" in result
    rows = list(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert [k for k in rows[0] if k.endswith("_mse")] == ["best_val_mse", "mean_val_mse", "worst_val_mse",
                                                           "pool_mean_val_mse"]
    assert float(rows[-1]["best_val_mse"]) <= float(rows[-1]["worst_val_mse"])
    assert float(rows[-1]["best_val_mse"]) == pytest.approx(result["best_val_mse"])
    # the fitness is minus the validation MSE in $1000s squared, recomputed from the data
    data = load_data(cfg, data_root)
    from genreg.hybrid.run import latest_state

    _, state, _ = latest_state(tmp_path / "run")
    assert state.population.trust[0] == pytest.approx(-data.score(task_layout(cfg, data.task),
                                                                  state.population.W[0], data.X_val, data.y_val))
    assert np.all(np.diff(state.population.trust) <= 0)  # best first
    assert "val mse" in format_result(result)


def test_cli_hybrid_on_a_csv_task_and_attack_refuses_tables(tmp_path, capsys):
    path = blobs_csv(tmp_path / "blobs.csv")
    out = tmp_path / "run"
    argv = ["hybrid", "--task", f"csv:{path}", "--target", "colour", "--set", 'architecture="4"', "--set",
            "population=2", "--set", "workers=1", "--generations", "1", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    assert "3-4-3" in capsys.readouterr().out
    assert json.loads((out / "result.json").read_text())["task"].startswith("csv:")
    assert main(["attack", str(out), "--images", "5"]) == 2
    err = capsys.readouterr().err
    assert "not one of images" in err and "Traceback" not in err
