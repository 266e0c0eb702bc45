"""What both strategies share (genreg.strategies.base): a change of population size, the memory check."""

from __future__ import annotations

import numpy as np
import pytest

from genreg.strategies.config import from_mapping
from genreg.strategies.ga import ClassicGA
from genreg.strategies.genreg import Genreg
from helpers import TINY, hand_made_state, ga_state


@pytest.mark.parametrize("strategy", ["genreg", "ga"])
@pytest.mark.parametrize("new_size", [30, 10])
def test_population_size_change(strategy, new_size):
    state = ga_state(20) if strategy == "ga" else hand_made_state(20)
    ids0 = state.population.ids.copy()
    cfg = from_mapping({"strategy": strategy, "population": 20}).replace(population=new_size)
    breeder = Genreg() if strategy == "genreg" else ClassicGA()
    new = breeder.breed(state, cfg).population
    assert new.size == new_size and new.genomes(np.arange(new_size)).shape == (new_size, TINY.n_params)
    for name in ("trust", "ids", "parent_ids", "age"):
        assert getattr(new, name).shape == (new_size,), name
    assert np.unique(new.ids).size == new_size
    # children name their parents (GA elites are carried over with their own lineage)
    assert set(new.parent_ids[cfg.elites:].tolist()) <= set(ids0.tolist())
    new.check_finite()
    # and the next generation breeds from the new size
    new.trust = np.arange(new_size, dtype=np.float64) / new_size
    again = breeder.breed(breeder.State(new, generation=5), cfg.replace(population=20)).population
    assert again.size == 20 and set(again.parent_ids[cfg.elites:].tolist()) <= set(new.ids.tolist())


def test_a_new_population_size_is_checked_against_memory(monkeypatch):
    """Breeding checks the memory only when the size changes (e.g. on resume), not every generation."""
    import genreg.network.population as population_module
    from genreg.errors import PopulationError

    cfg = from_mapping({"population": 20})
    same, grown = hand_made_state(20), hand_made_state(20)
    monkeypatch.setattr(population_module, "available_memory", lambda: 1000)
    assert Genreg().breed(same, cfg).population.size == 20
    with pytest.raises(PopulationError, match="memory"):
        Genreg().breed(grown, cfg.replace(population=30))
