"""IDX image data sets (MNIST and its drop-in relatives): read, locate, download, verify.

A data set is described by an :class:`IdxSource` (its folder, four file names,
mirrors and published checksums); :func:`load_idx` turns a directory into an
:class:`ImageSet`.  Images stay ``uint8`` in memory: ``(N, rows*cols)`` rows,
row-major; labels are ``(N,) uint8``.  Loaded arrays are read-only because one
loaded copy is shared by every caller in the process.

Every bad input raises :class:`genreg.errors.DataError` whose message names the
file and what is wrong with it.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import http.client
import os
import sys
import tempfile
import urllib.request
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreg.errors import DataError

IMAGE_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 0x00000801  # unsigned byte data, 1 dimension (count)
DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
MAX_DOWNLOAD_BYTES = 256 << 20  # a download (or its decompressed content) larger than this is rejected
_MAX_PAYLOAD = 1 << 31  # an IDX header declaring more data bytes than this is rejected
_CHUNK = 1 << 20
_CACHE: dict[tuple[str, Path], tuple[tuple, "ImageSet"]] = {}
_CACHE_SIZE = 4


@dataclass(frozen=True, eq=False)
class IdxSource:
    """What :func:`load_idx` needs to know about one IDX data set.

    files: the four file names without ``.gz``: train images, train labels, test images, test labels.
    mirrors: base URLs tried in order, each serving ``<base>/<file>.gz``; ``mirrors_env`` names the
    environment variable (comma-separated URLs) that replaces them.
    sha256: of the *decompressed* files; gz_sha256 / gz_md5: of the ``.gz`` files as published.
    A download must match every checksum listed for its file; each file needs at least one.
    """

    title: str
    folder: str
    files: tuple[str, str, str, str]
    mirrors: tuple[str, ...]
    mirrors_env: str
    classes: tuple[str, ...]
    image_shape: tuple[int, int] = (28, 28)
    sha256: Mapping[str, str] = field(default_factory=dict)
    gz_sha256: Mapping[str, str] = field(default_factory=dict)
    gz_md5: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        unpinned = [n for n in self.files if n not in self.sha256 and n not in self.gz_sha256 and n not in self.gz_md5]
        if unpinned:
            raise ValueError(f"{self.title}: no checksum for {', '.join(unpinned)}")


@dataclass(frozen=True, eq=False)
class Split:
    """A set of examples: ``images (n, rows*cols) uint8``, ``labels (n,) uint8``, and
    ``indices (n,) int64`` — the rows of the source set they were taken from."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class ImageSet:
    """A loaded IDX data set (read-only arrays) and the directory it came from.

    train_images: (N_train, rows*cols) uint8    train_labels: (N_train,) uint8
    test_images:  (N_test, rows*cols) uint8     test_labels:  (N_test,) uint8
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path

    @property
    def train(self) -> Split:
        """The whole training set (no validation carved out)."""
        return Split(self.train_images, self.train_labels, np.arange(len(self.train_labels)))

    @property
    def test(self) -> Split:
        """The test set — for final evaluation only, never for model selection."""
        return Split(self.test_images, self.test_labels, np.arange(len(self.test_labels)))

    def split_validation(self, n_val: int = 10000, seed: int = 0) -> tuple[Split, Split]:
        """Carve a validation set out of the TRAINING set: returns ``(train, val)``.

        A random permutation of the training rows from ``seed`` (deterministic):
        its first ``n_val`` rows are the validation part, the rest the training
        part.  Each part keeps the original row order; ``Split.indices`` are rows
        of ``train_images``.  The two parts are disjoint and cover the training set.
        """
        n = len(self.train_labels)
        if not 0 < int(n_val) < n:
            raise ValueError(f"n_val must be between 1 and {n - 1} (the training set has {n} rows), got {n_val}")
        perm = np.random.default_rng(int(seed)).permutation(n)
        val_idx, train_idx = np.sort(perm[:n_val]), np.sort(perm[n_val:])
        return (
            Split(self.train_images[train_idx], self.train_labels[train_idx], train_idx),
            Split(self.train_images[val_idx], self.train_labels[val_idx], val_idx),
        )


def to_float(images: np.ndarray) -> np.ndarray:
    """Pixels as ``float32`` in [0, 1] (``pixel / 255``), same shape, a new array."""
    return np.asarray(images).astype(np.float32) / np.float32(255.0)


# ----------------------------------------------------------------------------- IDX parsing


def _read_payload(f, path: Path, magic: int, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    """Parse header and data from the open (decompressed) stream ``f``."""
    head = f.read(4)
    if len(head) == 0:
        raise DataError(f"{path}: empty file (an IDX file starts with a 4-byte magic number)")
    if len(head) < 4:
        raise DataError(f"{path}: truncated header ({len(head)} bytes, the magic number alone needs 4)")
    got = int.from_bytes(head, "big")
    if head[:3] == magic.to_bytes(4, "big")[:3] and head[3] != ndim:
        raise DataError(f"{path}: IDX file has {head[3]} dimensions, expected {ndim} (magic 0x{got:08x})")
    if got != magic:
        raise DataError(f"{path}: bad magic number 0x{got:08x}, expected 0x{magic:08x}")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated header ({4 + len(raw_dims)} bytes, expected {4 + 4 * ndim})")
    dims = tuple(int(d) for d in np.frombuffer(raw_dims, dtype=">u4"))
    size = int(np.prod(dims, dtype=object))
    if size > _MAX_PAYLOAD:
        raise DataError(f"{path}: header declares dimensions {dims} = {size} bytes, implausibly large")
    data = np.empty(size, dtype=np.uint8)
    view, pos = memoryview(data), 0
    while pos < size:
        n = f.readinto(view[pos : pos + _CHUNK])
        if not n:
            raise DataError(f"{path}: truncated data: header declares dimensions {dims} = {size} bytes, file has {pos}")
        pos += n
    if f.read(1):
        raise DataError(f"{path}: trailing bytes after the {size} data bytes declared by the header {dims}")
    data.flags.writeable = False
    return dims, data


def _read_idx(path, magic: int, ndim: int) -> tuple[tuple[int, ...], np.ndarray]:
    path = Path(path)
    gz = False
    try:
        with path.open("rb") as raw:
            start = raw.read(2)
            gz = start == b"\x1f\x8b"
            if not gz and path.suffix == ".gz" and start:
                raise DataError(f"{path}: corrupt gzip file (no gzip header)")
            raw.seek(0)
            if not gz:
                return _read_payload(raw, path, magic, ndim)
            with gzip.GzipFile(fileobj=raw, mode="rb") as f:
                return _read_payload(f, path, magic, ndim)
    except (OSError, EOFError, zlib.error) as exc:
        what = "corrupt gzip file" if gz else "cannot read file"
        raise DataError(f"{path}: {what} ({type(exc).__name__}: {exc})") from exc


def read_idx_images(path, *, image_shape: tuple[int, int] | None = (28, 28)) -> np.ndarray:
    """Read an IDX image file (``.gz`` or not) -> ``(N, rows*cols) uint8``, read-only.

    ``image_shape``: the required ``(rows, cols)``; ``None`` accepts any.
    """
    (n, rows, cols), data = _read_idx(path, IMAGE_MAGIC, 3)
    if image_shape is not None and (rows, cols) != tuple(image_shape):
        raise DataError(f"{path}: images are {rows}x{cols}, expected {image_shape[0]}x{image_shape[1]}")
    if n == 0:
        raise DataError(f"{path}: the file holds no images")
    return data.reshape(n, rows * cols)


def read_idx_labels(path, *, n_classes: int = 10) -> np.ndarray:
    """Read an IDX label file (``.gz`` or not) -> ``(N,) uint8`` in ``0..n_classes-1``, read-only."""
    (n,), data = _read_idx(path, LABEL_MAGIC, 1)
    if n == 0:
        raise DataError(f"{path}: the file holds no labels")
    bad = np.flatnonzero(data >= n_classes)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            f"{path}: label {int(data[i])} at index {i} is outside 0..{n_classes - 1} ({bad.size} bad labels)"
        )
    return data


# ----------------------------------------------------------------------------- locating


def find_file(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (uncompressed first)."""
    for cand in (directory / name, directory / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def default_root() -> Path:
    """The data root when none is given: ``$GENREG_DATA``, else ``$XDG_CACHE_HOME/genreg``
    (default ``~/.cache/genreg``); not resolved."""
    if os.environ.get("GENREG_DATA"):
        return Path(os.environ["GENREG_DATA"]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
    return base / "genreg"


def _missing_message(source: IdxSource, directory: Path, missing: list[str], reason: str) -> str:
    files = "\n".join(f"  {name}.gz" for name in source.files)
    return (
        f"{source.title} files missing from {directory}: {', '.join(missing)}; {reason}.\n"
        f"Put the four {source.title} files (gzip-compressed .gz, or uncompressed without .gz) into\n"
        f"  {directory}/\n{files}\n"
        f"or point genreg at a directory holding them with --data-dir DIR, or set GENREG_DATA=DIR "
        f"(the files then go in DIR/{source.folder}/)."
    )


# ----------------------------------------------------------------------------- downloading


def _mirror_list(source: IdxSource, mirrors) -> tuple[str, ...]:
    if mirrors is None:
        env = os.environ.get(source.mirrors_env, "")
        mirrors = env.split(",") if env.strip() else source.mirrors
    elif isinstance(mirrors, str):
        mirrors = [mirrors]
    return tuple(m.strip() for m in mirrors if m and m.strip())


def _content_sha256(path: Path) -> tuple[str, bool]:
    """sha256 of the file's decompressed content, and whether it was gzip-compressed."""
    with path.open("rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
        raw.seek(0)
        f = gzip.GzipFile(fileobj=raw, mode="rb") if gz else raw
        digest, total = hashlib.sha256(), 0
        while chunk := f.read(_CHUNK):
            total += len(chunk)
            if total > MAX_DOWNLOAD_BYTES:
                raise DataError(f"decompressed content larger than {MAX_DOWNLOAD_BYTES} bytes")
            digest.update(chunk)
    return digest.hexdigest(), gz


def _verify(source: IdxSource, name: str, path: Path, raw_sha256: str, raw_md5: str) -> bool:
    """Check a download against every checksum ``source`` lists for ``name``; returns whether it is gzip."""
    expected = [("sha256 of the .gz", source.gz_sha256.get(name), raw_sha256),
                ("md5 of the .gz", source.gz_md5.get(name), raw_md5)]
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if name in source.sha256:
        content, gz = _content_sha256(path)
        expected.append(("sha256 of content", source.sha256[name], content))
    for what, want, got in expected:
        if want is not None and got != want:
            raise DataError(f"checksum mismatch ({what} {got[:16]}..., expected {want[:16]}...)")
    return gz


def _fetch(source: IdxSource, url: str, name: str, directory: Path, timeout: float) -> None:
    """Download ``url`` to a temp file in ``directory``, verify, rename into place."""
    from tqdm import tqdm

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=timeout) as resp:
            length = resp.headers.get("Content-Length", "")
            show = sys.stderr is not None and sys.stderr.isatty()
            with tqdm(total=int(length) if length.isdigit() else None, unit="B", unit_scale=True,
                      desc=name, disable=not show, leave=False) as bar:
                received = 0
                while chunk := resp.read(_CHUNK):
                    received += len(chunk)
                    if received > MAX_DOWNLOAD_BYTES:
                        raise DataError(f"download larger than {MAX_DOWNLOAD_BYTES} bytes")
                    out.write(chunk)
                    sha.update(chunk)
                    md5.update(chunk)
                    bar.update(len(chunk))
        gz = _verify(source, name, tmp, sha.hexdigest(), md5.hexdigest())
        os.replace(tmp, directory / (f"{name}.gz" if gz else name))
    finally:
        tmp.unlink(missing_ok=True)


def _download_missing(source: IdxSource, directory: Path, missing: list[str], mirrors: tuple[str, ...],
                      timeout: float) -> None:
    if not mirrors:
        raise DataError(_missing_message(source, directory, missing, "no download mirrors are configured"))
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(_missing_message(source, directory, missing,
                                         f"the directory cannot be created ({exc})")) from exc
    for name in missing:
        errors = []
        for base in mirrors:
            url = f"{base.rstrip('/')}/{name}.gz"
            try:
                _fetch(source, url, name, directory, timeout)
                break
            except (OSError, ValueError, EOFError, zlib.error, http.client.HTTPException, DataError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            if created:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only succeeds if nothing was downloaded
            detail = "\n  ".join(errors)
            raise DataError(_missing_message(source, directory, missing, f"downloading {name} failed:\n  {detail}\n"))


# ----------------------------------------------------------------------------- loading


def load_idx(source: IdxSource, directory: Path, *, download: bool = True, mirrors=None,
             timeout: float = DOWNLOAD_TIMEOUT) -> ImageSet:
    """Load the four files of ``source`` from ``directory`` (absolute), downloading missing ones
    unless ``download=False``.

    mirrors: base URLs to download from (default ``$<source.mirrors_env>`` or ``source.mirrors``).
    Downloads are verified against the source's checksums before being moved into ``directory``.
    The result is cached in-process, keyed on the directory (and the files' size/mtime).
    Raises DataError when files are missing, unobtainable, corrupt or inconsistent.
    """
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected the directory holding the {source.title} files)")
    missing = [name for name in source.files if find_file(directory, name) is None]
    if missing:
        if not download:
            raise DataError(_missing_message(source, directory, missing, "downloading is disabled"))
        _download_missing(source, directory, missing, _mirror_list(source, mirrors), timeout)
    paths = [find_file(directory, name) for name in source.files]
    try:
        signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    except (OSError, AttributeError) as exc:
        raise DataError(f"{directory}: {source.title} files vanished while loading ({exc})") from exc
    key = (source.title, directory)
    hit = _CACHE.get(key)
    if hit is not None and hit[0] == signature:
        return hit[1]
    arrays = []
    for img_path, lab_path in ((paths[0], paths[1]), (paths[2], paths[3])):
        images = read_idx_images(img_path, image_shape=source.image_shape)
        labels = read_idx_labels(lab_path, n_classes=len(source.classes))
        if len(images) != len(labels):
            raise DataError(f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels")
        arrays += [images, labels]
    data = ImageSet(*arrays, source=directory)
    _CACHE.pop(key, None)
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[key] = (signature, data)
    return data
