"""Fashion-MNIST: download from (local) mirrors, checksum refusal, loading as a task, its data folder."""

from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pytest

import genreg.tasks.idx as idx_mod
import genreg.tasks.mnist as mnist_mod
from genreg.errors import DataError
from genreg.tasks import CLASSIFICATION, FASHION_CLASSES, FILES, load_fashion_mnist, load_task
from genreg.tasks.mnist import FASHION_GZ_MD5, FASHION_GZ_SHA256, FASHION_MIRRORS, resolve_fashion_dir

N_TRAIN, N_TEST = 30, 10


def idx_bytes(magic: int, dims, payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims) + payload


def synthetic() -> dict[str, bytes]:
    """Small valid Fashion-MNIST-shaped content (decompressed), keyed by file name."""
    rng = np.random.default_rng(9)

    def images(n):
        return idx_bytes(0x803, (n, 28, 28), rng.integers(0, 256, n * 784, dtype=np.uint8).tobytes())

    def labels(n, offset):
        return idx_bytes(0x801, (n,), ((np.arange(n) + offset) % 10).astype(np.uint8).tobytes())

    return dict(zip(FILES, (images(N_TRAIN), labels(N_TRAIN, 0), images(N_TEST), labels(N_TEST, 4))))




@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("GENREG_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mnist_mod, "DOWNLOAD_TIMEOUT", 5.0)


@pytest.fixture
def published(monkeypatch):
    """Synthetic content, its .gz files, and the loader told that these .gz files are the published ones."""
    content = synthetic()
    gz = {name: gzip.compress(data, mtime=0) for name, data in content.items()}
    for name, data in gz.items():
        monkeypatch.setitem(FASHION_GZ_SHA256, name, hashlib.sha256(data).hexdigest())
        monkeypatch.setitem(FASHION_GZ_MD5, name, hashlib.md5(data).hexdigest())
    return content, gz


def serve(directory, files: dict[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (directory / f"{name}.gz").write_bytes(data)


# ----------------------------------------------------------------------------- downloading


def test_download_and_load_as_task(server, published, tmp_path, monkeypatch):
    root, url, requests = server
    content, gz = published
    serve(root / "good", gz)
    monkeypatch.setenv("GENREG_FASHION_MNIST_MIRRORS", f"{url}/good/")
    data_root = tmp_path / "data"
    t = load_task("fashion-mnist", data_root, validation_size=6, seed=3)
    folder = data_root / "fashion-mnist"
    assert sorted(p.name for p in folder.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert all((folder / f"{n}.gz").read_bytes() == gz[n] for n in FILES)  # kept as downloaded
    assert sorted(requests) == sorted(f"/good/{n}.gz" for n in FILES)
    assert (t.name, t.spec, t.kind, t.n_outputs, t.input_shape) == ("fashion-mnist", "fashion-mnist",
                                                                     CLASSIFICATION, 10, (28, 28))
    assert t.classes == FASHION_CLASSES and t.class_name(9) == "Ankle boot" and t.class_name(0) == "T-shirt/top"
    assert t.source == str(folder.resolve())
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (24, 6, 10)
    assert t.X_train.dtype == np.uint8 and t.y_train.dtype == np.int64
    # validation: split_validation(6, seed=0) of the training file, whatever the run's seed
    images = np.frombuffer(content[FILES[0]][16:], dtype=np.uint8).reshape(N_TRAIN, 784)
    labels = np.frombuffer(content[FILES[1]][8:], dtype=np.uint8)
    val_idx = np.sort(np.random.default_rng(0).permutation(N_TRAIN)[:6])
    assert np.array_equal(t.X_val, images[val_idx]) and np.array_equal(t.y_val, labels[val_idx])
    assert np.array_equal(t.X_test, np.frombuffer(content[FILES[2]][16:], dtype=np.uint8).reshape(N_TEST, 784))
    assert np.array_equal(t.y_test, (np.arange(N_TEST) + 4) % 10)
    # the downloaded files read back without any network
    kept = dict(idx_mod._CACHE)  # other tests' loaded data sets stay cached
    idx_mod._CACHE.clear()
    again = load_task("fashion-mnist", data_root, validation_size=6, download=False)
    idx_mod._CACHE.update(kept)
    assert np.array_equal(again.X_train, t.X_train) and len(requests) == 4


def test_default_validation_size_needs_enough_images(server, published, tmp_path):
    root, url, _ = server
    serve(root / "good", published[1])
    load_fashion_mnist(tmp_path, mirrors=[f"{url}/good"])
    with pytest.raises(DataError, match="fashion-mnist: validation_size 10000"):
        load_task("fashion-mnist", tmp_path, download=False)


@pytest.mark.parametrize("which", ["content", "md5"])
def test_checksum_mismatch_refused(server, published, tmp_path, monkeypatch, which):
    root, url, requests = server
    content, gz = published
    bad = dict(gz)
    if which == "content":  # valid gzip of a valid IDX file, wrong images
        flipped = bytearray(content[FILES[2]])
        flipped[500] ^= 0xFF
        bad[FILES[2]] = gzip.compress(bytes(flipped), mtime=0)
    else:  # the sha256 matches, the published md5 does not
        monkeypatch.setitem(FASHION_GZ_MD5, FILES[2], "0" * 32)
    serve(root / "bad", bad)
    cache = tmp_path / "cache"
    with pytest.raises(DataError) as info:
        load_fashion_mnist(cache, mirrors=[f"{url}/bad"])
    msg = str(info.value)
    assert "checksum mismatch" in msg and ("md5" in msg if which == "md5" else "sha256" in msg)
    assert f"{url}/bad/{FILES[2]}.gz" in msg and "Fashion-MNIST files missing" in msg
    assert msg.count("checksum mismatch") == 1  # one clear error, for the one bad file
    folder = cache / "fashion-mnist"
    names = sorted(p.name for p in folder.iterdir())
    assert f"{FILES[2]}.gz" not in names and not [n for n in names if n.startswith(".")]


def test_next_mirror_after_a_bad_one(server, published, tmp_path, monkeypatch):
    root, url, requests = server
    content, gz = published
    serve(root / "good", gz)
    serve(root / "bad", {FILES[0]: gzip.compress(content[FILES[0]][:-1], mtime=0)})
    monkeypatch.setenv("GENREG_FASHION_MNIST_MIRRORS", f"{url}/bad,{url}/good")
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "env-root"))
    data = load_fashion_mnist()
    assert data.source == (tmp_path / "env-root" / "fashion-mnist").resolve()
    assert f"/bad/{FILES[0]}.gz" in requests and f"/good/{FILES[0]}.gz" in requests
    assert np.array_equal(data.test_labels, (np.arange(N_TEST) + 4) % 10)


def test_all_mirrors_failing(server, tmp_path):
    root, url, _ = server
    cache = tmp_path / "offline"
    with pytest.raises(DataError) as info:
        load_fashion_mnist(cache, mirrors=[f"{url}/empty", "http://127.0.0.1:1/"])
    msg = str(info.value)
    assert str((cache / "fashion-mnist").resolve()) in msg and "--data-dir" in msg and "holding fashion-mnist/" in msg
    assert "`genreg data download fashion-mnist`" in msg
    assert not (cache / "fashion-mnist").exists()


# ----------------------------------------------------------------------------- the data folder


def test_fashion_folder_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_fashion_dir() == (tmp_path / "home" / ".cache" / "genreg" / "fashion-mnist").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_fashion_dir() == (tmp_path / "xdg" / "genreg" / "fashion-mnist").resolve()
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "data"))
    assert resolve_fashion_dir() == (tmp_path / "data" / "fashion-mnist").resolve()
    assert resolve_fashion_dir(tmp_path / "root") == (tmp_path / "root" / "fashion-mnist").resolve()
    assert resolve_fashion_dir(tmp_path / "x" / "fashion-mnist") == (tmp_path / "x" / "fashion-mnist").resolve()


def test_mnist_files_in_the_root_are_not_fashion(published, tmp_path):
    content, gz = published
    serve(tmp_path, gz)  # IDX files right in the data root (where an MNIST folder could put them)
    with pytest.raises(DataError, match="Fashion-MNIST files missing"):
        load_task("fashion-mnist", tmp_path, download=False)
    serve(tmp_path / "fashion-mnist", gz)
    assert len(load_task("fashion-mnist", tmp_path, validation_size=5, download=False).y_test) == N_TEST


def test_published_checksums_and_mirrors():
    assert FASHION_MIRRORS == (
        "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
        "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    )
    for name in FILES:
        assert len(FASHION_GZ_MD5[name]) == 32 and len(FASHION_GZ_SHA256[name]) == 64
    assert FASHION_CLASSES == ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                               "Sneaker", "Bag", "Ankle boot")
