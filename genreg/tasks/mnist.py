"""MNIST: find, validate, download and sample the four standard IDX files.

Images stay ``uint8`` in memory: ``(N, 784)`` rows of 28x28 pixels, row-major;
labels are ``(N,) uint8`` in ``0..9``.  Arrays returned by :func:`load_mnist` are
read-only because one loaded copy is shared by every caller in the process; use
:func:`to_float` (a fresh ``float32`` array) or ``.copy()`` to get writable data.

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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genreg.errors import DataError

#: The four files, without the optional ``.gz`` suffix.
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
#: sha256 of the *decompressed* files: pins the content whatever the gzip wrapping.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Base URLs tried in order; each serves ``<base>/<file>.gz``.  Overridden by the
#: ``mirrors=`` argument or by ``$GENREG_MNIST_MIRRORS`` (comma-separated).
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
IMAGE_MAGIC = 0x00000803  # unsigned byte data, 3 dimensions (count, rows, cols)
LABEL_MAGIC = 0x00000801  # unsigned byte data, 1 dimension (count)
DOWNLOAD_TIMEOUT = 30.0  # seconds, per network operation
MAX_DOWNLOAD_BYTES = 256 << 20  # a download (or its decompressed content) larger than this is rejected
_MAX_PAYLOAD = 1 << 31  # an IDX header declaring more data bytes than this is rejected
_CHUNK = 1 << 20
_CACHE: dict[Path, tuple[tuple, "MNIST"]] = {}
_CACHE_SIZE = 4


@dataclass(frozen=True, eq=False)
class Split:
    """A set of examples: ``images (n, 784) uint8``, ``labels (n,) uint8``, and
    ``indices (n,) int64`` — the rows of the source set they were taken from."""

    images: np.ndarray
    labels: np.ndarray
    indices: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.labels)


@dataclass(frozen=True, eq=False)
class MNIST:
    """The loaded data set (read-only arrays) and the directory it came from.

    train_images: (60000, 784) uint8    train_labels: (60000,) uint8
    test_images:  (10000, 784) uint8    test_labels:  (10000,) uint8
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


# ----------------------------------------------------------------------------- locating, downloading


def _find(directory: Path, name: str) -> Path | None:
    """``directory/name`` or ``directory/name.gz``, whichever exists (uncompressed first)."""
    for cand in (directory / name, directory / f"{name}.gz"):
        if cand.is_file():
            return cand
    return None


def resolve_data_dir(data_dir=None) -> Path:
    """The MNIST directory, absolute: ``data_dir`` if given, else ``$GENREG_DATA/mnist``,
    else ``$XDG_CACHE_HOME/genreg/mnist`` (default ``~/.cache/genreg/mnist``).

    An explicit ``data_dir`` that lacks the files but has a ``mnist/`` subdirectory
    holding them (a data root such as ``GENREG_DATA``) resolves to that subdirectory.
    """
    if data_dir is not None:
        path = Path(data_dir).expanduser()
        if not any(_find(path, n) for n in FILES) and any(_find(path / "mnist", n) for n in FILES):
            path = path / "mnist"
    elif os.environ.get("GENREG_DATA"):
        path = Path(os.environ["GENREG_DATA"]).expanduser() / "mnist"
    else:
        xdg = os.environ.get("XDG_CACHE_HOME", "")
        base = Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".cache"
        path = base / "genreg" / "mnist"
    return path.resolve()


def _missing_message(directory: Path, missing: list[str], reason: str) -> str:
    files = "\n".join(f"  {name}.gz" for name in FILES)
    return (
        f"MNIST files missing from {directory}: {', '.join(missing)}; {reason}.\n"
        f"Put the four MNIST files (gzip-compressed .gz, or uncompressed without .gz) into\n  {directory}/\n"
        f"{files}\n"
        f"or point genreg at a directory holding them with --data-dir DIR, or set GENREG_DATA=DIR "
        f"(the files then go in DIR/mnist/)."
    )


def _mirror_list(mirrors) -> tuple[str, ...]:
    if mirrors is None:
        env = os.environ.get("GENREG_MNIST_MIRRORS", "")
        mirrors = env.split(",") if env.strip() else MIRRORS
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


def _fetch(url: str, name: str, directory: Path) -> None:
    """Download ``url`` to a temp file in ``directory``, verify, rename into place."""
    from tqdm import tqdm

    fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=directory)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out, urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT) as resp:
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
                    bar.update(len(chunk))
        digest, gz = _content_sha256(tmp)
        if digest != SHA256[name]:
            raise DataError(f"checksum mismatch (sha256 of content {digest[:16]}..., expected {SHA256[name][:16]}...)")
        os.replace(tmp, directory / (f"{name}.gz" if gz else name))
    finally:
        tmp.unlink(missing_ok=True)


def _download_missing(directory: Path, missing: list[str], mirrors: tuple[str, ...]) -> None:
    if not mirrors:
        raise DataError(_missing_message(directory, missing, "no download mirrors are configured"))
    created = not directory.exists()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(_missing_message(directory, missing, f"the directory cannot be created ({exc})")) from exc
    for name in missing:
        errors = []
        for base in mirrors:
            url = f"{base.rstrip('/')}/{name}.gz"
            try:
                _fetch(url, name, directory)
                break
            except (OSError, ValueError, EOFError, zlib.error, http.client.HTTPException, DataError) as exc:
                errors.append(f"{url}: {exc}")
        else:
            if created:
                with contextlib.suppress(OSError):
                    directory.rmdir()  # only succeeds if nothing was downloaded
            detail = "\n  ".join(errors)
            raise DataError(_missing_message(directory, missing, f"downloading {name} failed:\n  {detail}\n"))


def load_mnist(data_dir=None, *, download: bool = True, mirrors=None) -> MNIST:
    """Load (downloading missing files unless ``download=False``) the MNIST data set.

    data_dir: directory of the four IDX files (see :func:`resolve_data_dir`).
    mirrors: base URLs to download from (default ``$GENREG_MNIST_MIRRORS`` or :data:`MIRRORS`).
    Downloads are verified against :data:`SHA256` before being moved into ``data_dir``.
    The result is cached in-process, keyed on the directory (and the files' size/mtime).
    Raises DataError when files are missing, unobtainable, corrupt or inconsistent.
    """
    directory = resolve_data_dir(data_dir)
    if directory.exists() and not directory.is_dir():
        raise DataError(f"{directory}: not a directory (expected the directory holding the MNIST files)")
    missing = [name for name in FILES if _find(directory, name) is None]
    if missing:
        if not download:
            raise DataError(_missing_message(directory, missing, "downloading is disabled"))
        _download_missing(directory, missing, _mirror_list(mirrors))
    paths = [_find(directory, name) for name in FILES]
    try:
        signature = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in paths)
    except (OSError, AttributeError) as exc:
        raise DataError(f"{directory}: MNIST files vanished while loading ({exc})") from exc
    hit = _CACHE.get(directory)
    if hit is not None and hit[0] == signature:
        return hit[1]
    arrays = []
    for img_path, lab_path in ((paths[0], paths[1]), (paths[2], paths[3])):
        images, labels = read_idx_images(img_path), read_idx_labels(lab_path)
        if len(images) != len(labels):
            raise DataError(f"{img_path} holds {len(images)} images but {lab_path} holds {len(labels)} labels")
        arrays += [images, labels]
    mnist = MNIST(*arrays, source=directory)
    _CACHE.pop(directory, None)
    while len(_CACHE) >= _CACHE_SIZE:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[directory] = (signature, mnist)
    return mnist


# ----------------------------------------------------------------------------- episodes


class EpisodeSampler:
    """Balanced episodes: ``k_per_class`` example indices of each of ``n_classes`` classes.

    labels: ``(N,)`` integer labels in ``0..n_classes-1`` (e.g. ``Split.labels``).
    ``indices(episode)`` is fully determined by ``(seed, episode)``; indices within
    one class are distinct.  Output order is class-major: all of class 0, then 1, ...
    """

    def __init__(self, labels, k_per_class: int, seed: int, n_classes: int = 10):
        labels = np.asarray(labels)
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be a 1-D integer array, got shape {labels.shape} dtype {labels.dtype}")
        self.k_per_class, self.n_classes, self.seed = int(k_per_class), int(n_classes), int(seed)
        for what, value, low in (("k_per_class", self.k_per_class, 1), ("n_classes", self.n_classes, 1),
                                 ("seed", self.seed, 0)):
            if value < low:
                raise ValueError(f"{what} must be >= {low}, got {value}")
        if labels.size and (labels.min() < 0 or labels.max() >= self.n_classes):
            raise DataError(f"labels must lie in 0..{self.n_classes - 1}, found {labels.min()}..{labels.max()}")
        counts = np.bincount(labels.astype(np.int64), minlength=self.n_classes)
        short = [f"class {c}: {counts[c]}" for c in range(self.n_classes) if counts[c] < self.k_per_class]
        if short:
            raise DataError(f"k_per_class={self.k_per_class} needs that many examples of every class; "
                            f"too few in {', '.join(short)}")
        order = np.argsort(labels, kind="stable").astype(np.int64)
        self._by_class = tuple(np.split(order, np.cumsum(counts)[:-1]))
        self.episode = 0  # the episode number the next draw() uses

    @property
    def episode_size(self) -> int:
        return self.n_classes * self.k_per_class

    def indices(self, episode: int) -> np.ndarray:
        """``(n_classes * k_per_class,) int64`` row indices for episode number ``episode``."""
        episode = int(episode)
        if episode < 0:
            raise ValueError(f"episode must be non-negative, got {episode}")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, episode]))
        k, out = self.k_per_class, np.empty(self.episode_size, dtype=np.int64)
        for c, members in enumerate(self._by_class):
            out[c * k : (c + 1) * k] = members[rng.choice(members.size, size=k, replace=False)]
        return out

    def draw(self) -> np.ndarray:
        """Indices for the next episode number (then advance the counter)."""
        out = self.indices(self.episode)
        self.episode += 1
        return out
