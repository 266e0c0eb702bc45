"""Shared fixtures: the real MNIST data (read from ../shared/data or $GENREG_DATA, never downloaded)."""

from __future__ import annotations

import os
from pathlib import Path

import functools
import http.server
import subprocess
import sys
import threading

import pytest

from genreg.tasks import FILES, load_mnist

REPO_ROOT = Path(__file__).resolve().parents[1]


def _under_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def _unavailable(reason: str):
    """Missing data: a skip on a user's machine, a failure under CI."""
    if _under_ci():
        pytest.fail(f"data unavailable under CI: {reason}", pytrace=False)
    pytest.skip(f"data unavailable: {reason}")


@pytest.fixture(scope="session")
def mnist_dir() -> Path:
    """The directory holding the four real MNIST IDX files."""
    if os.environ.get("GENREG_DATA"):
        directory = Path(os.environ["GENREG_DATA"]).expanduser() / "mnist"
    else:
        directory = REPO_ROOT.parent / "shared" / "data" / "mnist"
    missing = [n for n in FILES if not (directory / n).is_file() and not (directory / f"{n}.gz").is_file()]
    if missing:
        _unavailable(f"{', '.join(missing)} not found in {directory} (set GENREG_DATA to the data root)")
    return directory.resolve()


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
    """The shared data root holding wine-quality/ and boston-housing/ (skip, or fail under CI, if absent)."""
    root = Path(os.environ["GENREG_DATA"]).expanduser() if os.environ.get("GENREG_DATA") else REPO_ROOT.parent / "shared" / "data"
    needed = [root / "wine-quality" / "winequality-red.csv", root / "boston-housing" / "boston_housing.csv"]
    missing = [str(p) for p in needed if not p.is_file()]
    if missing:
        _unavailable(f"{', '.join(missing)} not found (set GENREG_DATA to the data root)")
    return root.resolve()


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
