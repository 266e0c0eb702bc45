"""Shared fixtures: the real data (never downloaded), a local HTTP server, thread-count digests.

The real data is looked for as ``genreg`` looks for it (``genreg.tasks.datasets``): under
``$GENREG_DATA`` when it is set; otherwise under ``../shared/data`` (this repository's layout),
then the user cache (``$XDG_CACHE_HOME/genreg``, default ``~/.cache/genreg``).  Missing data skips
the tests that need it (fails them under ``CI=true``), and the session ends with one line saying
how many were skipped, where the data was looked for and how to get it.  Tests never download:
every data set's mirror list points at a closed local port (``GENREG_*_MIRRORS``).
"""

from __future__ import annotations

import os
from pathlib import Path

import functools
import http.server
import subprocess
import sys
import threading

import pytest

from genreg.tasks import datasets, load_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
OFFLINE = "http://127.0.0.1:9/"  # the discard port: nothing listens, a download fails at once
_DATA_SKIP = "data unavailable:"
_MISSING: dict[str, Path] = {}  # data set -> the folder genreg would use, for the session's summary line


def pytest_configure(config):
    for ds in datasets.DATASETS.values():
        os.environ[ds.mirrors_env] = OFFLINE


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _candidate_roots() -> list[Path]:
    """Data roots to look in, in order: $GENREG_DATA alone when set, else ../shared/data then the cache."""
    if os.environ.get("GENREG_DATA", "").strip():
        return [datasets.resolve_root()]
    return [SHARED_DATA.resolve(), datasets.cache_root().resolve()]


def find_data(name: str, files=None) -> Path:
    """The folder of data set ``name`` holding ``files`` (default all) in the first candidate root;
    skips the test (fails it under CI) naming the folder the ``genreg`` command would use."""
    ds = datasets.get(name)
    files = tuple(files or ds.files)
    for root in _candidate_roots():
        folder = datasets.dataset_dir(ds.name, root)
        if all((folder / f).is_file() or (ds.idx is not None and (folder / f"{f}.gz").is_file()) for f in files):
            return folder
    folder = datasets.dataset_dir(ds.name)  # where the CLI looks ($GENREG_DATA, else the cache)
    reason = f"{ds.title} not found in {folder} — run `genreg data download {ds.name}` or set GENREG_DATA"
    if _under_ci():
        pytest.fail(f"{_DATA_SKIP} under CI: {reason}", pytrace=False)
    _MISSING[ds.name] = folder
    pytest.skip(f"{_DATA_SKIP} {reason}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter):
    """One line for the whole session when tests were skipped for missing data (after -ra's list)."""
    yield
    skipped = [r for r in terminalreporter.stats.get("skipped", []) if _DATA_SKIP in str(r.longrepr)]
    if not skipped or not _MISSING:
        return
    where = ", ".join(f"{datasets.get(n).title} in {folder}" for n, folder in _MISSING.items())
    terminalreporter.write_line(
        f"{len(skipped)} test{'s' if len(skipped) != 1 else ''} skipped: data not found ({where}) — run "
        f"`genreg data download {' '.join(_MISSING)}` or set GENREG_DATA to a data root holding it",
        yellow=True, bold=True)


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The folder holding the four real MNIST IDX files."""
    return find_data("mnist").resolve()


@pytest.fixture(scope="session")
def mnist(mnist_dir):
    """The real data set, loaded once per session (no download).

    The files exist (``mnist_dir`` checked), so a DataError here is a real failure.
    """
    return load_mnist(mnist_dir, download=False)


def run_digest_with_threads(script: str, threads: int) -> tuple[int, str]:
    """Run ``script`` (which prints "<numba threads> <digest>") with NUMBA_NUM_THREADS=threads."""
    env = dict(os.environ, NUMBA_NUM_THREADS=str(threads))
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    n, digest = proc.stdout.split()
    return int(n), digest


@pytest.fixture
def digest_with_threads():
    """``digest_with_threads(script, n)``: a script's (thread count, digest) under n Numba threads."""
    return run_digest_with_threads


@pytest.fixture(scope="session")
def data_root() -> Path:
    """A data root holding wine-quality/ and boston-housing/ (skip, or fail under CI, if absent)."""
    wine = find_data("wine", ["winequality-red.csv"])
    boston = find_data("boston")
    if wine.parent != boston.parent:
        pytest.skip(f"{_DATA_SKIP} wine ({wine}) and Boston ({boston}) are under different data roots")
    return wine.parent.resolve()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):
        self.server.requests.append(self.path)
        super().do_GET()


@pytest.fixture
def server(tmp_path):
    """A local HTTP server over tmp_path/www; yields (root, base_url, requested paths)."""
    root = tmp_path / "www"
    root.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(root)))
    httpd.requests = []
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.requests
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray cluster on 127.0.0.1 with 2 CPUs for the whole session (stopped at the end):
    the ``genreg.distributed.cluster.Cluster`` that runs join (it is already initialised)."""
    if not _under_ci():  # CI installs the test extra, Ray included: there a missing Ray fails
        pytest.importorskip("ray")
    from genreg.distributed.cluster import Cluster, ClusterSpec

    tests = str(Path(__file__).resolve().parent)  # the workers import test modules' services from here
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [tests, os.environ.get("PYTHONPATH", "")]))
    cluster = Cluster(ClusterSpec("local", workers=2))
    cluster.__enter__()
    try:
        yield cluster
    finally:
        cluster.__exit__(None, None, None)
