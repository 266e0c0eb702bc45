"""The up-front memory check of an evolution run covers what the run really allocates.

``run_bytes`` is checked against the peak RSS of real ``genreg evolve`` runs (784-64-10 on
MNIST, a checkpoint every 2 generations), each in its own process: the growth of the
peak RSS (VmHWM) over a baseline process that imports genreg, loads MNIST and the kernels
(what a run holds when ``start_run`` checks) is at most the estimate, and the estimate is
under twice the growth.  A memory assertion, not a timing one.  Measured when written
(MiB: growth / ``run_bytes`` / the old ``copies=2`` estimate): genreg 300: 102 / 161 / 116,
1500: 429 / 549 / 582; ga 300: 313 / 365 / 116, 1000: 928 / 1067 / 388.  Larger runs:
``python tests/test_memory_estimate.py DATA_DIR genreg:20000 ga:10000`` (figures in ``run_rows``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from genreg.errors import PopulationError
from genreg.network.layout import Layout
from genreg.network.population import PER_GENOME_BYTES, check_run_size, population_bytes, run_bytes, run_rows
from genreg.runs.evolve import resume_run, start_run
from genreg.strategies.config import from_mapping

LAYOUT = Layout((784, 64, 10), "tanh")
SAMPLES = 20 * 10  # samples_per_class (default) x classes

# The peak of this process's own memory (VmHWM), not ru_maxrss: a child's ru_maxrss
# starts from its parent's RSS at fork (Linux keeps the forked copy's high-water mark
# across exec), so under pytest it would measure pytest's own size.
PEAK = """
def peak():
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) * 1024 for line in fh if line.startswith("VmHWM:"))
"""

BASELINE = """
import json, sys
PEAK
from genreg.network.layout import Layout
from genreg.runs.evolve import warm_kernels
from genreg.tasks import load_task
task = load_task("mnist", sys.argv[1], seed=0, validation_size=10000)  # kept, as a run keeps it
warm_kernels(Layout((784, 64, 10), "tanh"))
print(json.dumps(peak()))
"""

RUN = """
import json, sys
PEAK
from genreg.cli.main import main
data, out, strategy, population = sys.argv[1:5]
main(["evolve", "--out", out, "--no-progress", "--data-dir", data, "--generations", "5",
      "--set", f"strategy={strategy}", "--set", f"population={population}", "--set", "checkpoint_every=2",
      "--set", "validation_every=2", *(arg for key in sys.argv[5:] for arg in ("--set", key))])
print(json.dumps(peak()))
"""
BASELINE, RUN = (script.replace("PEAK\n", PEAK) for script in (BASELINE, RUN))


def peak_rss(script: str, *args, timeout: float = 300) -> int:
    """Peak RSS in bytes of ``script`` run in a new Python process (its last output line)."""
    done = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-2000:]
    return int(json.loads(done.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def baseline(mnist_dir, tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the peak RSS from /proc/self/status (Linux)")
    # Tiny runs first: they fill Numba's cache (a cold cache would add compilation to
    # the runs' peaks) and their growth is the run's fixed overhead.
    tiny = [peak_rss(RUN, mnist_dir, tmp_path_factory.mktemp(s) / "run", s, 2) for s in ("genreg", "ga")]
    base = peak_rss(BASELINE, mnist_dir)
    for strategy, peak in zip(("genreg", "ga"), tiny):
        print(f"{strategy} population 2: peak RSS growth {(peak - base) >> 20} MiB")
        assert peak - base <= run_bytes(LAYOUT, 2, strategy, built=False, samples=SAMPLES)
    return base


@pytest.mark.parametrize("strategy, sizes", [("genreg", (300, 1500)), ("ga", (300, 1000))])
def test_estimate_covers_the_measured_peak(tmp_path, mnist_dir, baseline, strategy, sizes):
    for population in sizes:
        grown = peak_rss(RUN, mnist_dir, tmp_path / f"run{population}", strategy, population) - baseline
        estimate = run_bytes(LAYOUT, population, strategy, built=False, samples=SAMPLES)
        print(f"{strategy} population {population}: peak RSS growth {grown >> 20} MiB, estimate {estimate >> 20} MiB, "
              f"old estimate {population_bytes(LAYOUT, population, copies=2) >> 20} MiB")
        assert grown <= estimate, (strategy, population, grown, estimate)
        assert estimate < 2 * grown, (strategy, population, grown, estimate)


def test_estimate_covers_an_evolution_strategy_whose_update_grows_with_the_rank(tmp_path, mnist_dir, baseline):
    """PGPE and SNES hold r^2 squared factors per pair of an update chunk: at rank 24 they dominate the run."""
    grown = peak_rss(RUN, mnist_dir, tmp_path / "run", "snes", 200, "rank=24") - baseline
    estimate = run_bytes(LAYOUT, 200, "snes", samples=SAMPLES, rank=24)
    print(f"snes rank 24, population 200: peak RSS growth {grown >> 20} MiB, estimate {estimate >> 20} MiB, "
          f"at rank 1 {run_bytes(LAYOUT, 200, 'snes', samples=SAMPLES, rank=1) >> 20} MiB")
    assert grown <= estimate < 2 * grown, (grown, estimate)


def test_rows_by_strategy():
    """A checkpoint of r rows costs r + 9r/8; then P + 2S (GENREG brood), 2P + S (GENREG built) or 3P (GA)."""
    assert run_rows(1000, "genreg", 0.2, built=False) == 1000 + 200 + 200 + 225
    assert run_rows(1000, "genreg", 0.2, built=True) == 2000 + 200 + 1000 + 1125
    assert run_rows(1000, "ga") == 3000 + 1000 + 1125
    assert run_rows(1000, "some-new-strategy") == run_rows(1000, "ga")  # unknown: the conservative count
    assert run_rows(1, "genreg", 0.01, built=False) == 1 + 1 + 1 + 2  # at least one survivor, whole rows
    row = LAYOUT.n_params * 4 + PER_GENOME_BYTES
    assert run_bytes(LAYOUT, 10, "ga") - run_bytes(LAYOUT, 1, "ga") == (52 - 6) * row
    assert run_bytes(LAYOUT, 10, "ga", samples=5) - run_bytes(LAYOUT, 10, "ga") == 10 * 5 * 11 * 4


FOUNDERS = """
import json, sys, tempfile
PEAK
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.runs.store import read_checkpoint, write_checkpoint
from genreg.strategies.base import EvolutionState
from genreg.strategies.config import from_mapping
def round_trip(size):
    state = EvolutionState(Population.random(Layout((784, 64, 10), "tanh"), size, seed=0), 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = write_checkpoint(tmp, state, from_mapping({"hidden_sizes": [64]}).to_dict())
        del state
        return read_checkpoint(path)
round_trip(2)  # (the modules a read imports)
start = peak()
back = round_trip(int(sys.argv[1]))
print(json.dumps(peak() - start))
""".replace("PEAK\n", PEAK)


def test_the_founders_checkpoint_holds_no_copy_of_the_population():
    """Drawing 2,000 founders, writing the generation-0 checkpoint and reading it back peaks at one
    population (the checkpoint is the founders' seed; reading draws them again), not two or three."""
    if not sys.platform.startswith("linux"):
        pytest.skip("reads the peak RSS from /proc/self/status (Linux)")
    grown = peak_rss(FOUNDERS, 2000)
    assert grown < 1.1 * population_bytes(LAYOUT, 2000), grown  # measured: 1.02


def test_refusal_names_the_population_the_need_and_what_is_available(monkeypatch):
    import genreg.network.population as population_module

    monkeypatch.setattr(population_module, "available_memory", lambda: 100 << 20)
    needed = run_bytes(LAYOUT, 4000, "genreg", built=False)
    with pytest.raises(PopulationError) as info:
        check_run_size(LAYOUT, 4000, "genreg", built=False)
    message = str(info.value)
    assert "population 4000" in message and f"({needed} bytes)" in message and f"({100 << 20} bytes)" in message
    assert "\n" not in message
    # what the process already holds (a loaded checkpoint) is not asked for twice
    assert check_run_size(LAYOUT, 4000, "genreg", built=False, held=needed - (50 << 20)) == 50 << 20
    with pytest.raises(PopulationError, match="positive integer"):
        check_run_size(LAYOUT, 0, "ga")


def test_resume_to_a_population_that_does_not_fit_is_refused_before_writing(tmp_path, mnist_dir, monkeypatch):
    import genreg.network.population as population_module

    run = tmp_path / "run"
    start_run(from_mapping(dict(population=10, generations=2, checkpoint_every=1)), run, mnist_dir, progress=False)
    config = (run / "config.toml").read_text()
    # room for the run as it is, not for one 100 times larger
    room = run_bytes(LAYOUT, 10, "genreg", built=False, samples=SAMPLES) * 2
    monkeypatch.setattr(population_module, "available_memory", lambda: room)
    with pytest.raises(PopulationError, match="population 1000 "):
        resume_run(run, {"population": 1000, "generations": 3}, mnist_dir, progress=False)
    assert (run / "config.toml").read_text() == config
    assert resume_run(run, {"generations": 3}, mnist_dir, progress=False).generation == 3


def main(argv: list[str]) -> None:
    """Print each run's peak RSS growth beside ``run_bytes``: ``python tests/test_memory_estimate.py DATA_DIR
    STRATEGY:P ...`` (784-64-10 on MNIST, 5 generations, a checkpoint every 2), one process per run."""
    import tempfile

    data, runs = argv[0], argv[1:]
    base = peak_rss(BASELINE, data)
    print(f"baseline (genreg, MNIST, kernels): {base >> 20} MiB")
    for spec in runs:
        strategy, population = spec.split(":")
        with tempfile.TemporaryDirectory() as tmp:
            grown = peak_rss(RUN, data, f"{tmp}/run", strategy, population, timeout=3600) - base
        estimate = run_bytes(LAYOUT, int(population), strategy, built=False, samples=SAMPLES)
        row = population_bytes(LAYOUT, 1)
        print(f"{strategy} P={population}: peak RSS growth {grown >> 20} MiB ({grown / row / int(population):.2f} "
              f"populations), run_bytes {estimate >> 20} MiB ({estimate / row / int(population):.2f}), "
              f"estimate/growth {estimate / grown:.2f}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
