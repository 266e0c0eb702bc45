"""The README is a user's guide: short, opening with the two set-up commands, every relative link
in it and in docs/ resolving, and its five-minute tour running as written (with small settings)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
MAX_README_LINES = 200
TOUR_HEADING = "## Five-minute tour"

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _documents() -> list[Path]:
    return [README, REPO / "checkpoints" / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+\s+(.*)$", text, flags=re.M)}


def _section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + len(heading))
    return text[start:] if end < 0 else text[start:end]


def test_readme_is_short_and_opens_with_the_two_commands():
    lines = README.read_text().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines (at most {MAX_README_LINES})"
    first_block = lines[lines.index("```bash") + 1:]
    first_block = first_block[:first_block.index("```")]
    assert [ln.split()[0] for ln in first_block] == ["./run.sh", "./test.sh"]
    assert lines.index("```bash") <= 3, "the set-up commands come first"


def test_readme_never_points_at_private_files():
    for doc in _documents():
        text = doc.read_text()
        assert "shared/reference" not in text, f"{doc.relative_to(REPO)} points at files users do not have"
        assert not re.search(r"\bthe reference\b", text, flags=re.I), \
            f"{doc.relative_to(REPO)} says 'the reference' without saying what it is"


@pytest.mark.parametrize("doc", _documents(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    broken = []
    for match in LINK.finditer(text):
        target = match.group(1)
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, fragment = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists():
            broken.append(f"{target} (no {dest})")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.name})")
    assert not broken, f"{doc.relative_to(REPO)}: broken links: {broken}"


def _small(text: str) -> str:
    """The tour with small settings: N generations -> N // 50 (order kept), populations of 16."""
    text = re.sub(r"(--generations[ =]|generations=)(\d+)", lambda m: f"{m.group(1)}{max(2, int(m.group(2)) // 50)}",
                  text)
    text = re.sub(r"_gen(\d{5})\.pkl", lambda m: f"_gen{max(2, int(m.group(1)) // 50):05d}.pkl", text)
    return re.sub(r"population=(\d+)", "population=16", text)


def _tour_blocks(lang: str) -> list[str]:
    tour = _section(README.read_text(), TOUR_HEADING)
    return re.findall(rf"```{lang}\n(.*?)```", tour, flags=re.S)


def _genreg() -> list[str]:
    script = Path(sys.executable).with_name("genreg")
    return [str(script)] if script.exists() else [sys.executable, "-m", "genreg"]


def test_tour_commands_run(tmp_path, mnist_dir):
    blocks = _tour_blocks("bash")
    assert blocks, f"the README has a ```bash block under {TOUR_HEADING!r}"
    commands = [ln.split("#")[0].strip() for ln in blocks[0].splitlines()]
    commands = [c for c in commands if c]
    assert commands and all(c.startswith("genreg ") for c in commands), commands
    offline = {f"GENREG_{name}_MIRRORS": "http://127.0.0.1:9/"  # never the network: a download fails at once
               for name in ("MNIST", "FASHION_MNIST", "WINE", "BOSTON")}
    env = dict(os.environ, GENREG_DATA=str(mnist_dir.parent), **offline)
    for command in commands:
        argv = shlex.split(_small(command))
        if argv[1] in ("evolve", "resume"):
            argv.append("--no-progress")
        proc = subprocess.run(_genreg() + argv[1:], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=300)
        assert proc.returncode == 0, f"$ {' '.join(argv)}\n{proc.stdout}\n{proc.stderr}"


def test_tour_python_runs(tmp_path, monkeypatch):
    blocks = _tour_blocks("python")
    assert len(blocks) >= 2, "the tour shows the Python API on arrays and a FitnessTask"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for i, block in enumerate(blocks):
        exec(compile(_small(block), f"README.md tour block {i + 1}", "exec"), {})
