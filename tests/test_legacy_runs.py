"""Run directories written by the previous release (0.1.0) still resume, and continue exactly as that release did.

tests/data/legacy-0.1.0 holds four small runs made with genreg 0.1.0 (GENREG, GA,
hybrid, hpo search); ``continued.json`` holds digests of the state that release
reached when it resumed each of them (GENREG and GA to generation 6, hybrid to 3,
the search to 2 breeding rounds: 3 generations in today's count).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from genreg.cli import main as cli
from genreg.runs.rundir import run_kind
from genreg.runs.store import read_checkpoint

LEGACY = Path(__file__).parent / "data" / "legacy-0.1.0"
EXPECTED = json.loads((LEGACY / "continued.json").read_text())
RUNS = {"genreg-run": ("evolve", 6), "ga-run": ("evolve", 6), "hybrid-run": ("hybrid", 3), "hpo-run": ("hpo", 3)}


def _sha(array) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


@pytest.mark.parametrize("name", sorted(RUNS))
def test_legacy_run_resumes_as_the_previous_release_did(tmp_path, name, data_root, monkeypatch):
    kind, generations = RUNS[name]
    run = tmp_path / name
    shutil.copytree(LEGACY / name, run)
    assert not (run / "genreg-run.json").exists()
    assert run_kind(run) == kind  # recognised once by its files, then marked
    assert json.loads((run / "genreg-run.json").read_text())["kind"] == kind
    monkeypatch.setenv("GENREG_DATA", str(data_root))
    assert cli.main(["resume", str(run), "--generations", str(generations), "--no-progress",
                     "--data-dir", str(data_root / "mnist")] if kind != "hpo" else
                    ["resume", str(run), "--generations", str(generations), "--no-progress"]) == 0
    expected = EXPECTED[name]
    if kind == "hpo":
        with h5py.File(run / expected["file"]) as f:
            rows = b"".join(np.ascontiguousarray(f[k]["row"][()]).tobytes() for k in sorted(f.keys(), key=int))
        assert hashlib.sha256(rows).hexdigest() == expected["rows_sha256"]
        return
    if kind == "hybrid":
        with h5py.File(run / expected["file"]) as f:
            W, trust = f["W"][()], f["trust"][()]
    else:  # written now: GENREG's population as a brood, built back here
        population = read_checkpoint(run / expected["file"])[0].population
        W, trust = population.W, population.trust
    assert _sha(W) == expected["W_sha256"]
    assert _sha(trust) == expected["trust_sha256"]


def test_legacy_metrics_header_is_renamed_on_resume(tmp_path, data_root):
    run = tmp_path / "run"
    shutil.copytree(LEGACY / "genreg-run", run)
    assert "best_trust" in (run / "metrics.csv").read_text().splitlines()[0]
    assert cli.main(["resume", str(run), "--generations", "5", "--no-progress", "--data-dir",
                     str(data_root / "mnist")]) == 0
    header, *rows = (run / "metrics.csv").read_text().splitlines()
    assert header.startswith("generation,best_fitness,mean_fitness,best_accuracy")
    assert "class_9" in header and "digit_" not in header
    assert [int(r.split(",")[0]) for r in rows] == [0, 1, 2, 3, 4]
