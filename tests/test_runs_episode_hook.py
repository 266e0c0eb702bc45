"""The episode hook of evolution runs: a task's sampler may make each generation's inputs (alphabet-fonts)."""

from __future__ import annotations

import numpy as np

from genreg.runs import evolve
from genreg.runs.evolve import start_run
from genreg.strategies.config import from_mapping
from genreg.tasks import load_task
from genreg.tasks.base import episode_inputs


def test_evolve_scores_the_augmented_episode(tmp_path, monkeypatch):
    seen = []
    real = evolve.SparseBatch.from_dense
    monkeypatch.setattr(evolve.SparseBatch, "from_dense", staticmethod(lambda X: (seen.append(np.array(X)), real(X))[1]))
    cfg = from_mapping(dict(task="alphabet-fonts", hidden_sizes=[4], population=6, samples_per_class=1,
                            generations=2, checkpoint_every=2, validation_every=0, seed=3))
    start_run(cfg, tmp_path / "run", tmp_path, progress=False)
    task = load_task("alphabet-fonts", tmp_path)
    sampler = task.sampler(1, 3)
    episodes = [x for x in seen if x.shape == (26, 10000)]
    for g in (0, 1):
        idx = sampler.indices(g)
        expected = episode_inputs(sampler, task.X_train, idx, g)
        assert any(np.array_equal(x, expected) for x in episodes), g
        assert not any(np.array_equal(x, task.X_train[idx]) for x in episodes)


def test_alphabet_run_scores_the_26_letters(tmp_path, monkeypatch):
    seen = []
    real = evolve.SparseBatch.from_dense
    monkeypatch.setattr(evolve.SparseBatch, "from_dense", staticmethod(lambda X: (seen.append(np.array(X)), real(X))[1]))
    cfg = from_mapping(dict(task="alphabet", hidden_sizes=[4], population=6, generations=2, checkpoint_every=2,
                            validation_every=0, seed=0))  # samples_per_class keeps its default (20): ignored
    start_run(cfg, tmp_path / "run", tmp_path, progress=False)
    X = load_task("alphabet", tmp_path).X_train
    assert sum(np.array_equal(x, X) for x in seen) >= 3  # validation at the checkpoint, and both episodes
    assert (tmp_path / "run" / "best_genome_alphabet_gen00002.pkl").is_file()
