"""The Python API (genreg.evolve / resume, Genome, Result) and the CLI on user data: real data and files the tests make."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

import genreg
from genreg.cli import main as cli
from genreg.errors import ConfigError, FitnessError
from genreg.tasks import load_task

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(hidden_sizes=[8], population=16, validation_every=1, progress=False)


@pytest.fixture(scope="module")
def boston(data_root):
    return load_task("boston", data_root, seed=0)


def test_evolve_on_arrays_returns_a_working_genome(tmp_path, boston):
    X, y = boston.X_train, boston.y_train
    result = genreg.evolve((X, y), out=tmp_path / "run", strategy="ga", generations=25, **SMALL)
    assert result.generations == 25 and result.run_dir == tmp_path / "run"
    assert result.history["generation"].tolist() == list(range(25))
    val = result.history["validation_mse"]
    assert val[-1] < val[0]  # evolution improved the held-out error
    outputs = result.best.predict(X[:5], classification=False)
    assert outputs.shape == (5, 1) and np.isfinite(outputs).all()
    metrics = result.best.evaluate(result.task)
    assert set(metrics) == {"mse", "mae", "n"} and metrics["mse"] > 0
    back = genreg.Genome.load(result.best.save(tmp_path / "best.pkl"))
    assert back.row.tobytes() == result.best.row.tobytes() and back.layout.sizes == (13, 8, 1)


def test_on_generation_stops_and_resume_equals_an_uninterrupted_run(tmp_path, boston):
    task = (boston.X_train, boston.y_train)
    whole = genreg.evolve(task, out=tmp_path / "whole", generations=12, **SMALL)
    seen = []

    def stop_at_five(metrics):
        seen.append(metrics["generation"])
        return metrics["generation"] == 4

    part = genreg.evolve(task, out=tmp_path / "part", generations=12, on_generation=stop_at_five, **SMALL)
    assert seen == [0, 1, 2, 3, 4] and part.generations == 5
    with pytest.raises(ConfigError, match="pass it again as task="):
        genreg.resume(tmp_path / "part", progress=False)
    done = genreg.resume(tmp_path / "part", task=task, progress=False)
    assert done.generations == 12
    assert done.best.row.tobytes() == whole.best.row.tobytes()
    np.testing.assert_array_equal(done.history["best_fitness"], whole.history["best_fitness"])


def test_fitness_task_evolves_towards_a_target(tmp_path):
    target = np.linspace(-0.5, 0.5, 4 * 3 + 3 + 3 * 3 + 3).astype(np.float32)  # a 4-3-3 network's row

    def fitness(W):
        return -np.square(W - target).sum(axis=1)

    task = genreg.FitnessTask(fitness, n_inputs=4, n_outputs=3, name="target")
    result = genreg.evolve(task, out=tmp_path / "run", strategy="ga", hidden_sizes=[3], generations=60,
                           population=40, progress=False)
    first, last = result.history["best_fitness"][0], result.history["best_fitness"][-1]
    assert last > first and "validation_accuracy" not in result.history


@pytest.mark.parametrize("bad, message", [
    (lambda W: 1 / 0, "raised ZeroDivisionError"),
    (lambda W: np.zeros(3), r"must return shape \(16,\)"),
    (lambda W: np.full(W.shape[0], np.nan), "returned nan for genome 0"),
    (lambda W: "nope", "must return 16 numbers"),
])
def test_fitness_callable_errors_are_one_clear_line(tmp_path, bad, message):
    task = genreg.FitnessTask(bad, n_inputs=2, n_outputs=1, name="bad")
    with pytest.raises(FitnessError, match=message):
        genreg.evolve(task, out=tmp_path / "run", generations=2, **SMALL)


def _csv(path: Path, rng) -> Path:
    X = rng.normal(size=(120, 3))
    label = np.where(X[:, 0] + X[:, 1] > 0, "up", "down")
    lines = ["a,b,c,direction"] + [f"{a:.4f},{b:.4f},{c:.4f},{d}" for (a, b, c), d in zip(X, label)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_csv_task_runs_checkpoints_resumes_and_evaluates(tmp_path, capsys):
    data = _csv(tmp_path / "points.csv", np.random.default_rng(0))
    run = tmp_path / "run"
    assert cli.main(["evolve", "--task", f"csv:{data}", "--target", "direction", "--out", str(run), "--generations",
                     "4", "--set", "hidden_sizes=[4]", "--set", "population=12", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "classification" in out and "2 classes" in out
    assert (run / "checkpoints" / "state_gen00004.h5").is_file()
    assert cli.main(["resume", str(run), "--generations", "7", "--no-progress"]) == 0
    best = sorted(run.glob("best_genome_*_gen00007.pkl"))
    assert len(best) == 1
    assert cli.main(["eval", str(best[0]), "--task", f"csv:{data}", "--target", "direction"]) == 0
    assert re.search(r"accuracy", capsys.readouterr().out)


def test_cli_npz_task_runs(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 5)).astype(np.float32)
    np.savez(tmp_path / "d.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    assert cli.main(["evolve", "--task", f"npz:{tmp_path / 'd.npz'}", "--out", str(tmp_path / "run"),
                     "--generations", "3", "--set", "population=10", "--set", "hidden_sizes=[4]", "--no-progress"]) == 0
    assert (tmp_path / "run" / "genreg-run.json").is_file()


@pytest.mark.parametrize("args, message", [
    (["--task", "csv:{csv}", "--target", "nope"], "nope"),
    (["--task", "npz:{npz}"], "X"),
])
def test_cli_bad_task_files_are_one_line_errors(tmp_path, capsys, args, message):
    csv = _csv(tmp_path / "p.csv", np.random.default_rng(2))
    np.savez(tmp_path / "bad.npz", features=np.zeros((4, 2)))
    args = [a.format(csv=csv, npz=tmp_path / "bad.npz") for a in args]
    assert cli.main(["evolve", *args, "--out", str(tmp_path / "run"), "--generations", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genreg: error:") and message in err[0]


def test_eval_refuses_a_genome_of_another_task(tmp_path, capsys, mnist_dir):
    data = _csv(tmp_path / "p.csv", np.random.default_rng(3))
    shipped = REPO / "checkpoints" / "mnist" / "genreg-protocol-600gen-784-64-10-seed0.pkl"
    assert cli.main(["eval", str(shipped), "--task", f"csv:{data}", "--target", "direction"]) == 2
    err = capsys.readouterr().err
    assert "784-64-10" in err and "3 inputs" in err and "Traceback" not in err


def test_readme_python_example_runs(tmp_path, monkeypatch, data_root):
    """The README's Python example, executed as written (in a scratch folder)."""
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "the README has a Python example"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GENREG_DATA", str(data_root))
    exec(compile(blocks[0], "README.md", "exec"), {})


def test_cli_eval_of_a_regression_genome(tmp_path, capsys, data_root):
    run = tmp_path / "run"
    assert cli.main(["evolve", "--task", "boston", "--data-dir", str(data_root), "--out", str(run), "--generations", "3",
                     "--set", "population=8", "--set", "hidden_sizes=[4]", "--no-progress"]) == 0
    best = run / "best_genome_boston_gen00003.pkl"
    assert cli.main(["eval", str(best), "--task", "boston", "--data-dir", str(data_root),
                     "--json", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "mean squared error" in out
    import json

    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mse"] > 0 and report["n"] == 101


def test_resume_refuses_a_task_whose_outputs_changed(tmp_path, capsys):
    data = _csv(tmp_path / "p.csv", np.random.default_rng(4))
    run = tmp_path / "run"
    assert cli.main(["evolve", "--task", f"csv:{data}", "--target", "direction", "--out", str(run), "--generations", "2",
                     "--set", "population=8", "--set", "hidden_sizes=[4]", "--no-progress"]) == 0
    lines = data.read_text().splitlines()
    data.write_text("\n".join(lines[:1] + [line.replace(",up", ",sideways") if i % 3 == 0 else line
                                          for i, line in enumerate(lines[1:])]) + "\n")  # now 3 classes
    capsys.readouterr()
    assert cli.main(["resume", str(run), "--generations", "4", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "needs a" in err[0] and "3" in err[0]


def test_resume_from_python_of_a_run_killed_before_its_first_checkpoint(tmp_path, boston):
    from genreg.runs.rundir import write_marker
    from genreg.strategies.config import from_mapping

    task = (boston.X_train, boston.y_train)
    whole = genreg.evolve(task, out=tmp_path / "whole", generations=4, **SMALL)
    run = tmp_path / "run"
    write_marker(run, "evolve")
    keys = {k: v for k, v in SMALL.items() if k != "progress"}
    (run / "config.toml").write_text(from_mapping({**keys, "generations": 4, "task": "python:arrays"}).to_toml())
    done = genreg.resume(run, task=task, progress=False)
    assert done.generations == 4 and done.best.row.tobytes() == whole.best.row.tobytes()


def test_resume_refuses_a_new_seed_where_the_seed_splits_the_data(tmp_path, boston):
    task = (boston.X_train, boston.y_train)
    genreg.evolve(task, out=tmp_path / "run", generations=2, **SMALL)
    with pytest.raises(ConfigError, match="cannot change seed"):
        genreg.resume(tmp_path / "run", task=task, generations=4, seed=5, progress=False)


def _raw_task(kind: str, seed: int = 0):
    """Raw data far from N(0, 1) (features near 1000, targets near 100), with a given test split."""
    from genreg.tasks import from_arrays

    rng = np.random.default_rng(seed)
    X = rng.normal(1000.0, 50.0, size=(300, 4))
    signal = (X[:, 0] - 1000.0) / 50.0 - (X[:, 1] - 1000.0) / 50.0
    y = (signal > 0).astype(np.int64) if kind == "classification" else 100.0 + 20.0 * signal
    return from_arrays(X[:240], y[:240], X_test=X[240:], y_test=y[240:]), X[240:], y[240:]


def test_predict_reads_raw_inputs_as_the_task_did(tmp_path):
    task, X_raw, y = _raw_task("classification")
    result = genreg.evolve(task, out=tmp_path / "run", strategy="ga", generations=15, **SMALL)
    best = result.best
    labels = best.predict(X_raw)
    np.testing.assert_array_equal(labels, np.argmax(best.outputs(task.X_test), axis=1))
    assert (labels == y).mean() == best.evaluate(task)["accuracy"]
    unscaled = np.argmax(best.outputs(X_raw.astype(np.float32)), axis=1)  # what predict gave before: no scaling
    assert not np.array_equal(unscaled, labels)
    away = genreg.Genome.load(result.best.save(tmp_path / "best.pkl"))  # a file alone: network inputs
    np.testing.assert_array_equal(away.predict(task.X_test), labels)
    np.testing.assert_array_equal(genreg.Genome.load(tmp_path / "best.pkl", task=task).predict(X_raw), labels)


def test_predict_gives_regression_outputs_in_the_data_units(tmp_path):
    task, X_raw, y = _raw_task("regression", seed=1)
    best = genreg.evolve(task, out=tmp_path / "run", strategy="ga", generations=15, **SMALL).best
    values = best.predict(X_raw)
    assert values.shape == (len(y), 1) and abs(values.mean() - 100.0) < 40.0
    np.testing.assert_allclose(values, task.targets_to_raw(best.outputs(task.X_test)), rtol=1e-6)
    np.testing.assert_allclose(np.mean((values[:, 0] - y) ** 2), best.evaluate(task)["mse"], rtol=1e-5)


def test_stopped_by_says_why_a_run_ended_early(tmp_path, boston, capsys):
    task = (boston.X_train, boston.y_train)
    part = genreg.evolve(task, out=tmp_path / "part", generations=6, on_generation=lambda m: m["generation"] == 2,
                         **SMALL)
    assert part.generations == 3 and part.stopped_by == "callback"
    assert f"genreg.resume('{tmp_path / 'part'}', task=...)" in capsys.readouterr().out
    done = genreg.resume(tmp_path / "part", task=task, progress=False)
    assert done.generations == 6 and done.stopped_by is None


def test_evaluate_on_a_fitness_task_is_a_clear_error(tmp_path):
    task = genreg.FitnessTask(lambda W: -np.abs(W).sum(axis=1), n_inputs=2, n_outputs=1, name="small")
    result = genreg.evolve(task, out=tmp_path / "run", generations=2, hidden_sizes=[2], population=8, progress=False)
    with pytest.raises(ConfigError, match="fitness task"):
        result.best.evaluate(task)


def test_a_run_on_a_relative_csv_path_works_from_any_folder(tmp_path, monkeypatch, capsys):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    _csv(work / "points.csv", np.random.default_rng(6))
    monkeypatch.chdir(work)
    assert cli.main(["evolve", "--task", "csv:points.csv", "--target", "direction", "--out", "run", "--generations",
                     "2", "--set", "hidden_sizes=[4]", "--set", "population=8", "--no-progress"]) == 0
    assert f'task = "csv:{work / "points.csv"}"' in (work / "run" / "config.toml").read_text()
    monkeypatch.chdir(elsewhere)
    best = next((work / "run").glob("best_genome_*.pkl"))
    assert cli.main(["eval", str(best)]) == 0
    assert cli.main(["resume", str(work / "run"), "--generations", "3", "--no-progress"]) == 0


def test_predict_reads_numbers_for_a_task_of_pixels_as_pixel_values(tmp_path, capsys):
    rng = np.random.default_rng(7)
    X = rng.integers(0, 256, size=(150, 16), dtype=np.uint8)
    np.savez(tmp_path / "codes.npz", X=X, y=(X[:, 0] > X[:, 1]).astype(np.int64))
    result = genreg.evolve(f"npz:{tmp_path / 'codes.npz'}", out=tmp_path / "run", strategy="ga", generations=3,
                           **SMALL)
    as_pixels = result.best.predict(X[:6])
    np.testing.assert_array_equal(result.best.predict(X[:6].astype(np.float64)), as_pixels)  # 0-255 numbers
    np.testing.assert_array_equal(result.best.predict(X[:6] / 255.0), as_pixels)  # already in [0, 1]
    best = next((tmp_path / "run").glob("best_genome_*.pkl"))
    capsys.readouterr()
    for row, label in zip(X[:6], as_pixels):
        assert cli.main(["predict", str(best), "--input", ",".join(map(str, row))]) == 0
        assert f"class {label} " in capsys.readouterr().out
