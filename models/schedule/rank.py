"""A layer's whole design space ranked in one compiled call: SRAM, the mean unit's energy, a latency surrogate.

Stage one of the latency optimizer (:func:`aidi.models.design_search.optimize_designs`): every tile size
(divisors of the output rows, columns and channels and of the input channels), backend and hyper-tile
size S is checked against the SRAM budget (one accumulator block: what every loop order needs at least),
costed by its closed-form lower bound (:func:`aidi.models.costs.fast.lower_bound_closed`: per-axis sums
over interior and edge tiles, plus one commit per unit) and kept when even its mean unit fits one power
cycle; the survivors are ranked by :func:`surrogate_s`.  The optimizer then costs the best exactly
(:mod:`.closed`), walks the best of those and simulates them with the oracle.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..costs.fast import lower_bound_closed, sram_fits

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
def surrogate_many(cycles, energy, units, sp):
    out = np.empty(cycles.shape[0])
    for i in range(cycles.shape[0]):
        out[i] = surrogate_s(cycles[i], energy[i], units[i], sp)
    return out


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
            lb, commit = lower_bound_closed(gv, pv, tr, tc, tm, tn, lea_flags[b], software)
            for q in range(ns):
                s = svals[q]
                u = (nt + s - 1) // s
                cyc = lb[0] + (u - 1) * commit[0]
                en = lb[1] + (u - 1) * commit[1]
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
