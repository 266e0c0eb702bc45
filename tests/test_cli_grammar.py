"""One CLI grammar: `genreg resume` for every run, `--generations` as the total everywhere, the old
`--resume` spellings as hidden aliases with a notice, counts and generation numbers that agree,
singular/plural, and messages that say what a command needs."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import pytest

from genreg.cli import common
from genreg.cli.main import main
from genreg.genome.checkpoint import save_genome
from genreg.network.layout import Layout
from genreg.network.population import Population

SEARCH = ["--task", "trig", "--population", "4", "--epochs", "1", "--set", "trig_samples=200", "--no-progress"]
EVOLVE = ["--task", "trig", "--set", "population=12", "--set", "hidden_sizes=[4]", "--no-progress"]


def _generations(path: Path) -> list[int]:
    with open(path, newline="") as fh:
        return [int(r["generation"]) for r in csv.DictReader(fh)]


def test_plural_and_span():
    assert common.plural(1, "generation") == "1 generation" and common.plural(2, "generation") == "2 generations"
    assert common.plural(0, "generation") == "0 generations"
    assert common.span(1) == "1 generation (0)" and common.span(261) == "261 generations (0-260)"
    assert common.span(3, first=1) == "3 generations (1-3)"


def test_search_generations_is_the_total_and_resume_continues_to_it(tmp_path, capsys):
    run = tmp_path / "search"
    assert main(["hpo", *SEARCH, "--generations", "2", "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert _generations(run / "generations.csv") == [0, 1]
    assert "2 generations (0-1)" in out and json.loads((run / "summary.json").read_text())["generations_run"] == 2
    assert main(["resume", str(run), "--generations", "3", "--no-progress"]) == 0
    assert _generations(run / "generations.csv") == [0, 1, 2] and "3 generations (0-2)" in capsys.readouterr().out
    assert main(["resume", str(run), "--generations", "2", "--no-progress"]) == 2
    assert "already run 3 generations (0-2)" in capsys.readouterr().err


def test_one_generation_is_singular(tmp_path, capsys):
    assert main(["hpo", *SEARCH, "--generations", "1", "--out", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "1 generation (0)" in out and "1 generations" not in out
    assert main(["evolve", *EVOLVE, "--generations", "1", "--out", str(tmp_path / "e")]) == 0
    out = capsys.readouterr().out
    assert "1 generation (0) in" in out and "1 generations" not in out


def test_no_plural_f_string_without_a_count_check():
    """No message of the package prints "{n} generations" for a count that may be 1."""
    package = Path(__file__).resolve().parents[1] / "genreg"
    offenders = []
    for path in package.rglob("*.py"):
        for i, line in enumerate(path.read_text().splitlines(), 1):
            for m in re.finditer(r"\{([^{}]+)\} generations\b", line):
                if "> 1" not in line and "if done" not in line and "!= 1" not in line:
                    offenders.append(f"{path.relative_to(package)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_evolve_count_and_numbering_agree_after_a_stop(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve", *EVOLVE, "--generations", "50", "--set", "max_minutes=0.000001", "--out", str(run)]) == 0
    text = capsys.readouterr()
    last = _generations(run / "metrics.csv")[-1]
    assert last < 49 and common.span(last + 1) + " in" in text.out
    stop = re.search(r"after generation (\d+)", text.out + text.err)
    assert stop and int(stop.group(1)) == last  # the loop's stop line names the last generation the count ends at


def test_evolve_total_and_resume(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve", *EVOLVE, "--generations", "2", "--out", str(run)]) == 0
    assert _generations(run / "metrics.csv") == [0, 1]
    assert main(["resume", str(run), "--generations", "4", "--no-progress"]) == 0
    assert _generations(run / "metrics.csv") == [0, 1, 2, 3]
    out = capsys.readouterr().out
    assert "4 generations (0-3)" in out
    from genreg.network.population import format_bytes
    from genreg.runs.rundir import disk_usage

    assert f"run directory: {run} holds {format_bytes(disk_usage(run))}" in out  # what the run costs on disk


@pytest.mark.parametrize("command", ["hpo", "hybrid"])
def test_old_resume_spelling_is_a_hidden_alias_with_a_notice(tmp_path, capsys, command):
    run = tmp_path / "search"
    assert main(["hpo", *SEARCH, "--generations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    # `genreg hybrid --resume` on a search resumes it too: the alias is `genreg resume`, which reads the run's kind
    assert main([command, "--resume", str(run), "--generations", "2", "--no-progress"]) == 0
    captured = capsys.readouterr()
    notice = [line for line in captured.err.splitlines() if "deprecated" in line]
    assert notice == [f"genreg: note: `genreg {command} --resume DIR` is deprecated; use `genreg resume {run}`"]
    assert _generations(run / "generations.csv") == [0, 1]


@pytest.mark.parametrize("extra", [["--seed", "3"], ["--out", "x"], ["--task", "wine"], ["--config", "c.toml"]])
def test_old_resume_spelling_refuses_options_of_a_new_run(tmp_path, capsys, extra):
    assert main(["hpo", "--resume", str(tmp_path), *extra]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and extra[0] in err[0] and "genreg resume" in err[0]


def test_resume_of_a_folder_that_is_no_run_says_so(tmp_path, capsys):
    assert main(["resume", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no genreg run" in err[0]


def test_plot_of_a_folder_that_is_not_a_run_says_what_it_needs(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    assert main(["plot", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is not a run directory" in err[0] and "genreg evolve, hybrid, hpo or sgd" in err[0]


def test_plot_snapshots_apply_to_hybrid_runs_only(tmp_path, capsys):
    run = tmp_path / "search"
    assert main(["hpo", *SEARCH, "--generations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["plot", str(run), "--snapshots", "1,2"]) == 2
    assert "hybrid runs" in capsys.readouterr().err


def test_eval_of_a_regression_genome_uses_its_runs_task(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve", *EVOLVE, "--generations", "1", "--out", str(run)]) == 0
    genome = next(run.glob("best_genome_*.pkl"))
    capsys.readouterr()
    assert main(["eval", str(genome)]) == 0
    assert "trig test set" in capsys.readouterr().out


def test_eval_of_a_lone_regression_genome_says_it_needs_task(tmp_path, capsys):
    layout = Layout((11, 4, 1))
    path = save_genome(tmp_path / "lone.pkl", layout, Population.random(layout, 1, seed=0).W[0])
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--task" in err[0] and "11 inputs" in err[0]


def test_attack_on_an_evolution_run_says_it_needs_a_hybrid_run(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["evolve", *EVOLVE, "--generations", "1", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["attack", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "hybrid run" in err[0]


def test_eval_of_a_ga_genome_shows_fitness_not_trust(tmp_path, capsys, data_root, monkeypatch):
    monkeypatch.setenv("GENREG_DATA", str(data_root))
    layout = Layout((784, 8, 10))
    path = save_genome(tmp_path / "ga.pkl", layout, Population.random(layout, 1, seed=0).W[0], trust=-1.37,
                       metadata={"strategy": "ga"})
    assert main(["eval", str(path)]) == 0
    out = capsys.readouterr().out
    assert "fitness -1.37" in out and "trust" not in out


def test_output_into_a_closed_pipe_ends_quietly(tmp_path):
    """``genreg data | head -1``: when the reader has gone, genreg stops without a 'Broken pipe' error."""
    import os
    import subprocess
    import sys

    read, write = os.pipe()
    os.close(read)  # the reader is gone before genreg writes a byte
    try:
        proc = subprocess.run([sys.executable, "-m", "genreg", "data"], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120, env=dict(os.environ, GENREG_DATA=str(tmp_path)))
    finally:
        os.close(write)
    assert proc.returncode == 141 and proc.stderr == ""
