"""The dataset registry (genreg.tasks.datasets): where data is looked for, status, downloads with checksums.

Downloads come from the local ``server`` fixture, serving files written in the upstream layouts
(UCI's semicolon-separated wine files with a header row, StatLib's Boston file with its 22-line
description and records wrapped over two lines), generated from the real data or from small tables
whose checksum the registry is told to expect.
"""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

from genreg.errors import DataError
from genreg.tasks import datasets, load_task
from genreg.tasks import download as dl
from genreg.tasks.datasets import BOSTON_COLUMNS, NUMBERS_SHA256, WINE_COLUMNS
from helpers import images_bytes, labels_bytes

STATLIB_PREAMBLE = [
    " The Boston house-price data of Harrison, D. and Rubinfeld, D.L. 'Hedonic",
    " prices and the demand for clean air', J. Environ. Economics & Management,",
    " vol.5, 81-102, 1978.   Used in Belsley, Kuh & Welsch, 'Regression diagnostics",
    " ...', Wiley, 1980.   N.B. Various transformations are used in the table on",
    " pages 244-261 of the latter.",
    "",
    " Variables in order:",
    *[f" {name:<8} (description)" for name in BOSTON_COLUMNS],
    "",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GENREG_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def statlib_text(values: np.ndarray) -> str:
    """Boston as StatLib serves it: 22 lines of description, then 11 values on one line and 3 on the next."""
    assert len(STATLIB_PREAMBLE) == 22
    lines = list(STATLIB_PREAMBLE)
    for row in values:
        cells = [f"{v!r:>8}" for v in row.tolist()]
        lines += [" " + " ".join(cells[:11]), " " + " ".join(cells[11:])]
    return "\n".join(lines) + "\n"


def uci_wine_text(canonical: str) -> str:
    """A wine file as UCI serves it: a quoted header row, then the cells separated by semicolons."""
    header = ";".join(f'"{c}"' for c in WINE_COLUMNS)
    return header + "\n" + "".join(line.replace(",", ";") + "\n" for line in canonical.splitlines())


def small_table(n_rows: int, n_cols: int, seed: int = 0) -> np.ndarray:
    return np.round(np.random.default_rng(seed).uniform(0, 50, (n_rows, n_cols)), 3)


@pytest.fixture
def small_boston(monkeypatch):
    """A 12-row Boston table whose checksum the registry is told to expect."""
    values = small_table(12, 14)
    monkeypatch.setitem(NUMBERS_SHA256, "boston_housing.csv", dl.numbers_sha256(values))
    return values


# ----------------------------------------------------------------------------- where data is looked for


def test_root_resolution_order(tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = datasets.locate_root()
    assert (root.path, root.rule) == ((tmp_path / "home" / ".cache" / "genreg").resolve(), "cache")
    assert "~/.cache/genreg" in root.describe()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert datasets.locate_root() == datasets.DataRoot((tmp_path / "xdg" / "genreg").resolve(), "cache")
    assert "$XDG_CACHE_HOME/genreg" in datasets.locate_root().describe()
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # ignored, as the XDG spec says
    assert datasets.locate_root().path == (tmp_path / "home" / ".cache" / "genreg").resolve()
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "env"))
    assert datasets.locate_root() == datasets.DataRoot((tmp_path / "env").resolve(), "GENREG_DATA")
    given = datasets.locate_root(tmp_path / "given")
    assert given == datasets.DataRoot((tmp_path / "given").resolve(), "--data-dir")
    assert "--data-dir" in given.describe()
    monkeypatch.chdir(tmp_path)
    assert datasets.resolve_root("rel") == (tmp_path / "rel").resolve()  # always absolute


def test_dataset_folder_under_the_root(tmp_path):
    root = tmp_path / "root"
    for name, folder in (("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("wine", "wine-quality"),
                         ("wine-white", "wine-quality"), ("boston", "boston-housing")):
        assert datasets.dataset_dir(name, root) == (root / folder).resolve()
    # the old habit: the dataset's own folder, by its name or by the files it holds
    assert datasets.dataset_dir("mnist", tmp_path / "x" / "mnist") == (tmp_path / "x" / "mnist").resolve()
    own = tmp_path / "own"
    own.mkdir()
    (own / "boston_housing.csv").write_text("1\n")
    (own / "train-images-idx3-ubyte.gz").write_bytes(b"")
    assert datasets.dataset_dir("boston", own) == own.resolve()
    assert datasets.dataset_dir("mnist", own) == own.resolve()
    assert datasets.dataset_dir("fashion-mnist", own) == (own / "fashion-mnist").resolve()  # MNIST's file names


def test_unknown_dataset():
    with pytest.raises(DataError, match="unknown dataset 'cifar'; known: mnist, fashion-mnist, wine, boston"):
        datasets.get("cifar")


def test_registry_entries_are_complete():
    for ds in datasets.DATASETS.values():
        assert ds.mirrors and ds.mirrors_env.startswith("GENREG_") and ds.mirrors_env.endswith("_MIRRORS")
        assert ds.licence and ds.citation and ds.homepage.startswith("http")
        if ds.idx is None:
            assert set(ds.files) <= set(NUMBERS_SHA256) and len(ds.columns) in (12, 14)


# ----------------------------------------------------------------------------- tables


def test_numbers_sha256_ignores_formatting():
    a = dl.parse_table("7.4;0.70;0\n1.9;0.076;11\n", 3, "a")[0]
    b = dl.parse_table('"x","y","z"\n7.400000000000000355e+00,0.7,0.0\n1.9 0.076\n11\n', 3, "b")[0]
    assert dl.numbers_sha256(a) == dl.numbers_sha256(b)
    assert dl.numbers_sha256(a) != dl.numbers_sha256(a.reshape(3, 2))  # the shape is part of it
    assert dl.numbers_sha256(a) != dl.numbers_sha256(a + 1e-12)


@pytest.mark.parametrize("text, pattern", [
    ("", "no numbers"),
    ("a header\n1,2,3\n1,2\n", "5 numbers do not make rows of 3 columns"),
    ("1,2,3\n4,five,6\n", "line 2: 'five' is not a number"),
    ("1,2,inf\n", "not finite"),
    ("text\n" * 61, "no table of numbers in the first 60 lines"),
])
def test_parse_table_errors(text, pattern):
    with pytest.raises(DataError, match=pattern):
        dl.parse_table(text, 3, "the download")


def test_upstream_layouts_convert_to_the_reference_copies(data_root):
    """The canonical files written from UCI's and StatLib's layouts are the reference copies (but for CRLFs)."""
    for name, cols, fmt in (("wine-quality/winequality-red.csv", 12, None),
                            ("wine-quality/winequality-white.csv", 12, None),
                            ("boston-housing/boston_housing.csv", 14, "%.18e")):
        ref = (data_root / name).read_text()
        values, _ = dl.parse_table(ref, cols, name)
        assert dl.numbers_sha256(values) == NUMBERS_SHA256[name.split("/")[1]]
        upstream = statlib_text(values) if cols == 14 else uci_wine_text(ref)
        again, rows = dl.parse_table(upstream, cols, name)
        assert dl.canonical_csv(again, rows, fmt) == ref


# ----------------------------------------------------------------------------- status


def test_status_of_real_data(data_root, mnist_dir):
    for name in ("wine", "boston"):
        st = datasets.status(name, data_root)
        assert st.state == "verified" and st.root.rule == "--data-dir", st.files
    st = datasets.status("mnist", mnist_dir.parent)
    assert st.state == "verified" and st.folder == mnist_dir


def test_status_missing_corrupt_and_present(tmp_path, small_boston, monkeypatch):
    root = tmp_path / "root"
    st = datasets.status("boston", root)
    assert st.state == "missing" and st.folder == root / "boston-housing" and not root.exists()
    folder = root / "boston-housing"
    folder.mkdir(parents=True)
    text = dl.canonical_csv(small_boston, [], "%.18e")
    (folder / "boston_housing.csv").write_text(text)
    assert datasets.status("boston", root).state == "verified"
    (folder / "boston_housing.csv").write_text(text.replace("e+01", "e+00", 1))
    st = datasets.status("boston", root)
    assert st.state == "corrupt" and "sha256 of the numbers" in st.problems()[0]
    (folder / "boston_housing.csv").write_text("not,a,table\n")
    assert datasets.status("boston", root).state == "corrupt"
    # uncompressed Fashion-MNIST files have no published checksum: present, not verified
    fashion = root / "fashion-mnist"
    fashion.mkdir()
    for name, data in zip(datasets.FILES, (images_bytes(5), labels_bytes(5), images_bytes(5), labels_bytes(5))):
        (fashion / name).write_bytes(data)
    st = datasets.status("fashion-mnist", root)
    assert st.state == "present" and "no published checksum" in st.files[0][2]
    (fashion / datasets.FILES[1]).write_bytes(b"garbage!")  # not an IDX file: corrupt, though no checksum exists
    st = datasets.status("fashion-mnist", root)
    assert st.state == "corrupt" and datasets.FILES[1] in st.problems()[0]
    # MNIST files that are not the real ones fail their checksum
    (root / "mnist").mkdir()
    for name in datasets.FILES:
        (root / "mnist" / f"{name}.gz").write_bytes(gzip.compress((fashion / name).read_bytes()))
    assert datasets.status("mnist", root).state == "corrupt"
    (root / "mnist" / f"{datasets.FILES[0]}.gz").write_bytes(b"\x1f\x8b not gzip")
    assert "cannot read" in datasets.status("mnist", root).files[0][2]


# ----------------------------------------------------------------------------- downloads


def test_download_wine_and_boston_from_upstream_layouts(server, data_root, tmp_path):
    www, url, requests = server
    (www / "uci").mkdir()
    for name in ("winequality-red.csv", "winequality-white.csv"):
        (www / "uci" / name).write_text(uci_wine_text((data_root / "wine-quality" / name).read_text()))
    (www / "statlib").mkdir()
    boston = dl.parse_table((data_root / "boston-housing" / "boston_housing.csv").read_text(), 14, "ref")[0]
    (www / "statlib" / "boston").write_text(statlib_text(boston))
    root = tmp_path / "fresh"
    lines = []
    st = datasets.download("wine", root, mirrors=[f"{url}/uci/"], log=lines.append)
    assert st.state == "verified" and len(lines) == 2 and "checksum verified" in lines[0]
    st = datasets.download("boston", root, mirrors=f"{url}/statlib")
    assert st.state == "verified"
    assert requests == ["/uci/winequality-red.csv", "/uci/winequality-white.csv", "/statlib/boston"]
    for rel in ("wine-quality/winequality-red.csv", "wine-quality/winequality-white.csv",
                "boston-housing/boston_housing.csv"):  # (the reference wine files end their lines with CRLF)
        assert (root / rel).read_bytes() == (data_root / rel).read_bytes().replace(b"\r\n", b"\n"), rel
    assert sorted(p.name for p in (root / "wine-quality").iterdir()) == ["winequality-red.csv",
                                                                        "winequality-white.csv"]
    # the downloaded files are what the loaders read
    t = load_task("boston", root, seed=1, download=False)
    np.testing.assert_array_equal(t.X_train, load_task("boston", data_root, seed=1).X_train)
    # nothing left to fetch: no request
    assert datasets.download("wine", root, mirrors=[f"{url}/nowhere/"]).state == "verified"
    assert len(requests) == 3


def test_corrupt_mirror_refused_and_next_one_used(server, tmp_path, small_boston):
    www, url, requests = server
    (www / "good").mkdir()
    (www / "good" / "boston").write_text(statlib_text(small_boston))
    (www / "bad").mkdir()
    tampered = small_boston.copy()
    tampered[3, 5] += 0.001
    (www / "bad" / "boston").write_text(statlib_text(tampered))
    root = tmp_path / "root"
    st = datasets.download("boston", root, mirrors=[f"{url}/missing", f"{url}/bad", f"{url}/good"])
    assert st.state == "verified"
    assert requests == ["/missing/boston", "/bad/boston", "/good/boston"]
    values, _ = dl.parse_table((root / "boston-housing" / "boston_housing.csv").read_text(), 14, "x")
    np.testing.assert_array_equal(values, small_boston)


def test_all_mirrors_bad_leaves_nothing(server, tmp_path, small_boston):
    www, url, _ = server
    (www / "bad").mkdir()
    (www / "bad" / "boston").write_text(statlib_text(small_boston[:-1]))  # a row short: other numbers
    root = tmp_path / "a" / "root"
    with pytest.raises(DataError) as info:
        datasets.download("boston", root, mirrors=[f"{url}/bad", "http://127.0.0.1:9/"])
    msg = str(info.value)
    assert "checksum mismatch (sha256 of the 11x14 numbers" in msg and f"{url}/bad/boston" in msg
    assert "127.0.0.1:9/boston" in msg and "genreg data download boston" in msg
    assert str(root / "boston-housing") in msg
    assert not (tmp_path / "a").exists()  # no folder, no partial file


def test_download_replaces_a_corrupt_file(server, tmp_path, small_boston):
    www, url, _ = server
    (www / "good").mkdir()
    (www / "good" / "boston").write_text(statlib_text(small_boston))
    folder = tmp_path / "boston-housing"
    folder.mkdir()
    (folder / "boston_housing.csv").write_text("1,2\n")
    assert datasets.status("boston", tmp_path).state == "corrupt"
    assert datasets.download("boston", tmp_path, mirrors=[f"{url}/good"]).state == "verified"


def test_mirrors_from_environment_and_load_task_downloads(server, tmp_path, small_boston, monkeypatch, capsys):
    www, url, requests = server
    (www / "env").mkdir()
    (www / "env" / "boston").write_text(statlib_text(small_boston))
    monkeypatch.setenv("GENREG_BOSTON_MIRRORS", f"{url}/nowhere, {url}/env")
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "data"))
    with pytest.raises(DataError) as info:
        load_task("boston", download=False)
    assert "from $GENREG_DATA" in str(info.value) and "`genreg data download boston`" in str(info.value)
    assert requests == []
    t = load_task("boston", seed=0)
    assert t.n_inputs == 13 and t.source == str((tmp_path / "data" / "boston-housing" / "boston_housing.csv"))
    assert requests == ["/nowhere/boston", "/env/boston"]
    err = capsys.readouterr().err
    assert "Boston Housing is not in" in err and "downloading it" in err and "checksum verified" in err


def test_download_mnist(server, tmp_path, monkeypatch):
    www, url, requests = server
    content = dict(zip(datasets.FILES, (images_bytes(30, seed=1), labels_bytes(30), images_bytes(10, seed=2),
                                        labels_bytes(10, offset=3))))
    for name, data in content.items():
        monkeypatch.setitem(datasets.SHA256, name, hashlib.sha256(data).hexdigest())
    (www / "m").mkdir()
    for name, data in content.items():
        (www / "m" / f"{name}.gz").write_bytes(gzip.compress(data))
    monkeypatch.setenv("GENREG_MNIST_MIRRORS", f"{url}/m/")
    root = tmp_path / "root"
    (root / "mnist").mkdir(parents=True)
    (root / "mnist" / datasets.FILES[1]).write_bytes(labels_bytes(30, offset=1))  # corrupt, uncompressed
    lines = []
    st = datasets.download("mnist", root, log=lines.append)
    assert st.state == "verified" and len(lines) == 4 and len(requests) == 4
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(f"{n}.gz" for n in datasets.FILES)
