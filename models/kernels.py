"""Numba Q15 kernels over ONE TILE held in SRAM buffers.

Every kernel is ``@njit(cache=True)``, takes everything as arguments (no
globals, no allocation) and works on *flat* C-order buffers with explicit tile
extents, like the C runtime: an SRAM buffer is sized for the largest tile of a
layer and an edge tile uses its dense prefix.  Semantics are those documented
in :mod:`aidi.models.q15` (saturating int32 accumulation in the canonical order
input channel, kh, kw; round-half-up shift; saturation to int16; fused ReLU).

Tile coordinates: a conv tile covers output rows ``[r0, r0+tr)``, columns
``[c0, c0+tc)``, output channels ``[m0, m0+tm)`` and input channels
``[n0, n0+tn)``.  Its input buffer holds input channels ``[n0, n0+tn)``, rows
``[r0*sh - pad_top, r0*sh - pad_top + tri)`` and columns ``[c0*sw - pad_left, c0*sw - pad_left + tci)``
with ``tri = (tr-1)*sh + kh`` and ``tci = (tc-1)*sw + kw`` (out-of-range
positions hold zeros); its weight buffer holds ``w[m0:m0+tm, n0:n0+tn]``; its
int32 accumulator buffer holds the partial sums of the ``tm x tr x tc`` outputs
(initialised with the bias for ``n0 == 0`` or reloaded from FRAM otherwise).

Buffers (flat, C order):

=============  ==========================  ==================
kernel         input ``x``                 weights ``w``
=============  ==========================  ==================
conv_tile      ``(tn, tri, tci)`` int16    ``(tm, tn, kh, kw)`` int16
dw_tile        ``(tm, tri, tci)`` int16    ``(tm, kh, kw)`` int16
fc_tile        ``(tn,)`` int16             ``(tm, tn)`` int16
pool_tile      ``(tm, tri, tci)`` int16    --
add_tile       two ``(n,)`` int16          --
=============  ==========================  ==================

``acc`` is ``(tm, tr, tc)`` int32 (``(tm,)`` for fc); pool_tile and requantize
write int16 ``(tm, tr, tc)`` outputs, clamped to ``[lo, hi]`` (``lo`` 0 with a
ReLU, else -32768; ``hi`` the relu6 clamp, else 32767); add_tile writes the
aligned int32 sums of two int16 tiles into ``acc`` (then requantize).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _sat32(a):
    if a > 2147483647:
        return 2147483647
    if a < -2147483648:
        return -2147483648
    return a


@njit(cache=True)
def conv_tile(x, w, acc, tm, tn, tr, tc, kh, kw, sh, sw, tri, tci):
    """acc[m, r, c] = sat32-accumulate over (n, i, j) of x[n, r*s+i, c*s+j] * w[m, n, i, j]."""
    for m in range(tm):
        for r in range(tr):
            for c in range(tc):
                o = (m * tr + r) * tc + c
                a = np.int64(acc[o])
                for n in range(tn):
                    for i in range(kh):
                        xb = (n * tri + r * sh + i) * tci + c * sw
                        wb = ((m * tn + n) * kh + i) * kw
                        for j in range(kw):
                            a = _sat32(a + np.int64(x[xb + j]) * np.int64(w[wb + j]))
                acc[o] = a


@njit(cache=True)
def dw_tile(x, w, acc, tm, tr, tc, kh, kw, sh, sw, tri, tci):
    """Depthwise: acc[m, r, c] = sat32-accumulate over (i, j) of x[m, r*s+i, c*s+j] * w[m, i, j]."""
    for m in range(tm):
        for r in range(tr):
            for c in range(tc):
                o = (m * tr + r) * tc + c
                a = np.int64(acc[o])
                for i in range(kh):
                    xb = (m * tri + r * sh + i) * tci + c * sw
                    wb = (m * kh + i) * kw
                    for j in range(kw):
                        a = _sat32(a + np.int64(x[xb + j]) * np.int64(w[wb + j]))
                acc[o] = a


@njit(cache=True)
def fc_tile(x, w, acc, tm, tn):
    """acc[m] = sat32-accumulate over n ascending of x[n] * w[m, n]."""
    for m in range(tm):
        a = np.int64(acc[m])
        wb = m * tn
        for n in range(tn):
            a = _sat32(a + np.int64(x[n]) * np.int64(w[wb + n]))
        acc[m] = a


@njit(cache=True)
def pool_tile(x, out, tm, tr, tc, kh, kw, sh, sw, tri, tci, is_max, relu, hi):
    """Max or average pool of one tile; avg = floor((sum + kk//2) / kk); optional ReLU, upper clamp ``hi``."""
    kk = kh * kw
    for m in range(tm):
        for r in range(tr):
            for c in range(tc):
                if is_max:
                    a = np.int64(-32768)
                else:
                    a = np.int64(0)
                for i in range(kh):
                    xb = (m * tri + r * sh + i) * tci + c * sw
                    for j in range(kw):
                        v = np.int64(x[xb + j])
                        if is_max:
                            if v > a:
                                a = v
                        else:
                            a += v
                if not is_max:
                    a = (a + kk // 2) // kk  # floor division (Python semantics in numba)
                if relu and a < 0:
                    a = 0
                if a > hi:
                    a = hi
                out[(m * tr + r) * tc + c] = a


@njit(cache=True)
def fill_bias(acc, bias, tm, tr, tc):
    """acc[m, r, c] = bias[m] (accumulator initialisation of the first input-channel tile)."""
    for m in range(tm):
        b = bias[m]
        for e in range(m * tr * tc, (m + 1) * tr * tc):
            acc[e] = b


@njit(cache=True)
def add_tile(xa, xb, acc, n, la, lb):
    """acc[e] = (xa[e] << la) + (xb[e] << lb): a residual add's exact int32 sums (la, lb <= 15)."""
    for e in range(n):
        acc[e] = (np.int64(xa[e]) << la) + (np.int64(xb[e]) << lb)


@njit(cache=True)
def requantize(acc, out, n, k, relu, hi):
    """out[e] = sat16(rshift_round(acc[e], k)), then max(., 0) if relu, min(., hi); int64 intermediate."""
    for e in range(n):
        a = np.int64(acc[e])
        if k > 0:
            a = ((a >> (k - 1)) + 1) >> 1
        if a > 32767:
            a = 32767
        elif a < -32768:
            a = -32768
        if relu and a < 0:
            a = 0
        if a > hi:
            a = hi
        out[e] = a
