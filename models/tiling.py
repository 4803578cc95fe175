"""Tiling layers into task graphs: iNAS's execution design space, costs, SRAM and FRAM plans.

Execution design (per layer, :class:`ExecutionDesign`)
------------------------------------------------------
``Tr, Tc`` output rows/columns, ``Tm`` output channels and ``Tn`` input
channels of a tile; ``loop_order`` (which buffer the innermost tile loop
reuses); ``S`` tiles per hyper-tile; ``preservation``: commit progress per
``tile`` (S = 1), per ``hypertile`` (S tiles) or per ``layer`` (one unit).

The tile loop nest over the tile grid ``(m, n, r, c)`` (outer -> inner):

==========  ==============  ==========================================
loop_order  nest            reused between consecutive tiles
==========  ==============  ==========================================
reuse_O     m, r, c, n      output tile (accumulators stay in SRAM)
reuse_I     r, c, n, m      input tile
reuse_W     m, n, r, c      weight tile
==========  ==============  ==========================================

For each output tile the input-channel tiles run in ascending order whatever
the loop order, so accumulation follows the canonical order of
:mod:`aidi.models.q15` and partial sums are bit-exact.  Depthwise and pooling
layers have no ``n`` loop (their input channels are their output channels);
their ``Tn`` is ignored (normalised to ``Tm``).  ``fc`` is a 1x1 conv over
``(C*H*W, 1, 1)`` so ``Tr = Tc = 1`` and ``Tn`` tiles the flattened input.

Units and idempotence
---------------------
A unit is a hyper-tile: ``S`` consecutive tiles of the loop nest, then one
commit of the progress record (the next unit index) to FRAM.  Within a unit:

* the first tile loads everything it needs (SRAM is never trusted across a
  unit boundary: a brown-out may have poisoned it); a later tile reloads its
  input (weight) tile only when the key ``(n, r, c)`` (``(m, n)``) changed;
* every output tile touched gets an int32 accumulator *slot* in SRAM from its
  first to its last tile in the unit (greedy lowest-free-slot allocation); it
  is initialised from the bias (``n == 0``) or from FRAM partial sums, and
  written back once, at its last tile in the unit: int16 outputs (after the
  shift/saturate/ReLU step) when its last input-channel tile is done, else
  int32 partial sums.

Partial sums are double-buffered in FRAM (``psum0``/``psum1``) with a
*static* version per output tile: a unit reads version ``p`` and writes
``1 - p``; the next unit touching that output tile reads ``1 - p``.  A unit
never writes what it read, so re-executing it after a failure (whatever part
of its writes landed) recomputes the same values: units are idempotent.
``idempotent=False`` keeps a single partial-sum buffer (read and written in
place, as a naive runtime would) to show that the functional checker catches
double counting.

Activations ping-pong between two FRAM buffers (``act0``/``act1``); a layer's
input is only overwritten two layers later, after the layer has committed.

Costs (per tile, from the :class:`~aidi.sim.platform.Platform` primitives)
-------------------------------------------------------------------------
* compute: ``backend="lea"``: one ``msp_mac_q15`` of length ``Tn`` (rounded up
  to even, a DSPLib requirement) plus one CPU add per output element per
  ``(kh, kw)`` (depthwise: one MAC of length ``kw`` per output element per
  ``kh``); ``backend="cpu"``: ``kh*kw*Tn`` software MACs per output element.
  Accumulator init from the bias: one CPU add per element; the output step:
  2 adds + 2 max (+1 max with ReLU) per element.  Pools run on the CPU:
  ``kk`` max, or ``kk`` adds and one division, per output element.
  (The real LEA accumulates each vector MAC across input channels for a fixed
  ``(kh, kw)``; the functional semantics keep the canonical order, which
  differs only when an intermediate sum saturates.)
* data_movement: DMA of each contiguous FRAM block of a loaded input tile,
  weight tile, bias and partial-sum tile, and of each written output or
  partial-sum block (int32 = 2 words), plus iNAS's addressing overheads per
  fetch/backup (input 7 ADD + 5 MUL, weights 8 + 9, outputs 7 + 4).
  Zero padding is written into SRAM by the loader and not charged.
* preservation: one ``platform.commit()`` per unit.

``backend="cpu"`` on a platform with ``cpu_sw`` (:class:`~aidi.sim.platform.SoftwareCosts`,
the msp430fr5994 preset) instead counts what the emitted portable-C runtime
(models/emit/runtime) executes, each occurrence at the cycles its constant
gives (fitted to mspdebug, see the platform's ``sources``), energy = cycles x
energy per cycle:

* compute: per output element and n tile ``acc_elem + Tn*(acc_channel +
  kh*(kernel_row + kw*mac))`` (depthwise: one channel; pools ``pool_out`` +
  ``kk*max_tap``, or ``avg_div + kk*avg_tap``); per tile ``tile_weighted`` or
  ``tile_pool``, ``tile_row`` per (output channel, output row), ``tile_bit``
  per bit of its tile coordinates and ``fetch_bit`` per bit of fetch_input's
  address multiplies (software ``__mspabi_mpyi``); ``acc_init`` per accumulator
  set from the bias, ``output`` per output finalised and stored;
  ``layer_start`` once per layer.  Independent of loop order and S.
* data_movement: the CPU copies tiles word by word (no DMA): input tile
  ``in_fetch`` + per channel the rows (``in_row``, ``in_row_bit`` per bit of
  the row's address multiply, ``in_pad_row``) and words (``in_word``,
  ``in_pad_word``) of the padded tile; weight tile ``w_filter`` per output
  channel + ``w_word`` per word.  Like the runtime's fetch cache (it lives
  until the next boot), a tile still in SRAM from the previous unit is not
  fetched again; the refetch a unit needs after a reboot is counted in its
  maximum energy (atomicity), not in its cycles.  Accumulator passes:
  ``io_channel`` per output channel, ``psum_event`` + ``psum_word`` per
  partial sum read or written.  The runtime keeps a block's sum in SRAM only
  across input-channel tiles that are adjacent in the loop nest (reuse_O):
  otherwise it spills and reloads the partial sums at every touch.
* preservation: ``unit`` per unit (scheduler, ``run_unit``, the 4-word
  progress commit) and ``version_div`` per tile whose partial-sum version
  needs ``aidi_block_version``'s 32-bit division (n tile > 0, S > its stride).

Pools take this model in plans with ``backend="cpu"``; in LEA and auto plans
they keep the iNAS-style costs above.

SRAM footprint (bytes, each buffer 4-byte aligned for LEA): input tile
``2*Tin*Tri*Tci`` (``Tri = (Tr-1)*s + kh``), weight tile, bias ``4*Tm``, int16
output staging ``2*Tm*Tr*Tc``, the accumulator slots actually used (extent of
the highest slot), plus :data:`STACK_BYTES`.  With ``backend="lea"`` the input
and weight buffers must also fit the platform's LEA RAM.

Public API::

    ExecutionDesign(Tr, Tc, Tm, Tn, loop_order="reuse_O", S=1, preservation="hypertile")
    evaluate_design(layer, design, platform, sram_budget, backend="lea") -> DesignCost
    auto_design(layer, platform, sram_budget, e_cycle_J, backend="lea", preservation="hypertile", ...) -> ExecutionDesign
    search_design(...)  # the same search, uncached
    plan_network(model, designs, platform, sram_budget, e_cycle_J=None, backend="lea", idempotent=True) -> NetPlan
    build_task_graph(model, designs, platform, sram_budget, ...) -> TaskGraph
    resolve_designs(geoms, tile, loop_order, hyper_tile, preservation, ...) -> list[ExecutionDesign]
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Mapping, Sequence

import numpy as np
from numba import njit

from ..sim.platform import Platform, get_platform
from ..sim.taskgraph import UNIT_CATEGORIES, FramRange, TaskGraph, Unit
from .layers import LayerGeom, Network, geometry, parse_network

LOOP_ORDERS = ("reuse_I", "reuse_W", "reuse_O")
PRESERVATIONS = ("tile", "hypertile", "layer")
BACKENDS = ("lea", "cpu")
#: loop nest per order, outer -> inner, over axes m=0, n=1, r=2, c=3
ORDER_AXES = {"reuse_O": (0, 2, 3, 1), "reuse_I": (2, 3, 1, 0), "reuse_W": (0, 1, 2, 3)}
#: stack and runtime locals reserved in SRAM (inferred: kernel call depth of the runtime)
STACK_BYTES = 256
#: buffer alignment in SRAM (LEA operands must be 32-bit aligned)
ALIGN = 4
#: FRAM bytes of the progress record (committed unit index, 2 words)
PROGRESS_BYTES = 8

# per-tile flags recorded by the walk
F_LOAD_IN, F_LOAD_W, F_LOAD_B, F_INIT_BIAS, F_INIT_PSUM, F_WRITE_PSUM, F_WRITE_OUT = 1, 2, 4, 8, 16, 32, 64


def _align(n: int) -> int:
    return (int(n) + ALIGN - 1) // ALIGN * ALIGN


@dataclass(frozen=True)
class ExecutionDesign:
    """One layer's execution design (iNAS): tile sizes, loop order, hyper-tile size, preservation.

    ``S`` is the number of tiles per unit for ``preservation="hypertile"``;
    ``"tile"`` means S = 1 and ``"layer"`` one unit for the whole layer (S is
    then ignored).  ``S`` larger than the layer's tile count is clipped.
    ``backend`` ("lea" | "cpu") overrides the plan's backend for this layer
    (None: inherit).
    """

    Tr: int
    Tc: int
    Tm: int
    Tn: int
    loop_order: str = "reuse_O"
    S: int = 1
    preservation: str = "hypertile"
    backend: str | None = None

    def __post_init__(self):
        for k in ("Tr", "Tc", "Tm", "Tn", "S"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"execution design: {k} must be a positive integer, got {v!r}")
            object.__setattr__(self, k, int(v))
        if self.loop_order not in LOOP_ORDERS:
            raise ValueError(f"execution design: loop_order must be one of {', '.join(LOOP_ORDERS)}, got {self.loop_order!r}")
        if self.preservation not in PRESERVATIONS:
            raise ValueError(f"execution design: preservation must be one of {', '.join(PRESERVATIONS)}, got {self.preservation!r}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"execution design: backend must be one of {', '.join(BACKENDS)} (or None), got {self.backend!r}")

    def to_dict(self) -> dict:
        return {"Tr": self.Tr, "Tc": self.Tc, "Tm": self.Tm, "Tn": self.Tn, "loop_order": self.loop_order,
                "S": self.S, "preservation": self.preservation, "backend": self.backend}


def normalize_design(geom: LayerGeom, d: ExecutionDesign) -> ExecutionDesign:
    """Check a design against a layer and normalise Tn (tied ops) and S (tile/layer, clip).

    Raises ValueError naming the layer and the field.
    """
    m, ho, wo = geom.out_shape
    n = geom.in_shape[0]
    for k, lim, what in (("Tr", ho, "output rows"), ("Tc", wo, "output columns"), ("Tm", m, "output channels")):
        if getattr(d, k) > lim:
            raise ValueError(f"{geom.describe()}: {k}={getattr(d, k)} exceeds {what} {lim}")
    tn = d.Tm if geom.channel_tied else d.Tn
    if not geom.channel_tied and tn > n:
        raise ValueError(f"{geom.describe()}: Tn={d.Tn} exceeds input channels {n}")
    nt = _n_tiles(geom, d.Tr, d.Tc, d.Tm, tn)
    s = {"tile": 1, "layer": nt}.get(d.preservation, min(d.S, nt))
    return replace(d, Tn=tn, S=s)


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def _grid(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int) -> tuple[int, int, int, int]:
    m, ho, wo = geom.out_shape
    nt = 1 if geom.channel_tied else _ceil(geom.in_shape[0], tn)
    return _ceil(m, tm), nt, _ceil(ho, tr), _ceil(wo, tc)


def _n_tiles(geom, tr, tc, tm, tn) -> int:
    g = _grid(geom, tr, tc, tm, tn)
    return g[0] * g[1] * g[2] * g[3]


def _axis(dim: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    starts = np.arange(0, dim, t, dtype=np.int64)
    return starts, np.minimum(t, dim - starts)


# --------------------------------------------------------------------------- cost tables
def _vec_cost(fn, n: np.ndarray) -> np.ndarray:
    """Apply a scalar Platform primitive to an int array -> (..., 2) [cycles, energy]."""
    n = np.asarray(n, dtype=np.int64)
    out = np.zeros(n.shape + (2,))
    for v in np.unique(n):
        c = fn(int(v))
        out[n == v] = (c.cycles, c.energy_J)
    return out


def _cost(c) -> np.ndarray:
    return np.array([c.cycles, c.energy_J], dtype=np.float64)


def _box_blocks(nch, nrows, ncols, h, w):
    """Contiguous blocks of a CHW box: (number of blocks, elements per block)."""
    nch, nrows, ncols = np.broadcast_arrays(*(np.asarray(a, dtype=np.int64) for a in (nch, nrows, ncols)))
    blocks = np.where(ncols < w, nch * nrows, np.where(nrows < h, nch, 1))
    length = np.where(ncols < w, ncols, np.where(nrows < h, nrows * w, nch * h * w))
    return blocks, length


def _dma_box(fn, nch, nrows, ncols, h, w, words_per_elem: int) -> np.ndarray:
    blocks, length = _box_blocks(nch, nrows, ncols, h, w)
    return blocks[..., None] * _vec_cost(fn, length * words_per_elem)


@dataclass(frozen=True)
class _Tables:
    """Per-axis tile extents and cost tables of one (layer, tile sizes, backend)."""

    grid: tuple[int, int, int, int]
    m0: np.ndarray
    tm: np.ndarray
    n0: np.ndarray
    tn: np.ndarray
    r0: np.ndarray
    tr: np.ndarray
    c0: np.ndarray
    tc: np.ndarray
    vec: np.ndarray  # (Nt, 2) compute per output element
    inp: np.ndarray  # (Xn, Rt, Ct, 2)
    wgt: np.ndarray  # (Mt, Nt, 2)
    bias: np.ndarray  # (Mt, 2)
    init: np.ndarray  # (2,) per element
    req: np.ndarray  # (2,) per element
    prd: np.ndarray  # (Mt, Rt, Ct, 2)
    pwr: np.ndarray
    out: np.ndarray
    commit: np.ndarray  # (2,)
    write_len: np.ndarray  # (Mt, Rt, Ct) elements of the output box (for partial-write modelling)
    # software-runtime terms (backend="cpu" with Platform.cpu_sw; zeros otherwise)
    tov_mr: np.ndarray  # (Mt, Rt, 2) per-tile overhead: constant + m/r index bits + kernel rows
    tov_n: np.ndarray  # (Nt, 2) per-tile overhead: n index bits
    tov_c: np.ndarray  # (Ct, 2) per-tile overhead: c index bits
    bvc: np.ndarray  # (2,) partial-sum version division, per tile that needs it
    lay: np.ndarray  # (2,) once per layer
    sw: bool  # costs follow the emitted runtime (fetch cache, accumulator spills), see _walk


def _sw_path(geom: LayerGeom, p: Platform, b: str, requested: str | None) -> bool:
    """Cost layer ``geom`` on backend ``b`` with the emitted portable-C runtime's model (``p.cpu_sw``)?

    Weighted layers: whenever they run on the CPU.  Pools run on the CPU under
    every backend; they take the software model only in plans that asked for
    ``backend="cpu"`` (LEA and auto plans keep the iNAS-style costs).
    """
    return p.cpu_sw is not None and b == "cpu" and (geom.weighted or requested == "cpu")


def _tables(geom: LayerGeom, tr_: int, tc_: int, tm_: int, tn_: int, p: Platform, backend: str,
            sw: bool = False) -> _Tables:
    C, H, W = geom.in_shape
    M, Ho, Wo = geom.out_shape
    kh, kw, s, pad = geom.kh, geom.kw, geom.stride, geom.pad
    m0, tm = _axis(M, tm_)
    r0, tr = _axis(Ho, tr_)
    c0, tc = _axis(Wo, tc_)
    if geom.channel_tied:
        n0, tn = np.zeros(1, np.int64), np.array([tm_], np.int64)
    else:
        n0, tn = _axis(C, tn_)
    grid = (len(m0), len(n0), len(r0), len(c0))
    if sw and backend == "cpu" and p.cpu_sw is not None:
        return _sw_tables(geom, p, grid, m0, tm, n0, tn, r0, tr, c0, tc)
    zero2 = np.zeros(2)
    # compute per output element, indexed by the n tile
    if geom.op in ("conv", "fc"):
        if backend == "lea":
            vec = kh * kw * (_vec_cost(p.lea_mac, tn + tn % 2) + _cost(p.cpu_add(1)))
        else:
            vec = kh * kw * _vec_cost(p.cpu_mac, tn)
    elif geom.op == "dwconv":
        per = kh * (_cost(p.lea_mac(kw + kw % 2)) + _cost(p.cpu_add(1))) if backend == "lea" else _cost(p.cpu_mac(kh * kw))
        vec = np.broadcast_to(per, (1, 2)).copy()
    else:
        kk = kh * kw
        per = _cost(p.cpu_max(kk)) if geom.op == "maxpool" else _cost(p.cpu_add(kk)) + _cost(p.cpu_div(1))
        if geom.relu:
            per = per + _cost(p.cpu_max(1))
        vec = np.broadcast_to(per, (1, 2)).copy()
    # input tile loads: channels x valid rows x valid cols
    x_cnt = tm if geom.channel_tied else tn
    y0 = r0 * s - pad
    tri = (tr - 1) * s + kh
    rows = np.minimum(y0 + tri, H) - np.maximum(y0, 0)
    x0 = c0 * s - pad
    tci = (tc - 1) * s + kw
    cols = np.minimum(x0 + tci, W) - np.maximum(x0, 0)
    inp = _dma_box(p.dma_read, x_cnt[:, None, None], rows[None, :, None], cols[None, None, :], H, W, 1)
    inp = inp + _cost(p.cpu_add(7)) + _cost(p.cpu_mul(5))
    # weights
    if geom.op in ("conv", "fc"):
        per_m = tn * kh * kw
        blocks = np.where(tn[None, :] < C, tm[:, None], 1)
        length = np.where(tn[None, :] < C, per_m[None, :], tm[:, None] * per_m[None, :])
        wgt = blocks[..., None] * _vec_cost(p.dma_read, length) + _cost(p.cpu_add(8)) + _cost(p.cpu_mul(9))
    elif geom.op == "dwconv":
        wgt = (_vec_cost(p.dma_read, tm * kh * kw) + _cost(p.cpu_add(8)) + _cost(p.cpu_mul(9)))[:, None, :]
    else:
        wgt = np.zeros((grid[0], 1, 2))
    if geom.weighted:
        bias = _vec_cost(p.dma_read, 2 * tm)
        init = _cost(p.cpu_add(1))
        req = _cost(p.cpu_add(2)) + _cost(p.cpu_max(3 if geom.relu else 2))
    else:
        bias, init, req = np.zeros((grid[0], 2)), zero2, zero2
    otm, otr, otc = tm[:, None, None], tr[None, :, None], tc[None, None, :]
    ovh = _cost(p.cpu_add(7)) + _cost(p.cpu_mul(4))
    out = _dma_box(p.dma_write, otm, otr, otc, Ho, Wo, 1) + ovh
    if geom.weighted and grid[1] > 1:
        prd = _dma_box(p.dma_read, otm, otr, otc, Ho, Wo, 2) + ovh
        pwr = _dma_box(p.dma_write, otm, otr, otc, Ho, Wo, 2) + ovh
    else:
        prd = pwr = np.zeros(out.shape)
    write_len = (otm * otr * otc).astype(np.int64)
    return _Tables(grid, m0, tm, n0, tn, r0, tr, c0, tc, np.ascontiguousarray(vec), np.ascontiguousarray(inp),
                   np.ascontiguousarray(wgt), np.ascontiguousarray(bias), init, req, np.ascontiguousarray(prd),
                   np.ascontiguousarray(pwr), np.ascontiguousarray(out), _cost(p.commit()), write_len,
                   np.zeros((grid[0], grid[2], 2)), np.zeros((grid[1], 2)), np.zeros((grid[3], 2)), zero2, zero2,
                   False)


def _bitlen(a) -> np.ndarray:
    """``int.bit_length`` of a non-negative int array (the iterations of ``__mspabi_mpyi``)."""
    a = np.asarray(a, dtype=np.int64)
    out = np.zeros(a.shape, np.int64)
    v = a.copy()
    while (v > 0).any():
        out += v > 0
        v >>= 1
    return out


def _sw_tables(geom: LayerGeom, p: Platform, grid, m0, tm, n0, tn, r0, tr, c0, tc) -> _Tables:
    """Cost tables of the emitted portable-C runtime (``backend="cpu"``, ``Platform.cpu_sw``).

    Counts what aidi_runtime.c / aidi_kernels_cpu.c execute per tile, input or
    weight fetch, accumulator pass and unit (see :class:`~aidi.sim.platform.SoftwareCosts`).
    """
    sw = p.cpu_sw
    e_cyc = p.energy_per_cycle_J

    def cc(cycles) -> np.ndarray:  # cycles -> (..., 2) [cycles, energy]
        c = np.asarray(cycles, dtype=np.float64)
        return np.stack([c, c * e_cyc], axis=-1)

    C, H, W = geom.in_shape
    M, Ho, Wo = geom.out_shape
    kh, kw, s, pad = geom.kh, geom.kw, geom.stride, geom.pad
    kk = kh * kw
    # compute per output element, by n tile (the kernel's loops: accumulator, channel, kernel row, MAC)
    if geom.op in ("conv", "fc"):
        vec = cc(sw.acc_elem + tn * (sw.acc_channel + kh * (sw.kernel_row + kw * sw.mac)))
    elif geom.op == "dwconv":
        vec = cc([sw.acc_elem + sw.acc_channel + kh * (sw.kernel_row + kw * sw.mac)])
    elif geom.op == "maxpool":
        vec = cc([sw.pool_out + kk * sw.max_tap])
    else:
        vec = cc([sw.pool_out + sw.avg_div + kk * sw.avg_tap])
    # input fetch: every row of the (rows-clipped) padded tile, zero rows written, valid rows copied word by word
    x_cnt = tm if geom.channel_tied else tn
    tri = (tr - 1) * s + kh
    tci = (tc - 1) * s + kw
    y0 = r0 * s - pad
    ys = y0[:, None] + np.arange(int(tri.max()))[None, :]
    valid = (ys >= 0) & (ys < H) & (np.arange(int(tri.max()))[None, :] < tri[:, None])
    vrows = valid.sum(axis=1)
    prows = tri - vrows
    rbits = np.where(valid, _bitlen(np.maximum(2 * ys, 0)), 0).sum(axis=1)
    per_ch = (vrows[:, None] * (sw.in_row + tci[None, :] * sw.in_word) + rbits[:, None] * sw.in_row_bit
              + prows[:, None] * (sw.in_pad_row + tci[None, :] * sw.in_pad_word))  # (Rt, Ct)
    inp = cc(sw.in_fetch + x_cnt[:, None, None] * per_ch[None, :, :])
    # weights: per output channel, its (n-tile) slice of the filter
    if geom.op in ("conv", "fc"):
        wgt = cc(tm[:, None] * (sw.w_filter + (tn[None, :] * kk) * sw.w_word))
    elif geom.op == "dwconv":
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
    # per-tile overhead: constant, fetch_input's set-up multiplies, index bits, kernel rows
    tile_c = (sw.tile_weighted if geom.weighted else sw.tile_pool) + sw.fetch_bit * (
        2 * int(_bitlen(s)) + int(_bitlen(H)) + int(_bitlen(H * W)))
    mi, ri = np.arange(grid[0]), np.arange(grid[2])
    tov_mr = cc(tile_c + sw.tile_bit * (_bitlen(mi) + _bitlen(m0))[:, None]
                + sw.tile_bit * (_bitlen(ri) + _bitlen(r0))[None, :] + sw.tile_row * tm[:, None] * tr[None, :])
    tov_n = cc(sw.tile_bit * _bitlen(np.arange(grid[1])))
    tov_c = cc(sw.tile_bit * _bitlen(np.arange(grid[3])))
    return _Tables(grid, m0, tm, n0, tn, r0, tr, c0, tc, np.ascontiguousarray(vec), np.ascontiguousarray(inp),
                   np.ascontiguousarray(wgt), np.ascontiguousarray(bias), init, req, np.ascontiguousarray(prd),
                   np.ascontiguousarray(pwr), np.ascontiguousarray(out), cc(sw.unit), elems.astype(np.int64),
                   np.ascontiguousarray(tov_mr), np.ascontiguousarray(tov_n), np.ascontiguousarray(tov_c),
                   cc(sw.version_div), cc(sw.layer_start), True)


# --------------------------------------------------------------------------- the walk (numba)
@njit(cache=True)
def _walk(dims, axes, S, tied, weighted, idempotent, tm_sz, tr_sz, tc_sz, vec, inp, wgt, bias, init, req,
          prd, pwr, out, commit, tov_mr, tov_n, tov_c, bvc, lay, sw, slot_stride, record, e_limit, obj_a, obj_b,
          bound):
    """Walk the tile sequence of one layer: per-unit costs, slots, flags (see module docstring).

    Returns (status, unit_cost (U, 3, 2), max_unit_energy, max_slots, acc_extent_bytes,
    idx (T, 4), flags (T,), slot (T,), rd (T,), wr (T,), t_end (T,), w_start (T,)).
    The per-tile arrays are empty unless ``record``.  status 0: complete; 1: a
    unit exceeded ``e_limit`` J (stopped there); 2: the running objective
    ``obj_a * cycles + obj_b * energy`` exceeded ``bound`` (stopped there).

    Flags (what a unit must do to be correct after a brown-out) are the same
    for every backend.  With ``sw`` (the emitted portable-C runtime) the
    *costs* follow what that runtime executes in one power cycle: a fetch is
    skipped when the tile is still in SRAM from the previous unit (its fetch
    cache lives until the next boot), accumulators are spilled to the
    partial-sum buffers between two non-adjacent touches of a block (no
    slots), and tiles pay ``tov_*``, ``bvc`` and ``lay``.  The refetch a unit
    needs after a reboot is added to ``max_unit_energy`` and to the
    ``e_limit`` check, not to ``unit_cost``.
    """
    mt, nt, rt, ct = dims[0], dims[1], dims[2], dims[3]
    n_tiles = mt * nt * rt * ct
    n_units = (n_tiles + S - 1) // S
    st = np.zeros(4, np.int64)
    acc_st = 1
    for k in range(3, -1, -1):
        st[axes[k]] = acc_st
        acc_st *= dims[axes[k]]
    spill = sw and st[1] != 1  # the runtime keeps a block's sum in SRAM only across adjacent n tiles
    n_out = mt * rt * ct
    par = np.zeros(n_out, np.int8)
    slot_of = np.full(n_out, -1, np.int64)
    cap = min(S, n_out) + 1
    busy = np.zeros(cap, np.bool_)
    unit_cost = np.zeros((n_units, 3, 2))
    unit_cold = np.zeros(n_units)
    rn = n_tiles if record else 0
    r_idx = np.zeros((rn, 4), np.int64)
    r_flags = np.zeros(rn, np.int64)
    r_slot = np.full(rn, -1, np.int64)
    r_rd = np.zeros(rn, np.int8)
    r_wr = np.zeros(rn, np.int8)
    r_end = np.zeros(rn)
    r_wst = np.zeros(rn)
    idx = np.zeros(4, np.int64)
    max_slots = 0
    extent = 0
    live = 0
    res_in = -1
    res_w = -1
    res_b = -1
    warm_in = -1
    warm_w = -1
    cyc = 0.0
    run_c = 0.0
    run_e = 0.0
    unit_e = 0.0
    status = 0
    for t in range(n_tiles):
        rem = t
        for k in range(3, -1, -1):
            a = axes[k]
            idx[a] = rem % dims[a]
            rem //= dims[a]
        mi, ni, ri, ci = idx[0], idx[1], idx[2], idx[3]
        u = t // S
        if t % S == 0:
            res_in = -1
            res_w = -1
            res_b = -1
            cyc = 0.0
            unit_e = 0.0
        base = mi * st[0] + ri * st[2] + ci * st[3]
        first = ni == 0 or (base + (ni - 1) * st[1]) // S != u
        last = ni == nt - 1 or (base + (ni + 1) * st[1]) // S != u
        o = (mi * rt + ri) * ct + ci
        elems = tm_sz[mi] * tr_sz[ri] * tc_sz[ci]
        xi = mi if tied else ni
        fl = 0
        mv0 = 0.0
        mv1 = 0.0
        cp0 = elems * vec[ni, 0] + tov_mr[mi, ri, 0] + tov_n[ni, 0] + tov_c[ci, 0]
        cp1 = elems * vec[ni, 1] + tov_mr[mi, ri, 1] + tov_n[ni, 1] + tov_c[ci, 1]
        if t == 0:
            cp0 += lay[0]
            cp1 += lay[1]
        wr_c = 0.0
        pv0 = 0.0
        pv1 = 0.0
        in_key = (xi * rt + ri) * ct + ci
        if in_key != res_in:
            fl |= 1
            res_in = in_key
            if not sw:
                mv0 += inp[xi, ri, ci, 0]
                mv1 += inp[xi, ri, ci, 1]
        if sw:
            if in_key != warm_in:
                mv0 += inp[xi, ri, ci, 0]
                mv1 += inp[xi, ri, ci, 1]
                warm_in = in_key
            elif fl & 1:
                unit_cold[u] += inp[xi, ri, ci, 1]
        slot = -1
        rd = 0
        wrp = 0
        if weighted:
            wkey = mi * nt + ni
            if wkey != res_w:
                fl |= 2
                res_w = wkey
                if not sw:
                    mv0 += wgt[mi, ni, 0]
                    mv1 += wgt[mi, ni, 1]
            if sw:
                if wkey != warm_w:
                    mv0 += wgt[mi, ni, 0]
                    mv1 += wgt[mi, ni, 1]
                    warm_w = wkey
                elif fl & 2:
                    unit_cold[u] += wgt[mi, ni, 1]
                if ni > 0 and st[1] < S:  # partial-sum version (preservation protocol)
                    pv0 += bvc[0]
                    pv1 += bvc[1]
            if first:
                for q in range(cap):
                    if not busy[q]:
                        slot = q
                        break
                busy[slot] = True
                slot_of[o] = slot
                live += 1
                if live > max_slots:
                    max_slots = live
                if ni == 0:
                    if mi != res_b:
                        fl |= 4
                        if not sw:
                            mv0 += bias[mi, 0]
                            mv1 += bias[mi, 1]
                        res_b = mi
                    fl |= 8
                else:
                    fl |= 16
                    if idempotent:
                        rd = par[o]
            if first or spill:  # accumulator pass: from the bias, or from FRAM partial sums
                if ni == 0:
                    cp0 += elems * init[0]
                    cp1 += elems * init[1]
                    if sw:
                        mv0 += bias[mi, 0]
                        mv1 += bias[mi, 1]
                else:
                    mv0 += prd[mi, ri, ci, 0]
                    mv1 += prd[mi, ri, ci, 1]
            slot = slot_of[o]
            e = slot * slot_stride + elems * 4
            if e > extent:
                extent = e
            if last or spill:  # write-back pass: outputs, or partial sums
                if ni == nt - 1:
                    cp0 += elems * req[0]
                    cp1 += elems * req[1]
                    wr_c = out[mi, ri, ci, 0]
                    mv1 += out[mi, ri, ci, 1]
                else:
                    wr_c = pwr[mi, ri, ci, 0]
                    mv1 += pwr[mi, ri, ci, 1]
            if last:
                if ni == nt - 1:
                    fl |= 64
                else:
                    fl |= 32
                    if idempotent:
                        wrp = 1 - par[o]
                        par[o] = wrp
                busy[slot] = False
                slot_of[o] = -1
                live -= 1
        else:
            fl |= 64
            wr_c = out[mi, ri, ci, 0]
            mv1 += out[mi, ri, ci, 1]
        tile_c = cp0 + mv0 + pv0 + wr_c
        unit_cost[u, 0, 0] += cp0
        unit_cost[u, 0, 1] += cp1
        unit_cost[u, 1, 0] += mv0 + wr_c
        unit_cost[u, 1, 1] += mv1
        unit_cost[u, 2, 0] += pv0
        unit_cost[u, 2, 1] += pv1
        if record:
            r_idx[t, 0] = mi
            r_idx[t, 1] = ni
            r_idx[t, 2] = ri
            r_idx[t, 3] = ci
            r_flags[t] = fl
            r_slot[t] = slot
            r_rd[t] = rd
            r_wr[t] = wrp
            r_wst[t] = cyc + tile_c - wr_c
            r_end[t] = cyc + tile_c
        cyc += tile_c
        run_c += tile_c
        run_e += cp1 + mv1 + pv1
        unit_e += cp1 + mv1 + pv1
        if t % S == S - 1 or t == n_tiles - 1:
            unit_cost[u, 2, 0] += commit[0]
            unit_cost[u, 2, 1] += commit[1]
            run_c += commit[0]
            run_e += commit[1]
            unit_e += commit[1]
        if unit_e + unit_cold[u] > e_limit:
            status = 1
            break
        if obj_a * run_c + obj_b * run_e > bound:
            status = 2
            break
    max_e = 0.0
    for u in range(n_units):
        e = unit_cost[u, 0, 1] + unit_cost[u, 1, 1] + unit_cost[u, 2, 1] + unit_cold[u]
        if e > max_e:
            max_e = e
    return status, unit_cost, max_e, max_slots, extent, r_idx, r_flags, r_slot, r_rd, r_wr, r_end, r_wst


def _run_walk(geom: LayerGeom, d: ExecutionDesign, tab: _Tables, idempotent: bool, record: bool,
              e_limit: float = np.inf, obj_a: float = 0.0, obj_b: float = 0.0, bound: float = np.inf):
    slot_stride = _align(4 * d.Tm * d.Tr * d.Tc)
    return _walk(np.array(tab.grid, np.int64), np.array(ORDER_AXES[d.loop_order], np.int64), d.S,
                 geom.channel_tied, geom.weighted, idempotent, tab.tm, tab.tr, tab.tc, tab.vec, tab.inp, tab.wgt,
                 tab.bias, tab.init, tab.req, tab.prd, tab.pwr, tab.out, tab.commit, tab.tov_mr, tab.tov_n,
                 tab.tov_c, tab.bvc, tab.lay, tab.sw, slot_stride, record, float(e_limit), float(obj_a),
                 float(obj_b), float(bound))


def _lower_bound(geom: LayerGeom, tab: _Tables) -> np.ndarray:
    """[cycles, energy] no schedule can beat: all compute, every input/weight/bias tile loaded
    once, every output written once, one commit."""
    mhw = float(np.prod(geom.out_shape))
    lb = mhw * (tab.vec.sum(axis=0) + tab.init + tab.req) + tab.commit
    lb = lb + tab.inp.reshape(-1, 2).sum(0) + tab.out.reshape(-1, 2).sum(0)
    if geom.weighted:
        lb = lb + tab.wgt.reshape(-1, 2).sum(0) + tab.bias.sum(0) * (tab.grid[2] * tab.grid[3] if tab.sw else 1)
    if tab.sw:  # every tile's overhead, once per layer
        mt, nt, rt, ct = tab.grid
        lb = lb + tab.lay + tab.tov_mr.sum(axis=(0, 1)) * nt * ct + tab.tov_n.sum(0) * mt * rt * ct \
            + tab.tov_c.sum(0) * mt * nt * rt
    return lb


# --------------------------------------------------------------------------- SRAM
def sram_buffers(geom: LayerGeom, d: ExecutionDesign, acc_extent: int) -> dict[str, tuple[int, int]]:
    """SRAM buffers ``name -> (offset, bytes)`` in layout order (each start 4-byte aligned).

    ``acc_extent``: bytes of the accumulator region actually used (from the walk).
    """
    tri = (d.Tr - 1) * geom.stride + geom.kh
    tci = (d.Tc - 1) * geom.stride + geom.kw
    tin = d.Tm if geom.channel_tied else d.Tn
    sizes = {"input": 2 * tin * tri * tci}
    if geom.op in ("conv", "fc"):
        sizes["weights"] = 2 * d.Tm * d.Tn * geom.kh * geom.kw
    elif geom.op == "dwconv":
        sizes["weights"] = 2 * d.Tm * geom.kh * geom.kw
    if geom.weighted:
        sizes["bias"] = 4 * d.Tm
    sizes["output"] = 2 * d.Tm * d.Tr * d.Tc
    if geom.weighted:
        sizes["acc"] = int(acc_extent)
    out, off = {}, 0
    for k, v in sizes.items():
        out[k] = (off, int(v))
        off = _align(off + v)
    return out


def sram_footprint(buffers: Mapping[str, tuple[int, int]]) -> int:
    """Bytes of SRAM a layer needs: end of the last buffer (aligned) plus :data:`STACK_BYTES`."""
    end = max((o + n for o, n in buffers.values()), default=0)
    return _align(end) + STACK_BYTES


def _check_sram(geom, buffers, budget: int, platform: Platform, backend: str, slots: int) -> str | None:
    """None if it fits, else the reason (which buffer, bytes vs budget)."""
    total = sram_footprint(buffers)
    if total > budget:
        parts = ", ".join(f"{k} {n} B" + (f" ({slots} slot{'s' * (slots != 1)})" if k == "acc" else "")
                          for k, (_, n) in buffers.items())
        big = max(buffers.items(), key=lambda kv: kv[1][1])[0]
        return (f"{geom.describe()}: SRAM footprint {total} B exceeds budget {budget} B "
                f"({parts}, stack {STACK_BYTES} B; largest: {big})")
    if backend == "lea":
        lea = sum(_align(buffers[k][1]) for k in ("input", "weights") if k in buffers)
        if geom.op in ("conv", "fc", "dwconv") and lea > platform.lea_ram_bytes:
            return (f"{geom.describe()}: LEA operands (input {buffers['input'][1]} B + weights "
                    f"{buffers['weights'][1]} B) exceed LEA RAM {platform.lea_ram_bytes} B")
    return None


# --------------------------------------------------------------------------- evaluation and search
@dataclass(frozen=True)
class DesignCost:
    """Totals of one layer under one design.

    cycles: MCLK cycles of all units; energy_J: total (J); by_category: energy per
    :data:`UNIT_CATEGORIES`; max_unit_energy_J: the largest unit (J); n_units,
    n_tiles; sram_bytes: footprint; sram_reason: why it does not fit (None if it does).
    """

    design: ExecutionDesign
    cycles: float
    energy_J: float
    by_category: dict
    max_unit_energy_J: float
    n_units: int
    n_tiles: int
    sram_bytes: int
    slots: int
    sram_reason: str | None = None

    def latency_s(self, mclk_hz: float) -> float:
        return self.cycles / mclk_hz


def _platform(p: Platform | str) -> Platform:
    return get_platform(p) if isinstance(p, str) else p


def _budget(p: Platform, sram_budget: int | None) -> int:
    b = p.sram_bytes if sram_budget is None else int(sram_budget)
    if b <= 0:
        raise ValueError(f"sram_budget_bytes must be positive, got {b}")
    if b > p.sram_bytes:
        raise ValueError(f"sram_budget_bytes {b} exceeds the {p.name} SRAM of {p.sram_bytes} B")
    return b


def _geom_of(layer) -> LayerGeom:
    return layer.geom if hasattr(layer, "geom") else layer


def _backends(design_backend: str | None, backend: str) -> list[str]:
    b = design_backend or backend
    if b == "auto":
        return list(BACKENDS)
    if b not in BACKENDS:
        raise ValueError(f"execution.backend must be one of {', '.join(BACKENDS)} or auto, got {b!r}")
    return [b]


def evaluate_design(layer, design: ExecutionDesign, platform: Platform | str, sram_budget: int | None = None,
                    backend: str = "lea", idempotent: bool = True) -> DesignCost:
    """Cost of one layer under one design (no SRAM error: see ``sram_reason``).

    ``backend`` ("lea", "cpu" or "auto" = the faster of both) applies unless the
    design pins its own; the returned ``DesignCost.design`` has it set.
    """
    geom = _geom_of(layer)
    p = _platform(platform)
    budget = _budget(p, sram_budget)
    best = None
    for b in _backends(design.backend, backend) if geom.weighted else ["cpu"]:
        d = replace(normalize_design(geom, design), backend=b)
        tab = _tables(geom, d.Tr, d.Tc, d.Tm, d.Tn, p, b, _sw_path(geom, p, b, backend))
        _, uc, max_e, slots, extent, *_ = _run_walk(geom, d, tab, idempotent, False)
        bufs = sram_buffers(geom, d, extent)
        tot = uc.sum(axis=0)
        c = DesignCost(d, float(tot[:, 0].sum()), float(tot[:, 1].sum()),
                       {c: float(tot[k, 1]) for k, c in enumerate(UNIT_CATEGORIES)}, float(max_e), uc.shape[0],
                       int(np.prod(tab.grid)), sram_footprint(bufs), int(slots),
                       _check_sram(geom, bufs, budget, p, b, int(slots)))
        if best is None or (c.sram_reason is None, -c.cycles) > (best.sram_reason is None, -best.cycles):
            best = c
    return best


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _s_candidates(n_tiles: int) -> list[int]:
    out, s = [], 1
    while s < n_tiles:
        out.append(s)
        s *= 2
    out.append(n_tiles)
    return out


def auto_design(layer, platform: Platform | str, sram_budget: int | None, e_cycle_J: float, *, backend: str = "lea",
                preservation: str = "hypertile", harvest_power_W: float | None = None, tile=None,
                loop_order: str | None = None, S: int | None = None, return_cost: bool = False):
    """The fastest feasible design of one layer (memoised on the layer's geometry and the budgets).

    ``e_cycle_J`` is the energy (J) one power cycle can give a unit: pass the
    capacitor's usable energy minus what a reboot costs.  See
    :func:`search_design` for the search itself.
    """
    geom = _geom_of(layer)
    p = _platform(platform)
    key_geom = replace(geom, index=0, name=geom.op, bn=-1, spec_indices=())
    args = (p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W,
            None if tile is None else tuple(int(v) for v in tile), loop_order, S)
    try:
        d = _auto_design_cached(key_geom, *args)
    except (ValueError, TypeError):
        d = search_design(geom, *args[:3], backend=backend, preservation=preservation,
                          harvest_power_W=harvest_power_W, tile=tile, loop_order=loop_order, S=S)  # raises with the right layer
    if return_cost:
        return d, evaluate_design(geom, d, p, sram_budget, backend)
    return d


@lru_cache(maxsize=4096)
def _auto_design_cached(geom, p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W, tile, loop_order, S):
    return search_design(geom, p, sram_budget, e_cycle_J, backend=backend, preservation=preservation,
                         harvest_power_W=harvest_power_W, tile=tile, loop_order=loop_order, S=S)


def search_design(layer, platform: Platform | str, sram_budget: int | None, e_cycle_J: float, *, backend: str = "lea",
                  preservation: str = "hypertile", harvest_power_W: float | None = None, tile=None,
                  loop_order: str | None = None, S: int | None = None) -> ExecutionDesign:
    """The fastest feasible design of one layer (uncached search).

    Candidates (bounded, no sampling): Tr, Tc, Tm, Tn over the divisors of the
    layer's output rows, columns, output channels and input channels (Tn fixed
    to Tm for depthwise/pooling), the three loop orders, the backend(s)
    (``"auto"`` tries LEA and CPU), and for ``preservation="hypertile"`` S over
    powers of two up to the tile count (and the tile count), searched by
    bisection for the largest S whose units all fit ``e_cycle_J`` and whose
    accumulator slots fit SRAM.

    Feasible: SRAM footprint <= ``sram_budget`` (and LEA RAM), every unit's
    energy <= ``e_cycle_J`` (J).  Latency: total unit cycles / MCLK, plus
    energy / ``harvest_power_W`` (recharge time, s) when given.  Ties prefer
    lower energy, then the first candidate.

    ``tile=(Tr, Tc, Tm, Tn)``, ``loop_order`` and ``S`` pin those fields.
    Returns the design (with its backend set).  Raises ValueError naming the
    layer when nothing is feasible.
    """
    geom = _geom_of(layer)
    p = _platform(platform)
    budget = _budget(p, sram_budget)
    if not (isinstance(e_cycle_J, (int, float)) and e_cycle_J > 0):
        raise ValueError(f"{geom.describe()}: per-cycle energy budget must be positive, got {e_cycle_J!r}")
    if preservation not in PRESERVATIONS:
        raise ValueError(f"execution.preservation must be one of {', '.join(PRESERVATIONS)}, got {preservation!r}")
    backends = _backends(None, backend)
    if not geom.weighted:
        backends = ["cpu"]  # pools run on the CPU whatever the backend
    m, ho, wo = geom.out_shape
    if tile is not None:
        tiles = [tuple(int(v) for v in tile)]
    else:
        tns = [0] if geom.channel_tied else _divisors(geom.in_shape[0])
        tiles = [(tr, tc, tm, tn) for tm in _divisors(m) for tn in tns for tr in _divisors(ho) for tc in _divisors(wo)]
    orders = [loop_order] if loop_order else list(LOOP_ORDERS)
    obj_a = 1.0 / p.mclk_hz
    obj_b = 1.0 / harvest_power_W if harvest_power_W else 0.0
    # candidates with their lower bound; explored best-first, stopping when the bound cannot win
    cands = []
    closest = None  # (energy, reason) of the smallest infeasible candidate, for the error message
    for tr, tc, tm, tn in tiles:
        base = normalize_design(geom, ExecutionDesign(tr, tc, tm, tn if tn else tm, orders[0], 1, preservation))
        bufs = sram_buffers(geom, base, 4 * base.Tm * base.Tr * base.Tc)
        for b in backends:
            reason = _check_sram(geom, bufs, budget, p, b, 1)
            if reason:
                if closest is None:
                    closest = (np.inf, reason)
                continue
            tab = _tables(geom, base.Tr, base.Tc, base.Tm, base.Tn, p, b, _sw_path(geom, p, b, backend))
            lb = _lower_bound(geom, tab)
            cands.append((obj_a * lb[0] + obj_b * lb[1], len(cands), base, b, tab))
    cands.sort(key=lambda c: (c[0], c[1]))
    best, best_key = None, (np.inf, np.inf)
    for lb_obj, _, base, b, tab in cands:
        if lb_obj >= best_key[0]:
            break
        nt = int(np.prod(tab.grid))
        if S is not None:
            svals = [min(int(S), nt)]
        elif preservation == "hypertile":
            svals = _s_candidates(nt)
        else:
            svals = [1 if preservation == "tile" else nt]
        for order in orders:
            cache: dict[int, tuple] = {}

            def ev(s: int):
                # -> (design, unit_cost, max_e, why-infeasible or None, beaten-by-best)
                if s not in cache:
                    d = replace(base, loop_order=order, S=s, backend=b)
                    st, uc, max_e, slots, extent, *_ = _run_walk(geom, d, tab, True, False, e_cycle_J,
                                                                   obj_a, obj_b, best_key[0])
                    why = None
                    if st == 1:
                        why = f"{geom.describe()}: a unit needs more than E_cycle {e_cycle_J:.3e} J"
                    elif st == 0:
                        why = _check_sram(geom, sram_buffers(geom, d, extent), budget, p, b, int(slots))
                    cache[s] = (d, uc, max_e, why, st == 2)
                return cache[s]

            _, _, e0, why0, _ = ev(svals[0])
            if why0 is not None:
                if closest is None or closest[0] == np.inf:
                    closest = (e0, why0)
                continue
            lo, hi = 0, len(svals) - 1
            while lo < hi:  # largest feasible S: cost falls and unit energy grows with S
                mid = (lo + hi + 1) // 2
                if ev(svals[mid])[3] is None:
                    lo = mid
                else:
                    hi = mid - 1
            d, uc, max_e, why, beaten = ev(svals[lo])
            if why is not None or beaten:
                continue
            cyc = float(uc[:, :, 0].sum())
            en = float(uc[:, :, 1].sum())
            key = (obj_a * cyc + obj_b * en, en)
            if key < best_key:
                best_key, best = key, d
    if best is None:
        why = closest[1] if closest else "no candidate"
        raise ValueError(f"{geom.describe()}: no execution design fits (SRAM budget {budget} B, "
                         f"E_cycle {e_cycle_J:.3e} J); closest: {why}")
    return best


# --------------------------------------------------------------------------- network plans
@dataclass(frozen=True)
class FramLayout:
    """FRAM data regions ``name -> (offset, bytes)`` (offsets from the data base, 4-byte aligned)."""

    regions: dict[str, tuple[int, int]]
    total: int

    def range(self, name: str) -> FramRange:
        o, n = self.regions[name]
        return FramRange(o, n)


@dataclass
class LayerPlan:
    """Everything needed to execute and cost one layer.

    Attributes:
        geom, design (normalised), backend.
        grid: tile grid ``(Mt, Nt, Rt, Ct)``; tables: per-axis extents and cost tables.
        sram: SRAM buffers ``name -> (offset, bytes)``; sram_bytes: footprint.
        unit_cost: ``(U, 3, 2)`` [category][cycles, energy] per unit (the last
            unit of the layer may hold fewer than S tiles).
        tiles: per-tile schedule arrays ``idx, flags, slot, rd, wr, t_end, w_start``.
        fram_in / fram_out: FRAM region names of the layer's input and output.
        unit_offset: index of the layer's first unit in the task graph.
    """

    geom: LayerGeom
    design: ExecutionDesign
    backend: str
    grid: tuple[int, int, int, int]
    tables: _Tables = field(repr=False)
    sram: dict[str, tuple[int, int]]
    sram_bytes: int
    slots: int
    unit_cost: np.ndarray = field(repr=False)
    tiles: dict[str, np.ndarray] = field(repr=False)
    fram_in: str
    fram_out: str
    unit_offset: int = 0

    @property
    def n_units(self) -> int:
        return self.unit_cost.shape[0]

    @property
    def n_tiles(self) -> int:
        return int(self.tiles["flags"].shape[0])

    def unit_tiles(self, k: int) -> range:
        """Tile indices (in loop order) of the layer's unit ``k``."""
        return range(k * self.design.S, min((k + 1) * self.design.S, self.n_tiles))

    def unit_cycles(self, k: int) -> float:
        return float(self.unit_cost[k, :, 0].sum())


@dataclass(frozen=True)
class UnitWork:
    """Payload of a task-graph unit: its layer plan and index within the layer."""

    plan: "NetPlan" = field(repr=False, compare=False)
    layer: int
    k: int


@dataclass
class NetPlan:
    """A network tiled for a platform: layer plans, FRAM layout, budget."""

    geoms: list[LayerGeom] = field(repr=False)
    layers: list[LayerPlan]
    fram: FramLayout
    platform: Platform
    sram_budget: int
    backend: str
    idempotent: bool = True
    units: list[tuple[int, int]] = field(default_factory=list, repr=False)  # global unit -> (layer, k)

    def task_graph(self) -> TaskGraph:
        """Units in execution order with cycles, energy per category, SRAM and FRAM ranges."""
        out = []
        for lp in self.layers:
            reads, writes = _unit_fram_ranges(lp, self.fram)
            for k in range(lp.n_units):
                uc = lp.unit_cost[k]
                out.append(Unit(
                    name=f"L{lp.geom.index}/u{k}", layer=lp.geom.index, cycles=float(uc[:, 0].sum()),
                    energy_J={c: float(uc[j, 1]) for j, c in enumerate(UNIT_CATEGORIES)},
                    sram_bytes=lp.sram_bytes, fram_reads=reads[k], fram_writes=writes[k],
                    tiles=len(lp.unit_tiles(k)), payload=UnitWork(self, lp.geom.index, k)))
        return TaskGraph(out, [f"{g.name}{g.index}" for g in self.geoms], self.platform.mclk_hz)


def _fram_layout(geoms: Sequence[LayerGeom], need_psum: bool) -> FramLayout:
    regions, off = {}, 0

    def add(name, nbytes):
        nonlocal off
        regions[name] = (off, int(nbytes))
        off = _align(off + nbytes)

    add("progress", PROGRESS_BYTES)
    add("input", 2 * int(np.prod(geoms[0].in_shape)))
    for g in geoms:
        if g.weighted:
            add(f"w{g.index}", 2 * int(np.prod(g.weight_shape)))
            add(f"b{g.index}", 4 * g.out_shape[0])
    act = max(2 * int(np.prod(g.out_shape)) for g in geoms)
    add("act0", act)
    add("act1", act if len(geoms) > 1 else 0)
    ps = max((4 * int(np.prod(g.out_shape)) for g in geoms if g.weighted), default=0) if need_psum else 0
    add("psum0", ps)
    add("psum1", ps)
    return FramLayout(regions, off)


def _box_extent(c0, cn, y0, yn, x0, xn, h, w):
    """Flat [start, end) element extent of CHW boxes (vectorised)."""
    start = (c0 * h + y0) * w + x0
    end = ((c0 + cn - 1) * h + y0 + yn - 1) * w + x0 + xn
    return start, end


def _unit_fram_ranges(lp: LayerPlan, fram: FramLayout):
    """Per unit: bounding FRAM byte ranges per region read and written."""
    g, tab, tl = lp.geom, lp.tables, lp.tiles
    C, H, W = g.in_shape
    M, Ho, Wo = g.out_shape
    mi, ni, ri, ci = (tl["idx"][:, k] for k in range(4))
    fl = tl["flags"]
    m0, tm, r0, tr, c0, tc = tab.m0[mi], tab.tm[mi], tab.r0[ri], tab.tr[ri], tab.c0[ci], tab.tc[ci]
    if g.channel_tied:
        x0c, xn = m0, tm
    else:
        x0c, xn = tab.n0[ni], tab.tn[ni]
    y0 = np.maximum(r0 * g.stride - g.pad, 0)
    y1 = np.minimum(r0 * g.stride - g.pad + (tr - 1) * g.stride + g.kh, H)
    xa = np.maximum(c0 * g.stride - g.pad, 0)
    xb = np.minimum(c0 * g.stride - g.pad + (tc - 1) * g.stride + g.kw, W)
    items = []  # (mask, region, start_elem, end_elem, bytes_per_elem, is_write)
    s, e = _box_extent(x0c, xn, y0, y1 - y0, xa, xb - xa, H, W)
    items.append((fl & F_LOAD_IN, lp.fram_in, s, e, 2, False))
    if g.weighted:
        kk = g.kh * g.kw
        if g.op == "dwconv":
            s, e = m0 * kk, (m0 + tm) * kk
        else:
            s, e = (m0 * C + tab.n0[ni]) * kk, ((m0 + tm - 1) * C + tab.n0[ni] + tab.tn[ni]) * kk
        items.append((fl & F_LOAD_W, f"w{g.index}", s, e, 2, False))
        items.append((fl & F_LOAD_B, f"b{g.index}", m0, m0 + tm, 4, False))
    os_, oe = _box_extent(m0, tm, r0, tr, c0, tc, Ho, Wo)
    items.append((fl & F_WRITE_OUT, lp.fram_out, os_, oe, 2, True))
    for par in (0, 1):
        items.append(((fl & F_INIT_PSUM) * (tl["rd"] == par), f"psum{par}", os_, oe, 4, False))
        items.append(((fl & F_WRITE_PSUM) * (tl["wr"] == par), f"psum{par}", os_, oe, 4, True))
    n_units, S = lp.n_units, lp.design.S
    starts = np.arange(0, lp.n_tiles, S)
    reads = [[] for _ in range(n_units)]
    writes = [[] for _ in range(n_units)]
    big = np.iinfo(np.int64).max
    for mask, region, st, en, bpe, is_w in items:
        mask = np.asarray(mask) != 0
        if not mask.any():
            continue
        lo = np.minimum.reduceat(np.where(mask, st, big), starts)
        hi = np.maximum.reduceat(np.where(mask, en, -1), starts)
        base = fram.regions[region][0]
        for k in np.nonzero(hi >= 0)[0]:
            r = FramRange(int(base + lo[k] * bpe), int((hi[k] - lo[k]) * bpe))
            (writes if is_w else reads)[k].append(r)
    prog = fram.range("progress")
    return ([tuple(sorted(r, key=lambda x: x.start)) for r in reads],
            [tuple(sorted(w, key=lambda x: x.start)) + (prog,) for w in writes])


def _geoms_of(model, input_shape=None) -> list[LayerGeom]:
    if hasattr(model, "layers") and model.layers and hasattr(model.layers[0], "geom"):
        return [ql.geom for ql in model.layers]  # QModel
    if isinstance(model, Network):
        return geometry(model)
    if isinstance(model, Sequence) and model and isinstance(model[0], LayerGeom):
        return list(model)
    if isinstance(model, Sequence):
        return geometry(parse_network(model, input_shape))
    raise ValueError(f"cannot tile a {type(model).__name__}: expected a QModel, Network, LayerGeom list or layer dicts")


def plan_layer(geom: LayerGeom, design: ExecutionDesign, platform: Platform | str, sram_budget: int | None = None,
               backend: str = "lea", idempotent: bool = True, fram_in: str = "input", fram_out: str = "act0") -> LayerPlan:
    """Tile one layer; raises ValueError if the design does not fit the SRAM budget.

    The backend is the design's, else ``backend`` ("auto": the faster of LEA and CPU that fits).
    """
    p = _platform(platform)
    budget = _budget(p, sram_budget)
    cands = _backends(design.backend, backend)
    if len(cands) > 1:
        design = evaluate_design(geom, design, p, budget, backend, idempotent).design
    b = (design.backend or cands[0]) if geom.weighted else "cpu"
    d = replace(normalize_design(geom, design), backend=b)
    tab = _tables(geom, d.Tr, d.Tc, d.Tm, d.Tn, p, b, _sw_path(geom, p, b, backend))
    _, uc, _max_e, slots, extent, idx, flags, slot, rd, wr, t_end, w_start = _run_walk(geom, d, tab, idempotent, True)
    bufs = sram_buffers(geom, d, extent)
    why = _check_sram(geom, bufs, budget, p, b, int(slots))
    if why:
        raise ValueError(why)
    return LayerPlan(geom, d, b, tab.grid, tab, bufs, sram_footprint(bufs), int(slots), uc,
                     {"idx": idx, "flags": flags, "slot": slot, "rd": rd, "wr": wr, "t_end": t_end,
                      "w_start": w_start}, fram_in, fram_out)


def plan_network(model, designs=None, platform: Platform | str = "msp430fr5994", sram_budget: int | None = None, *,
                 e_cycle_J: float | None = None, backend: str = "lea", preservation: str = "hypertile",
                 idempotent: bool = True, input_shape=None, harvest_power_W: float | None = None) -> NetPlan:
    """Tile every executed layer of ``model`` (QModel, Network, LayerGeom list, or layer dicts + input_shape).

    ``designs``: None (all auto), one :class:`ExecutionDesign` per executed layer
    (entries may be None or ``"auto"``), or a dict ``{layer index: design}``.
    Automatic designs need ``e_cycle_J`` (J per unit, see :func:`auto_design`) and
    use ``harvest_power_W`` (W) for their recharge-time term.  Raises ValueError for a wrong design
    count, a design that does not fit SRAM, or an FRAM overflow.
    """
    p = _platform(platform)
    budget = _budget(p, sram_budget)
    geoms = _geoms_of(model, input_shape)
    if designs is None or isinstance(designs, str):
        designs = [None] * len(geoms)
    elif isinstance(designs, ExecutionDesign):
        raise ValueError("designs: give one ExecutionDesign per executed layer "
                         f"({', '.join(g.name for g in geoms)})")
    elif isinstance(designs, Mapping):
        designs = [designs.get(i) for i in range(len(geoms))]
    designs = list(designs)
    if len(designs) != len(geoms):
        raise ValueError(f"designs: {len(designs)} given for {len(geoms)} executed layers "
                         f"({', '.join(g.name for g in geoms)})")
    resolved = []
    for g, d in zip(geoms, designs):
        if d is None or d == "auto":
            if e_cycle_J is None:
                raise ValueError(f"{g.describe()}: automatic design needs the per-cycle energy budget e_cycle_J")
            d = auto_design(g, p, budget, e_cycle_J, backend=backend, preservation=preservation,
                            harvest_power_W=harvest_power_W)
        resolved.append(d)
    plans = []
    for i, (g, d) in enumerate(zip(geoms, resolved)):
        fin = "input" if i == 0 else f"act{(i - 1) % 2}"
        plans.append(plan_layer(g, d, p, budget, backend, idempotent, fin, f"act{i % 2}"))
    need_psum = any(lp.grid[1] > 1 for lp in plans)
    fram = _fram_layout(geoms, need_psum)
    if fram.total > p.fram_bytes:
        raise ValueError(f"model needs {fram.total} B of FRAM data, {p.name} has {p.fram_bytes} B")
    units, off = [], 0
    for lp in plans:
        lp.unit_offset = off
        units.extend((lp.geom.index, k) for k in range(lp.n_units))
        off += lp.n_units
    return NetPlan(geoms, plans, fram, p, budget, backend, idempotent, units)


def build_task_graph(model, designs=None, platform: Platform | str = "msp430fr5994", sram_budget: int | None = None,
                     **kwargs: Any) -> TaskGraph:
    """Task graph of ``model`` under ``designs`` (see :func:`plan_network` for arguments).

    Each unit's ``payload`` is a :class:`UnitWork` referring to the shared
    :class:`NetPlan` (what :class:`aidi.models.functional.FunctionalRun` executes).
    """
    return plan_network(model, designs, platform, sram_budget, **kwargs).task_graph()


def resolve_designs(model, tile="auto", loop_order="auto", hyper_tile="auto", preservation: str = "hypertile", *,
                    platform: Platform | str = "msp430fr5994", sram_budget: int | None = None,
                    e_cycle_J: float | None = None, backend: str = "lea", input_shape=None,
                    harvest_power_W: float | None = None) -> list[ExecutionDesign]:
    """Designs from a scenario's ``[execution]`` values, filling ``"auto"`` fields with :func:`auto_design`.

    ``tile``: "auto", ``[Tr, Tc, Tm, Tn]``, a table ``{Tr=.., Tc=.., Tm=.., Tn=..}``
    (one value for every layer, clipped to each layer's dimensions), or a list
    with one of those per executed layer (checked strictly); ``loop_order`` and
    ``hyper_tile`` (S): "auto", one value, or one per layer.  Raises ValueError
    naming the ``execution.*`` key.
    """
    p = _platform(platform)
    budget = _budget(p, sram_budget)
    geoms = _geoms_of(model, input_shape)
    n = len(geoms)

    def per_layer(v, key, is_single):
        if isinstance(v, list) and not is_single(v):
            if len(v) != n:
                raise ValueError(f"execution.{key}: {len(v)} values given for {n} executed layers")
            return v
        return [v] * n

    def tile_single(v):
        return v == "auto" or isinstance(v, Mapping) or (isinstance(v, list) and v and all(isinstance(x, int) for x in v))

    shared_tile = tile_single(tile)
    tiles = per_layer(tile, "tile", lambda v: tile_single(v))
    orders = per_layer(loop_order, "loop_order", lambda v: False)
    hypers = per_layer(hyper_tile, "hyper_tile", lambda v: False)
    out = []
    for g, t, o, h in zip(geoms, tiles, orders, hypers):
        if isinstance(t, Mapping):
            try:
                t = [t["Tr"], t["Tc"], t["Tm"], t.get("Tn", t["Tm"])]
            except KeyError as e:
                raise ValueError(f"execution.tile ({g.describe()}): missing key {e.args[0]!r}") from None
        if t != "auto" and (not isinstance(t, list) or len(t) != 4):
            raise ValueError(f"execution.tile ({g.describe()}): expected \"auto\" or [Tr, Tc, Tm, Tn], got {t!r}")
        if t != "auto" and shared_tile:  # one tile for all layers: clip to each layer's dimensions
            lim = (g.out_shape[1], g.out_shape[2], g.out_shape[0], g.out_shape[0] if g.channel_tied else g.in_shape[0])
            t = [min(v, m) if isinstance(v, int) and not isinstance(v, bool) else v for v, m in zip(t, lim)]
        if t != "auto" and o != "auto" and (h != "auto" or preservation != "hypertile"):
            out.append(normalize_design(g, ExecutionDesign(*t, loop_order=o, S=1 if h == "auto" else h,
                                                           preservation=preservation)))
            continue
        if e_cycle_J is None:
            raise ValueError(f"{g.describe()}: automatic execution design needs the per-cycle energy budget")
        out.append(auto_design(g, p, budget, e_cycle_J, backend=backend, preservation=preservation,
                               harvest_power_W=harvest_power_W,
                               tile=None if t == "auto" else t, loop_order=None if o == "auto" else o,
                               S=None if h == "auto" else h))
    return out
