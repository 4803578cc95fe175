"""The fast oracle: the SimPy model's semantics as one compiled numba loop.

Same state machine as :mod:`aidi.sim.des` (charge to V_on, boot, execute units,
brown-out loses the running unit, periodic releases with sleep, until_s bound),
same physics (:func:`aidi.sim.physics.advance`), no SimPy and no Python per event.
Used by schedulability analysis, sweeps and the NAS.  Tests check that it agrees
with the SimPy model on every shipped scenario and on random ones.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from . import physics
from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .workload import (CATEGORIES, STUCK_BOOT, NonProgressError, Tally, Workload, check_progress, result_dict,
                       stuck_unit)

# status codes
RUNNING, DONE, UNTIL, NEVER_BOOTS, STUCK = 0, 1, 2, 3, 4
_REASONS = {
    DONE: "",
    UNTIL: "until_s reached",
    NEVER_BOOTS: "the capacitor settles below v_on: the device never boots",
}
# accumulator slots
H, C, L, X, ON, OFF = range(6)
# category slots (order of CATEGORIES)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
K_RESTORE, K_REEXEC, K_SLEEP, K_UNFIN = _CAT["restore"], _CAT["reexecution"], _CAT["sleep"], _CAT["unfinished"]


@njit(cache=True)
def _run(d, pw, layers, n_layers, energy, boot_s, boot_p, sleep_w, eta, cap, v_on, v_off, v_max, i_leak, v0,
         seg_t, seg_p, seg_g, seg_vs, period, inferences, period_s, until, time_invariant):
    n = d.shape[0]
    p_cap = pw / eta
    t = 0.0
    v = v0
    acc = np.zeros(6)
    cat = np.zeros(9)
    by_layer = np.zeros(n_layers)
    lat = np.full(inferences, np.nan)
    # counts: power_cycles, executed, reexecuted, lost, inferences_completed, fails_in_row
    cnt = np.zeros(6, dtype=np.int64)
    progress = 0
    inference = 0
    retry = False
    status = RUNNING
    while True:
        if v < v_on:
            r = physics.advance(v, t, until - t, 0.0, -1.0, v_on, True, cap, i_leak, v_max,
                                seg_t, seg_p, seg_g, seg_vs, period)
            t += r[0]
            v = r[1]
            acc[H] += r[3]; acc[C] += r[4]; acc[L] += r[5]; acc[X] += r[6]
            acc[OFF] += r[0]
            if r[2] != physics.HIT_HIGH:
                status = NEVER_BOOTS if time_invariant else UNTIL
                break
        cnt[0] += 1
        t_on = t
        r = physics.advance(v, t, min(boot_s, until - t), boot_p / eta, v_off, v_on, False, cap, i_leak, v_max,
                            seg_t, seg_p, seg_g, seg_vs, period)
        t += r[0]
        v = r[1]
        acc[H] += r[3]; acc[C] += r[4]; acc[L] += r[5]; acc[X] += r[6]
        cat[K_RESTORE] += boot_p * r[0]
        if r[2] == physics.HIT_LOW:
            acc[ON] += t - t_on
            cnt[5] += 1
            if time_invariant and cnt[5] >= 2:
                status = STUCK
                progress = -1
                break
            continue
        if r[0] < boot_s:
            status = UNTIL
            acc[ON] += t - t_on
            break
        browned = False
        while inference < inferences:
            release = inference * period_s
            if t < release:
                dur = release - t
                r = physics.advance(v, t, min(dur, until - t), sleep_w / eta, v_off, v_on, False, cap, i_leak,
                                    v_max, seg_t, seg_p, seg_g, seg_vs, period)
                t += r[0]
                v = r[1]
                acc[H] += r[3]; acc[C] += r[4]; acc[L] += r[5]; acc[X] += r[6]
                cat[K_SLEEP] += sleep_w * r[0]
                if r[2] == physics.HIT_LOW:
                    browned = True
                    break
                if r[0] < dur:
                    status = UNTIL
                    break
            i0 = progress
            if retry:
                cnt[2] += 1
                retry = False
            k, el, ve, reason, sums = physics.run_units(v, t, i0, n, d, p_cap, v_off, v_on, until, cap, i_leak,
                                                        v_max, seg_t, seg_p, seg_g, seg_vs, period)
            acc[H] += sums[0]; acc[C] += sums[1]; acc[L] += sums[2]; acc[X] += sums[3]
            for j in range(k):
                t += el[j]
                i = i0 + j
                for c in range(energy.shape[1]):
                    cat[c] += energy[i, c]
                    by_layer[layers[i]] += energy[i, c]
            if k > 0:
                v = ve[k - 1]
                cnt[1] += k
                cnt[5] = 0
                progress = i0 + k
            if reason == physics.ALL_DONE:
                lat[inference] = t - inference * period_s
                inference += 1
                cnt[4] += 1
                if inference < inferences:
                    progress = 0
                continue
            i = i0 + k
            t += el[k]
            v = ve[k]
            e = pw[i] * el[k]
            by_layer[layers[i]] += e
            if reason == physics.HIT_LOW:
                cat[K_REEXEC] += e
                cnt[3] += 1
                retry = True
                cnt[5] += 1
                browned = True
                if time_invariant and cnt[5] >= 2:
                    status = STUCK
                break
            cat[K_UNFIN] += e
            status = UNTIL
            break
        acc[ON] += t - t_on
        if status != RUNNING:
            break
        if not browned:
            status = DONE
            break
    return status, t, v, acc, cat, by_layer, lat, cnt, progress


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig) -> dict:
    """Run the oracle; returns the same dict as :func:`aidi.sim.des.simulate`."""
    check_progress(work, power, seg)
    n_layers = int(work.layers.max()) + 1
    status, t, v, acc, cat, by_layer, lat, cnt, progress = _run(
        work.durations_s, work.power_W, work.layers, n_layers, work.energy_J, work.boot_s,
        work.boot_J / work.boot_s, work.sleep_W, power.converter_efficiency, power.capacitor_F, power.v_on,
        power.v_off, power.v_max, power.leakage_A, power.v_initial, seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs,
        seg.period, sim.inferences, sim.period_s, sim.until_s, seg.time_invariant)
    if status == STUCK:
        raise NonProgressError(STUCK_BOOT if progress < 0 else stuck_unit(work.names[progress]))
    tally = Tally(harvested=acc[H], consumed=acc[C], leaked=acc[L], clipped=acc[X], on_time=acc[ON],
                  off_time=acc[OFF], power_cycles=int(cnt[0]), units_executed=int(cnt[1]),
                  units_reexecuted=int(cnt[2]), units_lost=int(cnt[3]), inferences_completed=int(cnt[4]))
    tally.by_category = {c: float(cat[k]) for k, c in enumerate(CATEGORIES)}
    touched = np.unique(work.layers)
    tally.by_layer = {int(k): float(by_layer[k]) for k in touched if by_layer[k] != 0.0}
    tally.latencies = [(k, float(x)) for k, x in enumerate(lat) if not np.isnan(x)]
    return result_dict(tally, power, v, t, status == DONE, _REASONS.get(status, ""), "oracle", work, sim)
