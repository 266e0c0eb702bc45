"""IDX image data sets (MNIST and its drop-in relatives): read, verify, download.

A data set is described by an :class:`IdxSource` (its folder, four file names,
mirrors and published checksums); :func:`load_idx` turns a directory into an
:class:`ImageSet`; :func:`download_files` fetches files checked against the checksums.
Where the directory is, and the registry of sources, is :mod:`genreg.tasks.datasets`.  Images stay ``uint8`` in memory: ``(N, rows*cols)`` rows,
row-major; labels are ``(N,) uint8``.  Loaded arrays are read-only because one
loaded copy is shared by every caller in the process.

Every bad input raises :class:`genreg.errors.DataError` whose message names the
file and what is wrong with it.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genreg.errors import DataError
from genreg.tasks.download import MAX_DOWNLOAD_BYTES, fetch, file_url, make_dirs, remove_empty

IMAGE_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 0x00000801  # unsigned byte data, 1 dimension (count)
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


# ----------------------------------------------------------------------------- checking and downloading


def content_sha256(path: Path) -> tuple[str, bool]:
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


def raw_digests(path: Path) -> tuple[str, str]:
    """(sha256, md5) of the file's bytes as stored."""
    sha, md5 = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            sha.update(chunk)
            md5.update(chunk)
    return sha.hexdigest(), md5.hexdigest()


def _verify(source: IdxSource, name: str, path: Path, raw_sha256: str, raw_md5: str) -> bool:
    """Check a download against every checksum ``source`` lists for ``name``; returns whether it is gzip."""
    expected = [("sha256 of the .gz", source.gz_sha256.get(name), raw_sha256),
                ("md5 of the .gz", source.gz_md5.get(name), raw_md5)]
    with path.open("rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    if name in source.sha256:
        content, gz = content_sha256(path)
        expected.append(("sha256 of content", source.sha256[name], content))
    for what, want, got in expected:
        if want is not None and got != want:
            raise DataError(f"checksum mismatch ({what} {got[:16]}..., expected {want[:16]}...)")
    return gz


def _fetch(source: IdxSource, url: str, name: str, directory: Path, timeout: float) -> Path:
    """Download ``url`` to a temp file in ``directory``, verify, rename into place; returns the file."""
    tmp, sha, md5 = fetch(url, directory, name, timeout=timeout)
    try:
        gz = _verify(source, name, tmp, sha, md5)
        final = directory / (f"{name}.gz" if gz else name)
        os.replace(tmp, final)
        return final
    finally:
        tmp.unlink(missing_ok=True)


def download_files(source: IdxSource, directory: Path, names, mirrors: tuple[str, ...], timeout: float,
                   *, log=None, hint: str = "") -> None:
    """Fetch each of ``names`` (files of ``source``) from the first of ``mirrors`` (base URLs) that serves
    it with the right checksums, into ``directory`` (created if need be); a file it replaces under the
    other name (``x`` vs ``x.gz``) is removed.

    On failure: DataError listing the files, the URLs tried and why, then ``hint``; folders this call
    created are removed again if empty.  log: called with one line per file fetched.
    """
    import http.client  # (only when something is downloaded)

    names = list(names)
    created = make_dirs(directory, what=f"the {source.title} folder")
    try:
        for name in names:
            errors = []
            for base in mirrors:
                url = file_url(base, f"{name}.gz")
                try:
                    old = find_file(directory, name)
                    final = _fetch(source, url, name, directory, timeout)
                    if old is not None and old != final:
                        old.unlink(missing_ok=True)
                    if log is not None:
                        log(f"{final.name}: {final.stat().st_size / 1e6:.1f} MB from {url}, checksum verified")
                    break
                except (OSError, ValueError, EOFError, zlib.error, http.client.HTTPException, DataError) as exc:
                    errors.append(f"{url}: {exc}")
            else:
                detail = "\n  ".join(errors)
                raise DataError(f"{source.title} files missing from {directory}: {', '.join(names)}; "
                                f"downloading {name} failed:\n  {detail}\n{hint}")
    finally:
        remove_empty(created)


# ----------------------------------------------------------------------------- loading


def load_idx(source: IdxSource, directory: Path, *, hint: str = "") -> ImageSet:
    """Load the four files of ``source`` from ``directory`` (absolute).

    The result is cached in-process, keyed on the directory (and the files' size/mtime).
    Raises DataError when files are missing (the message ends with ``hint``), corrupt or inconsistent.
    """
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected the directory holding the {source.title} files)")
    missing = [name for name in source.files if find_file(directory, name) is None]
    if missing:
        raise DataError(f"{source.title} files missing from {directory}: {', '.join(missing)}; {hint}")
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
