"""The fast oracle: the SimPy model's semantics as one compiled numba loop.

Same state machine as :mod:`aidi.sim.des` (charge to V_on, boot, execute units,
brown-out loses the running unit, periodic releases with sleep, until_s bound),
same physics (:func:`aidi.sim.capacitor.advance`), no SimPy and no Python per event.
Where the SimPy model steps unit by unit, the oracle moves the capacitor over a
whole run of identical units at once (:func:`aidi.sim.stepping.run_units_merged`)
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

from . import frontend, stepping
from .capacitor import (ALL_DONE, HIT_HIGH, HIT_LOW, Circuit, Limits, advance, circuit, e_cycle, limits, never_reaches,
                        source_max_power)
from .config import PowerConfig, SimConfig
from .dispatch import PH_UNIT, PhaseCosts, make_plan, plan_of, source_floor, start_message, unstartable
from .harvesters import Segments
from .stepping import NO_TRACE, Units
from .workload import (CATEGORIES, STUCK_BOOT, NonProgressError, RunRecord, Tally, Workload, progress_message,
                       progress_violation, stuck_unit, stuck_wait)

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


class RunSpec(NamedTuple):
    """The run's start and its inferences: everything of a run but the circuit, the limits, the units and the plan."""

    v_initial: float  #: voltage at t = 0 (V)
    inferences: int  #: inferences to run
    period_s: float  #: release period of the inferences (s); 0: back to back


class Sinks(NamedTuple):
    """Where a run tallies (arrays filled in place, views into :func:`_evaluate`'s outputs)."""

    acc: np.ndarray  #: slots H, C, L, X (J), ON, OFF, WAIT (s)
    cat: np.ndarray  #: energy by category, in CATEGORIES order (J)
    by_layer: np.ndarray  #: energy by layer (J)
    lat: np.ndarray  #: latency of each completed inference (s)
    cnt: np.ndarray  #: counters N_CYCLES ... N_MEASURES


class RunEnd(NamedTuple):
    """How a run of :func:`_run` ended."""

    status: int  #: DONE, UNTIL, NEVER_BOOTS, STUCK or STUCK_WAIT
    t: float  #: time (s)
    v: float  #: voltage (V)
    progress: int  #: committed unit index of the unfinished inference (-1: stuck at boot)
    inferences: int  #: inferences completed


@njit(cache=True, error_model="numpy")
def _add_energies(acc, m):
    """Add a move's (:class:`~aidi.sim.capacitor.Move` or a Stretch) harvested/consumed/leaked/clipped J to ``acc``."""
    acc[H] += m.harvested_J
    acc[C] += m.consumed_J
    acc[L] += m.leaked_J
    acc[X] += m.clipped_J


@njit(cache=True, error_model="numpy")
def _run(units, plan, lim, spec, circ, out):
    """One run of the state machine: power cycles (:func:`aidi.sim.stepping.cycle`) and, after a sleep or a
    completed inference, stretches of units (:func:`aidi.sim.stepping.stretch`), merged where they may be.

    ``units`` (:class:`~aidi.sim.stepping.Units`), ``plan`` (:class:`~aidi.sim.dispatch.DispatchPlan`), ``lim``
    (:class:`~aidi.sim.capacitor.Limits`), ``spec`` (:class:`RunSpec`), ``circ``
    (:class:`~aidi.sim.capacitor.Circuit`).  Fills ``out`` (:class:`Sinks`): acc, lat, cnt, and in cat /
    by_layer everything but the completed units' own energy (see :func:`_add_completed`).  Returns a
    :class:`RunEnd`.
    """
    pw, layers = units.power_W, units.layers
    boot_s, boot_w, sleep_w = units.boot_s, units.boot_W, units.sleep_W
    eta, v_on, v_off, until = lim.eta, lim.v_on, lim.v_off, lim.until_s
    inferences, period_s = spec.inferences, spec.period_s
    acc, cat, by_layer, lat, cnt = out.acc, out.cat, out.by_layer, out.lat, out.cnt
    # as Segments.time_invariant; with a threshold-check interval a run also depends on the time modulo the interval
    time_invariant = circ.seg_t.shape[0] == 1 and circ.period == 0.0 and circ.check_s == 0.0
    t = 0.0
    v = spec.v_initial
    progress = 0
    inference = 0
    retry = False
    status = RUNNING
    while True:
        cyc = stepping.cycle(v, t, inference * period_s, progress, units, plan, lim, circ, NO_TRACE)
        if v < v_on:
            r = cyc.charge
            t += r.elapsed_s
            v = r.v_end
            _add_energies(acc, r)
            acc[OFF] += r.elapsed_s
            if r.reason != HIT_HIGH:
                settles = time_invariant and never_reaches(v, v_on, circ.leakage_A, circ.seg_p, circ.seg_g,
                                                           circ.seg_vs)
                status = NEVER_BOOTS if settles else UNTIL
                break
        cnt[N_CYCLES] += 1
        t_on = t
        r = cyc.boot
        t += r.elapsed_s
        v = r.v_end
        _add_energies(acc, r)
        cat[K_RESTORE] += boot_w * r.elapsed_s
        if r.reason == HIT_LOW:
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
        st = cyc.units
        started = cyc.started  # st is this inference's stretch from the boot's known bound
        while inference < inferences:
            release = inference * period_s
            if t < release:
                dur = release - t
                r = advance(v, t, min(dur, until - t), sleep_w / eta, v_off, v_on, False, circ)
                t += r.elapsed_s
                v = r.v_end
                _add_energies(acc, r)
                cat[K_SLEEP] += sleep_w * r.elapsed_s
                if r.reason == HIT_LOW:
                    browned = True
                    break
                if r.elapsed_s < dur:
                    status = UNTIL
                    break
            if not started:  # a new inference, or after a sleep: V is unknown (energy_aware)
                st = stepping.stretch(v, t, progress, 0.0, units, plan, lim, circ, NO_TRACE)
            started = False
            i0 = progress
            if retry:
                cnt[N_REEXECUTED] += 1
                retry = False
            _add_energies(acc, st)
            cat[K_WAIT] += st.wait_J
            acc[WAIT] += st.wait_s
            cnt[N_MEASURES] += st.measurements
            cnt[N_WAITS] += st.waits
            if st.k > 0:
                cnt[N_EXECUTED] += st.k
                cnt[N_FAILS] = 0
                progress = i0 + st.k
            t = st.t
            v = st.v
            if st.why == ALL_DONE:
                lat[inference] = t - inference * period_s
                inference += 1
                cnt[N_INFERENCES] += 1
                if inference < inferences:
                    progress = 0
                continue
            if st.phase == PH_UNIT:
                i = progress
                e = pw[i] * st.cut_s
                by_layer[layers[i]] += e
                if st.why == HIT_LOW:
                    cat[K_REEXEC] += e
                    cnt[N_LOST] += 1
                    retry = True
                else:
                    cat[K_UNFIN] += e
            if st.why == HIT_LOW:
                cnt[N_FAILS] += 1
                browned = True
                if time_invariant and cnt[N_FAILS] >= 2:
                    status = STUCK if st.phase == PH_UNIT else STUCK_WAIT
                break
            status = UNTIL
            break
        acc[ON] += t - t_on
        if status != RUNNING:
            break
        if not browned:
            status = DONE
            break
    return RunEnd(status, t, v, progress, inference)


#: most runs in a repeating pattern the oracle merges (see stepping.run_units_merged)
MAX_PATTERN = 4


@njit(cache=True, error_model="numpy")
def _prepare(d, energy, layers, pw, run_end, per_len, per_end, tot_cat, tot_layer, first):
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
    starts = np.empty(n, dtype=np.int64)  # the first unit of each run
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


class Compiled(NamedTuple):
    """A population of workloads compiled once (:func:`_compile`): the units of all of them, back to back."""

    off: np.ndarray  #: workload w's units are off[w] .. off[w + 1] - 1
    durations_s: np.ndarray  #: unit durations (s)
    energy_J: np.ndarray  #: unit energy by WORK_CATEGORIES (J at the MCU), one row per unit
    layers: np.ndarray  #: unit layer indices
    boot: np.ndarray  #: per workload: boot_s, boot_J, sleep_W, then its PhaseCosts fields
    power_W: np.ndarray  #: unit MCU power E_i / d_i (W)
    run_end: np.ndarray  #: see :class:`~aidi.sim.stepping.Units`
    per_len: np.ndarray
    per_end: np.ndarray
    tot_cat: np.ndarray  #: per workload: one inference's energy by unit category (J)
    tot_layer: np.ndarray  #: per workload: one inference's energy by layer (J)
    pair_off: np.ndarray  #: workload w's distinct units are first[pair_off[w]:pair_off[w + 1]]
    first: np.ndarray  #: the first unit of each distinct (energy, duration) pair (for the non-progress check)


class Config(NamedTuple):
    """One power configuration and run, as :func:`_evaluate` takes it."""

    circ: Circuit  #: the capacitor and its source
    lim: Limits  #: converter, thresholds, until_s
    spec: RunSpec  #: v_initial, inferences, their period
    aware: bool  #: energy_aware dispatch (else greedy)
    margin: float  #: the dispatch margin (fraction)


@njit(cache=True, error_model="numpy")
def _compile(off, d, energy, layers, boot):
    """A :class:`Compiled` population: per-workload static arrays (see :func:`_prepare`)."""
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
    first = np.empty(n_all, dtype=np.int64)
    pair_off = np.zeros(nw + 1, dtype=np.int64)
    for w in range(nw):
        a, b = off[w], off[w + 1]
        k = _prepare(d[a:b], energy[a:b], layers[a:b], pw[a:b], run_end[a:b], per_len[a:b], per_end[a:b], tot_cat[w],
                     tot_layer[w], first[pair_off[w]:])
        pair_off[w + 1] = pair_off[w] + k
    return Compiled(off, d, energy, layers, boot, pw, run_end, per_len, per_end, tot_cat, tot_layer, pair_off,
                    first[:pair_off[nw]].copy())


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
def _evaluate(pop, cfg):
    """Every workload of a :class:`Compiled` population under one :class:`Config`, in one call.

    Returns (ints, floats, by_layer, latencies); the columns of ints and floats are named by
    INT_COLS and FLOAT_COLS.
    """
    off, d, energy, layers, boot = pop.off, pop.durations_s, pop.energy_J, pop.layers, pop.boot
    circ, lim, spec = cfg.circ, cfg.lim, cfg.spec
    nw = off.shape[0] - 1
    e_cap = e_cycle(circ.capacitor_F, lim.v_on, lim.v_off)
    p_src = source_max_power(circ.seg_p, circ.seg_g, circ.seg_vs, lim.v_off, lim.v_on)
    floor = source_floor(circ.seg_p, circ.seg_g, circ.seg_vs)  # energy_aware's boot seed: where the source may draw
    ints = np.zeros((nw, 3 + N_COUNTERS), dtype=np.int64)
    floats = np.zeros((nw, 2 + N_ACC + N_CAT))
    by_layer = np.zeros(pop.tot_layer.shape)
    lat = np.full((nw, spec.inferences), np.nan)
    for w in range(nw):
        a, b = off[w], off[w + 1]
        boot_s, boot_j, sleep_w = boot[w, 0], boot[w, 1], boot[w, 2]
        # over the distinct units only: the worst unit is the first of its kind, the answer is the same
        bad = progress_violation(energy[a:b], d[a:b], pop.first[pop.pair_off[w]:pop.pair_off[w + 1]], boot_j, boot_s,
                                 lim.eta, e_cap, p_src)
        ints[w, 1] = bad
        if bad != -1:
            ints[w, 0] = NON_PROGRESS
            continue
        costs = PhaseCosts(boot[w, 3], boot[w, 4], boot[w, 5], boot[w, 6], boot[w, 7])
        plan = plan_of(cfg.aware, energy[a:b], d[a:b], boot_j, boot_s, costs, circ, lim, cfg.margin, floor)
        if cfg.aware:
            bad = np.argmax(plan.v_start)
            if plan.v_start[bad] > lim.v_on:
                ints[w, 0] = NO_START
                ints[w, 1] = bad
                continue
        cat = floats[w, 2 + N_ACC:]
        units = Units(d[a:b], pop.power_W[a:b], layers[a:b], pop.run_end[a:b], pop.per_len[a:b], pop.per_end[a:b],
                      boot_s, boot_j / boot_s, sleep_w)
        end = _run(units, plan, lim, spec, circ, Sinks(floats[w, 2:2 + N_ACC], cat, by_layer[w], lat[w], ints[w, 3:]))
        if end.status != STUCK and end.status != STUCK_WAIT:
            # committed units of the unfinished inference
            partial = end.progress if end.inferences < spec.inferences else 0
            _add_completed(energy[a:b], layers[a:b], end.inferences, partial, pop.tot_cat[w], pop.tot_layer[w], cat,
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
        """Energy consumed (J), the board's sleep current included (as :meth:`RunRecord.as_json` counts it)."""
        return self._f("consumed") + self._f("leaked") * self.power.board_share

    def error(self, w: int) -> NonProgressError | None:
        """The NonProgressError workload w raises alone, or None."""
        st, bad, progress = self.ints[w, :3].tolist()
        if st < STUCK:  # RUNNING, DONE, UNTIL, NEVER_BOOTS: no error
            return None
        work = self.works[w]
        if st == NON_PROGRESS:
            return NonProgressError(progress_message(work, self.power, self.seg, bad))
        if st == STUCK:
            return NonProgressError(STUCK_BOOT if progress < 0 else stuck_unit(work.names[progress]))
        if st == STUCK_WAIT:
            return NonProgressError(stuck_wait(work.names[progress]))
        plan = make_plan(work, self.power, self.sim.dispatch_margin)  # NO_START
        return NonProgressError(start_message(work, self.power, plan.v_start, unstartable(plan, self.power.v_on)))

    def result(self, w: int) -> dict:
        """The ``aidi run --json`` dict of workload w; raises its NonProgressError if it has one."""
        return self.record(w).as_json()

    def record(self, w: int) -> RunRecord:
        """The :class:`~aidi.sim.workload.RunRecord` of workload w; raises its NonProgressError if it has one."""
        exc = self.error(w)
        if exc is not None:
            raise exc
        i = self.ints[w].tolist()
        f = self.floats[w].tolist()
        tally = Tally(harvested=f[2 + H], consumed=f[2 + C], leaked=f[2 + L], clipped=f[2 + X], on_time=f[2 + ON],
                      off_time=f[2 + OFF], power_cycles=i[3 + N_CYCLES], units_executed=i[3 + N_EXECUTED],
                      units_reexecuted=i[3 + N_REEXECUTED], units_lost=i[3 + N_LOST],
                      inferences_completed=i[3 + N_INFERENCES], wait_time=f[2 + WAIT], threshold_waits=i[3 + N_WAITS],
                      measurements=i[3 + N_MEASURES], by_category=dict(zip(CATEGORIES, f[2 + N_ACC:])),
                      # workload w's row is 0 outside its own layers
                      by_layer={k: x for k, x in enumerate(self.by_layer[w].tolist()) if x != 0.0},
                      latencies=[(k, x) for k, x in enumerate(self.lat[w].tolist()) if x == x])
        st = i[0]
        rec = RunRecord.of(tally, self.power, f[1], f[0], st == DONE, _REASONS.get(st, ""), "oracle", self.works[w],
                           self.sim)
        return rec if self.seg.raw_p is None else frontend.with_input_loss(rec, self.seg)


@njit(cache=True, error_model="numpy")
def _compile_and_evaluate(off, d, energy, layers, boot, cfg):
    """:func:`_evaluate` of the :func:`_compile` of these arrays, in one call (one workload or one fresh batch: the
    compiled arrays never cross into Python)."""
    return _evaluate(_compile(off, d, energy, layers, boot), cfg)


def _typed(x, dtype) -> np.ndarray:
    """``x`` as a C-contiguous, aligned, writeable array of ``dtype`` (itself when it is one already): the one
    array type the compiled entry points are called with (see :func:`_call`)."""
    if type(x) is np.ndarray and x.dtype == dtype and x.flags.num & _CAW == _CAW:
        return x  # np.require would say the same, 10 times slower
    return np.require(x, dtype, "CAW")


#: numpy's flag bits C_CONTIGUOUS | ALIGNED | WRITEABLE (numpy/ndarraytypes.h NPY_ARRAY_*)
_CAW = 0x0001 | 0x0100 | 0x0400


def _stacked(works: Sequence[Workload]) -> tuple:
    """(off, durations, energy, layers, boot) of workloads back to back, as :func:`_compile` takes them (one
    workload's own arrays when they already have the types the compiled code takes: no copy)."""
    off = np.zeros(len(works) + 1, dtype=np.int64)
    if len(works) == 1:
        w = works[0]
        off[1] = w.durations_s.shape[0]
        d = _typed(w.durations_s, np.float64)
        energy = _typed(w.energy_J, np.float64)
        layers = _typed(w.layers, np.int64)
    else:
        np.cumsum([w.durations_s.shape[0] for w in works], out=off[1:])
        d = np.concatenate([w.durations_s for w in works]).astype(np.float64, copy=False)
        cols = max(w.energy_J.shape[1] for w in works)  # with or without the board's column
        energy = np.concatenate([w.energy_J if w.energy_J.shape[1] == cols else
                                 np.pad(w.energy_J, ((0, 0), (0, cols - w.energy_J.shape[1]))) for w in works]
                                ).astype(np.float64, copy=False)
        layers = np.concatenate([w.layers for w in works]).astype(np.int64, copy=False)
    boot = np.array([(w.boot_s, w.boot_J, w.sleep_W, w.measure_s, w.measure_W, w.wait_W, w.wake_s, w.wake_W)
                     for w in works], dtype=np.float64)  # columns 3: in Workload.dispatch_costs order
    return off, d, energy, layers, boot


def _config(power: PowerConfig, seg: Segments, sim: SimConfig) -> Config:
    """The :class:`Config` of a power configuration and run, every field of one type whatever the caller's
    (floats as Python floats, arrays as :func:`_typed`; the records' fields are all floats or arrays but
    RunSpec.inferences and Config.aware): the record type :func:`_call` compiled for."""
    circ = Circuit(*[_typed(x, np.float64) if isinstance(x, np.ndarray) else float(x) for x in circuit(power, seg)])
    lim = Limits(*[float(x) for x in limits(power, sim.until_s)])
    return Config(circ, lim, RunSpec(float(power.v_initial), int(sim.inferences), float(sim.period_s)),
                  bool(sim.energy_aware), float(sim.dispatch_margin))


#: the compiled entry points of :func:`_call`, by function
_ENTRIES: dict = {}


def _call(fn, *args):
    """``fn(*args)`` for :func:`_evaluate` and :func:`_compile_and_evaluate`, through its compiled entry point
    (:func:`aidi.sim.stepping.entry_point`) without numba's typing of the records at every call (about as long
    as a small network's run): their arguments always have the same types (:func:`_stacked`, :func:`_config`,
    :func:`_compile`), so one entry point per function serves every call."""
    entry = _ENTRIES.get(fn)
    if entry is None:
        entry = _ENTRIES[fn] = stepping.entry_point(fn, *args)
    return entry(*args)


class Population:
    """Workloads compiled once for the oracle: evaluate them under many power configurations.

    Everything that does not depend on the capacitor, thresholds or harvester (unit powers, runs
    and repeating patterns of units, per-layer totals, the distinct units for the non-progress
    check) is computed here, once; each power configuration then costs one compiled call for
    all the workloads (:meth:`evaluate`).
    """

    def __init__(self, works: Sequence[Workload], drawn: bool = False):
        self._drawn = drawn  # the workloads are already as a front end draws them
        self._fronted: dict = {}
        if not works:
            raise ValueError("a population needs at least one workload")
        self.works = list(works)
        self.off, self.d, self.energy, self.layers, self.boot = _stacked(self.works)
        self.compiled = _compile(self.off, self.d, self.energy, self.layers, self.boot)

    def __len__(self) -> int:
        return len(self.works)

    def evaluate(self, power: PowerConfig, seg: Segments, sim: SimConfig) -> "Batch":
        """Every workload under one power configuration; under a power front end, the workloads as its buck
        draws them (:func:`aidi.sim.frontend.loads`, compiled once per front end and output voltage)."""
        if power.frontend and not self._drawn:
            key = (power.frontend, power.converter_efficiency, power.load_v_nominal_V)
            pop = self._fronted.get(key)
            if pop is None:
                pop = self._fronted[key] = Population([frontend.loads(w, power) for w in self.works], drawn=True)
            return pop.evaluate(power, seg, sim)
        return Batch(self.works, power, seg, sim, _call(_evaluate, self.compiled, _config(power, seg, sim)))


def simulate_batch(works: Sequence[Workload], power: PowerConfig, seg: Segments, sim: SimConfig) -> Batch:
    """Run the oracle on many workloads under one power configuration (what a :class:`Population` of them gives,
    compiled and evaluated in one call)."""
    if not works:
        raise ValueError("a population needs at least one workload")
    works = [frontend.loads(w, power) for w in works] if power.frontend else list(works)  # as a front end draws them
    return Batch(works, power, seg, sim, _call(_compile_and_evaluate, *_stacked(works), _config(power, seg, sim)))


def run(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig) -> RunRecord:
    """Run the oracle; returns its :class:`~aidi.sim.workload.RunRecord` (raises NonProgressError as the SimPy
    model does)."""
    return simulate_batch([work], power, seg, sim).record(0)


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig) -> dict:
    """Run the oracle; returns the same dict as :func:`aidi.sim.des.simulate`."""
    return run(work, power, seg, sim).as_json()
