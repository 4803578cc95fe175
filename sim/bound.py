"""Worst-case latency of one inference when the source is only known to give at least some power.

``aidi check`` reports this bound beside the simulated latency: the simulation shows what one
trace does; the bound holds for every source that never gives less than the guaranteed minimum.

The guaranteed minimum source
-----------------------------
:func:`min_source` gives P_min(V), a power the source puts into the capacitor at voltage V
at every instant of the run, as one time-invariant source (constant power p plus a Thevenin
part g (V_s - V) V, the terms of :mod:`aidi.sim.capacitor`):

* ``constant``: the source itself (power_W * efficiency);
* ``thevenin``: the source itself, (V_s - V) V / R at V;
* ``trace`` / ``pv`` (any time-varying segments): the smallest segment power over the window the
  run uses, [0, until_s) (every segment when the trace repeats within it), or the scenario's
  ``[harvester] p_min_W`` (times ``efficiency``, like the trace) when the user guarantees one.
  A time-varying segment with a Thevenin part counts with its smallest power for V in [0, V_max].

Where the source can give 0 W (a zero segment, ``power_W = 0``), nothing is guaranteed: the
bound is None and the reason says why.

Derivation
----------
Write Q_L(V) = P_min(V) - I_leak V - L for the net power into the capacitor under the minimum
source with a load drawing L (W, from the capacitor: the MCU's power / eta).  The capacitor
obeys C V dV/dt = Q(t, V) with Q(t, V) >= Q_L(V) at every t and V for the real source.

(1) *Comparison.*  Over a phase of fixed duration with a fixed load (the boot, a measurement,
    a unit), a run that starts at V_a >= V_b stays at or above the minimum-source trajectory
    from V_b (the comparison lemma for the scalar ODE; the clamp at V_max is monotone too), so
    if the latter does not reach V_off neither does the run, and the run ends at or above it.
    A rise from V_a to a target V_t <= V_on with load L (charging with the MCU off, L = 0; the
    LPM3 wait for a start threshold, L = P_LPM3 / eta) takes at most
    T_L(V_b -> V_t) = C int_{V_b}^{V_t} V / Q_L(V) dV when Q_L > 0 on [V_b, V_t] (closed form:
    :func:`aidi.sim.capacitor.advance`, the engines' own charging law).  Q_L is concave in V
    (b = -1/R <= 0), so Q_L > 0 on an interval iff it is at both ends (at V = 0 with no
    constant-power term, iff its slope is).  If Q_L <= 0 somewhere on a needed rise, the run
    may never get there: no bound.

(2) *Start.*  The first power cycle starts at V_initial: the capacitor charges to V_on
    (T_0(V_initial -> V_on); nothing if V_initial >= V_on), and the boot (t_boot at its power)
    starts from max(V_initial, V_on).  If the minimum-source boot, or the voltage measurement
    that follows it (energy_aware), reaches V_off, a run may brown out there in every cycle: no
    bound.  Otherwise V after them is at least V_b (by (1)).

(3) *energy_aware, unit i* (threshold V_s,i = sqrt(V_off^2 + 2 E_need,i / C),
    :func:`aidi.sim.workload.start_thresholds`; V_s,i > V_on: no bound).  Let V_i be a lower
    bound on V before unit i (V_b for the first).  The MCU starts unit i unmeasured when the
    lower bound K it knows (:func:`aidi.sim.dispatch.dispatch_unit`: the boot's seed after the boot,
    then sqrt(ref^2 - 2 E_need / C) after each unit, ref the voltage it started that unit from as it
    knew it) is >= V_s,i, and measures otherwise.  The seed is the engines' own,
    :func:`aidi.sim.workload.boot_known` (sqrt(min(V_on, floor)^2 - 2 E_boot_need / C), floor the
    real source's :func:`aidi.sim.workload.source_floor`, ``MinSource.floor_V``): the same number
    in every run, since every boot starts at V >= V_on.  The chain carries bounds [K_lo, K_hi] on K
    (both the seed after the boot) and takes every case the real run may be in:

    * *Unmeasured* (possible iff K_hi >= V_s,i): V >= K >= max(V_s,i, K_lo) and V >= V_i, so the
      unit starts at or above max(V_i, V_s,i, K_lo): time d_i; ref >= max(K_lo, V_s,i), ref <= K_hi.
    * *Measured* (possible iff K_lo < V_s,i).  Let V_m be the minimum-source voltage after the
      measurement (t_meas) from V_i.  V_m does not reach V_off: for the first unit, (2) checked
      it; for a later one, E_need of the previous unit covered this measurement with no harvest
      at all (were it not to, by rounding, no bound is given).  If V_m >= V_s,i the run's V is
      above the threshold too: no wait, the unit starts at once at >= V_m, ref >= V_m; time
      t_meas + d_i.  Otherwise the MCU may wait in LPM3 until V reaches V_s,i, at most
      T_LPM3(V_m -> V_s,i) by (1), then wakes (t_wake) and runs: time t_meas + T_LPM3(V_m -> V_s,i)
      + t_wake + d_i; it starts at >= min(V_s,i, the minimum-source voltage after the wake-up from
      V_s,i), ref >= V_s,i.  Either way ref <= V_max.
    * Unit i's time is the largest of its possible cases; V_{i+1} is the least of the
      minimum-source voltages after d_i at the unit's power from each possible case's start, and
      K_lo, K_hi follow from the least and largest ref.  E_need covers the wake-up and the unit
      with no harvest, so the unit completes: under energy_aware no unit is lost and the run
      never browns out after its first boot.

    While K_lo stays at the thresholds (from the seed after the boot, or from the first measurement)
    the units are unmeasured for sure (no measurement charged).  Past them each unit is charged
    one measurement (at most one per unit).

(4) *greedy.*  No threshold: a unit runs whenever the MCU is on.  While the minimum-source
    chain (from V_b, unit after unit) stays above V_off, the run completes unit i in d_i.  From
    the first unit the chain cannot carry, any unit may be lost, but at most once: it runs again
    right after a recharge and a boot, from V_b' (if the minimum source carries the boot then
    unit i from V_on to its end above V_off; else no bound: it may be lost in every cycle).
    Such a unit costs at most d_i (the lost part) + T_0(V_off -> V_on) + t_boot + d_i; the
    chain is not resumed (after a unit that was not lost V is only known to be >= V_off).

(5) *Threshold-check interval* (``power.threshold_check_s`` = T > 0, :func:`aidi.sim.capacitor.advance`).  Power
    good rises at the first check instant after V reaches V_on, at most T later; V does not fall back meanwhile
    (Q_0 > 0 at V_on, by (1)), so every charge to V_on costs T more and the boot still starts at >= V_on.  It
    falls only at a check that finds V <= V_off: where the minimum-source chain stays above V_off no check can,
    so (3) and (4) hold as they are; after a brown-out V is only known to be >= the MCU's floor
    (``power.v_floor``), so greedy's recharge is T_0(v_floor -> V_on) + T.

The bound is the sum of the start and every unit's worst time, rounded up by a relative 1e-9
(the engines and the bound sum the same closed-form moves in different orders).  Under
energy_aware and a time-invariant source weaker than the wake-up's draw the chain is the run
itself when the run measures before every unit past those the boot's seed and the first
measurement carry (each unit starts where the chain says), so the bound is the simulated latency;
where the run starts units unmeasured past them, the chain still charges them a measurement.  It is loose under greedy (every unit past the chain counted as lost once) and
for traces whose minimum is far below their mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from . import capacitor, frontend
from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .dispatch import known_after, make_plan, source_floor, start_message, unstartable
from .stepping import Units
from .workload import Workload

#: statuses of :func:`_bound`
OK, NO_CHARGE, NO_BOOT, NO_WAIT, NO_UNIT, NO_RECHARGE, NO_MEASURE = range(7)
#: slots of the time breakdown (s) :func:`_bound` fills
PARTS = ("charge", "boot", "units", "dispatch", "wait", "recovery")
P_CHARGE, P_BOOT, P_UNITS, P_DISPATCH, P_WAIT, P_RECOVERY = range(len(PARTS))
#: relative round-up of the bound (float rounding of the engines' sums, see the module docstring)
ROUND_UP = 1e-9


@dataclass(frozen=True)
class MinSource:
    """The guaranteed minimum source: P_min(V) = p_W + g_S (vs_V - V) V into the capacitor (W).

    ``origin`` says where it comes from (shown to the user); ``zero`` names why it can give
    0 W (empty when it cannot); ``floor_V`` the real source's :func:`aidi.sim.workload.source_floor`
    (V; inf: it never draws from the capacitor), which energy_aware's boot seed depends on.
    """

    p_W: float
    g_S: float = 0.0
    vs_V: float = 0.0
    origin: str = ""
    zero: str = ""
    floor_V: float = math.inf

    def power_at(self, v: float) -> float:
        """P_min at V (W)."""
        return self.p_W + self.g_S * (self.vs_V - v) * v

    def circuit(self, power: PowerConfig) -> capacitor.Circuit:
        """The :class:`~aidi.sim.capacitor.Circuit` of the capacitor under this source alone."""
        one = np.zeros(1)
        return capacitor.Circuit(power.capacitor_F, power.leakage_A, power.v_max, one, np.array([self.p_W]),
                               np.array([self.g_S]), np.array([self.vs_V]), 0.0)


def min_source(seg: Segments, power: PowerConfig, until_s: float, p_min_W: float | None = None) -> MinSource:
    """The guaranteed minimum of ``seg`` over the run's window [0, ``until_s``) (see the module docstring).

    ``p_min_W``: a user-given guaranteed minimum into the capacitor (W, efficiency applied), used
    for a time-varying source instead of its minimum.
    """
    floor = float(source_floor(seg.seg_p, seg.seg_g, seg.seg_vs))
    if seg.time_invariant:
        p, g, vs = float(seg.seg_p[0]), float(seg.seg_g[0]), float(seg.seg_vs[0])
        if g > 0.0:
            src = MinSource(p, g, vs, f"{seg.kind} source: {vs:g} V through {1.0 / g:g} ohm", floor_V=floor)
            return src if vs > 0.0 else MinSource(p, g, vs, src.origin, "the source voltage is 0 V", floor)
        return MinSource(p, origin=f"{seg.kind} source: {p:g} W",
                         zero="" if p > 0.0 else f"the {seg.kind} source gives {p:g} W", floor_V=floor)
    t = np.asarray(seg.seg_t)
    used = np.ones(t.shape[0], dtype=bool) if seg.period > 0.0 and until_s >= seg.period else t < until_s
    lo = np.minimum(seg.seg_p, seg.seg_p + seg.seg_g * (seg.seg_vs - power.v_max) * power.v_max)
    lo = np.where(used, lo, np.inf)
    k = int(np.argmin(lo))
    p = max(float(lo[k]), 0.0)
    window = f"[0, {min(until_s, seg.period if seg.period > 0.0 else until_s):g} s)"
    if p_min_W is not None:
        # the user's word for the real source; the trace simulated here may fall below it (then the simulated
        # latency is not bound by it), and the origin says so
        below = f"; this {seg.kind} falls to {p:g} W in {window}" if p < p_min_W else ""
        return MinSource(float(p_min_W), origin=f"harvester.p_min_W: {p_min_W:g} W (after efficiency{below})",
                         zero="" if p_min_W > 0.0 else "harvester.p_min_W is 0 W", floor_V=floor)
    origin = f"{seg.kind} minimum over {window}: {p:g} W"
    zero = "" if p > 0.0 else (f"the {seg.kind} gives {p:g} W from t = {float(t[k]):g} s (within the run's window "
                               f"{window}); set [harvester] p_min_W to a minimum the source guarantees")
    return MinSource(p, origin=origin, zero=zero, floor_V=floor)


@njit(cache=True, error_model="numpy")
def _rise(v1, v2, p_load, circ):
    """Time (s) for V to rise from v1 to v2 (<= V_max) under ``circ``'s time-invariant source with the load
    ``p_load`` (W from the capacitor); inf when the net power Q is not > 0 on all of (v1, v2]."""
    if v2 <= v1:
        return 0.0
    a = circ.seg_g[0] * circ.seg_vs[0] - circ.leakage_A
    b = -circ.seg_g[0]
    c = circ.seg_p[0] - p_load
    q1 = capacitor.q_of(a, b, c, v1)
    if v1 <= 0.0:  # direction of motion at 0 V: sign of lim Q(V)/V
        q1 = c if c != 0.0 else a
    if not (q1 > 0.0 and capacitor.q_of(a, b, c, v2) > 0.0):  # Q is concave: > 0 at both ends, > 0 between
        return math.inf
    r = capacitor.advance(v1, 0.0, math.inf, p_load, -1.0, v2, True, circ)
    return r.elapsed_s if r.reason == capacitor.HIT_HIGH else math.inf


@njit(cache=True, error_model="numpy")
def _hold(v, d, p_load, v_off, v_on, circ):
    """(V after d s at the load p_load from v, True if it reached v_off on the way) under ``circ``."""
    if d <= 0.0:
        return v, False
    r = capacitor.advance(v, 0.0, d, p_load, v_off, v_on, False, circ)
    return r.v_end, r.reason == capacitor.HIT_LOW


@njit(cache=True, error_model="numpy")
def _bound(units, plan, lim, v_init, circ, parts, check_s, v_floor):
    """The bound of the module docstring: fills ``parts`` (s, slots P_*) and returns (status, unit).

    ``units`` (:class:`~aidi.sim.stepping.Units`: durations and MCU powers per unit, the boot), ``plan`` the
    run's :class:`~aidi.sim.dispatch.DispatchPlan` (energy_aware's thresholds, drops and boot seed), ``lim``
    the :class:`~aidi.sim.capacitor.Limits`, ``v_init`` (V) the voltage at t = 0, ``circ`` the circuit of the
    guaranteed minimum source, ``check_s`` the threshold-check interval (s; 0: none) and ``v_floor`` the MCU's
    floor under it (V).
    status is OK or the first obstacle (NO_*); unit is the unit it concerns (-1: none).
    """
    durations, p_unit, v_start, drops, seed = units.durations_s, units.power_W, plan.v_start, plan.drops, \
        plan.boot_known
    costs, eta, v_on, v_off, aware = plan.costs, lim.eta, lim.v_on, lim.v_off, plan.aware
    boot_s, boot_w = units.boot_s, units.boot_W
    meas_s, meas_p, wait_p, wake_s, wake_p = (costs.measure_s, costs.measure_W / eta, costs.wait_W / eta,
                                              costs.wake_s, costs.wake_W / eta)
    boot_p = boot_w / eta
    parts[:] = 0.0
    # (2) start: charge to V_on, boot (and measure, energy_aware)
    if v_init < v_on:
        parts[P_CHARGE] = _rise(v_init, v_on, 0.0, circ) + check_s  # then the next check finds V >= V_on
        if not parts[P_CHARGE] < math.inf:
            return NO_CHARGE, -1
    v, low = _hold(max(v_init, v_on), boot_s, boot_p, v_off, v_on, circ)
    parts[P_BOOT] = boot_s
    if low:
        return NO_BOOT, -1
    # after a brown-out: recharge V_off -> V_on and boot from V_on (computed when first needed)
    t_rec = -1.0
    v_rb = 0.0
    n = durations.shape[0]
    chain = True  # greedy: the minimum-source chain still carries the units
    k_lo = k_hi = seed  # energy_aware: bounds on the MCU's known lower bound on V (the boot's seed after it)
    v_max = circ.v_max
    for i in range(n):
        d = durations[i]
        p = p_unit[i] / eta
        if aware:
            vs_i = v_start[i]
            # what the MCU may do: start unmeasured (its known value can be at the threshold), measure
            skip_ok = k_hi >= vs_i
            meas_ok = k_lo < vs_i
            v_next = math.inf
            ref_lo = math.inf  # bounds on the voltage the MCU's next known value is derived from
            ref_hi = 0.0
            wait = 0.0
            if skip_ok:  # V >= its known value >= the threshold, and >= the chain
                v_a, low = _hold(max(v, vs_i, k_lo), d, p, v_off, v_on, circ)
                if low:
                    return NO_UNIT, i
                v_next = v_a
                ref_lo = max(k_lo, vs_i)
                ref_hi = k_hi
            if meas_ok:
                vm, low = _hold(v, meas_s, meas_p, v_off, v_on, circ)
                if low:  # after the boot: it may fail every cycle; after a unit: E_need covers it, rounding only
                    return (NO_BOOT, -1) if i == 0 else (NO_MEASURE, i)
                if vm >= vs_i:  # above the threshold: no wait
                    start = vm
                    ref_lo = min(ref_lo, vm)
                else:
                    wait = _rise(vm, vs_i, wait_p, circ) + wake_s
                    if not wait < math.inf:
                        return NO_WAIT, i
                    # it waits and wakes at V_s, or finds V above V_s after the measurement
                    start = min(vs_i, _hold(vs_i, wake_s, wake_p, v_off, v_on, circ)[0])
                    ref_lo = min(ref_lo, vs_i)
                ref_hi = v_max
                v_b, low = _hold(start, d, p, v_off, v_on, circ)
                if low:
                    return NO_UNIT, i
                v_next = min(v_next, v_b)
                parts[P_DISPATCH] += meas_s
            v = v_next
            k_lo = known_after(ref_lo, drops[i])
            k_hi = known_after(ref_hi, drops[i])
            parts[P_WAIT] += wait
            parts[P_UNITS] += d
            continue
        # (4) greedy
        if chain:
            v_next, low = _hold(v, d, p, v_off, v_on, circ)
            if not low:
                v = v_next
                parts[P_UNITS] += d
                continue
            chain = False
        if t_rec < 0.0:  # from V_off, or from the MCU's floor when power good falls only at a check
            t_rec = _rise(min(v_floor, v_off) if check_s > 0.0 else v_off, v_on, 0.0, circ) + check_s
            if not t_rec < math.inf:
                return NO_RECHARGE, i
            v_rb, low = _hold(v_on, boot_s, boot_p, v_off, v_on, circ)
            if low:
                return NO_BOOT, -1
        if _hold(v_rb, d, p, v_off, v_on, circ)[1]:
            return NO_UNIT, i
        parts[P_UNITS] += d
        parts[P_RECOVERY] += d + t_rec + boot_s
    return OK, -1


@dataclass
class Bound:
    """What :func:`latency_bound` returns.

    latency_s: the bound (s), or None with ``reason`` (one line) when there is none; parts_s: its
    breakdown (s) by PARTS (charge: the first charge to V_on; boot: the first boot; units: the
    units' own time; dispatch: energy_aware's measurements; wait: LPM3 waits for thresholds and
    wake-ups; recovery: greedy's lost units, recharges and reboots); source: the guaranteed minimum.
    """

    latency_s: float | None
    reason: str
    dispatch: str
    source: MinSource
    power: PowerConfig
    parts_s: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        """The ``latency_bound`` object of ``aidi check --json``."""
        s = self.source
        return {
            "latency_s": self.latency_s,
            "reason": self.reason or None,
            "dispatch": self.dispatch,
            "p_min": {"from": s.origin, "at_v_off_W": s.power_at(self.power.v_off),
                      "at_v_on_W": s.power_at(self.power.v_on)},
            "parts_s": self.parts_s if self.latency_s is not None else None,
        }


def latency_bound(work: Workload, power: PowerConfig, source: MinSource, sim: SimConfig) -> Bound:
    """An upper bound (s) on one inference's latency (from t = 0, V = power.v_initial) for every source that
    gives at least ``source`` (see the module docstring for the derivation), under ``sim.dispatch``.

    Returns a :class:`Bound`; its latency_s is None, with a one-line reason, when nothing can be
    guaranteed (the source can give 0 W, cannot lift V to a needed threshold, or the boot or a unit
    can brown out in every cycle).
    """
    def none(reason: str) -> Bound:
        return Bound(None, reason, sim.dispatch, source, power)

    if source.zero:
        return none(f"the source can give 0 W: {source.zero}")
    work = frontend.loads(work, power)  # the loads as a power front end's buck draws them
    plan = make_plan(work, power, sim.dispatch_margin, sim.energy_aware, source.floor_V)
    bad = unstartable(plan, power.v_on)
    if bad >= 0:
        return none(start_message(work, power, plan.v_start, bad))
    parts = np.zeros(len(PARTS))
    none_i = np.empty(0, dtype=np.int64)
    units = Units(work.durations_s, work.power_W, none_i, none_i, none_i, none_i, work.boot_s,
                  work.boot_J / work.boot_s, work.sleep_W)
    status, unit = _bound(units, plan, capacitor.limits(power, math.inf), power.v_initial, source.circuit(power),
                          parts, power.threshold_check_s, power.v_floor)
    if status != OK:
        return none(_reason(status, unit, work, power, source, plan.v_start, sim.energy_aware))
    total = float(parts.sum()) * (1.0 + ROUND_UP)
    return Bound(total, "", sim.dispatch, source, power, dict(zip(PARTS, parts.tolist())))


def _reason(status: int, unit: int, work: Workload, power: PowerConfig, source: MinSource,
            v_start: np.ndarray, aware: bool) -> str:
    """The one-line reason for a :func:`_bound` status."""
    g = f"the guaranteed minimum ({source.origin})"
    name = work.names[unit] if unit >= 0 else ""
    if status == NO_CHARGE:
        return (f"{g} less leakage cannot charge the capacitor from V_initial = {power.v_initial:g} V to "
                f"V_on = {power.v_on:g} V: the device may never boot")
    if status == NO_RECHARGE:
        return (f"{g} less leakage cannot recharge the capacitor from V_off = {power.v_off:g} V to "
                f"V_on = {power.v_on:g} V after a brown-out (first needed at unit {name})")
    if status == NO_BOOT:
        return (f"under {g} the boot (and the voltage measurement after it) can brown out from V_on = "
                f"{power.v_on:g} V: the device may never finish booting")
    if status == NO_MEASURE:
        return (f"under {g} the voltage measurement before unit {name} can brown out (its predecessor's "
                "threshold should have covered it: a rounding edge)")
    if status == NO_WAIT:
        return (f"under {g} the MCU waiting in LPM3 ({work.wait_W * 1e6:.3g} uW) cannot lift V to unit {name}'s "
                f"start threshold {v_start[unit]:.4f} V: the wait may never end")
    if aware:
        return (f"under {g} unit {name} can brown out although it starts at its threshold (a rounding edge)")
    return (f"under {g} unit {name} can brown out even when started right after a boot: it may be lost in "
            f"every power cycle")


__all__ = ["MinSource", "Bound", "min_source", "latency_bound", "PARTS", "ROUND_UP"]
