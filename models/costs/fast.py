"""The cost tables of :mod:`.software` and :mod:`.lea_dma`, compiled (numba): the same numbers, for search loops.

:func:`fast_tables` returns the :class:`~.tables.CostTables` that
:func:`aidi.models.costs.cost_tables` returns for the same layer, tile sizes,
platform and backend (tested to 1e-9 on random layers), built in a few
microseconds instead of a millisecond of numpy, so the design optimizer
(:mod:`aidi.models.design_search`) can cost every tile size of a layer.  The
formulas, and the source of every constant, are those of :mod:`.software` and
:mod:`.lea_dma`; the platform's primitives enter as one float vector
(:func:`platform_vector`) and the layer as one int vector (:func:`geom_vector`).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from ...sim.platform import Platform
from ..layers import LayerGeom
from ..ops import ADD, BY_CODE, DWCONV, MAXPOOL
from ..runtime_sram import ALIGN, RUNTIME_STATE_BYTES, STACK_BYTES
from .software import ADD_ELEM_TAPS
from .spi import SPI_SLOTS, add_spi, box_blocks, spi_vector, valid_span
from .tables import CostTables

#: op codes of geom_vector (the rows of :data:`aidi.models.ops.OPS` by code)
OPS = BY_CODE
#: SoftwareCosts fields, in the order of platform_vector's tail
SW_FIELDS = ("layer_start", "unit", "tile_weighted", "tile_pool", "tile_bit", "fetch_bit", "in_fetch", "in_row",
             "in_row_bit", "in_pad_row", "in_word", "in_pad_word", "w_filter", "w_word", "acc_init", "output",
             "io_channel", "psum_event", "psum_word", "version_div", "acc_elem", "acc_channel", "kernel_row", "mac",
             "tile_row", "pool_out", "avg_div", "max_tap", "avg_tap")
# platform_vector slots
EPC = 0
DMA_R, DMA_W, LEA = 1, 6, 11  # each: cycles slope, offset, has energy fit, energy slope, offset
C_MAC, C_ADD, C_MUL, C_DIV, C_MAX, C_ABS, C_COPY = range(16, 23)
E_ADD, E_MUL, E_DIV, E_MAX = range(23, 27)  # NaN: cycles x energy per cycle
COMMIT_WORDS = 27
SW0 = 28
(S_LAYER_START, S_UNIT, S_TILE_W, S_TILE_POOL, S_TILE_BIT, S_FETCH_BIT, S_IN_FETCH, S_IN_ROW, S_IN_ROW_BIT,
 S_IN_PAD_ROW, S_IN_WORD, S_IN_PAD_WORD, S_W_FILTER, S_W_WORD, S_ACC_INIT, S_OUTPUT, S_IO_CHANNEL, S_PSUM_EVENT,
 S_PSUM_WORD, S_VERSION_DIV, S_ACC_ELEM, S_ACC_CHANNEL, S_KERNEL_ROW, S_MAC, S_TILE_ROW, S_POOL_OUT, S_AVG_DIV,
 S_MAX_TAP, S_AVG_TAP) = range(SW0, SW0 + len(SW_FIELDS))
SPI0 = SW0 + len(SW_FIELDS)  # the placement and SPI FRAM constants (:func:`aidi.models.costs.spi.spi_vector`)


def platform_vector(p: Platform) -> np.ndarray:
    """The primitives of ``p`` as the float vector the compiled builders read (slots above)."""
    v = np.full(SPI0 + SPI_SLOTS, np.nan)
    v[SPI0:] = spi_vector(p)
    v[EPC] = p.energy_per_cycle_J
    for base, cyc, en in ((DMA_R, p.dma_read_cycles, p.dma_read_energy), (DMA_W, p.dma_write_cycles,
                                                                          p.dma_write_energy),
                          (LEA, p.lea_mac_cycles, p.lea_mac_energy)):
        v[base:base + 2] = cyc.slope, cyc.offset
        v[base + 2] = 0.0 if en is None else 1.0
        if en is not None:
            v[base + 3:base + 5] = en.slope, en.offset
    v[C_MAC:C_COPY + 1] = (p.cpu_mac_cycles, p.cpu_add_cycles, p.cpu_mul_cycles, p.cpu_div_cycles, p.cpu_max_cycles,
                           p.cpu_abs_cycles, p.cpu_copy_cycles)
    for slot, e in ((E_ADD, p.cpu_add_energy), (E_MUL, p.cpu_mul_energy), (E_DIV, p.cpu_div_energy),
                    (E_MAX, p.cpu_max_energy)):
        v[slot] = np.nan if e is None else e
    v[COMMIT_WORDS] = p.commit_words
    if p.cpu_sw is not None:
        v[SW0:SPI0] = [getattr(p.cpu_sw, f) for f in SW_FIELDS]
    return v


def geom_vector(g: LayerGeom) -> np.ndarray:
    """``[op, C, H, W, M, Ho, Wo, kh, kw, sh, pad_top, relu, sw, pad_left, inputs]`` (int64) of a layer
    (op: :data:`aidi.models.ops.OPS` code; inputs: input tensors, 2 for add)."""
    return np.array([g.traits.code, *g.in_shape, *g.out_shape, g.kh, g.kw, g.sh, g.pads[0], int(g.relu), g.sw,
                     g.pads[1], len(g.src)], dtype=np.int64)


@njit(cache=True)
def _bitlen(a):
    n = 0
    while a > 0:
        n += 1
        a >>= 1
    return n


@njit(cache=True)
def _prim(pv, base, n, out):
    """A Linear primitive (DMA read/write, LEA MAC) of size n -> out[0:2]; DMA of n <= 0 is free."""
    c = pv[base] * n + pv[base + 1]
    out[0] = c
    out[1] = pv[base + 3] * n + pv[base + 4] if pv[base + 2] > 0 else c * pv[EPC]


@njit(cache=True)
def _dma(pv, base, n, out):
    if n <= 0:
        out[0] = 0.0
        out[1] = 0.0
    else:
        _prim(pv, base, n, out)


@njit(cache=True)
def _cpu(pv, slot, eslot, n):
    """(cycles, energy) of n CPU operations (eslot < 0 or NaN: cycles x energy per cycle)."""
    c = pv[slot] * n
    if eslot >= 0 and not math.isnan(pv[eslot]):
        return c, pv[eslot] * n
    return c, c * pv[EPC]


@njit(cache=True)
def _axis(dim, t):
    k = (dim + t - 1) // t
    s = np.empty(k, np.int64)
    e = np.empty(k, np.int64)
    _axis_into(dim, t, s, e)
    return s, e


@njit(cache=True)
def _axis_into(dim, t, s, e):
    """Starts and extents of the tiles of size ``t`` along ``dim`` into ``s``, ``e`` (long enough); -> count."""
    k = (dim + t - 1) // t
    for i in range(k):
        s[i] = i * t
        e[i] = min(t, dim - i * t)
    return k


@njit(cache=True)
def _box(pv, base, nch, nrows, ncols, h, w, wpe, out):
    """dma_box: blocks x DMA(length x wpe) of a CHW box -> out."""
    blocks, length = box_blocks(nch, nrows, ncols, h, w)
    _dma(pv, base, length * wpe, out)
    out[0] *= blocks
    out[1] *= blocks


@njit(cache=True)
def _lea_compute(op, kh, kw, tn, pv):
    """lea_dma.compute_per_elem for the LEA kernel: (Nt, 2)."""
    vec = np.empty((tn.shape[0], 2))
    _lea_compute_into(op, kh, kw, tn, pv, vec, np.empty(2))
    return vec


@njit(cache=True)
def _lea_compute_into(op, kh, kw, tn, pv, vec, tmp):
    """:func:`_lea_compute` into ``vec`` (Nt, 2), ``tmp`` (2,) scratch."""
    nt = tn.shape[0]
    mx = _cpu(pv, C_MAX, E_MAX, 3)
    ad = _cpu(pv, C_ADD, E_ADD, 1)
    for n in range(nt):
        ln = (1 if op == 2 else tn[n]) * kh * kw
        ln_e = ln + ln % 2
        _prim(pv, LEA, ln_e, tmp)
        vec[n, 0] = tmp[0] + mx[0] + ad[0]
        vec[n, 1] = tmp[1] + mx[1] + ad[1]
        if op == 2:
            cp = _cpu(pv, C_COPY, -1, ln_e)
            vec[n, 0] += cp[0]
            vec[n, 1] += cp[1]


@njit(cache=True)
def _lea_tile(op, tied, kh, kw, s, s_w, tm, tn, tr, tc, pv):
    """lea_dma.lea_tile_compute: by_in (Xn, Rt, Ct, 2), by_w (Mt, Nt, 2)."""
    mt, nt, rt, ct = tm.shape[0], tn.shape[0], tr.shape[0], tc.shape[0]
    xn = mt if tied else nt
    ab = _cpu(pv, C_ABS, -1, 1)
    mx = _cpu(pv, C_MAX, E_MAX, 1)
    dv = _cpu(pv, C_DIV, E_DIV, 1)
    ad = _cpu(pv, C_ADD, E_ADD, 1)
    by_in = np.empty((xn, rt, ct, 2))
    for x in range(xn):
        xc = tm[x] if tied else tn[x]
        ln = (1 if op == 2 else tn[x if not tied else 0]) * kh * kw
        for r in range(rt):
            tri = (tr[r] - 1) * s + kh
            for c in range(ct):
                tci = (tc[c] - 1) * s_w + kw
                k = xc * tri * tci
                by_in[x, r, c, 0] = k * (ab[0] + mx[0]) + dv[0]
                by_in[x, r, c, 1] = k * (ab[1] + mx[1]) + dv[1]
                if op != 2:
                    cp = _cpu(pv, C_COPY, -1, ln + ln % 2)
                    pos = tr[r] * tc[c]
                    by_in[x, r, c, 0] += pos * cp[0]
                    by_in[x, r, c, 1] += pos * cp[1]
    by_w = np.empty((mt, nt, 2))
    for m in range(mt):
        for n in range(nt):
            ln = (1 if op == 2 else tn[n]) * kh * kw
            by_w[m, n, 0] = tm[m] * ln * (ab[0] + ad[0])
            by_w[m, n, 1] = tm[m] * ln * (ab[1] + ad[1])
    return by_in, by_w


@njit(cache=True)
def _compute_per_elem(op, kh, kw, relu, tn, pv, lea, software):
    """(Nt, 2) compute per output element and n tile: the LEA kernel (:func:`_lea_compute`), the runtime's
    portable kernels (:mod:`.software`) or iNAS-style CPU MACs / pool operations (:mod:`.lea_dma`)."""
    vec = np.zeros((tn.shape[0], 2))
    _compute_per_elem_into(op, kh, kw, relu, tn, pv, lea, software, vec, np.empty(2))
    return vec


@njit(cache=True)
def _compute_per_elem_into(op, kh, kw, relu, tn, pv, lea, software, vec, tmp):
    """:func:`_compute_per_elem` into ``vec`` (Nt, 2), every row written; ``tmp`` (2,) scratch."""
    if lea:
        _lea_compute_into(op, kh, kw, tn, pv, vec, tmp)
        return
    nt = tn.shape[0]
    kk = kh * kw
    for n in range(nt):
        if software:
            if op <= 1:
                cyc = pv[S_ACC_ELEM] + tn[n] * (pv[S_ACC_CHANNEL] + kh * (pv[S_KERNEL_ROW] + kw * pv[S_MAC]))
            elif op == DWCONV:
                cyc = pv[S_ACC_ELEM] + pv[S_ACC_CHANNEL] + kh * (pv[S_KERNEL_ROW] + kw * pv[S_MAC])
            elif op == MAXPOOL:
                cyc = pv[S_POOL_OUT] + kk * pv[S_MAX_TAP]
            elif op == ADD:
                cyc = pv[S_POOL_OUT] + ADD_ELEM_TAPS * pv[S_AVG_TAP]
            else:
                cyc = pv[S_POOL_OUT] + pv[S_AVG_DIV] + kk * pv[S_AVG_TAP]
            vec[n, 0] = cyc
            vec[n, 1] = cyc * pv[EPC]
        elif op <= 1:
            c1 = _cpu(pv, C_MAC, -1, tn[n])
            vec[n, 0] = kk * c1[0]
            vec[n, 1] = kk * c1[1]
        elif op == 2:
            c1 = _cpu(pv, C_MAC, -1, kk)
            vec[n, 0] = c1[0]
            vec[n, 1] = c1[1]
        else:
            if op == MAXPOOL:
                c1 = _cpu(pv, C_MAX, E_MAX, kk)
            elif op == ADD:
                c1 = _cpu(pv, C_ADD, E_ADD, 1)
            else:
                a1 = _cpu(pv, C_ADD, E_ADD, kk)
                d1 = _cpu(pv, C_DIV, E_DIV, 1)
                c1 = (a1[0] + d1[0], a1[1] + d1[1])
            vec[n, 0] = c1[0]
            vec[n, 1] = c1[1]
            if relu:
                r1 = _cpu(pv, C_MAX, E_MAX, 1)
                vec[n, 0] += r1[0]
                vec[n, 1] += r1[1]


@njit(cache=True)
def _tile_axes(gv, tr_, tc_, tm_, tn_):
    """Starts and extents of the tiles along m, n, r, c (n: one tile of Tm for channel-tied layers)."""
    m0, tm = _axis(gv[4], tm_)
    r0, tr = _axis(gv[5], tr_)
    c0, tc = _axis(gv[6], tc_)
    if gv[0] >= 2:
        n0 = np.zeros(1, np.int64)
        tn = np.full(1, tm_, np.int64)
    else:
        n0, tn = _axis(gv[1], tn_)
    return m0, tm, n0, tn, r0, tr, c0, tc


@njit(cache=True)
def _tile_axes_into(gv, tr_, tc_, tm_, tn_, iw):
    """:func:`_tile_axes` as views into rows 0-7 of the int64 scratch ``iw`` (:func:`lb_scratch`), no allocation."""
    mt = _axis_into(gv[4], tm_, iw[0], iw[1])
    rt = _axis_into(gv[5], tr_, iw[4], iw[5])
    ct = _axis_into(gv[6], tc_, iw[6], iw[7])
    if gv[0] >= 2:
        nt = 1
        iw[2, 0] = 0
        iw[3, 0] = tm_
    else:
        nt = _axis_into(gv[1], tn_, iw[2], iw[3])
    return iw[0, :mt], iw[1, :mt], iw[2, :nt], iw[3, :nt], iw[4, :rt], iw[5, :rt], iw[6, :ct], iw[7, :ct]


@njit(cache=True)
def _passes(pv, weighted, software, relu):
    """(accumulator init per element, output step per element, commit) as [cycles, energy]: the runtime's
    (:mod:`.software`) or iNAS-style (:mod:`.lea_dma`)."""
    init = np.zeros(2)
    req = np.zeros(2)
    commit = np.zeros(2)
    _passes_into(pv, weighted, software, relu, init, req, commit)
    return init, req, commit


@njit(cache=True)
def _passes_into(pv, weighted, software, relu, init, req, commit):
    """:func:`_passes` into ``init``, ``req``, ``commit`` (2,) each, zeroed first."""
    init[:] = 0.0
    req[:] = 0.0
    epc = pv[EPC]
    if weighted:
        if software:
            init[0], init[1] = pv[S_ACC_INIT], pv[S_ACC_INIT] * epc
            req[0], req[1] = pv[S_OUTPUT], pv[S_OUTPUT] * epc
        else:
            init[0], init[1] = _cpu(pv, C_ADD, E_ADD, 1)
            q1 = _cpu(pv, C_ADD, E_ADD, 2)
            q2 = _cpu(pv, C_MAX, E_MAX, 3 if relu else 2)
            req[0], req[1] = q1[0] + q2[0], q1[1] + q2[1]
    if software:
        commit[0], commit[1] = pv[S_UNIT], pv[S_UNIT] * epc
    else:
        _dma(pv, DMA_W, int(pv[COMMIT_WORDS]), commit)


@njit(cache=True)
def build_tables(gv, pv, tr_, tc_, tm_, tn_, lea_backend, software):
    """The CostTables of the layer ``gv`` (:func:`geom_vector`) under tile sizes (tr, tc, tm, tn); ``software``:
    the emitted runtime's (:mod:`.software`), else the iNAS-style ones (:mod:`.lea_dma`)."""
    op, C, H, W, M, Ho, Wo, kh, kw, s, pad, relu = (gv[0], gv[1], gv[2], gv[3], gv[4], gv[5], gv[6], gv[7], gv[8],
                                                     gv[9], gv[10], gv[11])
    s_w, pad_l, nin = gv[12], gv[13], gv[14]
    weighted = op <= 2
    tied = op >= 2
    lea = lea_backend and weighted
    kk = kh * kw
    epc = pv[EPC]
    m0, tm, n0, tn, r0, tr, c0, tc = _tile_axes(gv, tr_, tc_, tm_, tn_)
    mt, nt, rt, ct = tm.shape[0], tn.shape[0], tr.shape[0], tc.shape[0]
    xn = mt if tied else nt
    tmp = np.empty(2)
    vec = _compute_per_elem(op, kh, kw, relu, tn, pv, lea, software)  # per output element, by n tile
    inp = np.empty((xn, rt, ct, 2))
    if software:
        vrows = np.empty(rt, np.int64)
        rbits = np.empty(rt, np.int64)
        tri = np.empty(rt, np.int64)
        for r in range(rt):
            tri[r] = (tr[r] - 1) * s + kh
            y0 = r0[r] * s - pad
            v = 0
            b = 0
            for j in range(tri[r]):
                y = y0 + j
                if y >= 0 and y < H:
                    v += 1
                    b += _bitlen(max(2 * y, 0))
            vrows[r] = v
            rbits[r] = b
        for r in range(rt):
            prows = tri[r] - vrows[r]
            for c in range(ct):
                tci = (tc[c] - 1) * s_w + kw
                per_ch = (vrows[r] * (pv[S_IN_ROW] + tci * pv[S_IN_WORD]) + rbits[r] * pv[S_IN_ROW_BIT]
                          + prows * (pv[S_IN_PAD_ROW] + tci * pv[S_IN_PAD_WORD]))
                for x in range(xn):
                    cyc = nin * (pv[S_IN_FETCH] + (tm[x] if tied else tn[x]) * per_ch)
                    inp[x, r, c, 0] = cyc
                    inp[x, r, c, 1] = cyc * epc
    else:
        a7 = _cpu(pv, C_ADD, E_ADD, 7)
        m5 = _cpu(pv, C_MUL, E_MUL, 5)
        for r in range(rt):
            rows = valid_span(r0[r], tr[r], s, kh, pad, H)
            for c in range(ct):
                cols = valid_span(c0[c], tc[c], s_w, kw, pad_l, W)
                for x in range(xn):
                    _box(pv, DMA_R, tm[x] if tied else tn[x], rows, cols, H, W, 1, tmp)
                    inp[x, r, c, 0] = nin * (tmp[0] + a7[0] + m5[0])
                    inp[x, r, c, 1] = nin * (tmp[1] + a7[1] + m5[1])
    # weights
    wn = nt if op <= 1 else 1
    wgt = np.zeros((mt, wn, 2))
    if weighted:
        a8 = _cpu(pv, C_ADD, E_ADD, 8)
        m9 = _cpu(pv, C_MUL, E_MUL, 9)
        for m in range(mt):
            for n in range(wn):
                if software:
                    cyc = tm[m] * (pv[S_W_FILTER] + ((tn[n] * kk) if op <= 1 else kk) * pv[S_W_WORD])
                    wgt[m, n, 0] = cyc
                    wgt[m, n, 1] = cyc * epc
                else:
                    if op <= 1:
                        per_m = tn[n] * kk
                        if tn[n] < C:
                            blocks, length = tm[m], per_m
                        else:
                            blocks, length = 1, tm[m] * per_m
                    else:
                        blocks, length = 1, tm[m] * kk
                    _dma(pv, DMA_R, length, tmp)
                    wgt[m, n, 0] = blocks * tmp[0] + a8[0] + m9[0]
                    wgt[m, n, 1] = blocks * tmp[1] + a8[1] + m9[1]
    elems = np.empty((mt, rt, ct), np.int64)
    for m in range(mt):
        for r in range(rt):
            for c in range(ct):
                elems[m, r, c] = tm[m] * tr[r] * tc[c]
    bias = np.zeros((mt, 2))
    init, req, commit = _passes(pv, weighted, software, relu)
    out = np.zeros((mt, rt, ct, 2))
    prd = np.zeros((mt, rt, ct, 2))
    pwr = np.zeros((mt, rt, ct, 2))
    if software:
        if weighted:
            for m in range(mt):
                bias[m, 0] = pv[S_IO_CHANNEL] * tm[m]
                bias[m, 1] = bias[m, 0] * epc
            for m in range(mt):
                for r in range(rt):
                    for c in range(ct):
                        out[m, r, c, 0] = pv[S_IO_CHANNEL] * tm[m]
                        out[m, r, c, 1] = out[m, r, c, 0] * epc
                        if nt > 1:
                            cyc = pv[S_PSUM_EVENT] + pv[S_IO_CHANNEL] * tm[m] + pv[S_PSUM_WORD] * elems[m, r, c]
                            prd[m, r, c, 0] = cyc
                            prd[m, r, c, 1] = cyc * epc
                            pwr[m, r, c, 0] = cyc
                            pwr[m, r, c, 1] = cyc * epc
    else:
        a7 = _cpu(pv, C_ADD, E_ADD, 7)
        m4 = _cpu(pv, C_MUL, E_MUL, 4)
        if weighted:
            for m in range(mt):
                _dma(pv, DMA_R, 2 * tm[m], tmp)
                bias[m, 0] = tmp[0]
                bias[m, 1] = tmp[1]
        for m in range(mt):
            for r in range(rt):
                for c in range(ct):
                    _box(pv, DMA_W, tm[m], tr[r], tc[c], Ho, Wo, 1, tmp)
                    out[m, r, c, 0] = tmp[0] + a7[0] + m4[0]
                    out[m, r, c, 1] = tmp[1] + a7[1] + m4[1]
                    if weighted and nt > 1:
                        _box(pv, DMA_R, tm[m], tr[r], tc[c], Ho, Wo, 2, tmp)
                        prd[m, r, c, 0] = tmp[0] + a7[0] + m4[0]
                        prd[m, r, c, 1] = tmp[1] + a7[1] + m4[1]
                        _box(pv, DMA_W, tm[m], tr[r], tc[c], Ho, Wo, 2, tmp)
                        pwr[m, r, c, 0] = tmp[0] + a7[0] + m4[0]
                        pwr[m, r, c, 1] = tmp[1] + a7[1] + m4[1]
    # per-tile overheads (the runtime's)
    tov_mr = np.zeros((mt, rt, 2))
    tov_n = np.zeros((nt, 2))
    tov_c = np.zeros((ct, 2))
    if software:
        tile_c = (pv[S_TILE_W] if weighted else pv[S_TILE_POOL]) + pv[S_FETCH_BIT] * (
            _bitlen(s) + _bitlen(s_w) + _bitlen(H) + _bitlen(H * W))
        for m in range(mt):
            for r in range(rt):
                kr = 0.0 if lea else pv[S_TILE_ROW] * tm[m] * tr[r]
                cyc = (tile_c + pv[S_TILE_BIT] * (_bitlen(m) + _bitlen(m0[m]))
                       + pv[S_TILE_BIT] * (_bitlen(r) + _bitlen(r0[r])) + kr)
                tov_mr[m, r, 0] = cyc
                tov_mr[m, r, 1] = cyc * epc
        for n in range(nt):
            tov_n[n, 0] = pv[S_TILE_BIT] * _bitlen(n)
            tov_n[n, 1] = tov_n[n, 0] * epc
        for c in range(ct):
            tov_c[c, 0] = pv[S_TILE_BIT] * _bitlen(c)
            tov_c[c, 1] = tov_c[c, 0] * epc
    if lea:
        by_in, by_w = _lea_tile(op, tied, kh, kw, s, s_w, tm, tn, tr, tc, pv)
    else:
        by_in = np.zeros((xn, rt, ct, 2))
        by_w = np.zeros((mt, wn, 2))
    if pv[SPI0] > 0 or pv[SPI0 + 1] > 0:  # tensors in the external SPI FRAM
        add_spi(gv, pv[SPI0:], tm, tn, r0, tr, c0, tc, inp, wgt, bias, out, prd, pwr)
    vdiv = np.zeros(2)
    lstart = np.zeros(2)
    if software:
        vdiv[0] = pv[S_VERSION_DIV]
        vdiv[1] = vdiv[0] * epc
        lstart[0] = pv[S_LAYER_START]
        lstart[1] = lstart[0] * epc
    return CostTables(m0, tm, n0, tn, r0, tr, c0, tc, vec, inp, wgt, bias, init, req, prd, pwr, out, commit, elems,
                      tov_mr, tov_n, tov_c, by_in, by_w, vdiv, lstart, software)


def fast_tables(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int, p: Platform, backend: str) -> CostTables:
    """:func:`aidi.models.costs.cost_tables`, compiled (same arguments, same tables)."""
    from . import runtime_model

    return build_tables(geom_vector(geom), platform_vector(p), tr, tc, tm, tn if not geom.channel_tied else tm,
                        backend == "lea", runtime_model(p))


@njit(cache=True)
def _al(n):
    return (n + ALIGN - 1) // ALIGN * ALIGN


@njit(cache=True)
def sram_fits(gv, tr, tc, tm, tn, lea, acc_bytes, budget, arena_cap):
    """Does the layer's SRAM fit ``budget``, and its arena rows ``arena_cap`` (the LEA RAM when the plan may
    put the arena there, else anything >= budget)?  The arena rows of
    :func:`aidi.models.schedule.memory.layer_sram_buffers` (LEA rows when ``lea``; ``acc_bytes`` of live
    accumulator slots, at least one block) plus the runtime state and the stack:
    :func:`aidi.models.schedule.memory.check_sram` without the message."""
    op, kh, kw, s, s_w, nin = gv[0], gv[7], gv[8], gv[9], gv[12], gv[14]
    weighted = op <= 2
    tied = op >= 2
    if tied:
        tn = tm
    tri = (tr - 1) * s + kh
    tci = (tc - 1) * s_w + kw
    per_m = kh * kw * (1 if op == 2 else tn) if weighted else 0
    w_stride = per_m + (per_m & 1)
    off = 0  # the rows in order, each aligned: accumulators, LEA rows, weights, inputs
    if weighted:
        off = _al(max(4 * tm * tr * tc, acc_bytes))
        if lea:
            off = _al(_al(_al(off + 4) + 4 * tm) + 2 * max(2, w_stride))
        off = _al(off + 2 * tm * w_stride)
    off = _al(off + 2 * nin * tn * tri * tci)
    return off + RUNTIME_STATE_BYTES + STACK_BYTES <= budget and off <= arena_cap


@njit(cache=True)
def _dsum(pv, base, n, out, k):
    """out += k * DMA(n) (cycles, energy)."""
    if n > 0:
        c = pv[base] * n + pv[base + 1]
        out[0] += k * c
        out[1] += k * (pv[base + 3] * n + pv[base + 4] if pv[base + 2] > 0 else c * pv[EPC])


@njit(cache=True)
def _box_sum(pv, base, nch, rows, cols, h, w, wpe, out, tmp):
    """out += the sum over (x, r, c) of dma_box(nch[x], rows[r], cols[c]) (interior and edge tiles by class);
    ``tmp`` (2,) scratch."""
    sx = 0
    for x in range(nch.shape[0]):
        sx += nch[x]
    sr = 0
    full_r = 0
    for r in range(rows.shape[0]):
        sr += rows[r]
        if rows[r] >= h:
            full_r += 1
    full_c = 0
    for c in range(cols.shape[0]):
        if cols[c] < w:  # blocks nch * rows of cols words each
            _dsum(pv, base, cols[c] * wpe, out, sx * sr)
        else:
            full_c += 1
    if full_c == 0:
        return
    tmp[0] = 0.0
    tmp[1] = 0.0
    for r in range(rows.shape[0]):
        if rows[r] < h:  # whole rows: nch blocks of rows * w
            _dsum(pv, base, rows[r] * w * wpe, tmp, sx)
    for x in range(nch.shape[0]):
        _dsum(pv, base, nch[x] * h * w * wpe, tmp, full_r)  # whole channels: one block
    out[0] += full_c * tmp[0]
    out[1] += full_c * tmp[1]


@njit(cache=True)
def lb_scratch(gv):
    """The scratch arrays :func:`lower_bound_into` needs for any tile sizes of the layer ``gv``: int64 (12, L) and
    float (L + 8, 2), L the largest of the layer's channel and output dimensions; allocate once per layer."""
    n = max(gv[1], gv[4], gv[5], gv[6], 1)
    return np.empty((12, n), np.int64), np.empty((n + 8, 2))


@njit(cache=True)
def lower_bound_closed(gv, pv, tr_, tc_, tm_, tn_, lea_backend, software):
    """:func:`aidi.models.costs.tables.lower_bound` of the tables :func:`build_tables` would build, from per-axis sums only
    (O(tiles along each axis), no per-tile table): ``(lb [cycles, energy], commit [cycles, energy])``.  The SPI
    transfers of externally placed tensors (:mod:`.spi`) are left out: still a lower bound, a looser one."""
    iw, fw = lb_scratch(gv)
    c0, e0, c1, e1 = lower_bound_into(gv, pv, tr_, tc_, tm_, tn_, lea_backend, software, iw, fw)
    return np.array([c0, e0]), np.array([c1, e1])


@njit(cache=True)
def lower_bound_into(gv, pv, tr_, tc_, tm_, tn_, lea_backend, software, iw, fw):
    """:func:`lower_bound_closed` without allocating: every array lives in the scratch ``iw``, ``fw`` of
    :func:`lb_scratch` (the caller's, reused over a layer's candidates).  -> ``(lb cycles, lb energy J,
    commit cycles, commit energy J)``."""
    op, C, H, W, M, Ho, Wo, kh, kw, s, pad, relu = (gv[0], gv[1], gv[2], gv[3], gv[4], gv[5], gv[6], gv[7], gv[8],
                                                     gv[9], gv[10], gv[11])
    s_w, pad_l, nin = gv[12], gv[13], gv[14]
    weighted = op <= 2
    tied = op >= 2
    lea = lea_backend and weighted
    kk = kh * kw
    epc = pv[EPC]
    m0, tm, n0, tn, r0, tr, c0, tc = _tile_axes_into(gv, tr_, tc_, tm_, tn_, iw)
    mt, nt, rt, ct = tm.shape[0], tn.shape[0], tr.shape[0], tc.shape[0]
    xn = mt if tied else nt
    xc = tm if tied else tn
    sx = 0
    for x in range(xn):
        sx += xc[x]
    k0 = fw.shape[0] - 8
    out = fw[k0]  # the lower bound
    out[:] = 0.0
    tmp, init, req, commit, by = fw[k0 + 1], fw[k0 + 2], fw[k0 + 3], fw[k0 + 4], fw[k0 + 5]
    # compute per element x all elements, accumulator passes, commit
    vec = fw[:nt]
    _compute_per_elem_into(op, kh, kw, relu, tn, pv, lea, software, vec, tmp)
    _passes_into(pv, weighted, software, relu, init, req, commit)
    mhw = float(M * Ho * Wo)
    for q in range(2):
        sc = 0.0
        for n in range(nt):
            sc += vec[n, q]
        out[q] = mhw * (sc + init[q] + req[q]) + commit[q]
    # tile extents along r and c (input side)
    tri = iw[8, :rt]
    rows = iw[9, :rt]
    for r in range(rt):
        tri[r] = (tr[r] - 1) * s + kh
        y0 = r0[r] * s - pad
        rows[r] = min(y0 + (tr[r] - 1) * s + kh, H) - max(y0, 0)
    tci = iw[10, :ct]
    cols = iw[11, :ct]
    for c in range(ct):
        tci[c] = (tc[c] - 1) * s_w + kw
        x0 = c0[c] * s_w - pad_l
        cols[c] = min(x0 + (tc[c] - 1) * s_w + kw, W) - max(x0, 0)
    n_in = xn * rt * ct
    n_out = mt * rt * ct
    s_tm = 0
    for m in range(mt):
        s_tm += tm[m]
    # input fetches and output writes
    if software:
        s_tci = 0
        for c in range(ct):
            s_tci += tci[c]
        acc = 0.0
        for r in range(rt):
            y0 = r0[r] * s - pad
            v = 0
            b = 0
            for j in range(tri[r]):
                y = y0 + j
                if y >= 0 and y < H:
                    v += 1
                    b += _bitlen(max(2 * y, 0))
            pr = tri[r] - v
            acc += (v * (ct * pv[S_IN_ROW] + s_tci * pv[S_IN_WORD]) + ct * b * pv[S_IN_ROW_BIT]
                    + pr * (ct * pv[S_IN_PAD_ROW] + s_tci * pv[S_IN_PAD_WORD]))
        cyc = nin * (n_in * pv[S_IN_FETCH] + sx * acc)
        if weighted:
            cyc += pv[S_IO_CHANNEL] * s_tm * rt * ct
        out[0] += cyc
        out[1] += cyc * epc
    else:
        for _ in range(nin):
            _box_sum(pv, DMA_R, xc, rows, cols, H, W, 1, out, tmp)
        a7 = _cpu(pv, C_ADD, E_ADD, 7)
        m5 = _cpu(pv, C_MUL, E_MUL, 5)
        m4 = _cpu(pv, C_MUL, E_MUL, 4)
        out[0] += nin * n_in * (a7[0] + m5[0]) + n_out * (a7[0] + m4[0])
        out[1] += nin * n_in * (a7[1] + m5[1]) + n_out * (a7[1] + m4[1])
        _box_sum(pv, DMA_W, tm, tr, tc, Ho, Wo, 1, out, tmp)
    # the LEA kernel's per-tile work: by input tile (x Mt for conv), by weight tile (x Rt Ct)
    if lea:
        ab = _cpu(pv, C_ABS, -1, 1)
        mx = _cpu(pv, C_MAX, E_MAX, 1)
        dv = _cpu(pv, C_DIV, E_DIV, 1)
        ad = _cpu(pv, C_ADD, E_ADD, 1)
        s_tri = 0
        s_tci = 0
        s_tr = 0
        s_tc = 0
        for r in range(rt):
            s_tri += tri[r]
            s_tr += tr[r]
        for c in range(ct):
            s_tci += tci[c]
            s_tc += tc[c]
        mult = 1 if tied else mt
        k = float(sx) * s_tri * s_tci
        by[0] = k * (ab[0] + mx[0]) + n_in * dv[0]
        by[1] = k * (ab[1] + mx[1]) + n_in * dv[1]
        s_ln = 0
        for x in range(nt):
            ln = (1 if op == 2 else tn[x]) * kk
            s_ln += ln
            if op != 2:
                cp = _cpu(pv, C_COPY, -1, ln + ln % 2)
                by[0] += s_tr * s_tc * cp[0]
                by[1] += s_tr * s_tc * cp[1]
        out[0] += mult * by[0] + rt * ct * s_tm * s_ln * (ab[0] + ad[0])
        out[1] += mult * by[1] + rt * ct * s_tm * s_ln * (ab[1] + ad[1])
    if weighted:
        if software:
            wn = nt if op <= 1 else 1
            s_ln = 0
            for n in range(wn):
                s_ln += tn[n] * kk if op <= 1 else kk
            cyc = s_tm * (wn * pv[S_W_FILTER] + s_ln * pv[S_W_WORD]) + pv[S_IO_CHANNEL] * s_tm * rt * ct
            out[0] += cyc
            out[1] += cyc * epc
        else:
            a8 = _cpu(pv, C_ADD, E_ADD, 8)
            m9 = _cpu(pv, C_MUL, E_MUL, 9)
            if op <= 1:
                for n in range(nt):
                    if tn[n] < C:
                        _dsum(pv, DMA_R, tn[n] * kk, out, s_tm)
                    else:
                        for m in range(mt):
                            _dsum(pv, DMA_R, tm[m] * tn[n] * kk, out, 1)
                out[0] += mt * nt * (a8[0] + m9[0])
                out[1] += mt * nt * (a8[1] + m9[1])
            else:
                for m in range(mt):
                    _dsum(pv, DMA_R, tm[m] * kk, out, 1)
                out[0] += mt * (a8[0] + m9[0])
                out[1] += mt * (a8[1] + m9[1])
            for m in range(mt):
                _dsum(pv, DMA_R, 2 * tm[m], out, 1)
    if software:  # the runtime's per-tile overheads and layer start
        tile_c = (pv[S_TILE_W] if weighted else pv[S_TILE_POOL]) + pv[S_FETCH_BIT] * (
            _bitlen(s) + _bitlen(s_w) + _bitlen(H) + _bitlen(H * W))
        bm = 0
        for m in range(mt):
            bm += _bitlen(m) + _bitlen(m0[m])
        br = 0
        s_tr = 0
        for r in range(rt):
            br += _bitlen(r) + _bitlen(r0[r])
            s_tr += tr[r]
        mr = mt * rt * tile_c + pv[S_TILE_BIT] * (rt * bm + mt * br)
        if not lea:
            mr += pv[S_TILE_ROW] * s_tm * s_tr
        bn = 0
        for n in range(nt):
            bn += _bitlen(n)
        bc = 0
        for c in range(ct):
            bc += _bitlen(c)
        cyc = (pv[S_LAYER_START] + mr * nt * ct + pv[S_TILE_BIT] * bn * mt * rt * ct
               + pv[S_TILE_BIT] * bc * mt * nt * rt)
        out[0] += cyc
        out[1] += cyc * epc
    return out[0], out[1], commit[0], commit[1]
