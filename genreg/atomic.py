"""Writing files so that a kill or a full disk leaves the old file or the new one, never a cut one.

``write_atomic`` writes a temporary file beside the target, syncs it and renames it over the
target (``os.replace`` is atomic on POSIX and Windows); on failure the temporary file is
removed and the error names the target.  Files get the mode a plain ``open(path, "w")`` would
give them (``FILE_MODE``), not the 0o600 of a temporary file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def _mode_from_umask() -> int:
    """The mode a plain ``open(path, "w")`` gives a new file (0o666 less the umask), read once at import."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


#: The mode of every file written here.
FILE_MODE = _mode_from_umask()


def named(exc: OSError, path) -> OSError:
    """``exc`` naming ``path``, the file being written (a write's ENOSPC names no file, h5py's errors neither,
    and a failed temporary file or rename names the temporary one)."""
    return OSError(exc.errno, exc.strerror or str(exc), str(path))


def write_atomic(path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` via a temporary file in the same folder, fsync and ``os.replace``.

    OSError (a full disk, a read-only folder) names ``path``; nothing is left behind."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise named(exc, path) from None
    try:
        os.fchmod(fd, FILE_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise named(exc, path) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
