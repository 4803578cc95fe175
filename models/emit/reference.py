"""Numpy reference of the Q15 semantics (see :mod:`.ir` for the definition).

Written for clarity, not speed: the accumulation loops over the terms in the
canonical order (input channel, kernel row, kernel column) and applies the
saturating 32-bit add after every term, vectorised over the output positions.
"""

from __future__ import annotations

import numpy as np

from .ir import INT16_MAX, INT16_MIN, INT32_MAX, INT32_MIN, LayerIR, NetworkIR


def sat32(a: np.ndarray) -> np.ndarray:
    return np.clip(a, INT32_MIN, INT32_MAX)


def sat16(a: np.ndarray) -> np.ndarray:
    return np.clip(a, INT16_MIN, INT16_MAX)


def rshift_round(a: np.ndarray, k: int) -> np.ndarray:
    """``a if k == 0 else ((a >> (k-1)) + 1) >> 1`` on int64 (arithmetic shifts)."""
    a = np.asarray(a, np.int64)
    if k == 0:
        return a
    return ((a >> (k - 1)) + 1) >> 1


def _windows(xp: np.ndarray, i: int, j: int, stride: int, ho: int, wo: int) -> np.ndarray:
    """``xp[..., i + stride*r, j + stride*c]`` for all output positions (r, c)."""
    return xp[..., i: i + stride * (ho - 1) + 1: stride, j: j + stride * (wo - 1) + 1: stride]


def _accumulate(layer: LayerIR, x: np.ndarray) -> np.ndarray:
    """int32 accumulators ``[M, Ho, Wo]`` (as int64 holding int32 values)."""
    n_in, _, _ = layer.kernel_in_shape
    m, ho, wo = layer.out_shape
    x = x.reshape(layer.kernel_in_shape).astype(np.int64)
    p = layer.pad
    xp = np.pad(x, ((0, 0), (p, p), (p, p))) if p else x
    w = layer.weight.astype(np.int64)
    acc = np.broadcast_to(layer.bias.astype(np.int64)[:, None, None], (m, ho, wo)).copy()
    if layer.op == "dwconv":
        for i in range(layer.kh):
            for j in range(layer.kw):
                acc = sat32(acc + w[:, 0, i, j, None, None] * _windows(xp, i, j, layer.stride, ho, wo))
        return acc
    for n in range(n_in):
        for i in range(layer.kh):
            for j in range(layer.kw):
                win = _windows(xp[n], i, j, layer.stride, ho, wo)
                acc = sat32(acc + w[:, n, i, j, None, None] * win[None])
    return acc


def layer_forward(layer: LayerIR, x: np.ndarray) -> np.ndarray:
    """One layer on an int16 CHW tensor; returns int16 ``layer.out_shape``."""
    x = np.asarray(x)
    if x.dtype != np.int16:
        raise ValueError(f"layer input must be int16, got {x.dtype}")
    op = layer.op
    if layer.weighted:
        y = sat16(rshift_round(_accumulate(layer, x), layer.shift))
    elif op == "relu":
        y = np.maximum(x.astype(np.int64), 0)
    else:
        _, ho, wo = layer.out_shape
        xi = x.astype(np.int64)
        wins = [_windows(xi, i, j, layer.stride, ho, wo) for i in range(layer.kh) for j in range(layer.kw)]
        if op == "maxpool":
            y = np.max(np.stack(wins), axis=0)
        else:  # avgpool, gap: int32 sum, floor((sum + kk/2) / kk)
            kk = layer.kh * layer.kw
            y = np.floor_divide(np.sum(np.stack(wins), axis=0) + kk // 2, kk)
    if layer.relu:
        y = np.maximum(y, 0)
    return y.astype(np.int16).reshape(layer.out_shape)


def reference_forward(ir: NetworkIR) -> list[np.ndarray]:
    """Outputs (int16, CHW) of every layer of ``ir`` on its embedded input sample."""
    outs, x = [], ir.input
    for layer in ir.layers:
        x = layer_forward(layer, x)
        outs.append(x)
    return outs
