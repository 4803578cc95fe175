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

from typing import NamedTuple, Sequence

import numpy as np
from numba import njit

from . import physics
from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .workload import (CATEGORIES, STUCK_BOOT, NonProgressError, Tally, Workload, boot_known, known_drops,
                       progress_message, progress_violation, source_floor, result_dict, start_message, start_thresholds, stuck_unit, stuck_wait)

# status codes
RUNNING, DONE, UNTIL, NEVER_BOOTS, STUCK, NON_PROGRESS, STUCK_WAIT, NO_START = 0, 1, 2, 3, 4, 5, 6, 7
_REASONS = {
    DONE: "",
    UNTIL: "until_s reached",
    NEVER_BOOTS: "the capacitor settles below v_on: the device never boots",
}
#: the accumulators of one run (``acc``, float), in FLOAT_COLS order after t and v: energies (J), times (s)
ACCUMULATORS = ("harvested", "consumed", "leaked", "clipped", "on_time", "off_time", "wait_time")
H, C, L, X, ON, OFF, WAIT = range(len(ACCUMULATORS))
#: the counters of one run (``cnt``, int), in INT_COLS order after status, bad_unit and progress
COUNTERS = ("power_cycles", "units_executed", "units_reexecuted", "units_lost", "inferences_completed",
            "fails_in_row", "threshold_waits", "measurements")
N_CYCLES, N_EXECUTED, N_REEXECUTED, N_LOST, N_INFERENCES, N_FAILS, N_WAITS, N_MEASURES = range(len(COUNTERS))
N_ACC, N_COUNTERS = len(ACCUMULATORS), len(COUNTERS)
# category slots (order of CATEGORIES)
_CAT = {c: i for i, c in enumerate(CATEGORIES)}
N_CAT = len(CATEGORIES)
K_RESTORE, K_REEXEC, K_SLEEP, K_UNFIN = _CAT["restore"], _CAT["reexecution"], _CAT["sleep"], _CAT["unfinished"]
K_WAIT = _CAT["wait"]


class Job(NamedTuple):
    """One workload as the compiled loop sees it (arrays: one entry per unit)."""

    durations_s: np.ndarray  #: unit durations (s)
    power_W: np.ndarray  #: unit MCU power E_i / d_i (W)
    layers: np.ndarray  #: unit layer indices
    run_end: np.ndarray  #: end (exclusive) of each unit's run of identical units (see _prepare)
    per_len: np.ndarray  #: units in the repeating pattern starting at a unit, 0 if none
    per_end: np.ndarray  #: end of that pattern's whole repeats
    boot_s: float  #: boot (restore) duration (s)
    boot_W: float  #: boot MCU power (W)
    sleep_W: float  #: MCU power while sleeping until a release (W)
    v_start: np.ndarray = np.empty(0)  #: energy_aware's start threshold of each unit (V; unused under greedy)
    costs: np.ndarray = np.zeros(5)  #: energy_aware's phase costs (Workload.dispatch_costs)
    drops: np.ndarray = np.empty(0)  #: energy_aware's 2 E_need / C of each unit (V^2, workload.known_drops)
    boot_known: float = 0.0  #: energy_aware's lower bound on V right after a boot (V, workload.boot_known)


class Bounds(NamedTuple):
    """The device's thresholds and the run's bounds: everything of a run but the circuit and the job."""

    eta: float  #: converter efficiency: the MCU's P is drawn from the capacitor as P / eta
    v_on: float  #: boot threshold (V)
    v_off: float  #: brown-out threshold (V)
    v_initial: float  #: voltage at t = 0 (V)
    inferences: int  #: inferences to run
    period_s: float  #: release period of the inferences (s); 0: back to back
    until_s: float  #: time bound (s)
    aware: bool = False  #: energy_aware dispatch (else greedy)


class Sinks(NamedTuple):
    """Where a run tallies (arrays filled in place, views into :func:`_evaluate`'s outputs)."""

    acc: np.ndarray  #: slots H, C, L, X (J), ON, OFF (s)
    cat: np.ndarray  #: energy by category, in CATEGORIES order (J)
    by_layer: np.ndarray  #: energy by layer (J)
    lat: np.ndarray  #: latency of each completed inference (s)
    cnt: np.ndarray  #: counters N_CYCLES ... N_FAILS


class RunEnd(NamedTuple):
    """How a run of :func:`_run` ended."""

    status: int  #: DONE, UNTIL, NEVER_BOOTS or STUCK
    t: float  #: time (s)
    v: float  #: voltage (V)
    progress: int  #: committed unit index of the unfinished inference (-1: stuck at boot)
    inferences: int  #: inferences completed


@njit(cache=True, error_model="numpy")
def _add_energies(acc, m):
    """Add a move's (:class:`~aidi.sim.physics.Move` or Merged) harvested/consumed/leaked/clipped J to ``acc``."""
    acc[H] += m.harvested_J
    acc[C] += m.consumed_J
    acc[L] += m.leaked_J
    acc[X] += m.clipped_J


@njit(cache=True, error_model="numpy")
def _run(job, circ, bounds, out):
    """One run of the state machine for a :class:`Job` under a :class:`~aidi.sim.physics.Circuit` and
    :class:`Bounds`; returns a :class:`RunEnd`.

    Fills ``out`` (:class:`Sinks`): acc, lat, cnt, and in cat / by_layer everything but the completed
    units' own energy (see :func:`_add_completed`).
    """
    d, pw, layers = job.durations_s, job.power_W, job.layers
    run_end, per_len, per_end = job.run_end, job.per_len, job.per_end
    boot_s, boot_p, sleep_w = job.boot_s, job.boot_W, job.sleep_W
    eta, v_on, v_off = bounds.eta, bounds.v_on, bounds.v_off
    inferences, period_s, until = bounds.inferences, bounds.period_s, bounds.until_s
    acc, cat, by_layer, lat, cnt = out.acc, out.cat, out.by_layer, out.lat, out.cnt
    i_leak = circ.leakage_A
    n = d.shape[0]
    time_invariant = circ.seg_t.shape[0] == 1 and circ.period == 0.0  # as Segments.time_invariant
    t = 0.0
    v = bounds.v_initial
    progress = 0
    inference = 0
    retry = False
    status = RUNNING
    while True:
        if v < v_on:
            r = physics.advance(v, t, until - t, 0.0, -1.0, v_on, True, circ)
            t += r.elapsed_s
            v = r.v_end
            _add_energies(acc, r)
            acc[OFF] += r.elapsed_s
            if r.reason != physics.HIT_HIGH:
                settles = time_invariant and physics.never_reaches(v, v_on, i_leak, circ.seg_p, circ.seg_g,
                                                                   circ.seg_vs)
                status = NEVER_BOOTS if settles else UNTIL
                break
        cnt[N_CYCLES] += 1
        t_on = t
        r = physics.advance(v, t, min(boot_s, until - t), boot_p / eta, v_off, v_on, False, circ)
        t += r.elapsed_s
        v = r.v_end
        _add_energies(acc, r)
        cat[K_RESTORE] += boot_p * r.elapsed_s
        if r.reason == physics.HIT_LOW:
            acc[ON] += t - t_on
            cnt[N_FAILS] += 1
            if time_invariant and cnt[N_FAILS] >= 2:
                status = STUCK
                progress = -1
                break
            continue
        if r.elapsed_s < boot_s:
            status = UNTIL
            acc[ON] += t - t_on
            break
        browned = False
        known = job.boot_known  # energy_aware: what the MCU knows of V right after the boot
        while inference < inferences:
            release = inference * period_s
            if t < release:
                known = 0.0  # sleeping until the release: V is unknown again
                dur = release - t
                r = physics.advance(v, t, min(dur, until - t), sleep_w / eta, v_off, v_on, False, circ)
                t += r.elapsed_s
                v = r.v_end
                _add_energies(acc, r)
                cat[K_SLEEP] += sleep_w * r.elapsed_s
                if r.reason == physics.HIT_LOW:
                    browned = True
                    break
                if r.elapsed_s < dur:
                    status = UNTIL
                    break
            i0 = progress
            if bounds.aware:
                why, t, v, progress, retry = _dispatch_units(job, circ, bounds, out, t, v, progress, retry, known)
            else:
                if retry:
                    cnt[N_REEXECUTED] += 1
                    retry = False
                m = physics.run_units_merged(v, t, i0, n, d, pw, eta, run_end, per_len, per_end, v_off, v_on, until,
                                             circ)
                _add_energies(acc, m)
                t = m.t_k
                if m.k > 0:
                    v = m.v_k
                    cnt[N_EXECUTED] += m.k
                    cnt[N_FAILS] = 0
                    progress = i0 + m.k
                why = m.reason
            if why == physics.ALL_DONE:
                lat[inference] = t - inference * period_s
                inference += 1
                cnt[N_INFERENCES] += 1
                if inference < inferences:
                    progress = 0
                known = 0.0  # a new inference (a new aidi_infer call) starts with V unknown
                continue
            if bounds.aware:  # _dispatch_units tallied the cut
                if why == physics.HIT_LOW:
                    browned = True
                    if time_invariant and cnt[N_FAILS] >= 2:
                        status = STUCK if retry else STUCK_WAIT
                    break
                status = UNTIL
                break
            i = i0 + m.k
            t += m.el_cut
            v = m.v_cut
            e = pw[i] * m.el_cut
            by_layer[layers[i]] += e
            if m.reason == physics.HIT_LOW:
                cat[K_REEXEC] += e
                cnt[N_LOST] += 1
                retry = True
                cnt[N_FAILS] += 1
                browned = True
                if time_invariant and cnt[N_FAILS] >= 2:
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
    return RunEnd(status, t, v, progress, inference)


@njit(cache=True, error_model="numpy")
def _dispatch_units(job, circ, bounds, out, t, v, progress, retry, known):
    """The current inference's units from ``progress`` under energy_aware dispatch, unit by unit
    (:func:`aidi.sim.physics.dispatch_unit`), as the SimPy model's ``Device._dispatch_units``.  The MCU's
    lower bound on V starts at ``known`` (V: Job.boot_known right after a boot, 0 (unknown) for a new
    inference or after a sleep) and is carried from unit to unit.

    Returns (ALL_DONE, HIT_LOW (a brown-out) or HORIZON (until_s), t, v, progress, retry).
    """
    d, pw, layers, v_start, costs, drops = job.durations_s, job.power_W, job.layers, job.v_start, job.costs, job.drops
    acc, cat, by_layer, cnt = out.acc, out.cat, out.by_layer, out.cnt
    eta, v_off, until = bounds.eta, bounds.v_off, bounds.until_s
    n = d.shape[0]
    buf = np.empty(physics.N_DISPATCH_OUT)
    while True:
        i = progress
        if retry:
            cnt[N_REEXECUTED] += 1
            retry = False
        phase, why, waited, measured = physics.dispatch_unit(v, t, until, d[i], pw[i], v_start[i], known, drops[i],
                                                             costs, eta, v_off, circ, buf)
        known = buf[12]
        if waited:
            cnt[N_WAITS] += 1
        if measured:
            cnt[N_MEASURES] += 1
        acc[H] += buf[8]; acc[C] += buf[9]; acc[L] += buf[10]; acc[X] += buf[11]
        for ph in range(phase + 1):
            if (not waited and (ph == physics.PH_WAIT or ph == physics.PH_WAKE)) or (
                    not measured and ph == physics.PH_MEASURE):
                continue
            el = buf[ph]
            t += el
            v = buf[4 + ph]
            if ph < physics.PH_UNIT:
                cat[K_WAIT] += (costs[1] if ph == physics.PH_MEASURE else costs[2] if ph == physics.PH_WAIT
                                else costs[4]) * el
                if ph == physics.PH_WAIT:
                    acc[WAIT] += el
                if ph == phase:  # a brown-out or until_s before the unit
                    if why == physics.HIT_LOW:
                        cnt[N_FAILS] += 1
                    return why, t, v, progress, retry
            elif why == physics.ALL_DONE:
                cnt[N_EXECUTED] += 1
                cnt[N_FAILS] = 0
                progress = i + 1
                if progress == n:
                    return why, t, v, progress, retry
            else:
                e = pw[i] * el
                by_layer[layers[i]] += e
                if why == physics.HIT_LOW:
                    cat[K_REEXEC] += e
                    cnt[N_LOST] += 1
                    cnt[N_FAILS] += 1
                    retry = True
                else:
                    cat[K_UNFIN] += e
                return why, t, v, progress, retry


#: most runs in a repeating pattern the oracle merges (see physics.run_units_merged)
MAX_PATTERN = 4


@njit(cache=True, error_model="numpy")
def _prepare(d, energy, layers, pw, run_end, per_len, per_end, tot_cat, tot_layer, starts, first):
    """What the oracle needs of one workload whatever the power configuration, in one pass over the units.

    pw = E_i / d_i; run_end[i] = end (exclusive) of the run of identical units (same d and pw)
    containing i; at the start i of a run, per_len[i] / per_end[i] = the units in the shortest
    pattern of 2..MAX_PATTERN runs repeated at least 4 times from i, and the end of its whole
    repeats (per_len 0 elsewhere); tot_cat and tot_layer = one inference's energy by unit category
    and by layer; first[:k] = the first unit of each distinct (energy, duration) pair, in unit
    order (past 64 kinds, every unit).  Returns k.
    """
    n = d.shape[0]
    n_cat = energy.shape[1]
    n_runs = 0
    k = 0
    ku = np.empty(64)  # energy of each distinct kind
    kd = np.empty(64)  # and its duration
    kind = -1  # the kind the previous unit was
    many = False
    cat_sum = np.zeros(n_cat)
    layer_sum = 0.0  # of the current stretch of one layer
    for i in range(n):
        u = 0.0
        for c in range(n_cat):
            u += energy[i, c]
            cat_sum[c] += energy[i, c]
        if i > 0 and layers[i] != layers[i - 1]:
            tot_layer[layers[i - 1]] += layer_sum
            layer_sum = 0.0
        layer_sum += u
        pw[i] = u / d[i]
        if i == 0 or d[i] != d[i - 1] or pw[i] != pw[i - 1]:
            if n_runs > 0:
                run_end[starts[n_runs - 1]:i] = i
            starts[n_runs] = i
            n_runs += 1
        # distinct kinds of unit, for the non-progress check
        if many or (kind >= 0 and ku[kind] == u and kd[kind] == d[i]):
            continue
        kind = -1
        for x in range(k):
            if ku[x] == u and kd[x] == d[i]:
                kind = x
                break
        if kind < 0:
            if k == 64:
                many = True
                continue
            first[k] = i
            ku[k] = u
            kd[k] = d[i]
            kind = k
            k += 1
    run_end[starts[n_runs - 1]:n] = n
    tot_layer[layers[n - 1]] += layer_sum
    tot_cat[:] += cat_sum
    if many:
        for j in range(n):
            first[j] = j
        k = n
    # repeating patterns of 2..MAX_PATTERN runs, found on the sequence of runs
    per_len[:] = 0
    same = np.empty(n_runs, dtype=np.int64)
    for p in range(2, MAX_PATTERN + 1):
        nxt = 0  # same[r] = how many runs from r on equal (duration, power, length) the run p before them
        for r in range(n_runs - 1, -1, -1):
            if r >= p:
                a, b = starts[r], starts[r - p]
                if run_end[a] - a == run_end[b] - b and d[a] == d[b] and pw[a] == pw[b]:
                    nxt += 1
                else:
                    nxt = 0
            else:
                nxt = 0
            same[r] = nxt
        for r in range(n_runs - p):
            i = starts[r]
            reps = (p + same[r + p]) // p
            if per_len[i] == 0 and reps >= 4:
                per_len[i] = starts[r + p] - i
                last = r + reps * p
                per_end[i] = starts[last] if last < n_runs else n
    return k


@njit(cache=True, error_model="numpy")
def _compile(off, d, energy, layers):
    """Per-workload static arrays of a population (see :func:`_prepare`)."""
    nw = off.shape[0] - 1
    n_all = d.shape[0]
    top = 0
    for i in range(n_all):
        top = max(top, layers[i])
    pw = np.empty(n_all)
    run_end = np.empty(n_all, dtype=np.int64)
    per_len = np.empty(n_all, dtype=np.int64)
    per_end = np.empty(n_all, dtype=np.int64)
    tot_cat = np.zeros((nw, energy.shape[1]))
    tot_layer = np.zeros((nw, top + 1))
    starts = np.empty(n_all, dtype=np.int64)
    first = np.empty(n_all, dtype=np.int64)
    pair_off = np.zeros(nw + 1, dtype=np.int64)
    for w in range(nw):
        a, b = off[w], off[w + 1]
        k = _prepare(d[a:b], energy[a:b], layers[a:b], pw[a:b], run_end[a:b], per_len[a:b], per_end[a:b], tot_cat[w],
                     tot_layer[w], starts[a:b], first[pair_off[w]:])
        pair_off[w + 1] = pair_off[w] + k
    return pw, run_end, per_len, per_end, tot_cat, tot_layer, pair_off, first[:pair_off[nw]].copy()


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
def _evaluate(off, d, energy, layers, boot, pw, run_end, per_len, per_end, tot_cat, tot_layer, pair_off, first, eta,
              cap, v_on, v_off, v_max, i_leak, v0, seg_t, seg_p, seg_g, seg_vs, period, inferences, period_s, until,
              aware, margin):
    """Every workload of a compiled population under one power configuration, in one call.

    Returns (ints, floats, by_layer, latencies); the columns of ints and floats are named by
    INT_COLS and FLOAT_COLS.
    """
    nw = off.shape[0] - 1
    e_cap = physics.e_cycle(cap, v_on, v_off)
    p_src = physics.source_max_power(seg_p, seg_g, seg_vs, v_off, v_on)
    circ = physics.Circuit(cap, i_leak, v_max, seg_t, seg_p, seg_g, seg_vs, period)
    bounds = Bounds(eta, v_on, v_off, v0, inferences, period_s, until, aware)
    floor = source_floor(seg_p, seg_g, seg_vs)  # energy_aware's boot seed: where the source may draw
    ints = np.zeros((nw, 3 + N_COUNTERS), dtype=np.int64)
    floats = np.zeros((nw, 2 + N_ACC + N_CAT))
    by_layer = np.zeros(tot_layer.shape)
    lat = np.full((nw, inferences), np.nan)
    for w in range(nw):
        a, b = off[w], off[w + 1]
        boot_s, boot_j, sleep_w = boot[w, 0], boot[w, 1], boot[w, 2]
        # over the distinct units only: the worst unit is the first of its kind, the answer is the same
        bad = progress_violation(energy[a:b], d[a:b], first[pair_off[w]:pair_off[w + 1]], boot_j, boot_s, eta,
                                 e_cap, p_src)
        ints[w, 1] = bad
        if bad != -1:
            ints[w, 0] = NON_PROGRESS
            continue
        costs = boot[w, 3:8]
        if aware:
            v_start = start_thresholds(energy[a:b], d[a:b], costs, eta, cap, v_off, v_max, i_leak, margin)
            bad = np.argmax(v_start)
            if v_start[bad] > v_on:
                ints[w, 0] = NO_START
                ints[w, 1] = bad
                continue
            drops = known_drops(energy[a:b], d[a:b], costs, eta, cap, v_max, i_leak, margin)
            seed = boot_known(boot_j, boot_s, eta, cap, v_on, v_max, i_leak, margin, floor)
        else:
            v_start = np.empty(0)
            drops = np.empty(0)
            seed = 0.0
        cat = floats[w, 2 + N_ACC:]
        job = Job(d[a:b], pw[a:b], layers[a:b], run_end[a:b], per_len[a:b], per_end[a:b], boot_s, boot_j / boot_s,
                  sleep_w, v_start, costs, drops, seed)
        end = _run(job, circ, bounds, Sinks(floats[w, 2:2 + N_ACC], cat, by_layer[w], lat[w], ints[w, 3:]))
        if end.status != STUCK and end.status != STUCK_WAIT:
            # committed units of the unfinished inference
            partial = end.progress if end.inferences < inferences else 0
            _add_completed(energy[a:b], layers[a:b], end.inferences, partial, tot_cat[w], tot_layer[w], cat,
                           by_layer[w])
        ints[w, 0] = end.status
        ints[w, 2] = end.progress
        floats[w, 0] = end.t
        floats[w, 1] = end.v
    return ints, floats, by_layer, lat


#: columns of _evaluate's outputs
INT_COLS = ("status", "bad_unit", "progress") + COUNTERS
FLOAT_COLS = ("t", "v") + ACCUMULATORS + CATEGORIES


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
        if st == STUCK_WAIT:
            return NonProgressError(stuck_wait(work.names[progress]))
        if st == NO_START:
            v_start = start_thresholds(work.energy_J, work.durations_s, work.dispatch_costs,
                                       self.power.converter_efficiency, self.power.capacitor_F, self.power.v_off,
                                       self.power.v_max, self.power.leakage_A, self.sim.dispatch_margin)
            return NonProgressError(start_message(work, self.power, v_start, bad))
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
                      units_lost=i["units_lost"], inferences_completed=i["inferences_completed"],
                      wait_time=f["wait_time"], threshold_waits=i["threshold_waits"],
                      measurements=i["measurements"])
        tally.by_category = {c: f[c] for c in CATEGORIES}
        bl = self.by_layer[w].tolist()
        tally.by_layer = {k: bl[k] for k in np.unique(self.works[w].layers).tolist() if bl[k] != 0.0}
        tally.latencies = [(k, x) for k, x in enumerate(self.lat[w].tolist()) if x == x]
        st = i["status"]
        return result_dict(tally, self.power, f["v"], f["t"], st == DONE, _REASONS.get(st, ""), "oracle",
                           self.works[w], self.sim)


class Population:
    """Workloads compiled once for the oracle: evaluate them under many power configurations.

    Everything that does not depend on the capacitor, thresholds or harvester (unit powers, runs
    and repeating patterns of units, per-layer totals, the distinct units for the non-progress
    check) is computed here, once; each power configuration then costs one compiled call for
    all the workloads (:meth:`evaluate`).
    """

    def __init__(self, works: Sequence[Workload]):
        if not works:
            raise ValueError("a population needs at least one workload")
        self.works = list(works)
        self.off = np.zeros(len(works) + 1, dtype=np.int64)
        np.cumsum([w.durations_s.shape[0] for w in works], out=self.off[1:])
        self.d = np.concatenate([w.durations_s for w in works])
        self.energy = np.concatenate([w.energy_J for w in works])
        self.layers = np.concatenate([w.layers for w in works]).astype(np.int64, copy=False)
        self.boot = np.array([(w.boot_s, w.boot_J, w.sleep_W, w.measure_s, w.measure_W, w.wait_W, w.wake_s, w.wake_W)
                              for w in works])  # columns 3: in Workload.dispatch_costs order
        self.static = _compile(self.off, self.d, self.energy, self.layers)

    def __len__(self) -> int:
        return len(self.works)

    def evaluate(self, power: PowerConfig, seg: Segments, sim: SimConfig) -> "Batch":
        out = _evaluate(self.off, self.d, self.energy, self.layers, self.boot, *self.static,
                        power.converter_efficiency, power.capacitor_F, power.v_on, power.v_off, power.v_max,
                        power.leakage_A, power.v_initial, seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs, seg.period,
                        sim.inferences, sim.period_s, sim.until_s, sim.energy_aware, sim.dispatch_margin)
        return Batch(self.works, power, seg, sim, out)


def simulate_batch(works: Sequence[Workload], power: PowerConfig, seg: Segments, sim: SimConfig) -> Batch:
    """Run the oracle on many workloads under one power configuration (compiles a :class:`Population`)."""
    return Population(works).evaluate(power, seg, sim)


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig) -> dict:
    """Run the oracle; returns the same dict as :func:`aidi.sim.des.simulate`."""
    return simulate_batch([work], power, seg, sim).result(0)
