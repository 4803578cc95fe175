"""Stepping the device through its units: runs of units, merged runs, a power cycle (numba).

Both engines are loops over these functions and records: the SimPy model (:mod:`aidi.sim.des`) asks for a
:class:`Trace` (one row per activity, which it replays as SimPy timeouts), the oracle (:mod:`aidi.sim.oracle`)
asks for none, and then runs of identical units the MCU starts without a measurement are merged into one
capacitor move (:func:`run_units_merged`).

* :func:`stretch`: the units of one inference from a committed index, under the run's
  :class:`~aidi.sim.dispatch.DispatchPlan`, until the inference completes, a brown-out or until_s.
* :func:`cycle`: one power cycle: the charge to V_on (MCU off), the boot, and (if the inference is
  released by then) the stretch that follows.

Times in s, voltages in V, energies in J, powers in W at the MCU unless said otherwise.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from .capacitor import ALL_DONE, HIT_HIGH, HIT_LOW, HORIZON, Move, advance, harvest_segment, plus
from .dispatch import PH_MEASURE, PH_UNIT, PH_WAIT, PH_WAKE, Step, dispatch_unit, known_after


class Units(NamedTuple):
    """One workload as the steppers see it (arrays: one entry per unit; see :func:`aidi.sim.oracle.prepare`)."""

    durations_s: np.ndarray  #: unit durations (s)
    power_W: np.ndarray  #: unit MCU power E_i / d_i (W)
    layers: np.ndarray  #: unit layer indices
    run_end: np.ndarray  #: end (exclusive) of each unit's run of identical units (same duration and power)
    per_len: np.ndarray  #: units in the repeating pattern of runs starting at a unit, 0 if none
    per_end: np.ndarray  #: end of that pattern's whole repeats
    boot_s: float  #: boot (restore) duration (s)
    boot_W: float  #: boot MCU power (W)
    sleep_W: float  #: MCU power while sleeping until a release (W)


class Merged(NamedTuple):
    """What :func:`run_units_merged` returns: the units from i0 executed until a cut or the end."""

    k: int  #: units completed
    t_k: float  #: time at the end of the k-th (s)
    v_k: float  #: voltage then (V)
    el_cut: float  #: when ``reason`` is HIT_LOW or HORIZON, how long unit i0 + k ran more (s)
    v_cut: float  #: and the voltage it left (V)
    reason: int  #: HIT_LOW (brown-out), HORIZON (until_s) or ALL_DONE
    harvested_J: float  #: energy sums over everything returned, the cut unit included (J)
    consumed_J: float
    leaked_J: float
    clipped_J: float


class Trace(NamedTuple):
    """Where :func:`stretch` writes one row per activity (the SimPy model's timeouts); arrays of one length,
    at least 4 rows per unit.  A Trace of length 0 asks for none (and for merged runs)."""

    phase: np.ndarray  #: the activity (dispatch.PH_*: measure, wait, wake or the unit)
    unit: np.ndarray  #: its unit
    elapsed_s: np.ndarray  #: how long it ran (s)
    v_end: np.ndarray  #: the voltage it left (V)


def trace_for(n_units: int) -> Trace:
    """An empty :class:`Trace` for a workload of ``n_units`` units."""
    m = 4 * n_units
    return Trace(np.empty(m, dtype=np.int64), np.empty(m, dtype=np.int64), np.empty(m), np.empty(m))


#: a :class:`Trace` asking for none
NO_TRACE = Trace(np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64), np.empty(0), np.empty(0))


class Stretch(NamedTuple):
    """What :func:`stretch` returns: the units of one inference from ``i0``, to the end or a cut."""

    k: int  #: units completed (committed: i0 .. i0 + k - 1)
    why: int  #: ALL_DONE (the inference completed), HIT_LOW (a brown-out) or HORIZON (until_s)
    phase: int  #: when cut, the activity the cut fell in (dispatch.PH_*; PH_UNIT: unit i0 + k)
    t: float  #: time at the end, the cut activity included (s)
    v: float  #: voltage then (V)
    cut_s: float  #: how long the cut activity ran (s; 0 when not cut)
    harvested_J: float  #: capacitor energy sums over everything, the cut activity included (J)
    consumed_J: float
    leaked_J: float
    clipped_J: float
    wait_J: float  #: MCU energy of the measurements, LPM3 waits and wake-ups, the cut one included (J)
    wait_s: float  #: time in LPM3 waits for thresholds (s)
    measurements: int  #: voltage measurements
    waits: int  #: LPM3 waits
    events: int  #: rows written to the Trace


class Cycle(NamedTuple):
    """What :func:`cycle` returns: one power cycle's charge, boot and units."""

    charge: Move  #: the charge to V_on with the MCU off (a move of 0 s when V was there)
    boot: Move  #: the boot (a move of 0 s when the charge did not reach V_on)
    started: bool  #: the boot completed and the inference was released by then: ``units`` holds its stretch
    units: Stretch  #: the stretch from the committed unit (empty when not started)


@njit(cache=True, error_model="numpy")
def _units_before(now, until, d, m):
    """How many of m back-to-back units of duration d starting at ``now`` finish by until_s (the SimPy
    model's test: a unit starting at t runs whole if until - t >= d), and the clock after them."""
    k = 0
    while k < m and until - now >= d:
        now += d
        k += 1
    return k, now


@njit(cache=True, error_model="numpy")
def run_units_merged(v, t, i0, i_end, units, lim, circ):
    """Units i0 .. i_end - 1 back to back, unmeasured, with runs of identical units and periodic patterns merged.

    ``units.run_end[i]`` is the end (exclusive) of the run of consecutive units with the same duration
    and power as unit i; ``units.power_W[i] / lim.eta`` is unit i's draw from the capacitor.

    * A run of identical units is one move: the capacitor cannot tell m back-to-back units of
      duration d at power p from one activity of m*d at p.  A run costs one :func:`advance` when it
      completes and two more when a brown-out (or until_s) cuts it: one to the start of the unit it
      cuts, one for that unit.
    * A stretch from i of whole repeats of a short pattern of runs (``per_len[i]`` units, up to
      ``per_end[i]``, e.g. four first-channel tiles then four accumulating tiles) is stepped
      pattern by pattern, one move per run, until the capacitor comes back to the same voltage, to
      float resolution, after one pattern; the patterns left then repeat the same trajectory, so
      their time and energy are the last pattern's times their number (never past until_s or a
      change of the source; a pattern that completed cannot brown out when repeated from the same
      state).  A run that would not complete is left to the run-by-run case.

    The clock advances unit by unit, as the SimPy model's does, so that both engines take the same
    decision when until_s falls on the end of a unit.

    ``lim`` is the :class:`~aidi.sim.capacitor.Limits` (eta, v_on, v_off, until_s), ``circ`` the
    :class:`~aidi.sim.capacitor.Circuit`.  Returns a :class:`Merged`: k units completed, ending at time
    ``t_k`` with V = ``v_k``; when ``reason`` is HIT_LOW or HORIZON, unit i0 + k ran ``el_cut`` seconds more
    and left V = ``v_cut``; the energy sums (J) cover everything returned.
    """
    durations, p_mcu, run_end, per_len, per_end = units.durations_s, units.power_W, units.run_end, units.per_len, \
        units.per_end
    eta, v_low, v_on, until = lim.eta, lim.v_off, lim.v_on, lim.until_s
    seg_t, period = circ.seg_t, circ.period
    e_h = 0.0
    e_c = 0.0
    e_l = 0.0
    e_x = 0.0
    now = t
    i = i0
    no_pattern_at = -1  # a pattern stopped here on a run that does not complete: take that run below
    while i < i_end:
        e = min(run_end[i], i_end)
        n_per = per_len[i]
        if n_per > 0 and i != no_pattern_at and (min(per_end[i], i_end) - i) // n_per >= 4:
            reps = (min(per_end[i], i_end) - i) // n_per
            done = 0
            while done < reps:
                # one pattern, run by run; a run that would not complete is left to the general case below
                vv, nn, hh, cc, ll, xx = v, now, e_h, e_c, e_l, e_x
                _k, seg_end = harvest_segment(now, seg_t, period)  # the source is constant until then
                j = i
                p_end = i + n_per
                whole = True
                while j < p_end:
                    ej = min(run_end[j], p_end)
                    d = durations[j]
                    k, tt = _units_before(nn, until, d, ej - j)
                    if k < ej - j:
                        whole = False
                        break
                    r = advance(vv, nn, (ej - j) * d, p_mcu[j] / eta, v_low, v_on, False, circ)
                    if r.reason == HIT_LOW:
                        whole = False
                        break
                    nn = tt
                    vv = r.v_end
                    hh, cc, ll, xx = plus(hh, cc, ll, xx, r)
                    j = ej
                # steady: back to the same voltage, under the same source all along
                steady = whole and abs(vv - v) <= 1e-15 * abs(vv) and nn <= seg_end
                span = nn - now
                dh, dc, dl, dx = hh - e_h, cc - e_c, ll - e_l, xx - e_x
                v, now, e_h, e_c, e_l, e_x = vv, nn, hh, cc, ll, xx  # the runs that completed
                i = j
                if not whole:
                    no_pattern_at = i
                    break
                done += 1
                # the patterns left repeat this one: jump over them (not with a threshold-check interval, under
                # which a pattern may dip below V_off between two checks and another one find it there)
                if steady and done < reps and circ.check_s == 0.0:
                    fit = reps - done
                    room = min(seg_end, until) - now
                    if (fit + 1) * span > room:  # keep a pattern clear of until_s and of the next segment
                        fit = max(int(room / span) - 1, 0)
                    e_h += fit * dh
                    e_c += fit * dc
                    e_l += fit * dl
                    e_x += fit * dx
                    for k in range(i, i + fit * n_per):  # the clock adds unit by unit, as the SimPy model's
                        now += durations[k]
                    i += fit * n_per
                    break
            continue
        d = durations[i]
        p = p_mcu[i] / eta
        # the units of the run that start early enough to finish before until_s (the SimPy model's test,
        # on its clock: a sum unit by unit)
        k, tt = _units_before(now, until, d, e - i)
        if k > 0:
            r = advance(v, now, k * d, p, v_low, v_on, False, circ)
            if r.reason != HIT_LOW:
                now = tt
                v = r.v_end
                e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
                i += k
                if i == e:
                    continue
            else:
                # a brown-out after about j whole units: move to the start of that unit in one step; on the
                # end of a unit to rounding, step every unit like the SimPy model, whose rounding decides
                x = r.elapsed_s / d
                j = min(int(x), k - 1) if abs(x - round(x)) > 1e-9 * x else 0
                if j > 0:
                    r = advance(v, now, j * d, p, v_low, v_on, False, circ)
                    if r.reason != HIT_LOW:
                        v = r.v_end
                        e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
                        now = _units_before(now, until, d, j)[1]
                        i += j
                    # else rounding put the cut in an earlier unit: step from the start of the run
        while i < e:  # unit by unit to the cut (a brown-out or until_s)
            r = advance(v, now, min(d, until - now), p, v_low, v_on, False, circ)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
            if r.reason == HIT_LOW:
                return Merged(i - i0, now, v, r.elapsed_s, r.v_end, HIT_LOW, e_h, e_c, e_l, e_x)
            if r.elapsed_s < d:
                return Merged(i - i0, now, v, r.elapsed_s, r.v_end, HORIZON, e_h, e_c, e_l, e_x)
            now += r.elapsed_s
            v = r.v_end
            i += 1
    return Merged(i_end - i0, now, v, 0.0, v, ALL_DONE, e_h, e_c, e_l, e_x)


@njit(cache=True, error_model="numpy")
def _row(trace, m, phase, i, el, v):
    """Write one Trace row at m (if the trace has rows); returns the next row."""
    if trace.elapsed_s.shape[0] == 0:
        return m
    trace.phase[m] = phase
    trace.unit[m] = i
    trace.elapsed_s[m] = el
    trace.v_end[m] = v
    return m + 1


#: rows of the step memo of :func:`stretch` (a repeating pattern of up to MAX_PATTERN runs has at most 2 x 4 distinct
#: (entering state, unit) pairs) and its columns: 6 keys, then the Step's fields
_MEMO_ROWS, _MEMO_COLS = 8, 22
_NO_STEP = Step(-1, HORIZON, False, False, (0.0, 0.0, 0.0, 0.0), (0.0, 0.0, 0.0, 0.0), 0.0, 0.0, 0.0, 0.0, 0.0)


@njit(cache=True, error_model="numpy")
def _recall(memo, n_memo, v, known, d, p, v_start, drop, room):
    """The completed :class:`~aidi.sim.dispatch.Step` remembered for exactly these inputs, if it is clear of until_s
    (``room``, s, left before it: more than twice its time, so that no phase's horizon binds), else one whose
    phase is -1.  Under a time-invariant source a step depends on its inputs only, not on the time, so the one
    remembered is the one :func:`~aidi.sim.dispatch.dispatch_unit` would return, bit for bit."""
    for r in range(n_memo):
        row = memo[r]
        if (row[0] == v and row[1] == known and row[2] == d and row[3] == p and row[4] == v_start and row[5] == drop
                and room > 2.0 * row[21]):
            return Step(PH_UNIT, ALL_DONE, row[6] != 0.0, row[7] != 0.0, (row[8], row[9], row[10], row[11]),
                        (row[12], row[13], row[14], row[15]), row[16], row[17], row[18], row[19], row[20])
    return _NO_STEP


@njit(cache=True, error_model="numpy")
def _remember(memo, n_memo, s, v, known, d, p, v_start, drop):
    """Keep a completed step for :func:`_recall` (the oldest row goes when the memo is full); returns the rows used."""
    r = n_memo if n_memo < memo.shape[0] else 0
    if n_memo == memo.shape[0]:  # shift out the oldest
        memo[:-1] = memo[1:]
        r = n_memo - 1
    row = memo[r]
    row[0], row[1], row[2], row[3], row[4], row[5] = v, known, d, p, v_start, drop
    row[6], row[7] = 1.0 if s.waited else 0.0, 1.0 if s.measured else 0.0
    for k in range(4):
        row[8 + k] = s.elapsed[k]
        row[12 + k] = s.v_end[k]
    row[16], row[17], row[18], row[19], row[20] = s.harvested_J, s.consumed_J, s.leaked_J, s.clipped_J, s.known
    row[21] = s.elapsed[0] + s.elapsed[1] + s.elapsed[2] + s.elapsed[3]
    return min(n_memo + 1, memo.shape[0])


@njit(cache=True, error_model="numpy")
def stretch(v, t, i0, known, units, plan, lim, circ, trace):
    """The units of one inference from the committed unit ``i0`` (at time ``t``, voltage ``v``), under ``plan``
    (a :class:`~aidi.sim.dispatch.DispatchPlan`), until the inference completes, a brown-out at v_off or
    until_s (``lim``, :class:`~aidi.sim.capacitor.Limits`); ``circ`` the :class:`~aidi.sim.capacitor.Circuit`.

    Under energy_aware the MCU's bound on V starts at ``known`` (V: the plan's boot_known right after a boot,
    0 for a new inference or after a sleep) and is carried from unit to unit
    (:func:`aidi.sim.dispatch.dispatch_unit`).

    With a :class:`Trace` of rows, every unit is its own move and every activity a row (the SimPy model).
    Without, runs the MCU starts unmeasured (greedy: all of them; energy_aware: those whose threshold the
    carried bound covers) are merged (:func:`run_units_merged`).

    Returns a :class:`Stretch`.
    """
    n = units.durations_s.shape[0]
    d, pw = units.durations_s, units.power_W
    eta = lim.eta
    merge = trace.elapsed_s.shape[0] == 0
    # merged stepping under a time-invariant source: a measured unit whose inputs (V, the known bound, the unit's
    # duration, power, threshold and drop) equal those of one stepped before repeats that step exactly
    # (not with a threshold-check interval: a step then depends on the time modulo the interval)
    memo_ok = merge and plan.aware and circ.seg_t.shape[0] == 1 and circ.period == 0.0 and circ.check_s == 0.0
    memo = np.empty((_MEMO_ROWS if memo_ok else 0, _MEMO_COLS))
    n_memo = 0
    e_h = e_c = e_l = e_x = 0.0
    wait_j = wait_s = 0.0
    n_meas = n_wait = 0
    m = 0
    i = i0
    while i < n:
        if merge and (not plan.aware or known >= plan.v_start[i]):
            j = n
            if plan.aware:  # the units the carried bound starts unmeasured
                j = i
                while j < n and known >= plan.v_start[j]:
                    known = known_after(known, plan.drops[j])
                    j += 1
            r = run_units_merged(v, t, i, j, units, lim, circ)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
            t = r.t_k
            v = r.v_k
            i += r.k
            if r.reason != ALL_DONE:
                return Stretch(i - i0, r.reason, PH_UNIT, t + r.el_cut, r.v_cut, r.el_cut, e_h, e_c, e_l, e_x, wait_j,
                               wait_s, n_meas, n_wait, m)
            continue
        if not plan.aware:  # greedy, one move per unit
            r1 = advance(v, t, min(d[i], lim.until_s - t), pw[i] / eta, lim.v_off, lim.v_on, False, circ)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r1)
            m = _row(trace, m, PH_UNIT, i, r1.elapsed_s, r1.v_end)
            t += r1.elapsed_s
            v = r1.v_end
            if r1.reason == HIT_LOW or r1.elapsed_s < d[i]:
                why = HIT_LOW if r1.reason == HIT_LOW else HORIZON
                return Stretch(i - i0, why, PH_UNIT, t, v, r1.elapsed_s, e_h, e_c, e_l, e_x, wait_j, wait_s, n_meas,
                               n_wait, m)
            i += 1
            continue
        s = _recall(memo, n_memo, v, known, d[i], pw[i], plan.v_start[i], plan.drops[i], lim.until_s - t) \
            if memo_ok else _NO_STEP
        if s.phase < 0:
            s = dispatch_unit(v, t, i, d[i], pw[i], known, plan, lim, circ)
            if memo_ok and s.why == ALL_DONE:
                n_memo = _remember(memo, n_memo, s, v, known, d[i], pw[i], plan.v_start[i], plan.drops[i])
        e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, s)
        n_meas += s.measured
        n_wait += s.waited
        costs = plan.costs
        for ph in range(s.phase + 1):
            if (ph == PH_MEASURE and not s.measured) or ((ph == PH_WAIT or ph == PH_WAKE) and not s.waited):
                continue
            el = s.elapsed[ph]
            m = _row(trace, m, ph, i, el, s.v_end[ph])
            t += el
            if ph == PH_MEASURE:
                wait_j += costs.measure_W * el
            elif ph == PH_WAIT:
                wait_j += costs.wait_W * el
                wait_s += el
            elif ph == PH_WAKE:
                wait_j += costs.wake_W * el
        v = s.v_end[s.phase]
        if s.why != ALL_DONE:
            return Stretch(i - i0, s.why, s.phase, t, v, s.elapsed[s.phase], e_h, e_c, e_l, e_x, wait_j, wait_s,
                           n_meas, n_wait, m)
        known = s.known
        i += 1
    return Stretch(i - i0, ALL_DONE, PH_UNIT, t, v, 0.0, e_h, e_c, e_l, e_x, wait_j, wait_s, n_meas, n_wait, m)


@njit(cache=True, error_model="numpy")
def _none(v):
    """A :class:`Stretch` that did not happen (at voltage v)."""
    return Stretch(0, HORIZON, PH_UNIT, 0.0, v, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0, 0, 0)


@njit(cache=True, error_model="numpy")
def cycle(v, t, release, i0, units, plan, lim, circ, trace):
    """One power cycle from (t, v): the charge to V_on with the MCU off (if V is below it), the boot (drawing
    ``units.boot_W`` for ``units.boot_s``), and, if the boot completes at or after ``release`` (s, the
    inference's release time), the :func:`stretch` from the committed unit ``i0`` with the plan's boot bound.
    Arguments as :func:`stretch`.  Returns a :class:`Cycle`; a part that does not happen is a move of 0 s
    (and ``started`` False)."""
    until = lim.until_s
    rc = Move(0.0, v, HORIZON, 0.0, 0.0, 0.0, 0.0)
    if v < lim.v_on:
        rc = advance(v, t, until - t, 0.0, -1.0, lim.v_on, True, circ)
        t += rc.elapsed_s
        v = rc.v_end
        if rc.reason != HIT_HIGH:
            return Cycle(rc, Move(0.0, v, HORIZON, 0.0, 0.0, 0.0, 0.0), False, _none(v))
    boot_s = units.boot_s
    rb = advance(v, t, min(boot_s, until - t), units.boot_W / lim.eta, lim.v_off, lim.v_on, False, circ)
    t += rb.elapsed_s
    v = rb.v_end
    if rb.reason == HIT_LOW or rb.elapsed_s < boot_s or t < release:
        return Cycle(rc, rb, False, _none(v))
    return Cycle(rc, rb, True, stretch(v, t, i0, plan.boot_known, units, plan, lim, circ, trace))


def _type_key(a):
    """A key that tells apart every pair of arguments numba would type differently (cheap, unlike numba's own
    typing of records of arrays): an array's dtype, dimensions and flags (layout, writability, alignment, and
    ownership, which numba ignores: one more key at worst); a record's class and fields, recursively; the class
    of anything else."""
    t = type(a)
    if t is np.ndarray:
        return a.dtype, a.ndim, a.flags.num
    if isinstance(a, tuple):
        return (t,) + tuple(map(_type_key, a))
    return t


#: compiled entry points by (function, :func:`_type_key` of the arguments)
_ENTRY_POINTS: dict = {}


def entry_point(fn, *args):
    """``fn`` (a numba function of this package) compiled for the types of ``args``, as a callable that skips
    numba's per-call type dispatch: for records of arrays that dispatch costs several times the call itself
    (each array of each record is typed again at every call), which the SimPy model would pay once per power
    cycle.  The callable must then be given arguments of those same types; ``fn`` itself when no compiled
    overload matches.  Kept per function and :func:`_type_key` of ``args``, so that asking again (once per
    run) costs no typing either."""
    key = (fn, tuple(_type_key(a) for a in args))
    hit = _ENTRY_POINTS.get(key)
    if hit is None:
        hit = _ENTRY_POINTS[key] = _compiled_entry(fn, args)
    return hit


def _compiled_entry(fn, args):
    """:func:`entry_point` without the memo."""
    fn(*args)  # compiles (or loads from the cache) the overload for these types
    if not hasattr(fn, "overloads"):  # not a numba dispatcher
        return fn
    key = tuple(fn.typeof_pyval(a) for a in args)
    cres = fn.overloads.get(key)
    return fn if cres is None else cres.entry_point
