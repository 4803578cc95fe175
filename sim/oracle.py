"""The fast oracle: the SimPy model's semantics as one compiled numba loop.

Same state machine as :mod:`aidi.sim.des` (charge to V_on, boot, execute units,
brown-out loses the running unit, periodic releases with sleep, until_s bound),
same physics (:func:`aidi.sim.physics.advance`), no SimPy and no Python per event.
Where the SimPy model steps unit by unit, the oracle moves the capacitor over a
whole run of identical units at once (:func:`aidi.sim.physics.run_units_merged`)
and tallies energy from prefix sums, so a tiled layer costs a few closed-form
moves instead of one per tile; :func:`simulate_many` evaluates a batch of
workloads in one compiled call.
Used by schedulability analysis, sweeps and the NAS.  Tests check that it agrees
with the SimPy model on every shipped scenario and on random ones.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numba import njit

from . import physics
from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .workload import (CATEGORIES, STUCK_BOOT, NonProgressError, Tally, Workload,
                       e_store, progress_message, result_dict, stuck_unit)

# status codes
RUNNING, DONE, UNTIL, NEVER_BOOTS, STUCK, NON_PROGRESS = 0, 1, 2, 3, 4, 5
_REASONS = {
    DONE: "",
    UNTIL: "until_s reached",
    NEVER_BOOTS: "the capacitor settles below v_on: the device never boots",
}
# accumulator slots
H, C, L, X, ON, OFF = range(6)
# category slots (order of CATEGORIES)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
N_CAT = len(CATEGORIES)
K_RESTORE, K_REEXEC, K_SLEEP, K_UNFIN = _CAT["restore"], _CAT["reexecution"], _CAT["sleep"], _CAT["unfinished"]


@njit(cache=True, error_model="numpy")
def _run(d, pw, layers, run_end, boot_s, boot_p, sleep_w, eta, cap, v_on, v_off, v_max, i_leak, v0, seg_t, seg_p,
         seg_g, seg_vs, period, inferences, period_s, until, acc, cat, by_layer, lat, cnt):
    """One run of the state machine; returns (status, t, v, progress, inferences completed).

    Fills acc, lat, cnt, and in cat / by_layer everything but the completed units' own energy
    (see :func:`_add_completed`).
    """
    n = d.shape[0]
    time_invariant = seg_t.shape[0] == 1 and period == 0.0  # as Segments.time_invariant
    t = 0.0
    v = v0
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
            k, t_k, v_k, el_cut, v_cut, reason, eh, ec, el, ex = physics.run_units_merged(
                v, t, i0, n, d, pw, eta, run_end, v_off, v_on, until, cap, i_leak, v_max,
                seg_t, seg_p, seg_g, seg_vs, period)
            acc[H] += eh; acc[C] += ec; acc[L] += el; acc[X] += ex
            t += t_k
            if k > 0:
                v = v_k
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
            t += el_cut
            v = v_cut
            e = pw[i] * el_cut
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
    return status, t, v, progress, inference


@njit(cache=True, error_model="numpy")
def _prepare(d, energy, layers, boot_j, boot_s, eta, e_cap, p_src, pw, run_end, tot_cat, tot_layer):
    """One pass over a workload's units before the run.

    Fills pw (E_i / d_i), run_end (end, exclusive, of the run of identical units containing i),
    the energy of one inference by unit category (tot_cat) and by layer (tot_layer), and returns
    what :func:`aidi.sim.workload.progress_violation` returns, with the same arithmetic.
    """
    n = d.shape[0]
    start = 0
    worst = -1
    gap = 0.0
    for i in range(n):
        u = 0.0
        for c in range(energy.shape[1]):
            u += energy[i, c]
            tot_cat[c] += energy[i, c]
        tot_layer[layers[i]] += u
        pw[i] = u / d[i]
        if i > 0 and (d[i] != d[i - 1] or pw[i] != pw[i - 1]):
            run_end[start:i] = i
            start = i
        need = (boot_j + u) / eta
        avail = e_cap + p_src * (boot_s + d[i])
        if need > avail and (worst < 0 or need - avail > gap):
            worst = i
            gap = need - avail
    run_end[start:n] = n
    if boot_j / eta > e_cap + p_src * boot_s:
        return -2
    return worst


@njit(cache=True, error_model="numpy")
def _add_completed(energy, layers, done, partial, tot_cat, tot_layer, cat, by_layer):
    """Add the energy of every completed unit by category and by layer.

    Committed units are never run again, so over a run each unit completed once per
    finished inference (``done`` times the totals of one inference), plus once more if it is
    among the first ``partial`` units, those committed in the unfinished inference.
    """
    for c in range(tot_cat.shape[0]):  # the unit categories come first in CATEGORIES
        cat[c] += done * tot_cat[c]
    for k in range(tot_layer.shape[0]):
        by_layer[k] += done * tot_layer[k]
    for i in range(partial):
        u = 0.0
        for c in range(energy.shape[1]):
            cat[c] += energy[i, c]
            u += energy[i, c]
        by_layer[layers[i]] += u


@njit(cache=True, error_model="numpy")
def _run_many(off, d, energy, layers, boot, eta, cap, v_on, v_off, v_max, i_leak, v0, seg_t, seg_p, seg_g, seg_vs,
              period, inferences, period_s, until):
    """Every workload of a batch in one compiled call.

    Work w is units off[w]:off[w+1] of the concatenated d, energy, layers, with
    boot[w] = (boot_s, boot_J, sleep_W).  Returns (ints, floats, by_layer, latencies);
    the columns of ints and floats are named by INT_COLS and FLOAT_COLS.
    """
    nw = off.shape[0] - 1
    n_all = d.shape[0]
    n_ucat = energy.shape[1]
    pw = np.empty(n_all)
    run_end = np.empty(n_all, dtype=np.int64)
    top = 0
    for i in range(n_all):
        top = max(top, layers[i])
    e_cap = e_store(cap, v_on, v_off)
    p_src = physics.source_max_power(seg_p, seg_g, seg_vs, v_off, v_on)
    ints = np.zeros((nw, 3 + 6), dtype=np.int64)
    floats = np.zeros((nw, 2 + 6 + N_CAT))
    by_layer = np.zeros((nw, top + 1))
    lat = np.full((nw, inferences), np.nan)
    tot_cat = np.empty(n_ucat)
    tot_layer = np.empty(top + 1)
    for w in range(nw):
        a, b = off[w], off[w + 1]
        boot_s, boot_j, sleep_w = boot[w, 0], boot[w, 1], boot[w, 2]
        tot_cat[:] = 0.0
        tot_layer[:] = 0.0
        bad = _prepare(d[a:b], energy[a:b], layers[a:b], boot_j, boot_s, eta, e_cap, p_src, pw[a:b], run_end[a:b],
                       tot_cat, tot_layer)
        ints[w, 1] = bad
        if bad != -1:
            ints[w, 0] = NON_PROGRESS
            continue
        cat = floats[w, 8:]
        st, t, v, progress, done = _run(d[a:b], pw[a:b], layers[a:b], run_end[a:b], boot_s, boot_j / boot_s, sleep_w,
                                        eta, cap, v_on, v_off, v_max, i_leak, v0, seg_t, seg_p, seg_g, seg_vs,
                                        period, inferences, period_s, until, floats[w, 2:8], cat, by_layer[w],
                                        lat[w], ints[w, 3:])
        if st != STUCK:
            partial = progress if done < inferences else 0  # committed units of the unfinished inference
            _add_completed(energy[a:b], layers[a:b], done, partial, tot_cat, tot_layer, cat, by_layer[w])
        ints[w, 0] = st
        ints[w, 2] = progress
        floats[w, 0] = t
        floats[w, 1] = v
    return ints, floats, by_layer, lat


#: columns of _run_many's outputs
INT_COLS = ("status", "bad_unit", "progress", "power_cycles", "units_executed", "units_reexecuted", "units_lost",
            "inferences_completed", "fails_in_row")
FLOAT_COLS = ("t", "v", "harvested", "consumed", "leaked", "clipped", "on_time", "off_time") + CATEGORIES


class Batch:
    """The oracle's answers for a batch of workloads, as arrays (one row per workload).

    ``completed``, ``latency_s`` (NaN when not completed), ``power_cycles``, ``units_lost``,
    ``harvested_J``, ``consumed_J`` ... are read straight off the compiled loop's output;
    :meth:`result` builds the full ``aidi run --json`` dict of one workload and
    :meth:`error` the NonProgressError it would raise.
    """

    def __init__(self, works, power, seg, sim, out):
        self.works, self.power, self.seg, self.sim = works, power, seg, sim
        self.ints, self.floats, self.by_layer, self.lat = out

    def __len__(self) -> int:
        return len(self.works)

    def _i(self, name: str) -> np.ndarray:
        return self.ints[:, INT_COLS.index(name)]

    def _f(self, name: str) -> np.ndarray:
        return self.floats[:, FLOAT_COLS.index(name)]

    @property
    def completed(self) -> np.ndarray:
        return self._i("status") == DONE

    @property
    def latency_s(self) -> np.ndarray:
        return np.where(self.completed, self._f("t"), np.nan)

    @property
    def power_cycles(self) -> np.ndarray:
        return self._i("power_cycles")

    @property
    def units_lost(self) -> np.ndarray:
        return self._i("units_lost")

    @property
    def harvested_J(self) -> np.ndarray:
        return self._f("harvested")

    @property
    def consumed_J(self) -> np.ndarray:
        return self._f("consumed")

    def error(self, w: int) -> NonProgressError | None:
        """The NonProgressError workload w raises alone, or None."""
        st, bad, progress = (int(x) for x in self.ints[w, :3])
        work = self.works[w]
        if st == NON_PROGRESS:
            return NonProgressError(progress_message(work, self.power, self.seg, bad))
        if st == STUCK:
            return NonProgressError(STUCK_BOOT if progress < 0 else stuck_unit(work.names[progress]))
        return None

    def result(self, w: int) -> dict:
        """The ``aidi run --json`` dict of workload w; raises its NonProgressError if it has one."""
        exc = self.error(w)
        if exc is not None:
            raise exc
        i = dict(zip(INT_COLS, self.ints[w].tolist()))
        f = dict(zip(FLOAT_COLS, self.floats[w].tolist()))
        tally = Tally(harvested=f["harvested"], consumed=f["consumed"], leaked=f["leaked"], clipped=f["clipped"],
                      on_time=f["on_time"], off_time=f["off_time"], power_cycles=i["power_cycles"],
                      units_executed=i["units_executed"], units_reexecuted=i["units_reexecuted"],
                      units_lost=i["units_lost"], inferences_completed=i["inferences_completed"])
        tally.by_category = {c: f[c] for c in CATEGORIES}
        bl = self.by_layer[w].tolist()
        tally.by_layer = {k: bl[k] for k in np.unique(self.works[w].layers).tolist() if bl[k] != 0.0}
        tally.latencies = [(k, x) for k, x in enumerate(self.lat[w].tolist()) if x == x]
        st = i["status"]
        return result_dict(tally, self.power, f["v"], f["t"], st == DONE, _REASONS.get(st, ""), "oracle",
                           self.works[w], self.sim)


def simulate_batch(works: Sequence[Workload], power: PowerConfig, seg: Segments, sim: SimConfig) -> Batch:
    """Run the oracle on many workloads under one power configuration in a single compiled call.

    This is how the NAS and the benchmarks call the oracle: Python's per-call overhead
    (argument checks, array boxing) is paid once per batch instead of once per workload.
    """
    if not works:
        raise ValueError("simulate_batch needs at least one workload")
    off = np.zeros(len(works) + 1, dtype=np.int64)
    np.cumsum([w.durations_s.shape[0] for w in works], out=off[1:])
    out = _run_many(off, np.concatenate([w.durations_s for w in works]), np.concatenate([w.energy_J for w in works]),
                    np.concatenate([w.layers for w in works]).astype(np.int64, copy=False),
                    np.array([(w.boot_s, w.boot_J, w.sleep_W) for w in works]), power.converter_efficiency,
                    power.capacitor_F, power.v_on, power.v_off, power.v_max, power.leakage_A, power.v_initial,
                    seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs, seg.period, sim.inferences, sim.period_s, sim.until_s)
    return Batch(list(works), power, seg, sim, out)


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig) -> dict:
    """Run the oracle; returns the same dict as :func:`aidi.sim.des.simulate`."""
    return simulate_batch([work], power, seg, sim).result(0)
