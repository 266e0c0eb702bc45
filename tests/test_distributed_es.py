"""Evolution strategies on Ray workers (a local two-worker cluster on 127.0.0.1): the same bits as in-process,
for any number of workers, through a killed worker, with messages whose size does not grow with the network."""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from genreg.distributed.cluster import ClusterSpec
from genreg.distributed.es import MemberRecipe, RemoteMembers, digest, ranges
from genreg.distributed.pool import LocalPool
from genreg.errors import ConfigError
from genreg.runs.evolve import resume_run, start_run
from genreg.runs.scoring import EpisodeScorer
from genreg.strategies import make_strategy
from genreg.strategies.config import from_mapping
from genreg.tasks.base import FitnessTask
from helpers import final_state

TIMING = ("eval_seconds", "breed_seconds")


def es_cfg(**changes):
    return from_mapping({"strategy": "openai-es", "hidden_sizes": [8], "population": 12, "rank": 1,
                         "samples_per_class": 3, "generations": 6, "checkpoint_every": 3, "validation_size": 500,
                         "validation_every": 2, "sigma": 0.05, "learning_rate": 0.02, **changes})


def metrics(run_dir) -> list[list[str]]:
    with open(Path(run_dir) / "metrics.csv", newline="") as fh:
        rows = [row for row in csv.reader(fh) if row]
    keep = [i for i, name in enumerate(rows[0]) if name not in TIMING]
    return [[row[i] for i in keep] for row in rows]


def assert_same_run(a, b) -> None:
    sa, sb = final_state(a), final_state(b)
    assert sa.generation == sb.generation
    assert sa.population.W.tobytes() == sb.population.W.tobytes()
    assert digest(sa) == digest(sb)
    assert metrics(a) == metrics(b)


def test_ranges_cover_the_members_on_pairs():
    assert ranges(12, 2, True) == [(0, 6), (6, 12)]
    assert ranges(10, 3, True) == [(0, 2), (2, 6), (6, 10)]
    assert ranges(7, 3, False) == [(0, 2), (2, 4), (4, 7)]
    assert ranges(4, 5, True) == [(0, 2), (2, 4)]  # more workers than pairs: some get nothing


@pytest.mark.parametrize("strategy", ["openai-es", "pgpe", "snes"])
def test_workers_replicas_follow_the_driver_generation_after_generation(mnist_dir, strategy):
    """In-process workers (the same services Ray hosts): every generation's values equal the driver's own,
    and the replicas move with one fitness vector a generation."""
    cfg = es_cfg(strategy=strategy, population=10)
    from genreg.runs.evolve import layout_for
    from genreg.tasks import load_task

    task, strat = load_task("mnist", mnist_dir, seed=0, validation_size=500), make_strategy(strategy)
    state = strat.init(layout_for(cfg, task), cfg)
    scorer = EpisodeScorer(task, cfg)
    pool = LocalPool(MemberRecipe(task, cfg), 3)
    remote = RemoteMembers(pool)
    sent = []
    for g in range(4):
        members = strat.ask(state, cfg)
        before = pool.bytes_sent
        values = remote.score(state, members)
        sent.append(pool.bytes_sent - before)
        here = scorer.members(members, g)
        for key in here:
            np.testing.assert_array_equal(values[key], here[key])
        evaluation = scorer.evaluation(values, g)
        remote.scored(evaluation.direct_fitness())
        strat.score(state, evaluation, cfg)
        state = strat.breed(state, cfg)
        assert all(service.state is not None and service.state.generation == g for service in pool.services)
    assert max(sent[1:]) < sent[0] / 10  # a full copy once, then scalars


def test_an_es_run_on_two_workers_equals_the_in_process_run(tmp_path, mnist_dir, ray_cluster):
    start_run(es_cfg(), tmp_path / "here", mnist_dir, progress=False)
    start_run(es_cfg(), tmp_path / "ray2", mnist_dir, progress=False, cluster=ClusterSpec("auto", workers=2))
    start_run(es_cfg(), tmp_path / "ray1", mnist_dir, progress=False, cluster=ClusterSpec("auto", workers=1))
    assert_same_run(tmp_path / "here", tmp_path / "ray2")
    assert_same_run(tmp_path / "here", tmp_path / "ray1")


def test_a_conv_es_run_on_workers_equals_the_in_process_run(tmp_path, mnist_dir, ray_cluster):
    cfg = es_cfg(conv="c5x2s2-p2", hidden_sizes=[], activation="relu", strategy="pgpe", rank=0, generations=4)
    start_run(cfg, tmp_path / "here", mnist_dir, progress=False)
    start_run(cfg, tmp_path / "ray", mnist_dir, progress=False, cluster=ClusterSpec("auto", workers=2))
    assert_same_run(tmp_path / "here", tmp_path / "ray")


def test_a_run_resumed_on_workers_equals_the_uninterrupted_run(tmp_path, mnist_dir, ray_cluster):
    start_run(es_cfg(), tmp_path / "whole", mnist_dir, progress=False)
    start_run(es_cfg(generations=3), tmp_path / "split", mnist_dir, progress=False)
    resume_run(tmp_path / "split", {"generations": 6}, mnist_dir, progress=False,
               cluster=ClusterSpec("auto", workers=2))
    assert_same_run(tmp_path / "whole", tmp_path / "split")


def worker_pids() -> list[int]:
    """The pids of the Ray worker processes hosting genreg services (``ray::Host`` in their title)."""
    import psutil

    return sorted(p.pid for p in psutil.process_iter(["cmdline"])
                  if p.info["cmdline"] and p.info["cmdline"][0].startswith("ray::Host"))


def test_a_worker_killed_between_generations_loses_nothing(tmp_path, mnist_dir, ray_cluster):
    start_run(es_cfg(), tmp_path / "here", mnist_dir, progress=False)
    killed = []

    def kill_one(record):
        if record["generation"] == 2:
            pid = worker_pids()[0]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    start_run(es_cfg(), tmp_path / "ray", mnist_dir, progress=False, on_generation=kill_one,
              cluster=ClusterSpec("auto", workers=2))
    assert killed and killed[0] not in worker_pids()
    assert_same_run(tmp_path / "here", tmp_path / "ray")


def dies_once(marker: str):
    """A fitness callable whose worker process kills itself in the middle of generation 2 (once: it renames
    ``marker`` away first); its values are a plain function of the rows."""

    def fitness(rows: np.ndarray, generation: int) -> np.ndarray:
        if generation == 2:
            try:  # both workers may get here: the one whose rename succeeds dies, once
                if os.getpid() != int(Path(marker).read_text()):
                    os.rename(marker, marker + ".taken")
                    os.kill(os.getpid(), signal.SIGKILL)
            except (FileNotFoundError, ValueError):
                pass
        target = np.linspace(-0.5, 0.5, rows.shape[1], dtype=np.float32)
        return -np.mean((rows - target) ** 2, axis=1, dtype=np.float64)

    return fitness


def test_a_worker_killed_mid_generation_loses_nothing(tmp_path, ray_cluster):
    marker = tmp_path / "die"
    marker.write_text(str(os.getpid()))  # the driver never dies: only a worker
    cfg = es_cfg(population=16, generations=5, validation_every=0)

    def task():
        return FitnessTask(dies_once(str(marker)), n_inputs=6, n_outputs=2, name="target")

    here = start_run(cfg, tmp_path / "here", progress=False, task=task())
    assert marker.exists()  # in-process the callable never kills (the driver's pid)
    there = start_run(cfg, tmp_path / "ray", progress=False, task=task(), cluster=ClusterSpec("auto", workers=2))
    assert not marker.exists()  # a worker died mid-generation 2
    assert here.population.W.tobytes() == there.population.W.tobytes()
    assert metrics(tmp_path / "here") == metrics(tmp_path / "ray")


def test_ray_for_one_ga_population_is_refused(tmp_path, mnist_dir):
    with pytest.raises(ConfigError, match="islands=N"):
        start_run(es_cfg(strategy="ga"), tmp_path / "r", mnist_dir, progress=False,
                  cluster=ClusterSpec("auto", workers=2))
    with pytest.raises(ConfigError, match="island model is for genreg and ga"):
        start_run(es_cfg(islands=2), tmp_path / "r2", mnist_dir, progress=False)


def test_the_cli_runs_on_a_local_cluster_it_starts_and_stops(tmp_path, mnist_dir):
    """``genreg evolve --ray local --workers 2``: a cluster of its own on 127.0.0.1, the same run as in-process."""
    import subprocess
    import sys

    keys = ["--set", "strategy=openai-es", "--set", "hidden_sizes=[8]", "--set", "population=12",
            "--set", "samples_per_class=3", "--set", "validation_size=500", "--generations", "4", "--data-dir", str(mnist_dir)]
    cli = [sys.executable, "-m", "genreg", "evolve", *keys]
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([*cli, "--out", str(tmp_path / "ray"), "--ray", "local", "--workers", "2"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "ray: 2/2 workers (0 replaced)" in done.stdout and "workers=2/2" in done.stderr  # summary, progress bar
    subprocess.run([*cli, "--out", str(tmp_path / "here")], env=env, check=True, capture_output=True, timeout=300)
    assert_same_run(tmp_path / "here", tmp_path / "ray")
    bad = subprocess.run([*cli, "--out", str(tmp_path / "bad"), "--workers", "2"], env=env, capture_output=True,
                         text=True, timeout=120)
    assert bad.returncode != 0 and "--workers needs --ray" in bad.stderr and "Traceback" not in bad.stderr


def test_the_api_takes_ray_and_workers(tmp_path, mnist_dir, ray_cluster):
    import genreg

    keys = dict(strategy="snes", hidden_sizes=[8], population=12, samples_per_class=3, validation_size=500,
                generations=4, data_dir=mnist_dir, progress=False)
    there = genreg.evolve("mnist", out=tmp_path / "ray", ray="auto", workers=2, **keys)
    here = genreg.evolve("mnist", out=tmp_path / "here", **keys)
    assert there.best.row.tobytes() == here.best.row.tobytes()
    more = genreg.resume(tmp_path / "ray", generations=6, ray="auto", workers=1, progress=False)
    assert more.generations == 6
    with pytest.raises(ConfigError, match="workers= needs ray="):
        genreg.evolve("mnist", out=tmp_path / "bad", workers=2, **keys)


def test_a_killed_driver_resumes_on_workers_and_leaves_no_ray_process(tmp_path, mnist_dir, ray_cluster):
    """SIGKILL the driver of ``--ray local`` mid-run: its own Ray instance goes with it; resumed on the
    workers, the run equals the uninterrupted one."""
    import sys

    import psutil

    from helpers import checkpoint_generations, sigkill_when

    run = tmp_path / "killed"
    keys = ["--set", "strategy=openai-es", "--set", "hidden_sizes=[8]", "--set", "population=12",
            "--set", "samples_per_class=3", "--set", "validation_size=500", "--set", "validation_every=2",
            "--set", "sigma=0.05", "--set", "learning_rate=0.02", "--set", "checkpoint_every=1"]
    names = sigkill_when([sys.executable, "-m", "genreg", "evolve", *keys, "--generations", "100000",
                          "--no-progress", "--data-dir", str(mnist_dir), "--out", str(run), "--ray", "local",
                          "--workers", "2"],
                         lambda: (run / "checkpoints").exists() and any(g >= 3 for g in checkpoint_generations(run)),
                         180, "the first checkpoints", env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
                         children=True)
    # Workers, raylet and GCS go with their driver; Ray's two agents follow about a minute later (not waited for).
    children = [p for p, name in names.items() if not name.endswith(("DashboardAgent", "RuntimeEnvAgent"))]
    gone, alive = psutil.wait_procs(children, timeout=30)
    assert children and not alive, [names[p] for p in alive]
    target = final_state(run).generation + 3
    resume_run(run, {"generations": target}, mnist_dir, progress=False, cluster=ClusterSpec("auto", workers=2))
    start_run(es_cfg(generations=target, checkpoint_every=1), tmp_path / "whole", mnist_dir, progress=False)
    assert_same_run(tmp_path / "whole", run)


def test_a_generations_messages_do_not_grow_with_the_network(mnist_dir):
    """The same population on a 784-8-10 and a 784-256-10 network (32x the parameters): the same bytes a
    generation once the workers hold the state, in both directions."""
    from genreg.runs.evolve import layout_for
    from genreg.tasks import load_task

    task = load_task("mnist", mnist_dir, seed=0, validation_size=500)
    per_generation = []
    for width in (8, 256):
        cfg = es_cfg(hidden_sizes=[width], population=20)
        strat = make_strategy(cfg.strategy)
        state = strat.init(layout_for(cfg, task), cfg)
        scorer, pool = EpisodeScorer(task, cfg), LocalPool(MemberRecipe(task, cfg), 2)
        remote = RemoteMembers(pool)
        for g in range(3):
            if g == 1:
                sent, received = pool.bytes_sent, pool.bytes_received
            values = remote.score(state, strat.ask(state, cfg))
            evaluation = scorer.evaluation(values, g)
            remote.scored(evaluation.direct_fitness())
            strat.score(state, evaluation, cfg)
            state = strat.breed(state, cfg)
        per_generation.append((pool.bytes_sent - sent, pool.bytes_received - received))
    (small_out, small_in), (large_out, large_in) = per_generation
    assert abs(small_out - large_out) <= 16 and small_in == large_in  # (a digest pickles in 4 or 8 bytes)
    assert per_generation[0][0] < 2 * (8 * 20 + 1000)  # two workers: the fitness vector and a few scalars each
