"""The trait search on any task (CSV classification, Boston, wine-white), its metric module, and predict --input."""

import json

import numpy as np
import pytest

from genreg.cli.main import main
from genreg.errors import ConfigError, DataError
from genreg.hpo.config import hpo_from_mapping
from genreg.hpo.data import search_task
from genreg.hpo.metrics import SearchMetric, resolve_metric
from genreg.hpo.model import load_model, predict_input
from genreg.hpo.search import run_hpo
from genreg.tasks import load_task

TINY = {"population": 4, "generations": 2, "epochs": 2, "width_max": 16, "layers_max": 2}


def blobs_csv(path, n_per_class=40):
    """Three Gaussian blobs in 2-D; the label is a word."""
    rng = np.random.default_rng(1)
    rows = []
    for c, name in enumerate(("red", "green", "blue")):
        for _ in range(n_per_class):
            x = np.array([3.0 * c, -2.0 * c]) + rng.normal(size=2)
            rows.append(f"{x[0]:.4f},{x[1]:.4f},{name}\n")
    path.write_text("a,b,colour\n" + "".join(rows))
    return path


def test_metric_resolution_direction_and_reached():
    assert resolve_metric("auto", "mnist") == "accuracy" and resolve_metric("auto", "trig") == "mse"
    assert resolve_metric("auto", "boston") == "mae" and resolve_metric("auto", "csv:x.csv", "classification") == "accuracy"
    acc, mae = SearchMetric("accuracy"), SearchMetric("mae", np.ones(1))
    assert acc.higher_is_better and acc.loss == "nll" and not mae.higher_is_better and mae.loss == "mse"
    assert acc.reached(0.9, 0.9) and not acc.reached(0.89, 0.9) and mae.reached(2.0, 2.5) and not mae.reached(3, 2.5)
    assert not acc.reached(0.99, float("nan"))


def test_builtin_tasks_come_from_load_task_with_the_search_fractions(data_root):
    cfg = hpo_from_mapping({"task": "boston", "seed": 3, "val_fraction": 0.25, "test_fraction": 0.1})
    t, ref = search_task(cfg, data_root), load_task("boston", data_root, seed=3, val_fraction=0.25, test_fraction=0.1)
    assert len(t.y_val) == round(0.25 * 506) and len(t.y_test) == round(0.1 * 506)
    assert all(np.array_equal(getattr(t, k), getattr(ref, k)) for k in ("X_train", "y_val", "x_mean", "y_std"))
    white = search_task(hpo_from_mapping({"task": "wine", "wine_color": "white"}), data_root)
    assert white.n_inputs == 11 and len(white.y_train) + len(white.y_val) + len(white.y_test) == 4898
    with pytest.raises(DataError, match="val_fraction"):
        load_task("mnist", val_fraction=0.3)


def test_csv_classification_search_and_predict(tmp_path, capsys):
    path = blobs_csv(tmp_path / "blobs.csv")
    cfg = hpo_from_mapping({**TINY, "task": f"csv:{path}", "target_column": "colour"})
    res = run_hpo(cfg, tmp_path / "run")
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["metric"] == "accuracy" and res.best.layout.sizes[0] == 2 and res.best.layout.sizes[-1] == 3
    assert 0.0 <= res.test_metric <= 1.0
    model = load_model(tmp_path / "run" / "best_model.h5")
    assert model.kind == "classification" and set(model.classes) == {"red", "green", "blue"}
    out, _ = predict_input(tmp_path / "run" / "best_model.h5", "6.0,-4.0")
    assert out["class"] in model.classes and sum(out["probabilities"]) == pytest.approx(1.0)
    assert main(["predict", str(tmp_path / "run" / "best_model.h5"), "--input", "0,0"]) == 0
    assert "prediction: class" in capsys.readouterr().out
    # a regression metric on a classification task is refused before anything is written
    with pytest.raises(ConfigError, match="metric"):
        run_hpo(cfg.replace(metric="mae"), tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_boston_search_reports_mae_in_thousands_of_dollars(tmp_path, data_root):
    cfg = hpo_from_mapping({**TINY, "task": "boston", "epochs": 5})
    res = run_hpo(cfg, tmp_path / "run", data_root)
    assert 0 < res.best.metric < 25 and json.loads((tmp_path / "run" / "summary.json").read_text())["metric"] == "mae"


def test_predict_input_on_a_wine_model(tmp_path, data_root, capsys):
    cfg = hpo_from_mapping({**TINY, "task": "wine", "epochs": 3})
    run_hpo(cfg, tmp_path / "wine", data_root)
    model_path = tmp_path / "wine" / "best_model.h5"
    model = load_model(model_path)
    assert model.task == "wine" and model.task_spec == "wine" and len(model.feature_names) == 11
    row = "7.4,0.7,0,1.9,0.076,11,34,0.9978,3.51,0.56,9.4"  # the first red wine of the file (quality 5)
    out, _ = predict_input(model_path, row)
    raw = np.array([[float(v) for v in row.split(",")]])
    assert out["outputs"][0] == pytest.approx(model.predict(raw)[0, 0]) and 2 < out["outputs"][0] < 9
    assert main(["predict", str(model_path), "--input", row]) == 0
    assert "prediction:" in capsys.readouterr().out
    for argv, words in ((["--input", "1,2"], "needs 11"), (["--input", "1,x"], "not a number"),
                        ([], "--input"), (["--angle", "40"], "'wine' model")):
        assert main(["predict", str(model_path), *argv]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err


def test_unknown_task_and_misplaced_target_column_name_the_key():
    with pytest.raises(ConfigError, match="task"):
        hpo_from_mapping({"task": "cifar"})
    with pytest.raises(ConfigError, match="target_column"):
        hpo_from_mapping({"task": "wine", "target_column": "quality"})
    with pytest.raises(ConfigError, match="target_column"):
        hpo_from_mapping({"task": "csv:data.csv"})
