"""iNAS-style cost tables: DMA transfers, LEA vector MACs or CPU MACs, addressing overheads.

Per tile, from the :class:`~aidi.sim.platform.Platform` primitives (each
cites its source in ``sim/platform.py``):

* compute: ``backend="lea"``: one ``msp_mac_q15`` of length ``Tn`` (rounded up
  to even, a DSPLib requirement) plus one CPU add per output element per
  ``(kh, kw)`` (depthwise: one MAC of length ``kw`` per output element per
  ``kh``); ``backend="cpu"``: ``kh*kw*Tn`` software MACs per output element.
  Accumulator init from the bias: one CPU add per element; the output step:
  2 adds + 2 max (+1 max with ReLU) per element.  Pools run on the CPU:
  ``kk`` max, or ``kk`` adds and one division, per output element.
* data movement: DMA of each contiguous FRAM block of a loaded input tile,
  weight tile, bias and partial-sum tile, and of each written output or
  partial-sum block (int32 = 2 words), plus iNAS's addressing overheads per
  fetch/backup (input 7 ADD + 5 MUL, weights 8 + 9, outputs 7 + 4).
  Zero padding is written into SRAM by the loader and not charged.
* preservation: one ``platform.commit()`` per unit.
"""

from __future__ import annotations

import numpy as np

from ...sim.platform import Platform
from ..layers import LayerGeom
from .tables import CostTables, pair, vec_cost


def box_blocks(nch, nrows, ncols, h, w):
    """Contiguous blocks of a CHW box: (number of blocks, elements per block)."""
    nch, nrows, ncols = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (nch, nrows, ncols)))
    blocks = np.where(ncols < w, nch * nrows, np.where(nrows < h, nch, 1))
    length = np.where(ncols < w, ncols, np.where(nrows < h, nrows * w, nch * h * w))
    return blocks, length


def dma_box(fn, nch, nrows, ncols, h, w, words_per_elem: int) -> np.ndarray:
    """``[cycles, energy]`` of moving a CHW box block by block with the DMA primitive ``fn``."""
    blocks, length = box_blocks(nch, nrows, ncols, h, w)
    return blocks[..., None] * vec_cost(fn, length * words_per_elem)


def input_rows_cols(geom: LayerGeom, r0, tr, c0, tc):
    """Valid (inside the unpadded input) rows and columns of each input tile."""
    C, H, W = geom.in_shape
    s, pad = geom.stride, geom.pad
    y0 = r0 * s - pad
    rows = np.minimum(y0 + (tr - 1) * s + geom.kh, H) - np.maximum(y0, 0)
    x0 = c0 * s - pad
    cols = np.minimum(x0 + (tc - 1) * s + geom.kw, W) - np.maximum(x0, 0)
    return rows, cols


def compute_per_elem(geom: LayerGeom, p: Platform, backend: str, tn: np.ndarray) -> np.ndarray:
    """``(Nt, 2)`` compute per output element by n tile (see the module docstring)."""
    kh, kw = geom.kh, geom.kw
    if geom.op in ("conv", "fc"):
        if backend == "lea":
            return kh * kw * (vec_cost(p.lea_mac, tn + tn % 2) + pair(p.cpu_add(1)))
        return kh * kw * vec_cost(p.cpu_mac, tn)
    if geom.op == "dwconv":
        per = kh * (pair(p.lea_mac(kw + kw % 2)) + pair(p.cpu_add(1))) if backend == "lea" else pair(p.cpu_mac(kh * kw))
        return np.broadcast_to(per, (1, 2)).copy()
    kk = kh * kw
    per = pair(p.cpu_max(kk)) if geom.op == "maxpool" else pair(p.cpu_add(kk)) + pair(p.cpu_div(1))
    if geom.relu:
        per = per + pair(p.cpu_max(1))
    return np.broadcast_to(per, (1, 2)).copy()


def tables(geom: LayerGeom, axes, p: Platform, backend: str) -> CostTables:
    """The iNAS-style :class:`CostTables` of ``geom``; ``axes`` = (m0, tm, n0, tn, r0, tr, c0, tc)."""
    m0, tm, n0, tn, r0, tr, c0, tc = axes
    C, H, W = geom.in_shape
    M, Ho, Wo = geom.out_shape
    kh, kw = geom.kh, geom.kw
    grid = (len(m0), len(n0), len(r0), len(c0))
    zero2 = np.zeros(2)
    vec = compute_per_elem(geom, p, backend, tn)
    x_cnt = tm if geom.channel_tied else tn
    rows, cols = input_rows_cols(geom, r0, tr, c0, tc)
    inp = dma_box(p.dma_read, x_cnt[:, None, None], rows[None, :, None], cols[None, None, :], H, W, 1)
    inp = inp + pair(p.cpu_add(7)) + pair(p.cpu_mul(5))
    if geom.op in ("conv", "fc"):
        per_m = tn * kh * kw
        blocks = np.where(tn[None, :] < C, tm[:, None], 1)
        length = np.where(tn[None, :] < C, per_m[None, :], tm[:, None] * per_m[None, :])
        wgt = blocks[..., None] * vec_cost(p.dma_read, length) + pair(p.cpu_add(8)) + pair(p.cpu_mul(9))
    elif geom.op == "dwconv":
        wgt = (vec_cost(p.dma_read, tm * kh * kw) + pair(p.cpu_add(8)) + pair(p.cpu_mul(9)))[:, None, :]
    else:
        wgt = np.zeros((grid[0], 1, 2))
    if geom.weighted:
        bias = vec_cost(p.dma_read, 2 * tm)
        init = pair(p.cpu_add(1))
        req = pair(p.cpu_add(2)) + pair(p.cpu_max(3 if geom.relu else 2))
    else:
        bias, init, req = np.zeros((grid[0], 2)), zero2, zero2
    otm, otr, otc = tm[:, None, None], tr[None, :, None], tc[None, None, :]
    ovh = pair(p.cpu_add(7)) + pair(p.cpu_mul(4))
    out = dma_box(p.dma_write, otm, otr, otc, Ho, Wo, 1) + ovh
    if geom.weighted and grid[1] > 1:
        prd = dma_box(p.dma_read, otm, otr, otc, Ho, Wo, 2) + ovh
        pwr = dma_box(p.dma_write, otm, otr, otc, Ho, Wo, 2) + ovh
    else:
        prd = pwr = np.zeros(out.shape)
    c = np.ascontiguousarray
    return CostTables(m0, tm, n0, tn, r0, tr, c0, tc, c(vec), c(inp), c(wgt), c(bias), init, req, c(prd), c(pwr),
                      c(out), pair(p.commit()), (otm * otr * otc).astype(np.int64),
                      np.zeros((grid[0], grid[2], 2)), np.zeros((grid[1], 2)), np.zeros((grid[3], 2)), zero2, zero2,
                      False)
