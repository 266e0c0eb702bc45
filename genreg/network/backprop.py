"""NumPy backpropagation for the dense MLPs a ``Layout`` describes, on a genome's row.

Every function reads the weights through ``layout`` views of ``row: (n_params,)``
(no copies into another structure) and writes gradients into a row of the
same layout.  Matrix products go through BLAS (``np.matmul``); there is no
per-sample Python loop.  Computation runs in the row's dtype: float32 for
training, float64 for the finite-difference checks in the tests.

Network (layer ``l`` = one or several parallel blocks, see ``genreg.layout``)::

    h_0 = X
    z_{l+1}[:, blk] = h_l @ W_blk + b_blk          for every block of layer l
    h_{l+1} = dropout(act(z_{l+1}))                hidden layers
    output  = z_L (logits, loss 'nll') or out_act(z_L) (predictions, loss 'mse')

Losses (means over the batch):
    nll: -mean_i log_softmax(z_L)[i, y_i]
    mse: mean over samples and outputs of (output - y)^2   (as PyTorch's MSELoss)

Dropout is inverted dropout: a hidden unit is kept with probability 1 - p and
scaled by 1 / (1 - p) during training; evaluation uses every unit unscaled.

ConvNets (``layout.is_conv``): ``h_0`` is the output of the convolution and
pooling stages flattened in ``h, w, c`` order (``genreg.network.conv_backprop``),
and the backward pass continues through them into the filters ``C{i}`` and
biases ``cb{i}``.  Dropout acts on the dense hidden layers only.  MLP layouts
never enter that module.

Training (minibatch SGD) is in ``genreg.network.sgd``.
"""

from __future__ import annotations

import numpy as np

from genreg.errors import ConfigError, TrainingError
from genreg.network import conv_backprop
from genreg.network.layout import Layout

LOSSES = ("nll", "mse")


def dropout_rates(layout: Layout, dropout) -> tuple[float, ...]:
    """Per-hidden-layer dropout rates ``(n_layers - 1,)`` from a float or a sequence."""
    n_hidden = layout.n_layers - 1
    if isinstance(dropout, (tuple, list, np.ndarray)):
        rates = tuple(float(p) for p in dropout)
        if len(rates) != n_hidden:
            raise ConfigError(f"dropout: {len(rates)} rates given, the layout has {n_hidden} hidden layers")
    else:
        rates = (float(dropout),) * n_hidden
    if any(not 0 <= p < 1 for p in rates):
        raise ConfigError(f"dropout rates must be in [0, 1), got {rates}")
    return rates


# -- validation of arrays --------------------------------------------------------
def check_row(layout: Layout, row) -> np.ndarray:
    if not isinstance(row, np.ndarray) or row.dtype not in (np.float32, np.float64) or row.ndim != 1:
        raise ConfigError(f"row must be a 1-D float32 (or float64) array, got {getattr(row, 'dtype', type(row))} {np.shape(row)}")
    if row.shape[0] != layout.n_params:
        raise ConfigError(f"row has {row.shape[0]} parameters, layout {layout.describe()} needs {layout.n_params}")
    if not row.flags.c_contiguous:
        raise ConfigError("row must be C-contiguous (a row of the population buffer)")
    return row


def check_X(layout: Layout, X, dtype) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != layout.n_inputs:
        raise ConfigError(f"X must have shape (N, {layout.n_inputs}), got {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ConfigError(f"X must be floating point (pixels scaled to [0, 1]), got {X.dtype}")
    return X if X.dtype == dtype else X.astype(dtype)


def check_y(layout: Layout, y, n: int, loss: str, dtype) -> np.ndarray:
    y = np.asarray(y)
    if loss == "nll":
        if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
            raise ConfigError(f"labels for loss 'nll' must be integers of shape ({n},), got {y.dtype} {y.shape}")
        if n and (y.min() < 0 or y.max() >= layout.n_outputs):
            raise ConfigError(f"labels must be in [0, {layout.n_outputs}), got [{y.min()}, {y.max()}]")
        return y
    if loss == "mse":
        if y.ndim == 1 and layout.n_outputs == 1:
            y = y.reshape(-1, 1)
        if y.shape != (n, layout.n_outputs):
            raise ConfigError(f"targets for loss 'mse' must have shape ({n}, {layout.n_outputs}), got {y.shape}")
        return y.astype(dtype, copy=False)
    raise ConfigError(f"loss must be one of {', '.join(LOSSES)}, got {loss!r}")


def check_output_activation(layout: Layout, loss: str) -> None:
    if loss == "nll" and layout.output_activation not in ("identity", "softmax"):
        raise ConfigError(f"loss 'nll' needs output_activation identity or softmax (logits), got {layout.output_activation}")
    if loss == "mse" and layout.output_activation == "softmax":
        raise ConfigError("loss 'mse' needs an elementwise output activation, not softmax")


# -- activations --------------------------------------------------------------------
def _activate(name: str, z: np.ndarray) -> np.ndarray:
    """Apply activation ``name`` to ``z`` in place; return it."""
    if name == "relu":
        np.maximum(z, 0, out=z)
    elif name == "tanh":
        np.tanh(z, out=z)
    elif name == "sigmoid":
        # 1 / (1 + exp(-z)) = (1 + tanh(z / 2)) / 2, which never overflows
        z *= 0.5
        np.tanh(z, out=z)
        z += 1
        z *= 0.5
    return z


def _activation_grad(name: str, h: np.ndarray, dh: np.ndarray) -> np.ndarray:
    """``dz = dh * act'(z)`` computed from the activation's output ``h``, in place in ``dh``."""
    if name == "relu":
        dh *= h > 0
    elif name == "tanh":
        dh *= 1 - h * h
    elif name == "sigmoid":
        dh *= h * (1 - h)
    return dh


# -- forward / backward ------------------------------------------------------------
def _affine(layout: Layout, row: np.ndarray, l: int, h: np.ndarray) -> np.ndarray:
    """``z = h @ W_l + b_l`` over every block of layer ``l``: ``(B, n_{l+1})``."""
    blocks = layout.layers[l]
    if len(blocks) == 1:
        z = h @ layout.view(row, blocks[0].W.name)
        z += layout.view(row, blocks[0].b.name)
        return z
    z = np.empty((h.shape[0], layout.sizes[l + 1]), dtype=h.dtype)
    for blk in blocks:
        part = z[:, blk.start : blk.stop]
        np.matmul(h, layout.view(row, blk.W.name), out=part)
        part += layout.view(row, blk.b.name)
    return z


def _forward(layout: Layout, row, X, rates, rng, keep: bool):
    """Forward pass; returns (output layer pre-activation z_L, hidden outputs, dropout masks)."""
    hs, acts, masks = [X], [], []
    h = X
    for l in range(layout.n_layers - 1):
        a = _activate(layout.hidden_activation, _affine(layout, row, l, h))
        h, mask = a, None
        if rates[l] > 0:
            mask = (rng.random(a.shape, dtype=np.float32) >= rates[l]).astype(a.dtype)
            mask *= a.dtype.type(1.0 / (1.0 - rates[l]))
            h = a * mask
        if keep:
            hs.append(h)
            acts.append(a)
            masks.append(mask)
    return _affine(layout, row, layout.n_layers - 1, h), hs, (acts, masks)


def _outputs(layout: Layout, z: np.ndarray, loss: str) -> np.ndarray:
    if loss == "mse" and layout.output_activation not in ("identity", "softmax"):
        return _activate(layout.output_activation, z)
    return z


def _rng(rng, rates):
    if any(p > 0 for p in rates) and rng is None:
        raise ConfigError("dropout during training needs rng (a numpy.random.Generator)")
    return rng


def forward(layout: Layout, row: np.ndarray, X, *, train: bool = False, dropout=0.0, rng=None,
            loss: str = "nll") -> np.ndarray:
    """Outputs of one network on a batch: ``(B, n_out)`` in the row's dtype.

    row: ``(n_params,)`` float32 (or float64); X: ``(B, n_in)`` floats.
    Returns logits (pre-activation) for ``loss='nll'`` and the output
    activation's values for ``loss='mse'``.  ``train=True`` applies dropout
    (``dropout``: a float or one rate per hidden layer; needs ``rng``).
    """
    row = check_row(layout, row)
    X = check_X(layout, X, row.dtype)
    rates = dropout_rates(layout, dropout) if train else (0.0,) * (layout.n_layers - 1)
    if layout.is_conv:
        X, _ = conv_backprop.features(layout, row, X, keep=False)
    z, _, _ = _forward(layout, row, X, rates, _rng(rng, rates), keep=False)
    return _outputs(layout, z, loss)


def _loss_and_output_grad(layout, z, y, loss):
    """Loss value and dLoss/dz_L ``(B, n_out)`` (z_L is overwritten)."""
    B = z.shape[0]
    if loss == "nll":
        z -= z.max(axis=1, keepdims=True)
        exp = np.exp(z)
        sum_exp = exp.sum(axis=1, keepdims=True)
        picked = z[np.arange(B), y]
        value = float(np.mean(np.log(sum_exp[:, 0]) - picked, dtype=np.float64))
        exp /= sum_exp  # softmax
        exp[np.arange(B), y] -= 1
        exp *= z.dtype.type(1.0 / B)
        return value, exp
    out = _outputs(layout, z, loss)
    diff = out - y
    value = float(np.mean(np.square(diff, dtype=np.float64)))
    diff *= z.dtype.type(2.0 / diff.size)
    if layout.output_activation != "identity":
        _activation_grad(layout.output_activation, out, diff)
    return value, diff


def _backward(layout, row, grad, hs, acts_masks, dz, input_grad=False):
    """Write dLoss/dW, dLoss/db of every block into ``grad``; return dLoss/dX if asked.

    hs[l]: input of layer l (after dropout); acts_masks = (activations before
    dropout, dropout masks scaled by 1 / (1 - p) or None), one per hidden layer.
    """
    acts, masks = acts_masks
    for l in range(layout.n_layers - 1, -1, -1):
        h = hs[l]
        need_dh = l > 0 or input_grad
        dh = np.zeros(h.shape, dtype=h.dtype) if need_dh and len(layout.layers[l]) > 1 else None
        for blk in layout.layers[l]:
            d = dz[:, blk.start : blk.stop]
            np.matmul(h.T, d, out=layout.view(grad, blk.W.name))
            np.sum(d, axis=0, out=layout.view(grad, blk.b.name))
            if need_dh:
                part = d @ layout.view(row, blk.W.name).T
                if dh is None:
                    dh = part
                else:
                    dh += part
        if l == 0:
            return dh
        if masks[l - 1] is not None:
            dh *= masks[l - 1]
        dz = _activation_grad(layout.hidden_activation, acts[l - 1], dh)
    return None


def loss_and_grad(layout: Layout, row: np.ndarray, X, y, *, loss: str = "nll", dropout=0.0, rng=None,
                  grad: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """Mean loss on a batch and its gradient with respect to every parameter of ``row``.

    row: ``(n_params,)`` float32 (or float64); X: ``(B, n_in)``; y: ``(B,)`` int
    labels ('nll') or ``(B, n_out)`` / ``(B,)`` targets ('mse').  dropout > 0
    trains with dropout and needs ``rng``.  grad: optional preallocated
    ``(n_params,)`` array of the row's dtype, overwritten and returned.
    Returns ``(loss, grad)``; ``grad`` has the row's layout.
    """
    row = check_row(layout, row)
    X = check_X(layout, X, row.dtype)
    y = check_y(layout, y, X.shape[0], loss, row.dtype)
    check_output_activation(layout, loss)
    if grad is None:
        grad = np.empty_like(row)
    elif not isinstance(grad, np.ndarray) or grad.shape != row.shape or grad.dtype != row.dtype or not grad.flags.c_contiguous:
        raise ConfigError(f"grad must be a C-contiguous {row.dtype} array of shape {row.shape}")
    rates = dropout_rates(layout, dropout)
    conv = None
    if layout.is_conv:
        X, conv = conv_backprop.features(layout, row, X, keep=True)
    z, hs, masks = _forward(layout, row, X, rates, _rng(rng, rates), keep=True)
    value, dz = _loss_and_output_grad(layout, z, y, loss)
    dfeat = _backward(layout, row, grad, hs, masks, dz, input_grad=conv is not None)
    if conv is not None:
        conv_backprop.backward(layout, row, grad, conv, dfeat)
    return value, grad


def input_gradient(layout: Layout, row: np.ndarray, X, y, *, loss: str = "nll") -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the inputs: ``(B, n_in)`` (no dropout).

    Used by adversarial attacks (``genreg.attacks``).  The parameter gradient is
    computed on the way (into scratch) and discarded.
    """
    row = check_row(layout, row)
    X = check_X(layout, X, row.dtype)
    y = check_y(layout, y, X.shape[0], loss, row.dtype)
    check_output_activation(layout, loss)
    rates = (0.0,) * (layout.n_layers - 1)
    conv = None
    if layout.is_conv:
        X, conv = conv_backprop.features(layout, row, X, keep=True)
    z, hs, masks = _forward(layout, row, X, rates, None, keep=True)
    value, dz = _loss_and_output_grad(layout, z, y, loss)
    scratch = np.empty_like(row)
    dX = _backward(layout, row, scratch, hs, masks, dz, input_grad=True)
    if conv is not None:
        dX = conv_backprop.backward(layout, row, scratch, conv, dX, input_grad=True)
    return value, dX


# -- metrics ------------------------------------------------------------------------------
def _chunks(n: int, size: int = 10000):
    return ((s, min(n, s + size)) for s in range(0, n, size))


def predict(layout: Layout, row: np.ndarray, X) -> np.ndarray:
    """Predicted class (argmax of the logits): ``(N,) int64``."""
    X = np.asarray(X)
    out = np.empty(X.shape[0], dtype=np.int64)
    for s, e in _chunks(X.shape[0]):
        out[s:e] = np.argmax(forward(layout, row, X[s:e]), axis=1)
    return out


def accuracy(layout: Layout, row: np.ndarray, X, y) -> float:
    """Fraction of ``X: (N, n_in)`` classified as ``y: (N,)``."""
    y = np.asarray(y)
    if y.shape != (np.shape(X)[0],):
        raise ConfigError(f"labels must have shape ({np.shape(X)[0]},), got {y.shape}")
    return float(np.mean(predict(layout, row, X) == y)) if y.size else float("nan")


def _regression_errors(layout, row, X, y):
    row = check_row(layout, row)
    X = check_X(layout, X, row.dtype)
    y = check_y(layout, y, X.shape[0], "mse", row.dtype)
    return forward(layout, row, X, loss="mse").astype(np.float64) - y


def mean_absolute_error(layout: Layout, row: np.ndarray, X, y) -> float:
    """Mean over samples and outputs of ``|output - y|``."""
    return float(np.mean(np.abs(_regression_errors(layout, row, X, y))))


def mean_squared_error(layout: Layout, row: np.ndarray, X, y) -> float:
    """Mean over samples and outputs of ``(output - y)^2``."""
    return float(np.mean(np.square(_regression_errors(layout, row, X, y))))
