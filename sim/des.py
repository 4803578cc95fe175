"""The SimPy model of an intermittently powered MSP430.

Two processes, as in the hardware:

* the **MCU** (``Device.mcu``) boots, restores progress from FRAM and executes the
  atomic units one after another; each unit is one SimPy timeout (coarse events);
* the **power monitor** (``PowerMonitor.run``) watches the capacitor; when the
  voltage will reach V_off before the running activity ends, it fires at that
  instant and interrupts the MCU (brown-out).  While the MCU is off it signals
  power-good when V reaches V_on.

The capacitor integrates analytically (:func:`aidi.sim.capacitor.advance`); the
SimPy clock advances only at unit ends, commits, brown-outs and boots.  Work not
committed when the brown-out comes is lost and runs again after recharge and reboot.
"""

from __future__ import annotations

from dataclasses import replace
from typing import NamedTuple

import numpy as np
import simpy

from . import capacitor, frontend, stepping
from .capacitor import ALL_DONE, HIT_HIGH, HIT_LOW
from .config import PowerConfig, SimConfig
from .dispatch import PH_UNIT, PHASES, make_plan, phase_powers, source_floor, start_message, unstartable
from .harvesters import Segments
from .workload import (STUCK_BOOT, NonProgressError, RunRecord, Tally, Workload, check_progress, stuck_unit,
                       stuck_wait)


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

class Capacitor:
    """The energy store: analytic state (t, V) plus the energy tally."""

    def __init__(self, power: PowerConfig, seg: Segments, tally: Tally):
        self.seg = seg
        self.v = power.v_initial
        self.tally = tally
        self.circ = capacitor.circuit(power, seg)
        self.v_on = power.v_on

    def predict(self, t: float, p_load: float, horizon: float, v_low: float) -> capacitor.Move:
        """The move of an activity drawing ``p_load`` W from the capacitor for ``horizon`` s, stopped by a
        brown-out at ``v_low``."""
        return capacitor.advance(self.v, t, horizon, p_load, v_low, self.v_on, False, self.circ)

    def apply(self, res: capacitor.Move) -> None:
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
        self.rng = np.random.default_rng(sim.seed) if functional is not None else None  # junk for poisoned SRAM
        self.tally = Tally()
        self.cap = Capacitor(power, seg, self.tally)
        self.monitor = PowerMonitor(env, self)
        self.events: list[Event] | None = [] if log else None
        self.eta = power.converter_efficiency
        self.unit_power = work.power_W
        self.progress = 0  # committed unit index (FRAM)
        self.inference = 0  # inferences completed
        self.retry = False
        self.fails_in_row = 0
        self.completed = False
        self.reason = ""
        # with a threshold-check interval a run also depends on the time modulo the interval (as the oracle's)
        self.time_invariant = seg.time_invariant and power.threshold_check_s == 0.0
        self.aware = sim.energy_aware
        # the run's records, built once: every power cycle and stretch of units is one stepping call on them
        self.plan = make_plan(work, power, sim.dispatch_margin, self.aware,
                              source_floor(seg.seg_p, seg.seg_g, seg.seg_vs))
        bad = unstartable(self.plan, power.v_on)
        if bad >= 0:
            raise NonProgressError(start_message(work, power, self.plan.v_start, bad))
        none = np.empty(0, dtype=np.int64)
        self.units = stepping.Units(work.durations_s, self.unit_power, none, none, none, none, work.boot_s,
                                    work.boot_J / work.boot_s, work.sleep_W)
        self.lim = capacitor.limits(power, sim.until_s)
        self.trace = stepping.trace_for(len(work))
        v0, circ = float(power.v_initial), self.cap.circ
        self._cycle = stepping.entry_point(stepping.cycle, v0, 0.0, 0.0, 0, self.units, self.plan, self.lim, circ,
                                           self.trace)
        self._stretch_at = None  # compiled on first use: only after a sleep or for a second inference
        self.process = env.process(self.mcu())

    # -- helpers ------------------------------------------------------------------
    def _log(self, kind, name, layer, unit, t0, t1, v0, v1, e, outcome):
        if self.events is not None:
            self.events.append(Event(kind, name, layer, unit, t0, t1, v0, v1, e, outcome))

    def _remaining(self) -> float:
        return self.sim.until_s - self.env.now

    def _activity(self, p_mcu: float, duration: float, res=None):
        """Run one activity at constant MCU power; returns (elapsed, completed).

        ``res`` is its prediction if already made (:func:`aidi.sim.stepping.cycle`).  A predicted
        brown-out is left to the power monitor, which interrupts us.
        """
        if res is None:
            horizon = min(duration, self._remaining())
            res = self.cap.predict(self.env.now, p_mcu / self.eta, horizon, self.power.v_off)
        if res.reason == HIT_LOW:
            self.tally.add_power(res)
            self.monitor.arm(res.elapsed_s, res.v_end)
            yield self.env.event()  # runs until the monitor's interrupt at res.elapsed_s (nothing else triggers it)
            raise AssertionError("brown-out did not interrupt the MCU")
        yield self.env.timeout(res.elapsed_s)
        self.cap.apply(res)
        return res.elapsed_s, res.elapsed_s >= duration

    def _stretch(self, known: float) -> stepping.Stretch:
        """The current inference's units from the committed one (:func:`aidi.sim.stepping.stretch`)."""
        if self._stretch_at is None:
            self._stretch_at = stepping.entry_point(stepping.stretch, float(self.cap.v), 0.0, 0, 0.0, self.units,
                                                    self.plan, self.lim, self.cap.circ, self.trace)
        return self._stretch_at(float(self.cap.v), float(self.env.now), self.progress, known, self.units, self.plan,
                                self.lim, self.cap.circ, self.trace)

    # -- processes ----------------------------------------------------------------
    def mcu(self):
        w = self.work
        boot_p = w.boot_J / w.boot_s
        timeout = self.env.timeout
        hot = self.functional is None and self.events is None
        while True:
            # the whole cycle is predicted in one call: nothing outside the MCU acts on the capacitor
            # between the charge, the boot and the units (the monitor only fires what they predict)
            cyc = self._cycle(float(self.cap.v), float(self.env.now), float(self.inference * self.sim.period_s),
                              self.progress, self.units, self.plan, self.lim, self.cap.circ, self.trace)
            rc, rb = cyc.charge, cyc.boot
            if self.cap.v < self.power.v_on:  # MCU off until V reaches V_on
                t0, v0 = self.env.now, self.cap.v
                yield self.env.timeout(rc.elapsed_s)
                self.cap.apply(rc)
                self.tally.off_time += rc.elapsed_s
                if self.events is not None:
                    self._log("charge", "", -1, -1, t0, self.env.now, v0, self.cap.v, 0.0,
                              "power_good" if rc.reason == HIT_HIGH else "until")
                if rc.reason != HIT_HIGH:
                    seg = self.cap.seg
                    settles = self.time_invariant and capacitor.never_reaches(
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
                if rb.reason == HIT_LOW:  # browns out: the monitor interrupts us
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
                st = cyc.units if cyc.started else None  # from the boot's known bound (energy_aware)
                while self.inference < self.sim.inferences:
                    release = self.inference * self.sim.period_s
                    if self.env.now < release:
                        t0, v0 = self.env.now, self.cap.v
                        self.activity = ("sleep", -1, t0, v0)
                        el, done = yield from self._activity(w.sleep_W, release - self.env.now)
                        self.tally.by_category["sleep"] += w.sleep_W * el
                        self._log("sleep", "", -1, -1, t0, self.env.now, v0, self.cap.v, w.sleep_W * el, "done")
                        if not done:
                            self.reason = "until_s reached"
                            return
                    if st is None:  # a new inference, or after a sleep: V is unknown (energy_aware)
                        st = self._stretch(0.0)
                    # play the stretch on the SimPy clock: one timeout per activity of its trace, then the
                    # commit, then the cut (a brown-out, which the monitor fires, or until_s)
                    elapsed, n_whole = self._replay_begin(st)
                    if hot:  # the hot path, here in the process itself (no delegated generator per timeout)
                        for j in range(n_whole):
                            yield timeout(elapsed[j])
                    else:
                        yield from self._rows_with_hooks(n_whole, elapsed)
                    if self._commit(st):
                        yield from self._cut_at(st, elapsed)
                    st = None
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

    def _replay_begin(self, st: stepping.Stretch) -> tuple[list, int]:
        """Before a :class:`~aidi.sim.stepping.Stretch` is played: its sums into the tally; returns the time of each
        activity of its trace (s, Python floats: SimPy's clock and heap are faster on them) and how many of them
        ran whole (all but the cut one, if any)."""
        tally = self.tally
        if self.retry:
            tally.units_reexecuted += 1
            self.retry = False
        tally.add_sums((st.harvested_J, st.consumed_J, st.leaked_J, st.clipped_J))
        if st.measurements:
            tally.by_category["wait"] += st.wait_J
            tally.wait_time += st.wait_s
            tally.measurements += st.measurements
            tally.threshold_waits += st.waits
        m = st.events
        return self.trace.elapsed_s[:m].tolist(), (m - 1 if st.why != ALL_DONE else m)

    def _commit(self, st: stepping.Stretch) -> bool:
        """After a stretch's whole activities: commit its units (FRAM progress) and, if it completed the
        inference, the inference.  Returns whether it ends on a cut (:meth:`_cut_at` follows).

        The completed units' energy by category and layer is added per inference (:meth:`_add_completed`): a
        committed unit never runs again, so each completes once per inference."""
        tally = self.tally
        k = st.k
        if k:
            self.progress += k
            self.fails_in_row = 0
            tally.units_executed += k
        if st.why != ALL_DONE:
            return True
        self.cap.v = st.v
        tally.latencies.append((self.inference, self.env.now - self.inference * self.sim.period_s))
        self.inference += 1
        tally.inferences_completed += 1
        tally.add_units(self.work, 0, len(self.work))
        if self.inference < self.sim.inferences:
            self.progress = 0
            if self.functional is not None:
                self.functional.reset()
        return False

    def _add_completed(self) -> None:
        """At the end of a run: the energy of the units committed in the unfinished inference."""
        if self.inference < self.sim.inferences and self.progress:
            self.tally.add_units(self.work, 0, self.progress)

    def _cut_at(self, st: stepping.Stretch, elapsed: list):
        """The cut a stretch ends on (its trace's last row), after its whole activities."""
        tr, m = self.trace, st.events
        if m >= 2:
            self.cap.v = float(tr.v_end[m - 2])
        yield from self._cut(int(tr.phase[m - 1]), int(tr.unit[m - 1]), elapsed[m - 1], float(tr.v_end[m - 1]),
                             st.why)

    def _rows_with_hooks(self, n_rows, elapsed):
        """The trace's first ``n_rows`` activities one timeout each, with functional execution and the event log."""
        w, fn, log, tr = self.work, self.functional, self.events is not None, self.trace
        phases, units, v_end = tr.phase[:n_rows].tolist(), tr.unit[:n_rows].tolist(), tr.v_end[:n_rows].tolist()
        powers = phase_powers(self.plan.costs)
        v0 = self.cap.v
        for j in range(n_rows):
            t0 = self.env.now
            yield self.env.timeout(elapsed[j])
            i, ph = units[j], phases[j]
            if ph == PH_UNIT:
                if fn is not None:
                    fn.run_unit(i)
                if log:
                    e = w.energy_J[i]
                    self._log("unit", w.names[i], int(w.layers[i]), i, t0, self.env.now, v0, v_end[j],
                              e[0] + e[1] + e[2], "committed")
            elif log:
                self._log(PHASES[ph], w.names[i], int(w.layers[i]), i, t0, self.env.now, v0, v_end[j],
                          powers[ph] * elapsed[j], "done")
            v0 = v_end[j]

    def _cut(self, phase, i, elapsed, v_end, why):
        """The activity a stretch ends on: a brown-out (the monitor interrupts) or until_s."""
        w = self.work
        t0, v0 = self.env.now, self.cap.v
        kind = PHASES[phase]
        self.activity = (kind, i, t0, v0)
        if why == HIT_LOW:
            self.monitor.arm(elapsed, v_end)
            yield self.env.event()  # runs until the monitor's interrupt at `elapsed`
            raise AssertionError("brown-out did not interrupt the MCU")
        yield self.env.timeout(elapsed)
        self.cap.v = v_end
        layer = int(w.layers[i])
        if phase == PH_UNIT:
            e = self.unit_power[i] * elapsed
            self.tally.by_category["unfinished"] += e
            self.tally.by_layer[layer] = self.tally.by_layer.get(layer, 0.0) + e
        else:  # a measurement, wait or wake-up: its energy is in the stretch's wait_J
            e = phase_powers(self.plan.costs)[phase] * elapsed
        self._log(kind, w.names[i], layer, i, t0, self.env.now, v0, self.cap.v, e, "until")
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
        elif kind in ("measure", "wait", "wake"):  # its energy and wait time are in the stretch's sums
            i = self.progress
            if self.events is not None:
                e = phase_powers(self.plan.costs)[PHASES.index(kind)] * el
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


def run(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig, functional=None,
        log: bool = False) -> tuple[RunRecord, list[Event] | None]:
    """Run the SimPy model; returns (its :class:`~aidi.sim.workload.RunRecord`, the event log (:class:`Event`
    records) or None).  Raises NonProgressError (a ValueError) for a run that cannot progress.

    Under a power front end (``power.frontend``) the workload's loads are drawn through its buck
    (:func:`aidi.sim.frontend.loads`) and the record counts its input converter's loss
    (:func:`aidi.sim.frontend.with_input_loss`)."""
    work = frontend.loads(work, power)
    check_progress(work, power, seg)
    env = simpy.Environment()
    dev = Device(env, work, power, seg, sim, functional=functional, log=log)
    env.run(until=dev.process)
    completed = dev.completed
    reason = "" if completed else (dev.reason or "until_s reached")
    if not completed and dev.fails_in_row >= 2 and dev.time_invariant:
        raise NonProgressError(reason)
    dev._add_completed()
    rec = frontend.with_input_loss(RunRecord.of(dev.tally, power, dev.cap.v, env.now, completed, reason, "des",
                                                work, sim), seg)
    if functional is not None:
        rec = replace(rec, output=tuple(int(x) for x in np.asarray(functional.output()).ravel()),
                      output_matches_reference=bool(functional.output_matches_reference()))
    return rec, dev.events


def simulate(work: Workload, power: PowerConfig, seg: Segments, sim: SimConfig, functional=None,
             log: bool = False) -> tuple[dict, list[Event] | None]:
    """:func:`run`, its record as the ``aidi run --json`` dict."""
    rec, events = run(work, power, seg, sim, functional, log)
    return rec.as_json(), events
