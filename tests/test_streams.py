"""Stream keys (genreg.streams): the batched wrapper against the twin in ``naive.py``."""

from __future__ import annotations

import numpy as np

import naive
from genreg import streams
from genreg.streams import Purpose


def test_twin_stream_keys_batch_matches_wrapper():
    slots = np.array([0, 1, 2, 17, 199, 5000], dtype=np.int64)
    keys = streams.stream_keys(42, 7, slots, Purpose.BASE_MUTATION)
    assert keys.dtype == np.uint64 and keys.shape == slots.shape
    np.testing.assert_array_equal(keys, naive.stream_keys(42, 7, slots, Purpose.BASE_MUTATION))
    # keys differ across purposes, generations and slots
    assert np.unique(keys).size == keys.size
    assert not np.array_equal(keys, streams.stream_keys(42, 7, slots, Purpose.CHILD_MUTATION))
    assert not np.array_equal(keys, streams.stream_keys(42, 8, slots, Purpose.BASE_MUTATION))
    assert not np.array_equal(keys, streams.stream_keys(43, 7, slots, Purpose.BASE_MUTATION))
