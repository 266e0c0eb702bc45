"""Evolve runs on real MNIST (genreg.runs.evolve): convergence, determinism, resume, crashes.

Runs use the real MNIST data through ``mnist_dir`` with tiny networks and populations, so
the whole module stays quick.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest

from genreg.config import load_toml
from genreg.errors import CheckpointError, ConfigError
from genreg.runs.evolve import resume_run, start_run
from genreg.runs.history import read_history
from genreg.runs.store import latest_checkpoint, read_checkpoint
from genreg.strategies.config import from_mapping
from helpers import (
    small_cfg,
    final_state,
    assert_same_state,
    small_cli_args,
    checkpoint_generations,
    determinism_runs,
    sigkill_when,
)


TIMING = ("eval_seconds", "breed_seconds")
#: metrics.csv's columns for MNIST (10 classes).
METRICS = ["generation", "best_fitness", "mean_fitness", "best_accuracy", "mean_accuracy", "validation_accuracy",
           *[f"class_{d}" for d in range(10)], "eval_seconds", "breed_seconds", "mutation_scale"]


def metrics_without_timing(run_dir) -> list[list[str]]:
    """metrics.csv as strings, timing columns removed (everything else must match exactly)."""
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        rows = list(csv.reader(fh))
    header = rows[0]
    assert header == list(METRICS)
    keep = [i for i, name in enumerate(header) if name not in TIMING]
    return [[row[i] for i in keep] for row in rows if row]


def last_validation(run_dir) -> tuple[float, float]:
    """(first, last) non-NaN validation accuracy of the best genome."""
    val = read_history(Path(run_dir) / "metrics.csv")["validation_accuracy"]
    val = val[~np.isnan(val)]
    assert val.size >= 2
    return float(val[0]), float(val[-1])


# --------------------------------------------------------------------------
# Runs on real MNIST
# --------------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
def test_convergence_on_mnist(tmp_path, mnist_dir, strategy):
    """80 generations of a 784-16-10 network, 30 genomes, 100-image episodes, three seeds.

    Random search over as many genomes stays around 0.13-0.18 validation accuracy.
    Over seeds 0-5 both strategies end between 0.28 and 0.44 (mean about 0.36),
    so a mean over three seeds above 0.30 leaves a margin, while a broken engine
    (no selection, no variation, wrong best genome) fails.
    """
    finals = []
    for seed in range(3):
        run = tmp_path / f"seed{seed}"
        cfg = from_mapping(dict(strategy=strategy, crossover="mask", hidden_sizes=[16], population=30,
                                samples_per_class=10, generations=80, validation_size=2000, validation_every=10,
                                checkpoint_every=20, seed=seed))
        state = start_run(cfg, run, mnist_dir, progress=False)
        assert state.generation == 80
        first, last = last_validation(run)
        assert last > first + 0.1, f"{strategy}, seed {seed}: {first:.3f} -> {last:.3f}"
        m = read_history(run / "metrics.csv")
        assert m["generation"].tolist() == list(range(80))
        assert m["best_accuracy"][-10:].mean() > m["best_accuracy"][:10].mean() + 0.1
        finals.append(last)
    assert np.mean(finals) > 0.30, f"{strategy}: final validation accuracies {finals}"
    assert checkpoint_generations(tmp_path / "seed0") == [60, 80]
    assert (tmp_path / "seed0" / "best_genome_mnist_gen00080.pkl").stat().st_size > 0


def test_same_seed_same_run(determinism_runs):
    a, b = determinism_runs["a"], determinism_runs["b"]
    assert metrics_without_timing(a) == metrics_without_timing(b)
    assert (a / "tracked_weights.csv").read_bytes() == (b / "tracked_weights.csv").read_bytes()
    assert (a / "config.toml").read_bytes() == (b / "config.toml").read_bytes()
    assert_same_state(final_state(a), final_state(b))
    assert final_state(a).generation == 10


def test_metrics_csv_byte_equal_except_timing(determinism_runs):
    """Only the two timing columns may differ between identical runs; every other byte is equal."""
    def strip(path):
        text = (path / "metrics.csv").read_text().splitlines()
        header = text[0].split(",")
        idx = [header.index(t) for t in TIMING]
        return [",".join(v for i, v in enumerate(line.split(",")) if i not in idx) for line in text]

    assert strip(determinism_runs["a"]) == strip(determinism_runs["b"])


def test_different_seed_different_run(determinism_runs):
    a, c = determinism_runs["a"], determinism_runs["c"]
    assert metrics_without_timing(a) != metrics_without_timing(c)
    assert final_state(a).population.W.tobytes() != final_state(c).population.W.tobytes()


def test_start_run_refuses_existing_run(determinism_runs, mnist_dir):
    with pytest.raises(ConfigError, match="genreg resume"):
        start_run(small_cfg(generations=2), determinism_runs["a"], mnist_dir, progress=False)


def _cli_run_with_threads(out: Path, data_dir: Path, threads: int) -> None:
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run(small_cli_args(out, data_dir, 8), env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_cli_runs_identical_for_any_thread_count(tmp_path, mnist_dir):
    _cli_run_with_threads(tmp_path / "t1", mnist_dir, 1)
    _cli_run_with_threads(tmp_path / "t2", mnist_dir, 2)
    m1, m2 = metrics_without_timing(tmp_path / "t1"), metrics_without_timing(tmp_path / "t2")
    assert len(m1) == 9
    assert m1 == m2
    assert (tmp_path / "t1" / "tracked_weights.csv").read_bytes() == (tmp_path / "t2" / "tracked_weights.csv").read_bytes()
    assert_same_state(final_state(tmp_path / "t1"), final_state(tmp_path / "t2"))


def test_track_weights_larger_than_first_layer(tmp_path, mnist_dir):
    cfg = small_cfg(hidden_sizes=[1], track_weights=1000, generations=1)
    try:
        start_run(cfg, tmp_path, mnist_dir, progress=False)
    except ConfigError as exc:
        assert "track_weights" in str(exc)
    else:
        w = read_history(tmp_path / "tracked_weights.csv")
        assert 1 <= len(w) - 1 <= 784


def test_population_too_large_for_memory_is_refused_before_writing_anything(tmp_path, mnist_dir):
    from genreg.errors import PopulationError

    with pytest.raises(PopulationError, match="needs .* of memory is available"):
        start_run(from_mapping(dict(population=50_000_000)), tmp_path / "run", mnist_dir, progress=False)
    assert not (tmp_path / "run").exists()


# -- resume -----------------------------------------------------------------

RESUME = dict(checkpoint_every=5, validation_every=3)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, mnist_dir) -> Path:
    """12 generations in one go, checkpoint every 5."""
    d = tmp_path_factory.mktemp("resume") / "whole"
    start_run(small_cfg(generations=12, **RESUME), d, mnist_dir, progress=False)
    return d


@pytest.fixture(scope="module")
def seven(tmp_path_factory, mnist_dir) -> Path:
    """The same run stopped after 7 generations (tests copy it before resuming)."""
    d = tmp_path_factory.mktemp("resume") / "seven"
    start_run(small_cfg(generations=7, **RESUME), d, mnist_dir, progress=False)
    return d


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def test_resume_equals_uninterrupted(tmp_path, seven, uninterrupted, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    assert checkpoint_generations(run) == [5, 7]
    state = resume_run(run, {"generations": 12}, mnist_dir, progress=False)
    assert state.generation == 12
    assert_same_state(final_state(run), final_state(uninterrupted))
    assert metrics_without_timing(run) == metrics_without_timing(uninterrupted)
    assert (run / "tracked_weights.csv").read_bytes() == (uninterrupted / "tracked_weights.csv").read_bytes()
    assert checkpoint_generations(run) == checkpoint_generations(uninterrupted) == [10, 12]
    assert load_toml(run / "config.toml")["generations"] == 12


def test_ga_resume_equals_uninterrupted(tmp_path, mnist_dir):
    """The GA's annealed, adaptive mutation (schedule, best fitness, stagnation, initial
    spread) survives a stop: stopped after one generation and resumed, the run is the one
    that never stopped."""
    cfg = small_cfg(strategy="ga", generations=12, **RESUME)
    assert cfg.ga_mutation_scale_end > 0  # the default schedule is on
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(cfg, whole, mnist_dir, progress=False)
    assert start_run(cfg.replace(max_minutes=1e-9), part, mnist_dir, progress=False).generation == 1
    assert resume_run(part, {"max_minutes": 0.0}, mnist_dir, progress=False).generation == 12
    assert_same_state(final_state(part), final_state(whole))
    assert metrics_without_timing(part) == metrics_without_timing(whole)
    scales = read_history(whole / "metrics.csv")["mutation_scale"]
    schedule = cfg.ga_mutation_scale * (cfg.ga_mutation_scale_end / cfg.ga_mutation_scale) ** (np.arange(12) / 11)
    assert scales[0] == pytest.approx(0.05) and np.all(scales <= schedule * (1 + 1e-12))  # the spread only shrinks it
    assert scales[-1] < 0.3 * scales[0]


@pytest.mark.parametrize("strategy, key, then", [("ga", "ga_mutation_scale_end", 0.0), ("genreg", "crossover", "none")])
def test_a_version_1_run_resumes_as_it_was_made(tmp_path, mnist_dir, strategy, key, then):
    """Checkpoint format 1 predates GENREG's crossover and the GA's anneal: its GENREG runs bred
    from one parent (their config said crossover = "mask", the GA's default, which GENREG then
    ignored) and its GA runs had a constant scale (the key did not exist).  Resumed, such a run
    goes on as the code that wrote it would have, not with the new defaults."""
    old, whole = tmp_path / "old", tmp_path / "whole"
    as_made = dict(strategy=strategy, checkpoint_every=1, **{key: then})
    start_run(small_cfg(generations=3, **as_made), old, mnist_dir, progress=False)
    for path in (old / "checkpoints").glob("*.h5"):  # as version 1 wrote them
        W = read_checkpoint(path)[0].population.W
        with h5py.File(path, "r+") as f:
            if "brood" in f:  # version 1 stored every population as its rows
                del f["brood"]
                f.create_dataset("W", data=W)
            config = json.loads(f.attrs["config"])
            config.pop("ga_mutation_scale_end")
            config["crossover"] = "mask"
            f.attrs["config"] = json.dumps(config)
            f.attrs["format_version"] = 1
            del f.attrs["attrs_crc32"]  # (version 1 had no checksum of the attributes)
    resume_run(old, {"generations": 5}, mnist_dir, progress=False)
    assert load_toml(old / "config.toml")[key] == then
    start_run(small_cfg(generations=5, **as_made), whole, mnist_dir, progress=False)
    assert_same_state(final_state(old), final_state(whole))
    assert metrics_without_timing(old) == metrics_without_timing(whole)


@pytest.mark.parametrize("overrides, what", [({"hidden_sizes": [32]}, "hidden_sizes"),
                                             ({"activation": "relu"}, "activation")])
def test_resume_refuses_network_change(tmp_path, seven, mnist_dir, overrides, what):
    run = copy_run(seven, tmp_path / "run")
    before = (run / "config.toml").read_bytes()
    with pytest.raises(ConfigError, match=what) as info:
        resume_run(run, {"generations": 9, **overrides}, mnist_dir, progress=False)
    assert "shape" in str(info.value) and "784-16-10" in str(info.value)
    assert (run / "config.toml").read_bytes() == before
    assert checkpoint_generations(run) == [5, 7]


def test_resume_same_network_value_is_accepted(tmp_path, seven, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    state = resume_run(run, {"generations": 8, "hidden_sizes": [16], "activation": "tanh"}, mnist_dir, progress=False)
    assert state.generation == 8


def test_resume_with_changed_rates_and_population(tmp_path, seven, mnist_dir):
    run = copy_run(seven, tmp_path / "run")
    state = resume_run(run, {"generations": 9, "child_mutation_rate": 0.2, "population": 26}, mnist_dir,
                       progress=False)
    assert state.generation == 9
    saved = load_toml(run / "config.toml")
    assert saved["child_mutation_rate"] == 0.2 and saved["population"] == 26 and saved["generations"] == 9
    _, final, cfg = latest_checkpoint(run)
    assert final.generation == 9 and cfg["child_mutation_rate"] == 0.2
    assert final.population.size == 26
    m = read_history(run / "metrics.csv")
    assert m["generation"].tolist() == list(range(9))


def test_resume_skips_checkpoint_cut_short(tmp_path, seven, uninterrupted, mnist_dir, capsys):
    """A crash while writing: a truncated newest file, a garbage one and a stray .tmp."""
    run = copy_run(seven, tmp_path / "run")
    folder = run / "checkpoints"
    good = (folder / "state_gen00007.h5").read_bytes()
    (folder / "state_gen00009.h5").write_bytes(good[: len(good) // 2])
    (folder / "state_gen00010.h5").write_bytes(os.urandom(4096))
    (folder / "state_gen00011.h5.tmp").write_bytes(good[:1000])
    with pytest.raises(CheckpointError, match="state_gen00009"):
        read_checkpoint(folder / "state_gen00009.h5")
    path, state, _ = latest_checkpoint(run)
    assert path.name == "state_gen00007.h5" and state.generation == 7
    assert "skipped" in capsys.readouterr().out
    state = resume_run(run, {"generations": 12}, mnist_dir, progress=False)
    assert state.generation == 12
    assert_same_state(final_state(run), final_state(uninterrupted))
    assert metrics_without_timing(run) == metrics_without_timing(uninterrupted)


def test_resume_without_checkpoint(tmp_path, mnist_dir):
    with pytest.raises(CheckpointError, match="holds no genreg run"):
        resume_run(tmp_path, {}, mnist_dir, progress=False)


def test_resume_metrics_identical_with_default_validation_every(tmp_path, mnist_dir):
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(small_cfg(generations=12, checkpoint_every=5), whole, mnist_dir, progress=False)
    start_run(small_cfg(generations=7, checkpoint_every=5), part, mnist_dir, progress=False)
    resume_run(part, {"generations": 12}, mnist_dir, progress=False)
    assert_same_state(final_state(part), final_state(whole))  # holds
    assert metrics_without_timing(part) == metrics_without_timing(whole)  # fails at row 6


def test_sigkill_then_resume_equals_uninterrupted(tmp_path, mnist_dir):
    run = tmp_path / "killed"
    sigkill_when(small_cli_args(run, mnist_dir, 100_000, "--set", "checkpoint_every=1"),
                 lambda: any(g >= 2 for g in checkpoint_generations(run)) if (run / "checkpoints").exists() else False,
                 120, "the first checkpoints")
    _, state, _ = latest_checkpoint(run)
    target = state.generation + 3
    resumed = resume_run(run, {"generations": target}, mnist_dir, progress=False)
    assert resumed.generation == target

    whole = tmp_path / "whole"
    start_run(small_cfg(generations=target, checkpoint_every=1), whole, mnist_dir, progress=False)
    assert_same_state(final_state(run), final_state(whole))
    assert metrics_without_timing(run) == metrics_without_timing(whole)


def _genome_generations(run) -> list[int]:
    return sorted(int(p.stem.rsplit("gen", 1)[1]) for p in run.glob("best_genome_*_gen*.pkl"))


def test_a_run_keeps_the_newest_and_the_best_genome_pickle(tmp_path, mnist_dir):
    """Every checkpoint writes the best genome's pickle; by default only the newest and the one
    with the best validation score stay, the same whether or not the run was interrupted."""
    from genreg.genome.checkpoint import load_genome

    whole, parts, everything = tmp_path / "whole", tmp_path / "parts", tmp_path / "all"
    start_run(small_cfg(generations=8, checkpoint_every=1), whole, mnist_dir, progress=False)
    start_run(small_cfg(generations=8, checkpoint_every=1, keep_all_genomes=True), everything, mnist_dir,
              progress=False)
    assert _genome_generations(everything) == list(range(1, 9))
    scores = {g: load_genome(everything / f"best_genome_mnist_gen{g:05d}.pkl").metadata["selection_score"]
              for g in range(1, 9)}
    assert all(0.0 <= s <= 1.0 for s in scores.values())  # validation accuracies
    best = max(scores, key=lambda g: (scores[g], -g))
    assert _genome_generations(whole) == sorted({best, 8})
    start_run(small_cfg(generations=4, checkpoint_every=1), parts, mnist_dir, progress=False)
    (parts / "best_genome_mnist_gen00000.pkl").write_bytes(b"an older genreg's pickle: never pruned")
    resume_run(parts, {"generations": 8}, mnist_dir, progress=False)
    assert _genome_generations(parts) == sorted({0, best, 8})


def test_tracked_weights_are_the_best_genomes_float32_values(tmp_path, mnist_dir):
    """tracked_weights.csv holds each weight as float32's shortest text: it reads back exactly."""
    from genreg.genome.checkpoint import load_genome
    from genreg.runs.evolve import tracked_positions

    cfg = small_cfg(generations=3, checkpoint_every=3)
    start_run(cfg, tmp_path, mnist_dir, progress=False)
    genome = load_genome(tmp_path / "best_genome_mnist_gen00003.pkl")
    with open(tmp_path / "tracked_weights.csv") as fh:
        header, *rows = list(csv.reader(fh))
    positions = tracked_positions(genome.layout, cfg)
    assert header[1:] == [f"w{int(i)}" for i in positions]
    last = np.array(rows[-1][1:], dtype=np.float32)
    assert last.tobytes() == genome.weights[positions].tobytes()
    assert max(len(cell) for cell in rows[-1][1:]) <= 15  # not float64's 17-digit text of a float32


def test_a_resume_that_changes_the_seed_is_refused_and_touches_nothing(tmp_path, mnist_dir):
    run = tmp_path / "run"
    start_run(small_cfg(generations=2), run, mnist_dir, progress=False)
    before = {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    with pytest.raises(ConfigError, match=r"cannot change seed on resume \(0 -> 5\)"):
        resume_run(run, {"seed": 5, "generations": 4}, mnist_dir, progress=False)
    assert {p.name: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


@pytest.mark.parametrize("strategy", ["openai-es", "pgpe", "snes"])
def test_an_odd_population_for_an_evolution_strategy_is_refused_before_the_run_exists(tmp_path, strategy):
    with pytest.raises(ConfigError, match="even population"):
        small_cfg(strategy=strategy, population=3)
    assert small_cfg(strategy="ga", population=3).population == 3
    assert small_cfg(population=2, migrants=2).population == 2  # migrants matter with islands only
    with pytest.raises(ConfigError, match="fewer genomes than its population"):
        small_cfg(population=4, islands=2, migrants=4)
