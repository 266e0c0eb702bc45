"""The island model (genreg.runs.islands, genreg.distributed.islands) on real MNIST: files, migrations,
resume after a stop or a killed driver, Ray workers (1 or 2, one killed mid-run) equal to in-process runs.

Tiny runs (784-16-10, 20 genomes an island) so that the module stays quick.
"""

from __future__ import annotations

import csv
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from genreg.distributed import islands as distributed_islands
from genreg.distributed.cluster import ClusterSpec
from genreg.distributed.islands import IslandService, emigrants, immigrate, island_dir, island_seed
from genreg.errors import ClusterError, ConfigError
from genreg.genome.checkpoint import load_genome
from genreg.runs import islands
from genreg.runs.evolve import resume_run, start_run
from genreg.runs.history import read_history
from genreg.runs.store import checkpoint_generations, checkpoint_path, latest_checkpoint, read_checkpoint
from genreg.config import load_toml
from genreg.strategies.base import ranking
from helpers import assert_same_state, sigkill_when, small_cfg, small_cli_args

#: 3 islands (so that a worker of two hosts two), a migration every 4 generations.
ISLANDS = dict(islands=3, migration_every=4, migrants=2, checkpoint_every=5, validation_every=3)
TIMING = ("eval_seconds", "breed_seconds", "generation_seconds")


def island_cfg(**changes):
    return small_cfg(**{**ISLANDS, **changes})


def table(path, drop=TIMING) -> list[list[str]]:
    """A CSV file as strings, without its timing columns."""
    with open(path, newline="") as fh:
        rows = [r for r in csv.reader(fh) if r]
    keep = [i for i, name in enumerate(rows[0]) if name not in drop]
    return [[r[i] for i in keep] for r in rows]


def island_state(run_dir, i: int):
    return latest_checkpoint(island_dir(run_dir, i))[1]


def assert_same_run(a: Path, b: Path, n: int = 3) -> None:
    """Bit-identical islands (final states, histories), run metrics and migration logs."""
    for i in range(n):
        assert_same_state(island_state(a, i), island_state(b, i))
        for name in ("metrics.csv", "tracked_weights.csv"):
            assert table(island_dir(a, i) / name) == table(island_dir(b, i) / name), (i, name)
    assert table(a / "metrics.csv") == table(b / "metrics.csv")
    assert (a / "migrations.csv").read_bytes() == (b / "migrations.csv").read_bytes()


@pytest.fixture(scope="module")
def reference(tmp_path_factory, mnist_dir) -> Path:
    """12 generations of 3 GENREG islands in this process."""
    d = tmp_path_factory.mktemp("islands") / "reference"
    state = start_run(island_cfg(generations=12), d, mnist_dir, progress=False)
    assert state.generation == 12
    return d


def test_an_island_run_writes_every_file(reference):
    assert (reference / "genreg-run.json").is_file()
    assert load_toml(reference / "config.toml")["islands"] == 3
    metrics = read_history(reference / "metrics.csv")
    assert metrics["generation"].tolist() == list(range(12))
    assert set(metrics["island"]) <= {0, 1, 2} and "validation_accuracy" in metrics and "best_accuracy" in metrics
    genome = load_genome(reference / "best_genome_mnist_gen00012.pkl")
    island = genome.metadata["island"]
    assert genome.metadata["island_seed"] == island_seed(0, island)
    assert np.array_equal(genome.weights, load_genome(island_dir(reference, island) / "best_genome_mnist_gen00012.pkl").weights)
    for i in range(3):
        folder = island_dir(reference, i)
        assert checkpoint_generations(folder) == [10, 12]
        assert checkpoint_path(folder, 12).is_file()
        assert load_toml(folder / "config.toml")["seed"] == island_seed(0, i)
        assert read_history(folder / "metrics.csv")["generation"].tolist() == list(range(12))
        assert read_history(folder / "tracked_weights.csv")["generation"].tolist() == list(range(12))
    assert len({island_seed(0, i) for i in range(3)}) == 3 and island_seed(7, 0) == 7


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
def test_island_runs_converge(strategy, tmp_path, mnist_dir):
    run = tmp_path / strategy
    start_run(island_cfg(generations=30, strategy=strategy), run, mnist_dir, progress=False)
    assert len(table(run / "migrations.csv")) == 1 + 7 * 3
    metrics = read_history(run / "metrics.csv")
    assert metrics["best_accuracy"][-3:].mean() > metrics["best_accuracy"][:3].mean()
    validation = metrics["validation_accuracy"][~np.isnan(metrics["validation_accuracy"])]
    assert validation[-3:].mean() > validation[0] + 0.03


def test_migrations_happen_on_schedule_along_the_ring(reference):
    rows = table(reference / "migrations.csv", drop=())
    assert rows[0] == islands.MIGRATION_COLUMNS
    assert [(int(g), int(a), int(b)) for g, a, b, *_ in rows[1:]] == [
        (g, (i - 1) % 3, i) for g in (4, 8) for i in range(3)]  # none after the last generation


def test_island_0_is_a_one_population_run_until_the_first_migration(reference, tmp_path, mnist_dir):
    plain = tmp_path / "plain"
    start_run(small_cfg(generations=4, validation_every=3), plain, mnist_dir, progress=False)
    assert table(plain / "metrics.csv") == table(island_dir(reference, 0) / "metrics.csv")[:5]
    assert table(plain / "metrics.csv")[1:] != table(island_dir(reference, 1) / "metrics.csv")[1:5]


def test_a_migration_moves_the_senders_best_genomes_into_the_receivers_worst_rows(tmp_path, mnist_dir):
    """The checkpoint of generation 4 is every island's state before the migration of generation 4: the
    log names the sender's best genomes, and they take the receiver's worst rows with new ids."""
    run = tmp_path / "run"
    start_run(island_cfg(generations=6, checkpoint_every=4), run, mnist_dir, progress=False)
    def state(i):
        return read_checkpoint(checkpoint_path(island_dir(run, i), 4))[0]

    log = {(int(r[1]), int(r[2])): r for r in table(run / "migrations.csv", drop=())[1:]}
    for i in range(3):
        sender, receiver = state((i - 1) % 3), state(i)
        best = ranking(sender.population.trust)[:2]
        row = log[((i - 1) % 3, i)]
        assert row[3] == " ".join(map(str, sender.population.ids[best]))
        assert [float(t) for t in row[4].split()] == sender.population.trust[best].tolist()
        worst = ranking(receiver.population.trust)[::-1][:2]
        assert row[5] == " ".join(map(str, receiver.population.ids[worst]))
        next_id = receiver.population.next_id
        replaced, given = immigrate(receiver, emigrants(sender, 2))
        assert row[6] == " ".join(map(str, given)) and given.tolist() == [next_id, next_id + 1]
        pop = receiver.population
        assert pop.W[worst].tobytes() == sender.population.genomes(best).tobytes()
        assert pop.ids[worst].tolist() == given.tolist() and pop.next_id == next_id + 2
        assert pop.parent_ids[worst].tolist() == sender.population.ids[best].tolist()
        assert pop.trust[worst].tolist() == sender.population.trust[best].tolist()


def test_without_migrants_the_islands_are_apart(reference, tmp_path, mnist_dir):
    alone = tmp_path / "alone"
    start_run(island_cfg(generations=6, migrants=0), alone, mnist_dir, progress=False)
    assert len(table(alone / "migrations.csv")) == 1
    for i in range(3):  # the same until generation 4, which the immigrants take part in
        assert table(island_dir(alone, i) / "metrics.csv")[:5] == table(island_dir(reference, i) / "metrics.csv")[:5]
    assert any(table(island_dir(alone, i) / "metrics.csv")[5:7] != table(island_dir(reference, i) / "metrics.csv")[5:7]
               for i in range(3))


@pytest.mark.parametrize("stop", [7, 8])
def test_stop_then_resume_equals_uninterrupted(stop, reference, tmp_path, mnist_dir):
    """Stopped after 7 (no migration due) or 8 generations (the migration of 8 is chosen again on resume)."""
    run = tmp_path / "run"
    state = start_run(island_cfg(generations=12), run, mnist_dir, progress=False,
                      on_generation=lambda record: record["generation"] == stop - 1)
    assert state.generation == stop
    assert [checkpoint_generations(island_dir(run, i)) for i in range(3)] == [[5, stop]] * 3
    assert resume_run(run, None, mnist_dir, progress=False).generation == 12
    assert_same_run(run, reference)


def test_islands_one_checkpoint_apart_resume_from_the_older(reference, tmp_path, mnist_dir, capsys):
    """A kill between two islands' checkpoints of 7: every island goes back to 5 (and 7 is written again)."""
    run = tmp_path / "run"
    start_run(island_cfg(generations=12), run, mnist_dir, progress=False,
              on_generation=lambda record: record["generation"] == 6)
    checkpoint_path(island_dir(run, 2), 7).unlink()
    assert islands.common_generations(run, 3) == [5]
    resume_run(run, None, mnist_dir, progress=False)
    assert "from generation 5" in capsys.readouterr().out
    assert_same_run(run, reference)


def test_a_run_killed_before_every_island_had_founders_starts_again(tmp_path, mnist_dir, capsys):
    run, whole = tmp_path / "run", tmp_path / "whole"
    start_run(island_cfg(generations=3), run, mnist_dir, progress=False)
    for path in (island_dir(run, 1) / "checkpoints").iterdir():
        path.unlink()
    assert resume_run(run, None, mnist_dir, progress=False).generation == 3
    assert "starting it again" in capsys.readouterr().out
    start_run(island_cfg(generations=3), whole, mnist_dir, progress=False)
    assert_same_run(run, whole)


def test_resume_refuses_another_island_count(reference, tmp_path, mnist_dir):
    import shutil

    run = shutil.copytree(reference, tmp_path / "run")
    with pytest.raises(ConfigError, match="cannot change islands"):
        resume_run(run, {"islands": 4, "generations": 14}, mnist_dir, progress=False)
    with pytest.raises(ConfigError, match="already holds a run"):
        start_run(island_cfg(generations=12), run, mnist_dir, progress=False)
    before = (run / "config.toml").read_bytes()
    with pytest.raises(ConfigError, match="already holds a run"):  # nor a one-population run over it
        start_run(small_cfg(generations=12), run, mnist_dir, progress=False)
    assert (run / "config.toml").read_bytes() == before


def test_a_killed_driver_resumes_bit_identical(tmp_path, mnist_dir):
    run = tmp_path / "killed"
    extra = [x for key, value in ISLANDS.items() if key != "checkpoint_every"
             for x in ("--set", f"{key}={value}")]
    sigkill_when(small_cli_args(run, mnist_dir, 100_000, "--set", "checkpoint_every=1", *extra),
                 lambda: min(max(checkpoint_generations(island_dir(run, i)), default=0) for i in range(3)) >= 6,
                 120, "the islands' checkpoints")
    target = islands.common_generations(run, 3)[0] + 5
    assert resume_run(run, {"generations": target}, mnist_dir, progress=False).generation == target
    whole = tmp_path / "whole"
    start_run(island_cfg(generations=target, checkpoint_every=1), whole, mnist_dir, progress=False)
    assert_same_run(run, whole)


def test_an_evolution_strategy_cannot_run_islands(tmp_path, mnist_dir):
    with pytest.raises(ConfigError, match="island model is for genreg and ga"):
        start_run(small_cfg(strategy="openai-es", islands=2), tmp_path / "es", mnist_dir, progress=False)
    assert not (tmp_path / "es").exists()


def test_a_worker_that_cannot_see_the_run_directory_says_so(tmp_path):
    service = IslandService(None, None, tmp_path / "elsewhere", island_cfg())
    with pytest.raises(ClusterError, match=r"cannot write .*island_01: .*filesystem every worker sees"):
        service.open(1, 0, newest=True)


# -- on Ray workers (a local cluster of two on 127.0.0.1) ------------------------------------------


@pytest.mark.parametrize("workers", [2, 1])
def test_ray_workers_give_the_in_process_run(workers, ray_cluster, reference, tmp_path, mnist_dir):
    run = tmp_path / "ray"
    state = start_run(island_cfg(generations=12), run, mnist_dir, progress=False,
                      cluster=ClusterSpec("local", workers=workers))
    assert state.generation == 12
    assert_same_run(run, reference)


def test_workers_killed_mid_run_lose_nothing(ray_cluster, reference, tmp_path, mnist_dir, monkeypatch):
    """Worker 1 killed after generation 4 (before the checkpoint of 5: island 1 replays 0-4, the migration
    of 4 included), then worker 0 after 8 (islands 0 and 2 replay 5-8 from the checkpoint of 5)."""
    pools = []

    class Watched(distributed_islands.RayPool):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            pools.append(self)

    monkeypatch.setattr(distributed_islands, "RayPool", Watched)
    killed = []

    def kill(record):
        worker = {4: 1, 8: 0}.get(record["generation"])
        if worker is not None:
            killed.append(pools[0].pids()[worker])
            os.kill(killed[-1], signal.SIGKILL)

    run = tmp_path / "ray"
    start_run(island_cfg(generations=12), run, mnist_dir, progress=False, on_generation=kill,
              cluster=ClusterSpec("local", workers=2))
    assert pools[0].replaced == 2 and not set(killed) & set(pools[0].pids())
    assert_same_run(run, reference)
