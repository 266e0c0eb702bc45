"""Fuzzing: thousands of mutated genome files, state checkpoints and config files give a result or a clean error.

"Clean" means a GenregError subclass (what the CLI prints as one line), never another
exception.  Mutations are drawn from fixed seeds, so a failure reproduces.
"""

from __future__ import annotations

import io
import pickle

import h5py
import numpy as np
import pytest

from genreg.config import load_toml
from genreg.errors import GenregError
from genreg.genome.checkpoint import load_genome, save_genome, save_genreg_published
from genreg.network.layout import Layout
from genreg.runs.store import read_checkpoint, write_checkpoint
from genreg.strategies.config import from_mapping
from genreg.strategies.ga import GAState
from genreg.network.population import Population


def _mutations(data: bytes, rng: np.random.Generator, count: int):
    """``count`` variants of ``data``: flipped, replaced, inserted or deleted bytes, and truncations."""
    for _ in range(count):
        b = bytearray(data)
        kind = rng.integers(5)
        at = int(rng.integers(len(b)))
        if kind == 0:
            b[at] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            b[at] = int(rng.integers(256))
        elif kind == 2:
            b[at:at] = bytes(rng.integers(0, 256, int(rng.integers(1, 9)), dtype=np.uint8))
        elif kind == 3:
            del b[at:at + int(rng.integers(1, 9))]
        else:
            b = b[:at]
        yield bytes(b)


@pytest.mark.parametrize("fmt", ["genreg", "published"])
def test_mutated_genome_files_load_or_fail_cleanly(tmp_path, fmt):
    layout = Layout((6, 4, 3), "tanh")
    row = np.random.default_rng(1).normal(size=layout.n_params).astype(np.float32)
    path = tmp_path / "g.pkl"
    if fmt == "genreg":
        save_genome(path, layout, row, trust=2.5, metadata={"generation": 3, "tags": ["a", "b"], "seed": 1})
    else:
        save_genreg_published(path, layout, row, genome_id=7, trust=1.5)
    data = path.read_bytes()
    outcomes = {"loaded": 0, "refused": 0}
    for i, variant in enumerate(_mutations(data, np.random.default_rng(2024), 1500)):
        target = tmp_path / f"m{i % 4}.pkl"
        target.write_bytes(variant)
        try:
            ckpt = load_genome(target)
        except GenregError:
            outcomes["refused"] += 1
            continue
        assert ckpt.weights.dtype == np.float32 and np.isfinite(ckpt.weights).all()
        assert ckpt.weights.shape == (ckpt.layout.n_params,)
        outcomes["loaded"] += 1
    assert outcomes["refused"] > 500  # the mutations do break files: this is not a vacuous pass


def _state_file(tmp_path):
    layout = Layout((5, 3, 2), "tanh")
    pop = Population.random(layout, 4, seed=0)
    state = GAState(pop, generation=6, best_fitness=0.5, stagnant=1)
    return write_checkpoint(tmp_path, state, from_mapping({"strategy": "ga"}).to_dict())


ATTRIBUTE_VALUES = [-1, 2 ** 62, 1.5, "x", "{}", "[]", '{"sizes": [5, 1e999, 2]}', np.array([1, 2]), b"\xff", "null"]


def test_mutated_state_checkpoint_attributes_and_datasets_fail_cleanly(tmp_path):
    path = _state_file(tmp_path)
    rng = np.random.default_rng(7)
    names = ["format", "format_version", "generation", "next_id", "layout", "config", "strategy_state", "crc32"]
    refused, loaded = 0, []
    for i in range(400):
        target = tmp_path / "checkpoints" / f"fuzz{i % 3}.h5"
        target.write_bytes(path.read_bytes())
        with h5py.File(target, "r+") as f:
            if rng.random() < 0.6:
                f.attrs[names[int(rng.integers(len(names)))]] = ATTRIBUTE_VALUES[int(rng.integers(len(ATTRIBUTE_VALUES)))]
            else:
                name = ["W", "trust", "ids", "parent_ids", "age"][int(rng.integers(5))]
                del f[name]
                choice = int(rng.integers(4))
                f[name] = [np.array(["a"], dtype="S1"), np.zeros((2, 2, 2)), np.full(3, np.nan), np.arange(9)][choice]
        try:
            state, _ = read_checkpoint(target)
        except GenregError:
            refused += 1
            continue
        loaded.append(state)
    assert refused > 300  # the changes do break files: this is not a vacuous pass
    for state in loaded:  # what loads is a whole, usable state (a changed value that is still valid)
        assert state.generation >= 0 and np.isfinite(state.population.build()).all()


def test_mutated_state_checkpoint_bytes_inside_the_arrays_fail_cleanly(tmp_path):
    path = _state_file(tmp_path)
    with h5py.File(path, "r") as f:
        spans = [(f[n].id.get_offset(), f[n].id.get_storage_size()) for n in ("W", "trust", "ids", "parent_ids", "age")]
    data = path.read_bytes()
    rng = np.random.default_rng(11)
    for i in range(300):
        start, size = spans[int(rng.integers(len(spans)))]
        b = bytearray(data)
        b[start + int(rng.integers(size))] ^= 1 << int(rng.integers(8))
        target = tmp_path / "checkpoints" / "flip.h5"
        target.write_bytes(bytes(b))
        with pytest.raises(GenregError, match="checksum|not finite|non-finite"):
            read_checkpoint(target)


def test_mutated_config_files_parse_or_fail_cleanly(tmp_path):
    base = from_mapping({"strategy": "ga", "hidden_sizes": [8, 4], "population": 30}).to_toml().encode()
    refused = 0
    for i, variant in enumerate(_mutations(base, np.random.default_rng(99), 2000)):
        path = tmp_path / f"c{i % 4}.toml"
        path.write_bytes(variant)
        try:
            cfg = from_mapping(load_toml(path))
        except GenregError:
            refused += 1
            continue
        assert cfg.validate() is cfg
    assert refused > 300
