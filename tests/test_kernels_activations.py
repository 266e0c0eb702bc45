"""Activation kernels (kernels/activations.py) against the twins in ``naive.py``: tanh, sigmoid, relu, NaN."""

from __future__ import annotations

import numpy as np
import pytest

import naive
from genreg import kernels
from genreg.network.layout import ACTIVATIONS
from helpers import ACTS, _seed


# --------------------------------------------------------------------------
# Activations
# --------------------------------------------------------------------------


def _activate(x: np.ndarray, code: int) -> np.ndarray:
    h = np.array(x, dtype=np.float32, copy=True).reshape(1, -1)
    kernels.activate_inplace(h, h.shape[1], code)
    return h[0]


@pytest.mark.parametrize("act", ACTS)
def test_activation_touches_only_the_first_n_columns(act):
    rng = np.random.default_rng(_seed("activate-columns", act))
    h = rng.normal(0.0, 3.0, size=(5, 12)).astype(np.float32)
    got = h.copy()
    kernels.activate_inplace(got, 7, ACTIVATIONS[act])
    np.testing.assert_array_equal(got[:, 7:], h[:, 7:])
    for s in range(5):
        np.testing.assert_array_equal(got[s, :7], _activate(h[s, :7], ACTIVATIONS[act]))


def _activation_grid() -> np.ndarray:
    f32 = np.finfo(np.float32)
    special = [
        0.0, 1e-45, 1e-40, f32.tiny, 1e-30, 1e-10, 1e-6, 3.99e-4, 4e-4, 4.01e-4, 1e-3,
        7.9, 7.905, 7.906, 8.0, 9.0, 30.0, 100.0, 1e4, 1e10, 1e30, float(f32.max), np.inf,
    ]
    special = np.array(special + [-v for v in special], dtype=np.float32)
    return np.concatenate([np.linspace(-20.0, 20.0, 400_001, dtype=np.float32), special])


def test_fast_tanh_relative_error():
    x = _activation_grid()
    got = _activate(x, ACTIVATIONS["tanh"])
    ref = naive.activate(x, "tanh")
    assert np.isfinite(got).all()
    zero = ref == 0
    np.testing.assert_array_equal(got[zero], 0.0)
    rel = np.abs(got[~zero] - ref[~zero]) / np.abs(ref[~zero])
    assert rel.max() < 1e-6, f"max relative error {rel.max():.3g} at x={x[~zero][rel.argmax()]}"
    # tanh is odd: signs are right, and -0 stays -0.
    assert (np.sign(got) == np.sign(ref)).all()
    assert np.signbit(_activate(np.array([-0.0]), ACTIVATIONS["tanh"]))[0]
    assert not np.signbit(_activate(np.array([0.0]), ACTIVATIONS["tanh"]))[0]
    assert (np.abs(got) <= 1.0).all()


def test_fast_tanh_scalar_matches_activate_inplace():
    """``kernels.fast_tanh`` (the inlined helper) is the function activate_inplace applies."""
    import numba

    @numba.njit
    def apply(x):
        out = np.empty_like(x)
        for i in range(x.shape[0]):
            out[i] = kernels.fast_tanh(x[i])
        return out

    x = np.linspace(-10, 10, 2001, dtype=np.float32)
    np.testing.assert_array_equal(apply(x), _activate(x, ACTIVATIONS["tanh"]))


def test_sigmoid_absolute_error():
    x = _activation_grid()
    got = _activate(x, ACTIVATIONS["sigmoid"])
    ref = naive.activate(x, "sigmoid")
    err = np.abs(got - ref)
    assert err.max() < 1e-6, f"max abs error {err.max():.3g} at x={x[err.argmax()]}"
    assert ((got >= 0) & (got <= 1)).all()


def test_relu_exact_and_identity_untouched():
    x = _activation_grid()
    np.testing.assert_array_equal(_activate(x, ACTIVATIONS["relu"]), naive.activate_float32(x, "relu"))
    np.testing.assert_array_equal(_activate(x, ACTIVATIONS["identity"]), x)


@pytest.mark.parametrize("act", ["identity", "tanh", "sigmoid", "relu"])
def test_activation_keeps_nan(act):
    got = _activate(np.array([np.nan, 1.0, np.nan], dtype=np.float32), ACTIVATIONS[act])
    assert np.isnan(got[0]) and np.isnan(got[2]) and np.isfinite(got[1])
