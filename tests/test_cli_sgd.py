"""`genreg sgd`: a run from the command line, read back by eval, drawn by plot, refused by resume; bad input."""

from __future__ import annotations

import re

import pytest

from genreg.cli.main import main
from genreg.config import config_fields, toml_value
from genreg.runs.sgd import SGDConfig


def _pickle(run):
    (path,) = run.glob("best_genome_*_epoch*.pkl")
    return path


def test_a_wine_run_is_evaluated_plotted_and_not_resumed(data_root, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["sgd", "--task", "wine", "--epochs", "4", "--seed", "1", "--set", "hidden_sizes=8",
                 "--out", str(run), "--data-dir", str(data_root), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert f"run directory: {run}" in out and "4 epochs of SGD on wine-red (11-8-1)" in out
    units = re.search(r"validation mse [\d.]+, test mse [\d.]+ \(standardised targets; ([\d.]+) in the data's units", out)
    assert units
    path = _pickle(run)
    assert f"best genome: {path}" in out
    assert main(["eval", str(path), "--data-dir", str(data_root)]) == 0  # the task from the run's config.toml
    evaluated = capsys.readouterr().out
    assert f"wine-red test set (320 rows): mean squared error {units.group(1)}," in evaluated  # the same number
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "learning_curve.png").stat().st_size > 10_000
    assert main(["resume", str(run)]) == 2
    err = capsys.readouterr().err
    assert "is an sgd run: sgd runs are short and not resumable" in err and len(err.strip().splitlines()) == 1


def test_an_mnist_genome_is_read_back_by_eval(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["sgd", "--epochs", "1", "--set", "train_size=2000", "--set", "validation_size=1000",
                 "--set", "hidden_sizes=[16]", "--out", str(run), "--data-dir", str(mnist_dir.parent),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    test = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert test > 50  # one epoch on 2000 images (chance: 10%)
    assert main(["eval", str(_pickle(run)), "--data-dir", str(mnist_dir.parent)]) == 0
    assert f"= {test:.2f}%" in capsys.readouterr().out  # the same genome, the same test set


def test_keys_come_from_config_then_set_then_options(data_root, tmp_path, capsys):
    config = tmp_path / "c.toml"
    config.write_text('task = "wine"\nepochs = 9\nlr = 0.02\nhidden_sizes = [4]\n')
    run = tmp_path / "run"
    assert main(["sgd", "--config", str(config), "--set", "epochs=5", "--set", "lr=0.03", "--epochs", "2",
                 "--out", str(run), "--data-dir", str(data_root), "--no-progress"]) == 0
    saved = (run / "config.toml").read_text()
    assert "epochs = 2\n" in saved and "lr = 0.03\n" in saved and "hidden_sizes = [4]\n" in saved
    assert main(["sgd", "--config", str(run / "config.toml"), "--out", str(tmp_path / "again"),
                 "--data-dir", str(data_root), "--no-progress"]) == 0  # a run's config starts a new one


def test_an_mnist_convnet_run_is_evaluated_and_plotted(mnist_dir, tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["sgd", "--epochs", "1", "--set", "train_size=2000", "--set", "validation_size=1000",
                 "--set", "conv=c5x4-p2", "--set", "hidden_sizes=[]", "--set", "activation=relu", "--set", "lr=0.05",
                 "--out", str(run), "--data-dir", str(mnist_dir.parent), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 epochs of SGD on mnist (28x28x1-c5x4-p2-10)" in out
    test = float(re.search(r"test accuracy ([\d.]+)%", out).group(1))
    assert test > 70  # one epoch on 2000 images (chance: 10%)
    assert main(["plot", str(run), "--out", str(tmp_path / "figs")]) == 0
    assert (tmp_path / "figs" / "learning_curve.png").stat().st_size > 10_000
    capsys.readouterr()
    assert main(["eval", str(_pickle(run)), "--data-dir", str(mnist_dir.parent)]) == 0
    evaluated = float(re.search(r"= ([\d.]+)%", capsys.readouterr().out).group(1))
    assert evaluated == pytest.approx(test, abs=0.05)  # the Numba forward (eval) agrees with the NumPy one


@pytest.mark.parametrize("argv, message", [
    (["--set", "lr=-1"], "invalid sgd config: lr = -1.0: must be > 0"),
    (["--set", "copies=0"], "invalid sgd config: copies = 0: must be >= 1"),
    (["--set", "generations=3"], "unknown sgd config key(s): generations"),
    (["--epochs", "0"], "invalid sgd config: epochs = 0"),
    (["--set", "conv=c3x4"], "conv = 'c3x4' needs image inputs (H, W) or (H, W, C), but the task's inputs are 11"),
])
def test_bad_keys_are_one_line(argv, message, tmp_path, capsys):
    assert main(["sgd", "--task", "wine", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


def test_missing_data_creates_nothing(tmp_path, capsys):
    root = tmp_path / "empty-root"
    root.mkdir()
    out = tmp_path / "run"
    assert main(["sgd", "--task", "wine", "--out", str(out), "--data-dir", str(root), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "genreg data download wine" in captured.err and not out.exists()
    assert "run directory" not in captured.out
    assert main(["sgd", "--task", f"csv:{tmp_path / 'none.csv'}", "--target", "y", "--out", str(out)]) == 2
    assert "none.csv" in capsys.readouterr().err and not out.exists()


def test_an_existing_non_empty_out_is_refused(data_root, tmp_path, capsys):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert main(["sgd", "--task", "wine", "--out", str(out), "--data-dir", str(data_root)]) == 2
    assert "holds files that are not a genreg run" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["notes.txt"]
    assert main(["sgd", "--task", "wine", "--out", str(out / "notes.txt"), "--data-dir", str(data_root)]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err


def test_help_documents_the_configs_defaults(capsys):
    with pytest.raises(SystemExit):
        main(["sgd", "--help"])
    text = capsys.readouterr().out
    assert text.split("example:\n", 1)[1].splitlines()[0].startswith("  genreg sgd ")
    documented = dict(re.findall(r"^  (\w+) = (.*)$", text.split("config keys", 1)[1], re.M))
    fields = config_fields(SGDConfig)
    assert set(documented) == set(fields)
    for name, value in documented.items():
        assert value == toml_value(fields[name].default), name
