"""Hybrid GA + SGD run directories: the lock, new runs on folders they do not own, a run killed before its
first checkpoint, resume to fewer generations (``genreg.runs.rundir``, as for evolution runs)."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from genreg.cli import main as cli
from genreg.errors import CheckpointError, ConfigError
from genreg.hybrid.config import from_mapping
from genreg.hybrid.run import latest_state, resume_hybrid, start_hybrid
from genreg.runs.rundir import RunLock, write_marker

SMALL = dict(population=4, train_images=1000, validation_size=500, workers=2, lr=0.1, batch_size=50, baseline=False)


def _cfg(**changes):
    return from_mapping({**SMALL, "generations": 1, **changes})


def test_two_resumes_at_once_one_is_refused_naming_the_pid(tmp_path, mnist_dir, capsys):
    run = tmp_path / "run"
    start_hybrid(_cfg(), run, mnist_dir, progress=False)
    with RunLock(run):  # as if another process were resuming it
        with pytest.raises(CheckpointError, match=f"in use by another genreg process \\(pid {os.getpid()}\\)"):
            resume_hybrid(run, {"generations": 2}, mnist_dir, progress=False)
        capsys.readouterr()
        assert cli.main(["resume", str(run), "--generations", "2", "--data-dir", str(mnist_dir),
                         "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}" in err[0]
    assert latest_state(run)[1].generation == 1  # nothing ran while it was locked
    assert "stopped_at" not in resume_hybrid(run, {"generations": 2}, mnist_dir, progress=False)
    assert latest_state(run)[1].generation == 2


def test_start_holds_the_lock(tmp_path, mnist_dir):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(CheckpointError, match="in use by another genreg process"):
            start_hybrid(_cfg(), run, mnist_dir, progress=False)
    assert not (run / "checkpoints").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "config.toml").write_text("foreign = 1\n") and (d / "notes.txt").write_text("mine\n"),
     "not a genreg run"),
    (lambda d: write_marker(d, "evolve"), "holds a evolve run"),
    (lambda d: write_marker(d, "hpo"), "holds a hpo run"),
])
def test_new_run_refuses_a_folder_it_does_not_own_and_touches_nothing(tmp_path, mnist_dir, setup, message):
    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match=message):
        start_hybrid(_cfg(), run, mnist_dir, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_out_naming_a_file_is_refused(tmp_path, mnist_dir):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        start_hybrid(_cfg(), tmp_path / "f", mnist_dir, progress=False)
    assert (tmp_path / "f").read_text() == "x"


def test_run_killed_before_its_first_checkpoint_restarts_from_its_config(tmp_path, mnist_dir, capsys):
    whole = start_hybrid(_cfg(generations=2), tmp_path / "whole", mnist_dir, progress=False)
    run = tmp_path / "run"
    write_marker(run, "hybrid")
    (run / "config.toml").write_text(_cfg(generations=2).to_toml())
    (run / "similarity").mkdir()
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "state_gen00000.h5.tmp").write_bytes(b"half a file")  # the kill came mid-write
    capsys.readouterr()
    assert cli.main(["resume", str(run), "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    assert "starting it again from its config.toml" in capsys.readouterr().out
    assert not list(run.rglob("*.tmp"))
    a, b = latest_state(tmp_path / "whole")[1], latest_state(run)[1]
    assert a.generation == b.generation == 2
    np.testing.assert_array_equal(a.population.W, b.population.W)
    assert (run / "metrics.csv").read_text().count("\n") == 3  # header + generations 1 and 2
    assert whole["best_val_accuracy"] == json.loads((run / "result.json").read_text())["best_val_accuracy"]


def test_start_on_a_run_killed_before_its_first_checkpoint_starts_afresh(tmp_path, mnist_dir):
    run = tmp_path / "run"
    write_marker(run, "hybrid")
    (run / "config.toml").write_text(_cfg().to_toml())
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "state_gen00000.h5.tmp").write_bytes(b"half a file")
    start_hybrid(_cfg(), run, mnist_dir, progress=False)
    assert latest_state(run)[1].generation == 1 and not list(run.rglob("*.tmp"))


def test_resume_to_fewer_generations_is_refused_without_touching_the_config(tmp_path, mnist_dir):
    run = tmp_path / "run"
    start_hybrid(_cfg(generations=2), run, mnist_dir, progress=False)
    before = (run / "config.toml").read_bytes()
    result = (run / "result.json").read_bytes()
    with pytest.raises(ConfigError, match="already at generation 2"):
        resume_hybrid(run, {"generations": 1}, mnist_dir, progress=False)
    assert (run / "config.toml").read_bytes() == before and (run / "result.json").read_bytes() == result
