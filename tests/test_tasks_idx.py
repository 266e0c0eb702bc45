"""IDX files and image sets (genreg.tasks.idx): malformed and corrupt files, splits, to_float."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from genreg.errors import DataError, GenregError
from genreg.tasks import Split, read_idx_images, read_idx_labels, to_float
from helpers import idx_bytes, images_bytes, labels_bytes


# ----------------------------------------------------------------------------- malformed files

BAD_FILES = {
    # case: (reader, content, words expected in the message)
    "wrong magic": (read_idx_images, idx_bytes(0x903, (2, 28, 28), bytes(2 * 784)), "magic"),
    "labels read as images": (read_idx_images, labels_bytes(5), "dimensions"),
    "wrong number of dims": (read_idx_labels, idx_bytes(0x802, (2, 3), bytes(6)), "dimensions"),
    "wrong image dims": (read_idx_images, images_bytes(3, 20, 20), "20x20"),
    "truncated data": (read_idx_images, images_bytes(3)[:-1], "truncated"),
    "truncated labels": (read_idx_labels, labels_bytes(10)[:-4], "truncated"),
    "truncated header": (read_idx_images, images_bytes(3)[:10], "truncated header"),
    "trailing bytes": (read_idx_images, images_bytes(3) + b"\x00", "trailing"),
    "trailing label bytes": (read_idx_labels, labels_bytes(10) + b"xyz", "trailing"),
    "label out of range": (read_idx_labels, idx_bytes(0x801, (4,), bytes([1, 2, 10, 3])), "label 10 at index 2"),
    "no images": (read_idx_images, idx_bytes(0x803, (0, 28, 28), b""), "no images"),
    "empty file": (read_idx_labels, b"", "empty"),
}


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_raises_data_error_naming_file(tmp_path, case, compress):
    reader, content, words = BAD_FILES[case]
    path = tmp_path / ("bad-file-idx.gz" if compress else "bad-file-idx")
    path.write_bytes(gzip.compress(content) if compress else content)
    with pytest.raises(DataError) as info:
        reader(path)
    assert str(path) in str(info.value)
    assert words in str(info.value)


@pytest.mark.parametrize(
    "make",
    [
        lambda good: good[: len(good) // 2],  # truncated gzip stream
        lambda good: good[:-8] + bytes(8),  # bad CRC / length trailer
        lambda good: good[:10] + bytes(b ^ 0xFF for b in good[10:40]) + good[40:],  # garbled deflate data
        lambda good: b"this is not gzip at all",  # .gz name, no gzip header
        lambda good: b"",  # empty .gz file
    ],
    ids=["truncated", "crc", "garbled", "not-gzip", "empty"],
)
def test_corrupt_gzip_raises_data_error(tmp_path, make):
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(make(gzip.compress(labels_bytes(2000))))
    with pytest.raises(DataError) as info:
        read_idx_labels(path)
    assert str(path) in str(info.value)
    assert isinstance(info.value, GenregError)


# ----------------------------------------------------------------------------- splits


def test_validation_split(mnist):
    train, val = mnist.split_validation(n_val=10000, seed=3)
    assert isinstance(train, Split) and (len(train), len(val)) == (50000, 10000)
    assert train.images.shape == (50000, 784) and val.images.dtype == np.uint8
    assert np.intersect1d(train.indices, val.indices).size == 0
    assert np.array_equal(np.union1d(train.indices, val.indices), np.arange(60000))
    # drawn from the training set (rows and labels), never the test set
    assert np.array_equal(val.images, mnist.train_images[val.indices])
    assert np.array_equal(val.labels, mnist.train_labels[val.indices])
    assert np.array_equal(train.labels, mnist.train_labels[train.indices])
    assert np.bincount(val.labels, minlength=10).min() > 800
    again_train, again_val = mnist.split_validation(n_val=10000, seed=3)
    assert np.array_equal(again_val.indices, val.indices) and np.array_equal(again_train.images, train.images)
    _, other = mnist.split_validation(n_val=10000, seed=4)
    assert not np.array_equal(other.indices, val.indices)
    small_train, small_val = mnist.split_validation(n_val=100, seed=3)
    assert (len(small_train), len(small_val)) == (59900, 100)
    for bad in (0, 60000, -5):
        with pytest.raises(ValueError):
            mnist.split_validation(n_val=bad)


def test_test_split_is_the_test_set(mnist):
    test = mnist.test
    assert test.images is mnist.test_images and test.labels is mnist.test_labels and len(test) == 10000


def test_to_float():
    x = np.array([[[0, 1], [128, 255]]], dtype=np.uint8)
    y = to_float(x)
    assert y.dtype == np.float32 and y.shape == (1, 2, 2)
    assert np.array_equal(y, x.astype(np.float32) / np.float32(255))
    assert y[0, 1, 1] == 1.0 and y[0, 0, 0] == 0.0
