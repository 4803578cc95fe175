"""A layer's whole design space ranked in one compiled call: SRAM, the mean unit's energy, a latency surrogate.

Stage one of the latency optimizer (:func:`aidi.models.design_search.optimize_designs`): every tile size
(divisors of the output rows, columns and channels and of the input channels), backend and hyper-tile
size S is checked against the SRAM budget (one accumulator block: what every loop order needs at least),
costed by its closed-form lower bound (:func:`aidi.models.costs.fast.lower_bound_into`: per-axis sums
over interior and edge tiles, plus one commit per unit) and kept when even its mean unit fits one power
cycle; the survivors are ranked by :func:`surrogate_s`.  The optimizer then costs the best exactly
(:mod:`.closed`), walks the best of those and simulates them with the oracle.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..costs.fast import build_tables, lb_scratch, lower_bound_into, sram_fits
from ..runtime_sram import ALIGN
from .closed import _compute_total, _totals_with
from .walk import OVER_E_LIMIT, WalkParams, _walk

#: slots of the surrogate's parameter vector (:func:`surrogate_params`)
SP_MCLK, SP_HARVEST_W, SP_E_CYCLE, SP_AWARE, SP_DISPATCH_J, SP_BOOT_J, SP_BOOT_S = range(7)
#: S modes of rank_space
S_HYPERTILE, S_FIXED, S_TILE, S_LAYER = range(4)


def surrogate_params(p, e_unit_J: float, p_harvest_W: float | None, energy_aware: bool) -> np.ndarray:
    """The surrogate's parameters: MCLK (Hz), harvest power after the converter (W, 0: none), the energy a
    power cycle gives a unit (J), energy_aware (0/1), the per-unit dispatch energy (measurement + wake-up, J),
    the boot's energy (J) and time (s), all from the platform ``p`` and the scenario."""
    return np.array([p.mclk_hz, p_harvest_W or 0.0, max(e_unit_J, 1e-30), float(energy_aware),
                     p.measure_energy_J + p.wake_s * p.active_power_W, p.boot_energy_J, p.boot_s])


@njit(cache=True)
def surrogate_s(cycles, energy, units, sp):
    """Latency estimate (s) of a layer alone under the scenario's power: compute time and boots, or the
    energy (units, reboots, greedy's lost half unit per power cycle, energy_aware's measurements and
    wake-ups) over the harvest power.  A ranking device only: the oracle decides."""
    t = cycles / sp[SP_MCLK]
    ph = sp[SP_HARVEST_W]
    if ph <= 0.0:
        return t + energy * 1e-9
    p_act = energy / max(t, 1e-30)
    e_u = energy / max(units, 1.0)
    if sp[SP_AWARE] > 0:
        waste = 0.0
        extra = units * sp[SP_DISPATCH_J]
    else:
        waste = 0.5 * e_u
        extra = 0.0
    n_cyc = 0.0
    if p_act > ph:
        work = sp[SP_E_CYCLE] * p_act / max(p_act - ph, 1e-30)
        n_cyc = energy / max(work - waste, 1e-30)
    e_total = energy + extra + n_cyc * (sp[SP_BOOT_J] + waste)
    return max(t + n_cyc * sp[SP_BOOT_S], e_total / ph)


@njit(cache=True)
def rank_space(gv, pv, tiles, lea_flags, software, budget, arena_cap, s_mode, s_fixed, limit, sp):
    """Every (tile, backend, S) of a layer: SRAM fit, lower bound, mean-unit check, surrogate.

    ``tiles`` (K, 4) normalised (Tr, Tc, Tm, Tn); ``lea_flags`` (B,); ``budget``, ``arena_cap``: SRAM
    limits of :func:`aidi.models.costs.fast.sram_fits`; ``s_mode``: S_HYPERTILE (powers of
    two below the tile count and the tile count), S_FIXED (``s_fixed``, clipped), S_TILE (1) or S_LAYER
    (the tile count).  Returns ``(rejected_sram, rejected_atomicity, k, b, S, units, surrogate)``: the counts
    of (tile, backend, S) combinations rejected, and the rows kept (indices into ``tiles`` and backends).
    """
    K = tiles.shape[0]
    B = lea_flags.shape[0]
    cap = K * B * 64
    rk = np.empty(cap, np.int64)
    rb = np.empty(cap, np.int64)
    rs = np.empty(cap, np.int64)
    ru = np.empty(cap, np.int64)
    rsur = np.empty(cap)
    svals = np.empty(64, np.int64)
    iw, fw = lb_scratch(gv)  # one scratch for every candidate's lower bound
    n = 0
    rej_sram = 0
    rej_atom = 0
    M, C, Ho, Wo = gv[4], gv[1], gv[5], gv[6]
    tied = gv[0] >= 2
    for k in range(K):
        tr, tc, tm, tn = tiles[k, 0], tiles[k, 1], tiles[k, 2], tiles[k, 3]
        ntn = 1 if tied else (C + tn - 1) // tn
        nt = ((M + tm - 1) // tm) * ntn * ((Ho + tr - 1) // tr) * ((Wo + tc - 1) // tc)
        ns = 0
        if s_mode == S_HYPERTILE:
            s = 1
            while s < nt:
                svals[ns] = s
                ns += 1
                s *= 2
            svals[ns] = nt
            ns += 1
        elif s_mode == S_FIXED:
            svals[0] = min(s_fixed, nt)
            ns = 1
        elif s_mode == S_TILE:
            svals[0] = 1
            ns = 1
        else:
            svals[0] = nt
            ns = 1
        for b in range(B):
            if not sram_fits(gv, tr, tc, tm, tn, lea_flags[b], 4 * tm * tr * tc, budget, arena_cap):
                rej_sram += ns
                continue
            lb_c, lb_e, com_c, com_e = lower_bound_into(gv, pv, tr, tc, tm, tn, lea_flags[b], software, iw, fw)
            for q in range(ns):
                s = svals[q]
                u = (nt + s - 1) // s
                cyc = lb_c + (u - 1) * com_c
                en = lb_e + (u - 1) * com_e
                if en / u > limit * (1 + 1e-12):  # even the mean unit does not fit
                    rej_atom += 1
                    continue
                rk[n] = k
                rb[n] = b
                rs[n] = s
                ru[n] = u
                rsur[n] = surrogate_s(cyc, en, u, sp)
                n += 1
    return rej_sram, rej_atom, rk[:n].copy(), rb[:n].copy(), rs[:n].copy(), ru[:n].copy(), rsur[:n].copy()


@njit(cache=True)
def walk_ranked(gv, pv, tiles, lea, svals, units, software, orders, sp, e_limit, budget, arena_cap, n_keep):
    """Stages two and three of a layer's ranking in one compiled call: the exact closed-form totals of the rows
    stage one kept (:func:`rank_space`) under every loop order, the surrogate on them, and the walks in
    surrogate order until ``n_keep`` designs pass.

    ``tiles`` (N, 4) normalised (Tr, Tc, Tm, Tn), ``lea`` (N,), ``svals`` (N,) S and ``units`` (N,) unit counts of
    the rows; ``orders`` (O, 4) loop nests (:data:`~.design.ORDER_AXES`); ``e_limit``: the largest unit energy
    (J); ``budget``, ``arena_cap``: the SRAM limits of :func:`aidi.models.costs.fast.sram_fits`, checked with
    the walk's accumulator extent when ``software`` is False.  A design passes when no unit is over
    ``e_limit``, its SRAM fits, and (``n_keep`` >= 0) its unit costs differ from every design kept before
    (order ties); ``n_keep`` < 0: every design is walked and kept when it passes.

    Returns ``(surrogate (N*O,) s, kept (K,) flat indices i*O + o, offsets (K+1,), unit costs (sum U, 3, 2)
    [category][cycles, energy_J] of the kept designs, rejected by unit energy, rejected by SRAM, walked)``:
    the walks of :func:`.closed.walk_design`, the totals of :func:`.closed.exact_totals`.
    """
    n = tiles.shape[0]
    n_ord = orders.shape[0]
    op = gv[0]
    tabs = [build_tables(gv, pv, tiles[i, 0], tiles[i, 1], tiles[i, 2], tiles[i, 3], lea[i], software)
            for i in range(n)]
    sur = np.empty(n * n_ord)
    for i in range(n):
        tab = tabs[i]
        dims = np.array([tab.tm.shape[0], tab.tn.shape[0], tab.tr.shape[0], tab.tc.shape[0]], np.int64)
        comp = _compute_total(tab, dims, op >= 2, op <= 2)  # the same under every loop order
        for o in range(n_ord):
            tot = _totals_with(tab, dims, orders[o], svals[i], op >= 2, op <= 2, comp)
            cyc = tot[0, 0] + tot[1, 0] + tot[2, 0]
            en = tot[0, 1] + tot[1, 1] + tot[2, 1]
            sur[i * n_ord + o] = surrogate_s(cyc, en, units[i], sp)
    order = np.argsort(sur, kind="mergesort")
    kept = np.empty(n * n_ord, np.int64)
    costs = []
    n_kept = 0
    n_atom = 0
    n_sram = 0
    n_tried = 0
    for q in range(order.shape[0]):
        if n_keep >= 0 and n_kept >= n_keep:
            break
        n_tried += 1
        flat = order[q]
        i = flat // n_ord
        o = flat - i * n_ord
        tab = tabs[i]
        tr, tc, tm, tn = tiles[i, 0], tiles[i, 1], tiles[i, 2], tiles[i, 3]
        dims = np.array([tab.tm.shape[0], tab.tn.shape[0], tab.tr.shape[0], tab.tc.shape[0]], np.int64)
        prm = WalkParams(dims, orders[o], svals[i], op >= 2, op <= 2, True, (4 * tm * tr * tc + ALIGN - 1) // ALIGN * ALIGN, False, e_limit,
                         0.0, 0.0, np.inf)
        w = _walk(tab, prm)
        if w.status == OVER_E_LIMIT:
            n_atom += 1
            continue
        if not software and not sram_fits(gv, tr, tc, tm, tn, lea[i], w.acc_extent, budget, arena_cap):
            n_sram += 1  # more accumulator slots than the one block the scan assumed
            continue
        uc = w.unit_cost
        if n_keep >= 0 and _same_as_kept(uc, costs, sp[SP_MCLK]):
            continue
        costs.append(uc)
        kept[n_kept] = flat
        n_kept += 1
    off = np.zeros(n_kept + 1, np.int64)
    for k in range(n_kept):
        off[k + 1] = off[k] + costs[k].shape[0]
    flat_costs = np.empty((off[n_kept], 3, 2))
    for k in range(n_kept):
        flat_costs[off[k]:off[k + 1]] = costs[k]
    return sur, kept[:n_kept].copy(), off, flat_costs, n_atom, n_sram, n_tried


@njit(cache=True)
def _same_as_kept(uc, kept, mclk):
    """Has a kept design the same per-unit durations (s: cycles over ``mclk``) and energies as ``uc``?"""
    for other in kept:
        if other.shape[0] != uc.shape[0]:
            continue
        same = True
        for u in range(uc.shape[0]):
            if (uc[u, 0, 0] + uc[u, 1, 0] + uc[u, 2, 0]) / mclk != (other[u, 0, 0] + other[u, 1, 0]
                                                                       + other[u, 2, 0]) / mclk:
                same = False
                break
            if uc[u, 0, 1] != other[u, 0, 1] or uc[u, 1, 1] != other[u, 1, 1] or uc[u, 2, 1] != other[u, 2, 1]:
                same = False
                break
        if same:
            return True
    return False
