"""Worker pools: services on Ray actors (a local cluster on 127.0.0.1) and in this process."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from genreg.distributed.cluster import Cluster, ClusterSpec, import_ray
from genreg.distributed.pool import LocalPool, RayPool, WorkerLost, gather
from genreg.errors import ClusterError, ConfigError, FitnessError


class Counter:
    """A service: adds to a total it keeps (state that lives on its worker)."""

    def __init__(self, start=0.0):
        self.total = start

    def add(self, values):
        self.total += float(np.sum(values))
        return self.total

    def pid(self):
        return os.getpid()

    def fail(self):
        raise FitnessError("the fitness callable returned NaN")


def recipe():
    return Counter(1.0)


@pytest.mark.parametrize("make", ["local", "ray"])
def test_a_pool_hosts_one_service_per_worker(make, request):
    pool = LocalPool(recipe, 2) if make == "local" else RayPool(request.getfixturevalue("ray_cluster"), recipe, 2)
    try:
        tickets = [pool.submit(w, "add", np.arange(4.0) * (w + 1)) for w in range(2)]
        assert gather(pool, tickets, on_lost=None) == [7.0, 13.0]
        assert pool.result(pool.submit(0, "add", np.ones(2))) == 9.0  # the worker kept its total
        assert pool.bytes_sent > 0 and pool.bytes_received > 0
        with pytest.raises(FitnessError, match="NaN"):  # a genreg error on a worker reaches the driver as itself
            pool.result(pool.submit(1, "fail"))
        if make == "ray":
            assert len(set(pool.pids())) == 2 and os.getpid() not in pool.pids()
    finally:
        pool.close()


def test_a_killed_worker_is_reported_and_replaced(ray_cluster):
    pool = RayPool(ray_cluster, recipe, 2)
    try:
        victim = pool.pids()[1]
        os.kill(victim, signal.SIGKILL)
        with pytest.raises(WorkerLost, match="worker 1"):
            pool.result(pool.submit(1, "add", np.ones(3)))
        assert pool.alive() == 1
        pool.replace(1)
        assert pool.alive() == 2 and pool.pids()[1] != victim
        assert pool.result(pool.submit(1, "add", np.ones(3))) == 4.0  # a new service, from the recipe
        assert pool.replaced == 1
    finally:
        pool.close()


def test_gather_resends_the_work_of_a_lost_worker(ray_cluster):
    pool = RayPool(ray_cluster, recipe, 2)
    try:
        os.kill(pool.pids()[0], signal.SIGKILL)
        lost = []

        def on_lost(i, exc):
            lost.append((i, exc.worker))
            return pool.submit(1, "add", np.ones(2))

        assert sorted(gather(pool, [pool.submit(0, "add", np.ones(2)), pool.submit(1, "add", np.ones(5))],
                             on_lost)) == [6.0, 8.0]
        assert lost == [(0, 0)]
    finally:
        pool.close()


def test_the_local_cluster_binds_to_loopback_only(ray_cluster):
    ray = import_ray()
    assert {node["NodeManagerAddress"] for node in ray.nodes()} == {"127.0.0.1"}
    assert ray_cluster.address().startswith("127.0.0.1:")


def test_the_cluster_spec_is_checked():
    with pytest.raises(ConfigError, match="--workers"):
        ClusterSpec("local", workers=0)
    with pytest.raises(ConfigError, match="--ray"):
        ClusterSpec(" ")


def test_an_unreachable_cluster_is_one_clear_error(monkeypatch, ray_cluster):
    import_ray()
    spec = ClusterSpec("127.0.0.1:1")  # joined only when Ray is not initialised: check the message path
    cluster = Cluster(spec)
    ray = import_ray()
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def refuse(*args, **kwargs):
        raise ConnectionError("could not connect")

    monkeypatch.setattr(ray, "init", refuse)
    with pytest.raises(ClusterError, match="cannot join the Ray cluster"):
        cluster.__enter__()


def test_missing_ray_is_one_clear_error(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray":
            raise ImportError("No module named 'ray'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ClusterError, match=r"pip install 'genreg\[ray\]'"):
        import_ray()


def test_joining_ray_leaves_print_alone(ray_cluster):
    import builtins

    from ray.experimental import tqdm_ray

    tqdm_ray.instance()  # what Ray's driver does when a worker's output arrives
    assert builtins.print.__module__ == "builtins"


def test_an_address_nobody_answers_is_refused_before_the_run_writes_anything(tmp_path, mnist_dir, capsys):
    """Ray retries an unreachable address without end: the run checks it first, in bounded time."""
    import socket

    from genreg.cli import main as cli

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    run = tmp_path / "run"
    assert cli.main(["evolve", "--set", "strategy=pgpe", "--set", "population=20", "--generations", "1",
                     "--data-dir", str(mnist_dir), "--no-progress", "--ray", f"127.0.0.1:{port}", "--out", str(run)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--ray 127.0.0.1:{port}: cannot reach the cluster" in err[0]
    assert not run.exists()


HEAD = """
import sys
from genreg.distributed.cluster import Cluster, ClusterSpec
with Cluster(ClusterSpec("local", workers=1)) as cluster:  # bound to 127.0.0.1, as `--ray local` starts one
    print(cluster.address(), flush=True)
    sys.stdin.read()  # until the test closes it
"""


def test_a_run_joins_a_loopback_cluster_by_its_address(tmp_path, mnist_dir, ray_cluster):
    """Ray gives a driver the machine's outward address, which a cluster bound to 127.0.0.1 never answers (the run
    hung); a run given a loopback address takes the loopback address itself.  (``ray_cluster``: Ray is there.)"""
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    head = subprocess.Popen([sys.executable, "-c", HEAD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env=env)
    try:
        address = head.stdout.readline().strip()
        assert address.startswith("127.0.0.1:"), address
        run = subprocess.run([sys.executable, "-m", "genreg", "evolve", "--set", "strategy=pgpe", "--set",
                              "population=8", "--set", "hidden_sizes=[4]", "--generations", "2", "--no-progress",
                              "--data-dir", str(mnist_dir), "--ray", address, "--workers", "1",
                              "--out", str(tmp_path / "run")], capture_output=True, text=True, timeout=240, env=env)
        assert run.returncode == 0, run.stderr[-1500:]
        assert "ray: 1/1 workers" in run.stdout
    finally:
        head.stdin.close()
        head.wait(timeout=120)


def test_an_address_without_a_port_is_one_clear_error():
    with pytest.raises(ClusterError, match="give HOST:PORT"):
        ClusterSpec("headnode").check_reachable()
