"""Run directories: the kind marker and the lock that lets one process at a time run a directory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from genreg.errors import CheckpointError
from genreg.runs.rundir import MARKER, RunLock, run_kind, write_marker
from helpers import reseal

HOLD = textwrap.dedent("""
    import sys, time
    from genreg.runs.rundir import RunLock
    with RunLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
""")


def test_marker_names_the_kind(tmp_path):
    write_marker(tmp_path / "run", "hybrid")
    assert run_kind(tmp_path / "run") == "hybrid"
    assert json.loads((tmp_path / "run" / MARKER).read_text())["format"] == 1


@pytest.mark.parametrize("content, message", [("{", "damaged"), ('{"kind": "other"}', "unknown run kind")])
def test_bad_marker_is_a_clear_error(tmp_path, content, message):
    (tmp_path / MARKER).write_text(content)
    with pytest.raises(CheckpointError, match=message):
        run_kind(tmp_path)


def test_folder_without_a_run_is_refused(tmp_path):
    (tmp_path / "config.toml").write_text("x = 1\n")
    with pytest.raises(CheckpointError, match="holds no genreg run"):
        run_kind(tmp_path)
    with pytest.raises(CheckpointError, match="no such folder"):
        run_kind(tmp_path / "missing")


def test_second_process_is_refused_with_the_owners_pid_and_a_killed_owner_frees_it(tmp_path):
    owner = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout.readline().strip() == "locked"
        with pytest.raises(CheckpointError, match=f"in use by another genreg process \\(pid {owner.pid}\\)"):
            RunLock(tmp_path).acquire()
    finally:
        owner.kill()
        owner.wait()
    with RunLock(tmp_path):  # the kernel released the killed owner's lock: nothing stale
        pass


def test_two_resumes_at_once_one_is_refused(tmp_path, mnist_dir):
    from genreg.runs.evolve import resume_run, start_run
    from genreg.strategies.config import from_mapping

    cfg = from_mapping(dict(population=8, hidden_sizes=[4], samples_per_class=1, validation_size=500, generations=2))
    start_run(cfg, tmp_path / "run", mnist_dir, progress=False)
    with RunLock(tmp_path / "run"):  # as if another process were resuming it
        with pytest.raises(CheckpointError, match="in use by another genreg process"):
            resume_run(tmp_path / "run", {"generations": 4}, mnist_dir, progress=False)
    assert resume_run(tmp_path / "run", {"generations": 4}, mnist_dir, progress=False).generation == 4


def _small(**changes):
    from genreg.strategies.config import from_mapping

    return from_mapping(dict(population=8, hidden_sizes=[4], samples_per_class=1, validation_size=500, **changes))


@pytest.mark.parametrize("setup, message", [
    (lambda d: (d / "config.toml").write_text("foreign = 1\n") and (d / "metrics.csv").write_text("a,b\n"),
     "not a genreg run"),
    (lambda d: write_marker(d, "hpo"), "holds a hpo run"),
])
def test_new_run_refuses_a_folder_it_does_not_own_and_touches_nothing(tmp_path, mnist_dir, setup, message):
    from genreg.errors import ConfigError
    from genreg.runs.evolve import start_run

    run = tmp_path / "run"
    run.mkdir()
    setup(run)
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    with pytest.raises(ConfigError, match=message):
        start_run(_small(generations=1), run, mnist_dir, progress=False)
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_out_naming_a_file_is_a_clear_error(tmp_path, mnist_dir):
    from genreg.errors import ConfigError
    from genreg.runs.evolve import start_run

    (tmp_path / "f").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        start_run(_small(generations=1), tmp_path / "f", mnist_dir, progress=False)


def test_run_killed_before_its_first_checkpoint_restarts_from_its_config(tmp_path, mnist_dir):
    from genreg.runs.evolve import resume_run, start_run
    from genreg.runs.store import latest_checkpoint

    whole = start_run(_small(generations=3), tmp_path / "whole", mnist_dir, progress=False)
    run = tmp_path / "run"
    write_marker(run, "evolve")
    (run / "config.toml").write_text(_small(generations=3).to_toml())
    (run / "checkpoints").mkdir()
    (run / "checkpoints" / "state_gen00000.h5.tmp").write_bytes(b"half a file")  # the kill came mid-write
    state = resume_run(run, {}, mnist_dir, progress=False)
    assert not list(run.rglob("*.tmp"))
    assert state.population.build().tobytes() == whole.population.build().tobytes()
    _, again, _ = latest_checkpoint(run)
    assert again.generation == 3
    # and `evolve --out` on such a folder starts it afresh too
    (run / "checkpoints").rename(tmp_path / "moved")
    assert start_run(_small(generations=1), run, mnist_dir, progress=False).generation == 1


def test_resume_to_fewer_generations_is_refused_without_touching_the_config(tmp_path, mnist_dir):
    from genreg.errors import ConfigError
    from genreg.runs.evolve import resume_run, start_run

    start_run(_small(generations=3), tmp_path / "run", mnist_dir, progress=False)
    before = (tmp_path / "run" / "config.toml").read_bytes()
    with pytest.raises(ConfigError, match="has already run 3 generations"):
        resume_run(tmp_path / "run", {"generations": 2}, mnist_dir, progress=False)
    assert (tmp_path / "run" / "config.toml").read_bytes() == before


# -- crafted or damaged run files ---------------------------------------------------------------
def _run_with_checkpoint(tmp_path, mnist_dir):
    from genreg.runs.evolve import start_run

    start_run(_small(generations=2), tmp_path / "run", mnist_dir, progress=False)
    return tmp_path / "run", tmp_path / "run" / "checkpoints" / "state_gen00002.h5"


def _rewrite(f, name, data):
    """Replace dataset ``name`` by ``data`` with a matching checksum (a crafted file, not a damaged one)."""
    from genreg.runs.store import write_dataset

    group, _, leaf = name.rpartition("/")
    del f[name]
    write_dataset(f[group] if group else f, leaf, data)


@pytest.mark.parametrize("damage, message", [
    (lambda f: f.attrs.__setitem__("generation", -3), "generation must be a whole number"),
    (lambda f: f.attrs.__setitem__("generation", [1, 2]), "generation must be a whole number"),
    (lambda f: f.attrs.__setitem__("strategy_state", "[1, 2]"), "strategy_state must be a JSON dict"),
    (lambda f: f.attrs.__setitem__("strategy_state", '{"generation": "x"}'), "map names to numbers"),
    (lambda f: f.attrs.__setitem__("layout", '{"sizes": [784, 1e999, 10]}'), "whole numbers"),
    (lambda f: (f.__delitem__("brood/source"), f.create_dataset("brood/source", data=np.array([["a"]], dtype="S1"))),
     "dataset brood/source"),
    (lambda f: _rewrite(f, "brood/parents", np.full(8, 10**6)), "parents must be row indices"),
    (lambda f: (f.__delitem__("brood/keys"), f.create_dataset("brood/keys", data=np.zeros(3, np.uint64))),
     "same length"),
    (lambda f: f["brood"].attrs.__setitem__("crossover", "sideways"), "crossover must be one of"),
    (lambda f: f["brood"].attrs.__setitem__("scale", float("nan")), "scale=nan"),
])
def test_crafted_checkpoint_fields_are_clear_errors(tmp_path, mnist_dir, damage, message):
    import h5py

    from genreg.runs.store import read_checkpoint

    _, path = _run_with_checkpoint(tmp_path, mnist_dir)
    with h5py.File(path, "r+") as f:
        damage(f)
        reseal(f)
    with pytest.raises(CheckpointError, match=message):
        read_checkpoint(path)


def test_flipped_bytes_in_W_are_caught_by_the_checksum(tmp_path, mnist_dir):
    import h5py

    from genreg.runs.store import read_checkpoint

    _, path = _run_with_checkpoint(tmp_path, mnist_dir)
    with h5py.File(path, "r") as f:
        at = f["brood/source"].id.get_offset()  # the survivors' rows, stored contiguously: flip a byte inside
    data = bytearray(path.read_bytes())
    data[at + 1000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="dataset source does not match its checksum"):
        read_checkpoint(path)


def test_newer_checkpoint_stops_the_resume_and_is_kept(tmp_path, mnist_dir):
    import h5py

    from genreg.runs.evolve import resume_run

    run, path = _run_with_checkpoint(tmp_path, mnist_dir)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    before = path.read_bytes()
    with pytest.raises(CheckpointError, match="newer genreg"):
        resume_run(run, {"generations": 4}, mnist_dir, progress=False)
    assert path.read_bytes() == before


@pytest.mark.parametrize("content", ["generation,best_fitness\n0,1.5\n1,2.0\n2,2.", b"\x00\xff\xfe binary"])
def test_history_with_a_torn_or_binary_file(tmp_path, content):
    from genreg.errors import GenregError
    from genreg.runs.history import read_history

    path = tmp_path / "metrics.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
        with pytest.raises(GenregError, match="not a readable history CSV"):
            read_history(path)
    else:
        path.write_text(content.replace("2,2.", "2"))  # the last row lost its second value
        assert read_history(path)["generation"].tolist() == [0.0, 1.0]


def test_disk_usage_counts_every_file_below_the_run(tmp_path):
    from genreg.runs.rundir import disk_usage

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "a.h5").write_bytes(b"x" * 1000)
    (tmp_path / "metrics.csv").write_bytes(b"y" * 24)
    assert disk_usage(tmp_path) == 1024
