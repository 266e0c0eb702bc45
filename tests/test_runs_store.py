"""State checkpoints and histories (genreg.runs.store, genreg.runs.history): round trips, the background writer, format gates, pruning."""

from __future__ import annotations

import math

import h5py
import numpy as np
import pytest

from genreg.errors import CheckpointError
from genreg.runs.history import History, read_history
from genreg.runs.store import (
    CheckpointWriter,
    latest_checkpoint,
    read_checkpoint,
    write_checkpoint,
)
from genreg.strategies.config import Config, from_mapping
from genreg.strategies.ga import GAState
from genreg.strategies.genreg import Genreg
from helpers import final_state, assert_same_state, checkpoint_generations, TINY, hand_made_state, reseal


# --------------------------------------------------------------------------
# State checkpoints
# --------------------------------------------------------------------------


@pytest.mark.parametrize("scalars", [
    dict(best_fitness=0.25, stagnant=3, mutation_multiplier=1.5, initial_spread=float("nan")),
    dict(best_fitness=-math.inf, stagnant=0, mutation_multiplier=8.0, initial_spread=0.125),
])
def test_checkpoint_round_trip(tmp_path, scalars):
    state = GAState(hand_made_state(9).population, generation=17)
    rng = np.random.default_rng(4)
    state.population.trust = rng.normal(size=9) * 1e3
    state.population.parent_ids = rng.integers(-1, 500, size=9)
    state.population.age = rng.integers(0, 40, size=9).astype(np.int32)
    for k, v in scalars.items():
        setattr(state, k, v)
    cfg = from_mapping({"seed": 11, "strategy": "ga"}).to_dict()
    path = write_checkpoint(tmp_path, state, cfg)
    assert path.name == "state_gen00017.h5"
    back, cfg_back = read_checkpoint(path)
    assert cfg_back == cfg
    assert back.population.layout == TINY
    for name in ("W", "trust", "ids", "parent_ids", "age"):
        a, b = getattr(state.population, name), getattr(back.population, name)
        assert a.dtype == b.dtype and a.shape == b.shape, name
        assert a.tobytes() == b.tobytes(), name
    assert_same_state(state, back)
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


def test_checkpoint_writer_writes_a_snapshot_in_the_background(tmp_path):
    """The background writer stores the state as it was at submit (a brood's genomes built as
    rows, the run's brood left alone), runs ``then`` after the file, writes in order and keeps
    the last two."""
    cfg = from_mapping({"population": 12, "seed": 4})
    state = Genreg().breed(hand_made_state(12), cfg)  # a brood
    expected = state.population.genomes(np.arange(12))
    trust = state.population.trust.copy()
    writer = CheckpointWriter(tmp_path)
    done = []
    writer.submit(state, cfg.to_dict(), lambda: done.append(checkpoint_generations(tmp_path)))
    assert state.population.W is None  # still a brood for the run
    state.population.brood.source[:] = 0.0  # the run goes on reusing its buffers
    state.population.trust[:] = 7.0
    changed = state.population.genomes(np.arange(12))
    for g in (6, 7):
        state.generation = g
        writer.submit(state, cfg.to_dict())
    writer.close()
    assert done == [[5]]
    assert checkpoint_generations(tmp_path) == [6, 7]
    back, _ = read_checkpoint(tmp_path / "checkpoints" / "state_gen00007.h5")
    assert back.population.W.tobytes() == changed.tobytes()
    np.testing.assert_array_equal(back.population.trust, 7.0)
    # the first snapshot held the genomes and trust at its submit, before the changes
    writer = CheckpointWriter(tmp_path / "first")
    state = Genreg().breed(hand_made_state(12), cfg)
    writer.submit(state, cfg.to_dict())
    state.population.brood.source[:] = 0.0
    state.population.trust[:] = 7.0
    writer.close()
    back = final_state(tmp_path / "first")
    assert back.population.W.tobytes() == expected.tobytes() and back.generation == 5
    np.testing.assert_array_equal(back.population.trust, trust)


@pytest.mark.parametrize("crossover", ["none", "mask", "gene"])
def test_a_brood_is_stored_as_its_description_and_read_back_as_the_same_rows(tmp_path, crossover):
    """GENREG's next generation is a brood (survivors' rows + streams): the checkpoint stores that
    description, a fraction of W's size, and reading builds exactly the rows the run would score."""
    cfg = from_mapping({"population": 40, "seed": 4, "crossover": crossover})
    state = Genreg().breed(hand_made_state(40), cfg)
    brood = state.population.brood
    assert state.population.W is None and brood.source.shape[0] == 8  # 20% survive
    expected = state.population.genomes(np.arange(40))
    path = write_checkpoint(tmp_path, state, cfg.to_dict())
    with h5py.File(path) as f:
        assert "W" not in f and f["brood/source"].shape == brood.source.shape
        assert f["brood"].attrs["crossover"] == crossover
    back, _ = read_checkpoint(path)
    assert back.population.W.tobytes() == expected.tobytes()
    for name in ("trust", "ids", "parent_ids", "age"):
        assert getattr(back.population, name).tobytes() == getattr(state.population, name).tobytes(), name
    assert back.generation == state.generation
    dense = write_checkpoint(tmp_path / "dense", hand_made_state(40, generation=5), cfg.to_dict())
    assert path.stat().st_size < 0.5 * dense.stat().st_size


def test_checkpoint_writer_reports_a_failed_write(tmp_path):
    blocked = tmp_path / "run"
    blocked.mkdir()
    (blocked / "checkpoints").write_text("a file where the folder should be")
    writer = CheckpointWriter(blocked)
    writer.submit(hand_made_state(3), Config().to_dict())
    with pytest.raises(OSError):
        writer.close()
    quiet = CheckpointWriter(blocked)
    quiet.submit(hand_made_state(3), Config().to_dict())
    quiet.close(check=False)  # the run is failing already: no second error


def test_checkpoint_newer_format_version_refused(tmp_path):
    state = hand_made_state(3)
    path = write_checkpoint(tmp_path, state, Config().to_dict())
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 99
    with pytest.raises(CheckpointError, match="version 99"):
        read_checkpoint(path)
    with pytest.raises(CheckpointError, match="written by a newer genreg"):  # never skipped (and overwritten)
        latest_checkpoint(tmp_path)


@pytest.mark.parametrize("reader, fmt", [
    ("genreg.runs.store:read_checkpoint", "genreg.state"),
    ("genreg.hybrid.run:read_state", None),
    ("genreg.hpo.model:load_model", "genreg.hpo_model"),
    ("genreg.hpo.rundir:read_population", "genreg.hpo_population"),
])
def test_every_hdf5_reader_refuses_a_foreign_or_newer_file_naming_it(tmp_path, reader, fmt):
    """One format gate (``store.check_format``) for all four HDF5 readers."""
    import importlib

    module, name = reader.split(":")
    module = importlib.import_module(module)
    read = getattr(module, name)
    fmt = fmt or module.FORMAT
    path = tmp_path / "file.h5"
    for attrs, message in (({"format": "something else", "format_version": 1}, "is not a genreg"),
                           ({"format": fmt, "format_version": 99}, "version 99")):
        with h5py.File(path, "w") as f:
            f.attrs.update(attrs)
        with pytest.raises(CheckpointError, match=message) as info:
            read(path)
        assert str(path) in str(info.value)


def test_checkpoint_keeps_last_two(tmp_path):
    state = hand_made_state(3)
    for g in (1, 2, 3, 10, 4):
        state.generation = g
        write_checkpoint(tmp_path, state, Config().to_dict())
    assert checkpoint_generations(tmp_path) == [4, 10]  # the two largest generations, not the two newest files
    state = hand_made_state(3)
    other = tmp_path / "b"
    for g in range(5):
        state.generation = g
        write_checkpoint(other, state, Config().to_dict())
    assert checkpoint_generations(other) == [3, 4]
    path, back, _ = latest_checkpoint(other)
    assert path.name == "state_gen00004.h5" and back.generation == 4


def test_checkpoint_order_past_99999_generations(tmp_path):
    state = hand_made_state(3)
    for g in (99998, 99999, 100000):
        state.generation = g
        write_checkpoint(tmp_path, state, Config().to_dict())
    _, back, _ = latest_checkpoint(tmp_path)
    assert back.generation == 100000
    assert len(list((tmp_path / "checkpoints").glob("state_gen*.h5"))) == 2


def test_history_truncate(tmp_path):
    h = History(tmp_path / "m.csv", ["generation", "x"])
    for g in range(5):
        h.append([g, g * 0.5])
    h.close()
    h.truncate(3)
    assert read_history(tmp_path / "m.csv")["generation"].tolist() == [0, 1, 2]


# --------------------------------------------------------------------------
# Founders stored as "the founders of seed S" (format 6)
# --------------------------------------------------------------------------


CFG = from_mapping({"seed": 6}).to_dict()


def founder_state(P: int = 40, seed: int = 6, scale=None):
    from genreg.network.population import Population
    from helpers import EvolutionState

    return EvolutionState(Population.random(TINY, P, seed=seed, scale=scale), generation=0)


@pytest.mark.parametrize("scale", [None, 0.25])
def test_founders_are_stored_as_their_seed_and_drawn_again_on_reading(tmp_path, scale):
    from genreg.network.population import Founders

    state = founder_state(scale=scale)
    state.population.trust[:] = np.arange(40) * 0.5  # the bookkeeping is stored as it is
    path = write_checkpoint(tmp_path, state, CFG)
    with h5py.File(path) as f:
        assert "W" not in f and "brood" not in f
        assert f["founders"].attrs["seed"] == 6 and f["founders"].attrs["rows"] == 40
        assert ("scale" in f["founders"].attrs) == (scale is not None)
    back, _ = read_checkpoint(path)
    assert_same_state(state, back)
    assert back.population.founders == Founders(6, scale)
    dense = write_checkpoint(tmp_path / "dense", dataclasses_replace(state, generation=1), CFG)
    assert path.stat().st_size < 0.5 * dense.stat().st_size


def dataclasses_replace(state, **changes):
    import dataclasses

    return dataclasses.replace(state, **changes)


def test_founders_changed_in_place_are_stored_as_rows_or_refused_on_reading(tmp_path, monkeypatch):
    """A stale ``founders`` mark (W changed after it was drawn) is never read back as founders: a change
    in a probed row is seen when writing (W is stored), any other when reading (the CRC-32 of the rows)."""
    import genreg.runs.store as store

    for row in (0, 39):  # probed
        state = founder_state()
        state.population.W[row, 3] += 1.0
        path = write_checkpoint(tmp_path / str(row), state, CFG)
        with h5py.File(path) as f:
            assert "W" in f and "founders" not in f
        assert read_checkpoint(path)[0].population.W.tobytes() == state.population.W.tobytes()
    monkeypatch.setattr(store, "FOUNDER_CRC_BYTES", 4 * TINY.n_params * 8)  # 8 rows a CRC
    state = founder_state()
    state.population.W[17, 3] += 1.0  # not probed
    path = write_checkpoint(tmp_path / "17", state, CFG)
    with pytest.raises(CheckpointError, match=r"seed 6 do not match the rows they were stored from \(rows 16..23\)"):
        read_checkpoint(path)


@pytest.mark.parametrize("change, message", [
    (lambda g, f: g.attrs.__setitem__("seed", 7), "founders of seed 7 do not match"),
    (lambda g, f: g.attrs.__setitem__("scale", 0.5), "founders of seed 6 do not match"),
    (lambda g, f: g["crc32"].__setitem__(0, 12345), "does not match its checksum"),
    (lambda g, f: g.attrs.__setitem__("crc_rows", 0), "not the CRC-32 of each 0 of 40 rows"),
    (lambda g, f: g.attrs.__setitem__("crc_rows", 1), "not the CRC-32 of each 1 of 40 rows"),
    (lambda g, f: g.attrs.__setitem__("seed", -1), "founders/seed must be a whole number"),
    (lambda g, f: g.attrs.__setitem__("seed", "6"), "founders/seed must be a whole number"),
    (lambda g, f: g.attrs.__setitem__("scale", float("nan")), "founders/scale must be a finite number"),
    (lambda g, f: g.attrs.__setitem__("scale", "big"), "founders/scale must be a finite number"),
    (lambda g, f: g.attrs.__setitem__("rows", 10**12), "of 1000000000000 rows"),
    (lambda g, f: g.attrs.__setitem__("n_params", 3), "rows of 3 parameters"),
    (lambda g, f: g.attrs.__delitem__("rows"), "rows"),
    (lambda g, f: f.create_dataset("W", data=np.zeros((40, 5), np.float32)), "beside the population's rows"),
])
def test_a_damaged_founders_description_is_one_line_error(tmp_path, change, message):
    path = write_checkpoint(tmp_path, founder_state(), CFG)
    with h5py.File(path, "r+") as f:
        change(f["founders"], f)
        reseal(f)
    with pytest.raises(CheckpointError, match=message) as info:
        read_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_version_5_files_with_rows_still_read(tmp_path):
    state = founder_state()
    path = write_checkpoint(tmp_path, dataclasses_replace(state, generation=3), CFG)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = 5
        reseal(f)
    assert read_checkpoint(path)[0].population.W.tobytes() == state.population.W.tobytes()


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
def test_resume_from_the_founders_checkpoint_equals_uninterrupted(tmp_path, mnist_dir, strategy):
    """A run resumed from its generation-0 checkpoint (stored as its founders' seed) is the run that never stopped."""
    from genreg.runs.evolve import resume_run, start_run
    from helpers import final_state, small_cfg

    cfg = small_cfg(strategy=strategy, generations=6, checkpoint_every=3, validation_every=2)
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(cfg, whole, mnist_dir, progress=False)
    assert start_run(cfg.replace(max_minutes=1e-9), part, mnist_dir, progress=False).generation == 1
    (part / "checkpoints" / "state_gen00001.h5").unlink()
    with h5py.File(part / "checkpoints" / "state_gen00000.h5") as f:
        assert "founders" in f and "W" not in f
    assert resume_run(part, {"max_minutes": 0.0}, mnist_dir, progress=False).generation == 6
    assert_same_state(final_state(part), final_state(whole))
    columns = read_history(whole / "metrics.csv")
    resumed = read_history(part / "metrics.csv")
    for name in columns:
        if not name.endswith("seconds"):
            np.testing.assert_array_equal(resumed[name], columns[name], err_msg=name)
