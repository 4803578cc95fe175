"""The SimPy model of an intermittently powered MSP430.

Two processes, as in the hardware:

* the **MCU** (``Device.mcu``) boots, restores progress from FRAM and executes the
  atomic units one after another; each unit is one SimPy timeout (coarse events);
* the **power monitor** (``PowerMonitor.run``) watches the capacitor; when the
  voltage will reach V_off before the running activity ends, it fires at that
  instant and interrupts the MCU (brown-out).  While the MCU is off it signals
  power-good when V reaches V_on.

The capacitor integrates analytically (:func:`aidi.sim.physics.advance`); the
SimPy clock advances only at unit ends, commits, brown-outs and boots.  Work not
committed when the brown-out comes is lost and runs again after recharge and reboot.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import simpy

from . import physics
from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .workload import (STUCK_BOOT, NonProgressError, Tally, Workload, boot_known, check_progress, check_thresholds,
                       known_drops, result_dict, source_floor, stuck_unit, stuck_wait)


class Event(NamedTuple):
    """One record of the event log: an activity of the device, from its start to its end."""

    kind: str  #: "charge" (MCU off), "boot", "sleep", "unit", or energy_aware's "measure", "wait", "wake"
    name: str  #: the unit's name ("" for the others)
    layer: int  #: the unit's layer index (-1 for the others)
    unit: int  #: the unit's index in the workload (-1 for the others)
    t_start: float  #: start time (s)
    t_end: float  #: end time (s)
    v_start: float  #: capacitor voltage at the start (V)
    v_end: float  #: and at the end (V)
    energy_J: float  #: energy the MCU spent on it (J; 0 while charging)
    outcome: str  #: "power_good", "until", "done", "committed", "brownout" or "lost"


EVENT_COLUMNS = Event._fields

_tuple_new = tuple.__new__  # Move._make without its checks: wraps physics' plain tuples, once per power cycle


class Capacitor:
    """The energy store: analytic state (t, V) plus the energy tally."""

    def __init__(self, power: PowerConfig, seg: Segments, tally: Tally, durations: np.ndarray, until_s: float):
        self.seg = seg
        self.v = power.v_initial
        self.tally = tally
        self.durations = durations
        self.seg4 = np.vstack([seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs])
        # the packed scalars of physics' Python entry points (slots physics.P_*); the boot's are set per cycle
        self._params = params = np.zeros(physics.N_PARAMS)
        params[physics.P_V_OFF] = power.v_off
        params[physics.P_V_ON] = power.v_on
        params[physics.P_UNTIL] = until_s
        params[physics.P_CAP] = power.capacitor_F
        params[physics.P_I_LEAK] = power.leakage_A
        params[physics.P_V_MAX] = power.v_max
        params[physics.P_PERIOD] = seg.period

    def predict(self, t: float, p_load: float, horizon: float, v_low: float) -> physics.Move:
        """The move of an activity drawing ``p_load`` W from the capacitor for ``horizon`` s, stopped by a
        brown-out at ``v_low``."""
        return _tuple_new(physics.Move, physics.predict_move(self.v, t, horizon, p_load, v_low, False, self._params,
                                                             self.seg4))

    def predict_units(self, t: float, i0: int, p_cap: np.ndarray):
        """Units i0.. to the end of the workload, back to back (:func:`aidi.sim.physics.run_units`)."""
        return physics.predict_units(self.v, t, i0, self.durations, p_cap, self._params, self.seg4)

    def predict_cycle(self, t: float, charge: bool, boot_s: float, boot_p_cap: float, release: float, i0: int,
                      p_cap: np.ndarray):
        """The charge to V_on (if ``charge``), the boot and the units from i0 (:func:`aidi.sim.physics.run_cycle`):
        returns (charge :class:`~aidi.sim.physics.Move`, boot Move, run_units result)."""
        params = self._params
        if params[physics.P_BOOT_S] != boot_s or params[physics.P_BOOT_W] != boot_p_cap:
            params[physics.P_BOOT_S] = boot_s
            params[physics.P_BOOT_W] = boot_p_cap
        rc, rb, ru = physics.run_cycle(self.v, t, charge, release, i0, self.durations, p_cap, params, self.seg4)
        Move = physics.Move
        return _tuple_new(Move, rc), _tuple_new(Move, rb), ru

    def apply(self, res: physics.Move) -> None:
        self.v = res.v_end
        self.tally.add_power(res)


class Alarm(simpy.Event):
    """An event the monitor waits on, set to go off ``delay`` seconds from now (as simpy.Timeout does
    it), so that arming costs the monitor no extra wake-up."""

    def set(self, delay: float, value) -> None:
        self._ok = True
        self._value = value
        self.env.schedule(self, simpy.events.NORMAL, delay)


class PowerMonitor:
    """Fires brown-outs at predicted instants and interrupts the MCU."""

    def __init__(self, env: simpy.Environment, device: "Device"):
        self.env = env
        self.device = device
        self.armed = Alarm(env)
        self.process = env.process(self.run())

    def arm(self, delay: float, v_at_brownout: float) -> None:
        """Fire a brown-out ``delay`` seconds from now (the capacitor's energy is already tallied)."""
        self.armed.set(delay, v_at_brownout)

    def run(self):
        while True:
            v = yield self.armed  # wakes at the brown-out instant
            self.armed = Alarm(self.env)
            self.device.cap.v = v
            self.device.process.interrupt("brownout")


class Device:
    """The MCU process executing a workload under a power configuration."""

    def __init__(self, env: simpy.Environment, work: Workload, power: PowerConfig, seg: Segments,
                 sim: SimConfig, functional=None, log: bool = False):
        self.env = env
        self.work = work
        self.power = power
        self.sim = sim
        self.functional = functional
        self.rng = np.random.default_rng(sim.seed)
        self.tally = Tally()
        self.cap = Capacitor(power, seg, self.tally, work.durations_s, sim.until_s)
        self.monitor = PowerMonitor(env, self)
        self.events: list[Event] | None = [] if log else None
        self.eta = power.converter_efficiency
        self.unit_power = work.power_W
        self.unit_cap_power = self.unit_power / self.eta
        self.progress = 0  # committed unit index (FRAM)
        self.inference = 0  # inferences completed
        self.retry = False
        self.fails_in_row = 0
        self.completed = False
        self.reason = ""
        self.time_invariant = seg.time_invariant
        # energy_aware dispatch: per-unit start thresholds (V), the phases' MCU powers (W)
        self.aware = sim.energy_aware
        if self.aware:
            self.v_start = check_thresholds(work, power, sim.dispatch_margin).tolist()
            self.costs = work.dispatch_costs
            self.drops = known_drops(work.energy_J, work.durations_s, self.costs, self.eta, power.capacitor_F,
                                     power.v_max, power.leakage_A, sim.dispatch_margin).tolist()
            self.boot_known = boot_known(work.boot_J, work.boot_s, self.eta, power.capacitor_F, power.v_on,
                                         power.v_max, power.leakage_A, sim.dispatch_margin,
                                         source_floor(seg.seg_p, seg.seg_g, seg.seg_vs))
            self._disp_out = np.empty(physics.N_DISPATCH_OUT)
        self.known = 0.0  # energy_aware: the MCU's lower bound on V (V; 0: unknown)
        self.process = env.process(self.mcu())

    # -- helpers ------------------------------------------------------------------
    def _log(self, kind, name, layer, unit, t0, t1, v0, v1, e, outcome):
        if self.events is not None:
            self.events.append(Event(kind, name, layer, unit, t0, t1, v0, v1, e, outcome))

    def _remaining(self) -> float:
        return self.sim.until_s - self.env.now

    def _activity(self, p_mcu: float, duration: float, res=None):
        """Run one activity at constant MCU power; returns (elapsed, completed).

        ``res`` is its prediction if already made (:meth:`Capacitor.predict_cycle`).  A predicted
        brown-out is left to the power monitor, which interrupts us.
        """
        if res is None:
            horizon = min(duration, self._remaining())
            res = self.cap.predict(self.env.now, p_mcu / self.eta, horizon, self.power.v_off)
        if res.reason == physics.HIT_LOW:
            self.tally.add_power(res)
            self.monitor.arm(res.elapsed_s, res.v_end)
            yield self.env.event()  # runs until the monitor's interrupt at res.elapsed_s (nothing else triggers it)
            raise AssertionError("brown-out did not interrupt the MCU")
        yield self.env.timeout(res.elapsed_s)
        self.cap.apply(res)
        return res.elapsed_s, res.elapsed_s >= duration

    # -- processes ----------------------------------------------------------------
    def mcu(self):
        w = self.work
        boot_p = w.boot_J / w.boot_s
        while True:
            # the whole cycle is predicted in one call: nothing outside the MCU acts on the capacitor
            # between the charge, the boot and the units (the monitor only fires what they predict)
            first = self.progress
            rc, rb, ru = self.cap.predict_cycle(self.env.now, self.cap.v < self.power.v_on, w.boot_s,
                                                boot_p / self.eta, self.inference * self.sim.period_s,
                                                len(w) if self.aware else first, self.unit_cap_power)
            if self.cap.v < self.power.v_on:  # MCU off until V reaches V_on
                t0, v0 = self.env.now, self.cap.v
                yield self.env.timeout(rc.elapsed_s)
                self.cap.apply(rc)
                self.tally.off_time += rc.elapsed_s
                if self.events is not None:
                    self._log("charge", "", -1, -1, t0, self.env.now, v0, self.cap.v, 0.0,
                              "power_good" if rc.reason == physics.HIT_HIGH else "until")
                if rc.reason != physics.HIT_HIGH:
                    seg = self.cap.seg
                    settles = self.time_invariant and physics.never_reaches(
                        self.cap.v, self.power.v_on, self.power.leakage_A, seg.seg_p, seg.seg_g, seg.seg_vs)
                    self.reason = ("the capacitor settles below v_on: the device never boots" if settles
                                   else "until_s reached")
                    return
            self.tally.power_cycles += 1
            t_on = self.env.now
            try:
                if self.functional is not None:
                    self.functional.reboot(self.rng)
                t0, v0 = self.env.now, self.cap.v
                self.activity = ("boot", -1, t0, v0)
                if rb.reason == physics.HIT_LOW:  # browns out: the monitor interrupts us
                    yield from self._activity(boot_p, w.boot_s, rb)
                yield self.env.timeout(rb.elapsed_s)
                self.cap.apply(rb)
                el, done = rb.elapsed_s, rb.elapsed_s >= w.boot_s
                self.tally.by_category["restore"] += boot_p * el
                if self.events is not None:
                    self._log("boot", "", -1, -1, t0, self.env.now, v0, self.cap.v, boot_p * el,
                              "done" if done else "until")
                if not done:
                    self.reason = "until_s reached"
                    return
                if self.aware:
                    self.known = self.boot_known  # what the MCU knows of V right after the boot
                while self.inference < self.sim.inferences:
                    release = self.inference * self.sim.period_s
                    if self.env.now < release:
                        self.known = 0.0  # sleeping until the release: V is unknown again
                        t0, v0 = self.env.now, self.cap.v
                        self.activity = ("sleep", -1, t0, v0)
                        el, done = yield from self._activity(w.sleep_W, release - self.env.now)
                        self.tally.by_category["sleep"] += w.sleep_W * el
                        self._log("sleep", "", -1, -1, t0, self.env.now, v0, self.cap.v, w.sleep_W * el, "done")
                        if not done:
                            self.reason = "until_s reached"
                            return
                    if self.aware:
                        yield from self._dispatch_units()
                        if self.reason:
                            return
                        continue
                    i0, k, elapsed, v_end, reason = self._predict_batch(ru)
                    ru = None
                    if self.functional is None and self.events is None:
                        timeout = self.env.timeout
                        for j in range(k):  # the hot path: one timeout per committed unit, no delegation
                            yield timeout(elapsed[j])
                    else:
                        yield from self._committed_with_hooks(i0, k, elapsed, v_end)
                    self._commit_batch(i0, k, v_end, reason)
                    if reason != physics.ALL_DONE:
                        yield from self._unit_cut(i0 + k, elapsed[k], v_end[k], reason)
                    if self.reason:
                        return
                self.completed = True
                return
            except simpy.Interrupt:
                self._brownout()
                if self.reason:
                    return
            finally:
                self.tally.on_time += self.env.now - t_on

    def _predict_batch(self, ru=None):
        """Predict the current inference's remaining units back to back (one numba call), or take
        ``ru``, the prediction :meth:`Capacitor.predict_cycle` made for them."""
        i0 = self.progress
        if self.retry:
            self.tally.units_reexecuted += 1
            self.retry = False
        if ru is None or ru[0] < 0:
            ru = self.cap.predict_units(self.env.now, i0, self.unit_cap_power)
        k, elapsed, v_end, reason, sums = ru
        self.tally.add_sums(sums.tolist())
        # Python floats: SimPy's clock and heap are faster on them
        return i0, k, elapsed[:k + 1].tolist(), v_end[:k + 1].tolist(), reason

    def _committed_with_hooks(self, i0, k, elapsed, v_end):
        """The k committed units one timeout each, with functional execution and the event log."""
        w, fn, log = self.work, self.functional, self.events is not None
        for j in range(k):
            t0 = self.env.now
            yield self.env.timeout(elapsed[j])
            i = i0 + j
            if fn is not None:
                fn.run_unit(i)
            if log:
                e = w.energy_J[i]
                self._log("unit", w.names[i], int(w.layers[i]), i, t0, self.env.now,
                          v_end[j - 1] if j else self.cap.v, v_end[j], e[0] + e[1] + e[2], "committed")

    def _commit_batch(self, i0, k, v_end, reason) -> None:
        w = self.work
        if k:
            self.progress = i0 + k
            self.cap.v = v_end[k - 1]
            self.fails_in_row = 0
            self.tally.units_executed += k
            self.tally.add_units(w, i0, i0 + k)
        if reason == physics.ALL_DONE:
            self.tally.latencies.append((self.inference, self.env.now - self.inference * self.sim.period_s))
            self.inference += 1
            self.tally.inferences_completed += 1
            if self.inference < self.sim.inferences:
                self.progress = 0
                if self.functional is not None:
                    self.functional.reset()

    _PHASES = ("measure", "wait", "wake", "unit")

    def _dispatch_units(self):
        """The current inference's remaining units under energy_aware dispatch, one
        :func:`aidi.sim.physics.dispatch_unit` prediction each: unless the MCU's lower bound on V (``self.known``:
        workload.boot_known right after a boot, unknown for a new inference or after a sleep, then carried from
        unit to unit) is at the unit's start threshold, measure V, wait in LPM3 for the threshold if below it,
        wake up; run the unit (one timeout per phase)."""
        w, n, out, tally = self.work, len(self.work), self._disp_out, self.tally
        cat = tally.by_category
        known = self.known
        self.known = 0.0  # a new inference (a new aidi_infer call) starts with V unknown
        while True:
            i = self.progress
            if self.retry:
                tally.units_reexecuted += 1
                self.retry = False
            phase, why, waited, measured = physics.predict_dispatch(
                self.cap.v, self.env.now, w.durations_s[i], self.unit_power[i], self.v_start[i], known, self.drops[i],
                self.costs, self.eta, self.cap._params, self.cap.seg4, out)
            if waited:
                tally.threshold_waits += 1
            if measured:
                tally.measurements += 1
            tally.add_sums(out[8:12].tolist())
            el_v = out[:8].tolist()
            known = float(out[12])
            for ph in range(phase + 1):
                if (not waited and (ph == physics.PH_WAIT or ph == physics.PH_WAKE)) or (
                        not measured and ph == physics.PH_MEASURE):
                    continue
                el, ve = el_v[ph], el_v[4 + ph]
                p = (w.measure_W, w.wait_W, w.wake_W, self.unit_power[i])[ph]
                kind = self._PHASES[ph]
                t0, v0 = self.env.now, self.cap.v
                if ph == phase and why == physics.HIT_LOW:
                    self.activity = (kind, i, t0, v0)
                    self.activity_W = p
                    self.monitor.arm(el, ve)
                    yield self.env.event()  # runs until the monitor's interrupt at `el`
                    raise AssertionError("brown-out did not interrupt the MCU")
                yield self.env.timeout(el)
                self.cap.v = ve
                if ph < physics.PH_UNIT:
                    cat["wait"] += p * el
                    if ph == physics.PH_WAIT:
                        tally.wait_time += el
                    self._log(kind, w.names[i], int(w.layers[i]), i, t0, self.env.now, v0, ve, p * el,
                              "until" if ph == phase else "done")
                    if ph == phase:
                        self.reason = "until_s reached"
                        return
                elif why == physics.ALL_DONE:
                    if self.functional is not None:
                        self.functional.run_unit(i)
                    if self.events is not None:
                        e = w.energy_J[i]
                        self._log("unit", w.names[i], int(w.layers[i]), i, t0, self.env.now, v0, ve,
                                  e[0] + e[1] + e[2], "committed")
                    last = i + 1 == n
                    self._commit_batch(i, 1, [ve], physics.ALL_DONE if last else physics.HORIZON)
                    if last:
                        return
                else:  # until_s cut the unit
                    e = self.unit_power[i] * el
                    layer = int(w.layers[i])
                    cat["unfinished"] += e
                    tally.by_layer[layer] = tally.by_layer.get(layer, 0.0) + e
                    self._log("unit", w.names[i], layer, i, t0, self.env.now, v0, ve, e, "until")
                    self.reason = "until_s reached"
                    return

    def _unit_cut(self, i, elapsed, v_end, reason):
        """The unit after the committed ones: a brown-out (the monitor interrupts) or until_s."""
        w = self.work
        t0, v0 = self.env.now, self.cap.v
        self.activity = ("unit", i, t0, v0)
        if reason == physics.HIT_LOW:
            self.monitor.arm(elapsed, v_end)
            yield self.env.event()  # runs until the monitor's interrupt at `elapsed`
            raise AssertionError("brown-out did not interrupt the MCU")
        yield self.env.timeout(elapsed)
        self.cap.v = v_end
        e = self.unit_power[i] * elapsed
        layer = int(w.layers[i])
        self.tally.by_category["unfinished"] += e
        self.tally.by_layer[layer] = self.tally.by_layer.get(layer, 0.0) + e
        self._log("unit", w.names[i], layer, i, t0, self.env.now, v0, self.cap.v, e, "until")
        self.reason = "until_s reached"

    def _brownout(self) -> None:
        w = self.work
        kind, _, t0, v0 = self.activity
        el = self.env.now - t0
        if kind == "boot":
            e = w.boot_J / w.boot_s * el
            self.tally.by_category["restore"] += e
            self._log("boot", "", -1, -1, t0, self.env.now, v0, self.cap.v, e, "brownout")
            self.fails_in_row += 1
            if self.time_invariant and self.fails_in_row >= 2:
                self.reason = STUCK_BOOT
        elif kind in ("measure", "wait", "wake"):
            e = self.activity_W * el
            i = self.progress
            self.tally.by_category["wait"] += e
            if kind == "wait":
                self.tally.wait_time += el
            self._log(kind, w.names[i], int(w.layers[i]), i, t0, self.env.now, v0, self.cap.v, e, "brownout")
            self.fails_in_row += 1
            if self.time_invariant and self.fails_in_row >= 2:
                self.reason = stuck_wait(w.names[i])
        elif kind == "sleep":
            e = w.sleep_W * el
            self.tally.by_category["sleep"] += e
            self._log("sleep", "", -1, -1, t0, self.env.now, v0, self.cap.v, e, "brownout")
        else:
            i = self.progress
            e = self.unit_power[i] * el
            layer = int(w.layers[i])
            self.tally.by_category["reexecution"] += e
            self.tally.by_layer[layer] = self.tally.by_layer.get(layer, 0.0) + e
            self.tally.units_lost += 1
            self.retry = True
            self._log("unit", w.names[i], layer, i, t0, self.env.now, v0, self.cap.v, e, "lost")
            if self.functional is not None:
                self.functional.interrupt_unit(i, el / w.durations_s[i], self.rng)
            self.fails_in_row += 1
            if self.time_invariant and self.fails_in_row >= 2:
                self.reason = stuck_unit(w.names[i])


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig, functional=None,
             log: bool = False) -> tuple[dict, list[Event] | None]:
    """Run the SimPy model; returns (the ``aidi run --json`` dict, the event log (:class:`Event` records) or None)."""
    check_progress(work, power, seg)
    env = simpy.Environment()
    dev = Device(env, work, power, seg, sim, functional=functional, log=log)
    env.run(until=dev.process)
    completed = dev.completed
    reason = "" if completed else (dev.reason or "until_s reached")
    if not completed and dev.fails_in_row >= 2 and dev.time_invariant:
        raise NonProgressError(reason)
    res = result_dict(dev.tally, power, dev.cap.v, env.now, completed, reason, "des", work, sim)
    if functional is not None:
        res["output"] = [int(x) for x in np.asarray(functional.output()).ravel()]
        res["output_matches_reference"] = bool(functional.output_matches_reference())
    return res, dev.events
