"""A real full disk (a small tmpfs mounted for the test): one line, exit status 2, no crash, and the run resumes.

Before HDF5 files were built in memory, a search on a full disk printed its error and then died
of a segmentation fault (status 139).  Mounting needs root; elsewhere these tests are skipped.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest


@pytest.fixture
def small_disk(tmp_path):
    """A 128 KiB tmpfs at ``tmp_path / "disk"``; ``grow()`` remounts it at 64 MiB."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=128k", "tmpfs", str(mount)],
                                           capture_output=True).returncode != 0:
        pytest.skip("mounting a tmpfs needs root")

    def grow():
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", str(mount)], capture_output=True)


def _genreg(*args, env_data=None):
    env = dict(os.environ)
    if env_data:
        env["GENREG_DATA"] = str(env_data)
    return subprocess.run([sys.executable, "-m", "genreg", *args], capture_output=True, text=True, timeout=300,
                          env=env)


def test_search_on_a_full_disk_ends_with_one_line_and_resumes(small_disk):
    disk, grow = small_disk
    run = disk / "search"
    proc = _genreg("hpo", "--task", "trig", "--out", str(run), "--generations", "7", "--population", "8",
                   "--epochs", "2", "--no-progress")
    err = [line for line in proc.stderr.strip().splitlines() if line]
    assert proc.returncode == 2, proc.stderr  # not 139: no crash after the error
    assert err[-1].startswith("genreg: error: cannot write") and "No space left on device" in err[-1]
    assert not list(run.glob("*.tmp"))
    grow()
    proc = _genreg("resume", str(run), "--no-progress")
    assert proc.returncode == 0, proc.stderr
    assert (run / "summary.json").is_file()


def test_evolution_on_a_full_disk_ends_with_one_line_and_resumes(small_disk, mnist_dir):
    disk, grow = small_disk
    run = disk / "run"
    args = ("--set", "population=12", "--set", "hidden_sizes=[8]", "--set", "validation_size=500",
            "--data-dir", str(mnist_dir), "--no-progress")
    proc = _genreg("evolve", "--out", str(run), "--generations", "6", "--set", "checkpoint_every=2", *args)
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert err[-1].startswith("genreg: error: cannot write") and "No space left on device" in err[-1]
    grow()
    proc = _genreg("resume", str(run), *args[-3:])
    assert proc.returncode == 0, proc.stderr
    assert (run / "checkpoints" / "state_gen00006.h5").is_file()
