"""Where a run's workers live: a Ray cluster joined by address, or a local one started (and stopped) here.

``ClusterSpec(address, workers, threads)`` says where (``--ray auto|local|ADDRESS --workers N``):

- ``local``: start a Ray instance on this machine for this run, bound to 127.0.0.1 only;
- ``auto``: join the cluster ``RAY_ADDRESS`` names or a running local one (``ray start --head``),
  else start a local one as ``local`` does;
- anything else: the address of a running cluster (``HOST:PORT`` or ``ray://HOST:PORT``).

``workers``: worker processes (default: one per CPU of the cluster); ``threads``: the Numba threads
each uses (its CPU reservation).  Results never depend on either.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path

from genreg.errors import ClusterError, ConfigError

INSTALL_HINT = "pip install 'genreg[ray]'"
#: How long a cluster's address may take to accept a connection before the run is refused.
CONNECT_SECONDS = 10.0
#: The names of this machine's loopback interface.
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")


def import_ray():
    """The ``ray`` module, or a one-line ``ClusterError`` saying how to install it."""
    # Ray's progress bars would replace builtins.print in this process; genreg leaves the user's print alone.
    os.environ.setdefault("RAY_TQDM_PATCH_PRINT", "0")
    try:
        import ray
    except ImportError as exc:
        raise ClusterError(f"--ray needs Ray, an optional extra: {INSTALL_HINT} ({exc})") from None
    return ray


@dataclass(frozen=True)
class ClusterSpec:
    """Where to run: ``address`` ('auto', 'local' or a cluster's address), ``workers`` (None: one per CPU),
    ``threads`` per worker."""

    address: str = "auto"
    workers: int | None = None
    threads: int = 1

    def __post_init__(self):
        if not isinstance(self.address, str) or not self.address.strip():
            raise ConfigError("--ray: give 'auto', 'local' or a cluster address such as 10.0.0.1:6379")
        if self.workers is not None and (not isinstance(self.workers, int) or self.workers < 1):
            raise ConfigError(f"--workers must be a whole number >= 1, not {self.workers!r}")
        if not isinstance(self.threads, int) or self.threads < 1:
            raise ConfigError(f"threads per worker must be a whole number >= 1, not {self.threads!r}")

    def check_reachable(self, timeout: float = CONNECT_SECONDS) -> None:
        """One-line ``ClusterError`` unless a cluster address (``HOST:PORT``, ``ray://HOST:PORT``) accepts a TCP
        connection within ``timeout`` seconds: Ray itself retries an unreachable address without end.  Called
        before a run writes anything; 'auto' and 'local' pass."""
        address = self.address.strip()
        if address in ("auto", "local"):
            return
        host, port = host_port(address)
        if not host or not port.isdigit():
            raise ClusterError(f"--ray {address}: give HOST:PORT (or ray://HOST:PORT), 'auto' or 'local'")
        try:
            socket.create_connection((host, int(port)), timeout=timeout).close()
        except OSError as exc:
            raise ClusterError(f"--ray {address}: cannot reach the cluster in {timeout:g} s "
                               f"({exc.strerror or exc}); is its head running (ray start --head)?") from None


def loopback_environment() -> dict:
    """Environment under which a local Ray instance binds every server to 127.0.0.1 and reports nothing.

    On Linux Ray advertises (and binds to) the machine's outward address; with its switch for
    clusters off (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, the mode it uses on laptops) it takes the
    loopback address instead.  The worker processes inherit the variables.
    """
    return {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


def use_loopback() -> None:
    """Make this process (and the workers it starts) take 127.0.0.1 as its Ray address: the environment, and the
    switch on the imported module (Ray reads it at import)."""
    os.environ.update(loopback_environment())
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False


def host_port(address: str) -> tuple[str, str]:
    """``(host, port)`` of a cluster address ``HOST:PORT`` or ``ray://HOST:PORT`` (an IPv6 host without its
    brackets); empty strings where the address has none."""
    host, _, port = address.strip().removeprefix("ray://").rpartition(":")
    return host.strip("[]"), port


def is_loopback(address: str) -> bool:
    """Whether a cluster address names this machine's loopback interface."""
    return host_port(address)[0] in LOOPBACK_HOSTS


def start_loopback(ray, cpus: int) -> None:
    """Start a Ray instance on this machine with ``cpus`` CPUs, every server bound to 127.0.0.1.

    Ray reads its cluster switch when it is imported, so besides the environment (which the worker
    processes inherit) the switch is set on the imported module too.
    """
    use_loopback()
    ray.init(address="local", num_cpus=cpus, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    node = ray.nodes()[0].get("NodeManagerAddress", "")
    if node not in LOOPBACK_HOSTS:
        ray.shutdown()
        raise ClusterError(f"the local Ray instance took the address {node}, not 127.0.0.1: start one by hand "
                           f"(ray start --head --node-ip-address=127.0.0.1) and pass --ray auto")


class Cluster:
    """A connection to Ray for one run (a context manager): joins or starts a cluster, and stops what it started.

    n_workers: the worker processes the run uses (``spec.workers`` or the cluster's CPUs / threads).
    """

    def __init__(self, spec: ClusterSpec):
        self.spec, self.started, self.ray = spec, False, None

    def __enter__(self) -> "Cluster":
        if is_loopback(self.spec.address) and (Path.home() / ".ray" / "auth_token").is_file():
            # Ray >= 2.5x: a head started on this machine asks for the token it saved there; Ray reads the
            # switch when it is imported, so it is set first
            os.environ.setdefault("RAY_AUTH_MODE", "token")
        ray = self.ray = import_ray()
        if ray.is_initialized():  # the caller's own Ray session (e.g. a notebook): use it, never stop it
            return self
        address = self.spec.address.strip()
        if address == "auto" and not os.environ.get("RAY_ADDRESS"):
            try:
                ray.init(address="auto", logging_level="ERROR", log_to_driver=False)
                return self
            except (ConnectionError, RuntimeError):
                address = "local"
        if address == "local":
            start_loopback(ray, (self.spec.workers or os.cpu_count() or 1) * self.spec.threads)
            self.started = True
            return self
        if is_loopback(address):  # a cluster bound to 127.0.0.1: Ray would give this driver the outward address
            use_loopback()
        try:
            ray.init(address=None if address == "auto" else address, logging_level="ERROR", log_to_driver=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise ClusterError(f"--ray {address}: cannot join the Ray cluster ({exc})") from None
        return self

    def __exit__(self, *exc) -> None:
        if self.started:
            self.ray.shutdown()
            self.started = False

    @property
    def n_workers(self) -> int:
        """``spec.workers``, else the cluster's CPUs divided by the threads of a worker (at least 1)."""
        if self.spec.workers is not None:
            return self.spec.workers
        cpus = int(self.ray.cluster_resources().get("CPU", 1))
        return max(1, cpus // self.spec.threads)

    def address(self) -> str:
        """The cluster's GCS address (``HOST:PORT``)."""
        return self.ray.get_runtime_context().gcs_address
