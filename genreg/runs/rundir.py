"""A run directory's marker: what kind of run it holds, written when the run starts.

    RUN_DIR/genreg-run.json   {"kind": "evolve" | "hybrid" | "hpo" | "sgd", "format": 1, "genreg": version}

``genreg resume RUN_DIR`` reads the kind from here.  A directory made before the
marker existed is recognised once by its files and then marked.
"""

from __future__ import annotations

import json
from pathlib import Path

from genreg.errors import CheckpointError, ConfigError

MARKER = "genreg-run.json"
MARKER_FORMAT = 1
KINDS = ("evolve", "hybrid", "hpo", "sgd")


def write_marker(run_dir, kind: str) -> Path:
    """Record that ``run_dir`` holds a run of ``kind`` (creating the folder)."""
    from genreg import __version__

    if kind not in KINDS:
        raise ValueError(f"unknown run kind {kind!r}")
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    path = run_dir / MARKER
    path.write_text(json.dumps({"kind": kind, "format": MARKER_FORMAT, "genreg": __version__}) + "\n")
    return path


def _legacy_kind(run_dir: Path) -> str | None:
    """The kind of a run made before markers existed, from the files only that kind writes."""
    if (run_dir / "population.h5").is_file() and (run_dir / "evaluations.csv").is_file():
        return "hpo"
    if (run_dir / "similarity").is_dir() and (run_dir / "checkpoints").is_dir():
        return "hybrid"
    if (run_dir / "checkpoints").is_dir() and (run_dir / "tracked_weights.csv").is_file():
        return "evolve"
    return None


def run_kind(run_dir) -> str:
    """The kind of run ``run_dir`` holds; CheckpointError naming the folder if it holds none."""
    run_dir = Path(run_dir)
    path = run_dir / MARKER
    if not run_dir.is_dir():
        why = "a file, not a folder" if run_dir.exists() else "no such folder"
        raise CheckpointError(f"{run_dir} is not a run directory ({why})")
    if path.is_file():
        try:
            marker = json.loads(path.read_text())
            kind = marker["kind"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"{path} is damaged ({type(exc).__name__}); it should name the run's kind") from None
        if kind not in KINDS:
            raise CheckpointError(f"{path} names an unknown run kind {kind!r}")
        return kind
    kind = _legacy_kind(run_dir)
    if kind is None:
        raise CheckpointError(f"{run_dir} holds no genreg run (no {MARKER})")
    write_marker(run_dir, kind)
    return kind


LOCK = ".genreg.lock"


class RunLock:
    """An OS-level lock on a run directory, held while one process runs it.

    ``flock`` on ``RUN_DIR/.genreg.lock``: the kernel releases it when the holder exits,
    however it exits, so a lock left by a killed process is never stale.  The file
    holds the owner's pid, for the message a second process gets.
    """

    def __init__(self, run_dir):
        self.path = Path(run_dir) / LOCK
        self._fh = None

    def acquire(self) -> "RunLock":
        import fcntl
        import os

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.seek(0)
            owner = fh.read().strip() or "unknown"
            fh.close()
            raise CheckpointError(f"{self.path.parent} is in use by another genreg process (pid {owner}); "
                                  "wait for it to finish or stop it") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock
            self._fh = None

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def check_folder_path(run_dir) -> None:
    """ConfigError unless ``run_dir`` is a folder or could be created as one (no file in the way)."""
    run_dir = Path(run_dir)
    ancestor = run_dir
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if ancestor != run_dir and not ancestor.is_dir():
        raise ConfigError(f"cannot create {run_dir}: {ancestor} is a file, not a folder")
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is a file, not a folder: choose another --out")


def prepare_new_run(run_dir, kind: str, has_checkpoint, noun: str = "run") -> None:
    """Check that a new run of ``kind`` may start in ``run_dir``, touching nothing that is not ours.

    Refused: a path that is a file; a folder holding another kind of run, files that are not a
    genreg run, or a run of this kind with a checkpoint (resume it instead).  Accepted: a missing or
    empty folder, or one where a run of this kind was killed before its first checkpoint was
    complete (its leftover ``.tmp`` files are removed).  ``has_checkpoint(run_dir)``: whether a
    checkpoint of this kind exists there; ``noun`` names such a run in messages ("run", "search").
    A folder whose run another process holds (``RunLock``) is refused, never cleaned.
    """
    run_dir = Path(run_dir)
    check_folder_path(run_dir)
    if not run_dir.is_dir() or not any(p.name != LOCK for p in run_dir.iterdir()):
        return
    if (run_dir / MARKER).is_file() or _legacy_kind(run_dir) is not None:
        found = run_kind(run_dir)
        if found != kind:
            raise ConfigError(f"{run_dir} holds a {found} run; choose another --out")
        if has_checkpoint(run_dir):
            raise ConfigError(f"{run_dir} already holds a {noun}; continue it with `genreg resume {run_dir}` "
                                  "or choose another --out")
        with RunLock(run_dir):  # a run still writing its first checkpoint keeps its files
            remove_partial_files(run_dir)
        return
    raise ConfigError(f"{run_dir} holds files that are not a genreg run; choose an empty or new folder")


def remove_partial_files(run_dir) -> None:
    """Delete the ``*.tmp`` files an interrupted atomic write left in ``run_dir`` and its subfolders."""
    for tmp in Path(run_dir).rglob("*.tmp"):
        tmp.unlink(missing_ok=True)


def disk_usage(run_dir) -> int:
    """Bytes held by the files under ``run_dir`` (what a run costs on disk)."""
    return sum(p.stat().st_size for p in Path(run_dir).rglob("*") if p.is_file())
