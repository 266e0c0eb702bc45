"""Activation functions as scalar float32 helpers that LLVM can vectorise.

Codes (see ``genreg.network.layout.ACTIVATIONS``): 0 identity, 1 tanh, 2 relu, 3 sigmoid.
"""

import numpy as np

from ._config import inline_jit, jit

IDENTITY, TANH, RELU, SIGMOID = 0, 1, 2, 3

_CLAMP = np.float32(7.90531110763549805)
_TINY = np.float32(0.0004)


@inline_jit
def fast_tanh(x):
    """tanh(x) for float32 x as a rational minimax approximation (max relative error ~4e-7).

    The [13/6] odd/even polynomial pair is Eigen's ``generic_fast_tanh_float``;
    unlike libm's ``tanhf`` it has no branches and vectorises.  Inputs are
    clamped to +-7.905 where tanh is already 1 in float32; for |x| < 4e-4,
    tanh(x) == x in float32.
    """
    # Written so that NaN (every comparison false) passes through unclamped.
    xc = _CLAMP if x > _CLAMP else x
    xc = -_CLAMP if xc < -_CLAMP else xc
    x2 = xc * xc
    p = np.float32(-2.76076847742355e-16)
    p = p * x2 + np.float32(2.00018790482477e-13)
    p = p * x2 + np.float32(-8.60467152213735e-11)
    p = p * x2 + np.float32(5.12229709037114e-08)
    p = p * x2 + np.float32(1.48572235717979e-05)
    p = p * x2 + np.float32(6.37261928875436e-04)
    p = p * x2 + np.float32(4.89352455891786e-03)
    p = xc * p
    q = np.float32(1.19825839466702e-06)
    q = q * x2 + np.float32(1.18534705686654e-04)
    q = q * x2 + np.float32(2.26843463243900e-03)
    q = q * x2 + np.float32(4.89352518554385e-03)
    r = p / q
    return x if abs(x) < _TINY else r


@jit
def activate_inplace(h, n, code):
    """Apply activation ``code`` to ``h[:, :n]`` in place (``h: (m, >= n) float32``, C-contiguous)."""
    if code == TANH:
        for s in range(h.shape[0]):
            for j in range(n):
                h[s, j] = fast_tanh(h[s, j])
    elif code == RELU:
        for s in range(h.shape[0]):
            for j in range(n):
                h[s, j] = np.float32(0.0) if h[s, j] < np.float32(0.0) else h[s, j]  # NaN stays NaN
    elif code == SIGMOID:
        for s in range(h.shape[0]):
            for j in range(n):
                h[s, j] = np.float32(0.5) * (np.float32(1.0) + fast_tanh(np.float32(0.5) * h[s, j]))
