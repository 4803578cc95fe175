"""The walk: one layer's tile sequence, unit by unit, with its costs, SRAM slots and per-tile schedule.

Units and idempotence
---------------------
A unit is a hyper-tile: ``S`` consecutive tiles of the loop nest, then one
commit of the progress record to FRAM.  Within a unit:

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

With the runtime cost model (``CostTables.software``: the emitted C runtime,
platforms with ``cpu_sw``) the walk follows that runtime's protocol: a fetch is
skipped in the costs when the tile is still in SRAM from the previous unit (its
fetch cache lives until the next boot), and a block's partial sums are spilled
to FRAM between two touches that are not adjacent in the loop nest, so one
accumulator block is live: such a touch initialises its accumulators (flags
INIT_BIAS / INIT_PSUM; the block's first touch in the unit reads the committed
version, a later one the version this unit writes) and writes them back
(WRITE_PSUM / WRITE_OUT), as ``weighted_tile`` in aidi_runtime.c does.  Tiles
also pay the per-tile overheads.  The refetch a unit needs after a
reboot is added to ``max_unit_energy`` and to the ``e_limit`` check, not to
``unit_cost``.  The flags (what a unit must do to be correct after a
brown-out) are the same for every backend.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ..costs.tables import CostTables
from .design import (F_INIT_BIAS, F_INIT_PSUM, F_LOAD_B, F_LOAD_IN, F_LOAD_W, F_WRITE_OUT, F_WRITE_PSUM, ORDER_AXES,
                     ExecutionDesign)
from .memory import align

#: walk status: every tile walked
COMPLETE = 0
#: a unit needed more than ``e_limit`` J (the walk stopped there)
OVER_E_LIMIT = 1
#: the running objective exceeded ``bound`` (the walk stopped there)
OVER_BOUND = 2


class WalkParams(NamedTuple):
    """What the walk needs besides the cost tables."""

    dims: np.ndarray  # (4,) int64 tile counts (Mt, Nt, Rt, Ct)
    axes: np.ndarray  # (4,) int64 loop nest, outer -> inner, as indices into dims
    S: int  # tiles per unit
    tied: bool  # channel-tied layer (depthwise, pool): the input tile follows m
    weighted: bool
    idempotent: bool  # double-buffered partial sums (False: one buffer, read and written in place)
    slot_stride: int  # bytes per accumulator slot (4-byte aligned)
    record: bool  # fill the per-tile arrays of WalkResult
    e_limit: float  # J: stop with OVER_E_LIMIT when a unit needs more
    obj_a: float  # objective = obj_a * cycles + obj_b * energy (s per cycle, s per J)
    obj_b: float
    bound: float  # stop with OVER_BOUND when the running objective exceeds it


class WalkResult(NamedTuple):
    """Result of :func:`walk`.  Per-tile arrays (length T) are empty unless ``record``."""

    status: int  # COMPLETE, OVER_E_LIMIT or OVER_BOUND
    unit_cost: np.ndarray  # (U, 3, 2) [category compute|data_movement|preservation][cycles, energy_J]
    max_unit_energy: float  # J, the largest unit including its refetch after a reboot
    max_slots: int  # accumulator slots live at once
    acc_extent: int  # bytes of the accumulator region used
    idx: np.ndarray  # (T, 4) int64 tile coordinates (m, n, r, c)
    flags: np.ndarray  # (T,) int64 TileFlag bits
    slot: np.ndarray  # (T,) accumulator slot (-1: none)
    rd: np.ndarray  # (T,) int8 partial-sum version read
    wr: np.ndarray  # (T,) int8 partial-sum version written
    t_end: np.ndarray  # (T,) cycles from the unit's start to the tile's end
    w_start: np.ndarray  # (T,) cycles from the unit's start to the start of the tile's write-back


@njit(cache=True)
def _walk(tab, prm):
    dims, axes, S, tied, weighted = prm.dims, prm.axes, prm.S, prm.tied, prm.weighted
    idempotent, slot_stride, record, e_limit = prm.idempotent, prm.slot_stride, prm.record, prm.e_limit
    obj_a, obj_b, bound = prm.obj_a, prm.obj_b, prm.bound
    tm_sz, tr_sz, tc_sz = tab.tm, tab.tr, tab.tc
    compute, load_in, load_w, load_b = tab.compute_per_elem, tab.load_input, tab.load_weights, tab.load_bias
    acc_init, requant, psum_rd, psum_wr, out_wr = tab.acc_init, tab.requant, tab.psum_read, tab.psum_write, tab.out_write
    commit, version_div, layer_start, software = tab.commit, tab.version_div, tab.layer_start, tab.software
    tov_mr, tov_n, tov_c = tab.tile_overhead_mr, tab.tile_overhead_n, tab.tile_overhead_c
    by_in, by_w = tab.tile_by_input, tab.tile_by_weights
    mt, nt, rt, ct = dims[0], dims[1], dims[2], dims[3]
    n_tiles = mt * nt * rt * ct
    n_units = (n_tiles + S - 1) // S
    st = np.zeros(4, np.int64)
    acc_st = 1
    for k in range(3, -1, -1):
        st[axes[k]] = acc_st
        acc_st *= dims[axes[k]]
    spill = software and st[1] != 1  # the runtime keeps a block's sum in SRAM only across adjacent n tiles
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
    status = COMPLETE
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
        cp0 = elems * compute[ni, 0] + tov_mr[mi, ri, 0] + tov_n[ni, 0] + tov_c[ci, 0]
        cp1 = elems * compute[ni, 1] + tov_mr[mi, ri, 1] + tov_n[ni, 1] + tov_c[ci, 1]
        cp0 += by_in[xi, ri, ci, 0] + by_w[mi, ni, 0]
        cp1 += by_in[xi, ri, ci, 1] + by_w[mi, ni, 1]
        if t == 0:
            cp0 += layer_start[0]
            cp1 += layer_start[1]
        wr_c = 0.0
        pv0 = 0.0
        pv1 = 0.0
        in_key = (xi * rt + ri) * ct + ci
        if in_key != res_in:
            fl |= F_LOAD_IN
            res_in = in_key
            if not software:
                mv0 += load_in[xi, ri, ci, 0]
                mv1 += load_in[xi, ri, ci, 1]
        if software:
            if in_key != warm_in:
                mv0 += load_in[xi, ri, ci, 0]
                mv1 += load_in[xi, ri, ci, 1]
                warm_in = in_key
            elif fl & F_LOAD_IN:
                unit_cold[u] += load_in[xi, ri, ci, 1]
        slot = -1
        rd = 0
        wrp = 0
        if weighted:
            wkey = mi * nt + ni
            if wkey != res_w:
                fl |= F_LOAD_W
                res_w = wkey
                if not software:
                    mv0 += load_w[mi, ni, 0]
                    mv1 += load_w[mi, ni, 1]
            if software:
                if wkey != warm_w:
                    mv0 += load_w[mi, ni, 0]
                    mv1 += load_w[mi, ni, 1]
                    warm_w = wkey
                elif fl & F_LOAD_W:
                    unit_cold[u] += load_w[mi, ni, 1]
                if ni > 0 and st[1] < S:  # partial-sum version (preservation protocol)
                    pv0 += version_div[0]
                    pv1 += version_div[1]
            if first or spill:  # the block gets an accumulator slot (spilled: for this tile only)
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
                        fl |= F_LOAD_B
                        if not software:
                            mv0 += load_b[mi, 0]
                            mv1 += load_b[mi, 1]
                        res_b = mi
                    fl |= F_INIT_BIAS
                else:
                    fl |= F_INIT_PSUM
                    if idempotent:  # the committed version; a later spilled touch reads this unit's own
                        rd = par[o] if first else 1 - par[o]
            if first or spill:  # accumulator pass: from the bias, or from FRAM partial sums
                if ni == 0:
                    cp0 += elems * acc_init[0]
                    cp1 += elems * acc_init[1]
                    if software:
                        mv0 += load_b[mi, 0]
                        mv1 += load_b[mi, 1]
                else:
                    mv0 += psum_rd[mi, ri, ci, 0]
                    mv1 += psum_rd[mi, ri, ci, 1]
            slot = slot_of[o]
            e = slot * slot_stride + elems * 4
            if e > extent:
                extent = e
            if last or spill:  # write-back pass: outputs, or partial sums
                if ni == nt - 1:
                    cp0 += elems * requant[0]
                    cp1 += elems * requant[1]
                    wr_c = out_wr[mi, ri, ci, 0]
                    mv1 += out_wr[mi, ri, ci, 1]
                else:
                    wr_c = psum_wr[mi, ri, ci, 0]
                    mv1 += psum_wr[mi, ri, ci, 1]
            if last or spill:
                if ni == nt - 1:
                    fl |= F_WRITE_OUT
                else:
                    fl |= F_WRITE_PSUM
                    if idempotent:
                        wrp = 1 - par[o]
                        if last:
                            par[o] = wrp
                busy[slot] = False
                slot_of[o] = -1
                live -= 1
        else:
            fl |= F_WRITE_OUT
            wr_c = out_wr[mi, ri, ci, 0]
            mv1 += out_wr[mi, ri, ci, 1]
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
            status = OVER_E_LIMIT
            break
        if obj_a * run_c + obj_b * run_e > bound:
            status = OVER_BOUND
            break
    max_e = 0.0
    for u in range(n_units):
        e = unit_cost[u, 0, 1] + unit_cost[u, 1, 1] + unit_cost[u, 2, 1] + unit_cold[u]
        if e > max_e:
            max_e = e
    return WalkResult(status, unit_cost, max_e, max_slots, extent, r_idx, r_flags, r_slot, r_rd, r_wr, r_end, r_wst)


def walk(tab: CostTables, design: ExecutionDesign, geom, *, idempotent: bool = True, record: bool = False,
         e_limit: float = np.inf, obj_a: float = 0.0, obj_b: float = 0.0, bound: float = np.inf) -> WalkResult:
    """Walk the tiles of ``geom`` under a normalised ``design`` with cost tables ``tab``.

    ``e_limit`` (J) stops at the first unit that needs more energy; ``bound``
    stops when ``obj_a * cycles + obj_b * energy_J`` exceeds it (best-first
    search pruning).  Returns a :class:`WalkResult`.
    """
    prm = WalkParams(np.array(tab.grid, np.int64), np.array(ORDER_AXES[design.loop_order], np.int64), design.S,
                     geom.channel_tied, geom.weighted, idempotent, align(4 * design.Tm * design.Tr * design.Tc),
                     record, float(e_limit), float(obj_a), float(obj_b), float(bound))
    return _walk(tab, prm)
