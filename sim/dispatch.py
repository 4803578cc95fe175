"""Dispatch: when the MCU starts a unit.  One :class:`DispatchPlan` record, built once per run, and one
:func:`dispatch_unit` step; both engines (:mod:`aidi.sim.des`, :mod:`aidi.sim.oracle`), the latency bound
(:mod:`aidi.sim.bound`) and the emitted firmware's threshold tables (:mod:`aidi.models.emit.dispatch`) read it.

* ``greedy`` starts a unit whenever the MCU is on.
* ``energy_aware`` starts unit i only at V >= its start threshold V_start,i = sqrt(V_off^2 + 2 E_need,i / C)
  (:func:`start_thresholds`), so that it completes with no harvest at all.  The MCU keeps a lower bound K
  on V (0: unknown): right after a boot the seed :func:`boot_known`, after a unit started from a voltage
  it knew to be at least K0, K = sqrt(K0^2 - drop_i) (:func:`known_after`, drop_i = 2 E_need,i / C,
  :func:`known_drops`).  A unit whose threshold is at most K starts at once; otherwise the MCU measures V
  (the platform's ADC read), sleeps in LPM3 until V reaches the threshold (a comparator interrupt) and
  wakes up.

E_need,i (:func:`start_needs`) = (1 + margin) [(E_unit + E_measure + E_wake) / eta + I_leak V_max (d_unit +
t_measure + t_wake)]: the unit, the measurement before it and the wake-up drawn through the converter of
efficiency eta, and leakage bounded at V_max (V never exceeds the clamp).  The phase costs are the
platform's (:class:`aidi.sim.platform.Platform`: measure_s / measure_energy_J, wait_power_W, wake_s,
active_power_W; sources in shared/CALIBRATION.md).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from .capacitor import ALL_DONE, HIT_HIGH, HIT_LOW, HORIZON, Circuit, Limits, advance, plus


class NonProgressError(ValueError):
    """A unit needs more energy than one power cycle can ever give (also exported by :mod:`.workload`)."""


#: the phases of :func:`dispatch_unit`, in order: the voltage measurement, the LPM3 wait for the start
#: threshold, the wake-up from it, the unit
PH_MEASURE, PH_WAIT, PH_WAKE, PH_UNIT = range(4)
PHASES = ("measure", "wait", "wake", "unit")


class PhaseCosts(NamedTuple):
    """energy_aware's costs around a unit, at the MCU (the platform's, :class:`aidi.sim.platform.Platform`)."""

    measure_s: float  #: the voltage measurement (s)
    measure_W: float  #: its power (W)
    wait_W: float  #: LPM3 while waiting for the start threshold (W)
    wake_s: float  #: the wake-up from LPM3 (s)
    wake_W: float  #: its power (W)


class DispatchPlan(NamedTuple):
    """The dispatch policy of one run, built once (:func:`plan_of`, :func:`make_plan`).

    Under greedy the arrays are empty and ``boot_known`` is 0.
    """

    aware: bool  #: energy_aware (else greedy)
    v_start: np.ndarray  #: start threshold of each unit (V)
    drops: np.ndarray  #: 2 E_need / C of each unit (V^2): what running it takes off the MCU's bound K^2
    boot_known: float  #: the MCU's lower bound on V right after a boot (V; 0: unknown)
    costs: PhaseCosts  #: the measurement, wait and wake-up costs (MCU side)
    eta: float  #: converter efficiency: the MCU's P is drawn from the capacitor as P / eta


class Step(NamedTuple):
    """What :func:`dispatch_unit` returns: one unit and the phases before it."""

    phase: int  #: the last phase run (PH_*)
    why: int  #: ALL_DONE (the unit completed), HIT_LOW (brown-out) or HORIZON (until_s)
    waited: bool  #: it waited in LPM3 for the threshold
    measured: bool  #: it measured V first
    elapsed: tuple  #: time of each phase (s, by PH_*; 0 for a phase not run)
    v_end: tuple  #: voltage after each phase (V; the voltage before it for a phase not run)
    harvested_J: float  #: energy sums over every phase run (J)
    consumed_J: float
    leaked_J: float
    clipped_J: float
    known: float  #: the MCU's bound on V after the unit (V; 0 if it did not complete)


@njit(cache=True, error_model="numpy")
def start_needs(energy, durations, costs, eta, v_max, i_leak, margin):
    """energy_aware's E_need of every unit (J, drawn from the capacitor, no harvest; see the module docstring).

    ``energy[i, k]`` (J at the MCU), ``durations[i]`` (s), ``costs`` a :class:`PhaseCosts`, ``eta`` the
    converter efficiency, ``v_max`` (V), ``i_leak`` (A), ``margin`` a fraction.

    It bounds what running the unit alone takes out of the capacitor whatever the source gives (>= 0 W):
    the load draws E_unit / eta, leakage I_leak * int V dt <= I_leak * V_max * d_unit (V never exceeds
    V_max), so after the unit started at V >= K, V >= sqrt(K^2 - 2 E_need / C) (:func:`known_after`).
    """
    n = durations.shape[0]
    out = np.empty(n)
    meas_s, wake_s = costs[0], costs[3]
    fixed = meas_s * costs[1] + wake_s * costs[4]
    for i in range(n):
        u = 0.0
        for c in range(energy.shape[1]):
            u += energy[i, c]
        out[i] = (1.0 + margin) * ((u + fixed) / eta + i_leak * v_max * (durations[i] + meas_s + wake_s))
    return out


@njit(cache=True, error_model="numpy")
def start_thresholds(energy, durations, costs, eta, cap, v_off, v_max, i_leak, margin):
    """energy_aware's start threshold of every unit (V): V_start = sqrt(V_off^2 + 2 E_need / C), E_need from
    :func:`start_needs` (same arguments, ``cap`` in F, voltages in V, ``i_leak`` in A)."""
    need = start_needs(energy, durations, costs, eta, v_max, i_leak, margin)
    out = np.empty(need.shape[0])
    for i in range(need.shape[0]):
        out[i] = math.sqrt(v_off * v_off + 2.0 * need[i] / cap)
    return out


@njit(cache=True, error_model="numpy")
def known_drops(energy, durations, costs, eta, cap, v_max, i_leak, margin):
    """2 E_need / C of every unit (V^2, :func:`start_needs`): what running it takes off the square of the
    voltage the MCU knows a lower bound of (:func:`known_after`)."""
    need = start_needs(energy, durations, costs, eta, v_max, i_leak, margin)
    return 2.0 * need / cap


@njit(cache=True, error_model="numpy")
def boot_need(boot_J, boot_s, eta, v_max, i_leak, margin):
    """energy_aware's E_need of the boot (J, drawn from the capacitor, no harvest), as :func:`start_needs` for a
    unit: (1 + margin) * [E_boot / eta + I_leak * V_max * t_boot].  ``boot_J`` (J at the MCU) and ``boot_s`` (s)
    are the platform's boot (:class:`aidi.sim.platform.Platform` boot_energy_J, boot_s: power-up to main() and the
    resume from FRAM), ``eta`` the converter efficiency, ``i_leak`` (A), ``v_max`` (V)."""
    return (1.0 + margin) * (boot_J / eta + i_leak * v_max * boot_s)


@njit(cache=True, error_model="numpy")
def source_floor(seg_p, seg_g, seg_vs):
    """The largest V (V) below which no segment of the source draws from the capacitor (inf when none ever does):
    p + g (V_s - V) V >= 0 for every V in [0, floor].  A Thevenin segment (g > 0) draws above its upper root
    (V_s + sqrt(V_s^2 + 4 p / g)) / 2; a constant-power segment (p >= 0, g = 0) never draws."""
    out = math.inf
    for k in range(seg_p.shape[0]):
        g = seg_g[k]
        if g > 0.0:
            vs = seg_vs[k]
            disc = vs * vs + 4.0 * seg_p[k] / g
            root = 0.5 * (vs + math.sqrt(disc)) if disc > 0.0 else 0.0
            out = min(out, max(root, 0.0))
        elif seg_p[k] < 0.0:
            return 0.0
    return out


@njit(cache=True, error_model="numpy")
def known_after(k, drop):
    """energy_aware's lower bound on V (V) after a unit started at V >= ``k`` (V) whose :func:`known_drops`
    entry is ``drop`` = 2 E_need / C (V^2): sqrt(k^2 - drop), and 0 (unknown) when that is not positive.
    A lower bound of the real V for any source power >= 0."""
    x = k * k - drop
    return math.sqrt(x) if x > 0.0 else 0.0


@njit(cache=True, error_model="numpy")
def boot_known(boot_J, boot_s, eta, cap, v_on, v_max, i_leak, margin, floor):
    """energy_aware's lower bound on V (V) right after a boot: sqrt(K^2 - 2 E_boot_need / C)
    (:func:`known_after`, :func:`boot_need`), K = min(V_on, ``floor``), ``floor`` the source's
    :func:`source_floor` (V); 0 (unknown) when that is not positive.

    Why it holds: both engines boot only at V >= V_on (they charge to V_on with the MCU off, or start above it
    at v_initial).  While V is below K the source gives >= 0 W, so from the last instant V was at K or above,
    V^2 falls by at most 2 E_boot_need / C over the boot (the boot's draw through the converter, and leakage at
    most I_leak V_max).  Capacitance in F, voltages in V, powers as :func:`boot_need`."""
    k = min(v_on, floor)
    return known_after(k, 2.0 * boot_need(boot_J, boot_s, eta, v_max, i_leak, margin) / cap)


@njit(cache=True, error_model="numpy")
def plan_of(aware, energy, durations, boot_J, boot_s, costs, circ, lim, margin, floor):
    """The :class:`DispatchPlan` of one workload (``energy[i, k]`` J at the MCU, ``durations[i]`` s, the boot's
    ``boot_J`` J and ``boot_s`` s, ``costs`` a :class:`PhaseCosts`) on the capacitor of ``circ``
    (:class:`~aidi.sim.capacitor.Circuit`) with the thresholds of ``lim`` (:class:`~aidi.sim.capacitor.Limits`),
    ``margin`` the dispatch margin (fraction) and ``floor`` the source's :func:`source_floor` (V)."""
    if not aware:
        return DispatchPlan(False, np.empty(0), np.empty(0), 0.0, costs, lim.eta)
    cap, v_max, i_leak = circ.capacitor_F, circ.v_max, circ.leakage_A
    v_start = start_thresholds(energy, durations, costs, lim.eta, cap, lim.v_off, v_max, i_leak, margin)
    drops = known_drops(energy, durations, costs, lim.eta, cap, v_max, i_leak, margin)
    seed = boot_known(boot_J, boot_s, lim.eta, cap, lim.v_on, v_max, i_leak, margin, floor)
    return DispatchPlan(True, v_start, drops, seed, costs, lim.eta)


def make_plan(work, power, margin: float, aware: bool = True, floor: float = math.inf) -> DispatchPlan:
    """:func:`plan_of` for a :class:`~aidi.sim.workload.Workload` and a :class:`~aidi.sim.config.PowerConfig`
    (``floor``: the source's :func:`source_floor`, V; inf for a source that never draws from the capacitor)."""
    return plan_of(aware, work.energy_J, work.durations_s, work.boot_J, work.boot_s, work.dispatch_costs,
                   Circuit(power.capacitor_F, power.leakage_A, power.v_max, np.zeros(1), np.zeros(1), np.zeros(1),
                           np.zeros(1), 0.0), Limits(power.converter_efficiency, power.v_on, power.v_off, math.inf), margin,
                   floor)


def start_message(work, power, v_start: np.ndarray, bad: int) -> str:
    """The one-line error of a unit whose start threshold is above V_on."""
    return (f"unit {work.names[bad]} (layer {int(work.layers[bad])}) needs V_start = {v_start[bad]:.4f} V to start "
            f"under dispatch = energy_aware but the device boots at V_on = {power.v_on:g} V: it can never be "
            f"scheduled (C={power.capacitor_F:g} F, V_off={power.v_off:g} V); use smaller tiles/hyper-tiles, "
            "a larger capacitor, a smaller dispatch_margin or dispatch = \"greedy\"")


def unstartable(plan: DispatchPlan, v_on: float) -> int:
    """The unit whose start threshold exceeds V_on the most, or -1 when every one can start."""
    if not plan.aware or plan.v_start.shape[0] == 0:
        return -1
    bad = int(np.argmax(plan.v_start))
    return bad if plan.v_start[bad] > v_on else -1


def check_thresholds(work, power, margin: float) -> np.ndarray:
    """The start thresholds (V, :func:`start_thresholds`); raise
    :class:`NonProgressError` (a ValueError) naming the unit if one is above V_on."""

    plan = make_plan(work, power, margin)
    bad = unstartable(plan, power.v_on)
    if bad >= 0:
        raise NonProgressError(start_message(work, power, plan.v_start, bad))
    return plan.v_start


@njit(cache=True, error_model="numpy")
def dispatch_unit(v, t, i, d, p_unit, known, plan, lim, circ):
    """Unit i (``d`` s at ``p_unit`` W, the MCU's) under energy_aware dispatch, from (t, v), the MCU's bound on
    V being ``known`` (V; 0: unknown); ``plan`` a :class:`DispatchPlan`, ``lim`` the
    :class:`~aidi.sim.capacitor.Limits` (v_off, until_s), ``circ`` the :class:`~aidi.sim.capacitor.Circuit`.

    If ``known`` >= the unit's threshold it starts at once, unmeasured.  Otherwise the MCU measures V; if V is
    below the threshold it sleeps in LPM3 until V reaches it and wakes up; then it runs the unit.  Powers are
    drawn from the capacitor through the converter (/ eta); a brown-out at v_off or until_s stops the sequence.
    The bound after the unit is :func:`known_after` of the voltage it started from as the MCU knows it
    (``known`` unmeasured, the measured V, or the threshold after a wait).

    Returns a :class:`Step`.
    """
    v_start = plan.v_start[i]
    costs = plan.costs
    eta = plan.eta
    v_low = lim.v_off
    until = lim.until_s
    e_h = e_c = e_l = e_x = 0.0
    el_m = el_w = el_k = el_u = 0.0
    v_m = v_w = v_k = v_u = v
    measured = known < v_start
    waited = False
    ref = known  # the voltage the MCU knows the unit starts from (at least)
    if measured:
        r = advance(v, t, min(costs.measure_s, until - t), costs.measure_W / eta, v_low, v_start, False, circ)
        e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
        el_m = r.elapsed_s
        t += el_m
        v = v_m = v_w = v_k = v_u = r.v_end
        if r.reason == HIT_LOW or el_m < costs.measure_s:
            why = HIT_LOW if r.reason == HIT_LOW else HORIZON
            return Step(PH_MEASURE, why, False, True, (el_m, el_w, el_k, el_u), (v_m, v_w, v_k, v_u), e_h, e_c,
                        e_l, e_x, 0.0)
        if v >= v_start:
            ref = v
        else:
            waited = True
            ref = v_start
            r = advance(v, t, until - t, costs.wait_W / eta, v_low, v_start, True, circ)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
            el_w = r.elapsed_s
            t += el_w
            v = v_w = v_k = v_u = r.v_end
            if r.reason != HIT_HIGH:
                why = HIT_LOW if r.reason == HIT_LOW else HORIZON
                return Step(PH_WAIT, why, True, True, (el_m, el_w, el_k, el_u), (v_m, v_w, v_k, v_u), e_h, e_c,
                            e_l, e_x, 0.0)
            r = advance(v, t, min(costs.wake_s, until - t), costs.wake_W / eta, v_low, v_start, False, circ)
            e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
            el_k = r.elapsed_s
            t += el_k
            v = v_k = v_u = r.v_end
            if r.reason == HIT_LOW or el_k < costs.wake_s:
                why = HIT_LOW if r.reason == HIT_LOW else HORIZON
                return Step(PH_WAKE, why, True, True, (el_m, el_w, el_k, el_u), (v_m, v_w, v_k, v_u), e_h, e_c,
                            e_l, e_x, 0.0)
    r = advance(v, t, min(d, until - t), p_unit / eta, v_low, v_start, False, circ)
    e_h, e_c, e_l, e_x = plus(e_h, e_c, e_l, e_x, r)
    el_u = r.elapsed_s
    v_u = r.v_end
    why = HIT_LOW if r.reason == HIT_LOW else (HORIZON if el_u < d else ALL_DONE)
    k_after = known_after(ref, plan.drops[i]) if why == ALL_DONE else 0.0
    return Step(PH_UNIT, why, waited, measured, (el_m, el_w, el_k, el_u), (v_m, v_w, v_k, v_u), e_h, e_c, e_l, e_x,
                k_after)


def phase_powers(costs: PhaseCosts) -> tuple:
    """The MCU's power (W) in each phase before the unit, by PH_* (measure, wait, wake)."""
    return costs.measure_W, costs.wait_W, costs.wake_W
