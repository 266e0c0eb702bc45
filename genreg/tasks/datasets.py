"""The data sets genreg can download, and where every command looks for them.

The **data root** holds one folder per data set (``mnist/``, ``fashion-mnist/``, ``wine-quality/``,
``boston-housing/``).  Every command, the Python API and the tests find it the same way
(:func:`locate_root`):

1. ``--data-dir D`` (``data_dir=`` in Python), else
2. ``$GENREG_DATA``, else
3. the user cache, ``$XDG_CACHE_HOME/genreg`` (default ``~/.cache/genreg``).

A data set's folder is ``<root>/<folder>`` (:func:`dataset_dir`); for the old habit of pointing
``--data-dir`` at the data set's own folder, a root named like the folder, or one holding the data
set's files itself, is taken as the folder (except for Fashion-MNIST, whose files share MNIST's names).

:data:`DATASETS` is the registry: files, mirrors (each overridable by an environment variable of
comma-separated base URLs), checksums, licence and citation.  :func:`status` says whether a data
set is missing, present or verified; :func:`download` fetches what is missing or corrupt and
verifies it before it is moved into place; :func:`require` is what the loaders call.
"""

from __future__ import annotations

import os
import sys
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from genreg.errors import DataError
from genreg.tasks import download as dl
from genreg.tasks.idx import (IdxSource, content_sha256, download_files, find_file, raw_digests, read_idx_images,
                              read_idx_labels)

# ----------------------------------------------------------------------------- MNIST and Fashion-MNIST

#: The four IDX files, without the optional ``.gz`` suffix (the same names for Fashion-MNIST).
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
#: sha256 of the *decompressed* MNIST files: pins the content whatever the gzip wrapping.
SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
#: Base URLs tried in order; each serves ``<base>/<file>.gz``.  Overridden by ``$GENREG_MNIST_MIRRORS``.
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
#: Fashion-MNIST (Xiao, Rasul, Vollgraf 2017; MIT licence): the labels 0..9 name these articles.
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
#: Base URLs tried in order (overridden by ``$GENREG_FASHION_MNIST_MIRRORS``): the data folder
#: of github.com/zalandoresearch/fashion-mnist and the project's S3 mirror, which serve the same .gz files.
FASHION_MIRRORS = (
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
)
# No published checksum of the *decompressed* Fashion-MNIST files was found, so a download is
# checked as the .gz file the mirrors publish, against both published digests:
#: md5 of the .gz files: the "Get the Data" table of the zalandoresearch/fashion-mnist README
#: (torchvision's FashionMNIST.resources list the same).
FASHION_GZ_MD5 = {
    "train-images-idx3-ubyte": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte": "bb300cfdad3c16e7a12a480ee83cd310",
}
#: sha256 of the .gz files (26421880, 29515, 4422102 and 5148 bytes): tensorflow/datasets,
#: tensorflow_datasets/url_checksums/fashion_mnist.txt.
FASHION_GZ_SHA256 = {
    "train-images-idx3-ubyte": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}
MNIST_SOURCE = IdxSource(title="MNIST", folder="mnist", files=FILES, mirrors=MIRRORS,
                         mirrors_env="GENREG_MNIST_MIRRORS", classes=tuple(str(d) for d in range(10)),
                         sha256=SHA256)
FASHION_SOURCE = IdxSource(title="Fashion-MNIST", folder="fashion-mnist", files=FILES, mirrors=FASHION_MIRRORS,
                           mirrors_env="GENREG_FASHION_MNIST_MIRRORS", classes=FASHION_CLASSES,
                           gz_sha256=FASHION_GZ_SHA256, gz_md5=FASHION_GZ_MD5)

# ----------------------------------------------------------------------------- wine and Boston

#: Column names, in file order; the last column is the target.
WINE_COLUMNS = (
    "fixed acidity", "volatile acidity", "citric acid", "residual sugar", "chlorides",
    "free sulfur dioxide", "total sulfur dioxide", "density", "pH", "sulphates", "alcohol", "quality",
)
BOSTON_COLUMNS = (
    "CRIM", "ZN", "INDUS", "CHAS", "NOX", "RM", "AGE", "DIS", "RAD", "TAX", "PTRATIO", "B", "LSTAT", "MEDV",
)
# The tabular files are kept in one canonical form (comma-separated, no header row, one record per
# line ending in \n), whatever the layout of the copy they were downloaded from: UCI serves the wine files
# semicolon-separated with a quoted header row; StatLib serves Boston after a 22-line description,
# each record wrapped over two lines.  Their checksums are therefore of the *numbers*, not the bytes
# (``download.numbers_sha256``: sha256 of "<rows>x<cols>\n" and the values as little-endian float64),
# computed from the reference copies this project was developed with (1,599 x 12, 4,898 x 12 and
# 506 x 14 values); a mirror serving other numbers is refused.  No upstream publishes a checksum.
NUMBERS_SHA256 = {
    "winequality-red.csv": "79398c1d46cb042a4deee1b1cfa0025d716bb16d5f325366010f960b3fda1d1b",
    "winequality-white.csv": "e4da700f81495acdfcd9c5c39bdf3aaead6e753a3bdc82e447a4d0d23fa06735",
    "boston_housing.csv": "bb9509cda8e4107522d803c47bc5a4eac484e7f2a6cea61da0dafadd510944a6",
}
#: UCI Machine Learning Repository, data set 186 (files ``winequality-red.csv``, ``winequality-white.csv``).
WINE_MIRRORS = ("https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/",)
#: StatLib, Carnegie Mellon University (file ``boston``), the copy scikit-learn's ``load_boston`` read.
BOSTON_MIRRORS = ("http://lib.stat.cmu.edu/datasets/",)


@dataclass(frozen=True, eq=False)
class Dataset:
    """One downloadable data set.

    files: the file names in its folder (IDX: without ``.gz``).  remote: the name each file has on a
    mirror, when it differs.  mirrors: base URLs tried in order, each serving ``<base>/<remote name>``
    (IDX: ``<base>/<file>.gz``); ``$<mirrors_env>`` (comma-separated) replaces them.
    idx: the IDX description of an image set; columns / float_format: a table's columns and how its
    canonical file writes numbers (``None``: as upstream wrote them).
    """

    name: str
    title: str
    folder: str
    files: tuple[str, ...]
    mirrors: tuple[str, ...]
    mirrors_env: str
    licence: str
    citation: str
    homepage: str
    idx: IdxSource | None = None
    columns: tuple[str, ...] = ()
    remote: Mapping[str, str] = field(default_factory=dict)
    float_format: str | None = None
    own_folder_ok: bool = True  # a root holding the files itself may be taken as the folder

    def remote_name(self, file: str) -> str:
        return f"{file}.gz" if self.idx is not None else self.remote.get(file, file)


DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset("mnist", "MNIST", "mnist", FILES, MIRRORS, "GENREG_MNIST_MIRRORS",
            licence="CC BY-SA 3.0",
            citation="Y. LeCun, C. Cortes, C. J. C. Burges, The MNIST database of handwritten digits (1998)",
            homepage="http://yann.lecun.com/exdb/mnist/", idx=MNIST_SOURCE),
    Dataset("fashion-mnist", "Fashion-MNIST", "fashion-mnist", FILES, FASHION_MIRRORS,
            "GENREG_FASHION_MNIST_MIRRORS", licence="MIT",
            citation="H. Xiao, K. Rasul, R. Vollgraf, Fashion-MNIST: a novel image dataset for benchmarking "
                     "machine learning algorithms, arXiv:1708.07747 (2017)",
            homepage="https://github.com/zalandoresearch/fashion-mnist", idx=FASHION_SOURCE, own_folder_ok=False),
    Dataset("wine", "Wine Quality", "wine-quality", ("winequality-red.csv", "winequality-white.csv"),
            WINE_MIRRORS, "GENREG_WINE_MIRRORS", licence="CC BY 4.0",
            citation="P. Cortez, A. Cerdeira, F. Almeida, T. Matos, J. Reis, Modeling wine preferences by data "
                     "mining from physicochemical properties, Decision Support Systems 47(4):547-553 (2009)",
            homepage="https://archive.ics.uci.edu/dataset/186/wine+quality", columns=WINE_COLUMNS),
    Dataset("boston", "Boston Housing", "boston-housing", ("boston_housing.csv",), BOSTON_MIRRORS,
            "GENREG_BOSTON_MIRRORS", licence="none stated (StatLib archive)",
            citation="D. Harrison, D. L. Rubinfeld, Hedonic prices and the demand for clean air, J. Environ. "
                     "Economics & Management 5:81-102 (1978)",
            homepage="http://lib.stat.cmu.edu/datasets/boston", columns=BOSTON_COLUMNS,
            remote={"boston_housing.csv": "boston"}, float_format="%.18e"),
)}
#: Other names accepted for a data set (task specs and folder names).
ALIASES = {"wine-white": "wine", "wine-red": "wine", "wine-quality": "wine", "boston-housing": "boston"}

# ----------------------------------------------------------------------------- where


@dataclass(frozen=True)
class DataRoot:
    """A resolved data root and the rule that chose it: ``"--data-dir"``, ``"GENREG_DATA"`` or ``"cache"``."""

    path: Path
    rule: str

    def describe(self) -> str:
        """Which rule chose the root, in words."""
        if self.rule == "--data-dir":
            return "given by --data-dir"
        if self.rule == "GENREG_DATA":
            return "from $GENREG_DATA"
        xdg = "$XDG_CACHE_HOME/genreg" if _xdg() else "~/.cache/genreg"
        return f"the user cache {xdg}: neither --data-dir nor $GENREG_DATA is set"


def _xdg() -> str:
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    return xdg if xdg and Path(xdg).is_absolute() else ""


def cache_root() -> Path:
    """The user cache's data root: ``$XDG_CACHE_HOME/genreg`` (default ``~/.cache/genreg``)."""
    return (Path(_xdg()) if _xdg() else Path.home() / ".cache") / "genreg"


def locate_root(data_dir=None) -> DataRoot:
    """The data root (absolute) and the rule that chose it: ``data_dir``, else ``$GENREG_DATA``, else the cache."""
    if data_dir is not None and str(data_dir).strip():
        return DataRoot(Path(data_dir).expanduser().resolve(), "--data-dir")
    if os.environ.get("GENREG_DATA", "").strip():
        return DataRoot(Path(os.environ["GENREG_DATA"].strip()).expanduser().resolve(), "GENREG_DATA")
    return DataRoot(cache_root().resolve(), "cache")


def resolve_root(data_dir=None) -> Path:
    """The data root, absolute (see :func:`locate_root`)."""
    return locate_root(data_dir).path


def get(name: str) -> Dataset:
    """The registered data set called ``name`` (or an alias); DataError listing the known names."""
    key = str(name).strip().lower()
    key = ALIASES.get(key, key)
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[key]


def _holds(ds: Dataset, directory: Path) -> bool:
    if ds.idx is not None:
        return any(find_file(directory, f) for f in ds.files)
    return any((directory / f).is_file() for f in ds.files)


def dataset_dir(name: str, data_dir=None) -> Path:
    """The folder of data set ``name`` under the data root of ``data_dir`` (see the module docstring)."""
    ds, root = get(name), resolve_root(data_dir)
    if _holds(ds, root / ds.folder):
        return root / ds.folder
    if root.name == ds.folder or (ds.own_folder_ok and _holds(ds, root)):
        return root
    return root / ds.folder


def hint(name: str) -> str:
    """What to do about a missing data set, as the end of an error message."""
    return (f"run `genreg data download {name}` (add --data-dir D to fetch into another data root), or point "
            f"genreg at a data root holding {get(name).folder}/ with --data-dir D or GENREG_DATA=D")


def download_hint(name: str, folder: Path) -> str:
    """What to do when downloading a data set failed, as the end of an error message."""
    ds = get(name)
    return (f"check the network, or name other mirrors in ${ds.mirrors_env} (comma-separated base URLs), or copy "
            f"the files ({', '.join(ds.files)}) into {folder} yourself")


# ----------------------------------------------------------------------------- status

MISSING, PRESENT, VERIFIED, CORRUPT = "missing", "present", "verified", "corrupt"


@dataclass(frozen=True)
class Status:
    """Where data set ``dataset`` is looked for and what is there.

    state: ``"verified"`` (every file matches its checksum), ``"present"`` (every file there, some
    with no checksum to check: uncompressed Fashion-MNIST files), ``"corrupt"`` (a file fails its
    checksum or cannot be read) or ``"missing"`` (a file is absent).  files: ``(file, state, detail)``.
    """

    dataset: Dataset
    folder: Path
    root: DataRoot
    state: str
    files: tuple[tuple[str, str, str], ...]

    def problems(self) -> list[str]:
        """One line per file that is not verified or present."""
        return [f"{f}: {state}" + (f" ({detail})" if detail else "")
                for f, state, detail in self.files if state not in (VERIFIED, PRESENT)]


def _check_file(ds: Dataset, folder: Path, file: str) -> tuple[str, str]:
    """(state, detail) of one file of ``ds`` in ``folder``."""
    if ds.idx is not None:
        path = find_file(folder, file)
        if path is None:
            return MISSING, ""
        src = ds.idx
        try:
            if file in src.sha256:
                got, _ = content_sha256(path)
                return (VERIFIED, "") if got == src.sha256[file] else (CORRUPT, f"{path.name}: sha256 of content "
                                                                                f"{got[:16]}..., expected {src.sha256[file][:16]}...")
            if path.suffix == ".gz" and (file in src.gz_sha256 or file in src.gz_md5):
                sha, md5 = raw_digests(path)
                for what, want, got in (("sha256", src.gz_sha256.get(file), sha), ("md5", src.gz_md5.get(file), md5)):
                    if want is not None and got != want:
                        return CORRUPT, f"{path.name}: {what} {got[:16]}..., expected {want[:16]}..."
                return VERIFIED, ""
            # no published checksum of this file: at least it must be an IDX file of the right kind
            read_idx_labels(path) if "labels" in file else read_idx_images(path)
        except (OSError, EOFError, zlib.error, DataError) as exc:
            return CORRUPT, f"{path.name}: cannot read ({type(exc).__name__}: {exc})"
        return PRESENT, "no published checksum of the uncompressed file (read as IDX)"
    from genreg.tasks.tabular import read_numeric_csv

    path = folder / file
    if not path.exists():
        return MISSING, ""
    try:
        values = read_numeric_csv(path, ds.columns)
    except DataError as exc:
        return CORRUPT, str(exc)
    got = dl.numbers_sha256(values)
    if got != NUMBERS_SHA256[file]:
        return CORRUPT, f"sha256 of the numbers {got[:16]}..., expected {NUMBERS_SHA256[file][:16]}..."
    return VERIFIED, ""


def _root(data_dir) -> DataRoot:
    return data_dir if isinstance(data_dir, DataRoot) else locate_root(data_dir)


def status(name: str, data_dir=None) -> Status:
    """Check data set ``name`` where it is looked for: every file present, and its checksum (a second or
    so for MNIST's 55 MB).  data_dir: the data root (see :func:`locate_root`) or a :class:`DataRoot`."""
    ds, root = get(name), _root(data_dir)
    folder = dataset_dir(ds.name, root.path)
    files = tuple((f, *_check_file(ds, folder, f)) for f in ds.files)
    states = {s for _, s, _ in files}
    state = next((s for s in (MISSING, CORRUPT, PRESENT) if s in states), VERIFIED)
    return Status(ds, folder, root, state, files)


# ----------------------------------------------------------------------------- download


def download(name: str, data_dir=None, *, files=None, mirrors=None, timeout: float = dl.DOWNLOAD_TIMEOUT,
             log: Callable[[str], None] | None = None, advice: str | None = None) -> Status:
    """Fetch the files of data set ``name`` that are missing or corrupt (of ``files``, default all), verify
    them, and move them into its folder; returns the new :class:`Status`.

    mirrors: base URLs (default ``$<mirrors_env>`` or the data set's own).  log: called with one line per
    file fetched.  Raises DataError naming the folder, each URL tried and what went wrong, then ``advice``
    (default: :func:`hint`).
    """
    before = status(name, data_dir)
    ds, folder = before.dataset, before.folder
    advice = hint(ds.name) if advice is None else advice
    todo = [f for f, state, _ in before.files if state in (MISSING, CORRUPT) and (files is None or f in files)]
    if not todo:
        return before
    urls = dl.mirror_list(mirrors, ds.mirrors_env, ds.mirrors)
    if not urls:
        raise DataError(f"{ds.title} files missing from {folder}: {', '.join(todo)}; no download mirrors are "
                        f"configured (${ds.mirrors_env} is empty)")
    if ds.idx is not None:
        download_files(ds.idx, folder, todo, urls, timeout, log=log, hint=advice)
    else:
        created = dl.make_dirs(folder, what=f"the {ds.title} folder")
        try:
            for file in todo:
                dl.download_table([dl.file_url(u, ds.remote_name(file)) for u in urls], folder / file,
                                  len(ds.columns), NUMBERS_SHA256[file], ds.float_format, timeout=timeout, log=log,
                                  failure=f"{ds.title} files missing from {folder}: {file}", hint=advice)
        finally:
            dl.remove_empty(created)
    return status(name, before.root)


def require(name: str, data_dir=None, files=None, *, download_missing: bool = True, mirrors=None,
            timeout: float = dl.DOWNLOAD_TIMEOUT) -> Path:
    """The folder of data set ``name`` holding ``files`` (default all), downloading what is missing first
    unless ``download_missing=False`` (with a notice on stderr).

    A DataError when the files cannot be had names the folder, the rule that chose the data root and
    ``genreg data download NAME``.
    """
    ds, root = get(name), _root(data_dir)
    folder = dataset_dir(ds.name, root.path)
    files = tuple(files or ds.files)
    if ds.idx is not None:
        missing = [f for f in files if find_file(folder, f) is None]
    else:
        missing = [f for f in files if not (folder / f).exists()]
    if not missing:
        return folder
    where = f"data root {root.path}, {root.describe()}"
    if not download_missing:
        raise DataError(f"{ds.title} files missing from {folder} ({where}): {', '.join(missing)}; {hint(ds.name)}")
    print(f"genreg: {ds.title} is not in {folder} ({where}): downloading it", file=sys.stderr)
    download(ds.name, root, files=missing, mirrors=mirrors, timeout=timeout,
             log=lambda line: print(f"genreg: {line}", file=sys.stderr))
    return folder
