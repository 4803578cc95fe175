"""Tensors placed in an external SPI FRAM: what their accesses add to a layer's cost tables.

``[device] weights`` / ``activations = "spi-fram"`` (:attr:`aidi.sim.platform.Platform.weights`,
``.activations``) move a tensor from the MCU's own FRAM to the board's SPI FRAM
(:class:`aidi.sim.platform.SpiFram`, the CY15B104Q of the published Stateful-CNN
board; every constant's source is in its ``sources``).  Each access of such a
tensor is then one SPI transfer per contiguous block of the tile: ``cmd + 2 n``
bytes at the SPI clock plus the software around the transfer
(:meth:`aidi.sim.platform.Platform.spi_transfer`), charged as data movement on
top of the on-chip costs the tables already hold (the runtime's own fetch loop
then reads the DMA's SRAM copy instead of the FRAM).  Which accesses:

* activations: every input tile fetched (the valid rows and columns of the
  padded tile, per input of an add), every output tile written, and the int32
  partial sums read and written (2 words per element) when a layer has several
  input-channel tiles;
* weights: every weight tile fetched (one block per output channel when the
  tile holds part of the input channels, else one block), and the int32 bias of
  each output-channel tile (2 words per channel).

The progress record stays in the on-chip FRAM.  Contiguous blocks of a CHW box
are those of :func:`.lea_dma.box_blocks`.  This is the cost model only: the
emitted C keeps every tensor in the on-chip FRAM (it has no SPI driver).

:func:`add_spi` is compiled (numba) and called by both table builders
(:func:`aidi.models.costs.cost_tables` and :func:`aidi.models.costs.fast.build_tables`),
so the two stay equal.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ...sim.platform import Platform

#: slots of :func:`spi_vector`
ACT, WGT, CYC_PER_BYTE, RD_SETUP, WR_SETUP, RD_CMD, WR_CMD, EPC, FRAM_J_PER_CYCLE = range(9)
SPI_SLOTS = 9


def spi_vector(p: Platform) -> np.ndarray:
    """The placement and SPI FRAM constants of ``p`` as the float vector :func:`add_spi` reads (all zero when
    every tensor is on-chip)."""
    v = np.zeros(SPI_SLOTS)
    if not p.external:
        return v
    f = p.spi_fram
    v[ACT] = float(p.activations == "spi-fram")
    v[WGT] = float(p.weights == "spi-fram")
    v[CYC_PER_BYTE] = f.bus_cycles(1, p.mclk_hz)
    v[RD_SETUP], v[WR_SETUP] = f.read_setup_cycles, f.write_setup_cycles
    v[RD_CMD], v[WR_CMD] = f.read_cmd_bytes, f.write_cmd_bytes
    v[EPC] = p.energy_per_cycle_J
    v[FRAM_J_PER_CYCLE] = (f.active_A - f.standby_A) * f.v / p.mclk_hz
    return v


@njit(cache=True)
def _transfers(sv, blocks, length, write, out, k):
    """out[0:2] += k * blocks SPI transfers of ``length`` words (reads, or writes when ``write``)."""
    if blocks <= 0 or length <= 0:
        return
    cmd = sv[WR_CMD] if write else sv[RD_CMD]
    bus = (cmd + 2.0 * length) * sv[CYC_PER_BYTE]
    cyc = bus + (sv[WR_SETUP] if write else sv[RD_SETUP])
    out[0] += k * blocks * cyc
    out[1] += k * blocks * (cyc * sv[EPC] + bus * sv[FRAM_J_PER_CYCLE])


@njit(cache=True)
def box_blocks(nch, nrows, ncols, h, w):
    """(contiguous blocks, elements per block) of a CHW box of ``nch`` channels x ``nrows`` x ``ncols`` in an
    ``h`` x ``w`` plane: :func:`.lea_dma.box_blocks` for scalars, compiled."""
    if ncols < w:
        return nch * nrows, ncols
    if nrows < h:
        return nch, nrows * w
    return 1, nch * h * w


@njit(cache=True)
def valid_span(t0, t, s, k, pad, dim):
    """Input rows (columns) inside the unpadded ``dim`` that the output tile of ``t`` rows from ``t0`` reads
    (stride ``s``, kernel ``k``, ``pad`` leading zeros): :func:`.lea_dma.input_rows_cols` for scalars."""
    y0 = t0 * s - pad
    return min(y0 + (t - 1) * s + k, dim) - max(y0, 0)


@njit(cache=True)
def _box(sv, nch, nrows, ncols, h, w, wpe, write, out, k):
    """SPI transfers of a CHW box, block by block (:func:`box_blocks`), ``wpe`` words per element."""
    if nch <= 0 or nrows <= 0 or ncols <= 0:
        return
    blocks, length = box_blocks(nch, nrows, ncols, h, w)
    _transfers(sv, blocks, length * wpe, write, out, k)


@njit(cache=True)
def add_spi(gv, sv, tm, tn, r0, tr, c0, tc, inp, wgt, bias, out, prd, pwr):
    """Add the SPI transfers of the externally placed tensors to the tables ``inp`` (Xn, Rt, Ct, 2), ``wgt``
    (Mt, Nt or 1, 2), ``bias`` (Mt, 2), ``out``, ``prd``, ``pwr`` (Mt, Rt, Ct, 2), in place.  ``gv``: the layer
    (:func:`aidi.models.costs.fast.geom_vector`), ``sv``: :func:`spi_vector`; the tile axes as in
    :class:`~.tables.CostTables`."""
    op, C, H, W, Ho, Wo, kh, kw, s = gv[0], gv[1], gv[2], gv[3], gv[5], gv[6], gv[7], gv[8], gv[9]
    pad, s_w, pad_l, nin = gv[10], gv[12], gv[13], gv[14]
    weighted = op <= 2
    tied = op >= 2
    mt, nt, rt, ct = tm.shape[0], tn.shape[0], tr.shape[0], tc.shape[0]
    if sv[ACT] > 0:
        for r in range(rt):
            rows = valid_span(r0[r], tr[r], s, kh, pad, H)
            for c in range(ct):
                cols = valid_span(c0[c], tc[c], s_w, kw, pad_l, W)
                for x in range(inp.shape[0]):
                    _box(sv, tm[x] if tied else tn[x], rows, cols, H, W, 1, False, inp[x, r, c], nin)
        for m in range(mt):
            for r in range(rt):
                for c in range(ct):
                    _box(sv, tm[m], tr[r], tc[c], Ho, Wo, 1, True, out[m, r, c], 1)
                    if weighted and nt > 1:
                        _box(sv, tm[m], tr[r], tc[c], Ho, Wo, 2, False, prd[m, r, c], 1)
                        _box(sv, tm[m], tr[r], tc[c], Ho, Wo, 2, True, pwr[m, r, c], 1)
    if sv[WGT] > 0 and weighted:
        kk = kh * kw
        for m in range(mt):
            _transfers(sv, 1, 2 * tm[m], False, bias[m], 1)
            for n in range(wgt.shape[1]):
                if op == 2:
                    _transfers(sv, 1, tm[m] * kk, False, wgt[m, n], 1)
                elif tn[n] < C:
                    _transfers(sv, tm[m], tn[n] * kk, False, wgt[m, n], 1)
                else:
                    _transfers(sv, 1, tm[m] * tn[n] * kk, False, wgt[m, n], 1)


def with_spi(tab, gv, p: Platform):
    """``tab`` (a :class:`~.tables.CostTables`) with :func:`add_spi`'s transfers added (copies; ``tab`` unchanged);
    ``tab`` itself when every tensor of ``p`` is on-chip."""
    if not p.external:
        return tab
    arrays = {k: np.array(getattr(tab, k), dtype=np.float64) for k in
              ("load_input", "load_weights", "load_bias", "out_write", "psum_read", "psum_write")}
    add_spi(gv, spi_vector(p), tab.tm, tab.tn, tab.r0, tab.tr, tab.c0, tab.tc, *arrays.values())
    return tab._replace(**arrays)
