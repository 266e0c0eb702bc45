"""Every strategy on every kind of task: runs, checkpoints, resumes, and its best genome evaluates."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

import genreg
from genreg.strategies import strategies
from genreg.tasks import FILES, load_task

TASKS = ("mnist", "fashion-mnist", "wine", "boston", "trig", "csv", "npz", "arrays", "fitness")


def _fashion_dir(root):
    """A small Fashion-MNIST-shaped data root (200 train, 20 test images), gzip-compressed."""
    rng = np.random.default_rng(5)
    folder = root / "fashion-mnist"
    folder.mkdir(parents=True)

    def idx(magic, dims, payload):
        return magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in dims) + payload

    content = [idx(0x803, (200, 28, 28), rng.integers(0, 256, 200 * 784, dtype=np.uint8).tobytes()),
               idx(0x801, (200,), (np.arange(200) % 10).astype(np.uint8).tobytes()),
               idx(0x803, (20, 28, 28), rng.integers(0, 256, 20 * 784, dtype=np.uint8).tobytes()),
               idx(0x801, (20,), (np.arange(20) % 10).astype(np.uint8).tobytes())]
    for name, data in zip(FILES, content):
        (folder / f"{name}.gz").write_bytes(gzip.compress(data))
    return root


def make_task(name, tmp_path, data_root):
    rng = np.random.default_rng(0)
    if name == "mnist":
        return load_task("mnist", data_root / "mnist", validation_size=500)
    if name == "fashion-mnist":
        return load_task("fashion-mnist", _fashion_dir(tmp_path / "data"), validation_size=50, download=False)
    if name in ("wine", "boston", "trig"):
        return load_task(name, data_root)
    X = rng.normal(size=(80, 3))
    if name == "csv":
        path = tmp_path / "d.csv"
        path.write_text("x0,x1,x2,kind\n" + "".join(f"{a},{b},{c},{'ab'[int(a > 0)]}\n" for a, b, c in X))
        return load_task(f"csv:{path}", target="kind")
    if name == "npz":
        np.savez(tmp_path / "d.npz", X=X.astype(np.float32), y=X.sum(axis=1))
        return load_task(f"npz:{tmp_path / 'd.npz'}")
    if name == "arrays":
        return genreg.tasks.from_arrays(X.astype(np.float32), (X[:, 0] > X[:, 1]).astype(np.int64))
    return genreg.FitnessTask(lambda W: -np.abs(W).mean(axis=1), n_inputs=3, n_outputs=2, name="small-weights")


@pytest.mark.parametrize("task_name", TASKS)
@pytest.mark.parametrize("strategy", sorted(strategies()))
def test_strategy_on_task(tmp_path, data_root, strategy, task_name):
    task = make_task(task_name, tmp_path, data_root)
    keys = dict(strategy=strategy, hidden_sizes=[4], population=8, samples_per_class=2, checkpoint_every=2,
                validation_every=1, progress=False)
    run = tmp_path / "run"
    first = genreg.evolve(task, out=run, generations=3, **keys)
    assert first.generations == 3 and (run / "checkpoints" / "state_gen00003.h5").is_file()
    assert first.best.layout.sizes == (task.n_inputs, 4, task.n_outputs)
    assert np.isfinite(first.history["best_fitness"]).all()
    again = genreg.resume(run, task=task, generations=5, progress=False)
    assert again.generations == 5 and again.history["generation"].tolist() == [0, 1, 2, 3, 4]
    if task.kind != "fitness":
        metrics = again.best.evaluate(task)
        assert ("accuracy" in metrics) == task.is_classification
