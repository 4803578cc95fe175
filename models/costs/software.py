"""Cost tables of the emitted C runtime on a platform with ``Platform.cpu_sw`` (the ``msp430fr5994`` preset).

The runtime (``aidi_runtime.c``, models/emit/runtime) is the same whatever the
kernel backend: it fetches input and weight tiles with CPU loops (no DMA)
behind a fetch cache, runs the accumulator passes, commits a progress record
per unit; pools always run the portable pool kernel (``aidi_kernels_cpu.c``).
Only the conv/dwconv/fc kernel differs: ``aidi_conv_tile_cpu`` (``backend="cpu"``,
the portable-C path) or ``aidi_conv_tile_lea`` (``backend="lea"``).  So this
module costs every layer of such a platform, under either backend; the
iNAS-style tables (:mod:`.lea_dma`) remain for platforms without ``cpu_sw``.

Each occurrence of what the runtime and the portable kernels execute per
tile, input or weight fetch, accumulator pass and unit is charged at the
cycles its :class:`~aidi.sim.platform.SoftwareCosts` constant gives (fitted to
mspdebug, see the platform's ``sources``); energy = cycles x the platform's
energy per cycle:

* compute, portable kernels: per output element and n tile ``acc_elem +
  Tn*(acc_channel + kh*(kernel_row + kw*mac))`` (depthwise: one channel;
  pools ``pool_out`` + ``kk*max_tap``, or ``avg_div + kk*avg_tap``; a residual
  add ``pool_out + ADD_ELEM_TAPS*avg_tap`` with two input tiles fetched) and
  ``tile_row`` per (output channel, output row) of a tile: the loops of
  ``aidi_conv_tile_cpu`` / ``aidi_pool_tile``.
* compute, LEA kernel (``backend="lea"``, weighted layers): those kernel terms
  are replaced by the calls ``aidi_conv_tile_lea`` makes, costed from the
  platform's primitives exactly as :mod:`.lea_dma` does
  (:func:`.lea_dma.compute_per_elem`: per element one ``msp_mac_q15``, the
  exactness guard and the accumulate, dwconv's per-element gather;
  :func:`.lea_dma.lea_tile_compute`: per tile the ``max|x|`` scan, the limit
  division, conv's per-position gathers, ``sum|w|``).  ``tile_row`` is dropped
  (it is the CPU kernel's (m, r) loop; the LEA kernel's loops are r, c, m and
  its per-element work is in the primitives above).  ``acc_elem``,
  ``acc_channel``, ``kernel_row``, ``mac`` are dropped with the CPU kernel.
* compute, runtime (both backends): per tile ``tile_weighted`` or
  ``tile_pool`` (tile geometry, the fetch calls, the partial-sum version, the
  kernel call), ``tile_bit`` per bit of its tile coordinates and ``fetch_bit``
  per bit of fetch_input's address multiplies (software ``__mspabi_mpyi``);
  ``acc_init`` per accumulator set from the bias, ``output`` per output
  finalised and stored; ``layer_start`` once per layer.  Independent of loop
  order and S.  ``tile_weighted`` is one fitted constant that also holds the
  CPU kernel's call prologue (a few instructions and its ``tri*tci``,
  ``stride*tci`` set-up multiplies, not separable in the fit); the LEA
  backend keeps it whole, as the stand-in for ``aidi_conv_tile_lea``'s own
  prologue (``len``, ``plane``, ``n_in`` set-up), which no other term charges.
* data movement (both backends): the CPU copies tiles word by word (no DMA):
  input tile ``in_fetch`` + per channel the rows (``in_row``, ``in_row_bit``
  per bit of the row's address multiply, ``in_pad_row``) and words
  (``in_word``, ``in_pad_word``) of the padded tile; weight tile ``w_filter``
  per output channel + ``w_word`` per word.  Accumulator passes:
  ``io_channel`` per output channel, ``psum_event`` + ``psum_word`` per
  partial sum read or written.
* preservation (both backends): ``unit`` per unit (scheduler, ``run_unit``,
  the progress commit) and ``version_div`` per tile whose partial-sum version
  needs ``aidi_block_version``'s 32-bit division (n tile > 0, S > its stride).

The fetch cache and the accumulator spills of the runtime are modelled by the
walk (:mod:`aidi.models.schedule.walk`) since ``CostTables.software`` is set.
The calibration fit (:mod:`.calibration`) covers the portable-C path only;
the LEA terms are the iNAS micro-benchmark fits and counted primitives.
"""

from __future__ import annotations

import numpy as np

from ...sim.platform import Platform
from ..layers import LayerGeom
from .. import ops
from . import lea_dma
from .tables import CostTables

#: taps charged per element of a residual add's kernel at ``avg_tap`` cycles each: its two loads, two
#: shifts and one sum are an avgpool's two-tap window without the division (inferred from
#: ``aidi_add_tile``'s loop, not fitted: the calibration programs have no add)
ADD_ELEM_TAPS = 2


def bitlen(a) -> np.ndarray:
    """``int.bit_length`` of a non-negative int array (the iterations of ``__mspabi_mpyi``).

    ``frexp`` gives the binary exponent e with ``a = m * 2**e``, ``0.5 <= m < 1``: the bit length of
    ``a > 0`` (exact below 2**53).
    """
    a = np.asarray(a, dtype=np.int64)
    return np.where(a > 0, np.frexp(a.astype(np.float64))[1], 0).astype(np.int64)


def tables(geom: LayerGeom, axes, p: Platform, backend: str = "cpu") -> CostTables:
    """The emitted runtime's :class:`CostTables` of ``geom`` with the ``backend`` kernel (needs ``p.cpu_sw``).

    ``axes`` = (m0, tm, n0, tn, r0, tr, c0, tc).  ``backend="lea"`` changes the
    kernel terms of weighted layers only (module docstring); pools run the
    portable pool kernel under every backend."""
    m0, tm, n0, tn, r0, tr, c0, tc = axes
    grid = (len(m0), len(n0), len(r0), len(c0))
    sw = p.cpu_sw
    e_cyc = p.energy_per_cycle_J

    per = np.array([1.0, e_cyc])

    def cc(cycles) -> np.ndarray:  # cycles -> (..., 2) [cycles, energy]
        return np.multiply.outer(np.asarray(cycles, dtype=np.float64), per)

    C, H, W = geom.in_shape
    kh, kw, sh, s_w, pt = geom.kh, geom.kw, geom.sh, geom.sw, geom.pads[0]
    kk = kh * kw
    code = geom.traits.code
    lea = backend == "lea" and geom.weighted
    # compute per output element, by n tile (the kernel's loops: accumulator, channel, kernel row, MAC)
    if lea:  # aidi_conv_tile_lea: msp_mac_q15, guard, accumulate (+ dwconv's gather)
        vec = lea_dma.compute_per_elem(geom, p, "lea", tn)
    elif code in (ops.CONV, ops.FC):
        vec = cc(sw.acc_elem + tn * (sw.acc_channel + kh * (sw.kernel_row + kw * sw.mac)))
    elif code == ops.DWCONV:
        vec = cc([sw.acc_elem + sw.acc_channel + kh * (sw.kernel_row + kw * sw.mac)])
    elif code == ops.MAXPOOL:
        vec = cc([sw.pool_out + kk * sw.max_tap])
    elif code == ops.AVGPOOL:
        vec = cc([sw.pool_out + sw.avg_div + kk * sw.avg_tap])
    else:  # add: per element two loads, shifts and the sum, then the output step (ADD_ELEM_TAPS)
        vec = cc([sw.pool_out + ADD_ELEM_TAPS * sw.avg_tap])
    # input fetch: every row of the (rows-clipped) padded tile, zero rows written, valid rows copied word by word
    # (an add fetches two tiles of the same box)
    x_cnt = (tm if geom.channel_tied else tn) * len(geom.src)
    tri = (tr - 1) * sh + kh
    tci = (tc - 1) * s_w + kw
    y0 = r0 * sh - pt
    ys = y0[:, None] + np.arange(int(tri.max()))[None, :]
    valid = (ys >= 0) & (ys < H) & (np.arange(int(tri.max()))[None, :] < tri[:, None])
    vrows = valid.sum(axis=1)
    prows = tri - vrows
    rbits = np.where(valid, bitlen(np.maximum(2 * ys, 0)), 0).sum(axis=1)
    per_ch = (vrows[:, None] * (sw.in_row + tci[None, :] * sw.in_word) + rbits[:, None] * sw.in_row_bit
              + prows[:, None] * (sw.in_pad_row + tci[None, :] * sw.in_pad_word))  # (Rt, Ct)
    inp = cc(len(geom.src) * sw.in_fetch + x_cnt[:, None, None] * per_ch[None, :, :])
    # weights: per output channel, its (n-tile) slice of the filter
    if code in (ops.CONV, ops.FC):
        wgt = cc(tm[:, None] * (sw.w_filter + (tn[None, :] * kk) * sw.w_word))
    elif code == ops.DWCONV:
        wgt = cc(tm[:, None] * (sw.w_filter + kk * sw.w_word))
    else:
        wgt = np.zeros((grid[0], 1, 2))
    otm, otr, otc = tm[:, None, None], tr[None, :, None], tc[None, None, :]
    elems = otm * otr * otc
    zero2 = np.zeros(2)
    if geom.weighted:
        bias = cc(sw.io_channel * tm)  # per accumulator pass initialising a block from the bias
        init = cc(sw.acc_init)
        req = cc(sw.output)
        out = cc(sw.io_channel * np.broadcast_to(otm, elems.shape))
        if grid[1] > 1:
            prd = pwr = cc(sw.psum_event + sw.io_channel * otm + sw.psum_word * elems)
        else:
            prd = pwr = np.zeros(out.shape)
    else:
        bias, init, req = np.zeros((grid[0], 2)), zero2, zero2
        out = prd = pwr = np.zeros(elems.shape + (2,))
    # per-tile overhead: the runtime's (constant, fetch_input's set-up multiplies, index bits) and,
    # for the portable kernels, their (output channel, output row) loop
    tile_c = (sw.tile_weighted if geom.weighted else sw.tile_pool) + sw.fetch_bit * (
        int(bitlen(sh)) + int(bitlen(s_w)) + int(bitlen(H)) + int(bitlen(H * W)))
    mi, ri = np.arange(grid[0]), np.arange(grid[2])
    kernel_rows = 0.0 if lea else sw.tile_row * tm[:, None] * tr[None, :]
    tov_mr = cc(tile_c + sw.tile_bit * (bitlen(mi) + bitlen(m0))[:, None]
                + sw.tile_bit * (bitlen(ri) + bitlen(r0))[None, :] + kernel_rows)
    tov_n = cc(sw.tile_bit * bitlen(np.arange(grid[1])))
    tov_c = cc(sw.tile_bit * bitlen(np.arange(grid[3])))
    if lea:  # the LEA kernel's per-tile scans, gathers and sum|w|
        by_in, by_w = lea_dma.lea_tile_compute(geom, p, axes)
    else:
        by_in, by_w = np.zeros(inp.shape), np.zeros(wgt.shape)
    c = np.ascontiguousarray
    return CostTables(
        m0=m0, tm=tm, n0=n0, tn=tn, r0=r0, tr=tr, c0=c0, tc=tc, compute_per_elem=c(vec), load_input=c(inp),
        load_weights=c(wgt), load_bias=c(bias), acc_init=init, requant=req, psum_read=c(prd), psum_write=c(pwr),
        out_write=c(out), commit=cc(sw.unit), out_elems=elems.astype(np.int64), tile_overhead_mr=c(tov_mr),
        tile_overhead_n=c(tov_n), tile_overhead_c=c(tov_c), tile_by_input=c(by_in),
        tile_by_weights=c(by_w), version_div=cc(sw.version_div), layer_start=cc(sw.layer_start),
        software=True)
