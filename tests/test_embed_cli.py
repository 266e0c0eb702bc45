"""`genreg embed` and genreg.plots.embed: files written, the figure's legend and labels, both genome formats,
bad input in one line."""

from __future__ import annotations

import builtins
import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from genreg.cli.main import main
from genreg.genome.checkpoint import save_genome, save_genreg_published
from genreg.genome.embed import embed_genome
from genreg.network.layout import Layout
from genreg.plots.embed import embedding_figure, label_positions, plot_embeddings

import naive

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "checkpoints" / "mnist" / "genreg-protocol-600gen-784-64-10-seed0.pkl"
NAMES = ("cat", "dog", "owl")


@pytest.fixture
def task_file(tmp_path):
    """An npz task of 6 features and three named classes (30 test rows), and its path."""
    rng = np.random.default_rng(0)
    y = np.array(NAMES)[np.arange(150) % 3]
    X = rng.normal(size=(150, 6)).astype(np.float32)
    X[:, :3] += 3.0 * np.eye(3, dtype=np.float32)[np.arange(150) % 3]
    path = tmp_path / "pets.npz"
    np.savez(path, X_train=X[:120], y_train=y[:120], X_test=X[120:], y_test=y[120:])
    return path


def _genome(tmp_path, name="g.pkl", hidden=5, seed=1, published=False):
    layout = Layout((6, hidden, 3))
    row = np.random.default_rng(seed).normal(0, 0.6, layout.n_params).astype(np.float32)
    path = tmp_path / name
    (save_genreg_published if published else save_genome)(path, layout, row)
    return path, layout, row


def _run(args, capsys):
    status = main(["embed", *map(str, args)])
    out = capsys.readouterr()
    return status, out.out, out.err


def test_embed_writes_the_map_coordinates_and_overlap(tmp_path, task_file, capsys):
    from genreg.tasks import load_task

    path, layout, row = _genome(tmp_path)
    status, out, err = _run([path, "--task", f"npz:{task_file}", "--out", tmp_path / "maps"], capsys)
    assert status == 0, err
    task = load_task(f"npz:{task_file}")
    maps = tmp_path / "maps"
    assert sorted(p.name for p in maps.iterdir()) == ["g-pca.csv", "g-pca.json", "g-pca.png"]
    rows = list(csv.DictReader(open(maps / "g-pca.csv", encoding="utf-8")))
    assert len(rows) == 30 and list(rows[0]) == ["x", "y", "label", "class"]
    assert [int(r["label"]) for r in rows] == task.y_test.tolist()
    assert [r["class"] for r in rows] == [NAMES[k] for k in task.y_test]
    emb = embed_genome(layout, row, task.X_test, task.y_test, NAMES)
    np.testing.assert_array_equal([[float(r["x"]), float(r["y"])] for r in rows], emb.coords)  # exact round trip
    report = json.loads((maps / "g-pca.json").read_text())
    assert report["classes"] == list(NAMES) and report["n_points"] == 30 and report["method"] == "pca"
    assert report["layer"] == "hidden layer 1 of 1: 5 units, after tanh"
    expected = np.mean(np.argmax(naive.forward(layout, row, task.X_test), axis=1) == task.y_test)
    assert report["accuracy"] == pytest.approx(expected)
    assert set(report["silhouette_per_class"]) == set(NAMES)
    assert np.array(report["nearest_centroid_confusion"]).sum() == 30
    assert len(report["explained_variance"]) == 2 and report["coordinates"] == "g-pca.csv"
    assert f"{100 * expected:.2f}% correct" in out and "silhouette : mean" in out and "overlap    :" in out
    # the same command writes the same files
    first = {p.name: p.read_bytes() for p in maps.iterdir() if p.suffix != ".png"}
    assert _run([path, "--task", f"npz:{task_file}", "--out", maps], capsys)[0] == 0
    assert first == {p.name: p.read_bytes() for p in maps.iterdir() if p.suffix != ".png"}


def test_both_genome_formats_give_the_same_map(tmp_path, task_file, capsys):
    own, layout, row = _genome(tmp_path, "own.pkl")
    published = tmp_path / "published.pkl"
    save_genreg_published(published, layout, row)
    status, out, err = _run([own, published, "--task", f"npz:{task_file}", "--out", tmp_path], capsys)
    assert status == 0, err
    a, b = (json.loads((tmp_path / f"{n}-pca.json").read_text()) for n in ("own", "published"))
    assert a["nearest_centroid_confusion"] == b["nearest_centroid_confusion"]
    assert a["silhouette_per_class"] == pytest.approx(b["silhouette_per_class"])
    assert (tmp_path / "compare-pca.png").is_file()


def test_same_named_checkpoints_get_their_folders_names(tmp_path, task_file, capsys):
    for run in ("h5", "h7"):
        (tmp_path / run).mkdir()
        _genome(tmp_path / run, "best.pkl", hidden=int(run[1:]))
    status, _, err = _run([tmp_path / "h5" / "best.pkl", tmp_path / "h7" / "best.pkl", "--task", f"npz:{task_file}",
                           "--out", tmp_path / "m", "--name", "five-vs-seven"], capsys)
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == [
        "five-vs-seven-pca.png", "h5-best-pca.csv", "h5-best-pca.json", "h7-best-pca.csv", "h7-best-pca.json"]


def test_figure_has_a_legend_of_class_names_and_labelled_centroids(tmp_path, task_file):
    from genreg.tasks import load_task

    task = load_task(f"npz:{task_file}")
    _, layout, row = _genome(tmp_path)
    emb = embed_genome(layout, row, task.X_test, task.y_test, NAMES)
    fig = embedding_figure([emb, emb])
    axes = fig.axes
    assert len(axes) == 2 and axes[0].get_legend() is None
    legend = axes[1].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == list(NAMES)
    assert legend.get_bbox_to_anchor().x0 > axes[1].get_window_extent().x1 - 1  # beside the axes, not on them
    for ax in axes:
        labels = {t.get_text(): t for t in ax.texts}
        assert set(labels) == set(NAMES)
        for c, name in enumerate(NAMES):
            np.testing.assert_allclose(labels[name].xy, emb.coords[emb.labels == c].mean(axis=0))
        assert ax.get_xlabel().startswith("PC 1 (") and "% of variance" in ax.get_ylabel()
        assert "% correct" in ax.get_title() and "PCA of 5 tanh units" in ax.get_title()
    import matplotlib.pyplot as plt

    plt.close(fig)
    png = plot_embeddings([emb], tmp_path / "one.png")
    from PIL import Image

    with Image.open(png) as im:
        assert 400 < im.width < 900 and 300 < im.height < 700


def test_labels_of_close_centroids_move_apart():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    C = np.array([[5.0, 5.0], [5.1, 5.0], [1.0, 1.0], [np.nan, np.nan]])
    spots = label_positions(ax, C)
    assert spots[3] == (None, None)
    np.testing.assert_allclose(spots[0][0], [5.0, 5.0])  # first stays on its centroid
    np.testing.assert_allclose(spots[2][0], [1.0, 1.0])
    assert np.max(np.abs(spots[1][0] - spots[0][0])) >= 0.06 * 10 - 1e-9  # the second moved out
    np.testing.assert_allclose(spots[1][1], C[1])  # and still points at its centroid
    plt.close(fig)


def test_size_mismatch_is_one_line(tmp_path, task_file, capsys):
    path, _, _ = _genome(tmp_path)
    status, out, err = _run([path, "--task", "trig"], capsys)
    assert status == 2 and err.count("\n") == 1 and "classification" in err
    wrong = tmp_path / "wrong.pkl"
    save_genome(wrong, Layout((7, 4, 3)), np.zeros(Layout((7, 4, 3)).n_params, np.float32))
    status, out, err = _run([wrong, "--task", f"npz:{task_file}", "--out", tmp_path / "m"], capsys)
    assert status == 2 and err.count("\n") == 1
    assert "7-4-3" in err and "6 inputs" in err and "--task" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("make, message", [
    (lambda d: d, "is a folder"),
    (lambda d: d / "missing.pkl", "missing.pkl"),
    (lambda d: (d / "junk.pkl").write_bytes(b"not a pickle") and d / "junk.pkl", "junk.pkl"),
])
def test_bad_checkpoints_are_one_line(tmp_path, task_file, capsys, make, message):
    status, _, err = _run([make(tmp_path), "--task", f"npz:{task_file}"], capsys)
    assert status == 2 and err.startswith("genreg: error:") and err.count("\n") == 1 and message in err


def test_out_must_be_a_folder_and_maps_side_by_side_share_classes(tmp_path, task_file, capsys):
    path, _, _ = _genome(tmp_path)
    (tmp_path / "file").write_text("x")
    status, _, err = _run([path, "--task", f"npz:{task_file}", "--out", tmp_path / "file"], capsys)
    assert status == 2 and "is a file" in err
    other = tmp_path / "other.npz"
    rng = np.random.default_rng(1)
    np.savez(other, X_train=rng.normal(size=(60, 6)), y_train=np.arange(60) % 3,
             X_test=rng.normal(size=(30, 6)), y_test=np.arange(30) % 3)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    shutil.copy(path, tmp_path / "a" / "g.pkl")
    shutil.copy(path, tmp_path / "b" / "g.pkl")
    for folder, spec in (("a", task_file), ("b", other)):
        (tmp_path / folder / "config.toml").write_text(f'task = "npz:{spec}"\nseed = 0\n')
    status, _, err = _run([tmp_path / "a" / "g.pkl", tmp_path / "b" / "g.pkl", "--out", tmp_path / "m"], capsys)
    assert status == 2 and "other classes" in err and err.count("\n") == 1
    assert not (tmp_path / "m").exists()  # the second checkpoint is checked before the first map is written
    status, _, err = _run([tmp_path / "a" / "g.pkl", tmp_path / "nothere.pkl", "--out", tmp_path / "m2"], capsys)
    assert status == 2 and "nothere.pkl" in err and not (tmp_path / "m2").exists()


def test_umap_without_umap_learn_is_one_line(tmp_path, task_file, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_umap(name, *args, **kwargs):
        if name == "umap":
            raise ImportError("No module named 'umap'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_umap)
    path, _, _ = _genome(tmp_path)
    status, _, err = _run([path, "--task", f"npz:{task_file}", "--method", "umap", "--out", tmp_path], capsys)
    assert status == 2 and err.count("\n") == 1 and "genreg[embed]" in err and "--method pca" in err


def test_shipped_genome_on_mnist(tmp_path, mnist_dir, capsys):
    status, out, err = _run([SHIPPED, "--data-dir", mnist_dir.parent, "--out", tmp_path], capsys)
    assert status == 0, err
    report = json.loads((tmp_path / f"{SHIPPED.stem}-pca.json").read_text())
    eval_report = json.loads(SHIPPED.with_suffix(".eval.json").read_text())
    assert report["accuracy"] == pytest.approx(eval_report["n_correct"] / eval_report["n_total"], abs=2e-4)
    assert report["n_points"] == 10000 and report["classes"] == [str(d) for d in range(10)]
    assert "mnist test set, 10000 points" in out


def test_one_point_per_class_is_flagged(tmp_path):
    from genreg.cli.embed import summary_lines

    _, layout, row = _genome(tmp_path)
    X = np.random.default_rng(5).normal(size=(3, 6)).astype(np.float32)
    lines = summary_lines(embed_genome(layout, row, X, np.arange(3), NAMES))
    assert lines[0].startswith("note       : one point per class")
    rows = np.random.default_rng(6).normal(size=(6, 6)).astype(np.float32)
    assert not summary_lines(embed_genome(layout, row, rows, np.arange(6) % 3, NAMES))[0].startswith("note")


def test_name_names_every_file_of_one_map(tmp_path, task_file, capsys):
    path, _, _ = _genome(tmp_path)
    status, _, err = _run([path, "--task", f"npz:{task_file}", "--out", tmp_path / "maps", "--name", "mine"], capsys)
    assert status == 0, err
    assert sorted(p.name for p in (tmp_path / "maps").iterdir()) == ["mine-pca.csv", "mine-pca.json", "mine-pca.png"]
