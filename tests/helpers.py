"""Helpers shared by several test modules (``from helpers import ...``).

Tiny evolution states and runs (strategies, runs, plots), random inputs and weights for the
forward kernels, layouts, and MNIST-shaped IDX bytes.
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import naive
from genreg.network.layout import Layout, ACTIVATIONS
from genreg.network.population import Population
from genreg.runs.evolve import start_run
from genreg.runs.store import latest_checkpoint
from genreg.strategies.base import EvolutionState
from genreg.strategies.config import Config, from_mapping
from genreg.strategies.ga import GAState
from genreg.streams import Purpose


#: A tiny run: 784-16-10, 20 genomes, 30-image episodes.
SMALL = dict(population=20, hidden_sizes=[16], samples_per_class=3, validation_size=1000)


def small_cfg(**changes) -> Config:
    return from_mapping({**SMALL, **changes})


def final_state(run_dir) -> EvolutionState:
    _, state, _ = latest_checkpoint(run_dir)
    return state


def assert_same_state(s1: EvolutionState, s2: EvolutionState) -> None:
    p1, p2 = s1.population, s2.population
    assert s1.generation == s2.generation
    assert p1.W.tobytes() == p2.W.tobytes()
    for name in ("trust", "ids", "parent_ids", "age"):
        np.testing.assert_array_equal(getattr(p1, name), getattr(p2, name), err_msg=name)
    assert p1.next_id == p2.next_id
    for key, value in s1.scalars().items():
        other = s2.scalars()[key]
        assert value == other or (math.isnan(value) and math.isnan(other)), key


def mutation_positions(seed: int, generation: int, slot: int, purpose: Purpose, rate: float, n: int) -> set:
    """Entries the stream (seed, generation, slot, purpose) mutates at ``rate`` in a row of n."""
    _, positions, _ = naive.mutate_row(np.zeros(n, np.float32), rate, 1.0,
                                       naive.stream_key(seed, generation, slot, int(purpose)))
    return set(positions.tolist())


def genreg_cmd(*args) -> list[str]:
    return [sys.executable, "-m", "genreg", *map(str, args)]


def small_cli_args(out, data_dir, generations, *extra) -> list[str]:
    return genreg_cmd("evolve", "--out", out, "--generations", generations, "--no-progress",
                      "--set", "population=20", "--set", "hidden_sizes=[16]", "--set", "samples_per_class=3",
                      "--set", "validation_size=1000", "--data-dir", data_dir, *extra)


def wait_for(predicate, proc: subprocess.Popen, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"process exited ({proc.returncode}) before {what}:\n{out}\n{err}")
        if time.monotonic() > deadline:
            proc.kill()
            proc.communicate()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def sigkill_when(argv: list, ready, timeout: float, what: str, env=None, children: bool = False) -> dict:
    """Run ``argv``, SIGKILL it once ``ready()`` holds (within ``timeout`` s, ``what`` names the wait) and
    check it died by that signal; with ``children``, returns its child processes at the kill,
    ``{psutil.Process: name}`` (else ``{}``)."""
    import signal

    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(ready, proc, timeout, what)
        if children:
            import psutil

            children = {p: p.name() for p in psutil.Process(proc.pid).children(recursive=True)}
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == -signal.SIGKILL
    return children or {}


def tiny_hybrid_run(run_dir, architecture: str, population: int, seed: int, data_dir) -> Path:
    """A one-generation hybrid run of 784-ARCHITECTURE-10 on 300 training images, through the CLI."""
    from genreg.cli import main as cli

    assert cli.main(["hybrid", "--out", str(run_dir), "--set", f"architecture='{architecture}'", "--set",
                     f"population={population}", "--set", "train_images=300", "--set", "validation_size=200",
                     "--set", "baseline=false", "--seed", str(seed), "--generations", "1", "--data-dir",
                     str(data_dir), "--no-progress"]) == 0
    return Path(run_dir)


def one_error_line(capsys) -> str:
    """The one line a CLI command wrote to stderr, checked to be a ``genreg: error:`` line."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genreg: error:"), err
    return err[0]


def checkpoint_generations(run_dir) -> list[int]:
    return sorted(int(p.name[9:14]) for p in (Path(run_dir) / "checkpoints").glob("state_gen*.h5"))


TINY = Layout((50, 8, 10))  # 498 parameters: breeding does not need MNIST-sized genomes


def hand_made_state(P: int, seed: int = 1, generation: int = 4) -> EvolutionState:
    pop = Population.random(TINY, P, seed=seed)
    rng = np.random.default_rng(seed)
    pop.trust = rng.permutation(P) * 2.5 - 10.0  # distinct, some negative
    pop.ids = pop.ids + 1000  # ids are not row numbers
    pop.next_id = 1000 + P
    return EvolutionState(pop, generation=generation)


def ga_state(P: int, seed: int = 3) -> GAState:
    state = GAState(hand_made_state(P, seed=seed).population, generation=4)
    state.population.trust = np.random.default_rng(seed).permutation(P) / P  # accuracies, distinct
    return state


@pytest.fixture(scope="module")
def determinism_runs(tmp_path_factory, mnist_dir):
    """Two runs with the same config and seed, one with another seed (10 generations each)."""
    root = tmp_path_factory.mktemp("determinism")
    dirs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        dirs[name] = root / name
        start_run(small_cfg(generations=10, seed=seed, validation_every=3), dirs[name], mnist_dir, progress=False)
    return dirs


def random_weights(layout: Layout, P: int, rng: np.random.Generator) -> np.ndarray:
    """``(P, n_params) float32``: every tensor of layer l ~ N(0, 1/sqrt(n_l))."""
    W = np.empty((P, layout.n_params), dtype=np.float32)
    for l in range(layout.n_layers):
        std = 1.0 / np.sqrt(layout.sizes[l])
        for name in (f"W{l}", f"b{l}"):
            t = layout.tensor(name)
            W[:, t.offset : t.stop] = rng.normal(0.0, std, size=(P, t.size))
    return W


def random_inputs(kind: str, B: int, n: int, rng: np.random.Generator):
    """``(X as given to the kernels, the same X as float64 for the twin)``, ~70% zeros."""
    mask = rng.random((B, n)) < 0.3
    if kind == "float32":
        X = (rng.normal(0.0, 1.0, size=(B, n)) * mask).astype(np.float32)
        return X, X.astype(np.float64)
    X = (rng.integers(1, 256, size=(B, n)) * mask).astype(np.uint8)
    return X, X.astype(np.float64) / 255.0


ACTS = list(ACTIVATIONS)


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256(repr(parts).encode()).digest()[:8], "little")


CROSSOVER_LAYOUTS = [Layout((30, 7, 5)), Layout((70, 3, 2)), Layout((13, 9, 4, 6))]


VERTICAL = dict(sizes=(784, 256, 128, 10), hidden_activation="relu", blocks=((256,), (64, 64), (10,)))


def idx_bytes(magic: int, dims, payload: bytes) -> bytes:
    return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims) + payload


def images_bytes(n: int, rows: int = 28, cols: int = 28, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=n * rows * cols, dtype=np.uint8)
    return idx_bytes(0x803, (n, rows, cols), pixels.tobytes())


def labels_bytes(n: int, offset: int = 0) -> bytes:
    return idx_bytes(0x801, (n,), ((np.arange(n) + offset) % 10).astype(np.uint8).tobytes())


def full_disk_after(monkeypatch, n_ok: int):
    """Make every HDF5 write through ``genreg.runs.store.atomic_h5`` after the first ``n_ok`` fail as a full disk would."""
    import errno

    import genreg.runs.store as store

    real = store.atomic_h5
    calls = {"n": 0}

    def failing(path):
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path)

    monkeypatch.setattr(store, "atomic_h5", failing)


def random_brood(layout, W, rng, crossover: str, n_children: int = 7):
    """A Brood of ``n_children`` children of the rows ``W`` with mutation, an elite (child 0) and ``crossover``
    ("none", "mask" or "gene": genes of 2 input rows), every key drawn from ``rng``."""
    from genreg.network.variation import Brood, gene_bounds

    C, P = n_children, W.shape[0]
    keys = rng.integers(0, 2**63, size=C).astype(np.uint64)
    return Brood(W, rng.integers(0, P, size=C), np.where(np.arange(C) == 0, 0.0, 0.3),
                 np.where(np.arange(C) % 2 == 1, 0.2, 0.0), keys, keys ^ np.uint64(12345), 0.1,
                 second=rng.integers(0, P, size=C), crossover=crossover, crossover_keys=keys ^ np.uint64(999),
                 gene_bounds=gene_bounds(layout, 2) if crossover == "gene" else None)


def assert_input_gradient(bp, layout, row, X, y, loss: str) -> None:
    """``bp.input_gradient`` of ``X`` matches finite differences of ``bp.loss_and_grad``'s loss, and its value."""
    value, dX = bp.input_gradient(layout, row, X, y, loss=loss)
    assert dX.shape == X.shape
    flat = X.ravel().copy()
    num = naive.numeric_gradient(lambda x: bp.loss_and_grad(layout, row, x.reshape(X.shape), y, loss=loss)[0], flat)
    np.testing.assert_allclose(dX.ravel(), num, rtol=1e-5, atol=1e-9)
    assert value == pytest.approx(bp.loss_and_grad(layout, row, X, y, loss=loss)[0])


def bench_module(filename: str):
    """Import ``bench/<filename>`` as a module, with ``bench/`` on ``sys.path`` while it loads (for the
    scripts that import their neighbours)."""
    import importlib.util

    bench = Path(__file__).resolve().parent.parent / "bench"
    sys.path.insert(0, str(bench))
    try:
        spec = importlib.util.spec_from_file_location("_bench_" + Path(filename).stem, bench / filename)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(bench))
    return module


def reseal(f) -> None:
    """Make a checkpoint edited in place (h5py, "r+") consistent again: its attributes' checksum recomputed, so
    that a test of a crafted, hostile file reaches the field it crafted (a damaged file fails the checksum first)."""
    from genreg.runs.h5fields import ATTRS_CRC, attrs_crc32

    if ATTRS_CRC in f.attrs:
        f.attrs[ATTRS_CRC] = attrs_crc32(f)
