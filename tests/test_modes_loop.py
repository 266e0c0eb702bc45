"""The hybrid GA + SGD mode and the trait search on the one run loop (``genreg.runs.loop.run_loop``).

An ``on_generation`` callback returning True stops a run after that generation with a
checkpoint; resuming then completes it exactly as the uninterrupted run.
"""

from __future__ import annotations

import csv
import json

import h5py
import numpy as np
import pytest

from genreg.hpo.config import hpo_from_mapping
from genreg.hpo.rundir import read_population
from genreg.hpo.search import resume_hpo, run_hpo
from genreg.hybrid.config import from_mapping
from genreg.hybrid.run import latest_state, resume_hybrid, start_hybrid
from genreg.hpo.data import search_task as load_task

HYBRID = dict(architecture="784-16-10", population=3, generations=3, train_images=300, validation_size=200,
              baseline=False, checkpoint_every=3)
HPO = {"task": "trig", "population": 4, "generations": 4, "epochs": 3, "trig_samples": 300}


def _rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if "seconds" not in k} for r in csv.DictReader(fh)]


def _stop_after(generation: int, seen: list):
    def callback(record: dict):
        seen.append(dict(record))
        return int(record["generation"]) == generation
    return callback


def test_callback_stops_a_hybrid_run_which_resumes_to_the_uninterrupted_one(tmp_path, mnist_dir):
    cfg = from_mapping(HYBRID)
    full = start_hybrid(cfg, tmp_path / "full", mnist_dir, progress=False)
    seen = []
    stopped = start_hybrid(cfg, tmp_path / "cut", mnist_dir, progress=False, on_generation=_stop_after(1, seen))
    assert stopped == {"stopped_at": 1}
    assert [r["generation"] for r in seen] == [1] and 0.0 <= seen[0]["best_val_accuracy"] <= 1.0
    # generation 1 is off the checkpoint cadence (every 3): the stop writes it anyway
    path, state, _ = latest_state(tmp_path / "cut")
    assert state.generation == 1 and path.name == "state_gen00001.h5"
    assert len(_rows(tmp_path / "cut" / "metrics.csv")) == 1
    resumed = resume_hybrid(tmp_path / "cut", data_dir=mnist_dir, progress=False)
    assert _rows(tmp_path / "cut" / "metrics.csv") == _rows(tmp_path / "full" / "metrics.csv")
    for name in ("checkpoints/state_gen00003.h5", "similarity/gen00003.h5"):
        with h5py.File(tmp_path / "full" / name, "r") as a, h5py.File(tmp_path / "cut" / name, "r") as b:
            for key in ("W", "trust", "ids") if "checkpoints" in name else ("layers", "fitness", "ids"):
                np.testing.assert_array_equal(a[key][()], b[key][()], err_msg=f"{name}:{key}")
    drop = ("population_seconds",)
    assert {k: v for k, v in resumed.items() if k not in drop} == {k: v for k, v in full.items() if k not in drop}


def test_callback_stops_a_search_which_resumes_to_the_uninterrupted_one(tmp_path):
    cfg = hpo_from_mapping(HPO)
    task = load_task(cfg)
    full = run_hpo(cfg, tmp_path / "full", task=task)
    seen = []
    stopped = run_hpo(cfg, tmp_path / "cut", task=task, on_generation=_stop_after(1, seen))
    assert [r["generation"] for r in seen] == [0, 1]
    assert stopped.stopped_by == "callback" and stopped.generations_run == 2
    assert json.loads((tmp_path / "cut" / "summary.json").read_text())["stopped_by"] == "callback"
    generation, population = read_population(tmp_path / "cut" / "population.h5")
    assert generation == 1 and len(population) == cfg.population
    assert [r["generation"] for r in _rows(tmp_path / "cut" / "generations.csv")] == ["0", "1"]
    resumed = resume_hpo(tmp_path / "cut", task=task)
    for name in ("evaluations.csv", "generations.csv"):
        assert _rows(tmp_path / "cut" / name) == _rows(tmp_path / "full" / name), name
    np.testing.assert_array_equal(resumed.best.row, full.best.row)
    assert resumed.best.id == full.best.id and resumed.generations_run == full.generations_run == 4
    assert resumed.stopped_by == full.stopped_by == "generations"
    summary = json.loads((tmp_path / "cut" / "summary.json").read_text())
    assert summary["stopped_by"] == "generations" and summary["evaluations"] == len(full.evaluations)
    assert read_population(tmp_path / "cut" / "population.h5")[0] == 3


def test_target_stops_the_search_without_a_stop_message(tmp_path, capsys):
    cfg = hpo_from_mapping({**HPO, "target": 10.0, "generations": 6})  # any finite mse reaches it
    res = run_hpo(cfg, tmp_path / "t", task=load_task(cfg))
    assert res.stopped_by == "target" and res.generations_run == 1
    assert read_population(tmp_path / "t" / "population.h5")[0] == 0
    assert "stopped by" not in capsys.readouterr().out
    again = resume_hpo(tmp_path / "t", {"generations": 7}, task=load_task(cfg))
    assert again.stopped_by == "target" and again.generations_run == 1


@pytest.mark.parametrize("stop", [True, None, 1])
def test_only_true_stops(tmp_path, stop):
    cfg = hpo_from_mapping({**HPO, "generations": 2})
    res = run_hpo(cfg, tmp_path / "r", task=load_task(cfg), on_generation=lambda record: stop)
    assert res.stopped_by == ("callback" if stop is True else "generations")
    assert res.generations_run == (1 if stop is True else 2)
