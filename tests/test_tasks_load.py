"""genreg.tasks.load_task: the built-in specs on the real data, and refused specs."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import DataError, GenregError
from genreg.tasks import (
    CLASSIFICATION,
    KNOWN_SPECS,
    REGRESSION,
    BatchSampler,
    EpisodeSampler,
    Task,
    load_task,
    tabular,
)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    for var in ("GENREG_DATA", "XDG_CACHE_HOME"):
        monkeypatch.delenv(var, raising=False)


# ----------------------------------------------------------------------------- MNIST


@pytest.fixture(scope="module")
def mnist_task(mnist_dir):
    return load_task("mnist", mnist_dir, download=False)


def test_mnist_task_shapes_and_kind(mnist_task, mnist_dir):
    t = mnist_task
    assert isinstance(t, Task)
    assert (t.name, t.spec, t.kind, t.n_outputs, t.n_inputs) == ("mnist", "mnist", CLASSIFICATION, 10, 784)
    assert t.input_shape == (28, 28) and t.loss == "nll" and t.is_classification
    assert t.classes == tuple("0123456789") and t.class_name(7) == "7"
    assert t.source == str(mnist_dir)
    for X, y, n in ((t.X_train, t.y_train, 50000), (t.X_val, t.y_val, 10000), (t.X_test, t.y_test, 10000)):
        assert X.shape == (n, 784) and X.dtype == np.uint8
        assert y.shape == (n,) and y.dtype == np.int64
    assert t.x_mean is None and t.x_std is None  # pixels are not standardised
    assert t.describe() == "mnist: 784 inputs, 10 classes; 50000 train / 10000 validation / 10000 test"


def test_mnist_task_validation_is_split_validation_seed_0(mnist_task, mnist):
    train, val = mnist.split_validation(10000, seed=0)
    assert np.array_equal(mnist_task.X_val, val.images) and np.array_equal(mnist_task.y_val, val.labels)
    assert np.array_equal(mnist_task.X_train, train.images) and np.array_equal(mnist_task.y_train, train.labels)
    assert np.array_equal(mnist_task.X_test, mnist.test_images)
    assert np.array_equal(mnist_task.y_test, mnist.test_labels)
    # the run's seed does not move the validation split
    other = load_task("mnist", mnist.source, seed=7, download=False)
    assert np.array_equal(other.y_val, mnist_task.y_val) and np.array_equal(other.X_val, mnist_task.X_val)


def test_mnist_task_validation_size(mnist, mnist_dir):
    t = load_task("mnist", mnist_dir, validation_size=2500, download=False)
    train, val = mnist.split_validation(2500, seed=0)
    assert (len(t.y_train), len(t.y_val), len(t.y_test)) == (57500, 2500, 10000)
    assert np.array_equal(t.X_val, val.images) and np.array_equal(t.y_train, train.labels)
    with pytest.raises(DataError, match="validation_size 60000"):
        load_task("mnist", mnist_dir, validation_size=60000, download=False)


def test_mnist_task_from_data_root_and_environment(mnist_dir, monkeypatch):
    t = load_task("MNIST", mnist_dir.parent, download=False)  # a data root holding mnist/; names ignore case
    assert t.spec == "mnist" and len(t.y_train) == 50000
    monkeypatch.setenv("GENREG_DATA", str(mnist_dir.parent))
    assert len(load_task("mnist", download=False).y_val) == 10000


def test_mnist_task_sampler_is_balanced(mnist_task):
    sampler = mnist_task.sampler(samples_per_class=3, seed=5)
    assert isinstance(sampler, EpisodeSampler) and sampler.episode_size == 30
    idx = sampler.indices(2)
    assert np.array_equal(mnist_task.y_train[idx], np.repeat(np.arange(10), 3))
    assert np.array_equal(mnist_task.sampler(3, seed=5).indices(2), idx)


def test_mnist_missing_without_download(tmp_path):
    with pytest.raises(DataError, match="MNIST files missing"):
        load_task("mnist", tmp_path, download=False)


# ----------------------------------------------------------------------------- tabular


@pytest.mark.parametrize("spec, make", [
    ("wine", lambda root, seed: tabular.load_wine(root, color="red", seed=seed, val_fraction=0.2, test_fraction=0.2)),
    ("wine-white", lambda root, seed: tabular.load_wine(root, color="white", seed=seed, val_fraction=0.2,
                                                        test_fraction=0.2)),
    ("boston", lambda root, seed: tabular.load_boston(root, seed=seed, val_fraction=0.2, test_fraction=0.2)),
    ("trig", lambda root, seed: tabular.make_trig(seed=seed, val_fraction=0.2, test_fraction=0.2)),
])
@pytest.mark.parametrize("seed", [0, 3])
def test_tabular_tasks_equal_tabular_splits(data_root, spec, make, seed):
    t = load_task(spec, data_root, seed=seed)
    s = make(data_root, seed)
    assert (t.kind, t.spec, t.name, t.n_outputs, t.loss) == (REGRESSION, spec, s.name, 1, "mse")
    for name in ("X_train", "y_train", "X_val", "y_val", "X_test", "y_test", "x_mean", "x_std", "y_mean", "y_std"):
        assert np.array_equal(getattr(t, name), getattr(s, name)), name
    assert t.feature_names == s.feature_names and t.source == s.source
    assert t.X_train.dtype == np.float32 and t.y_train.shape == (len(t.X_train), 1)
    assert np.array_equal(t.targets_to_raw(t.y_val), s.targets_to_raw(s.y_val))


def test_tabular_task_values(data_root):
    t = load_task("boston", data_root, seed=0)
    assert (len(t.y_train), len(t.y_val), len(t.y_test), t.n_inputs) == (304, 101, 101, 13)
    assert t.target == "MEDV" and "of 'MEDV'" in t.describe()
    # standardised from the training rows: train mean 0 / std 1, raw MEDV in $1000s between 5 and 50
    assert np.allclose(t.X_train.mean(axis=0), 0, atol=1e-5) and np.allclose(t.y_train.std(), 1, atol=1e-5)
    raw = t.targets_to_raw(np.concatenate([t.y_train, t.y_val, t.y_test]))
    assert raw.min() == pytest.approx(5.0) and raw.max() == pytest.approx(50.0)
    sampler = t.sampler(samples_per_class=16, seed=1)
    assert isinstance(sampler, BatchSampler) and sampler.episode_size == 16


def test_trig_needs_no_data(tmp_path):
    t = load_task("trig", seed=2)
    assert t.n_inputs == 1 and len(t.y_train) == 1200
    assert np.array_equal(t.y_mean, [0.0]) and np.array_equal(t.y_std, [1.0])  # the target is cos itself


# ----------------------------------------------------------------------------- refused specs


@pytest.mark.parametrize("spec", ["cifar", "mnist2", "", "   "])
def test_unknown_spec_lists_known(spec):
    with pytest.raises(DataError) as info:
        load_task(spec)
    assert isinstance(info.value, GenregError)
    for known in KNOWN_SPECS:
        assert known in str(info.value)


def test_file_without_prefix_gets_a_hint():
    with pytest.raises(DataError, match=r"csv:PATH or npz:PATH"):
        load_task("my-data.csv")
    with pytest.raises(DataError, match=r"file after the colon"):
        load_task("npz:")


def test_target_and_kind_only_where_they_apply(data_root):
    with pytest.raises(DataError, match="csv: tasks only"):
        load_task("trig", target="cos")
    with pytest.raises(DataError, match="trig is regression"):
        load_task("trig", kind="classification")
    with pytest.raises(DataError, match="kind must be"):
        load_task("trig", kind="ranking")
    assert load_task("trig", kind="regression").kind == REGRESSION
