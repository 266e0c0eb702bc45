"""Downloading data files: mirror lists, one verified fetch, and reading upstream tables.

A fetch streams a URL into a temporary file beside its destination (with a size limit and a
progress bar on a terminal) and returns the file's digests; the caller verifies and renames it
into place, so a failed or corrupt download never leaves a file where data is looked for.
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
import tempfile
from pathlib import Path

import numpy as np

from genreg.atomic import FILE_MODE
from genreg.errors import DataError
from genreg.tasks.files import is_number

DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
MAX_DOWNLOAD_BYTES = 256 << 20  # a download (or its decompressed content) larger than this is rejected
_CHUNK = 1 << 20
_MAX_PREAMBLE = 60  # lines of text (a header row, a description) allowed before an upstream table's numbers
_SEPARATORS = re.compile(r"[,;\s]+")


def mirror_list(mirrors, env_var: str, defaults) -> tuple[str, ...]:
    """The base URLs to try, in order: ``mirrors`` (a URL or a list), else ``$env_var``
    (comma-separated), else ``defaults``; blanks dropped."""
    if mirrors is None:
        env = os.environ.get(env_var, "")
        mirrors = env.split(",") if env.strip() else defaults
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    return tuple(m.strip() for m in mirrors if m and m.strip())


def file_url(base: str, name: str) -> str:
    """``base/name`` (one slash between them)."""
    return f"{base.rstrip('/')}/{name}"


def fetch(url: str, directory: Path, name: str, *, timeout: float = DOWNLOAD_TIMEOUT,
          max_bytes: int = MAX_DOWNLOAD_BYTES) -> tuple[Path, str, str]:
    """Download ``url`` into a new hidden temporary file in ``directory``; returns ``(path, sha256, md5)``
    of the bytes received.  The caller renames or deletes the file; on any error it is deleted.

    A progress bar (labelled ``name``) shows on a terminal's stderr.  Raises OSError / URLError for
    network failures and DataError for a download larger than ``max_bytes``.
    """
    import urllib.request  # (with http.client and ssl: imported only when something is downloaded)

    from tqdm import tqdm

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        os.fchmod(fd, FILE_MODE)  # a data file others may read, as any file this user writes (not mkstemp's 0600)
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            show = sys.stderr is not None and sys.stderr.isatty()
            with tqdm(total=int(length) if length.isdigit() else None, unit="B", unit_scale=True,
                      desc=name, disable=not show, leave=False) as bar:
                received = 0
                while chunk := resp.read(_CHUNK):
                    received += len(chunk)
                    if received > max_bytes:
                        raise DataError(f"download larger than {max_bytes} bytes")
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, sha.hexdigest(), md5.hexdigest()


# ----------------------------------------------------------------------------- numeric tables


def numbers_sha256(values: np.ndarray) -> str:
    """sha256 of a table's numbers: the text ``"<rows>x<cols>\\n"`` then the values as little-endian
    float64, row-major.

    values: (rows, cols) float64.  Two files holding the same numbers hash alike whatever their
    separators, header or number formatting ("7.4", "7.40", "7.400000000000000355e+00").
    """
    values = np.ascontiguousarray(values, dtype="<f8")
    rows, cols = values.shape
    return hashlib.sha256(f"{rows}x{cols}\n".encode() + values.tobytes()).hexdigest()


def parse_table(text: str, n_cols: int, what: str) -> tuple[np.ndarray, list[list[str]]]:
    """The numbers of an upstream table -> ``((rows, n_cols) float64, their cells as text)``.

    Accepts the layouts the public copies use: cells separated by commas, semicolons or
    whitespace (quotes stripped), after up to 60 lines of non-numeric preamble (a header row,
    StatLib's description); a record may wrap over several lines (StatLib's Boston file puts 11
    values on one line and 3 on the next).  Raises DataError naming ``what`` otherwise.
    """
    lines = text.splitlines()
    start = 0
    while start < len(lines) and not _numeric_line(lines[start]):
        start += 1
        if start > _MAX_PREAMBLE:
            raise DataError(f"{what}: no table of numbers in the first {_MAX_PREAMBLE} lines")
    cells = []
    for lineno, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        row = [c.strip().strip('"').strip("'") for c in _SEPARATORS.split(line.strip())]
        if not _numeric_line(line):
            bad = next(c for c in row if not is_number(c))
            raise DataError(f"{what}: line {lineno}: {bad!r} is not a number")
        cells += row
    if not cells:
        raise DataError(f"{what}: no numbers found")
    if len(cells) % n_cols:
        raise DataError(f"{what}: {len(cells)} numbers do not make rows of {n_cols} columns")
    values = np.array([float(c) for c in cells], dtype=np.float64).reshape(-1, n_cols)
    if not np.isfinite(values).all():
        raise DataError(f"{what}: holds values that are not finite")
    rows = [cells[i : i + n_cols] for i in range(0, len(cells), n_cols)]
    return values, rows


def _numeric_line(line: str) -> bool:
    cells = [c.strip().strip('"').strip("'") for c in _SEPARATORS.split(line.strip())]
    return bool(line.strip()) and all(is_number(c) for c in cells)


def canonical_csv(values: np.ndarray, rows: list[list[str]], float_format: str | None) -> str:
    """The canonical text of a table: comma-separated, no header, one record per line.

    float_format: ``None`` keeps the cells' text as upstream wrote it; a format (``"%.18e"``,
    NumPy's ``savetxt`` default) writes the numbers.
    """
    if float_format is None:
        return "".join(",".join(r) + "\n" for r in rows)
    return "".join(",".join(float_format % v for v in row) + "\n" for row in values)


def download_table(urls, dest: Path, n_cols: int, sha256: str, float_format: str | None, *,
                   timeout: float = DOWNLOAD_TIMEOUT, log=None, failure: str = "", hint: str = "") -> None:
    """Fetch a table from the first of ``urls`` whose numbers hash to ``sha256`` (:func:`numbers_sha256`)
    and write its canonical form (:func:`canonical_csv`) to ``dest`` (whose folder exists).

    On failure: DataError ``"<failure>; downloading it failed:"``, each URL and why, then ``hint``.
    log: called with one line when the file is in place.
    """
    import http.client

    errors = []
    for url in urls:
        tmp = None
        try:
            tmp, _, _ = fetch(url, dest.parent, dest.name, timeout=timeout)
            try:
                text = tmp.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise DataError(f"not a text file ({exc.reason} at byte {exc.start})") from None
            values, rows = parse_table(text, n_cols, "the download")
            got = numbers_sha256(values)
            if got != sha256:
                raise DataError(f"checksum mismatch (sha256 of the {values.shape[0]}x{values.shape[1]} numbers "
                                f"{got[:16]}..., expected {sha256[:16]}...)")
            tmp.write_text(canonical_csv(values, rows, float_format), encoding="utf-8")
            os.replace(tmp, dest)
            if log is not None:
                log(f"{dest.name}: {values.shape[0]} rows from {url}, checksum verified")
            return
        except (OSError, ValueError, http.client.HTTPException, DataError) as exc:
            errors.append(f"{url}: {exc}")
        finally:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
    detail = "\n  ".join(errors)
    raise DataError(f"{failure}; downloading it failed:\n  {detail}\n{hint}")


# ----------------------------------------------------------------------------- folders


def make_dirs(directory: Path, what: str = "the data folder") -> list[Path]:
    """Create ``directory`` and its missing parents; returns those created (deepest first), for
    :func:`remove_empty`.  DataError naming the folder if it cannot be created."""
    created, p = [], Path(directory)
    while not p.exists() and p != p.parent:
        created.append(p)
        p = p.parent
    try:
        Path(directory).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create {what} {directory}: {exc.strerror or exc}") from None
    return created


def remove_empty(created: list[Path]) -> None:
    """Remove the folders :func:`make_dirs` created that are still empty, deepest first."""
    for p in created:
        try:
            p.rmdir()
        except OSError:
            break
