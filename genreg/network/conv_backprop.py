"""NumPy forward and backward of a ConvNet's stages (convolutions, max and average pooling).

``genreg.network.backprop`` calls these for a ``Layout`` with ``is_conv``: the stages
turn the images into the flat features the dense layers read, and the backward
pass turns the gradient of those features into the gradients of every filter and
bias (and, for adversarial attacks, of the input pixels).

Images are channels-last: a row of ``X: (B, H * W * C)`` is an ``(H, W, C)``
image; every activation between stages is ``(B, H, W, C)``, and the features the
dense layers read are the last stage's output flattened in ``h, w, c`` order.

Convolution ``C{i}: (C_out, k, k, C_in)``, bias ``cb{i}: (C_out,)``, stride ``s``,
zero padding ``p`` (cross-correlation, as every deep-learning library)::

    z[b, y, x, o] = cb[o] + sum_{i, j, c} xpad[b, s*y + i, s*x + j, c] * C[o, i, j, c]
    h = act(z)                                  the layout's hidden activation

computed as one BLAS product per stage: the windows are gathered into
``cols: (B * H' * W', k * k * C_in)`` (im2col, in the filters' ``(i, j, c)`` order)
and ``z = cols @ C.reshape(C_out, -1).T + cb``.  The backward pass is
``dC = dz^T @ cols``, ``dcb = sum(dz)`` and, where the input's gradient is needed,
``dcols = dz @ C`` scattered back onto the padded input (col2im: k * k strided adds).

Pooling ``k`` (stride k, a remainder row/column dropped): max or mean of each
k x k window, per channel.  Max pooling sends a window's gradient to its
arg-max element; **ties go to the first maximum in row-major order** (top row
first, then left to right), as ``np.argmax`` picks it (and as PyTorch's CPU
max pooling does).  Average pooling spreads it evenly (``/ k^2``); the dropped
remainder rows and columns get zero gradient.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from genreg.network.layout import ConvLayer, Layout

#: Floats of im2col scratch one chunk of an evaluation (no gradients) may use (32 MB in float32).
EVAL_SCRATCH = 1 << 23


# -- convolution -----------------------------------------------------------------
def _pad(x: np.ndarray, p: int) -> np.ndarray:
    return np.pad(x, ((0, 0), (p, p), (p, p), (0, 0))) if p else x


def im2col(x: np.ndarray, k: int, stride: int, padding: int, out_hw: tuple[int, int]) -> np.ndarray:
    """Windows of ``x: (B, H, W, C)``: ``(B * H' * W', k * k * C)``, each row in ``(i, j, c)`` order.

    The windows are a read-only strided view of the padded input (window ``(y, x)`` starts at
    ``(s * y, s * x)``), copied once into the contiguous matrix.
    """
    B, _, _, C = x.shape
    Ho, Wo = out_hw
    xp = np.ascontiguousarray(_pad(x, padding))
    sb, sh, sw, sc = xp.strides
    windows = as_strided(xp, (B, Ho, Wo, k, k, C), (sb, sh * stride, sw * stride, sh, sw, sc), writeable=False)
    return np.ascontiguousarray(windows).reshape(B * Ho * Wo, k * k * C)


def col2im(dcols: np.ndarray, in_shape: tuple, k: int, stride: int, padding: int,
           out_hw: tuple[int, int]) -> np.ndarray:
    """The adjoint of ``im2col``: ``dcols: (B * H' * W', k * k * C)`` summed back onto ``(B, H, W, C)``."""
    B, H, W, C = in_shape
    Ho, Wo = out_hw
    d = dcols.reshape(B, Ho, Wo, k, k, C)
    dxp = np.zeros((B, H + 2 * padding, W + 2 * padding, C), dtype=dcols.dtype)
    for i in range(k):
        for j in range(k):
            dxp[:, i : i + stride * (Ho - 1) + 1 : stride, j : j + stride * (Wo - 1) + 1 : stride] += d[:, :, :, i, j, :]
    return dxp[:, padding : padding + H, padding : padding + W] if padding else dxp


def _filters(layout: Layout, row: np.ndarray, cl: ConvLayer) -> tuple[np.ndarray, np.ndarray]:
    """``(C_out, k * k * C_in)`` filters and ``(C_out,)`` bias of convolution ``cl`` (views of ``row``)."""
    F = row[cl.C.offset : cl.C.stop].reshape(cl.C.shape[0], -1)
    return F, row[cl.b.offset : cl.b.stop]


def _conv(layout, row, cl, x, keep):
    """One convolution and the hidden activation: ``(B, H', W', C_out)`` (and the cache)."""
    from genreg.network.backprop import _activate

    s = cl.stage
    Ho, Wo, Co = cl.out_shape
    cols = im2col(x, s.k, s.stride, s.padding, (Ho, Wo))
    F, b = _filters(layout, row, cl)
    z = cols @ F.T
    z += b
    a = _activate(layout.hidden_activation, z).reshape(x.shape[0], Ho, Wo, Co)
    return a, ((cols, a, x.shape) if keep else None)


def _conv_backward(layout, row, grad, cl, cache, d, need_dx):
    """Gradients of convolution ``cl`` from ``d = dLoss/d(its output)`` (overwritten); dLoss/d(input) if asked."""
    from genreg.network.backprop import _activation_grad

    cols, a, in_shape = cache
    s = cl.stage
    dz = _activation_grad(layout.hidden_activation, a, d).reshape(-1, cl.out_shape[2])
    F, _ = _filters(layout, row, cl)
    np.matmul(dz.T, cols, out=grad[cl.C.offset : cl.C.stop].reshape(F.shape))
    np.sum(dz, axis=0, out=grad[cl.b.offset : cl.b.stop])
    if not need_dx:
        return None
    return col2im(dz @ F, in_shape, s.k, s.stride, s.padding, cl.out_shape[:2])


# -- pooling -----------------------------------------------------------------------------
def _windows(x: np.ndarray, k: int, out_hw) -> np.ndarray:
    """``x: (B, H, W, C)`` cut to whole windows: ``(B, H', k, W', k, C)`` (a view when nothing is dropped)."""
    B, _, _, C = x.shape
    Ho, Wo = out_hw
    return x[:, : Ho * k, : Wo * k].reshape(B, Ho, k, Wo, k, C)


def _pool(cl, x, keep):
    """Max or average pooling of ``x: (B, H, W, C)``: ``(B, H', W', C)`` (and the cache)."""
    k = cl.stage.k
    Ho, Wo, C = cl.out_shape
    win = _windows(x, k, (Ho, Wo))
    if cl.stage.kind == "avg":
        return win.mean(axis=(2, 4), dtype=x.dtype), (x.shape if keep else None)
    if not keep:  # the maximum of the k * k strided sub-images (cheaper than a reduction over two axes)
        out = x[:, : Ho * k : k, : Wo * k : k].copy()
        for i in range(k):
            for j in range(k):
                if i or j:
                    np.maximum(out, x[:, i : Ho * k : k, j : Wo * k : k], out=out)
        return out, None
    flat = win.transpose(0, 1, 3, 5, 2, 4).reshape(x.shape[0], Ho, Wo, C, k * k)
    arg = np.argmax(flat, axis=-1)[..., None]  # the first maximum in row-major window order
    return np.take_along_axis(flat, arg, axis=-1)[..., 0], (x.shape, arg)


def _pool_backward(cl, cache, d):
    """dLoss/d(pooling input) ``(B, H, W, C)`` from ``d: (B, H', W', C)``."""
    k = cl.stage.k
    Ho, Wo, C = cl.out_shape
    in_shape = cache if cl.stage.kind == "avg" else cache[0]
    B = in_shape[0]
    dx = np.zeros(in_shape, dtype=d.dtype)
    if cl.stage.kind == "avg":
        d = d * d.dtype.type(1.0 / (k * k))
        win = np.broadcast_to(d[:, :, None, :, None, :], (B, Ho, k, Wo, k, C))
    else:
        flat = np.zeros((B, Ho, Wo, C, k * k), dtype=d.dtype)
        np.put_along_axis(flat, cache[1], d[..., None], axis=-1)
        win = flat.reshape(B, Ho, Wo, C, k, k).transpose(0, 1, 4, 2, 5, 3)
    dx[:, : Ho * k, : Wo * k] = win.reshape(B, Ho * k, Wo * k, C)
    return dx


# -- the stages ------------------------------------------------------------------------------
def _stages(layout, row, x, keep):
    caches = []
    for cl in layout.conv_layers:
        x, cache = _conv(layout, row, cl, x, keep) if cl.is_conv else _pool(cl, x, keep)
        caches.append(cache)
    return x.reshape(x.shape[0], -1), caches


def eval_chunk(layout: Layout) -> int:
    """Images per chunk of an evaluation, so that no im2col scratch exceeds ``EVAL_SCRATCH`` floats."""
    per_image = max((cl.out_shape[0] * cl.out_shape[1] * cl.fan_in for cl in layout.conv_layers if cl.is_conv),
                    default=1)
    return max(1, EVAL_SCRATCH // per_image)


def features(layout: Layout, row: np.ndarray, X: np.ndarray, keep: bool = False):
    """The stages' output, flattened in ``h, w, c`` order: ``(B, n_flat)`` in the row's dtype, and the cache
    ``backward`` needs (``keep=True``; else None, and the batch goes through in chunks of ``eval_chunk``).

    row: ``(n_params,)`` float32 or float64; X: ``(B, H * W * C)`` of the row's dtype (checked by the caller).
    """
    shape = (X.shape[0], *layout.image)
    if keep:
        return _stages(layout, row, X.reshape(shape), True)
    out = np.empty((X.shape[0], layout.sizes[0]), dtype=X.dtype)
    step = eval_chunk(layout)
    for s in range(0, X.shape[0], step):
        part = X[s : s + step]
        out[s : s + step] = _stages(layout, row, part.reshape(part.shape[0], *layout.image), False)[0]
    return out, None


def backward(layout: Layout, row: np.ndarray, grad: np.ndarray, caches: list, dfeat: np.ndarray,
             input_grad: bool = False) -> np.ndarray | None:
    """Write dLoss/dC{i}, dLoss/dcb{i} of every convolution into ``grad: (n_params,)`` from
    ``dfeat: (B, n_flat)`` = dLoss/d(features); return dLoss/dX ``(B, H * W * C)`` if ``input_grad``."""
    d = dfeat.reshape(dfeat.shape[0], *layout.conv_layers[-1].out_shape)
    first_conv = 0 if input_grad else next((i for i, cl in enumerate(layout.conv_layers) if cl.is_conv),
                                         len(layout.conv_layers))
    for i in range(len(layout.conv_layers) - 1, -1, -1):
        cl = layout.conv_layers[i]
        need_dx = i > first_conv or input_grad
        if cl.is_conv:
            d = _conv_backward(layout, row, grad, cl, caches[i], d, need_dx)
        elif need_dx:
            d = _pool_backward(cl, caches[i], d)
        if not need_dx:
            break
    return d.reshape(d.shape[0], -1) if input_grad else None
