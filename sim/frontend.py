"""The power-management front end: a shepherd-core virtual-source preset (``[power] frontend``).

shepherd-core (the Shepherd testbed's own model, pinned in requirements.txt) ships power-management ICs as data:
``VirtualSourceConfig(name=...)`` presets (``data_models/content/virtual_source_fixture.yaml``: TI BQ25504,
BQ25570, diode+capacitor, direct, ...) with input (boost) and output (buck) efficiency LUTs, thresholds and a
storage element.  aidi reads them at run time, never copies the numbers; :func:`preset` turns one into a
:class:`Frontend` through shepherd-core's own ``ConverterPRUConfig.from_vsrc`` (the integer tables its emulator
runs: the input LUT in 1/256, the output LUT as inverse efficiency in 1/16), so a lookup here equals the
emulator's ``VirtualConverterModel.get_input_efficiency`` / ``get_output_inv_efficiency`` bit for bit
(tests/test_frontend.py).

How aidi uses a preset
----------------------
* Input (boost): the harvester's power at its operating point (V_in, I_in) enters the capacitor as
  eta_in(V_in, I_in) * V_in * I_in (:func:`Frontend.input_power`, shepherd's ``calc_inp_power``: input drop,
  V_input_max and I_input_max clip, no harvest below the boost's V_input_boost_threshold).  A piecewise source
  keeps one efficiency per segment, so the closed forms of :mod:`aidi.sim.capacitor` still hold.  Shepherd
  recordings and traces with voltage and current give V_in per sample (averaged into the segment's power);
  sources without a voltage (constant, a power_W trace) take ``[power] v_input_V``; pv gives its cell's
  operating voltage per segment under the preset's MPPT (:func:`aidi.sim.harvesters.pv_cell_voltage`,
  ``Frontend.mppt_setpoint``); a Thevenin source
  behind a boost converter is taken at its maximum-power point (V_s / 2, V_s / 2R), without a boost it stays
  on the capacitor (V_s less the input drop).  The harvester's own power is kept as ``Segments.raw_p``; what
  the converter loses is counted after the run (:func:`with_input_loss`) as ``by_category.converter_input``,
  and ``harvested`` is then the harvester's energy (before the boost), so the balance still closes.
* Output (buck): the MCU runs at the regulated V_output; the platform's powers are given at its nominal
  supply (``PowerConfig.load_v_nominal_V``, the datasheet's 3.0 V), so a load of power P draws
  I = P / v_nominal (the MSP430's current barely depends on its supply) and the MCU spends I * V_out.  The
  capacitor gives I * V_out / eta_out(I), eta_out from the output LUT at that current (:func:`loads`, per unit,
  and per boot, sleep and dispatch phase).  ``PowerConfig.converter_efficiency`` is eta_out at the platform's
  active current (the loader sets it): every consumer of that scalar (check, the design search, the NAS's
  budgets) sees the buck at the MCU's own operating point.  Every place a unit's power becomes capacitor
  energy takes the loads through :func:`loads` (its factor :func:`load_scale`): both engines, ``aidi check``'s
  latency bound and unit table, the design search's per-cycle atomicity (:func:`runnable`) and the emitted
  firmware's threshold tables (:mod:`aidi.models.emit.dispatch`).  A load whose current falls in another LUT bin
  draws exactly its own I V_out / eta_out(I); its category then holds its extra loss (eta_ref / eta - 1).
  Without a buck (BQ25504, diode+capacitor, direct) the MCU sits on the capacitor: efficiency 1, the
  platform's powers as they are.
* Thresholds: the MCU boots when the power-good signal rises and browns out when it falls: v_on = the larger
  of the power-good enable threshold and the output-enable threshold, v_off the larger of the power-good and
  output disable thresholds (``calc_internal_states``).  Storage: capacitance ``capacity_in_uF`` (q / V_OC at
  full charge), v_initial = its V_OC at ``SoC_init``, v_max = the preset's V_mid_max; leakage through
  R_leak taken as the constant current (v_on + v_off) / 2 / R_leak (aidi's leakage is a constant current).
  Every one of these the scenario's ``[power]`` keys override.
* Threshold-check interval: the BQ presets look at their thresholds every 64 ms (``interval_check_thresholds_ms``;
  shepherd's ``update_states_and_output`` checks at its first sample and every interval after), so power good
  rises at the first check instant k * 64 ms that finds V >= v_on and falls at the first that finds V <= v_off
  (``PowerConfig.threshold_check_s``, :func:`aidi.sim.capacitor.advance`; ``[power] threshold_check_s``
  overrides it, 0 decides at the threshold).  Between two checks the MCU draws on below v_off; it stops anyway
  at its minimum supply, :data:`MCU_MIN_SUPPLY_V` plus the output's drop (:attr:`Frontend.v_floor`: 2.0 V of
  storage under the BQ25570), and then waits, off, for power good to rise again (a real MSP430 would restart
  at its brown-out reset's release while the output is still on: not modelled).  Its draw there stays P / eta
  (the buck no longer regulates below V_out + drop: not modelled).  A preset whose power good is immediate
  (``immediate_pwr_good_signal``, the ``...s`` variants) decides at the threshold (its output switch still waits
  for a check: left out).
* Not modelled: the output capacitor's charge at enable (dV_mid_enable_output), the KiBaM storage's series
  resistance (0 for the capacitor presets).
  tests/test_frontend_shepherd.py measures what these leave against shepherd-core's ``simulate_source``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from functools import lru_cache

import numpy as np

from .harvesters import Segments, TraceError, _shepherd_quiet

#: the presets the scenario format names (any other shepherd-core VirtualSourceConfig name works too)
PRESETS = ("BQ25570", "BQ25504", "diode+capacitor", "direct")
#: the MSP430FR5994's minimum supply (V): TI SLASE54 (MSP430FR599x datasheet), recommended operating conditions,
#: V_CC 1.8 V to 3.6 V; below it the MCU stops whatever the front end's power good says
MCU_MIN_SUPPLY_V = 1.8


class FrontendError(TraceError):
    """A front end that cannot be used (a TraceError: the power path's bad input); one line naming the key."""


@dataclass(frozen=True)
class Frontend:
    """One shepherd-core virtual-source preset as aidi uses it (SI units; LUTs as shepherd's emulator holds them).

    capacitor_F is None when the preset has no storage (``direct``).
    """

    name: str
    boost: bool  #: input through the boost converter (its LUT, threshold)
    buck: bool  #: output through the buck converter at v_out
    capacitor_F: float | None  #: storage capacitance (F)
    v_initial: float  #: storage voltage at the start (V)
    r_leak_ohm: float  #: storage self-discharge resistance (ohm; inf: none)
    v_on: float  #: power good rises (V, storage voltage)
    v_off: float  #: power good falls (V)
    v_max: float  #: the boost stops charging (V)
    v_out: float  #: the buck's regulated output (V)
    check_interval_s: float  #: the preset checks its thresholds this often (s; 0: continuously)
    immediate_power_good: bool  #: its power good follows the thresholds at once (a Schmitt trigger)
    v_output_drop: float  #: the output's drop below the storage when the buck cannot regulate (V, V_buck_drop)
    mppt_setpoint: float | None  #: its harvester's MPPT: a fraction of V_oc (mppt_voc), None: the optimum
    v_input_max: float  #: input voltage clip (V)
    i_input_max: float  #: input current clip (A)
    v_input_drop: float  #: input diode drop (V)
    v_boost_min: float  #: no harvest below this input voltage with a boost (V)
    lut_in: tuple  #: 12 x 12 input efficiency in 1/256, [voltage bin][log2 current bin]
    lut_in_v_log2: int  #: input voltage bin width 2^k uV
    lut_in_i_log2: int  #: input current bins from 2^k nA (log2 steps)
    lut_out_inv: tuple  #: 12 output inverse efficiencies in 1/16, by log2 current bin
    lut_out_i_log2: int  #: output current bins from 2^k nA

    @property
    def power_good_check_s(self) -> float:
        """How often power good (the MCU's boot and brown-out) is decided (s; 0: at the threshold): the preset's
        threshold-check interval, 0 when its power good is immediate (shepherd's ``immediate_pwr_good_signal``;
        its output switch still waits for a check, which aidi leaves out)."""
        return 0.0 if self.immediate_power_good else self.check_interval_s

    @property
    def v_floor(self) -> float:
        """The storage voltage (V) at which the MCU stops, whatever power good says: its minimum supply
        :data:`MCU_MIN_SUPPLY_V` plus the output's drop (below V_out + drop the buck passes V_mid - drop)."""
        return MCU_MIN_SUPPLY_V + self.v_output_drop

    def leakage_A(self, v_on: float, v_off: float) -> float:
        """The storage's leakage as aidi's constant current (A): (v_on + v_off) / 2 / R_leak."""
        return 0.0 if not math.isfinite(self.r_leak_ohm) else 0.5 * (v_on + v_off) / self.r_leak_ohm

    def input_efficiency(self, v_V, i_A) -> np.ndarray:
        """The input LUT at (V_in, I_in): shepherd's ``get_input_efficiency`` on arrays (volts, amperes)."""
        v_uv = np.floor(np.maximum(np.asarray(v_V, dtype=np.float64), 0.0) * 1e6)
        i_na = np.floor(np.maximum(np.asarray(i_A, dtype=np.float64), 0.0) * 1e9)
        pos_v = np.minimum(np.floor(v_uv / 2.0 ** self.lut_in_v_log2), 11).astype(np.int64)
        pos_c = _log2_bin(i_na, self.lut_in_i_log2)
        return np.asarray(self.lut_in)[pos_v, pos_c] / 256.0

    def output_efficiency(self, i_A) -> np.ndarray:
        """The output LUT at the load current (A): 1 / shepherd's ``get_output_inv_efficiency`` (1 without a buck)."""
        i_A = np.asarray(i_A, dtype=np.float64)
        if not self.buck:
            return np.ones_like(i_A)
        pos = _log2_bin(np.floor(np.maximum(i_A, 0.0) * 1e9), self.lut_out_i_log2)
        return 16.0 / np.asarray(self.lut_out_inv, dtype=np.float64)[pos]

    def input_power(self, v_V, i_A) -> np.ndarray:
        """Power (W) into the storage of a harvester at (V_in, I_in) (arrays): shepherd's ``calc_inp_power`` for
        IV samples.  The input drop comes off V, V and I are clipped to V_input_max and I_input_max; with a boost,
        V below its threshold harvests nothing and the rest is times the input LUT.  Without a boost the diode's
        drop is all, with the storage taken below V_in - drop (above it, shepherd's model puts I_in in at the
        storage's own voltage instead)."""
        v = np.maximum(np.asarray(v_V, dtype=np.float64), 0.0)
        i = np.minimum(np.maximum(np.asarray(i_A, dtype=np.float64), 0.0), self.i_input_max)
        v = np.minimum(np.maximum(v - self.v_input_drop, 0.0), self.v_input_max)
        if not self.boost:
            return v * i
        v = np.where(v < self.v_boost_min, 0.0, v)
        return self.input_efficiency(v, i) * v * i


def _log2_bin(x_na: np.ndarray, k: int) -> np.ndarray:
    """shepherd's log2 LUT position: int(log2(int(x / 2^k))) for x / 2^k >= 1, else 0, at most 11."""
    n = np.floor(x_na / 2.0 ** k)
    pos = np.zeros(n.shape, dtype=np.int64)
    big = n >= 1.0
    pos[big] = np.floor(np.log2(n[big])).astype(np.int64)
    return np.minimum(pos, 11)


@lru_cache(maxsize=16)
def preset(name: str) -> Frontend:
    """The :class:`Frontend` of shepherd-core's virtual-source preset ``name`` (read at run time, cached).

    Raises FrontendError (one line, naming ``power.frontend``) for a name shepherd-core does not know.
    """
    try:
        from shepherd_core.data_models.content.virtual_source_config import VirtualSourceConfig
        from shepherd_core.data_models.content.virtual_source_config_pru import ConverterPRUConfig
    except ImportError:  # pragma: no cover - a pinned dependency
        raise FrontendError("power.frontend: needs the shepherd-core package (pip install -r requirements.txt)") \
            from None
    with _shepherd_quiet():
        try:
            cfg = VirtualSourceConfig(name=name)
        except Exception:  # pydantic's ValidationError: not a preset of shepherd-core
            raise FrontendError(f"power.frontend: unknown preset {name!r} (shepherd-core's virtual sources: "
                                f"{', '.join(PRESETS)}, ...)") from None
        pru = ConverterPRUConfig.from_vsrc(cfg)
    st = cfg.storage
    states = cfg.calc_internal_states()
    return Frontend(
        name=name,
        boost=pru.boost_is_enabled(),
        buck=pru.buck_is_enabled(),
        capacitor_F=None if st is None else st.capacity_in_uF * 1e-6,
        v_initial=0.0 if st is None else st.V_init,
        r_leak_ohm=math.inf if st is None or st.R_leak_Ohm > 1e300 else float(st.R_leak_Ohm),
        v_on=1e-3 * max(cfg.V_pwr_good_enable_threshold_mV, states["V_mid_enable_output_threshold_mV"]),
        v_off=1e-3 * max(cfg.V_pwr_good_disable_threshold_mV, states["V_mid_disable_output_threshold_mV"]),
        v_max=1e-3 * min(states["V_mid_max_mV"], 1e3 * st.calc_V_OC(1.0) if st is not None else math.inf),
        v_out=1e-6 * pru.V_output_uV,
        check_interval_s=1e-3 * cfg.interval_check_thresholds_ms,
        immediate_power_good=bool(cfg.immediate_pwr_good_signal),
        v_output_drop=1e-6 * pru.V_buck_drop_uV,
        mppt_setpoint=(float(cfg.harvester.setpoint_n) if str(cfg.harvester.algorithm).endswith("mppt_voc")
                       else None),
        v_input_max=1e-6 * pru.V_input_max_uV,
        i_input_max=1e-9 * pru.I_input_max_nA,
        v_input_drop=1e-6 * pru.V_input_drop_uV,
        v_boost_min=1e-6 * pru.V_input_boost_threshold_uV,
        lut_in=tuple(tuple(int(x) for x in row) for row in pru.LUT_inp_efficiency_n8),
        lut_in_v_log2=int(pru.LUT_input_V_min_log2_uV),
        lut_in_i_log2=int(pru.LUT_input_I_min_log2_nA),
        lut_out_inv=tuple(int(x) for x in pru.LUT_out_inv_efficiency_n4),
        lut_out_i_log2=int(pru.LUT_output_I_min_log2_nA),
    )


def through(fe: Frontend, seg, v_input_V: float | None = None):
    """The segments of a harvester whose power ``seg`` gives (W at the harvester) as they enter the storage
    through the front end ``fe``: per segment input_power(V_in, P / V_in) at ``v_input_V`` (V; or an array, one
    voltage per segment, for a source that gives its own: pv), the harvester's power kept as ``raw_p``.
    Segments that already carry ``raw_p`` (a recording or trace read per sample)
    are returned as they are; a Thevenin source is taken at its maximum-power point behind a boost, and with
    its source voltage less the input drop without one (the module docstring).  A front end with neither a
    boost nor an input drop passes the power through.

    Raises FrontendError naming power.v_input_V when a voltage is needed and missing, outside the preset's
    input range (above V_input_max, below the boost's threshold) or when the current P / V_in is above
    I_input_max."""
    if seg.raw_p is not None:  # read through the front end per sample, at the file's own voltages
        if v_input_V is not None and np.ndim(v_input_V) == 0:
            raise FrontendError(f"power.v_input_V: not with a {seg.kind} that gives voltage and current per sample "
                                f"(each sample is read at its own voltage)")
        return seg
    if not fe.boost and fe.v_input_drop == 0.0:
        return seg
    zeros = np.zeros_like(seg.seg_p)
    if np.any(seg.seg_g > 0.0):
        if not fe.boost:
            return Segments(seg.seg_t, seg.seg_p, seg.seg_g, np.maximum(seg.seg_vs - fe.v_input_drop, 0.0),
                            seg.period, seg.kind)
        v, i = seg.seg_vs / 2.0, seg.seg_vs * seg.seg_g / 2.0
        raw = seg.seg_p + v * i
        return Segments(seg.seg_t, fe.input_power(v, i) + seg.seg_p, zeros, zeros, seg.period, seg.kind, raw_p=raw)
    if np.ndim(v_input_V) > 0:  # one voltage per segment: a source that gives its own (pv)
        return _through_per_segment(fe, seg, np.asarray(v_input_V, dtype=np.float64))
    where = f"power.v_input_V: {fe.name}"
    if v_input_V is None:
        raise FrontendError(f"power.v_input_V: missing: the {seg.kind} source gives no voltage, and the {fe.name} "
                            "front end's input efficiency depends on it (the harvester's operating voltage, V)")
    if v_input_V > fe.v_input_max:
        raise FrontendError(f"{where}'s input range ends at V_input_max = {fe.v_input_max:g} V, got {v_input_V:g} V")
    if fe.boost and v_input_V < fe.v_boost_min:
        raise FrontendError(f"{where}'s boost harvests nothing below {fe.v_boost_min:g} V "
                            f"(V_input_boost_threshold), got {v_input_V:g} V")
    i = seg.seg_p / v_input_V
    if np.any(i > fe.i_input_max):
        k = int(np.argmax(i))
        raise FrontendError(f"{where}: the {seg.kind} source's {seg.seg_p[k]:g} W at {v_input_V:g} V is {i[k]:g} A, "
                            f"above the preset's input range (I_input_max = {fe.i_input_max:g} A)")
    return Segments(seg.seg_t, fe.input_power(v_input_V, i), seg.seg_g, seg.seg_vs, seg.period, seg.kind,
                    raw_p=seg.seg_p)


def _through_per_segment(fe: Frontend, seg, v: np.ndarray):
    """:func:`through` of a source that gives its operating voltage ``v`` (V) per segment: the input power at
    (v, P / v), 0 where v is 0 or below the boost's threshold.  FrontendError (naming the harvester) where v is
    above V_input_max or P / v above I_input_max."""
    i = np.divide(seg.seg_p, v, out=np.zeros_like(seg.seg_p), where=v > 0.0)
    where = f"harvester: the {seg.kind} source"
    if np.any(v > fe.v_input_max):
        k = int(np.argmax(v))
        raise FrontendError(f"{where}'s operating voltage {v[k]:g} V is above the {fe.name} preset's V_input_max = "
                            f"{fe.v_input_max:g} V")
    if np.any(i > fe.i_input_max):
        k = int(np.argmax(i))
        raise FrontendError(f"{where}'s {seg.seg_p[k]:g} W at {v[k]:g} V is {i[k]:g} A, above the {fe.name} preset's "
                            f"input range (I_input_max = {fe.i_input_max:g} A): use a smaller harvester.area_cm2")
    return Segments(seg.seg_t, fe.input_power(v, i), seg.seg_g, seg.seg_vs, seg.period, seg.kind, raw_p=seg.seg_p)


def reference_efficiency(fe: Frontend, active_W: float, v_nominal: float) -> float:
    """eta_out at the MCU's active current active_W / v_nominal (A): ``PowerConfig.converter_efficiency``."""
    return float(fe.output_efficiency(active_W / v_nominal))


def load_scale(power, p_W) -> np.ndarray:
    """The factor (array like ``p_W``) by which :func:`loads` multiplies a load of nominal power ``p_W`` (W, at
    the platform's ``load_v_nominal_V``) under ``power``'s front end: (V_out / v_nominal) * (eta_ref /
    eta_out(p_W / v_nominal)), eta_ref = ``power.converter_efficiency``; 1 without a front end or a buck.  The one
    place a unit's power becomes what the capacitor gives for it (the engines, ``aidi check``, the design search's
    atomicity and the emitted thresholds all go through it)."""
    p = np.asarray(p_W, dtype=np.float64)
    if not power.frontend:
        return np.ones_like(p)
    fe = preset(power.frontend)
    if not fe.buck:
        return np.ones_like(p)
    v_nom = power.load_v_nominal_V
    return fe.v_out / v_nom * power.converter_efficiency / fe.output_efficiency(p / v_nom)


def load_scale_range(power) -> tuple[float, float]:
    """The smallest and largest :func:`load_scale` over every load current (the output LUT's bins): (1, 1)
    without a front end or a buck."""
    if not power.frontend or not preset(power.frontend).buck:
        return 1.0, 1.0
    fe = preset(power.frontend)
    bins = 2.0 ** (np.arange(len(fe.lut_out_inv)) + fe.lut_out_i_log2) * 1e-9 * power.load_v_nominal_V  # W
    s = load_scale(power, bins)
    return float(s.min()), float(s.max())


def loads(work, power):
    """The :class:`~aidi.sim.workload.Workload` the engines run under ``power``'s front end (``work`` itself
    without one, or without a buck): every load of nominal power P (unit, boot, sleep, measurement, LPM3 wait,
    wake-up) becomes P * (V_out / v_nominal) * (eta_ref / eta_out(P / v_nominal)), so that drawn through the
    scalar converter_efficiency eta_ref it takes I V_out / eta_out(I) from the capacitor (see the module
    docstring).  Durations are unchanged."""
    if not power.frontend or not preset(power.frontend).buck:
        return work
    s_units = load_scale(power, work.power_W)
    s_boot, s_sleep, s_meas, s_wait, s_wake = (float(x) for x in load_scale(power,
        [work.boot_J / work.boot_s, work.sleep_W, work.measure_W, work.wait_W, work.wake_W]))
    return replace(work, energy_J=work.energy_J * s_units[:, None], boot_J=work.boot_J * s_boot,
                   sleep_W=work.sleep_W * s_sleep, measure_W=work.measure_W * s_meas, wait_W=work.wait_W * s_wait,
                   wake_W=work.wake_W * s_wake)


def runnable(work, power, margin: float, aware: bool) -> np.ndarray:
    """Which units (bool, one per unit of ``work``, a Workload at the platform's nominal loads) one power cycle
    can carry with no harvest at all, as the engines draw them (:func:`loads`): the boot and the unit drawn
    through the converter fit the energy stored between V_on and V_off, ((E_boot + E_unit) / eta <=
    ``power.e_store_J``, :func:`aidi.sim.workload.progress_violation` without a source), and under energy_aware
    (``aware``) the unit's start threshold is at most V_on (:func:`aidi.sim.dispatch.make_plan` with dispatch
    margin ``margin``: leakage included).  The design search's per-cycle atomicity under a front end."""
    from .dispatch import make_plan

    drawn = loads(work, power)
    eta = power.converter_efficiency
    ok = (drawn.boot_J + drawn.energy_J.sum(axis=1)) / eta <= power.e_store_J
    if aware:
        ok &= ~(make_plan(drawn, power, margin).v_start > power.v_on)
    return ok


def _energy_until(seg_t: np.ndarray, p: np.ndarray, period: float, t_end: float) -> float:
    """int_0^t_end of a piecewise-constant power (segments starting at seg_t, repeating with period > 0) (J)."""
    if t_end <= 0.0:
        return 0.0
    if period <= 0.0:
        ends = np.append(seg_t[1:], math.inf)
        return float(np.sum(p * np.clip(np.minimum(ends, t_end) - seg_t, 0.0, None)))
    whole = math.floor(t_end / period)
    rest = t_end - whole * period
    ends = np.append(seg_t[1:], period)
    one = float(np.sum(p * (ends - seg_t)))
    return whole * one + float(np.sum(p * np.clip(np.minimum(ends, rest) - seg_t, 0.0, None)))


def input_loss_J(seg, t_end: float) -> float:
    """Energy (J) the input converter lost over [0, t_end]: the harvester's power ``seg.raw_p`` less what
    entered the storage ``seg.seg_p``, integrated (0 when the segments carry no raw power)."""
    if seg.raw_p is None:
        return 0.0
    return _energy_until(seg.seg_t, np.asarray(seg.raw_p) - seg.seg_p, seg.period, t_end)


def with_input_loss(rec, seg):
    """``rec`` (a :class:`~aidi.sim.workload.RunRecord`) with the input converter's loss: ``harvested`` at the
    harvester (before the boost), the loss in ``consumed`` and in ``by_category.converter_input``; the record
    itself when the segments carry no raw power (no front end)."""
    if seg.raw_p is None:
        return rec
    loss = input_loss_J(seg, rec.t_end_s)
    tally = replace(rec.tally, by_category=dict(rec.tally.by_category))
    tally.harvested += loss
    tally.consumed += loss
    tally.by_category["converter_input"] = loss
    return replace(rec, tally=tally)


__all__ = ["Frontend", "FrontendError", "PRESETS", "preset", "loads", "load_scale", "load_scale_range", "runnable",
           "through", "reference_efficiency", "with_input_loss",
           "input_loss_J"]
