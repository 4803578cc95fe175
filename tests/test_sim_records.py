"""Named values across the numba boundary: the records the simulator's compiled code takes and returns
(capacitor.Circuit / Limits / Move, dispatch.DispatchPlan / Step, stepping.Units / Trace / Stretch / Cycle /
Merged, oracle's Compiled / Config / RunSpec / Sinks / RunEnd and its named counters), the engines' typed
run record (workload.RunRecord) and the SimPy model's event log (des.Event), read by field name."""

from __future__ import annotations

import numpy as np
import pytest

from aidi.analysis import report
from aidi.sim import des, oracle
from aidi.sim import harvesters as hv
from aidi.sim import capacitor as ph
from aidi.sim import dispatch, stepping
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.workload import Workload

CAP = 1e-3


def stored(v):
    return 0.5 * CAP * v * v


def circ(seg, i_leak=2e-6, v_max=3.3):
    return ph.Circuit(CAP, i_leak, v_max, seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs, seg.period)


@pytest.mark.parametrize("seg,v0,p_load,v_low,horizon", [
    (hv.thevenin(3.6, 100.0), 0.5, 0.0, -1.0, 50.0),  # charges into the clamp: clipped > 0
    (hv.constant(1e-3), 3.0, 4e-3, 1.8, 10.0),  # discharges to v_low
    (hv.from_samples(np.array([0.0, 0.3, 0.7]), np.array([2e-3, 0.0, 5e-3]), True, "trace"), 2.5, 1e-3, 1.8, 3.0),
])
def test_advance_result_named_fields_close_the_energy_balance(seg, v0, p_load, v_low, horizon):
    r = ph.advance(v0, 0.0, horizon, p_load, v_low, 3.0, False, circ(seg))
    assert isinstance(r, ph.Move)
    assert r._fields == ("elapsed_s", "v_end", "reason", "harvested_J", "consumed_J", "leaked_J", "clipped_J")
    assert r.reason in (ph.HORIZON, ph.HIT_LOW)
    assert 0.0 < r.elapsed_s <= horizon
    assert r.consumed_J == pytest.approx(p_load * r.elapsed_s, rel=1e-12, abs=1e-18)
    lhs = stored(v0) + r.harvested_J
    rhs = stored(r.v_end) + r.consumed_J + r.leaked_J + r.clipped_J
    assert lhs == pytest.approx(rhs, rel=1e-9)
    if r.reason == ph.HIT_LOW:
        assert r.v_end == v_low
    if v_low < 0.0:
        assert r.v_end == 3.3 and r.clipped_J > 0.0


def _units(n, d, p_mcu, boot_s=1e-3, boot_W=2e-3):
    run_end = np.full(n, n, dtype=np.int64)
    per_len = np.zeros(n, dtype=np.int64)
    return stepping.Units(np.full(n, d), np.full(n, p_mcu), np.zeros(n, dtype=np.int64), run_end, per_len, per_len,
                          boot_s, boot_W, 1e-6)


def test_cycle_record_is_advance_then_the_stretch():
    """stepping.cycle (a Cycle of two Moves and a Stretch) == advance for the charge and the boot, then stretch."""
    seg = hv.thevenin(3.2, 150.0)
    c = circ(seg)
    units = _units(3, 1e-3, 1e-3)
    lim = ph.Limits(1.0, 3.0, 1.8, 1e6)
    plan = dispatch.DispatchPlan(False, np.empty(0), np.empty(0), 0.0, dispatch.PhaseCosts(0, 0, 0, 0, 0), 1.0)
    cyc = stepping.cycle(1.0, 0.0, 0.0, 0, units, plan, lim, c, stepping.trace_for(3))
    assert isinstance(cyc, stepping.Cycle) and isinstance(cyc.charge, ph.Move) and isinstance(cyc.units,
                                                                                            stepping.Stretch)
    assert cyc.charge == ph.advance(1.0, 0.0, 1e6, 0.0, -1.0, 3.0, True, c)
    assert cyc.charge.reason == ph.HIT_HIGH and cyc.charge.v_end == 3.0
    assert cyc.boot == ph.advance(3.0, cyc.charge.elapsed_s, 1e-3, 2e-3, 1.8, 3.0, False, c)
    assert cyc.started and cyc.units.k == 3 and cyc.units.why == ph.ALL_DONE and cyc.units.events == 3
    # released later than the boot ends: no units in this cycle
    late = stepping.cycle(1.0, 0.0, 1e3, 0, units, plan, lim, c, stepping.trace_for(3))
    assert not late.started and late.boot == cyc.boot


def test_stretch_merged_and_traced_agree_and_match_run_units_merged():
    """The oracle's stretch (no trace: one merged move) and the SimPy model's (a trace row per unit) end at the
    same unit, time and voltage, and the merged one is run_units_merged's."""
    seg = hv.constant(1e-3)
    c = circ(seg, i_leak=0.0)
    n = 40
    units = _units(n, 0.02, 6e-3)
    lim = ph.Limits(1.0, 3.0, 1.8, 1e6)
    plan = dispatch.DispatchPlan(False, np.empty(0), np.empty(0), 0.0, dispatch.PhaseCosts(0, 0, 0, 0, 0), 1.0)
    m = stepping.run_units_merged(3.0, 0.0, 0, n, units, lim, c)
    assert isinstance(m, stepping.Merged)
    merged = stepping.stretch(3.0, 0.0, 0, 0.0, units, plan, lim, c, stepping.NO_TRACE)
    trace = stepping.trace_for(n)
    traced = stepping.stretch(3.0, 0.0, 0, 0.0, units, plan, lim, c, trace)
    assert (m.k, m.reason) == (merged.k, merged.why) == (traced.k, traced.why)
    assert m.reason == ph.HIT_LOW and 0 < m.k < n  # 6 mW units from a 1 mW source brown out
    assert merged.events == 0 and traced.events == m.k + 1
    assert traced.v == merged.v == m.v_cut == 1.8
    assert traced.cut_s == trace.elapsed_s[m.k] == pytest.approx(m.el_cut, rel=1e-9)
    assert m.t_k == pytest.approx(m.k * 0.02, rel=1e-12)
    assert traced.t == pytest.approx(m.t_k + m.el_cut, rel=1e-12)
    for a, b in ((merged, m), (traced, m)):
        assert (a.harvested_J, a.consumed_J, a.leaked_J, a.clipped_J) == pytest.approx(
            (b.harvested_J, b.consumed_J, b.leaked_J, b.clipped_J), rel=1e-9)


def test_energy_aware_stretch_merges_the_units_its_bound_carries():
    """Under energy_aware, units the carried bound starts unmeasured merge into one move in the oracle's stretch;
    the traced one steps them: same units, measurements, waits, time and voltage (to rounding)."""
    seg = hv.constant(2e-3)
    n = 64
    units = _units(n, 2e-3, 20e-3)
    power = PowerConfig(CAP, 3.0, 2.8, 3.3, leakage_A=1e-7)
    e = np.tile([[40e-6, 0.0, 0.0]], (n, 1))
    work = Workload([f"u{i}" for i in range(n)], np.zeros(n, dtype=np.int64), np.full(n, 2e-3), e, 1e-3, 2e-6, 1e-6,
                    measure_s=46e-6, measure_W=6e-3, wait_W=8e-6, wake_s=1e-5, wake_W=5.7e-3)
    plan = dispatch.make_plan(work, power, 0.05)
    assert isinstance(plan, dispatch.DispatchPlan) and plan.aware and plan.v_start.shape == (n,)
    c = ph.circuit(power, seg)
    lim = ph.limits(power, 1e6)
    merged = stepping.stretch(3.0, 0.0, 0, 3.0, units, plan, lim, c, stepping.NO_TRACE)
    trace = stepping.trace_for(n)
    traced = stepping.stretch(3.0, 0.0, 0, 3.0, units, plan, lim, c, trace)
    assert merged.why == traced.why == ph.ALL_DONE and merged.k == traced.k == n
    assert (merged.measurements, merged.waits) == (traced.measurements, traced.waits)
    assert 0 < traced.waits < traced.measurements < n  # some units start on the carried bound, some wait
    assert traced.events == n + traced.measurements + 2 * traced.waits
    assert merged.t == pytest.approx(traced.t, rel=1e-12) and merged.v == pytest.approx(traced.v, rel=1e-12)
    assert merged.wait_J == pytest.approx(traced.wait_J, rel=1e-12)


def _work(n=30):
    d = np.full(n, 0.01)
    e = np.tile([[20e-6, 6e-6, 4e-6]], (n, 1))
    return Workload([f"u{i}" for i in range(n)], np.repeat([0, 1], [n // 2, n - n // 2]), d, e, 1e-4, 1e-7, 1.5e-6)


def test_oracle_named_counters_and_run_record():
    """_run takes records and names its counters; its RunEnd and counters agree with the SimPy model."""
    work = _work()
    power = PowerConfig(1e-4, 3.0, 2.0, 3.3, v_initial=3.0)
    seg = hv.constant(1e-3)
    sim = SimConfig(dispatch="greedy", until_s=100.0)
    res_des, _ = des.simulate(work, power, seg, sim)
    assert oracle.INT_COLS[3:] == oracle.COUNTERS and oracle.FLOAT_COLS[2:2 + oracle.N_ACC] == oracle.ACCUMULATORS
    pop = oracle.Population([work])
    cp = pop.compiled
    assert isinstance(cp, oracle.Compiled)
    units = stepping.Units(work.durations_s, cp.power_W, work.layers.astype(np.int64), cp.run_end, cp.per_len,
                           cp.per_end, work.boot_s, work.boot_J / work.boot_s, work.sleep_W)
    plan = dispatch.make_plan(work, power, sim.dispatch_margin, aware=False)
    spec = oracle.RunSpec(power.v_initial, 1, 0.0)
    out = oracle.Sinks(np.zeros(oracle.N_ACC), np.zeros(oracle.N_CAT), np.zeros(2), np.full(1, np.nan),
                       np.zeros(oracle.N_COUNTERS, dtype=np.int64))
    end = oracle._run(units, plan, ph.limits(power, sim.until_s), spec, ph.circuit(power, seg), out)
    assert isinstance(end, oracle.RunEnd)
    assert end.status == oracle.DONE and end.inferences == 1
    assert end.t == pytest.approx(res_des["latency_s"], rel=1e-9)
    assert end.v == pytest.approx(res_des["v_final"], rel=1e-9)
    assert out.cnt[oracle.N_CYCLES] == res_des["power_cycles"]
    assert out.cnt[oracle.N_EXECUTED] == res_des["units_executed"]
    assert out.cnt[oracle.N_LOST] == res_des["units_lost"] > 0
    assert out.cnt[oracle.N_REEXECUTED] == res_des["units_reexecuted"]
    assert out.cnt[oracle.N_INFERENCES] == 1
    assert out.acc[oracle.H] == pytest.approx(res_des["energy_J"]["harvested"], rel=1e-9)
    assert out.acc[oracle.ON] + out.acc[oracle.OFF] == pytest.approx(end.t, rel=1e-12)


def test_event_log_records_and_named_columns():
    work = _work()
    power = PowerConfig(1e-4, 3.0, 2.0, 3.3, v_initial=0.0)
    res, log = des.simulate(work, power, hv.constant(1e-3), SimConfig(dispatch="greedy", until_s=100.0), log=True)
    assert all(isinstance(ev, des.Event) for ev in log)
    first = log[0]
    assert first.kind == "charge" and first.outcome == "power_good"
    assert (first.t_start, first.v_start, first.v_end, first.energy_J) == (0.0, 0.0, power.v_on, 0.0)
    lost = [ev for ev in log if ev.outcome == "lost"]
    assert len(lost) == res["units_lost"] > 0
    assert all(ev.kind == "unit" and ev.name == f"u{ev.unit}" and ev.layer == work.layers[ev.unit] for ev in lost)
    ev = report.events_frame(log)
    assert tuple(ev.columns) == des.EVENT_COLUMNS == des.Event._fields
    assert len(ev) == len(log)
    row = next(ev.itertuples(index=False))
    assert (row.kind, row.t_end, row.v_end) == (first.kind, first.t_end, first.v_end)
    committed = ev[(ev["kind"] == "unit") & (ev["outcome"] == "committed")]
    assert len(committed) == res["units_executed"]
    assert committed["energy_J"].sum() == pytest.approx(work.energy_J.sum(), rel=1e-12)
    assert ev["t_end"].iloc[-1] == res["sim_time_s"] and ev["v_end"].iloc[-1] == res["v_final"]


def test_engines_return_a_frozen_run_record_whose_json_is_the_contract():
    """des.run and oracle.run return a frozen RunRecord; as_json (the one place the JSON is made) is what
    simulate returns, and the two engines' records agree."""
    import dataclasses

    from aidi.sim.workload import RunRecord

    work = _work()
    power = PowerConfig(1e-4, 3.0, 2.0, 3.3, v_initial=3.0)
    seg = hv.constant(1e-3)
    sim = SimConfig(dispatch="greedy", until_s=100.0)
    rec, _ = des.run(work, power, seg, sim)
    rec_o = oracle.run(work, power, seg, sim)
    for r in (rec, rec_o):
        assert isinstance(r, RunRecord)
        with pytest.raises(dataclasses.FrozenInstanceError):
            r.completed = False
    assert rec.as_json() == des.simulate(work, power, seg, sim)[0]
    assert rec_o.as_json() == oracle.simulate(work, power, seg, sim)
    assert rec.completed and rec.latency_s == rec.t_end_s == pytest.approx(rec_o.latency_s, rel=1e-9)
    assert (rec.engine, rec_o.engine) == ("des", "oracle")


def test_no_compiled_entry_point_takes_more_than_ten_positional_arguments():
    """Named records cross the numba boundary: every compiled function of sim/ takes at most 10 arguments."""
    import inspect

    from aidi.sim import bound

    for mod in (ph, dispatch, stepping, oracle, bound):
        for name, fn in vars(mod).items():
            py = getattr(fn, "py_func", None)
            if py is not None and py.__module__ == mod.__name__:
                assert len(inspect.signature(py).parameters) <= 10, f"{mod.__name__}.{name}"
