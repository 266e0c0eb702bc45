"""ConvNet genomes end to end: every strategy learns MNIST with a tiny ConvNet, resume after a kill equals the
uninterrupted run, 1 and 2 threads give the same bits, genreg eval / embed / plot read a ConvNet run, bad inputs
are one-line errors."""

from __future__ import annotations

import pickle
import signal
import subprocess

import numba
import numpy as np
import pytest

import genreg
from genreg.cli.main import main
from genreg.errors import CheckpointError, ConfigError
from genreg.genome.embed import embed_genome
from genreg.network.forward import genome_logits
from genreg.network.layout import Layout
from genreg.network.population import Population
from genreg.runs.evolve import resume_run, start_run
from genreg.strategies.config import from_mapping
from helpers import assert_same_state, checkpoint_generations, final_state, genreg_cmd, wait_for
from test_runs_evolve import metrics_without_timing

#: A 4,010-parameter ConvNet: 4 x 4 max pooling, then eight 3 x 3 filters, then the outputs (28x28x1-p4-c3x8-10).
CONV = dict(conv="p4-c3x8", hidden_sizes=[], activation="relu")
STRATEGIES = ["genreg", "ga", "openai-es", "pgpe", "snes"]


def conv_cfg(**changes):
    return from_mapping({"population": 20, "samples_per_class": 3, "validation_size": 1000, **CONV, **changes})


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_every_strategy_learns_mnist_with_a_convnet(tmp_path, mnist_dir, strategy):
    """60 generations of 40 genomes on 100-image episodes: test accuracy from chance (0.1) to above 0.3
    (measured 0.38-0.64 over two seeds); predictions from flat rows and from 28 x 28 images agree."""
    result = genreg.evolve("mnist", out=tmp_path / "run", data_dir=mnist_dir, progress=False, strategy=strategy,
                           population=40, generations=60, samples_per_class=10, checkpoint_every=60,
                           validation_every=20, validation_size=2000, **CONV)
    best = result.best
    assert best.layout.shape_name() == "28x28x1-p4-c3x8-10" and best.layout.n_params == 4010
    accuracy = best.evaluate(result.task)["accuracy"]
    assert accuracy > 0.3, accuracy
    X = result.task.X_test[:64]
    np.testing.assert_array_equal(best.predict(X.reshape(-1, 28, 28)), best.predict(X))


@pytest.mark.parametrize("strategy,rank", [("genreg", 1), ("ga", 1), ("openai-es", 1), ("pgpe", 0), ("snes", 2)])
def test_resume_of_a_convnet_run_equals_the_uninterrupted_run(tmp_path, mnist_dir, strategy, rank):
    cfg = conv_cfg(strategy=strategy, rank=rank, generations=7, checkpoint_every=3, validation_every=2,
                   crossover="gene" if strategy == "ga" else "mask", gene_block_rows=1)
    whole, part = tmp_path / "whole", tmp_path / "part"
    start_run(cfg, whole, mnist_dir, progress=False)
    assert start_run(cfg.replace(max_minutes=1e-9), part, mnist_dir, progress=False).generation == 1
    assert resume_run(part, {"max_minutes": 0.0}, mnist_dir, progress=False).generation == 7
    a, b = final_state(whole), final_state(part)
    assert a.population.layout.is_conv
    assert_same_state(a, b)
    for name, value in a.arrays().items():
        assert value.tobytes() == b.arrays()[name].tobytes(), name
    assert metrics_without_timing(whole) == metrics_without_timing(part)


def test_a_convnet_run_killed_after_a_checkpoint_resumes_to_the_same_bits(tmp_path, mnist_dir):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    keys = dict(population=60, samples_per_class=10, checkpoint_every=4, validation_every=4, validation_size=1000)
    start_run(from_mapping({**keys, **CONV, "generations": 12}), whole, mnist_dir, progress=False)
    args = [f"{k}={v}" for k, v in {**keys, **CONV}.items()]
    proc = subprocess.Popen(genreg_cmd("evolve", "--out", killed, "--generations", 12, "--no-progress", "--data-dir",
                                       mnist_dir, *[x for a in args for x in ("--set", a)]),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(lambda: checkpoint_generations(killed) and max(checkpoint_generations(killed)) >= 4, proc, 300,
             "the generation-4 checkpoint")
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL and max(checkpoint_generations(killed)) < 12
    assert resume_run(killed, {}, mnist_dir, progress=False).generation == 12
    assert_same_state(final_state(whole), final_state(killed))
    assert metrics_without_timing(whole) == metrics_without_timing(killed)


@pytest.mark.parametrize("strategy,rank", [("genreg", 1), ("openai-es", 1), ("snes", 0)])
def test_a_convnet_run_is_the_same_for_1_and_2_threads(tmp_path, mnist_dir, strategy, rank):
    before = numba.get_num_threads()
    cfg = conv_cfg(strategy=strategy, rank=rank, generations=4, checkpoint_every=4, validation_every=2,
                   population=300 if strategy != "genreg" else 40)  # ES: two chunks of members
    try:
        for threads in (1, 2):
            numba.set_num_threads(threads)
            start_run(cfg, tmp_path / f"t{threads}", mnist_dir, progress=False)
    finally:
        numba.set_num_threads(before)
    assert metrics_without_timing(tmp_path / "t1") == metrics_without_timing(tmp_path / "t2")
    assert_same_state(final_state(tmp_path / "t1"), final_state(tmp_path / "t2"))


@pytest.fixture(scope="module")
def conv_run(tmp_path_factory, mnist_dir):
    run = tmp_path_factory.mktemp("conv") / "run"
    start_run(conv_cfg(strategy="pgpe", generations=6, checkpoint_every=3, validation_every=3), run, mnist_dir,
              progress=False)
    return run


def test_eval_embed_and_plot_read_a_convnet_run(tmp_path, mnist_dir, conv_run, capsys):
    genome = sorted(conv_run.glob("best_genome_mnist_gen*.pkl"))[-1]
    assert main(["eval", str(genome), "--data-dir", str(mnist_dir), "--json", str(tmp_path / "r.json")]) == 0
    text = capsys.readouterr().out
    assert "network    : 28x28x1-p4-c3x8-10 relu, 4010 parameters" in text
    accuracy = float(text.split("correct = ")[1].split("%")[0])
    assert main(["embed", str(genome), "--data-dir", str(mnist_dir), "--out", str(tmp_path / "maps")]) == 0
    text = capsys.readouterr().out
    assert "flattened conv features: 392 units (7x7x8 after c3x8), after relu" in text
    assert f"{accuracy:.2f}% correct" in text  # the map's float64 dense layer agrees with the kernels
    assert (tmp_path / "maps" / f"{genome.stem}-pca.png").stat().st_size > 0
    assert main(["plot", str(conv_run), "--out", str(tmp_path / "plots")]) == 0
    names = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"trust_accuracy.png", "per_digit.png", "tracked_weights.png"} <= names


def test_embed_maps_a_convnets_last_hidden_dense_layer(mnist):
    layout = Layout.parse("28x28x1-c3x4-a2-c3x4s2-12-10", "tanh")
    row = Population.random(layout, 1, seed=5).W[0]
    X, y = mnist.test_images[:300], mnist.test_labels[:300]
    emb = embed_genome(layout, row, X, y, [str(c) for c in range(10)])
    assert emb.layer == "hidden dense layer 1 of 1: 12 units, after tanh"
    predictions = np.argmax(genome_logits(layout, row, X), axis=1)
    assert emb.accuracy == pytest.approx(np.mean(predictions == y), abs=2 / 300)


def test_a_convnet_genome_on_other_images_is_one_line(tmp_path, mnist_dir, capsys):
    layout = Layout.parse("14x56x1-c3x4-p2-10", "relu")
    path = tmp_path / "other.pkl"
    genreg.Genome(layout, Population.random(layout, 1, seed=1).W[0], fitness=0.0).save(path)
    assert main(["eval", str(path), "--task", "mnist", "--data-dir", str(mnist_dir)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "14x56x1-c3x4-p2-10" in err and "28x28 images" in err


def test_conv_on_a_tabular_task_is_one_line_and_writes_nothing(tmp_path, data_root):
    with pytest.raises(ConfigError, match="needs image inputs") as info:
        genreg.evolve("wine", out=tmp_path / "run", data_dir=data_root, progress=False, **CONV)
    assert "\n" not in str(info.value)
    assert not (tmp_path / "run").exists()


def test_resume_refuses_a_changed_conv(tmp_path, mnist_dir, conv_run):
    with pytest.raises(ConfigError, match="cannot change conv on resume"):
        resume_run(conv_run, {"conv": "p4-c3x4", "generations": 9}, mnist_dir, progress=False)
    with pytest.raises(ConfigError, match="cannot change"):
        resume_run(conv_run, {"conv": "", "hidden_sizes": [], "generations": 9}, mnist_dir, progress=False)


def test_a_hostile_convnet_pickle_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"format": "genreg.genome", "version": 1,
                                   "layout": {"sizes": [392, 10], "image": [28, 28, 1], "stages": Evil()},
                                   "weights": np.zeros(4010, np.float32), "trust": 0.0, "metadata": {}}))
    with pytest.raises(CheckpointError, match="refusing to load builtins.print"):
        genreg.Genome.load(path)


@pytest.mark.parametrize("stages", ["c3x8-q9", "c3x9", "c99x8"])
def test_a_checkpoint_with_a_damaged_convnet_layout_is_one_line(tmp_path, conv_run, stages):
    """The HDF5 checkpoint stores the ConvNet's image and stages; damaged (a bad token, filters that no longer
    match the row, a kernel larger than the image) it is refused in one line naming the file, and resume
    falls back to the previous checkpoint."""
    import json
    import shutil

    import h5py

    from genreg.runs.store import latest_checkpoint, read_checkpoint

    run = tmp_path / "run"
    shutil.copytree(conv_run, run)
    older, newest = sorted((run / "checkpoints").glob("*.h5"))[-2:]
    state, config = read_checkpoint(newest)
    assert config["conv"] == "p4-c3x8" and state.population.layout.to_dict()["stages"] == "p4-c3x8"
    with h5py.File(newest, "r+") as f:
        layout = json.loads(f.attrs["layout"])
        f.attrs["layout"] = json.dumps({**layout, "stages": stages})
    with pytest.raises(CheckpointError) as err:
        read_checkpoint(newest)
    assert "\n" not in str(err.value) and newest.name in str(err.value)
    assert latest_checkpoint(run)[0] == older


def test_a_convnet_ga_population_continues_as_an_evolution_strategy(tmp_path, mnist_dir):
    run = tmp_path / "run"
    start_run(conv_cfg(strategy="ga", generations=2, checkpoint_every=2), run, mnist_dir, progress=False)
    state = resume_run(run, {"strategy": "snes", "rank": 1, "generations": 4}, mnist_dir, progress=False)
    assert state.generation == 4 and state.population.size == 1 and state.population.layout.is_conv
    assert final_state(run).sigma.shape == (len(state.population.layout.tensors),)
