"""First use of the kernels (genreg.kernels.coldstart, workqueue): the compile notice appears on a cold
Numba cache and not on a warm one; one signature per kernel; the progress bar's clock starts after
the first generation (genreg.runs.loop.restart_clock)."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
from tqdm import tqdm

from genreg import kernels
from genreg.kernels import coldstart
from genreg.network.variation import clone_mutate
from genreg.runs.loop import restart_clock

# A run's first kernel launches on a tiny problem: tiles, a brood (population_worker) and one genome.
_FIRST_USE = """
import numpy as np
from genreg.kernels import forward, splitcompile, variation
from genreg.network.batch import SparseBatch
from genreg.network.forward import brood_predict, genome_logits
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.network.variation import Brood
layout = Layout((5, 3, 2), "tanh")
batch = SparseBatch.from_dense(np.eye(5, dtype=np.uint8))
pop = Population.random(layout, 2, seed=0)
keys = np.arange(2, dtype=np.uint64)
brood = Brood(pop.W, np.array([0, 1]), np.full(2, 0.5), np.full(2, 0.5), keys, keys, 0.1, crossover="mask")
brood_predict(layout, brood, batch, np.zeros(5, np.int64))
genome_logits(layout, pop.W[0], batch)
# population_worker used the signatures compiled on two cores (else they appear twice)
assert variation.make_child.signatures in ([], [splitcompile.MAKE_CHILD_SIGNATURE]), variation.make_child.signatures
assert forward.forward_tiles.signatures in ([], [splitcompile.FORWARD_TILES_SIGNATURE]), forward.forward_tiles.signatures
"""


def _first_use(cache_dir) -> str:
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    proc = subprocess.run([sys.executable, "-c", _FIRST_USE], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_notice_on_a_cold_cache_only(tmp_path):
    cold = _first_use(tmp_path)
    assert cold.count("genreg: compiling kernels (first run only, ~") == 1, cold
    assert _first_use(tmp_path) == ""  # warm: silent, and nothing compiled again


class _Dispatcher:
    def __init__(self, cached):
        self.cached = cached


def test_announce_once_per_process_with_the_cold_kernels_estimate(monkeypatch):
    fake = {"population_worker": _Dispatcher(False), "tiles_worker": _Dispatcher(True),
            "stream_keys": _Dispatcher(False)}
    monkeypatch.setattr(coldstart, "_dispatchers", lambda: fake)
    monkeypatch.setattr(coldstart, "is_cached", lambda d: d.cached)
    monkeypatch.setattr(coldstart, "_announced", False)
    out = io.StringIO()
    assert not coldstart.announce_compilation(fake["tiles_worker"], out)  # this one is cached: quiet
    assert coldstart.announce_compilation(fake["population_worker"], out)
    assert not coldstart.announce_compilation(fake["stream_keys"], out)  # once per process
    seconds = coldstart.RUN_KERNELS["population_worker"] + coldstart.RUN_KERNELS["stream_keys"]
    assert out.getvalue() == f"genreg: compiling kernels (first run only, ~{seconds} s)...\n"


def test_a_warm_process_reports_no_cold_kernel_it_used():
    kernels.count_active_features(np.eye(3, dtype=np.uint8), np.zeros(1, np.int64))
    assert coldstart.is_cached(kernels.sparse.tiles_worker)  # compiled here, so its index exists


def test_clone_mutate_and_brood_build_share_one_signature():
    W = np.random.default_rng(0).normal(size=(3, 40)).astype(np.float32)
    clone_mutate(W, [2, 1], np.full(2, 0.3), 0.1, np.arange(2, dtype=np.uint64), base_rates=np.full(2, 0.1),
                 base_keys=np.arange(2, dtype=np.uint64))
    n = len(kernels.population.population_worker.signatures)
    clone_mutate(W, [0, 1, 2], 0.5, 0.1, np.arange(3, dtype=np.uint64))  # broadcast (read-only) inputs
    rates = np.full(3, 0.2)
    rates.flags.writeable = False
    clone_mutate(W, [0, 1, 2], rates, 0.1, np.arange(3, dtype=np.uint64))
    assert len(kernels.population.population_worker.signatures) == n


def test_bar_clock_restarts_after_the_first_generation():
    clock = [0.0]
    bar = tqdm(total=600, file=io.StringIO(), mininterval=0)
    bar._time = lambda: clock[0]  # the bar's own clock, stepped by hand
    bar.reset()
    clock[0] = 38.0  # the first generation compiled the kernels
    restart_clock(bar, 1)
    assert bar.n == 1 and bar.format_dict["elapsed"] == 0 and bar.format_dict["rate"] is None
    clock[0] = 39.0
    bar.update(10)  # 10 generations a second from then on
    d = bar.format_dict
    assert d["n"] == 11 and d["elapsed"] == 1.0
    remaining = (d["total"] - d["n"]) / (d["rate"] or (d["n"] - d["initial"]) / d["elapsed"])
    assert 55 < remaining < 60  # 589 generations at 10/s, not 589 x 38 s
    bar.close()
