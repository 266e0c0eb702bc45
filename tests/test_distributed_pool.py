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
