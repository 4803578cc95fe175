"""Closed-form totals of one layer under one design: what the walk (:mod:`.walk`) sums, without walking the tiles.

A layer's cost under a design is the sum over its tiles of what the walk charges
(:mod:`aidi.models.costs.tables`).  Most of it does not depend on the loop order
or S: every tile's compute and per-tile overheads, one accumulator pass from the
bias and one output write-back per output tile, the layer start.  What does is
counted per *run* (a maximal stretch of consecutive tiles that share an input
or weight tile) and per *block* (the input-channel tiles of one output tile):

* a fetch happens at the start of each run of tiles sharing its tile key, and,
  without the runtime's fetch cache (``CostTables.software`` False), again at
  each unit start inside a run: ``1 + floor((j L + L - 1) / S) - floor(j L / S)``
  for run ``j`` of length ``L``.  ``L`` is the product of the trailing loop-nest
  axes (of more than one tile) that are not part of the key, so every key has
  the same number of runs;
* a block whose consecutive input-channel tiles lie ``st`` tiles apart (st < S)
  crosses ``floor((p + (Nt - 1) st) / S) - floor(p / S)`` unit boundaries
  (``p``: its first tile's position), each one partial-sum write and read back;
  with st >= S, or with the runtime's spills, every input-channel step is one;
* without the fetch cache the bias of an output-channel tile is fetched by the
  first output tile of a unit or when the output-channel tile changes
  (one pass over the blocks in order);
* the runtime's version division: every tile with n > 0 when st < S; one commit per unit.

:func:`design_totals` returns the same ``(3, 2)`` [category][cycles, energy_J]
array as ``walk(...).unit_cost.sum(axis=0)`` (tested to 1e-9 on random layers and designs).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..costs.fast import build_tables
from .design import ORDER_AXES
from .walk import WalkParams, _walk


@njit(cache=True)
def _strides(dims, axes):
    st = np.zeros(4, np.int64)
    acc = 1
    for k in range(3, -1, -1):
        st[axes[k]] = acc
        acc *= dims[axes[k]]
    return st


@njit(cache=True)
def _runs(dims, axes, k0, k1, k2):
    """Runs of a key over axes (k0, k1, k2; -1 unused): ``(tiles per run, outer)``, the run length the trailing
    non-key axes' product, ``outer`` the nest's dims with those axes at 1 (:func:`_step` over it visits the first
    tile of every run in order)."""
    run = 1
    outer = dims.copy()
    for k in range(3, -1, -1):
        a = axes[k]
        if dims[a] == 1:
            continue
        if a == k0 or a == k1 or a == k2:
            break
        run *= dims[a]
        outer[a] = 1
    return run, outer


@njit(cache=True)
def _step(idx, dims, axes):
    """Advance the tile coordinates ``idx`` (m, n, r, c) to the next tile of the loop nest ``axes`` (outer -> inner)
    over ``dims``."""
    for k in range(3, -1, -1):
        a = axes[k]
        idx[a] += 1
        if idx[a] < dims[a]:
            return
        idx[a] = 0


@njit(cache=True)
def _fetch_counts(dims, axes, S, software, tied, is_input):
    """Fetches of each input tile (``is_input``: key (x, r, c) flattened) or weight tile (key (m, n))."""
    mt, nt, rt, ct = dims[0], dims[1], dims[2], dims[3]
    n_tiles = mt * nt * rt * ct
    if is_input:
        run, outer = _runs(dims, axes, 0 if tied else 1, 2, 3)
        n_keys = (mt if tied else nt) * rt * ct
    else:
        run, outer = _runs(dims, axes, 0, 1, -1)
        n_keys = mt * nt
    if software or run == 1:  # every run fetches once (and only then): runs per key = T / (L * keys)
        return np.full(n_keys, float(n_tiles // (run * n_keys)))
    counts = np.zeros(n_keys)
    idx = np.zeros(4, np.int64)  # the first tile of run j
    for j in range(n_tiles // run):
        t0 = j * run
        if is_input:
            key = ((idx[0] if tied else idx[1]) * rt + idx[2]) * ct + idx[3]
        else:
            key = idx[0] * nt + idx[1]
        counts[key] += 1 + (t0 + run - 1) // S - t0 // S
        _step(idx, outer, axes)
    return counts


@njit(cache=True)
def _fetch_total(cost, counts, out):
    """Add ``counts[k] * cost[k]`` over the flattened keys of ``cost`` (..., 2) to ``out``."""
    flat = cost.reshape(-1, 2)
    for k in range(counts.shape[0]):
        out[0] += counts[k] * flat[k, 0]
        out[1] += counts[k] * flat[k, 1]


@njit(cache=True)
def _compute_total(tab, dims, tied, weighted):
    """(2,) [cycles, energy_J] of the compute category: the same under every loop order and S."""
    mt, nt, rt, ct = dims[0], dims[1], dims[2], dims[3]
    comp = np.zeros(2)
    for q in range(2):
        sum_c = 0.0
        for n in range(nt):
            sum_c += tab.compute_per_elem[n, q]
        el = 0.0
        for m in range(mt):
            for r in range(rt):
                for c in range(ct):
                    el += tab.out_elems[m, r, c]
        comp[q] = el * sum_c + tab.layer_start[q]
        if weighted:
            comp[q] += el * (tab.acc_init[q] + tab.requant[q])
        a = 0.0
        for m in range(mt):
            for r in range(rt):
                a += tab.tile_overhead_mr[m, r, q]
        comp[q] += a * nt * ct
        a = 0.0
        for n in range(nt):
            a += tab.tile_overhead_n[n, q]
        comp[q] += a * mt * rt * ct
        a = 0.0
        for c in range(ct):
            a += tab.tile_overhead_c[c, q]
        comp[q] += a * mt * nt * rt
        a = 0.0
        for x in range(tab.tile_by_input.shape[0]):
            for r in range(rt):
                for c in range(ct):
                    a += tab.tile_by_input[x, r, c, q]
        comp[q] += a * (nt if tied else mt)
        a = 0.0
        for m in range(tab.tile_by_weights.shape[0]):
            for n in range(tab.tile_by_weights.shape[1]):
                a += tab.tile_by_weights[m, n, q]
        comp[q] += a * rt * ct
    return comp


@njit(cache=True)
def _totals(tab, dims, axes, S, tied, weighted):
    return _totals_with(tab, dims, axes, S, tied, weighted, _compute_total(tab, dims, tied, weighted))


@njit(cache=True)
def _totals_with(tab, dims, axes, S, tied, weighted, comp):
    """:func:`_totals` given the compute category's total ``comp`` (:func:`_compute_total`, computed once per
    tile sizes for every loop order and S)."""
    mt, nt, rt, ct = dims[0], dims[1], dims[2], dims[3]
    n_tiles = mt * nt * rt * ct
    n_units = (n_tiles + S - 1) // S
    software = tab.software
    st = _strides(dims, axes)
    spill = software and st[1] != 1
    out = np.zeros((3, 2))
    out[0, 0] = comp[0]
    out[0, 1] = comp[1]
    # data movement: fetches, outputs, bias, partial sums
    mv = np.zeros(2)
    _fetch_total(np.ascontiguousarray(tab.load_input), _fetch_counts(dims, axes, S, software, tied, True), mv)
    if weighted:
        _fetch_total(np.ascontiguousarray(tab.load_weights), _fetch_counts(dims, axes, S, software, tied, False), mv)
    for m in range(mt):
        for r in range(rt):
            for c in range(ct):
                mv[0] += tab.out_write[m, r, c, 0]
                mv[1] += tab.out_write[m, r, c, 1]
    n_div = 0
    if weighted:
        if software:  # one accumulator pass from the bias per output tile
            for m in range(mt):
                mv[0] += rt * ct * tab.load_bias[m, 0]
                mv[1] += rt * ct * tab.load_bias[m, 1]
            if st[1] < S:
                n_div = mt * (nt - 1) * rt * ct
        else:  # the blocks in order (n = 0): a fetch when m changes or a unit starts
            bd = dims.copy()
            bd[1] = 1
            idx = np.zeros(4, np.int64)
            prev_m = -1
            prev_u = -1
            for b in range(mt * rt * ct):
                u = (idx[0] * st[0] + idx[2] * st[2] + idx[3] * st[3]) // S
                if idx[0] != prev_m or u != prev_u:
                    mv[0] += tab.load_bias[idx[0], 0]
                    mv[1] += tab.load_bias[idx[0], 1]
                prev_m = idx[0]
                prev_u = u
                _step(idx, bd, axes)
        if nt > 1:
            every = spill or st[1] >= S
            for m in range(mt):
                for r in range(rt):
                    for c in range(ct):
                        if every:
                            k = nt - 1
                        else:
                            p = m * st[0] + r * st[2] + c * st[3]
                            k = (p + (nt - 1) * st[1]) // S - p // S
                        for q in range(2):
                            mv[q] += k * (tab.psum_read[m, r, c, q] + tab.psum_write[m, r, c, q])
    out[1, 0] = mv[0]
    out[1, 1] = mv[1]
    for q in range(2):
        out[2, q] = n_units * tab.commit[q] + n_div * tab.version_div[q]
    return out


def design_totals(tab, design, geom) -> np.ndarray:
    """``(3, 2)`` [compute|data_movement|preservation][cycles, energy_J] of ``geom`` under a normalised
    ``design`` with cost tables ``tab``: equal to ``walk(tab, design, geom).unit_cost.sum(axis=0)``."""
    return _totals(tab, np.array(tab.grid, np.int64), np.array(ORDER_AXES[design.loop_order], np.int64), design.S,
                   geom.channel_tied, geom.weighted)


@njit(cache=True)
def exact_totals(gv, pv, tiles, lea, svals, software, orders):
    """:func:`design_totals` of many designs of one layer in one compiled call (tables built inside).

    ``gv``/``pv``: :func:`aidi.models.costs.fast.geom_vector` / ``platform_vector``; ``tiles`` (N, 4)
    normalised (Tr, Tc, Tm, Tn), ``lea`` (N,) backends, ``svals`` (N,) S, ``orders`` (O, 4) loop nests
    (:data:`~.design.ORDER_AXES`).  Returns (N, O, 3, 2) [category][cycles, energy_J].
    """
    n = tiles.shape[0]
    out = np.zeros((n, orders.shape[0], 3, 2))
    op = gv[0]
    for i in range(n):
        tab = build_tables(gv, pv, tiles[i, 0], tiles[i, 1], tiles[i, 2], tiles[i, 3], lea[i], software)
        dims = np.array([tab.tm.shape[0], tab.tn.shape[0], tab.tr.shape[0], tab.tc.shape[0]], np.int64)
        comp = _compute_total(tab, dims, op >= 2, op <= 2)
        for o in range(orders.shape[0]):
            out[i, o] = _totals_with(tab, dims, orders[o], svals[i], op >= 2, op <= 2, comp)
    return out


@njit(cache=True)
def walk_design(gv, pv, tr, tc, tm, tn, lea, software, axes, S, e_limit, slot_stride):
    """The walk of one design with its tables built inside the compiled call (no tables cross into Python).

    Returns (status, unit_cost (U, 3, 2), max_unit_energy J, max_slots, acc_extent bytes); see
    :func:`.walk.walk` (``idempotent``, not recorded).
    """
    tab = build_tables(gv, pv, tr, tc, tm, tn, lea, software)
    dims = np.array([tab.tm.shape[0], tab.tn.shape[0], tab.tr.shape[0], tab.tc.shape[0]], np.int64)
    op = gv[0]
    prm = WalkParams(dims, axes, S, op >= 2, op <= 2, True, slot_stride, False, e_limit, 0.0, 0.0, np.inf)
    w = _walk(tab, prm)
    return w.status, w.unit_cost, w.max_unit_energy, w.max_slots, w.acc_extent
