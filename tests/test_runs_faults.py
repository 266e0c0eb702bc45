"""Disk faults during a run: one line naming the path and the cause, a non-zero exit, the last good checkpoint intact."""

from __future__ import annotations


import pytest

import genreg.runs.store as store
from genreg.cli import main as cli
from genreg.runs.store import latest_checkpoint
from helpers import full_disk_after


def test_full_disk_during_a_checkpoint_is_one_line_and_the_run_resumes(tmp_path, mnist_dir, monkeypatch, capsys):
    run = tmp_path / "run"
    args = ["evolve", "--out", str(run), "--generations", "8", "--set", "population=8", "--set", "hidden_sizes=[4]",
            "--set", "samples_per_class=1", "--set", "validation_size=500", "--set", "checkpoint_every=2",
            "--data-dir", str(mnist_dir), "--no-progress"]
    full_disk_after(monkeypatch, 2)  # generation 0 and 2 are written, generation 4 finds the disk full
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and "state_gen00004.h5" in err[0]
    assert not list(run.rglob("*.tmp"))
    _, state, _ = latest_checkpoint(run)  # the last good checkpoint is intact
    assert state.generation == 2
    monkeypatch.undo()
    assert cli.main(["resume", str(run), "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    assert latest_checkpoint(run)[1].generation == 8


def test_out_whose_parent_is_a_file_is_one_line(tmp_path, mnist_dir, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert cli.main(["evolve", "--out", str(blocker / "run"), "--generations", "1", "--data-dir", str(mnist_dir),
                     "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(blocker) in err[0]


def test_plot_into_a_folder_it_cannot_create_is_one_line(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    assert cli.main(["evolve", "--out", str(run), "--generations", "2", "--set", "population=8", "--set",
                     "hidden_sizes=[4]", "--set", "validation_size=500", "--data-dir", str(mnist_dir),
                     "--no-progress"]) == 0
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "file" / "plots")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "file" in err[0]


def test_a_failing_hdf5_write_names_the_checkpoint_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    import h5py

    def refuse(*args, **kwargs):
        raise OSError("Unable to synchronously create file (file write failed)")  # h5py's words: no errno, no path

    monkeypatch.setattr(h5py, "File", refuse)
    with pytest.raises(OSError) as info:
        with store.atomic_h5(tmp_path / "x" / "state.h5"):
            pass
    assert info.value.filename == str(tmp_path / "x" / "state.h5") and not list(tmp_path.rglob("*.tmp"))


def test_plot_out_may_name_a_new_folder(tmp_path, mnist_dir):
    run = tmp_path / "run"
    assert cli.main(["evolve", "--out", str(run), "--generations", "2", "--set", "population=8", "--set",
                     "hidden_sizes=[4]", "--set", "validation_size=500", "--data-dir", str(mnist_dir),
                     "--no-progress"]) == 0
    assert cli.main(["plot", str(run), "--out", str(tmp_path / "new" / "plots")]) == 0
    assert (tmp_path / "new" / "plots" / "trust_accuracy.png").is_file()


@pytest.mark.parametrize("command", [["hybrid", "--generations", "1"], ["hpo", "--generations", "1"],
                                     ["evolve", "--generations", "1"]])
def test_every_mode_with_out_under_a_file_is_one_line(tmp_path, capsys, command, monkeypatch):
    monkeypatch.delenv("GENREG_DATA", raising=False)  # refused before any data is looked for
    (tmp_path / "file").write_text("x")
    assert cli.main([*command, "--out", str(tmp_path / "file" / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "file") in err[0]


@pytest.mark.parametrize("content", [b"\x00\xff\xfe\x00binary", b"a,b,c\n1,2,3\n"])
def test_resume_with_a_foreign_or_binary_metrics_file_is_one_line_and_changes_nothing(tmp_path, mnist_dir, capsys,
                                                                                     content):
    run = tmp_path / "run"
    assert cli.main(["evolve", "--out", str(run), "--generations", "2", "--set", "population=8", "--set",
                     "hidden_sizes=[4]", "--set", "validation_size=500", "--data-dir", str(mnist_dir),
                     "--no-progress"]) == 0
    (run / "metrics.csv").write_bytes(content)
    capsys.readouterr()
    assert cli.main(["resume", str(run), "--generations", "4", "--data-dir", str(mnist_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "metrics.csv" in err[0]
    assert (run / "metrics.csv").read_bytes() == content and latest_checkpoint(run)[1].generation == 2


def test_mnist_training_part_smaller_than_an_episode_is_one_line(tmp_path, mnist_dir, capsys):
    assert cli.main(["evolve", "--out", str(tmp_path / "run"), "--set", "validation_size=59990", "--generations", "1",
                     "--data-dir", str(mnist_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "samples per class" in err[0] and not (tmp_path / "run").exists()


def test_attack_out_under_a_file_is_one_line(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    assert cli.main(["hybrid", "--out", str(run), "--set", "architecture='8'", "--set", "population=2",
                     "--set", "train_images=200", "--set", "validation_size=200", "--set", "baseline=false",
                     "--generations", "1", "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    (tmp_path / "file").write_text("x")
    capsys.readouterr()
    assert cli.main(["attack", str(run), "--images", "20", "--out", str(tmp_path / "file" / "attack"),
                     "--data-dir", str(mnist_dir)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(tmp_path / "file") in err[0]
