"""Run directories: the kind marker and the lock that lets one process at a time run a directory."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from genreg.errors import CheckpointError
from genreg.runs.rundir import MARKER, RunLock, run_kind, write_marker

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
