"""The run loop (genreg.runs.loop): SIGINT or the ``max_minutes`` budget stops a run with a checkpoint."""

from __future__ import annotations

import re
import signal
import subprocess

import pytest

from genreg.errors import ConfigError
from genreg.runs.evolve import resume_run, start_run
from genreg.runs.history import read_history
from genreg.runs.store import read_checkpoint
from genreg.strategies.config import from_mapping
from helpers import small_cli_args, wait_for, checkpoint_generations


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_sigint_checkpoints_and_exits_cleanly(tmp_path, mnist_dir, signum, code):
    run = tmp_path / "interrupted"
    proc = subprocess.Popen(small_cli_args(run, mnist_dir, 100_000, "--set", "checkpoint_every=1000"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = run / "metrics.csv"
    try:
        # wait until the loop runs (a generation recorded), so the handler is installed
        wait_for(lambda: metrics.exists() and len(metrics.read_text().splitlines()) >= 3, proc, 120,
                 "the first generations")
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err  # 128 + the signal: a stopped run is not a finished one
    text = out + err
    assert "genreg resume" in text
    match = re.search(r"after generation (\d+)", text)
    assert match, text
    g = int(match.group(1))
    path = run / "checkpoints" / f"state_gen{g + 1:05d}.h5"
    assert path.exists()
    state, _ = read_checkpoint(path)
    assert state.generation == g + 1
    assert read_history(metrics)["generation"][-1] == g
    assert (run / f"best_genome_mnist_gen{g + 1:05d}.pkl").exists()


def test_max_minutes_stops_with_a_checkpoint_and_resume_continues(tmp_path, mnist_dir):
    cfg = from_mapping(dict(hidden_sizes=[8], population=10, samples_per_class=2, generations=50, validation_size=500,
                            validation_every=0, checkpoint_every=100, max_minutes=1e-9))
    state = start_run(cfg, tmp_path, mnist_dir, progress=False)
    assert state.generation == 1  # the budget is checked after each generation
    assert checkpoint_generations(tmp_path) == [0, 1]
    assert (tmp_path / "best_genome_mnist_gen00001.pkl").exists()
    state = resume_run(tmp_path, {"max_minutes": 0.0, "generations": 4}, mnist_dir, progress=False)
    assert state.generation == 4
    with pytest.raises(ConfigError, match="max_minutes"):
        from_mapping(dict(max_minutes=-1))
