"""iNAS-style cost tables: DMA transfers, LEA vector MACs or CPU MACs, addressing overheads.

Which platform gets them: every layer of a platform without
``Platform.cpu_sw`` (the ``msp430fr5994-extfram`` preset, iNAS's platform,
which ``analysis/inas.py`` compares against), under either backend.  A
platform with ``cpu_sw`` (the ``msp430fr5994`` preset) is costed as the
emitted runtime executes (:mod:`.software`) under every backend; for
``backend="lea"`` it borrows this module's LEA kernel terms
(:func:`compute_per_elem`, :func:`lea_tile_compute`) and nothing else.

Per tile, from the :class:`~aidi.sim.platform.Platform` primitives (each
cites its source in ``sim/platform.py``):

* compute, ``backend="lea"`` (conv, fc, dwconv): the calls the emitted LEA
  kernel ``aidi_conv_tile_lea`` (models/emit/runtime/aidi_kernels_lea.c)
  makes, with ``len = n_cnt*kh*kw`` (``n_cnt`` = ``Tn`` of the tile's n tile,
  1 for depthwise) and ``len_e = len + len % 2`` (DSPLib wants even lengths;
  the vectors carry a zero pad):

  - per output element: one ``msp_mac_q15`` of length ``len_e``, the
    exactness guard (``sum|w| <= limit``, ``-2^30 < acc < 2^30``: 3 MAX) and
    the accumulate ``acc + mac/2`` (1 ADD);
  - the im2col gather of the window into the vector, ``len_e`` CPU word
    copies: once per output position ``(r, c)`` of the tile for conv/fc
    (shared by the tile's ``Tm`` output channels), once per output element
    for depthwise;
  - per tile: the ``max|x|`` scan over the padded input tile, ``x_cnt*Tri*Tci``
    x (ABS + MAX) (``x_cnt`` = ``Tn``, or ``Tm`` for depthwise), the limit
    ``2^30 / max|x|`` (1 DIV), and ``sum|w|`` over each output channel's
    filter slice, ``Tm*len`` x (ABS + ADD).

  This is the LEA path.  Where saturation could occur (a data-dependent test)
  the kernel computes that element with the CPU dot product instead; that
  fallback is not costed.  ``backend="cpu"``: ``kh*kw*Tn`` software MACs per
  output element.  Accumulator init from the bias: one CPU add per element;
  the output step: 2 adds + 2 max (+1 max with ReLU) per element.  Pools run
  on the CPU: ``kk`` max, or ``kk`` adds and one division, per output element.
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
from .. import ops
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
    y0 = r0 * geom.sh - geom.pads[0]
    rows = np.minimum(y0 + (tr - 1) * geom.sh + geom.kh, H) - np.maximum(y0, 0)
    x0 = c0 * geom.sw - geom.pads[1]
    cols = np.minimum(x0 + (tc - 1) * geom.sw + geom.kw, W) - np.maximum(x0, 0)
    return rows, cols


def lea_len(geom: LayerGeom, tn: np.ndarray) -> np.ndarray:
    """Vector length ``n_cnt*kh*kw`` of the LEA kernel's dot products, by n tile (depthwise: one channel)."""
    n_cnt = np.ones_like(tn) if geom.channel_tied else tn
    return n_cnt * geom.kh * geom.kw


def compute_per_elem(geom: LayerGeom, p: Platform, backend: str, tn: np.ndarray) -> np.ndarray:
    """``(Nt, 2)`` compute per output element by n tile (see the module docstring)."""
    kh, kw = geom.kh, geom.kw
    if backend == "lea" and geom.weighted:
        ln = lea_len(geom, tn)
        ln_e = ln + ln % 2
        per = vec_cost(p.lea_mac, ln_e) + pair(p.cpu_max(3)) + pair(p.cpu_add(1))
        if geom.channel_tied:  # dwconv: the window is gathered per output element
            per = per + vec_cost(p.cpu_copy, ln_e)
        return per
    code = geom.traits.code
    if code in (ops.CONV, ops.FC):
        return kh * kw * vec_cost(p.cpu_mac, tn)
    if code == ops.DWCONV:
        return np.broadcast_to(pair(p.cpu_mac(kh * kw)), (1, 2)).copy()
    kk = kh * kw
    if code == ops.MAXPOOL:
        per = pair(p.cpu_max(kk))
    elif code == ops.AVGPOOL:
        per = pair(p.cpu_add(kk)) + pair(p.cpu_div(1))
    else:  # add: one sum (the alignment shifts are constant shifts, counted with it)
        per = pair(p.cpu_add(1))
    if geom.relu:
        per = per + pair(p.cpu_max(1))
    return np.broadcast_to(per, (1, 2)).copy()


def lea_tile_compute(geom: LayerGeom, p: Platform, axes) -> tuple[np.ndarray, np.ndarray]:
    """Per-tile compute of the LEA kernel: ``(Xn, Rt, Ct, 2)`` keyed by the input tile (``max|x|`` scan,
    limit division, conv's gathers) and ``(Mt, Nt, 2)`` keyed by the weight tile (``sum|w|``)."""
    m0, tm, n0, tn, r0, tr, c0, tc = axes
    x_cnt = tm if geom.channel_tied else tn
    tri = (tr - 1) * geom.sh + geom.kh
    tci = (tc - 1) * geom.sw + geom.kw
    scan = pair(p.cpu_abs(1)) + pair(p.cpu_max(1))
    by_in = (x_cnt[:, None, None] * tri[None, :, None] * tci[None, None, :])[..., None] * scan + pair(p.cpu_div(1))
    ln = lea_len(geom, tn)
    if not geom.channel_tied:  # one gather per output position (r, c), shared by the tile's output channels
        pos = tr[None, :, None] * tc[None, None, :]
        by_in = by_in + pos[..., None] * vec_cost(p.cpu_copy, ln + ln % 2)[:, None, None, :]
    by_w = (tm[:, None] * ln[None, :])[..., None] * (pair(p.cpu_abs(1)) + pair(p.cpu_add(1)))
    return by_in, by_w


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
    inp = len(geom.src) * (inp + pair(p.cpu_add(7)) + pair(p.cpu_mul(5)))  # an add fetches two tiles
    if geom.weighted and not geom.channel_tied:
        per_m = tn * kh * kw
        blocks = np.where(tn[None, :] < C, tm[:, None], 1)
        length = np.where(tn[None, :] < C, per_m[None, :], tm[:, None] * per_m[None, :])
        wgt = blocks[..., None] * vec_cost(p.dma_read, length) + pair(p.cpu_add(8)) + pair(p.cpu_mul(9))
    elif geom.weighted:
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
    if backend == "lea" and geom.weighted:
        by_in, by_w = lea_tile_compute(geom, p, axes)
    else:
        by_in, by_w = np.zeros(inp.shape), np.zeros(wgt.shape)
    c = np.ascontiguousarray
    return CostTables(
        m0=m0, tm=tm, n0=n0, tn=tn, r0=r0, tr=tr, c0=c0, tc=tc, compute_per_elem=c(vec), load_input=c(inp),
        load_weights=c(wgt), load_bias=c(bias), acc_init=init, requant=req, psum_read=c(prd), psum_write=c(pwr),
        out_write=c(out), commit=pair(p.commit()), out_elems=(otm * otr * otc).astype(np.int64),
        tile_overhead_mr=np.zeros((grid[0], grid[2], 2)), tile_overhead_n=np.zeros((grid[1], 2)),
        tile_overhead_c=np.zeros((grid[3], 2)), tile_by_input=c(by_in), tile_by_weights=c(by_w),
        version_div=zero2, layer_start=zero2, software=False)
