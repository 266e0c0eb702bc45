"""docs/reproductions.md keeps its word: every command is real and parses, every quoted figure is its file's value.

The report quotes a figure of ours with an HTML comment right after it:

- ``<!-- from: PATH#SELECTOR -->``: PATH (from the repository root) is a file one of the report's
  commands writes (``--json``, ``--out``/``--root`` folders, ``> FILE``, or ``cp SRC DST`` of such a
  file); SELECTOR picks the value: a dotted JSON path (list indices, ``*`` for every item, wrapped in
  ``mean(...)``/``min(...)``/``max(...)``/``sum(...)``/``len(...)``), ``KEY=VALUE:COLUMN`` for a CSV row, or
  ``re:PATTERN`` (first group) for a text file; a trailing ``*100`` scales a fraction to the percent
  printed. The printed figure must equal the value rounded to the digits printed.
- ``<!-- doc: PATH -->``: a figure measured earlier and quoted from another page; it must appear
  there as printed.

Commands live in fenced ``sh`` blocks: ``genreg ...`` (parsed by genreg's own parser, and the run
config of evolve / hpo / hybrid / sgd resolved), ``python bench/NAME.py ...`` (the script's own
parser, stopped before it runs) and ``cp SRC DST``. Small runs then check that the files the
commands write hold the keys and lines the selectors read.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import math
import re
import shlex
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "reproductions.md"
WALL_TIMES = "docs/reproductions/wall-times.csv"  # written by the timing wrapper the report shows

MARK = re.compile(
    r"(?<![\w.,])(?P<fig>[-−]?\d[\d,]*(?:\.\d+)?)(?P<unit>%| s)?(?:\*\*)?\s*<!-- (?P<kind>from|doc): (?P<spec>[^>]+?) -->")
SECTIONS = ("GENREG", "Hybrid", "GA instead of backprop", "Architecture search", "Weight-merge")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _commands() -> list[tuple[int, list[str]]]:
    """(line number, argv) of every command in the report's ```sh blocks, continuations joined."""
    out, block, pending, start = [], False, "", 0
    for n, line in enumerate(_text().splitlines(), 1):
        if line.strip().startswith("```"):
            block = line.strip() == "```sh"
            continue
        if not block:
            continue
        line = line.split(" #", 1)[0] if not line.lstrip().startswith("#") else ""
        if not line.strip() and not pending:
            continue
        start = start if pending else n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        argv = shlex.split(pending + line)
        pending = ""
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=\S*", argv[0]):  # VAR=value prefixes
            argv = argv[1:]
        if argv:
            out.append((start, argv))
    return out


def _marks() -> list[tuple[int, re.Match]]:
    return [(n, m) for n, line in enumerate(_text().splitlines(), 1) for m in MARK.finditer(line)]


def _produced() -> set[str]:
    """Paths (files or folders) the report's commands write, normalised."""
    made: set[str] = set()
    for _, argv in _commands():
        if argv[0] == "cp":
            made.add(argv[-1])
            continue
        for i, a in enumerate(argv[:-1]):
            if a in ("--json", "--out", "--root", ">"):
                made.add(argv[i + 1])
    return {str(Path(p)) for p in made}


def _is_produced(path: str, made: set[str]) -> bool:
    p = Path(path)
    return any(str(q) in made for q in (p, *p.parents))


# -- selectors -----------------------------------------------------------------------------------------


def _walk(node, parts):
    if not parts:
        return [node]
    head, rest = parts[0], parts[1:]
    if head == "*":
        items = node.values() if isinstance(node, dict) else node
        return [v for item in items for v in _walk(item, rest)]
    if isinstance(node, list):
        return _walk(node[int(head)], rest)
    return _walk(node[head], rest)


def _json_value(data, selector: str) -> float:
    m = re.fullmatch(r"(mean|min|max|sum|len)\((.+)\)", selector)
    if m:
        values = _walk(data, m.group(2).split("."))
        if len(values) == 1 and isinstance(values[0], list):  # a path to a list: its items
            values = values[0]
        fn = m.group(1)
        if fn == "len":
            return float(len(values))
        values = [float(v) for v in values]
        return {"mean": sum(values) / len(values), "min": min(values), "max": max(values), "sum": sum(values)}[fn]
    (value,) = _walk(data, selector.split("."))
    return float(value)


def _value(spec: str) -> float:
    """The number SPEC (``PATH#SELECTOR[*100]``) names."""
    path, _, selector = spec.partition("#")
    scale = 1.0
    if selector.endswith("*100"):
        selector, scale = selector[:-4], 100.0
    file = ROOT / path
    assert file.is_file(), f"{path} (quoted in docs/reproductions.md) does not exist"
    if file.suffix == ".json":
        return scale * _json_value(json.loads(file.read_text()), selector)
    if file.suffix == ".csv":
        key, _, column = selector.partition(":")
        col, _, want = key.partition("=")
        with open(file, newline="") as fh:
            rows = [r for r in csv.DictReader(fh) if r[col] == want]
        assert len(rows) == 1, f"{path}: {len(rows)} rows with {col}={want}"
        return scale * float(rows[0][column])
    assert selector.startswith("re:"), f"{spec}: a text file needs a re: selector"
    m = re.search(selector[3:], file.read_text())
    assert m, f"{path} has no line matching {selector[3:]!r}"
    return scale * float(m.group(1))


def _equal_as_printed(printed: str, value: float) -> bool:
    digits = len(printed.partition(".")[2])
    return math.isclose(float(printed.replace(",", "").replace("−", "-")), value, abs_tol=0.5 * 10.0 ** -digits + 1e-9)


# -- the report ----------------------------------------------------------------------------------------


def test_report_covers_the_five_write_ups_and_is_linked():
    text = _text()
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    for name in SECTIONS:
        assert any(name in h for h in headings), f"no section for {name}"
    for page in ("README.md", "docs/results.md"):
        assert "reproductions.md" in (ROOT / page).read_text(), f"{page} does not link docs/reproductions.md"
    assert len(_commands()) >= 15 and len(_marks()) >= 40


def test_no_reference_files_are_cited():
    assert "shared/reference" not in _text()


def _marks_of(kind):
    return [pytest.param(m.group("fig"), m.group("spec"), id=f"line{n}-{m.group('fig')}")
            for n, m in _marks() if m.group("kind") == kind]


@pytest.mark.parametrize("printed,spec", _marks_of("from"))
def test_quoted_figure_is_its_files_value(printed, spec):
    value = _value(spec)
    assert _equal_as_printed(printed, value), f"docs/reproductions.md prints {printed}, {spec} holds {value!r}"


@pytest.mark.parametrize("printed,spec", _marks_of("from"))
def test_quoted_file_is_written_by_a_command_of_the_report(printed, spec):
    path = spec.partition("#")[0]
    if path == WALL_TIMES:
        assert "/usr/bin/time" in _text()  # the wrapper that writes it is shown
        return
    assert _is_produced(path, _produced()), f"{path} is quoted but no command in docs/reproductions.md writes it"


@pytest.mark.parametrize("printed,spec", _marks_of("doc"))
def test_figure_quoted_from_another_page_is_there(printed, spec):
    unit = next(m.group("unit") or "" for _, m in _marks() if m.group("fig") == printed and m.group("spec") == spec)
    page = (ROOT / spec).read_text(encoding="utf-8")
    assert printed + unit in page, f"{printed}{unit} is quoted from {spec} but is not there"


# -- the commands --------------------------------------------------------------------------------------


class _Parsed(Exception):
    pass


def _check_genreg(argv: list[str]) -> None:
    from genreg.cli import common
    from genreg.cli.main import build_parser

    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:
        pytest.fail(f"genreg {' '.join(argv)}: arguments do not parse (exit {exc.code})")
    assert getattr(args, "func", None), f"genreg {argv[0]} is not a command"
    sub = argv[0]
    if sub == "evolve":
        from genreg.strategies.config import from_mapping

        from_mapping(common.config_mapping(args, ("seed", "generations", "task", "target")))
    elif sub == "hybrid":
        from genreg.hybrid.config import from_mapping

        from_mapping(common.config_mapping(args, ("seed", "generations", "task", "target")))
    elif sub == "sgd":
        from genreg.runs.sgd import from_mapping

        from_mapping(common.config_mapping(args, ("seed", "epochs", "task", "target")))
    elif sub == "hpo":
        from genreg.hpo.config import hpo_from_mapping

        mapping = common.config_mapping(args, ("task", "seed", "generations", "population", "epochs"))
        if args.merge is not None:
            mapping["merge"] = args.merge
        hpo_from_mapping(mapping)


def _check_bench(argv: list[str], monkeypatch) -> None:
    script = ROOT / argv[0]
    assert script.is_file() and script.parent.name == "bench", f"{argv[0]} is not a script under bench/"
    spec = importlib.util.spec_from_file_location(f"_repro_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(script.parent))
    spec.loader.exec_module(module)
    original = argparse.ArgumentParser.parse_args

    def parse_then_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_then_stop)
    try:
        module.main(argv[1:])
    except _Parsed:
        return
    except SystemExit as exc:
        pytest.fail(f"python {' '.join(argv)}: arguments do not parse (exit {exc.code})")
    pytest.fail(f"python {argv[0]} ran without parsing its arguments")


@pytest.mark.parametrize("line,argv", [pytest.param(n, a, id=f"line{n}-{a[0]}-{a[1]}") for n, a in _commands()])
def test_command_is_real_and_parses(line, argv, monkeypatch):
    if argv[0] == "genreg":
        if ">" in argv:
            argv = argv[:argv.index(">")]
        _check_genreg(argv[1:])
    elif argv[0] == "python":
        _check_bench(argv[1:], monkeypatch)
    elif argv[0] == "cp" and argv[1:2] == ["-r"]:  # a run directory copied, to be resumed further
        assert len(argv) == 4, f"line {line}: cp -r RUN_DIR COPY"
        src, dst = argv[2:]
        assert _is_produced(src, _produced() - {str(Path(dst))}), f"line {line}: no command of the report writes {src}"
        assert any(a[:2] == ["genreg", "resume"] and Path(a[2]) == Path(dst) for _, a in _commands()), \
            f"line {line}: the copy {dst} is never resumed"
    elif argv[0] == "cp":
        assert len(argv) == 3, f"line {line}: cp SRC DST"
        src, dst = argv[1:]
        made = _produced() - {str(Path(dst))}
        assert _is_produced(src, made), f"line {line}: {src} is not written by any command of the report"
        assert (ROOT / dst).is_file(), f"line {line}: {dst} is not in the repository"
    else:
        pytest.fail(f"line {line}: {argv[0]} is neither genreg, python bench/... nor cp")


# -- the files the commands write hold what the selectors read -------------------------------------------


def _selectors(suffix: str) -> set[str]:
    return {m.group("spec").partition("#")[2].removesuffix("*100") for _, m in _marks()
            if m.group("kind") == "from" and m.group("spec").partition("#")[0].endswith(suffix)}


def _run(argv, capsys) -> str:
    from genreg.cli.main import main

    capsys.readouterr()
    assert main(argv) == 0, argv
    return capsys.readouterr().out


def test_small_runs_write_what_the_selectors_read(tmp_path, capsys, mnist_dir, monkeypatch):
    data = str(mnist_dir.parent)
    # an evolution run and its eval report
    _run(["evolve", "--generations", "2", "--set", "population=8", "--set", "samples_per_class=2",
          "--out", str(tmp_path / "e"), "--no-progress", "--data-dir", data], capsys)
    _run(["eval", str(tmp_path / "e" / "best_genome_mnist_gen00002.pkl"), "--json", str(tmp_path / "e.json"),
          "--data-dir", data], capsys)
    report = json.loads((tmp_path / "e.json").read_text())
    for selector in _selectors(".eval.json"):
        _json_value(report, selector)
    with open(tmp_path / "e" / "metrics.csv", newline="") as fh:
        header = next(csv.reader(fh))
    for selector in _selectors("metrics.csv"):
        key, _, column = selector.partition(":")
        assert key.partition("=")[0] in header and column in header, selector
    # an architecture search, its prediction at 40 degrees, its summary
    _run(["hpo", "--task", "trig", "--population", "4", "--generations", "1", "--epochs", "1",
          "--set", "trig_samples=100", "--out", str(tmp_path / "h"), "--no-progress"], capsys)
    out = _run(["predict", str(tmp_path / "h" / "best_model.h5"), "--angle", "40"], capsys)
    for selector in _selectors("predict-40.txt"):
        assert re.search(selector[3:], out), f"genreg predict printed {out!r}, the report reads {selector}"
    summary = json.loads((tmp_path / "h" / "summary.json").read_text())
    for selector in _selectors("summary.json"):
        _json_value(summary, selector)
    # the capacity sweep's JSON
    sweep = ROOT / "bench" / "capacity_sweep.py"
    spec = importlib.util.spec_from_file_location("_repro_capacity", sweep)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--widths", "4", "--generations", "2", "--set", "population=8", "--set",
                        "samples_per_class=2", "--root", str(tmp_path / "c"), "--json", str(tmp_path / "c.json"),
                        "--data-dir", data]) == 0
    rows = json.loads((tmp_path / "c.json").read_text())
    for selector in _selectors("capacity-sweep.json"):
        key = selector.split(".")[-1].rstrip(")")
        assert key in rows[0], selector
