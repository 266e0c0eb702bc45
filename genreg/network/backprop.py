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

SGD (PyTorch's convention): ``v <- momentum * v + g``; the step is ``v`` or,
with Nesterov, ``g + momentum * v``; ``w <- w - lr_e * step`` with
``lr_e = lr / (1 + lr_decay * e)`` for epoch ``e`` (counting from
``start_epoch``).  The velocity starts at zero at every ``train`` call unless the caller
passes its own buffer (``velocity=``) to carry momentum across calls.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from genreg.errors import ConfigError, TrainingError
from genreg.network.layout import Layout
from genreg.streams import SGD_EPOCH

LOSSES = ("nll", "mse")


# -- configuration -------------------------------------------------------------
@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters of SGD training (frozen; ``validate()`` names a bad key)."""

    epochs: int = 1
    """Passes over the training set."""
    batch_size: int = 100
    """Samples per minibatch (the last one of an epoch may be smaller)."""
    lr: float = 0.01
    """Learning rate at epoch 0."""
    momentum: float = 0.9
    """SGD momentum in [0, 1)."""
    nesterov: bool = False
    """Nesterov momentum (needs momentum > 0)."""
    lr_decay: float = 0.0
    """lr_e = lr / (1 + lr_decay * e) for epoch e."""
    dropout: float | tuple = 0.0
    """Dropout rate of hidden layers: one float for all, or one per hidden layer, each in [0, 1)."""
    loss: str = "nll"
    """'nll' (log-softmax + negative log-likelihood, integer labels) or 'mse' (mean squared error)."""
    shuffle: bool = True
    """Reshuffle the training set each epoch (the order is a function of the seed and epoch)."""

    def validate(self) -> "TrainConfig":
        """Raise ``ConfigError`` naming the first invalid key; return self."""

        def need(ok, key, what):
            if not ok:
                raise ConfigError(f"invalid training config: {key} = {getattr(self, key)!r}: {what}")

        need(_is_int(self.epochs) and self.epochs >= 0, "epochs", "must be an integer >= 0")
        need(_is_int(self.batch_size) and self.batch_size >= 1, "batch_size", "must be an integer >= 1")
        need(_is_real(self.lr) and self.lr > 0, "lr", "must be > 0")
        need(_is_real(self.momentum) and 0 <= self.momentum < 1, "momentum", "must be in [0, 1)")
        need(isinstance(self.nesterov, bool), "nesterov", "must be true or false")
        need(not self.nesterov or self.momentum > 0, "nesterov", "needs momentum > 0")
        need(_is_real(self.lr_decay) and self.lr_decay >= 0, "lr_decay", "must be >= 0")
        rates = self.dropout if isinstance(self.dropout, (tuple, list)) else (self.dropout,)
        need(all(_is_real(p) and 0 <= p < 1 for p in rates), "dropout", "each rate must be in [0, 1)")
        need(self.loss in LOSSES, "loss", f"must be one of {', '.join(LOSSES)}")
        need(isinstance(self.shuffle, bool), "shuffle", "must be true or false")
        return self


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


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
def _check_row(layout: Layout, row) -> np.ndarray:
    if not isinstance(row, np.ndarray) or row.dtype not in (np.float32, np.float64) or row.ndim != 1:
        raise ConfigError(f"row must be a 1-D float32 (or float64) array, got {getattr(row, 'dtype', type(row))} {np.shape(row)}")
    if row.shape[0] != layout.n_params:
        raise ConfigError(f"row has {row.shape[0]} parameters, layout {layout.describe()} needs {layout.n_params}")
    if not row.flags.c_contiguous:
        raise ConfigError("row must be C-contiguous (a row of the population buffer)")
    return row


def _check_X(layout: Layout, X, dtype) -> np.ndarray:
    X = np.asarray(X)
    if X.ndim != 2 or X.shape[1] != layout.n_inputs:
        raise ConfigError(f"X must have shape (N, {layout.n_inputs}), got {X.shape}")
    if not np.issubdtype(X.dtype, np.floating):
        raise ConfigError(f"X must be floating point (pixels scaled to [0, 1]), got {X.dtype}")
    return X if X.dtype == dtype else X.astype(dtype)


def _check_y(layout: Layout, y, n: int, loss: str, dtype) -> np.ndarray:
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


def _check_output_activation(layout: Layout, loss: str) -> None:
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
    row = _check_row(layout, row)
    X = _check_X(layout, X, row.dtype)
    rates = dropout_rates(layout, dropout) if train else (0.0,) * (layout.n_layers - 1)
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
    row = _check_row(layout, row)
    X = _check_X(layout, X, row.dtype)
    y = _check_y(layout, y, X.shape[0], loss, row.dtype)
    _check_output_activation(layout, loss)
    if grad is None:
        grad = np.empty_like(row)
    elif not isinstance(grad, np.ndarray) or grad.shape != row.shape or grad.dtype != row.dtype or not grad.flags.c_contiguous:
        raise ConfigError(f"grad must be a C-contiguous {row.dtype} array of shape {row.shape}")
    rates = dropout_rates(layout, dropout)
    z, hs, masks = _forward(layout, row, X, rates, _rng(rng, rates), keep=True)
    value, dz = _loss_and_output_grad(layout, z, y, loss)
    _backward(layout, row, grad, hs, masks, dz)
    return value, grad


def input_gradient(layout: Layout, row: np.ndarray, X, y, *, loss: str = "nll") -> tuple[float, np.ndarray]:
    """Mean loss and its gradient with respect to the inputs: ``(B, n_in)`` (no dropout).

    Used by adversarial attacks (``genreg.attacks``).  The parameter gradient is
    computed on the way (into scratch) and discarded.
    """
    row = _check_row(layout, row)
    X = _check_X(layout, X, row.dtype)
    y = _check_y(layout, y, X.shape[0], loss, row.dtype)
    _check_output_activation(layout, loss)
    rates = (0.0,) * (layout.n_layers - 1)
    z, hs, masks = _forward(layout, row, X, rates, None, keep=True)
    value, dz = _loss_and_output_grad(layout, z, y, loss)
    dX = _backward(layout, row, np.empty_like(row), hs, masks, dz, input_grad=True)
    return value, dX


# -- training --------------------------------------------------------------------------
def epoch_lr(cfg: TrainConfig, epoch: int) -> float:
    """Learning rate of epoch ``epoch``: ``lr / (1 + lr_decay * epoch)``."""
    return cfg.lr / (1.0 + cfg.lr_decay * epoch)


def train(layout: Layout, row: np.ndarray, X, y, cfg: TrainConfig, *, seed: int, X_val=None, y_val=None,
          progress: bool = False, start_epoch: int = 0, velocity: np.ndarray | None = None) -> list[dict]:
    """Train ``row`` in place with minibatch SGD; return one dict per epoch.

    row: ``(n_params,) float32`` (e.g. ``pop.W[i]``, a view of the population
    buffer); X: ``(N, n_in) float32``; y: ``(N,)`` int labels ('nll') or
    ``(N, n_out)`` / ``(N,)`` float targets ('mse').  The shuffle order and
    dropout masks are a function of ``(seed, epoch)``: same seed, same result.
    Each history entry: ``epoch``, ``lr``, ``loss`` (mean training loss over
    the epoch's minibatches), ``seconds`` and, with ``X_val``/``y_val``,
    ``val_accuracy`` ('nll') or ``val_mse`` ('mse').  Epochs are numbered
    from ``start_epoch`` (for the learning-rate schedule and the streams).
    ``velocity``: the momentum buffer, ``(n_params,) float32``, updated in place;
    pass the same array to successive calls (e.g. one epoch at a time) to carry
    momentum across them.  Default: a fresh zero buffer.
    Raises ``TrainingError`` if the weights are or become non-finite.
    """
    cfg.validate()
    row = _check_row(layout, row)
    if row.dtype != np.float32:
        raise ConfigError("train() works on float32 rows")
    X = _check_X(layout, X, np.float32)
    y = _check_y(layout, y, X.shape[0], cfg.loss, np.float32)
    _check_output_activation(layout, cfg.loss)
    rates = dropout_rates(layout, cfg.dropout)
    if velocity is None:
        velocity = np.zeros_like(row)
    elif velocity.shape != row.shape or velocity.dtype != np.float32 or not velocity.flags.c_contiguous:
        raise ConfigError(f"velocity must be a C-contiguous float32 array of shape {row.shape}")
    if X.shape[0] == 0:
        raise ConfigError("training set is empty")
    if not np.isfinite(row).all():
        raise TrainingError("the network's weights contain NaN or inf before training")
    history = []
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.epochs, unit="epoch", desc=f"train {layout.shape_name()}", dynamic_ncols=True)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is detected below, once per epoch
            history += _epochs(layout, row, X, y, cfg, rates, seed, start_epoch, X_val, y_val, bar, velocity)
    finally:
        if bar is not None:
            bar.close()
    return history


def _epochs(layout, row, X, y, cfg, rates, seed, start_epoch, X_val, y_val, bar, velocity) -> list[dict]:
    """The epochs of ``train`` (arguments already validated)."""
    grad = np.empty_like(row)
    step = np.empty_like(row)
    mu = np.float32(cfg.momentum)
    history = []
    for e in range(start_epoch, start_epoch + cfg.epochs):
        t0 = time.perf_counter()
        rng = np.random.default_rng(np.random.SeedSequence([int(seed), int(e), SGD_EPOCH]))
        order = rng.permutation(X.shape[0]) if cfg.shuffle else np.arange(X.shape[0])
        lr = np.float32(epoch_lr(cfg, e))
        total, count = 0.0, 0
        for start in range(0, X.shape[0], cfg.batch_size):
            idx = order[start : start + cfg.batch_size]
            value, _ = loss_and_grad(layout, row, X[idx], y[idx], loss=cfg.loss, dropout=rates, rng=rng, grad=grad)
            if mu > 0:
                velocity *= mu
                velocity += grad
                if cfg.nesterov:  # step = grad + mu * velocity
                    np.multiply(velocity, mu * lr, out=step)
                    grad *= lr
                    step += grad
                else:
                    np.multiply(velocity, lr, out=step)
            else:
                np.multiply(grad, lr, out=step)
            row -= step
            total += value * idx.shape[0]
            count += idx.shape[0]
        if not np.isfinite(total) or not np.isfinite(row).all():
            raise TrainingError(f"training diverged in epoch {e} (loss {total / count}); lower the learning rate")
        entry = {"epoch": e, "lr": float(lr), "loss": total / count, "seconds": time.perf_counter() - t0}
        if X_val is not None:
            if cfg.loss == "nll":
                entry["val_accuracy"] = accuracy(layout, row, X_val, y_val)
            else:
                entry["val_mse"] = mean_squared_error(layout, row, X_val, y_val)
        history.append(entry)
        if bar is not None:
            bar.update(1)
            bar.set_postfix({k: f"{v:.4f}" for k, v in entry.items() if k in ("loss", "val_accuracy", "val_mse")})
    return history


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
    row = _check_row(layout, row)
    X = _check_X(layout, X, row.dtype)
    y = _check_y(layout, y, X.shape[0], "mse", row.dtype)
    return forward(layout, row, X, loss="mse").astype(np.float64) - y


def mean_absolute_error(layout: Layout, row: np.ndarray, X, y) -> float:
    """Mean over samples and outputs of ``|output - y|``."""
    return float(np.mean(np.abs(_regression_errors(layout, row, X, y))))


def mean_squared_error(layout: Layout, row: np.ndarray, X, y) -> float:
    """Mean over samples and outputs of ``(output - y)^2``."""
    return float(np.mean(np.square(_regression_errors(layout, row, X, y))))
