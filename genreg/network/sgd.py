"""Minibatch SGD on a genome's row, with the gradients of ``genreg.network.backprop``.

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
from genreg.network.backprop import (LOSSES, check_output_activation, check_row, check_X, check_y, accuracy,
                                     dropout_rates, loss_and_grad, mean_squared_error)
from genreg.network.layout import Layout
from genreg.streams import SGD_EPOCH


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
    row = check_row(layout, row)
    if row.dtype != np.float32:
        raise ConfigError("train() works on float32 rows")
    X = check_X(layout, X, np.float32)
    y = check_y(layout, y, X.shape[0], cfg.loss, np.float32)
    check_output_activation(layout, cfg.loss)
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
