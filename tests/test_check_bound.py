"""The worst-case latency bound (aidi.sim.bound) and what ``aidi check`` reports and exits with.

The bound must hold: on random constant, Thevenin and trace sources the oracle's latency of one
inference is never above it (energy_aware and greedy); by hand on one unit; "no guarantee" for a
source that can give 0 W; ``--json`` fields and the exit statuses 0 / 1 / 2.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis import check
from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim import bound, oracle
from aidi.sim import harvesters as hv
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.platform import get_platform
from aidi.sim.dispatch import start_thresholds
from aidi.sim.workload import Workload

PLAT = get_platform("msp430fr5994")
runner = CliRunner()


def make_work(durations, powers) -> Workload:
    """Units of the given durations (s) and MCU powers (W), with the FR5994's boot and dispatch costs."""
    d = np.asarray(durations, dtype=float)
    n = d.shape[0]
    e = np.zeros((n, 3))
    e[:, 0] = np.asarray(powers, dtype=float) * d
    return Workload(names=[f"L0/u{i}" for i in range(n)], layers=np.zeros(n, dtype=np.int64), durations_s=d,
                    energy_J=e, boot_s=PLAT.boot_s, boot_J=PLAT.boot_energy_J, sleep_W=PLAT.sleep_power_W,
                    measure_s=PLAT.measure_s, measure_W=PLAT.measure_energy_J / PLAT.measure_s,
                    wait_W=PLAT.wait_power_W, wake_s=PLAT.wake_s, wake_W=PLAT.active_power_W)


def logu(lo, hi):
    return st.floats(lo, hi).map(lambda x: 10.0**x)


@st.composite
def cases(draw, kinds=("constant", "thevenin", "trace")):
    """(workload, power, segments, kind): a random device whose units fit a power cycle, under a source that
    never gives less than 200 uW below V_on (above the LPM3 wait's draw), so a bound exists."""
    cap = draw(logu(-4.3, -2.7))
    v_off = draw(st.floats(1.8, 2.4))
    v_on = v_off + draw(st.floats(0.3, 1.2))
    v_max = v_on + draw(st.sampled_from([0.0]) | st.floats(0.0, 0.5))
    eta = draw(st.sampled_from([1.0]) | st.floats(0.7, 1.0))
    leak = draw(st.sampled_from([0.0]) | logu(-9, -6.5))
    # not subnormal: capacitor.advance reads V = 5e-324 under a Thevenin source as an equilibrium (never boots; the
    # engines and the bound agree on that, but no bound exists)
    v_init = draw(st.sampled_from([0.0, v_on]) | st.floats(0.0, v_max, allow_subnormal=False))
    kind = draw(st.sampled_from(kinds))
    if kind == "constant":
        seg = hv.constant(draw(logu(-3.7, -2.3)))
    elif kind == "thevenin":
        vs = draw(st.floats(v_on + 0.05, v_max + 1.5))
        seg = hv.thevenin(vs, min(draw(logu(1, 4.5)), (vs - v_on) * v_on / 2e-4))  # >= 200 uW at V_on
        v_init = min(v_init, vs)
    else:
        n = draw(st.integers(2, 6))
        times = np.concatenate([[0.0], np.cumsum(draw(st.lists(st.floats(0.005, 0.5), min_size=n - 1,
                                                               max_size=n - 1)))])
        powers = draw(st.lists(logu(-3.7, -2.3), min_size=n, max_size=n))
        seg = hv.from_samples(times, np.array(powers), draw(st.booleans()), "trace")
    power = PowerConfig(capacitor_F=cap, v_on=v_on, v_off=v_off, v_max=v_max, leakage_A=leak, v_initial=v_init,
                        converter_efficiency=eta)
    n_units = draw(st.integers(1, 12))
    pw = draw(st.lists(st.floats(2e-3, 7e-3), min_size=n_units, max_size=n_units))
    # each unit's energy a fraction of what one cycle allows: its threshold below V_on (dispatch_margin 5 %,
    # the measurement, the wake-up), and after a boot from V_on (greedy)
    room = min(0.9 * power.e_store_J * eta / 1.05 - 2 * PLAT.measure_energy_J,
               0.9 * (power.e_store_J * eta - PLAT.boot_energy_J))
    frac = draw(st.lists(st.floats(0.02, 1.0), min_size=n_units, max_size=n_units))
    return make_work([f * room / p for f, p in zip(frac, pw)], pw), power, seg, kind


SIM = SimConfig(inferences=1, until_s=1e6, dispatch="energy_aware")


def bound_and_sim(work, power, seg, sim):
    b = bound.latency_bound(work, power, bound.min_source(seg, power, sim.until_s), sim)
    r = oracle.simulate(work, power, seg, sim)
    return b, r


@settings(max_examples=60, deadline=None)
@given(case=cases())
def test_energy_aware_simulated_latency_never_above_the_bound(case):
    work, power, seg, kind = case
    b, r = bound_and_sim(work, power, seg, SIM)
    assert b.latency_s is not None, b.reason
    assert r["completed"], r["reason"]
    assert r["latency_s"] <= b.latency_s
    assert b.latency_s == pytest.approx(sum(b.parts_s.values()), rel=2e-9)
    assert r["units_lost"] == 0


@settings(max_examples=40, deadline=None)
@given(case=cases())
def test_greedy_simulated_latency_never_above_the_bound(case):
    work, power, seg, kind = case
    b, r = bound_and_sim(work, power, seg, replace(SIM, dispatch="greedy"))
    assert b.latency_s is not None, b.reason
    assert r["completed"], r["reason"]
    assert r["latency_s"] <= b.latency_s
    # each lost unit costs at most one recharge, one boot and its own time twice (module docstring, (4))
    assert b.parts_s["dispatch"] == b.parts_s["wait"] == 0.0


@settings(max_examples=30, deadline=None)
@given(case=cases(kinds=("constant",)))
def test_energy_aware_bound_is_exact_for_a_constant_source_below_the_wake_up_draw(case):
    """The derivation's last remark: under a time-invariant source weaker than the wake-up's draw, the
    minimum-source chain is the run itself (a unit starts after its measurement, or after waking from its
    threshold, or unmeasured on the boot's seed or on the first measurement, exactly as the chain assumes)
    when the run measures every unit past the units the boot's seed and its first measurement carry: then the
    bound is the simulated latency rounded up by ROUND_UP.  Past them, a unit the run starts unmeasured is
    charged a measurement."""
    from aidi.sim import des
    from aidi.sim.dispatch import boot_known

    work, power, seg, kind = case
    b, r = bound_and_sim(work, power, seg, SIM)
    assert seg.seg_p[0] < PLAT.active_power_W / power.converter_efficiency
    log = des.simulate(work, power, seg, SIM, log=True)[1]
    measured = sorted({ev.unit for ev in log if ev.kind == "measure"})
    assert len(measured) == r["measurements"]
    seed = boot_known(work.boot_J, work.boot_s, power.converter_efficiency, power.capacitor_F, power.v_on,
                      power.v_max, power.leakage_A, SIM.dispatch_margin, math.inf)
    v_s = start_thresholds(work.energy_J, work.durations_s, work.dispatch_costs, power.converter_efficiency,
                           power.capacitor_F, power.v_off, power.v_max, power.leakage_A, SIM.dispatch_margin)
    if seed < v_s[0]:  # the seed does not carry the first unit: it is measured
        assert measured[0] == 0
    else:
        assert not measured or measured[0] > 0
    first_streak_only = measured[1:] == list(range(measured[1], len(work))) if len(measured) > 1 else True
    if first_streak_only:
        assert b.latency_s == pytest.approx(r["latency_s"] * (1 + bound.ROUND_UP), rel=1e-10)
    else:
        assert r["latency_s"] < b.latency_s


@pytest.mark.parametrize("units, measurements", [(30, 0), (150, 1)])
def test_energy_aware_bound_is_exact_when_the_boots_seed_and_one_measurement_carry_every_unit(units, measurements):
    """A constant source stronger than the MCU, small units: the boot's seed carries 93 of them, the one
    measurement after them the rest (proven by the chain), so no other measurement is charged and the bound is
    the simulated latency."""
    cap, v_on, v_off = 1e-3, 3.0, 2.0
    e_store = 0.5 * cap * (v_on**2 - v_off**2)
    work = make_work([1e-3] * units, [0.01 * e_store / 1e-3] * units)
    power = PowerConfig(capacitor_F=cap, v_on=v_on, v_off=v_off, v_max=v_on, v_initial=v_on)
    b, r = bound_and_sim(work, power, hv.constant(0.05), SIM)
    assert r["measurements"] == measurements and r["threshold_waits"] == 0
    assert b.parts_s["dispatch"] == measurements * PLAT.measure_s
    assert b.latency_s == pytest.approx(r["latency_s"] * (1 + bound.ROUND_UP), rel=1e-10)


def test_one_unit_by_hand_with_a_wait():
    """Constant 1 mW, 100 uF, no leakage, eta = 1: charge 0 -> 3 V, boot, measure, LPM3 wait up to the
    threshold, wake, the unit: every phase at a constant net power, so energy is linear in time."""
    cap, v_on, v_off, p_src, margin = 1e-4, 3.0, 2.0, 1e-3, 0.05
    p_unit = 5e-3
    e_unit = 2.37e-4  # V_start just below V_on, above V after the boot and the measurement: it waits
    work = make_work([e_unit / p_unit], [p_unit])
    power = PowerConfig(capacitor_F=cap, v_on=v_on, v_off=v_off, v_max=3.3)
    sim = replace(SIM, dispatch_margin=margin)
    e_meas, e_wake = PLAT.measure_energy_J, PLAT.wake_s * PLAT.active_power_W
    e_start = 0.5 * cap * v_off**2 + (1 + margin) * (e_unit + e_meas + e_wake)
    assert math.sqrt(2 * e_start / cap) == pytest.approx(start_thresholds(
        work.energy_J, work.durations_s, work.dispatch_costs, 1.0, cap, v_off, 3.3, 0.0, margin)[0], rel=1e-12)
    t_charge = 0.5 * cap * v_on**2 / p_src
    e_after = 0.5 * cap * v_on**2 + p_src * (PLAT.boot_s + PLAT.measure_s) - PLAT.boot_energy_J - e_meas
    assert e_after < e_start < 0.5 * cap * v_on**2
    t_wait = (e_start - e_after) / (p_src - PLAT.wait_power_W)
    hand = t_charge + PLAT.boot_s + PLAT.measure_s + t_wait + PLAT.wake_s + work.durations_s[0]
    b, r = bound_and_sim(work, power, hv.constant(p_src), sim)
    assert b.latency_s == pytest.approx(hand * (1 + bound.ROUND_UP), rel=1e-11)
    assert b.parts_s["wait"] == pytest.approx(t_wait + PLAT.wake_s, rel=1e-11)
    assert r["latency_s"] == pytest.approx(hand, rel=1e-11) and r["threshold_waits"] == 1
    assert r["latency_s"] <= b.latency_s


def test_sources_that_can_give_zero_watts_give_no_guarantee():
    work = make_work([1e-3], [5e-3])
    power = PowerConfig(capacitor_F=1e-4, v_on=2.8, v_off=2.0, v_max=3.3)
    zero = hv.from_samples(np.array([0.0, 1.0, 2.0]), np.array([2e-3, 0.0, 2e-3]), True, "trace")
    b = bound.latency_bound(work, power, bound.min_source(zero, power, 1e6), SIM)
    assert b.latency_s is None and "0 W from t = 1 s" in b.reason and "p_min_W" in b.reason
    assert b.as_dict()["parts_s"] is None and b.as_dict()["reason"] == b.reason
    # the zero segment lies beyond until_s (no repeat): outside the run's window, so it does not count
    late = hv.from_samples(np.array([0.0, 100.0]), np.array([2e-3, 0.0]), False, "trace")
    assert bound.min_source(late, power, 50.0).p_W == 2e-3
    assert bound.min_source(late, power, 150.0).zero
    # a user's guaranteed minimum replaces the trace's
    src = bound.min_source(zero, power, 1e6, p_min_W=1e-3)
    assert src.p_W == 1e-3 and not src.zero and "p_min_W" in src.origin
    assert "this trace falls to 0 W in [0, 3 s)" in src.origin  # the user's word, not the trace's
    assert bound.latency_bound(work, power, src, SIM).latency_s is not None
    b0 = bound.latency_bound(work, power, bound.min_source(hv.constant(0.0), power, 1e6), SIM)
    assert b0.latency_s is None and "constant source gives 0 W" in b0.reason


@pytest.mark.parametrize("what, p_src, expect", [
    ("the LPM3 wait outdraws the source", 30e-6, "cannot lift V to unit L0/u1's start threshold"),
    ("a Thevenin source below V_on", None, "cannot charge the capacitor"),
])
def test_sources_too_weak_for_the_device_give_no_guarantee(what, p_src, expect):
    work = make_work([2e-2] * 3, [5e-3] * 3)  # 100 uJ units: the second must wait for its threshold
    power = PowerConfig(capacitor_F=1e-4, v_on=2.8, v_off=2.0, v_max=3.3, v_initial=2.5)
    seg = hv.constant(p_src) if p_src is not None else hv.thevenin(2.7, 100.0)
    b = bound.latency_bound(work, power, bound.min_source(seg, power, 1e6), SIM)
    assert b.latency_s is None and expect in b.reason, what


def test_a_threshold_above_v_on_gives_no_guarantee():
    power = PowerConfig(capacitor_F=1e-5, v_on=2.8, v_off=2.0, v_max=3.3)
    work = make_work([1e-2], [5e-3])  # 50 uJ > the 19 uJ a cycle stores
    b = bound.latency_bound(work, power, bound.min_source(hv.constant(1e-3), power, 1e6), SIM)
    assert b.latency_s is None and "can never be scheduled" in b.reason


# ------------------------------------------------------------------------------------------------ aidi check
SCENARIO = """
[power]
capacitor_F = 1e-4
v_on = 2.8
v_off = 2.0
v_max = 3.3

[harvester]
{harvester}

[model]
input = [1, 6, 6]
layers = [{{type = "conv", k = 3, filters = 2, relu = true}}]
weights = "random"

[execution]
dispatch = "energy_aware"

[sim]
until_s = 1000
{sim}
"""


def scenario(tmp_path, harvester='kind = "constant"\npower_W = 2e-3', sim=""):
    (tmp_path / "tr.csv").write_text("time_s,power_W\n0,0.002\n0.5,0\n0.6,0.002\n")
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.format(harvester=harvester, sim=sim))
    return p


def cli(*args):
    r = runner.invoke(app, ["check", *map(str, args)])
    return r.exit_code, r.stdout, r.stderr


def test_check_json_bound_fields_and_exit_0(tmp_path):
    code, out, _ = cli(scenario(tmp_path, sim="deadline_s = 5.0"), "--json")
    assert code == 0
    res = json.loads(out)
    assert res["schedulable"] and res["guaranteed"] and res["guarantee_reasons"] == []
    lb = res["latency_bound"]
    assert lb["dispatch"] == "energy_aware" and lb["reason"] is None
    assert lb["p_min"]["at_v_off_W"] == lb["p_min"]["at_v_on_W"] == 2e-3
    assert res["latency_bound_s"] == lb["latency_s"]
    assert res["harvester"]["latency_s"] <= res["latency_bound_s"] < 5.0
    assert res["meets_deadline"] == {"guaranteed": True, "simulated": True}
    assert set(lb["parts_s"]) == set(bound.PARTS)


def test_check_exit_1_when_the_deadline_is_missed(tmp_path):
    code, out, _ = cli(scenario(tmp_path, sim="deadline_s = 0.01"), "--json")
    res = json.loads(out)
    assert code == 1 and not res["schedulable"] and not res["guaranteed"]
    assert res["meets_deadline"] == {"guaranteed": False, "simulated": False}
    assert any("deadline" in r for r in res["reasons"])
    code, out, _ = cli(scenario(tmp_path, sim="deadline_s = 0.01"))
    assert code == 1 and "NOT schedulable" in out and "deadline 0.01 s: guaranteed NOT guaranteed; simulated missed" \
        in " ".join(out.split())


def test_check_zero_power_trace_no_guarantee_table_and_guaranteed_flag(tmp_path):
    p = scenario(tmp_path, 'kind = "trace"\nfile = "tr.csv"', "deadline_s = 5.0")
    code, out, _ = cli(p, "--json")
    res = json.loads(out)
    assert code == 0 and res["schedulable"] and not res["guaranteed"]
    assert res["latency_bound_s"] is None and "0 W" in res["latency_bound"]["reason"]
    assert res["meets_deadline"] == {"guaranteed": False, "simulated": True}
    code, out, _ = cli(p)
    assert code == 0 and "no guarantee: the source can give 0 W" in " ".join(out.split())
    code, _, _ = cli(p, "--guaranteed")
    assert code == 1
    # a guaranteed minimum given by the user: a bound, scaled by the harvester's efficiency
    p = scenario(tmp_path, 'kind = "trace"\nfile = "tr.csv"\nefficiency = 0.5\np_min_W = 1e-3', "deadline_s = 5.0")
    code, out, _ = cli(p, "--json", "--guaranteed")
    res = json.loads(out)
    assert code == 0 and res["latency_bound_s"] is not None
    assert res["latency_bound"]["p_min"]["at_v_on_W"] == 0.5e-3


@pytest.mark.parametrize("harvester, parts", [
    ('kind = "constant"\npower_W = 2e-3\np_min_W = 1e-3', ("harvester.p_min_W", "only for a time-varying source")),
    ('kind = "trace"\nfile = "tr.csv"\np_min_W = -1e-3', ("harvester.p_min_W", "must be > 0")),
    ('kind = "trace"\nfile = "tr.csv"\np_min_W = 1e3', ("harvester.p_min_W", "must be <= 100")),
])
def test_check_exit_2_on_bad_p_min_W(tmp_path, harvester, parts):
    code, out, err = cli(scenario(tmp_path, harvester), "--json")
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and all(x in err for x in parts), err


def test_guarantee_lines_for_greedy(tmp_path):
    sc = loader.load(scenario(tmp_path))
    sc = sc.with_values(**{"execution.dispatch": "greedy"})
    from aidi.analysis import pipeline

    res = check.analyse(pipeline.build(sc))
    assert res["latency_bound"]["dispatch"] == "greedy" and res["latency_bound_s"] >= res["harvester"]["latency_s"]
    assert res["meets_deadline"] == {"guaranteed": None, "simulated": None}
    (line,) = check.guarantee_lines(res)
    assert line.startswith("latency bound (greedy, guaranteed minimum constant source: 0.002 W): ")


def test_min_source_carries_where_the_real_source_may_draw_for_the_boot_seed():
    """energy_aware's boot seed in the bound is the engines' own: it starts from min(V_on, floor) with floor the
    real source's (a Thevenin source draws above V_s; a trace never draws), also under a user's p_min_W."""
    power = PowerConfig(capacitor_F=1e-4, v_on=3.0, v_off=2.0, v_max=3.3, v_initial=3.3)
    assert bound.min_source(hv.thevenin(2.5, 100.0), power, 1e6).floor_V == 2.5
    trace = hv.from_samples(np.array([0.0, 1.0]), np.array([1e-3, 0.0]), True, "trace")
    assert bound.min_source(trace, power, 1e6).floor_V == math.inf
    assert bound.min_source(trace, power, 1e6, p_min_W=1e-4).floor_V == math.inf
