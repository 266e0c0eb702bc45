"""Architecture search on ConvNets: fixed conv stages in front of the searched dense layers, conv tensors inherited
whole by weight-merge crossover, a tiny MNIST search, its saved model, refusals."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.errors import ConfigError
from genreg.hpo.config import hpo_from_mapping
from genreg.hpo.data import search_task
from genreg.hpo.merge import merge_weights
from genreg.hpo.model import load_model
from genreg.hpo.search import resume_hpo, run_hpo
from genreg.hpo.strategy import make_layout
from genreg.hpo.traits import Traits
from genreg.network.layout import Layout

SEARCH = {"task": "mnist", "conv": "c5x4-p2-c3x8-p2", "population": 4, "generations": 2, "epochs": 2,
          "mnist_train": 1000, "mnist_val": 300, "merge": True, "width_max": 32, "layers_max": 2,
          "lr_min": 0.02, "lr_max": 0.1, "dropout_max": 0.1}


def test_conv_is_a_checked_key():
    assert hpo_from_mapping({"task": "mnist", "conv": "c5x8-p2"}).conv == "c5x8-p2"
    assert hpo_from_mapping({}).conv == ""
    for mapping, message in (({"task": "mnist", "conv": "c5"}, "conv = 'c5'"),
                             ({"task": "trig", "conv": "c3x4"}, "needs an image task (mnist, fashion-mnist or npz: images), not trig")):
        with pytest.raises(ConfigError) as exc:
            hpo_from_mapping(mapping)
        assert message in str(exc.value) and "\n" not in str(exc.value)


def test_merge_takes_the_convolutions_whole_from_one_parent():
    a = Layout.parse("12x12x2-c3x4-p2-c3x3-9-3", "relu")
    b = Layout.parse("12x12x2-c3x4-p2-c3x3-5-4-3", "relu")
    child = Layout.parse("12x12x2-c3x4-p2-c3x3-7-3", "relu")
    rng = np.random.default_rng(0)
    ra, rb = (rng.normal(size=L.n_params).astype(np.float32) for L in (a, b))
    conv = child.tensor("W0").offset
    assert conv == a.tensor("W0").offset == b.tensor("W0").offset
    for which, row in ((0, ra), (1, rb)):
        merged = merge_weights(child, [(a, ra), (b, rb)], conv_from=which)
        np.testing.assert_array_equal(merged[:conv], row[:conv])
    # the dense layers merge as for MLPs: the same as merging the dense parts alone
    dense = lambda L: Layout(L.sizes, "relu")  # noqa: E731
    expected = merge_weights(dense(child), [(dense(a), ra[conv:]), (dense(b), rb[conv:])])
    np.testing.assert_array_equal(merge_weights(child, [(a, ra), (b, rb)])[conv:], expected)
    other = Layout.parse("12x12x2-c3x5-p2-c3x3-9-3", "relu")
    with pytest.raises(ConfigError, match="convolution stages must be the same"):
        merge_weights(child, [(a, ra), (other, np.zeros(other.n_params, np.float32))])


def test_a_tiny_mnist_convnet_search(tmp_path, mnist_dir):
    cfg = hpo_from_mapping(SEARCH)
    task = search_task(cfg, mnist_dir.parent)
    assert task.input_shape == (28, 28)
    traits = Traits(2, 32, 0.5, 32, 0.05, 0.9, 0.0, 0.0)
    assert make_layout(traits, task, cfg).shape_name() == "28x28x1-c5x4-p2-c3x8-p2-32-22-10"
    res = run_hpo(cfg, tmp_path / "search", task=task)
    assert res.best.layout.is_conv and res.best.layout.stages == Layout.parse("28x28x1-c5x4-p2-c3x8-p2-10").stages
    assert res.best.metric > 0.5 and res.test_metric > 0.5  # accuracy, chance is 0.1
    children = [ind for ind in res.population if ind.generation == 1]
    assert children and all(ind.merged for ind in children)
    model = load_model(tmp_path / "search" / "best_model.h5")
    assert model.layout.to_dict() == res.best.layout.to_dict()
    raw = (task.X_test[:50] * 255).astype(np.float64)  # the saved model reads raw pixels
    assert np.mean(np.argmax(model.predict(raw), axis=1) == task.y_test[:50]) > 0.5
    resumed = resume_hpo(tmp_path / "search", {"generations": 3}, task=task)
    assert resumed.generations_run == 3


def test_a_conv_search_on_tabular_npz_data_is_refused_before_writing(tmp_path):
    path = tmp_path / "flat.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X_train=rng.random((40, 6)), y_train=rng.integers(0, 2, 40), X_test=rng.random((10, 6)),
             y_test=rng.integers(0, 2, 10))
    cfg = hpo_from_mapping({"task": f"npz:{path}", "conv": "c3x4", "population": 4, "generations": 1})
    with pytest.raises(ConfigError, match="needs image inputs"):
        run_hpo(cfg, tmp_path / "search")
    assert not (tmp_path / "search").exists()
