"""Hostile and odd genome files: expansion bombs, unprintable metadata, overflowing values (issue: nothing hostile gets through)."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from genreg.cli import main as cli
from genreg.errors import CheckpointError
from genreg.genome.checkpoint import load_genome

PLAIN = {"sizes": [3, 2], "hidden_activation": "tanh", "output_activation": "identity"}


def _genreg_file(path: Path, **changes) -> Path:
    obj = {"format": "genreg.genome", "version": 1, "layout": dict(PLAIN), "weights": np.zeros(8, np.float32),
           "trust": 0.0, "metadata": {}}
    obj.update(changes)
    path.write_bytes(pickle.dumps(obj, protocol=4))
    return path


def _nested(levels: int, leaf):
    x = [leaf]
    for _ in range(levels):
        x = [x, x]  # memo references: 2**levels leaves from a few bytes
    return x


BOMB_SCRIPT = textwrap.dedent("""
    import pickle, resource, sys, time
    from genreg.errors import CheckpointError
    from genreg.genome.checkpoint import load_genome
    t0 = time.perf_counter()
    try:
        load_genome(sys.argv[1])
        print("loaded")
    except CheckpointError as exc:
        print("refused", time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
""")


@pytest.mark.parametrize("where", ["w1", "metadata.generation", "genome.id"])
def test_expansion_bomb_is_refused_quickly_in_little_memory(tmp_path, where):
    bomb = _nested(30, 0.5)
    if where == "w1":
        obj = {"controller": {"input_size": 784, "hidden_size": 64, "output_size": 10, "w1": bomb,
                              "b1": [0.0] * 64, "w2": [[0.0] * 64] * 10, "b2": [0.0] * 10},
               "genome": {"id": 1, "trust": 1.0}}
    elif where == "genome.id":
        obj = {"controller": {"input_size": 2, "hidden_size": 1, "output_size": 1, "w1": [[0.0, 0.0]], "b1": [0.0],
                              "w2": [[0.0]], "b2": [0.0]}, "genome": {"id": bomb, "trust": 1.0}}
    else:
        obj = None
    path = tmp_path / "bomb.pkl"
    if obj is None:
        _genreg_file(path, metadata={"generation": bomb})
    else:
        path.write_bytes(pickle.dumps(obj, protocol=4))
    assert path.stat().st_size < 4000
    baseline = subprocess.run([sys.executable, "-c", "import resource, genreg.genome.checkpoint; "
                               "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"],
                              capture_output=True, text=True, check=True)
    proc = subprocess.run([sys.executable, "-c", BOMB_SCRIPT, str(path)], capture_output=True, text=True, timeout=60)
    word, seconds, peak_kb = proc.stdout.split()  # (the time is bounded by the timeout, not asserted: ~1 ms here)
    assert word == "refused"
    assert int(peak_kb) - int(baseline.stdout) < 100 * 1024  # under 100 MB beyond the import itself


@pytest.mark.parametrize("metadata", [
    {"tags": {"a", "b"}}, {"raw": b"\x00\xff"}, {"z": 1 + 2j}, {(1, 2): "tuple key"}, {"x": float("nan")},
])
def test_eval_json_of_odd_metadata_is_complete_valid_json(tmp_path, mnist_dir, metadata):
    path = tmp_path / "g.pkl"
    obj = {"format": "genreg.genome", "version": 1, "layout": {"sizes": [784, 10], "hidden_activation": "tanh",
                                                                "output_activation": "identity"},
           "weights": np.zeros(7850, np.float32), "trust": 0.0, "metadata": {"seed": 1, **metadata}}
    path.write_bytes(pickle.dumps(obj, protocol=4))
    out = tmp_path / "new-folder" / "report.json"
    assert cli.main(["eval", str(path), "--data-dir", str(mnist_dir), "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["seed"] == 1 and report["n_total"] == 10000


@pytest.mark.parametrize("changes, message", [
    ({"trust": 10 ** 400}, "trust must be a finite number"),
    ({"layout": {"sizes": [3, float("inf")]}}, "whole numbers"),
    ({"layout": {"sizes": [3, 10 ** 400]}}, "at most"),
    ({"format": np.array([1, 2])}, "unknown checkpoint format"),
])
def test_overflowing_values_are_clear_errors(tmp_path, changes, message):
    path = _genreg_file(tmp_path / "g.pkl", **changes)
    with pytest.raises(CheckpointError, match=message):
        load_genome(path)


def test_eval_json_that_cannot_be_written_is_one_line(tmp_path, mnist_dir, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    shipped = Path(__file__).resolve().parents[1] / "checkpoints" / "mnist" / "genreg-protocol-600gen-784-64-10-seed0.pkl"
    assert cli.main(["eval", str(shipped), "--data-dir", str(mnist_dir), "--json", str(blocker / "r.json")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("genreg: error: cannot write") and "r.json" in err[0]
