"""``genreg data`` (genreg.cli.data): list, download, verify; and a start on missing data creates nothing."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from genreg.cli import data as data_cli
from genreg.errors import DataError
from genreg.tasks import download as dl
from genreg.tasks.datasets import NUMBERS_SHA256
from test_tasks_datasets import statlib_text


def run(argv) -> int:
    """``genreg data ARGV`` through a parser of its own (as genreg.cli.main registers it)."""
    parser = argparse.ArgumentParser(prog="genreg")
    data_cli.add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    return args.func(args)


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    monkeypatch.delenv("GENREG_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def boston_mirror(server, monkeypatch):
    """A mirror serving a small Boston table in StatLib's layout (checksum made to match) at $GENREG_BOSTON_MIRRORS."""
    www, url, requests = server
    values = np.round(np.random.default_rng(4).uniform(0, 50, (12, 14)), 3)
    monkeypatch.setitem(NUMBERS_SHA256, "boston_housing.csv", dl.numbers_sha256(values))
    (www / "statlib").mkdir()
    (www / "statlib" / "boston").write_text(statlib_text(values))
    monkeypatch.setenv("GENREG_BOSTON_MIRRORS", f"{url}/statlib/")
    return www, url, requests


def test_list_names_every_dataset_its_folder_and_the_rule(tmp_path, capsys, monkeypatch):
    root = tmp_path / "root"
    assert run(["--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"data root: {root} (given by --data-dir)" in out
    for name, folder in (("mnist", "mnist"), ("fashion-mnist", "fashion-mnist"), ("wine", "wine-quality"),
                         ("boston", "boston-housing")):
        line = next(ln for ln in out.splitlines() if ln.split()[:1] == [name])
        assert "missing" in line and line.endswith(str(root / folder)), line
    assert f"get them with: genreg data download mnist fashion-mnist wine boston --data-dir {root}" in out
    assert not root.exists()  # listing creates nothing

    monkeypatch.setenv("GENREG_DATA", str(tmp_path / "env"))
    assert run(["list"]) == 0
    assert f"data root: {tmp_path / 'env'} (from $GENREG_DATA)" in capsys.readouterr().out
    monkeypatch.delenv("GENREG_DATA")
    assert run([]) == 0
    out = capsys.readouterr().out
    assert f"data root: {tmp_path / 'xdg' / 'genreg'} (the user cache $XDG_CACHE_HOME/genreg" in out


def test_list_real_data(data_root, capsys):
    assert run(["--data-dir", str(data_root), "list", "--details", "wine", "boston"]) == 0
    out = capsys.readouterr().out
    assert out.count("verified") == 5  # two datasets, three files
    assert "Cortez" in out and "Harrison" in out and "$GENREG_WINE_MIRRORS" in out


def test_download_then_verify(boston_mirror, tmp_path, capsys):
    _, _, requests = boston_mirror
    root = tmp_path / "root"
    assert run(["download", "boston", "--data-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert f"boston: downloading 1 file of Boston Housing into {root / 'boston-housing'}" in out
    assert "boston_housing.csv: 12 rows from" in out and "checksum verified" in out and "boston: verified" in out
    assert requests == ["/statlib/boston"]
    assert run(["--data-dir", str(root), "download", "boston"]) == 0  # the option before the action works too
    assert "already there (verified)" in capsys.readouterr().out and len(requests) == 1
    assert run(["verify", "boston", "--data-dir", str(root)]) == 0
    assert "verified" in capsys.readouterr().out
    # a damaged file: verify fails and says why; download fetches it again
    path = root / "boston-housing" / "boston_housing.csv"
    path.write_text(path.read_text().replace("e+01", "e+00", 1))
    assert run(["verify", "--data-dir", str(root)]) == 1
    out = capsys.readouterr().out
    assert "corrupt" in out and "sha256 of the numbers" in out
    assert run(["download", "boston", "--data-dir", str(root)]) == 0
    assert run(["verify", "boston", "--data-dir", str(root)]) == 0
    capsys.readouterr()
    # verify: a dataset asked for by name that is missing fails; missing ones are otherwise only listed
    assert run(["verify", "wine", "--data-dir", str(root)]) == 1
    assert run(["verify", "--data-dir", str(root)]) == 0


def test_download_failure_exits_1_and_leaves_nothing(server, tmp_path, capsys, monkeypatch):
    www, url, _ = server
    (www / "bad").mkdir()
    (www / "bad" / "winequality-red.csv").write_text('"a";"b"\n1;2\n')
    monkeypatch.setenv("GENREG_WINE_MIRRORS", f"{url}/bad")
    root = tmp_path / "root"
    assert run(["download", "wine", "mnist", "--data-dir", str(root)]) == 1
    captured = capsys.readouterr()
    assert "2 numbers do not make rows of 12 columns" in captured.err
    assert "Connection refused" in captured.err  # MNIST's mirrors point at a closed port in the tests
    assert "could not download wine, mnist" in captured.err
    assert "$GENREG_WINE_MIRRORS" in captured.err and "genreg data download" not in captured.err
    assert not root.exists()


def test_unknown_name_and_all(capsys):
    with pytest.raises(DataError, match="unknown dataset 'cifar'"):
        run(["download", "cifar"])
    assert data_cli._selected(["all"]) == data_cli._selected([]) == ["mnist", "fashion-mnist", "wine", "boston"]
    assert data_cli._selected(["wine-white", "wine", "boston-housing"]) == ["wine", "boston"]


def test_wired_into_genreg(capsys, tmp_path):
    from genreg.cli import main

    if main._data_module() is None:
        pytest.skip("genreg.cli.main does not register `genreg data`")
    assert main.main(["data", "--data-dir", str(tmp_path)]) == 0
    assert "get them with: genreg data download" in capsys.readouterr().out


# ----------------------------------------------------------------------------- a start on missing data


def _genreg(argv, env) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("genreg")
    cmd = [str(script)] if script.exists() else [sys.executable, "-m", "genreg.cli.main"]
    return subprocess.run(cmd + argv, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("argv, name", [
    (["evolve", "--generations", "1", "--no-progress"], "mnist"),
    (["evolve", "--task", "wine", "--generations", "1", "--no-progress"], "wine"),
    (["hybrid", "--no-progress", "--set", "population=4"], "mnist"),
    (["hpo", "--task", "boston", "--no-progress"], "boston"),
    (["hpo", "--task", "mnist", "--no-progress"], "mnist"),
], ids=["evolve", "evolve-wine", "hybrid", "hpo-boston", "hpo-mnist"])
def test_a_start_on_missing_data_creates_nothing(tmp_path, argv, name):
    root = tmp_path / "empty-root"
    root.mkdir()
    env = dict(os.environ, GENREG_DATA=str(root))
    out = tmp_path / "run"
    proc = _genreg([*argv, "--out", str(out)], env)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"genreg data download {name}" in proc.stderr and str(root) in proc.stderr
    assert not out.exists(), sorted(p.name for p in out.iterdir())
    assert "run directory" not in proc.stdout  # nor announces one
    assert not any(root.iterdir())  # nor any empty data folder


def test_details_show_the_mirrors_a_download_would_use(data_root, capsys, monkeypatch):
    monkeypatch.setenv("GENREG_WINE_MIRRORS", "http://127.0.0.1:9/wine")
    monkeypatch.delenv("GENREG_BOSTON_MIRRORS", raising=False)  # (the suite points every data set at a dead port)
    assert run(["--data-dir", str(data_root), "list", "--details", "wine", "boston"]) == 0
    out = capsys.readouterr().out
    assert "mirrors (from $GENREG_WINE_MIRRORS): http://127.0.0.1:9/wine" in out
    assert "mirrors ($GENREG_BOSTON_MIRRORS overrides them): http://lib.stat.cmu.edu" in out
