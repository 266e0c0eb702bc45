"""A run's episodes and how its genomes are scored on them, without files: what every worker of a run holds.

``EpisodeScorer(task, cfg)`` draws generation g's episode (the same for every genome, from the
run's seed) and scores on it a population's rows, or a range of an evolution strategy's members
(``genreg.network.members.Members``: keys, built only for a fitness callable).  The evolution run
(``genreg.runs.evolve.EvolveMode``) scores through one; so does each Ray worker of a distributed
run (``genreg.distributed.es``), which is why their results are the same bits.
"""

from __future__ import annotations

import numpy as np

from genreg.network.batch import SparseBatch
from genreg.network.members import Members
from genreg.runs import episodes
from genreg.tasks.base import FITNESS, episode_inputs

#: Members an evolution strategy builds at a time for a fitness callable (``Members.chunks``).
FITNESS_CHUNK = 256


class EpisodeScorer:
    """Generation ``g``'s episode of ``task`` and the scores of genomes on it (``cfg``: samples_per_class, seed)."""

    def __init__(self, task, cfg):
        self.task, self.cfg = task, cfg
        self.labelled = task.kind != FITNESS
        if self.labelled:
            self.sampler = task.sampler(cfg.samples_per_class, cfg.seed)
            if task.is_classification:
                self.y_train = task.y_train
            else:
                self.y_train = np.ascontiguousarray(task.y_train, dtype=np.float32)
        self._episode = (None, None)  # (g, (batch, y)): the last episode drawn

    def episode(self, g: int):
        """Generation ``g``'s episode, the same for every genome: ``(batch, y)``, y the labels ``(B,) int64``
        (classification) or the standardised targets ``(B, k) float32`` (regression)."""
        if self._episode[0] == g:
            return self._episode[1]
        idx = self.sampler.indices(g)
        batch = SparseBatch.from_dense(episode_inputs(self.sampler, self.task.X_train, idx, g))
        y = self.y_train[idx].astype(np.int64) if self.task.is_classification else self.y_train[idx]
        self._episode = (g, (batch, y))
        return batch, y

    def rows(self, pop, batch: SparseBatch, y: np.ndarray, with_loss: bool):
        """The Evaluation of the genomes of ``pop`` on an episode (``with_loss``: classification's cross-entropy too)."""
        if self.task.is_classification:
            return episodes.classify(pop, batch, y, self.task.n_outputs, with_loss)
        return episodes.regress(pop, batch, y)

    def members(self, members: Members, g: int, first: int = 0, stop: int | None = None) -> dict:
        """Members ``first .. stop - 1`` of an evolution strategy on generation ``g``'s episode:
        ``{"n_correct", "loss"}`` ``(m,)`` arrays (classification), ``{"loss"}`` (regression) or
        ``{"fitness"}`` (a fitness callable, members built ``FITNESS_CHUNK`` at a time)."""
        first, stop = members.span(first, stop)
        if not self.labelled:
            values = [np.asarray(self.task.score(rows, g), np.float64)
                      for _, rows in members.chunks(FITNESS_CHUNK, first, stop)]
            return {"fitness": np.concatenate(values) if values else np.zeros(0, np.float64)}
        batch, y = self.episode(g)
        if self.task.is_classification:
            n_correct, loss = members.score(batch, labels=y, n_classes=self.task.n_outputs, first=first, stop=stop)
            return {"n_correct": n_correct, "loss": loss}
        return {"loss": members.score(batch, targets=y, first=first, stop=stop)[1]}

    def evaluation(self, values: dict, g: int) -> episodes.Evaluation:
        """The Evaluation of every member from ``members``' values (joined over the ranges)."""
        if not self.labelled:
            return episodes.Evaluation(0, fitness=values["fitness"])
        _, y = self.episode(g)
        if self.task.is_classification:
            return episodes.Evaluation(len(y), n_correct=values["n_correct"], loss=values["loss"], labels=y)
        return episodes.Evaluation(len(y), loss=values["loss"])

    def centre(self, centre, g: int) -> episodes.Evaluation:
        """The Evaluation of an evolution strategy's centre (a one-row Population) on generation ``g``."""
        if not self.labelled:
            return episodes.Evaluation(0, fitness=np.asarray(self.task.score(centre.build(), g), np.float64))
        batch, y = self.episode(g)
        return self.rows(centre, batch, y, True)
