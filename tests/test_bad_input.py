"""Bad input at the CLI: one line naming the problem, exit status 2, nothing written."""

from __future__ import annotations

import pytest

from genreg.cli import main as cli
from helpers import one_error_line


def test_config_file_that_is_not_utf8(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'population = 30\nname = "\xff\xfe"\n')
    assert cli.main(["evolve", "--config", str(bad), "--out", str(tmp_path / "run")]) == 2
    assert "not UTF-8" in one_error_line(capsys) and not (tmp_path / "run").exists()


@pytest.mark.parametrize("args, message", [
    (["--set", "hidden_sizes=[true]"], "hidden_sizes"),
    (["--set", "mutation_scale=inf"], "must be finite"),
    (["--set", "ga_mutation_scale=1e309"], "must be finite"),
    (["--set", "correct_reward=inf"], "correct_reward"),
    (["--seed", str(2 ** 64 - 1)], "seed"),
])
def test_evolve_config_values_are_checked_at_parse_time(tmp_path, capsys, args, message):
    assert cli.main(["evolve", *args, "--out", str(tmp_path / "run")]) == 2
    assert message in one_error_line(capsys) and not (tmp_path / "run").exists()


def test_predict_refuses_a_non_finite_angle(tmp_path, capsys):
    out = tmp_path / "search"
    assert cli.main(["hpo", "--task", "trig", "--out", str(out), "--generations", "1", "--population", "4",
                     "--epochs", "1", "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(out / "best_model.h5"), "--angle", "nan"]) == 2
    assert "finite" in one_error_line(capsys)


def test_attack_sizes_its_children_before_any_work(tmp_path, capsys, mnist_dir):
    run = tmp_path / "run"
    assert cli.main(["hybrid", "--out", str(run), "--set", "architecture='16'", "--set", "population=2",
                     "--set", "train_images=200", "--set", "validation_size=200", "--set", "baseline=false",
                     "--generations", "1", "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["attack", str(run), "--children", "100000000", "--data-dir", str(mnist_dir)]) == 2
    assert "needs" in one_error_line(capsys)
    assert not list(run.glob("attack*"))


def test_csv_values_that_overflow_when_scaled_are_refused(tmp_path, capsys):
    data = tmp_path / "huge.csv"
    rows = ["a,b,y"] + [f"{i},{'1e308' if i in (2, 3) else i % 3},{i / 10}" for i in range(1, 11)]
    data.write_text("\n".join(rows) + "\n")
    assert cli.main(["evolve", "--task", f"csv:{data}", "--target", "y", "--out", str(tmp_path / "run"),
                     "--generations", "1", "--no-progress"]) == 2
    line = one_error_line(capsys)
    assert "column 'b'" in line and "too large" in line and not (tmp_path / "run").exists()


@pytest.mark.parametrize("value", [0.0, float("nan")])
def test_model_with_broken_scaling_is_refused(tmp_path, capsys, value):
    import h5py

    out = tmp_path / "search"
    assert cli.main(["hpo", "--task", "trig", "--out", str(out), "--generations", "1", "--population", "4",
                     "--epochs", "1", "--no-progress"]) == 0
    from genreg.runs.store import array_crc32

    with h5py.File(out / "best_model.h5", "r+") as f:
        f["x_std"][...] = value
        f["x_std"].attrs["crc32"] = array_crc32(f["x_std"][()])  # crafted: its checksum matches
    capsys.readouterr()
    assert cli.main(["predict", str(out / "best_model.h5"), "--angle", "30"]) == 2
    assert "x_std must be finite and > 0" in one_error_line(capsys)


def test_every_hdf5_file_carries_checksums_that_catch_a_flipped_byte(tmp_path, mnist_dir):
    """Hybrid checkpoints, similarity files, search populations and models: one mechanism (write_dataset)."""
    import h5py
    import numpy as np

    from genreg.errors import CheckpointError
    from genreg.hpo.model import load_model
    from genreg.hpo.rundir import read_population
    from genreg.hybrid.run import read_similarity, read_state

    hybrid, search = tmp_path / "hybrid", tmp_path / "search"
    assert cli.main(["hybrid", "--out", str(hybrid), "--set", "architecture='8'", "--set", "population=2",
                     "--set", "train_images=200", "--set", "validation_size=200", "--set", "baseline=false",
                     "--generations", "1", "--data-dir", str(mnist_dir), "--no-progress"]) == 0
    assert cli.main(["hpo", "--task", "trig", "--out", str(search), "--generations", "1", "--population", "4",
                     "--epochs", "1", "--no-progress"]) == 0
    cases = [(hybrid / "checkpoints" / "state_gen00001.h5", "W", read_state),
             (hybrid / "similarity" / "gen00001.h5", "layers", read_similarity),
             (search / "population.h5", "0/row", read_population),
             (search / "best_model.h5", "row", load_model)]
    for path, name, reader in cases:
        reader(path)  # intact: loads
        with h5py.File(path, "r") as f:
            assert "crc32" in f[name].attrs, (path, name)
            at = f[name].id.get_offset()
        data = bytearray(path.read_bytes())
        data[at] ^= 0x40
        path.write_bytes(bytes(data))
        with pytest.raises(CheckpointError, match="checksum"):
            reader(path)


def test_attack_on_an_evolution_run_says_what_it_needs(tmp_path, capsys, mnist_dir):
    run = tmp_path / "run"
    assert cli.main(["evolve", "--out", str(run), "--generations", "1", "--set", "population=8", "--set",
                     "hidden_sizes=[4]", "--set", "validation_size=500", "--data-dir", str(mnist_dir),
                     "--no-progress"]) == 0
    capsys.readouterr()
    assert cli.main(["attack", str(run), "--data-dir", str(mnist_dir)]) == 2
    line = one_error_line(capsys)
    assert "is an evolve run" in line and "hybrid run" in line
