"""`genreg predict` for every model kind genreg saves: a genome on images (PNG, PGM, .npy, .npz), a tabular
genome on a CSV row or file, an hpo model on a CSV row or file, a trig model on an angle; the model's kind
is read from the file, and a wrong input says what the model needs."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.api import Genome
from genreg.cli.main import main
from genreg.genome.checkpoint import save_genome
from genreg.hpo.model import load_model
from genreg.network.layout import Layout
from genreg.network.population import Population

PIL = pytest.importorskip("PIL.Image")


@pytest.fixture(scope="module")
def image_genome(tmp_path_factory):
    layout = Layout((784, 16, 10), "tanh")
    path = tmp_path_factory.mktemp("img") / "best_genome_mnist_gen00001.pkl"
    save_genome(path, layout, Population.random(layout, 1, seed=7).W[0], metadata={"task": "mnist"})
    return path


@pytest.fixture(scope="module")
def digits():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)


def _classes(text: str) -> list[str]:
    return [line.split("class ")[1].split()[0] for line in text.splitlines() if "prediction: class" in line]


@pytest.mark.parametrize("suffix", [".png", ".pgm"])
def test_image_genome_on_an_image_file(tmp_path, image_genome, digits, capsys, suffix):
    path = tmp_path / f"digit{suffix}"
    PIL.fromarray(digits[0]).save(path)
    assert main(["predict", str(image_genome), str(path)]) == 0
    out = capsys.readouterr().out
    expected = Genome.load(image_genome).predict(digits[0].reshape(1, 784))[0]
    assert _classes(out) == [str(expected)] and "softmax probability" in out and f"digit{suffix}" in out


def test_image_genome_on_arrays_of_images(tmp_path, image_genome, digits, capsys):
    genome = Genome.load(image_genome)
    expected = [str(c) for c in genome.predict(digits.reshape(3, 784))]
    np.save(tmp_path / "d.npy", digits)
    np.savez(tmp_path / "d.npz", X=digits.reshape(3, 784))
    np.save(tmp_path / "f.npy", digits.astype(np.float32) / 255.0)  # floats in [0, 1] are the same pixels
    for name in ("d.npy", "d.npz", "f.npy"):
        assert main(["predict", str(image_genome), str(tmp_path / name)]) == 0
        assert _classes(capsys.readouterr().out) == expected, name


@pytest.mark.parametrize("argv, words", [
    (["--input", "1,2,3"], "image genome"),
    ([], "image file"),
    (["--angle", "30"], "--angle is for a trig model"),
])
def test_image_genome_given_the_wrong_input_says_what_it_needs(image_genome, capsys, argv, words):
    assert main(["predict", str(image_genome), *argv]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0]


def test_image_genome_on_an_image_of_the_wrong_size(tmp_path, image_genome, capsys):
    PIL.fromarray(np.zeros((10, 12), dtype=np.uint8)).save(tmp_path / "small.png")
    assert main(["predict", str(image_genome), str(tmp_path / "small.png")]) == 2
    assert "28x28 grey" in capsys.readouterr().err


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """A regression genome of `genreg evolve --task csv:FILE --target y` on y = 2a - b + 1."""
    root = tmp_path_factory.mktemp("csv")
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=300), rng.normal(size=300)
    data = root / "rows.csv"
    data.write_text("a,b,y\n" + "".join(f"{x:.5f},{z:.5f},{2 * x - z + 1:.5f}\n" for x, z in zip(a, b)))
    run = root / "run"
    assert main(["evolve", "--task", f"csv:{data}", "--target", "y", "--generations", "2", "--set", "population=12",
                 "--set", "hidden_sizes=[4]", "--no-progress", "--out", str(run)]) == 0
    return data, run, next(run.glob("best_genome_*.pkl"))


def _expected(run, genome_path, rows):
    from genreg.api import as_task
    from genreg.config import load_toml

    cfg = load_toml(run / "config.toml")
    task = as_task(cfg["task"], seed=cfg["seed"], validation_size=cfg["validation_size"], target="y")
    out = Genome.load(genome_path).outputs(task.features_from_raw(np.array(rows)))
    return task.targets_to_raw(out)[:, 0]


def test_tabular_genome_on_a_row_and_a_file(tmp_path, csv_run, capsys):
    data, run, genome = csv_run
    capsys.readouterr()
    assert main(["predict", str(genome), "--input", "0.5,-1"]) == 0
    out = capsys.readouterr().out
    value = float(out.split("prediction: ")[1].split()[0])
    assert value == pytest.approx(_expected(run, genome, [[0.5, -1.0]])[0], rel=1e-5) and "(y)" in out
    # a CSV with the header of the training file: the target column is dropped by name
    rows = tmp_path / "new.csv"
    rows.write_text("a,b,y\n0.5,-1,0\n1,2,0\n")
    assert main(["predict", str(genome), str(rows)]) == 0
    values = [float(line.split("prediction: ")[1].split()[0]) for line in capsys.readouterr().out.splitlines()
              if "prediction: " in line]
    assert values == pytest.approx(_expected(run, genome, [[0.5, -1.0], [1.0, 2.0]]).tolist(), rel=1e-5)


def test_tabular_genome_given_the_wrong_input_says_what_it_needs(tmp_path, csv_run, capsys):
    _, run, genome = csv_run
    PIL.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(tmp_path / "x.png")
    for argv, words in ((["--input", "1,2,3"], "needs 2 (a, b)"), (["--input", "1,x"], "not a number"),
                        ([str(tmp_path / "x.png")], "not images"), ([], "--input")):
        assert main(["predict", str(genome), *argv]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], (argv, err)


def test_tabular_genome_away_from_its_run_needs_task(tmp_path, csv_run, capsys):
    data, run, genome = csv_run
    lone = tmp_path / "lone.pkl"
    g = Genome.load(genome)
    save_genome(lone, g.layout, g.row)  # no metadata, no config.toml beside it
    assert main(["predict", str(lone), "--input", "0.5,-1"]) == 2
    assert "--task" in capsys.readouterr().err
    assert main(["predict", str(lone), "--input", "0.5,-1", "--task", f"csv:{data}", "--target", "y"]) == 0
    assert "prediction: " in capsys.readouterr().out


def test_a_tabular_genome_with_784_features_is_not_taken_for_an_image_genome(tmp_path, capsys):
    rng = np.random.default_rng(5)
    X = rng.normal(size=(120, 784)).astype(np.float32)
    np.savez(tmp_path / "wide.npz", X=X, y=(X[:, 0] > 0).astype(np.int64))
    run = tmp_path / "run"
    assert main(["evolve", "--task", f"npz:{tmp_path / 'wide.npz'}", "--generations", "2", "--set", "population=8",
                 "--set", "hidden_sizes=[4]", "--no-progress", "--out", str(run)]) == 0
    genome = next(run.glob("best_genome_*.pkl"))
    capsys.readouterr()
    assert main(["predict", str(genome), "--input=" + ",".join(f"{v:.4f}" for v in X[0])]) == 0
    assert "prediction: class" in capsys.readouterr().out


def test_eval_with_task_uses_the_runs_seed(tmp_path, csv_run, capsys):
    """`genreg eval --task csv:FILE` of a seed-5 run scores the split that run held out, as eval without --task."""
    data, _, _ = csv_run
    run = tmp_path / "seed5"
    assert main(["evolve", "--task", f"csv:{data}", "--target", "y", "--seed", "5", "--generations", "2",
                 "--set", "population=8", "--set", "hidden_sizes=[4]", "--no-progress", "--out", str(run)]) == 0
    genome = next(run.glob("best_genome_*.pkl"))
    capsys.readouterr()
    assert main(["eval", str(genome)]) == 0
    own = capsys.readouterr().out
    assert main(["eval", str(genome), "--task", f"csv:{data}", "--target", "y"]) == 0
    named = capsys.readouterr().out
    mse = [line.split("mean squared error ")[1].split(",")[0] for line in (own, named)]
    assert mse[0] == mse[1]


@pytest.fixture(scope="module")
def trig_search(tmp_path_factory):
    run = tmp_path_factory.mktemp("hpo") / "run"
    assert main(["hpo", "--task", "trig", "--population", "4", "--generations", "1", "--epochs", "2",
                 "--set", "trig_samples=200", "--no-progress", "--out", str(run)]) == 0
    return run / "best_model.h5"


def test_hpo_model_on_a_row_a_file_and_an_angle(tmp_path, trig_search, capsys):
    model = load_model(trig_search)
    rows = tmp_path / "angles.csv"
    rows.write_text("0.5\n1.5\n")
    capsys.readouterr()
    assert main(["predict", str(trig_search), str(rows)]) == 0
    out = capsys.readouterr().out
    values = [float(line.split("prediction: ")[1].split()[0]) for line in out.splitlines() if "prediction: " in line]
    assert values == pytest.approx(model.predict(np.array([[0.5], [1.5]]))[:, 0].tolist(), rel=1e-6)
    assert main(["predict", str(trig_search), "--input", "0.5"]) == 0
    assert "prediction: " in capsys.readouterr().out
    assert main(["predict", str(trig_search), "--angle", "30"]) == 0
    assert "cos(30 deg)" in capsys.readouterr().out
    assert main(["predict", str(trig_search)]) == 2
    assert "--angle DEG" in capsys.readouterr().err


def test_model_kind_is_read_from_the_file(tmp_path, trig_search, image_genome, capsys):
    h5_named_pkl = tmp_path / "model.bin"
    h5_named_pkl.write_bytes(trig_search.read_bytes())
    assert main(["predict", str(h5_named_pkl), "--angle", "30"]) == 0  # HDF5 signature: an hpo model
    capsys.readouterr()
    text = tmp_path / "notes.bin"
    text.write_text("hello")
    assert main(["predict", str(text), "--input", "1"]) == 2
    err = capsys.readouterr().err
    assert "neither a genome pickle" in err and "best_model.h5" in err
    assert main(["predict", str(tmp_path), "--input", "1"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_eval_of_a_genome_away_from_its_run_never_falls_back_to_mnist(tmp_path, capsys):
    rng = np.random.default_rng(8)
    X = rng.integers(0, 256, size=(150, 784), dtype=np.uint8)
    np.savez(tmp_path / "noise.npz", X=X, y=rng.integers(0, 10, 150))
    run = tmp_path / "run"
    assert main(["evolve", "--task", f"npz:{tmp_path / 'noise.npz'}", "--generations", "1", "--set", "population=8",
                 "--set", "hidden_sizes=[4]", "--set", "samples_per_class=2", "--no-progress", "--out", str(run)]) == 0
    lone = tmp_path / "lone.pkl"
    lone.write_bytes(next(run.glob("best_genome_*.pkl")).read_bytes())
    (run / "config.toml").rename(tmp_path / "moved.toml")  # the run is gone
    capsys.readouterr()
    assert main(["eval", str(lone)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "was evolved on task 'noise'" in err[0] and "--task" in err[0]


def test_hpo_model_of_images_predicts_what_the_model_says(tmp_path, capsys, mnist_dir):
    """The model scales raw pixels itself (x_std 255): predict divided them by 255 first, so every image gave
    the same class."""
    run = tmp_path / "hpo"
    assert main(["hpo", "--task", "mnist", "--population", "4", "--generations", "1", "--epochs", "2",
                 "--set", "mnist_train=600", "--set", "mnist_val=200", "--data-dir", str(mnist_dir),
                 "--no-progress", "--out", str(run)]) == 0
    from genreg.tasks import load_task

    digits = load_task("mnist", mnist_dir.parent).X_test[:12]  # (12, 784) uint8: real test digits
    np.save(tmp_path / "digits.npy", digits.reshape(12, 28, 28))
    capsys.readouterr()
    assert main(["predict", str(run / "best_model.h5"), str(tmp_path / "digits.npy")]) == 0
    expected = np.argmax(load_model(run / "best_model.h5").predict(digits.astype(np.float64)), axis=1)
    assert _classes(capsys.readouterr().out) == [str(c) for c in expected] and len(set(expected)) > 1


def test_input_may_start_with_a_negative_value(csv_run, capsys):
    _, run, genome = csv_run
    capsys.readouterr()
    assert main(["predict", str(genome), "--input", "-0.5,-1"]) == 0
    value = float(capsys.readouterr().out.split("prediction: ")[1].split()[0])
    assert value == pytest.approx(_expected(run, genome, [[-0.5, -1.0]])[0], rel=1e-5)
