"""genreg.tasks.from_arrays, split_rows, and the episode samplers of any task."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import DataError
from genreg.tasks import CLASSIFICATION, REGRESSION, BatchSampler, EpisodeSampler, Task, from_arrays
from genreg.tasks.arrays import split_rows


def blobs(n_per_class=30, n_classes=4, d=3, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = rng.normal(size=(y.size, d)) + y[:, None] * 2.0
    return X, y


# ----------------------------------------------------------------------------- from_arrays


def test_from_arrays_classification():
    X, y = blobs()
    t = from_arrays(X, y, name="blobs", seed=1)
    assert isinstance(t, Task)
    assert (t.name, t.spec, t.kind, t.n_outputs, t.classes) == ("blobs", "", CLASSIFICATION, 4, ())
    assert t.class_name(3) == "3" and t.source == "arrays given from Python"
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (72, 24, 24)
    assert np.bincount(t.y_test).tolist() == [6] * 4  # stratified
    assert t.X_train.dtype == np.float32 and t.y_train.dtype == np.int64
    # the rows and labels stay together
    for Xp, yp in ((t.X_train, t.y_train), (t.X_val, t.y_val)):
        raw = Xp.astype(np.float64) * t.x_std + t.x_mean
        rows = [int(np.argmin(np.abs(X - r).sum(axis=1))) for r in raw]
        assert np.array_equal(yp, y[rows])
    again = from_arrays(X, y, name="blobs", seed=1)
    assert np.array_equal(again.X_val, t.X_val)


def test_from_arrays_string_labels_and_regression():
    X, y = blobs(n_classes=3)
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    t = from_arrays(X, names)
    assert t.classes == ("setosa", "versicolor", "virginica") and t.n_outputs == 3
    assert "strings" in t.describe()
    target = X @ np.array([1.0, 2.0, 3.0])
    r = from_arrays(X, target)
    assert (r.kind, r.n_outputs, r.y_train.shape) == (REGRESSION, 1, (54, 1))
    two = from_arrays(X, np.stack([target, -target], axis=1))
    assert two.n_outputs == 2 and two.y_val.shape == (18, 2)
    assert np.allclose(two.y_train.std(axis=0), 1, atol=1e-5)


def test_from_arrays_kind_override_and_given_parts():
    X, y = blobs(n_classes=2)
    t = from_arrays(X, y.astype(np.float64), kind="classification")
    assert t.kind == CLASSIFICATION and t.n_outputs == 2
    with pytest.raises(DataError, match="whole numbers"):
        from_arrays(X, y + 0.5, kind="classification")
    r = from_arrays(X, y, kind="regression")
    assert r.kind == REGRESSION and r.y_train.dtype == np.float32
    g = from_arrays(X[:40], y[:40], X_val=X[40:50], y_val=y[40:50], X_test=X[50:], y_test=y[50:])
    assert (len(g.y_train), len(g.y_val), len(g.y_test)) == (40, 10, 10)
    assert np.allclose(g.x_mean, X[:40].mean(axis=0))
    with pytest.raises(DataError, match="y_test is given without X_test"):
        from_arrays(X, y, y_test=y[:3])
    with pytest.raises(DataError, match="kind must be"):
        from_arrays(X, y, kind="ranking")


def test_from_arrays_pixels_only_when_every_part_is_uint8():
    X = np.random.default_rng(0).integers(0, 256, size=(40, 2, 3), dtype=np.uint8)
    y = np.arange(40) % 2
    t = from_arrays(X, y)
    assert t.X_train.dtype == np.uint8 and t.input_shape == (2, 3) and t.x_mean is None
    assert np.array_equal(Task.as_float(t.X_val), t.X_val / np.float32(255))
    mixed = from_arrays(X[:30], y[:30], X_val=X[30:].astype(np.int64), y_val=y[30:])
    assert mixed.X_train.dtype == np.float32 and mixed.x_mean.shape == (6,)


def test_from_arrays_one_feature_and_errors():
    t = from_arrays(np.linspace(0, 1, 20), np.linspace(0, 1, 20) ** 2)
    assert t.n_inputs == 1 and t.kind == REGRESSION
    with pytest.raises(DataError, match="Python objects"):
        from_arrays(np.array([[None]] * 5, dtype=object), np.zeros(5))
    with pytest.raises(DataError, match="scalar"):
        from_arrays(np.float64(3.0), np.zeros(1))
    with pytest.raises(DataError, match="2 rows are too few"):
        from_arrays(np.zeros((2, 2)), np.zeros(2))
    with pytest.raises(DataError, match=r"y_val must be 1-D"):
        from_arrays(np.zeros((9, 2)), np.zeros(9, int), X_val=np.zeros((3, 2)), y_val=np.zeros((3, 2), int))


# ----------------------------------------------------------------------------- split_rows


def test_split_rows_disjoint_cover_and_stratified():
    labels = np.repeat([0, 1, 2], [50, 20, 3])
    train, val, test = split_rows(labels.size, 7, labels)
    assert np.array_equal(np.sort(np.concatenate([train, val, test])), np.arange(labels.size))
    assert np.bincount(labels[val], minlength=3).tolist() == [10, 4, 1]
    assert np.bincount(labels[test], minlength=3).tolist() == [10, 4, 1]
    assert np.bincount(labels[train], minlength=3).tolist() == [30, 12, 1]  # every class keeps a training row
    again = split_rows(labels.size, 7, labels)
    assert all(np.array_equal(a, b) for a, b in zip(again, (train, val, test)))
    other = split_rows(labels.size, 8, labels)
    assert not np.array_equal(other[1], val)
    tr, va, te = split_rows(10, 0)
    assert (tr.size, va.size, te.size) == (6, 2, 2) and te.dtype == np.int64
    tr, va, te = split_rows(10, 0, val_fraction=0.2, test_fraction=0.0)
    assert (tr.size, va.size, te.size) == (8, 2, 0)


# ----------------------------------------------------------------------------- samplers


def test_sampler_balanced_for_many_classes():
    X, y = blobs(n_per_class=10, n_classes=26)
    t = from_arrays(X, y)
    sampler = t.sampler(samples_per_class=4, seed=2)
    assert isinstance(sampler, EpisodeSampler) and sampler.n_classes == 26 and sampler.episode_size == 104
    for episode in (0, 5):
        assert np.array_equal(t.y_train[sampler.indices(episode)], np.repeat(np.arange(26), 4))
    assert not np.array_equal(sampler.indices(0), sampler.indices(1))


def test_regression_sampler_is_a_batch_sampler():
    X, y = blobs()
    t = from_arrays(X, X[:, 0] * 3.0)
    sampler = t.sampler(samples_per_class=8, seed=4)
    assert isinstance(sampler, BatchSampler) and sampler.episode_size == 8
    assert np.array_equal(sampler.indices(3), BatchSampler(len(t.y_train), 8, 4).indices(3))


def test_batch_sampler_deterministic():
    a, b = BatchSampler(100, 10, seed=3), BatchSampler(100, 10, seed=3)
    for episode in range(5):
        idx = a.indices(episode)
        assert np.array_equal(idx, b.indices(episode))
        assert idx.dtype == np.int64 and idx.shape == (10,)
        assert np.array_equal(idx, np.unique(idx)) and idx.min() >= 0 and idx.max() < 100
    assert not np.array_equal(a.indices(0), a.indices(1))
    assert not np.array_equal(a.indices(0), BatchSampler(100, 10, seed=4).indices(0))
    capped = BatchSampler(6, 50, seed=0)
    assert capped.episode_size == 6 and np.array_equal(capped.indices(2), np.arange(6))
    with pytest.raises(ValueError):
        BatchSampler(10, 0, seed=0)


# ----------------------------------------------------------------------------- labels, and messages listing classes


def test_from_arrays_labels_from_one_are_two_classes():
    X, y = blobs(n_classes=2)
    t = from_arrays(X, y + 1)
    assert (t.n_outputs, t.classes) == (2, ("1", "2"))
    base = from_arrays(X, y)  # labels 0..k-1: unchanged, no names
    assert (base.n_outputs, base.classes) == (2, ())
    assert np.array_equal(t.y_train, base.y_train) and np.array_equal(t.X_test, base.X_test)
    t.sampler(samples_per_class=10, seed=0)


def test_from_arrays_sparse_labels_and_given_parts_share_classes():
    X, y = blobs(n_classes=3)
    labels = np.array([0, 1_000_000, 7])[y]
    t = from_arrays(X[:60], labels[:60], X_test=X[60:], y_test=labels[60:], kind="classification")
    assert (t.n_outputs, t.classes) == (3, ("0", "7", "1000000"))
    assert [t.classes[c] for c in t.y_test] == [str(v) for v in labels[60:]]


def test_from_arrays_single_class_refused():
    X, _ = blobs(n_classes=2)
    with pytest.raises(DataError, match=r"arrays: every label in y is '1'; a classification task needs at least 2"):
        from_arrays(X, np.ones(len(X), int))


def test_too_few_message_is_capped():
    labels = np.arange(5000)  # one example each of 5,000 classes
    with pytest.raises(DataError) as info:
        EpisodeSampler(labels, k_per_class=2, seed=0, n_classes=1_000_001)
    msg = str(info.value)
    assert len(msg) < 600 and "class 0: 1, class 1: 1" in msg and "and 999991 more classes" in msg
    assert "every class needs training examples" in msg
