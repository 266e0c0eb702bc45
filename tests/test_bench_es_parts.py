"""bench/bench_es_parts.py: its edits of kernels/es.py still apply, the unedited copy scores as genreg does, and
each edit switches its part off (the copies' losses move away from the real ones, one part at a time)."""

from __future__ import annotations

import numpy as np
import pytest

from helpers import bench_module


@pytest.fixture(scope="module")
def parts():
    return bench_module("bench_es_parts.py")


def test_every_edit_finds_its_text_once(parts):
    sources = parts.edited_sources()
    assert list(sources) == list(parts.EDITS)
    for before, after in zip(list(sources.values()), list(sources.values())[1:]):
        assert before != after


def test_the_copies_score_and_only_the_full_one_as_genreg_does(parts, mnist_dir, monkeypatch, tmp_path):
    from genreg.kernels import es

    monkeypatch.setenv("GENREG_DATA", str(mnist_dir.parent))
    score, members = parts.setup(200, "relu", batch_size=40)  # 100 pairs: 4 blocks of 32
    modules = parts.load_variants(tmp_path)
    real = score(es)
    losses = {variant: score(module) for variant, module in modules.items()}
    assert np.array_equal(losses["full"].view(np.int64), real.view(np.int64))
    assert np.all(np.isfinite(real))
    for variant in ("no softmax", "no noise", "products only"):
        assert not np.array_equal(losses[variant], real), variant
    # without fresh noise, the blocks after a worker's first score with that block's noise
    assert not np.array_equal(losses["no softmax"], losses["no noise"])
