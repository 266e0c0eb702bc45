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


def _small_run(run, mnist_dir, generations=4):
    from genreg.runs.evolve import start_run
    from helpers import small_cfg

    return start_run(small_cfg(generations=generations, checkpoint_every=2), run, mnist_dir, progress=False)


def _newest(run):
    return sorted((run / "checkpoints").glob("state_gen*.h5"))[-1]


def test_a_changed_attribute_is_caught_by_the_attributes_checksum(tmp_path, mnist_dir, capsys):
    """HDF5 keeps no checksum of attributes: a checkpoint's config changed in place (as a flipped byte would)
    is an error, and resume falls back to the checkpoint before it and ends as the run that never stopped."""
    import json

    import h5py

    from genreg.runs.evolve import resume_run

    from helpers import assert_same_state, final_state

    _small_run(tmp_path / "whole", mnist_dir, 6)
    run = tmp_path / "run"
    _small_run(run, mnist_dir, 4)
    with h5py.File(_newest(run), "r+") as f:
        config = json.loads(f.attrs["config"])
        f.attrs["config"] = json.dumps({**config, "mutation_scale": config["mutation_scale"] * 2 / 3})
    with pytest.raises(store.CheckpointError, match="do not match their checksum"):
        store.read_checkpoint(_newest(run))
    resume_run(run, {"generations": 6}, mnist_dir, progress=False)
    assert "skipped" in capsys.readouterr().out
    assert_same_state(final_state(run), final_state(tmp_path / "whole"))


def test_a_dataset_declaring_more_than_memory_is_refused_before_reading(tmp_path, mnist_dir):
    import h5py

    run = tmp_path / "run"
    _small_run(run, mnist_dir, 4)
    with h5py.File(_newest(run), "r+") as f:
        del f["trust"]
        f.create_dataset("trust", shape=(2 ** 42,), dtype="f8", chunks=(2 ** 16,), compression="gzip")
        f.attrs[store.ATTRS_CRC] = store.attrs_crc32(f)  # a hostile file, consistent but for its size
    with pytest.raises(store.CheckpointError, match="declares shape .* more than the memory available"):
        store.read_checkpoint(_newest(run))
    assert latest_checkpoint(run)[1].generation == 2  # the one before it


def test_an_hdf5_runtime_error_skips_to_the_checkpoint_before(tmp_path, mnist_dir, monkeypatch):
    run = tmp_path / "run"
    _small_run(run, mnist_dir, 4)
    newest, check_format = _newest(run), store.check_format

    def damaged_btree(f, path, *args):
        if path == newest:
            raise RuntimeError("Unable to synchronously check link existence (incorrect B-tree node type)")
        return check_format(f, path, *args)

    monkeypatch.setattr(store, "check_format", damaged_btree)
    assert latest_checkpoint(run)[1].generation == 2


def test_config_writes_are_atomic_and_an_empty_config_is_refused(tmp_path, mnist_dir, monkeypatch, capsys):
    import errno
    import os

    from genreg.config import write_config

    path = tmp_path / "config.toml"
    write_config(path, 'task = "mnist"\n')

    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(OSError) as info:
        write_config(path, 'task = "wine"\n')
    assert info.value.filename == str(path) and path.read_text() == 'task = "mnist"\n'
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
    monkeypatch.undo()
    run = tmp_path / "run"  # a run killed before its first checkpoint, whose config.toml was cut to nothing
    _small_run(run, mnist_dir, 2)
    for p in (run / "checkpoints").glob("*.h5"):
        p.unlink()
    (run / "config.toml").write_text("")
    assert cli.main(["resume", str(run), "--data-dir", str(mnist_dir), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.toml is empty" in err[0]
    assert (run / "config.toml").read_text() == ""


def test_a_history_that_cannot_be_written_names_its_file(tmp_path, monkeypatch):
    import errno

    from genreg.runs.history import History

    history = History(tmp_path / "metrics.csv", ["generation", "x"])
    history.append([0, 1.0])

    class Full:
        def write(self, text):
            raise OSError(errno.ENOSPC, "No space left on device")

        def flush(self):
            pass

    history._fh = Full()
    with pytest.raises(OSError) as info:
        history.append([1, 2.0])
    assert info.value.filename == str(tmp_path / "metrics.csv")


def test_a_history_cut_short_is_reported_on_resume(tmp_path, mnist_dir, capsys):
    from genreg.runs.evolve import resume_run

    run = tmp_path / "run"
    _small_run(run, mnist_dir, 4)
    lines = (run / "metrics.csv").read_text().splitlines(keepends=True)
    (run / "metrics.csv").write_text("".join(lines[:3]))  # the header and generations 0, 1
    capsys.readouterr()
    resume_run(run, {"generations": 6}, mnist_dir, progress=False)
    assert "generations 2-3 are missing from it" in capsys.readouterr().out


def test_an_edited_config_is_reported_on_resume(tmp_path, mnist_dir, capsys):
    from genreg.runs.evolve import resume_run

    run = tmp_path / "run"
    _small_run(run, mnist_dir, 2)
    text = (run / "config.toml").read_text()
    (run / "config.toml").write_text(text.replace("mutation_scale = 0.03", "mutation_scale = 0.05"))
    capsys.readouterr()
    resume_run(run, {"generations": 3}, mnist_dir, progress=False)
    assert "config.toml was edited (mutation_scale)" in capsys.readouterr().out
    assert "mutation_scale = 0.03" in (run / "config.toml").read_text()
    resume_run(run, {"generations": 4}, mnist_dir, progress=False)  # a plain resume: nothing to say
    assert "warning" not in capsys.readouterr().out
    (run / "config.toml").write_bytes(b"\xff not toml [")  # unreadable: said, and rewritten from the checkpoint
    resume_run(run, {"generations": 5}, mnist_dir, progress=False)
    assert "config.toml is unreadable or invalid" in capsys.readouterr().out
    assert "mutation_scale = 0.03" in (run / "config.toml").read_text()
