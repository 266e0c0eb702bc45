"""MNIST (genreg.tasks.mnist): real files, loading and its cache, downloads, the data directory, episodes."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest

import genreg.tasks.idx as idx_mod
import genreg.tasks.mnist as mnist_mod
from genreg.errors import DataError
from genreg.tasks import FILES, MNIST, SHA256, EpisodeSampler, load_mnist, read_idx_labels, resolve_data_dir
from helpers import idx_bytes, images_bytes, labels_bytes


TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def synthetic_set(n_train: int = 50, n_test: int = 20) -> dict[str, bytes]:
    """Small valid MNIST-shaped content (decompressed), keyed by file name."""
    return {
        "train-images-idx3-ubyte": images_bytes(n_train, seed=1),
        "train-labels-idx1-ubyte": labels_bytes(n_train),
        "t10k-images-idx3-ubyte": images_bytes(n_test, seed=2),
        "t10k-labels-idx1-ubyte": labels_bytes(n_test, offset=3),
    }


def write_set(directory: Path, content: dict[str, bytes], compress: bool = True) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in content.items():
        if compress:
            (directory / f"{name}.gz").write_bytes(gzip.compress(data))
        else:
            (directory / name).write_bytes(data)


def assert_matches(m: MNIST, content: dict[str, bytes]) -> None:
    assert m.train_images.tobytes() == content["train-images-idx3-ubyte"][16:]
    assert m.train_labels.tobytes() == content["train-labels-idx1-ubyte"][8:]
    assert m.test_images.tobytes() == content["t10k-images-idx3-ubyte"][16:]
    assert m.test_labels.tobytes() == content["t10k-labels-idx1-ubyte"][8:]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("GENREG_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def mnist(mnist_dir):
    """The real data set as ``load_mnist`` caches it when this module first asks for it.

    Overrides the session fixture here: another module may have dropped the session copy from the
    in-process cache (tests/test_tasks_fashion.py clears it), and this module tests that cache.
    """
    return load_mnist(mnist_dir, download=False)


# ----------------------------------------------------------------------------- real data


def test_real_files_shapes_dtypes_counts(mnist, mnist_dir):
    assert mnist.source == mnist_dir
    for arr, shape in [
        (mnist.train_images, (60000, 784)),
        (mnist.train_labels, (60000,)),
        (mnist.test_images, (10000, 784)),
        (mnist.test_labels, (10000,)),
    ]:
        assert arr.shape == shape
        assert arr.dtype == np.uint8
        assert not arr.flags.writeable  # shared through the in-process cache
    assert np.bincount(mnist.train_labels, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(mnist.test_labels, minlength=10).tolist() == TEST_COUNTS
    assert mnist.train_images.max() == 255 and mnist.train_images.min() == 0


def test_real_content_matches_checksum_table(mnist):
    content = {
        "train-images-idx3-ubyte": idx_bytes(0x803, (60000, 28, 28), mnist.train_images.tobytes()),
        "train-labels-idx1-ubyte": idx_bytes(0x801, (60000,), mnist.train_labels.tobytes()),
        "t10k-images-idx3-ubyte": idx_bytes(0x803, (10000, 28, 28), mnist.test_images.tobytes()),
        "t10k-labels-idx1-ubyte": idx_bytes(0x801, (10000,), mnist.test_labels.tobytes()),
    }
    for name, data in content.items():
        assert hashlib.sha256(data).hexdigest() == SHA256[name], name


def test_gz_and_uncompressed_read_identically(mnist, mnist_dir, tmp_path):
    for name in FILES:
        (tmp_path / name).write_bytes(gzip.decompress((mnist_dir / f"{name}.gz").read_bytes()))
    plain = load_mnist(tmp_path, download=False)
    assert plain is not mnist and plain.source == tmp_path.resolve()
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        assert np.array_equal(getattr(plain, field), getattr(mnist, field)), field
    assert np.array_equal(read_idx_labels(tmp_path / FILES[3]), read_idx_labels(mnist_dir / f"{FILES[3]}.gz"))


def test_load_is_cached_in_process(mnist_dir):
    first = load_mnist(mnist_dir, download=False)  # (the session's `mnist` may have left the small cache)
    assert load_mnist(mnist_dir, download=False) is first
    # a data root holding mnist/ resolves to the same directory
    assert load_mnist(mnist_dir.parent, download=False) is first


def test_cache_notices_changed_files(tmp_path):
    write_set(tmp_path, synthetic_set())
    first = load_mnist(tmp_path, download=False)
    assert load_mnist(tmp_path, download=False) is first
    changed = synthetic_set(n_train=30)
    write_set(tmp_path, changed)
    second = load_mnist(tmp_path, download=False)
    assert second is not first and len(second.train_labels) == 30
    assert_matches(second, changed)


# ----------------------------------------------------------------------------- malformed sets


def test_image_label_count_mismatch(tmp_path):
    content = synthetic_set()
    content["train-labels-idx1-ubyte"] = labels_bytes(49)
    write_set(tmp_path, content)
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    msg = str(info.value)
    assert "50 images" in msg and "49 labels" in msg
    assert str(tmp_path.resolve() / "train-images-idx3-ubyte.gz") in msg
    assert str(tmp_path.resolve() / "train-labels-idx1-ubyte.gz") in msg


def test_missing_files_without_download(tmp_path):
    write_set(tmp_path, {k: v for k, v in synthetic_set().items() if k != "t10k-images-idx3-ubyte"})
    with pytest.raises(DataError) as info:
        load_mnist(tmp_path, download=False)
    msg = str(info.value)
    assert str(tmp_path.resolve()) in msg and "t10k-images-idx3-ubyte" in msg
    assert "--data-dir" in msg and "GENREG_DATA" in msg and "genreg data download mnist" in msg


def test_missing_message_names_the_rule_that_chose_the_root(tmp_path, monkeypatch):
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "env"))
    with pytest.raises(DataError) as info:
        load_mnist(download=False)
    msg = str(info.value)
    assert str((tmp_path / "env" / "mnist").resolve()) in msg and "from $GENREG_DATA" in msg
    assert "`genreg data download mnist`" in msg


# ----------------------------------------------------------------------------- directory resolution


def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert resolve_data_dir() == (tmp_path / "home" / ".cache" / "genreg" / "mnist").resolve()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert resolve_data_dir() == (tmp_path / "xdg" / "genreg" / "mnist").resolve()
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "data"))
    assert resolve_data_dir() == (tmp_path / "data" / "mnist").resolve()
    # an explicit data_dir is a data root, whatever $GENREG_DATA says
    assert resolve_data_dir(tmp_path / "explicit") == (tmp_path / "explicit" / "mnist").resolve()
    # the old habit: the MNIST folder itself, named mnist or holding the files
    assert resolve_data_dir(tmp_path / "x" / "mnist") == (tmp_path / "x" / "mnist").resolve()
    write_set(tmp_path / "own", synthetic_set())
    assert resolve_data_dir(tmp_path / "own") == (tmp_path / "own").resolve()
    # a root holding mnist/ with files wins over files of its own
    write_set(tmp_path / "own" / "mnist", synthetic_set())
    assert resolve_data_dir(tmp_path / "own") == (tmp_path / "own" / "mnist").resolve()


# ----------------------------------------------------------------------------- downloads




@pytest.fixture
def synthetic(monkeypatch):
    """Synthetic content whose sha256 the loader is told to expect."""
    content = synthetic_set()
    for name, data in content.items():
        monkeypatch.setitem(mnist_mod.SHA256, name, hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(mnist_mod, "DOWNLOAD_TIMEOUT", 5.0)
    return content


def test_download_into_empty_cache(server, synthetic, tmp_path):
    root, url, requests = server
    write_set(root / "good", synthetic)
    cache = tmp_path / "cache" / "mnist"
    m = load_mnist(cache, mirrors=[f"{url}/good/"])
    assert_matches(m, synthetic)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILES)
    assert len(requests) == 4
    # the cached files read back, without any network
    idx_mod._CACHE.clear()
    assert_matches(load_mnist(cache, download=False), synthetic)


def test_download_mirrors_from_environment(server, synthetic, tmp_path, monkeypatch):
    root, url, requests = server
    write_set(root / "env", synthetic)
    monkeypatch.setenv("GENREG_MNIST_MIRRORS", f"{url}/nowhere, {url}/env")
    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "data"))
    m = load_mnist()
    assert m.source == (tmp_path / "data" / "mnist").resolve()
    assert_matches(m, synthetic)
    assert any(r.startswith("/nowhere/") for r in requests)


def test_corrupt_download_rejected_and_next_mirror_used(server, synthetic, tmp_path):
    root, url, requests = server
    write_set(root / "good", synthetic)
    bad = root / "bad"
    bad.mkdir()
    flipped = bytearray(synthetic["train-images-idx3-ubyte"])
    flipped[100] ^= 0xFF  # valid gzip, valid IDX, wrong content
    (bad / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(bytes(flipped)))
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(synthetic["train-labels-idx1-ubyte"])[:-20])
    root = tmp_path / "cache"
    cache = root / "mnist"  # an empty data root gets its mnist/ folder
    m = load_mnist(root, mirrors=[f"{url}/bad", f"{url}/good"])
    assert "/bad/train-images-idx3-ubyte.gz" in requests and "/bad/train-labels-idx1-ubyte.gz" in requests
    assert_matches(m, synthetic)
    assert m.source == cache.resolve() and sorted(p.name for p in root.iterdir()) == ["mnist"]
    cached = gzip.decompress((cache / "train-images-idx3-ubyte.gz").read_bytes())
    assert cached == synthetic["train-images-idx3-ubyte"]
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{n}.gz" for n in FILES)


def test_corrupt_download_not_cached(server, synthetic, tmp_path):
    root, url, _ = server
    content = dict(synthetic)
    content["t10k-labels-idx1-ubyte"] = labels_bytes(20, offset=4)  # wrong checksum
    write_set(root / "bad", content)
    cache = tmp_path / "cache" / "mnist"
    cache.mkdir(parents=True)
    with pytest.raises(DataError) as info:
        load_mnist(cache, mirrors=[f"{url}/bad"])
    assert "checksum" in str(info.value)
    names = [p.name for p in cache.iterdir()]
    assert "t10k-labels-idx1-ubyte.gz" not in names and "t10k-labels-idx1-ubyte" not in names
    assert not [n for n in names if n.endswith(".part") or n.startswith(".")]


def test_all_mirrors_failing(server, synthetic, tmp_path):
    root, url, requests = server
    cache = tmp_path / "offline" / "mnist"
    with pytest.raises(DataError) as info:
        load_mnist(cache, mirrors=[f"{url}/empty/", "http://127.0.0.1:1/", "not a url"])
    msg = str(info.value)
    assert str(cache.resolve()) in msg
    for name in FILES:
        assert name in msg
    assert "--data-dir" in msg and "GENREG_DATA" in msg
    assert "genreg data download mnist" in msg
    assert requests == ["/empty/train-images-idx3-ubyte.gz"]
    assert not (tmp_path / "offline").exists()  # every folder the download made is gone again

    existing = tmp_path / "existing"  # an existing data root stays, untouched
    existing.mkdir()
    with pytest.raises(DataError):
        load_mnist(existing, mirrors=[f"{url}/empty/"])
    assert existing.is_dir() and not any(existing.iterdir())


# ----------------------------------------------------------------------------- episodes


def test_episode_sampler_balanced_and_deterministic(mnist):
    labels = mnist.train_labels
    sampler = EpisodeSampler(labels, k_per_class=7, seed=11)
    idx = sampler.indices(5)
    assert idx.shape == (70,) and idx.dtype == np.int64 and sampler.episode_size == 70
    assert np.array_equal(labels[idx], np.repeat(np.arange(10), 7))
    for c in range(10):
        assert np.unique(idx[c * 7 : (c + 1) * 7]).size == 7
    assert np.array_equal(EpisodeSampler(labels, 7, seed=11).indices(5), idx)
    assert not np.array_equal(sampler.indices(6), idx)
    assert not np.array_equal(EpisodeSampler(labels, 7, seed=12).indices(5), idx)


def test_episode_sampler_draw_is_fresh_each_call(mnist):
    sampler = EpisodeSampler(mnist.train_labels, k_per_class=3, seed=0)
    first, second = sampler.draw(), sampler.draw()
    assert not np.array_equal(first, second)
    assert np.array_equal(first, sampler.indices(0)) and np.array_equal(second, sampler.indices(1))
    assert sampler.episode == 2


def test_episode_sampler_covers_small_classes():
    labels = np.repeat(np.arange(4), 3)  # 3 examples per class
    sampler = EpisodeSampler(labels, k_per_class=2, seed=0, n_classes=4)
    seen = np.concatenate([sampler.draw() for _ in range(40)])
    assert np.array_equal(np.unique(seen), np.arange(12))
    assert np.array_equal(labels[sampler.indices(0)], [0, 0, 1, 1, 2, 2, 3, 3])
    full = EpisodeSampler(labels, k_per_class=3, seed=0, n_classes=4).indices(9)
    assert np.array_equal(np.sort(full), np.arange(12))


def test_episode_sampler_errors():
    labels = np.array([0, 0, 1, 1, 1, 2])
    with pytest.raises(DataError, match="class 0: 2.*class 2: 1"):
        EpisodeSampler(labels, k_per_class=3, seed=0, n_classes=3)
    with pytest.raises(DataError, match="class 3: 0"):
        EpisodeSampler(labels, k_per_class=1, seed=0, n_classes=4)
    with pytest.raises(DataError, match="0..1"):
        EpisodeSampler(labels, k_per_class=1, seed=0, n_classes=2)
    for k in (0, -1):
        with pytest.raises(ValueError, match="k_per_class"):
            EpisodeSampler(labels, k_per_class=k, seed=0, n_classes=3)
    with pytest.raises(ValueError, match="episode"):
        EpisodeSampler(labels, k_per_class=1, seed=0, n_classes=3).indices(-1)
