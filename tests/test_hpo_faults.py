"""Trait-search run directories: the lock, new searches on folders they do not own, a search killed during
generation 0, damaged run files, a full disk and resume to fewer generations (``genreg.runs.rundir``)."""

from __future__ import annotations

import csv
import errno
import os

import h5py
import pytest

import genreg.runs.history as history
from genreg.cli import main as cli
from genreg.errors import CheckpointError, ConfigError, GenregError
from genreg.hpo.config import hpo_from_mapping
from genreg.hpo.data import search_task
from genreg.hpo.rundir import read_population
from genreg.hpo.search import resume_hpo, run_hpo
from genreg.runs.rundir import RunLock, write_marker
from helpers import full_disk_after

TINY = {"task": "trig", "population": 4, "generations": 3, "epochs": 3, "trig_samples": 300}
SETS = [a for k, v in TINY.items() for a in ("--set", f"{k}={v!r}".replace("'", '"'))]


def tiny(**changes):
    return hpo_from_mapping({**TINY, **changes})


@pytest.fixture(scope="module")
def trig():
    return search_task(tiny())


def _rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)]


def _same_search(a, b):
    for name in ("evaluations.csv", "generations.csv"):
        assert _rows(a / name) == _rows(b / name), name


def test_two_resumes_at_once_one_is_refused_naming_the_pid(tmp_path, trig, capsys):
    run = tmp_path / "run"
    run_hpo(tiny(generations=2), run, task=trig)
    with RunLock(run):  # as if another process were resuming it
        with pytest.raises(CheckpointError, match=f"in use by another genreg process \\(pid {os.getpid()}\\)"):
            resume_hpo(run, {"generations": 3}, task=trig)
        capsys.readouterr()
        assert cli.main(["resume", str(run), "--generations", "3", "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"pid {os.getpid()}" in err[0]
    assert read_population(run / "population.h5")[0] == 1  # nothing ran while it was locked
    assert resume_hpo(run, {"generations": 3}, task=trig).generations_run == 3


def test_start_holds_the_lock(tmp_path, trig):
    run = tmp_path / "run"
    with RunLock(run):
        with pytest.raises(CheckpointError, match="in use by another genreg process"):
            run_hpo(tiny(), run, task=trig)
    assert not (run / "evaluations.csv").exists()


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "config.toml").write_text("foreign = 1\n") and (d / "notes.txt").write_text("mine\n"),
     "not a genreg run"),
    (lambda d: write_marker(d, "evolve"), "holds a evolve run"),
    (lambda d: write_marker(d, "hybrid"), "holds a hybrid run"),
])
def test_new_search_refuses_a_folder_it_does_not_own_and_touches_nothing(tmp_path, trig, setup, message):
    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match=message):
        run_hpo(tiny(), run, task=trig)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_search_out_on_an_evolution_run_is_refused_untouched(tmp_path, mnist_dir):
    from genreg.runs.evolve import start_run
    from genreg.strategies.config import from_mapping

    run = tmp_path / "run"
    start_run(from_mapping(dict(population=8, hidden_sizes=[4], samples_per_class=1, validation_size=500,
                                generations=1)), run, mnist_dir, progress=False)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match="holds a evolve run"):
        run_hpo(tiny(), run, task=search_task(tiny()))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_out_naming_a_file_is_refused(tmp_path, trig):
    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        run_hpo(tiny(), tmp_path / "f", task=trig)


class Killed(Exception):
    pass


def _killed_during_generation_0(run, trig):
    """A search whose generation 0 was trained and recorded, killed before population.h5 was written."""
    def kill(record):
        raise Killed()

    with pytest.raises(Killed):
        run_hpo(tiny(), run, task=trig, on_generation=kill)
    assert (run / "evaluations.csv").is_file() and not (run / "population.h5").exists()
    (run / "population.h5.tmp").write_bytes(b"half a file")


def test_search_killed_during_generation_0_resumes_from_its_config(tmp_path, trig, capsys):
    run_hpo(tiny(), tmp_path / "whole", task=trig)
    run = tmp_path / "run"
    _killed_during_generation_0(run, trig)
    capsys.readouterr()
    assert cli.main(["resume", str(run), "--no-progress"]) == 0
    assert "starting it again from its config.toml" in capsys.readouterr().out
    assert not list(run.rglob("*.tmp")) and read_population(run / "population.h5")[0] == 2
    _same_search(tmp_path / "whole", run)


def test_new_search_on_one_killed_during_generation_0_starts_afresh(tmp_path, trig):
    run_hpo(tiny(), tmp_path / "whole", task=trig)
    run = tmp_path / "run"
    _killed_during_generation_0(run, trig)
    run_hpo(tiny(), run, task=trig)
    assert not list(run.rglob("*.tmp"))
    _same_search(tmp_path / "whole", run)


@pytest.mark.parametrize("damage, name", [
    (lambda d: (d / "evaluations.csv").write_bytes(b"\x00\xff\xfe binary\n"), "evaluations.csv"),
    (lambda d: (d / "evaluations.csv").write_text("generation,id\n0,1\n1,2\n"), "evaluations.csv"),
    (lambda d: (d / "evaluations.csv").unlink(), "evaluations.csv"),
    (lambda d: (d / "generations.csv").unlink(), "generations.csv"),
    (lambda d: (d / "config.toml").write_bytes(b"population = 4\n# \xff\xfe\n"), "config.toml"),
    (lambda d: _edit_h5(d / "population.h5", lambda f: [f.__delitem__(k) for k in list(f.keys())]),
     "population.h5"),
    (lambda d: _edit_h5(d / "population.h5", lambda f: f.attrs.__setitem__("generation", -1)), "population.h5"),
])
def test_damaged_search_files_are_one_line_naming_the_file(tmp_path, trig, capsys, damage, name):
    run = tmp_path / "run"
    run_hpo(tiny(generations=2), run, task=trig)
    damage(run)
    with pytest.raises(GenregError, match=name):
        resume_hpo(run, {"generations": 3}, task=trig)
    capsys.readouterr()
    assert cli.main(["resume", str(run), "--generations", "3", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0]


def _edit_h5(path, edit):
    with h5py.File(path, "r+") as f:
        edit(f)


def test_full_disk_at_a_checkpoint_is_one_line_and_the_search_resumes(tmp_path, trig, monkeypatch, capsys):
    run_hpo(tiny(), tmp_path / "whole", task=trig)
    run = tmp_path / "run"
    full_disk_after(monkeypatch, 1)  # generation 0's population.h5 is written, generation 1's finds the disk full
    assert cli.main(["hpo", "--out", str(run), *SETS, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(run / "population.h5") in err[0]
    assert not list(run.rglob("*.tmp"))
    assert read_population(run / "population.h5")[0] == 0  # the last good checkpoint is intact
    monkeypatch.undo()
    assert cli.main(["resume", str(run), "--no-progress"]) == 0
    _same_search(tmp_path / "whole", run)


def test_full_disk_while_recording_an_evaluation_names_the_csv(tmp_path, trig, monkeypatch, capsys):
    run_hpo(tiny(), tmp_path / "whole", task=trig)
    run = tmp_path / "run"
    real = history.History.append
    calls = {"n": 0}

    def append(self, row):
        if self.path.name == "evaluations.csv":
            calls["n"] += 1
            if calls["n"] > 5:  # generation 1's second evaluation (4 founders, then children)
                raise OSError(errno.ENOSPC, "No space left on device")  # a write error names no file
        return real(self, row)

    monkeypatch.setattr(history.History, "append", append)
    assert cli.main(["hpo", "--out", str(run), *SETS, "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "No space left on device" in err[0] and str(run / "evaluations.csv") in err[0]
    assert read_population(run / "population.h5")[0] == 0
    monkeypatch.undo()
    assert cli.main(["resume", str(run), "--no-progress"]) == 0
    _same_search(tmp_path / "whole", run)


def test_resume_to_fewer_generations_is_refused_without_touching_the_config(tmp_path, trig):
    run = tmp_path / "run"
    run_hpo(tiny(generations=3), run, task=trig)
    before = (run / "config.toml").read_bytes()
    with pytest.raises(ConfigError, match="already run 3 generations"):
        resume_hpo(run, {"generations": 2}, task=trig)
    assert (run / "config.toml").read_bytes() == before
