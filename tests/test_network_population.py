"""Population: the founder draw (plain and block layouts), the memory guard, the constructor's checks, check_finite."""

from __future__ import annotations

import numpy as np
import pytest

import genreg.network.population as population_module
from genreg.errors import GenregError, PopulationError
from genreg.network.layout import Layout
from genreg.network.population import (
    PER_GENOME_BYTES,
    Population,
    check_population_size,
    population_bytes,
)
from helpers import VERTICAL


LAYOUTS = [Layout((784, 64, 10)), Layout((30, 7, 3), "relu"), Layout((50, 100, 61, 17)), Layout((10, 1))]


def _ids(layout):
    return "-".join(map(str, layout.sizes))


# --------------------------------------------------------------------------
# Population.random
# --------------------------------------------------------------------------


@pytest.mark.parametrize("layout", LAYOUTS, ids=_ids)
@pytest.mark.parametrize("P", [1, 7, 64])
def test_random_shape_dtype_bookkeeping(layout, P):
    pop = Population.random(layout, P, seed=3)
    assert pop.W.shape == (P, layout.n_params)
    assert pop.W.dtype == np.float32
    assert pop.W.flags.c_contiguous
    assert pop.size == P
    np.testing.assert_array_equal(pop.ids, np.arange(P))
    np.testing.assert_array_equal(pop.parent_ids, np.full(P, -1))
    np.testing.assert_array_equal(pop.trust, np.zeros(P))
    np.testing.assert_array_equal(pop.age, np.zeros(P))
    assert pop.trust.shape == pop.ids.shape == pop.parent_ids.shape == pop.age.shape == (P,)
    assert pop.next_id == P
    assert np.isfinite(pop.W).all()
    pop.check_finite()


@pytest.mark.parametrize("layout", LAYOUTS, ids=_ids)
def test_random_tensors_within_fan_in_bound(layout):
    P = 32
    pop = Population.random(layout, P, seed=11)
    for l in range(layout.n_layers):
        a = np.float32(1.0 / np.sqrt(layout.sizes[l]))
        for name in (f"W{l}", f"b{l}"):
            t = layout.tensor(name)
            block = pop.W[:, t.offset : t.stop]
            assert block.min() >= -a and block.max() <= a, (name, block.min(), block.max(), a)
            # The whole range is used (>= 32 uniform draws come close to both ends) ...
            edge = 0.8 if block.size >= 1000 else 0.5
            assert block.max() > edge * a and block.min() < -edge * a, (name, block.min(), block.max(), a)
            # ... and it is roughly uniform: mean ~0, variance ~a^2/3.
            n = block.size
            assert abs(block.mean(dtype=np.float64)) < 5 * a / np.sqrt(3 * n)
            assert abs(block.var(dtype=np.float64) / (a * a / 3) - 1) < 0.5


def test_random_layers_use_their_own_bound():
    """Layer 1 of 784-64-10 is bounded by 1/8, much wider than layer 0's 1/28."""
    layout = Layout((784, 64, 10))
    pop = Population.random(layout, 16, seed=0)
    w0 = pop.W[:, layout.tensor("W0").offset : layout.tensor("W0").stop]
    w1 = pop.W[:, layout.tensor("W1").offset : layout.tensor("W1").stop]
    assert np.abs(w0).max() <= np.float32(1 / 28)
    assert np.abs(w1).max() > 2 * np.float32(1 / 28)


def test_random_explicit_scale():
    layout = Layout((30, 7, 3))
    pop = Population.random(layout, 20, seed=4, scale=0.5)
    assert np.abs(pop.W).max() <= np.float32(0.5)
    assert np.abs(pop.W).max() > 0.45
    assert pop.W.min() < -0.45


def test_random_deterministic_in_seed():
    layout = Layout((30, 7, 3))
    a = Population.random(layout, 9, seed=123)
    b = Population.random(layout, 9, seed=123)
    c = Population.random(layout, 9, seed=124)
    np.testing.assert_array_equal(a.W, b.W)
    assert not np.array_equal(a.W, c.W)
    # Genomes of one population differ from each other.
    assert len({row.tobytes() for row in a.W}) == 9


def test_plain_population_init_is_unchanged():
    """Population.random draws exactly as before blocks existed (U(+-1/sqrt(fan_in)) per layer)."""
    layout = Layout((7, 5, 3), "tanh")
    pop = Population.random(layout, 4, seed=9)
    rng = np.random.default_rng(np.random.SeedSequence([9, 0x1417]))
    W = rng.random((4, layout.n_params), dtype=np.float32)
    for l, stop in ((0, 40), (1, layout.n_params)):
        a = np.float32(1 / np.sqrt(layout.sizes[l]))
        start = 0 if l == 0 else 40
        W[:, start:stop] = W[:, start:stop] * np.float32(2) * a - a
    np.testing.assert_array_equal(pop.W, W)


def test_block_population_init_uses_fan_in_of_each_layer():
    layout = Layout(**VERTICAL)
    pop = Population.random(layout, 3, seed=1)
    for t in layout.layer_tensors(1):
        seg = pop.W[:, t.offset : t.stop]
        assert np.abs(seg).max() <= 1 / np.sqrt(256) + 1e-7
        assert np.abs(seg).max() > 0.9 / np.sqrt(256)


# --------------------------------------------------------------------------
# check_population_size
# --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, -1, -(10**9)])
def test_size_must_be_positive(size):
    layout = Layout((30, 7, 3))
    with pytest.raises(PopulationError, match="positive"):
        check_population_size(layout, size)
    with pytest.raises(PopulationError):
        Population.random(layout, size, seed=0)


@pytest.mark.parametrize("size", [2.0, 1.5, "10", None, np.float64(4.0), [3]])
def test_size_must_be_an_int(size):
    layout = Layout((30, 7, 3))
    with pytest.raises(PopulationError, match="positive integer"):
        check_population_size(layout, size)


@pytest.mark.parametrize("size", [1, 17, np.int64(5), np.int32(3)])
def test_size_accepted_returns_bytes(size):
    layout = Layout((30, 7, 3))
    needed = check_population_size(layout, size)
    assert needed == population_bytes(layout, int(size))
    assert needed == int(size) * (layout.n_params * 4 + PER_GENOME_BYTES)
    assert check_population_size(layout, size, copies=3) == 3 * needed


def test_too_large_for_memory_names_the_bytes():
    """10**9 genomes of 784-64-10 need ~200 TB: refused before any allocation."""
    layout = Layout((784, 64, 10))
    size = 10**9
    needed = population_bytes(layout, size)
    assert needed > 10**14
    with pytest.raises(PopulationError) as info:
        check_population_size(layout, size)
    message = str(info.value)
    assert "bytes" in message
    assert str(needed) in message
    assert str(size) in message
    # Population.random checks first: no ~200 TB allocation is attempted (it would raise MemoryError).
    with pytest.raises(PopulationError) as info:
        Population.random(layout, size, seed=0)
    assert str(needed) in str(info.value)
    assert isinstance(info.value, GenregError)


def test_memory_guard_uses_available_memory(monkeypatch):
    layout = Layout((30, 7, 3))
    one = population_bytes(layout, 1)
    monkeypatch.setattr(population_module, "available_memory", lambda: 10 * one)
    assert check_population_size(layout, 10) == 10 * one
    with pytest.raises(PopulationError) as info:
        check_population_size(layout, 11)
    assert str(11 * one) in str(info.value) and str(10 * one) in str(info.value)
    with pytest.raises(PopulationError) as info:
        check_population_size(layout, 4, copies=3)
    assert str(12 * one) in str(info.value) and "3 copies" in str(info.value)
    assert check_population_size(layout, 5, copies=2) == 10 * one


# --------------------------------------------------------------------------
# Constructor checks
# --------------------------------------------------------------------------


def _parts(layout, P):
    return dict(
        layout=layout,
        W=np.zeros((P, layout.n_params), np.float32),
        trust=np.zeros(P),
        ids=np.arange(P, dtype=np.int64),
        parent_ids=np.full(P, -1, dtype=np.int64),
        age=np.zeros(P, dtype=np.int32),
        next_id=P,
    )


def test_constructor_accepts_valid_parts():
    layout = Layout((30, 7, 3))
    pop = Population(**_parts(layout, 4))
    assert pop.size == 4


@pytest.mark.parametrize("dtype", [np.float64, np.float16, np.int32])
def test_constructor_refuses_wrong_dtype(dtype):
    layout = Layout((30, 7, 3))
    parts = _parts(layout, 4)
    parts["W"] = parts["W"].astype(dtype)
    with pytest.raises(PopulationError, match="float32"):
        Population(**parts)


@pytest.mark.parametrize("bad_W", ["1-D", "0 rows", "fortran", "3-D"])
def test_constructor_refuses_bad_W_shape_or_order(bad_W):
    layout = Layout((30, 7, 3))
    parts = _parts(layout, 4)
    W = parts["W"]
    parts["W"] = {
        "1-D": W[0].copy(),
        "0 rows": W[:0].copy(),
        "fortran": np.asfortranarray(W),
        "3-D": W[None].copy(),
    }[bad_W]
    with pytest.raises(PopulationError):
        Population(**parts)


@pytest.mark.parametrize("delta", [-1, 1])
def test_constructor_refuses_wrong_n_params(delta):
    layout = Layout((30, 7, 3))
    parts = _parts(layout, 4)
    parts["W"] = np.zeros((4, layout.n_params + delta), np.float32)
    with pytest.raises(PopulationError, match=str(layout.n_params)):
        Population(**parts)


@pytest.mark.parametrize("name", ["trust", "ids", "parent_ids", "age"])
@pytest.mark.parametrize("length", [3, 5, "2-D"])
def test_constructor_refuses_mismatched_per_genome_arrays(name, length):
    layout = Layout((30, 7, 3))
    parts = _parts(layout, 4)
    arr = parts[name]
    parts[name] = arr[:, None].copy() if length == "2-D" else np.resize(arr, length)
    with pytest.raises(PopulationError, match=name):
        Population(**parts)


def test_constructor_refuses_list_W_with_population_error():
    layout = Layout((30, 7, 3))
    parts = _parts(layout, 2)
    parts["W"] = parts["W"].tolist()
    with pytest.raises(PopulationError):
        Population(**parts)


# --------------------------------------------------------------------------
# check_finite
# --------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_check_finite_names_bad_rows(bad):
    layout = Layout((30, 7, 3))
    pop = Population.random(layout, 12, seed=1)
    pop.ids = np.arange(100, 112, dtype=np.int64)
    pop.check_finite()
    pop.W[3, 0] = bad
    pop.W[7, layout.n_params - 1] = bad
    pop.W[9, layout.tensor("b0").offset] = bad
    with pytest.raises(PopulationError) as info:
        pop.check_finite()
    message = str(info.value)
    assert message.startswith("3 genome(s)")
    assert "rows [3, 7, 9]" in message
    assert "ids [103, 107, 109]" in message


def test_check_finite_many_bad_rows_are_truncated():
    layout = Layout((10, 1))
    pop = Population.random(layout, 30, seed=2)
    pop.W[5:25, 1] = np.nan
    with pytest.raises(PopulationError) as info:
        pop.check_finite()
    message = str(info.value)
    assert message.startswith("20 genome(s)")
    assert f"rows {list(range(5, 15))}..." in message


def test_population_as_a_brood_builds_on_demand():
    from genreg.network.variation import Brood
    layout = Layout((5, 3, 2))
    src = Population.random(layout, 4, seed=1).W
    keys = np.arange(6, dtype=np.uint64)
    brood = Brood(src, np.array([0, 0, 1, 2, 3, 3]), np.full(6, 0.5), np.zeros(6), keys, keys, 0.1)
    ids = np.arange(6, dtype=np.int64)
    pop = Population(layout, None, np.zeros(6), ids, ids - 1, np.zeros(6, np.int32), 6, brood=brood)
    assert pop.size == 6 and pop.W is None
    assert pop.genomes([2, 5]).tobytes() == brood.build([2, 5]).tobytes()
    W = pop.build()
    assert W.tobytes() == brood.build().tobytes() and pop.W is W and pop.brood is None
    with pytest.raises(PopulationError, match="brood"):
        Population(layout, None, np.zeros(6), ids, ids - 1, np.zeros(6, np.int32), 6)
    with pytest.raises(PopulationError, match="trust"):
        Population(layout, None, np.zeros(5), ids, ids - 1, np.zeros(6, np.int32), 6, brood=brood)
