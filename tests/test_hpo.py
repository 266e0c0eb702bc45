"""Architecture / hyper-parameter search: config, traits, GA mechanics, determinism, convergence, CLI."""

import csv
import json
import math
import sys
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest

from genreg.cli.main import main
from genreg.config import load_toml
from genreg.errors import CheckpointError, ConfigError
from genreg.hpo.rundir import EVAL_COLUMNS, Individual
from genreg.hpo.search import evaluate_fitness, run_hpo, search_metric
from genreg.hpo.strategy import breed_children, fresh_row, make_layout, rank
from genreg.hpo.config import HPOConfig, hpo_from_mapping
from genreg.hpo.model import load_model, predict_angle
from genreg.hpo.data import search_task as load_task
from genreg.hpo.merge import merge_weights
from genreg.hpo.traits import (
    TRAITS,
    Traits,
    breed,
    draw_trait,
    make_gene_store,
    mutate,
    random_traits,
    trait_ranges,
)

TINY = {"task": "trig", "population": 4, "generations": 3, "epochs": 4, "trig_samples": 300}


def tiny(**changes) -> HPOConfig:
    return hpo_from_mapping({**TINY, **changes})


@pytest.fixture(scope="module")
def trig_task():
    return load_task(tiny())


# ----------------------------------------------------------------------------- config


def test_config_defaults_validate_and_toml_round_trip(tmp_path):
    cfg = HPOConfig().validate()
    assert cfg.resolved_metric() == "mse" and math.isnan(cfg.target)
    assert hpo_from_mapping({"task": "mnist"}).resolved_metric() == "accuracy"
    assert hpo_from_mapping({"task": "wine"}).resolved_metric() == "mae"
    path = tmp_path / "c.toml"
    path.write_text(replace(cfg, task="boston", merge=True, target=2.5).to_toml())
    again = hpo_from_mapping(load_toml(path))
    assert again == replace(cfg, task="boston", merge=True, target=2.5)
    path.write_text(cfg.to_toml())
    assert math.isnan(hpo_from_mapping(load_toml(path)).target)


@pytest.mark.parametrize("mapping, key", [
    ({"task": "cifar"}, "task"), ({"population": 3}, "population"), ({"lr_min": 0.0}, "lr_min"),
    ({"layers_min": 3, "layers_max": 2}, "layers_max"), ({"dropout_max": 1.0}, "dropout_max"),
    ({"metric": "accuracy"}, "metric"), ({"merge": 1}, "merge"), ({"epochs": "ten"}, "epochs"),
    ({"mutation": "flip"}, "mutation"), ({"width_min": 1, "min_layer_width": 2}, "width_min"),
])
def test_config_errors_name_the_key(mapping, key):
    with pytest.raises(ConfigError, match=key):
        hpo_from_mapping(mapping)


def test_unknown_key():
    with pytest.raises(ConfigError, match="unknown hpo config key.*bogus"):
        hpo_from_mapping({"bogus": 1})


# ----------------------------------------------------------------------------- traits


def test_cosine_profile():
    t = Traits(4, 50, 0.8, 32, 0.01, 0.5, 0.0, 0.1)
    expected = (50 * np.cos(0.8 * np.linspace(0, np.pi / 2, 4))).astype(int)
    assert t.hidden_sizes() == tuple(expected.tolist())
    assert Traits(3, 40, 1.0, 32, 0.01, 0.5, 0.0, 0.1).hidden_sizes(min_width=2)[-1] == 2  # cos(pi/2) = 0 clipped
    assert Traits(1, 17, 0.9, 32, 0.01, 0.5, 0.0, 0.1).hidden_sizes() == (17,)


def test_random_traits_respect_ranges():
    cfg = tiny(layers_min=2, layers_max=3, width_min=10, width_max=12, lr_min=0.01, lr_max=0.02,
               batch_min=7, batch_max=7, dropout_min=0.1, dropout_max=0.2, momentum_max=0.5)
    ranges = trait_ranges(cfg)
    rng = np.random.default_rng(0)
    draws = [random_traits(rng, ranges) for _ in range(300)]
    for name in TRAITS:
        low, high = ranges[name]
        values = np.array([getattr(t, name) for t in draws])
        assert values.min() >= low and values.max() <= high, name
    assert {t.n_layers for t in draws} == {2, 3} and {t.batch_size for t in draws} == {7}
    assert all(isinstance(t.first_width, int) for t in draws)
    assert all(min(t.hidden_sizes(cfg.min_layer_width)) >= cfg.min_layer_width for t in draws)


def test_breed_swaps_a_subset_with_provenance():
    rng = np.random.default_rng(1)
    ranges = trait_ranges(HPOConfig())
    a, b = random_traits(rng, ranges), random_traits(rng, ranges)
    seen = set()
    for _ in range(20):
        c1, c2, prov = breed(a, b, rng)
        seen.add(prov)
        for name, p in zip(TRAITS, prov):
            src1, src2 = (a, b) if p == "a" else (b, a)
            assert getattr(c1, name) == getattr(src1, name) and getattr(c2, name) == getattr(src2, name)
    assert len(seen) > 5  # a random subset, not a fixed split


def test_mutation_redraws_one_to_three_traits_within_range():
    ranges = trait_ranges(HPOConfig())
    rng = np.random.default_rng(2)
    t = random_traits(rng, ranges)
    counts = set()
    for _ in range(100):
        m, names = mutate(t, rng, ranges, 1.0)
        assert 1 <= len(names) <= 3 and len(set(names)) == len(names)
        counts.add(len(names))
        for name in TRAITS:
            low, high = ranges[name]
            assert low <= getattr(m, name) <= high
            if name not in names:
                assert getattr(m, name) == getattr(t, name)
    assert counts == {1, 2, 3}
    assert mutate(t, rng, ranges, 0.0) == (t, ())


def test_gene_store_mutation_picks_stored_values():
    ranges = trait_ranges(HPOConfig())
    store = make_gene_store(np.random.default_rng(3), ranges, 4)
    rng = np.random.default_rng(4)
    t = random_traits(rng, ranges)
    for _ in range(30):
        m, names = mutate(t, rng, ranges, 1.0, store)
        for name in names:
            assert getattr(m, name) in store[name]


def test_draw_trait_log_uniform_learning_rate():
    ranges = {"learning_rate": (1e-4, 1.0)}
    rng = np.random.default_rng(5)
    lr = np.array([draw_trait("learning_rate", rng, ranges) for _ in range(2000)])
    # log-uniform: about a quarter of the draws in each decade
    assert 0.18 < np.mean(lr < 1e-3) < 0.32 and 0.18 < np.mean(lr > 1e-1) < 0.32


# ----------------------------------------------------------------------------- GA mechanics


def _survivors(cfg, task, n=4):
    rng = np.random.default_rng(9)
    ranges = trait_ranges(cfg)
    out = []
    for i in range(n):
        t = random_traits(rng, ranges)
        layout = make_layout(t, task, cfg)
        out.append(Individual(i, t, layout, fresh_row(layout, 0, i), 0, metric=float(i)))
    return out


@pytest.mark.parametrize("merge", [False, True])
def test_children_provenance_and_weights(trig_task, merge):
    cfg = tiny(merge=merge, mutation_rate=0.3)
    survivors = _survivors(cfg, trig_task)
    by_id = {s.id: s for s in survivors}
    children = breed_children(survivors, 7, cfg, trig_task, generation=1, next_id=100)
    assert [c.id for c in children] == list(range(100, 107))
    assert any("m" in c.provenance for c in children)
    for c in children:
        pa, pb = by_id[c.parents[0]], by_id[c.parents[1]]
        assert pa is not pb and len(c.provenance) == len(TRAITS)
        for name, p in zip(TRAITS, c.provenance):
            if p != "m":
                assert getattr(c.traits, name) == getattr((pa if p == "a" else pb).traits, name)
        assert c.layout == make_layout(c.traits, trig_task, cfg)
        fresh = fresh_row(c.layout, cfg.seed, c.id)
        if merge:
            assert c.merged
            expected = merge_weights(c.layout, [(pa.layout, pa.row), (pb.layout, pb.row)], init_row=fresh)
            np.testing.assert_array_equal(c.row, expected)
        else:
            assert not c.merged
            np.testing.assert_array_equal(c.row, fresh)
    again = breed_children(survivors, 7, cfg, trig_task, generation=1, next_id=100)
    assert [(c.traits, c.provenance, c.parents) for c in again] == [(c.traits, c.provenance, c.parents) for c in children]


def test_rank_puts_nan_last():
    t = Traits(1, 8, 0.0, 16, 0.01, 0.0, 0.0, 0.0)
    pop = [Individual(i, t, None, None, 0, metric=m) for i, m in enumerate([0.5, math.nan, 0.1, 0.9])]
    assert [p.id for p in rank(pop, higher=False)] == [2, 0, 3, 1]
    assert [p.id for p in rank(pop, higher=True)] == [3, 0, 2, 1]


def test_fitness_keeps_best_epoch_and_early_stops(trig_task):
    cfg = tiny(epochs=30, patience=2)
    t = Traits(2, 16, 0.3, 32, 0.05, 0.5, 0.0, 0.0)
    layout = make_layout(t, trig_task, cfg)
    ind = evaluate_fitness(Individual(0, t, layout, fresh_row(layout, 0, 0), 0), trig_task, cfg)
    assert 1 <= ind.epochs <= 30 and ind.fitness_seconds > 0 and ind.error == ""
    assert ind.metric < ind.init_metric
    metric = search_metric(cfg, trig_task)
    assert metric.score(layout, ind.row, trig_task.X_val, trig_task.y_val) == pytest.approx(ind.metric, rel=1e-6)
    # a learning rate that diverges is recorded, not raised; the weights stay finite
    wild = replace(t, learning_rate=1e6, momentum=0.9)
    bad = evaluate_fitness(Individual(1, wild, layout, fresh_row(layout, 0, 1), 0), trig_task, cfg)
    assert np.isfinite(bad.row).all() and (bad.error or bad.metric >= bad.init_metric)


# ----------------------------------------------------------------------------- whole searches


def _without_times(rows):
    return [{k: v for k, v in r.items() if k not in ("fitness_seconds", "fitness_cpu_seconds", "merge_seconds")} for r in rows]


@pytest.mark.parametrize("merge", [False, True])
def test_search_is_deterministic_from_seed(tmp_path, trig_task, merge):
    cfg = tiny(merge=merge)
    from genreg.network.blas import blas_threads

    a = run_hpo(cfg, tmp_path / "a", task=trig_task)
    with blas_threads(2):  # the caller's BLAS threads do not matter: training runs single-threaded
        b = run_hpo(cfg, tmp_path / "b", task=trig_task)
    assert _without_times(a.evaluations) == _without_times(b.evaluations)
    np.testing.assert_array_equal(a.best.row, b.best.row)
    c = run_hpo(cfg.replace(seed=1), tmp_path / "c", task=trig_task)
    assert _without_times(c.evaluations) != _without_times(a.evaluations)
    assert len(a.evaluations) == 4 + 2 * 2
    assert all(r["fitness_seconds"] > 0 for r in a.evaluations)
    assert all(r["merged"] == (merge and r["generation"] > 0) for r in a.evaluations)


def test_run_directory_contents(tmp_path, trig_task):
    out = tmp_path / "run"
    res = run_hpo(tiny(merge=True), out, task=trig_task)
    for name in ("config.toml", "evaluations.csv", "generations.csv", "population.h5", "best_model.h5", "summary.json"):
        assert (out / name).is_file(), name
    with open(out / "evaluations.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == list(EVAL_COLUMNS) and len(rows) == len(res.evaluations)
    with open(out / "generations.csv", newline="") as fh:
        gens = list(csv.DictReader(fh))
    assert [int(g["generation"]) for g in gens] == [0, 1, 2]
    best_per_gen = [float(g["best_metric"]) for g in gens]
    assert best_per_gen == sorted(best_per_gen, reverse=True)  # survivors are kept: never worse
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best"]["val_metric"] == res.best.metric and summary["evaluations"] == 8
    model = load_model(out / "best_model.h5")
    np.testing.assert_array_equal(model.row, res.best.row)
    assert model.traits == res.best.traits and model.layout == res.best.layout and model.task == "trig"
    with h5py.File(out / "population.h5") as f:
        assert len(f.keys()) == 4 and f.attrs["generation"] == 2
    with pytest.raises(ConfigError, match="already holds a search"):
        run_hpo(tiny(), out, task=trig_task)


def test_target_stops_the_search(tmp_path, trig_task):
    res = run_hpo(tiny(target=0.45, generations=6), tmp_path / "t", task=trig_task)
    assert res.stopped_by == "target" and res.generations_run < 6 and res.best.metric <= 0.45


def test_trig_search_converges(tmp_path):
    """A small real search must fit cos well (variance of cos on [0, 2pi] is 0.5)."""
    cfg = hpo_from_mapping({"task": "trig", "population": 8, "generations": 4, "epochs": 30, "merge": True,
                            "trig_samples": 1000, "seed": 0})
    res = run_hpo(cfg, tmp_path / "trig")
    assert res.best.metric < 0.01 and res.test_metric < 0.01
    pred, true, _ = predict_angle(tmp_path / "trig" / "best_model.h5", 40)
    assert abs(pred - true) < 0.2


def test_boston_search_beats_the_mean(tmp_path, data_root):
    cfg = hpo_from_mapping({"task": "boston", "population": 6, "generations": 3, "epochs": 30, "seed": 1})
    task = load_task(cfg, data_root)
    baseline = float(np.mean(np.abs(task.y_test - task.y_train.mean())) * task.y_std[0])  # ~6.5 ($1000s)
    res = run_hpo(cfg, tmp_path / "boston", task=task)
    assert res.test_metric < 4.0 < baseline


# ----------------------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def trig_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    argv = ["hpo", "--task", "trig", "--merge", "--population", "4", "--generations", "2", "--epochs", "20",
            "--set", "trig_samples=500", "--seed", "0", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    return out


def test_hpo_and_predict_cli(trig_model, capsys):
    capsys.readouterr()
    assert main(["predict", str(trig_model / "best_model.h5"), "--angle", "40"]) == 0
    text = capsys.readouterr().out
    assert "prediction" in text and "cos(40 deg) = 0.766044" in text
    pred = float(text.split("prediction ")[1].split()[0])
    assert pred == pytest.approx(predict_angle(trig_model / "best_model.h5", 40)[0], abs=1e-6)
    cfg = hpo_from_mapping(load_toml(trig_model / "config.toml"))
    assert cfg.merge and cfg.population == 4 and cfg.epochs == 20


def test_plot_cli(trig_model, tmp_path, capsys):
    assert main(["plot", str(trig_model), "--out", str(tmp_path)]) == 0
    for name in ("traits_vs_metric.png", "architectures.png", "best_metric.png", "fitness_time.png"):
        assert (tmp_path / name).stat().st_size > 1000


def test_predict_refuses_other_models_and_corrupt_files(tmp_path, trig_model, data_root, capsys):
    cfg = hpo_from_mapping({"task": "boston", "population": 4, "generations": 1, "epochs": 1})
    run_hpo(cfg, tmp_path / "b", data_root)
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes((trig_model / "best_model.h5").read_bytes()[:3000])
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 20)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("x", data=np.zeros(3))
    cases = [(tmp_path / "b" / "best_model.h5", "'boston' model"), (corrupt, "cannot read model"),
             (garbage, "cannot read model"), (other, "not a genreg hpo model"), (tmp_path / "nope.h5", "no such")]
    for path, message in cases:
        capsys.readouterr()
        assert main(["predict", str(path), "--angle", "40"]) == 2
        err = capsys.readouterr().err
        assert err.startswith("genreg: error:") and message in err and "Traceback" not in err
        with pytest.raises(CheckpointError):
            predict_angle(path, 40)


def test_bench_merge_smoke(tmp_path, capsys):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
    import bench_merge

    assert bench_merge.main(["--tasks", "trig", "--reps", "2", "--out", str(tmp_path), "--set", "population=4",
                             "--set", "generations=2", "--set", "epochs=2", "--set", "trig_samples=200"]) == 0
    table = (tmp_path / "table.md").read_text()
    assert "| trig (ours)" in table and "avg time (basic)" in table
    results = json.loads((tmp_path / "results.json").read_text())["results"]["trig"]
    assert len(results["runs"]["basic"]) == len(results["runs"]["merge"]) == 2
    assert (tmp_path / "hist_trig.png").is_file() and (tmp_path / "totals_trig.png").is_file()


def test_mnist_search_smoke(tmp_path, mnist_dir):
    cfg = hpo_from_mapping({"task": "mnist", "population": 4, "generations": 2, "epochs": 2, "mnist_train": 1000,
                            "mnist_val": 500, "merge": True})
    task = load_task(cfg, mnist_dir)
    assert task.X_train.shape == (1000, 784) and task.X_val.shape == (500, 784) and task.X_test.shape == (10000, 784)
    assert task.X_train.max() <= 1.0 and task.y_train.dtype == np.int64
    res = run_hpo(cfg, tmp_path / "mnist", task=task)
    assert res.best.layout.sizes[0] == 784 and res.best.layout.sizes[-1] == 10
    assert res.best.metric > 0.5 and res.test_metric > 0.5  # accuracy, chance is 0.1
    assert load_model(tmp_path / "mnist" / "best_model.h5").metric == "accuracy"


def test_hpo_population_too_large_for_memory_is_refused_before_writing_anything(tmp_path, trig_task):
    from genreg.errors import PopulationError

    with pytest.raises(PopulationError, match="of memory is available"):
        run_hpo(tiny(population=100_000_000), tmp_path / "run", task=trig_task)
    assert not (tmp_path / "run").exists()


def _csv_without_times(path):
    import csv

    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)]


@pytest.mark.parametrize("merge", [False, True])
def test_resume_repeats_the_uninterrupted_search(tmp_path, trig_task, merge):
    from genreg.hpo.search import resume_hpo

    full = run_hpo(tiny(merge=merge, generations=4), tmp_path / "full", task=trig_task)
    run_hpo(tiny(merge=merge, generations=2), tmp_path / "cut", task=trig_task)
    # a kill during generation 2: a partial row in each history, population.h5 still at generation 1
    for name in ("evaluations.csv", "generations.csv"):
        with open(tmp_path / "cut" / name, "a") as fh:
            fh.write("2" + ",0" * 3 + "\n")
    resumed = resume_hpo(tmp_path / "cut", {"generations": 4}, task=trig_task)
    for name in ("evaluations.csv", "generations.csv"):
        assert _csv_without_times(tmp_path / "cut" / name) == _csv_without_times(tmp_path / "full" / name)
    np.testing.assert_array_equal(resumed.best.row, full.best.row)
    assert resumed.best.id == full.best.id and resumed.generations_run == 4


def test_resume_refuses_changes_that_rewrite_the_past(tmp_path, trig_task):
    from genreg.hpo.search import resume_hpo

    with pytest.raises(CheckpointError, match="no hpo search to resume"):
        resume_hpo(tmp_path / "nothing", task=trig_task)
    run_hpo(tiny(generations=2), tmp_path / "run", task=trig_task)
    with pytest.raises(ConfigError, match="cannot change population"):
        resume_hpo(tmp_path / "run", {"population": 6}, task=trig_task)
