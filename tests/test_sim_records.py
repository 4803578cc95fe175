"""Named values across the numba boundary: the records the simulator's compiled code takes and returns
(physics.Circuit, physics.Move, physics.Merged, oracle's Job / Bounds / Sinks / RunEnd and its named
counters) and the SimPy model's event log (des.Event), read by field name."""

from __future__ import annotations

import numpy as np
import pytest

from aidi.analysis import report
from aidi.sim import des, oracle
from aidi.sim import harvesters as hv
from aidi.sim import physics as ph
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


def test_packed_entry_points_give_the_same_move():
    """predict_move and run_cycle (plain tuples for Python, wrapped with Move._make) == advance."""
    seg = hv.thevenin(3.2, 150.0)
    c = circ(seg)
    params = np.zeros(ph.N_PARAMS)
    params[[ph.P_BOOT_S, ph.P_BOOT_W, ph.P_V_OFF, ph.P_V_ON, ph.P_UNTIL, ph.P_CAP, ph.P_I_LEAK, ph.P_V_MAX,
            ph.P_PERIOD]] = (1e-3, 2e-3, 1.8, 3.0, 1e6, CAP, c.leakage_A, c.v_max, seg.period)
    seg4 = np.vstack([seg.seg_t, seg.seg_p, seg.seg_g, seg.seg_vs])
    m = ph.Move._make(ph.predict_move(2.5, 0.0, 0.2, 5e-3, 1.8, False, params, seg4))
    assert m == ph.advance(2.5, 0.0, 0.2, 5e-3, 1.8, 3.0, False, c)
    rc, rb, ru = ph.run_cycle(1.0, 0.0, True, 0.0, 0, np.full(3, 1e-3), np.full(3, 1e-3), params, seg4)
    charge, boot = ph.Move._make(rc), ph.Move._make(rb)
    assert charge == ph.advance(1.0, 0.0, 1e6, 0.0, -1.0, 3.0, True, c)
    assert charge.reason == ph.HIT_HIGH and charge.v_end == 3.0
    assert boot == ph.advance(3.0, charge.elapsed_s, 1e-3, 2e-3, 1.8, 3.0, False, c)
    k, elapsed, v_end, reason, sums = ru
    assert k == 3 and reason == ph.ALL_DONE


def test_run_units_merged_named_result_matches_unit_by_unit():
    seg = hv.constant(1e-3)
    c = circ(seg, i_leak=0.0)
    n = 40
    d = np.full(n, 0.02)
    p_mcu = np.full(n, 6e-3)
    run_end = np.full(n, n, dtype=np.int64)
    per_len = np.zeros(n, dtype=np.int64)
    m = ph.run_units_merged(3.0, 0.0, 0, n, d, p_mcu, 1.0, run_end, per_len, per_len, 1.8, 3.0, 1e6, c)
    assert isinstance(m, ph.Merged)
    k, elapsed, v_end, reason, sums = ph.run_units(3.0, 0.0, 0, n, d, p_mcu, 1.8, 3.0, 1e6, c)
    assert (m.k, m.reason) == (k, reason)
    assert m.reason == ph.HIT_LOW and 0 < m.k < n  # 6 mW units from a 1 mW source brown out
    assert m.v_cut == 1.8
    assert m.el_cut == pytest.approx(elapsed[k], rel=1e-9)
    assert m.t_k == pytest.approx(k * 0.02, rel=1e-12)
    assert (m.harvested_J, m.consumed_J, m.leaked_J, m.clipped_J) == pytest.approx(tuple(sums), rel=1e-9)


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
    pw, run_end, per_len, per_end = pop.static[:4]
    job = oracle.Job(work.durations_s, pw, work.layers.astype(np.int64), run_end, per_len, per_end, work.boot_s,
                     work.boot_J / work.boot_s, work.sleep_W)
    bounds = oracle.Bounds(1.0, power.v_on, power.v_off, power.v_initial, 1, 0.0, sim.until_s)
    out = oracle.Sinks(np.zeros(oracle.N_ACC), np.zeros(oracle.N_CAT), np.zeros(2), np.full(1, np.nan),
                       np.zeros(oracle.N_COUNTERS, dtype=np.int64))
    end = oracle._run(job, ph.circuit(power, seg), bounds, out)
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
