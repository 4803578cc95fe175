"""The oracle's merged runs and batches, and the physics they rest on.

* Runs of identical units: the oracle (aidi.sim.oracle) moves the capacitor over a whole run
  of consecutive units with the same duration and power in one step
  (stepping.run_units_merged) and steps unit by unit only around a brown-out or an until_s
  cut; the SimPy model (aidi.sim.des) always steps unit by unit.  Random scenarios whose
  units come in runs (each base unit repeated 1..40 times, the sequence sometimes tiled into
  a repeating pattern of runs) check that the two still agree to 1e-9, with brown-outs and
  until_s cuts falling inside runs.
* Batches: oracle.simulate_batch runs many workloads in one compiled call; each workload's
  answer (dict, error, array columns) is the one oracle.simulate gives it alone.
* Physics: capacitor._cannot_reach (the rate bound that skips threshold integrals) never rules
  out a move that completes within the span, and capacitor.voltage_after on moves many time
  constants long toward an equilibrium lands between the start and the root and inverts the
  closed-form time to what rounding V to a float allows.

The strict xfail tests pin down what these checks found: knife-edge cases where merging changes
the discrete outcome, a misleading reason, and two precision limits of capacitor.integrals.  Each
fails today; when one starts passing, drop its marker.
"""

from __future__ import annotations

import math
import re

import mpmath
import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aidi.sim import des, oracle
from aidi.sim import harvesters as hv
from aidi.sim import capacitor as ph
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.workload import NonProgressError
from tests.test_sim_engines import (assert_agree, assert_invariants, both, check_engines_agree, logu, make_work,
                                    scenarios)


# ---------------------------------------------------------------------------------------------
# runs of identical units: SimPy model vs the oracle's merged moves
# ---------------------------------------------------------------------------------------------

@st.composite
def run_scenarios(draw):
    """test_sim_engines.scenarios() with each of its n base units repeated r_i (1..40) times.

    Runs of identical units then exist (so the oracle merges them), and brown-outs and until_s
    cuts fall inside them.  A base unit may copy its predecessor's duration and energy (with
    another layer and category split) so that a run of identical units can span two layers, and the
    whole sequence may be tiled 2..8 times (a repeating pattern of runs, as tiled layers give, which the
    oracle steps pattern by pattern and then jumps over).
    """
    work, power, seg, sim = draw(scenarios())
    n = len(work)
    d, energy, layers = work.durations_s.copy(), work.energy_J.copy(), work.layers
    for i in range(1, n):
        if draw(st.integers(0, 3)) == 0:  # same duration and total energy as unit i - 1: one longer run
            d[i] = d[i - 1]
            energy[i] = energy[i - 1] if draw(st.booleans()) else energy[i - 1][[2, 0, 1]]
    tiles = draw(st.sampled_from([1, 1, 1]) | st.integers(2, 8))  # > 1: a repeating pattern of runs
    reps = np.array(draw(st.lists(st.integers(1, 40 if tiles == 1 else 8), min_size=n, max_size=n)))
    work = make_work(np.tile(np.repeat(d, reps), tiles), np.tile(np.repeat(energy, reps, axis=0), (tiles, 1)),
                     boot_s=work.boot_s, boot_J=work.boot_J, sleep_W=work.sleep_W,
                     layers=np.tile(np.repeat(layers, reps), tiles))
    return work, power, seg, sim


@settings(max_examples=60, deadline=None)
@given(run_scenarios())
def test_merged_runs_agree_with_des(case):
    check_engines_agree(case)


def _brownout_run(n=200):
    """n identical units under a constant source too weak to carry them: ~12 units a cycle."""
    cap, v_on, v_off = 1e-4, 3.0, 2.0  # E_cycle = 250 uJ
    work = make_work([0.01] * n, [[20e-6, 6e-6, 4e-6]] * n, boot_s=1e-4, boot_J=1e-7,
                     layers=[0] * (n // 2) + [1] * (n - n // 2))  # 3 mW units from a 1 mW source
    power = PowerConfig(cap, v_on, v_off, 3.3, v_initial=v_on)
    return work, power, hv.constant(1e-3)


def test_merged_run_browns_out_mid_run_several_times():
    work, power, seg = _brownout_run()
    r_des, log, r_ora = both(work, power, seg, SimConfig(dispatch="greedy", until_s=100.0))
    assert_agree(r_des, r_ora)
    for res in (r_des, r_ora):
        assert_invariants(res, power, work, SimConfig(dispatch="greedy", until_s=100.0))
        assert res["completed"]
        assert res["units_executed"] == 200
        assert res["power_cycles"] >= 10  # brown-outs in the middle of the (one) run
        assert res["units_lost"] == res["power_cycles"] - 1  # every brown-out hits a unit, not a boot
        assert res["units_reexecuted"] == res["units_lost"]
    assert r_des["power_cycles"] == r_ora["power_cycles"]
    assert r_des["units_lost"] == r_ora["units_lost"]
    assert r_des["latency_s"] == pytest.approx(r_ora["latency_s"], rel=1e-9)
    lost = [ev.unit for ev in log if ev.kind == "unit" and ev.outcome == "lost"]
    assert all(0 < i < 199 for i in lost), "brown-outs fall strictly inside the run"


@pytest.mark.parametrize("until", [0.055, 0.1234, 0.4567, 1.2345, 2.0])
def test_merged_run_cut_by_until_s_mid_run(until):
    # until_s falls inside a unit of the run (0.1234: inside the unit that would brown out next):
    # the cut unit is unfinished, not lost
    work, power, seg = _brownout_run()
    sim = SimConfig(dispatch="greedy", until_s=until)
    r_des, log, r_ora = both(work, power, seg, sim)
    assert_agree(r_des, r_ora)
    assert log[-1].kind == "unit" and log[-1].outcome == "until"
    for res in (r_des, r_ora):
        assert_invariants(res, power, work, sim)
        assert not res["completed"] and res["reason"] == "until_s reached"
        assert 0 < res["units_executed"] < 200
        assert res["energy_J"]["by_category"]["unfinished"] > 0
        assert res["sim_time_s"] == pytest.approx(until, rel=1e-12)


def test_brownout_exactly_at_a_unit_boundary_agrees():
    """Ten units drain exactly E_cycle (the boot's net energy is 0): the brown-out falls on the end of
    the 10th unit to rounding.  The SimPy model commits it (V = V_off + 1 ulp) and loses the 11th after
    4e-17 s.  A merged move once found t_hit = 0.09999999999999998 < 10 d and lost the 10th: one whole
    unit more lost per cycle, one more power cycle.  On a unit boundary to rounding the oracle now
    steps unit by unit, as the SimPy model does."""
    n = 60
    work = make_work([0.01] * n, [[0.5 * 1e-4 * 5 / 10 + 1e-3 * 0.01, 0.0, 0.0]] * n, boot_s=1e-4, boot_J=1e-7)
    power = PowerConfig(1e-4, 3.0, 2.0, 3.0, v_initial=3.0)
    r_des, _log, r_ora = both(work, power, hv.constant(1e-3), SimConfig(dispatch="greedy"))
    assert (r_des["power_cycles"], r_des["units_lost"]) == (r_ora["power_cycles"], r_ora["units_lost"])  # 6, 5
    assert r_des["latency_s"] == pytest.approx(r_ora["latency_s"], rel=1e-9)  # 1.8506


@pytest.mark.parametrize("d", [0.01, 0.003, 0.0071])
def test_until_s_exactly_at_a_unit_boundary_agrees(d):
    """until_s = boot + k d: whether unit k runs whole is decided by rounding on the SimPy model's clock
    (a sum unit by unit); the oracle's clock adds the same way, so both decide alike (a merged move once
    disagreed on 96 of 156 such values)."""
    work = make_work([d] * 12, [[1e-7, 0.0, 0.0]] * 12, boot_s=1e-4, boot_J=1e-9)
    power = PowerConfig(1e-3, 3.0, 2.0, 3.3, v_initial=3.0)
    for k in range(13):
        sim = SimConfig(dispatch="greedy", until_s=1e-4 + k * d)
        r_des, _log, r_ora = both(work, power, hv.constant(1e-3), sim)
        assert r_des["units_executed"] == r_ora["units_executed"], k
        assert_agree(r_des, r_ora)


def test_until_s_during_a_charge_that_would_boot_is_not_never_boots():
    """Both engines once reported 'settles below v_on: never boots' whenever until_s ended a charge
    under a time-invariant source, even with V still rising towards a boot."""
    # 0 V -> 3 V at 1 mW takes 0.45 s; at until_s = 0.1 s V = 1.41 V and rising
    work = make_work([0.01], [[1e-6, 0, 0]])
    power = PowerConfig(1e-4, 3.0, 2.0, 3.3)
    r_des, _log, r_ora = both(work, power, hv.constant(1e-3), SimConfig(dispatch="greedy", until_s=0.1))
    assert r_des["reason"] == r_ora["reason"] == "until_s reached"


def test_pattern_jump_across_a_source_change_counts_the_harvest():
    """A pattern of two runs (AA BB) four times from a full capacitor held at v_max; the trace steps from
    1 mW to 10 mW at 0.1 s, inside the first pattern.  V is v_max at both ends of that pattern; the
    oracle of 4deef96 took it as steady and jumped the other three with its energies (0.1 s at 1 mW in
    each): 4.437 mJ harvested and 4.393 mJ clipped where 7.110 and 7.066 mJ are right (latency, V and
    counts agreed, so the energy balance still closed).  033a9fc extrapolates a pattern only if it
    stayed under one source segment."""
    d = np.full(16, 0.05)
    pw = np.tile([1e-5, 1e-5, 1e-4, 1e-4], 4)
    work = make_work(d, np.c_[pw * d, np.zeros(16), np.zeros(16)], boot_s=1e-3, boot_J=1e-8, sleep_W=1e-6)
    power = PowerConfig(1e-4, 3.0, 2.0, 3.0, v_initial=3.0)
    seg = hv.from_samples(np.array([0.0, 0.1]), np.array([1e-3, 1e-2]), False, "trace")
    r_des, _log, r_ora = both(work, power, seg, SimConfig(dispatch="greedy"))
    assert r_des["energy_J"]["harvested"] == pytest.approx(1e-3 * 0.1 + 1e-2 * (0.801 - 0.1), rel=1e-9)
    assert_agree(r_des, r_ora)


# ---------------------------------------------------------------------------------------------
# batches
# ---------------------------------------------------------------------------------------------

_CAP, _V_ON, _V_OFF = 1e-4, 3.0, 2.0
_E_CYCLE = 0.5 * _CAP * (_V_ON**2 - _V_OFF**2)  # 250 uJ


def _batch_works():
    """Six heterogeneous workloads; index 2 has a unit no power cycle can carry, index 4 is too long
    for until_s."""
    rng = np.random.default_rng(7)
    w0 = make_work(rng.uniform(1e-3, 2e-2, 5), rng.uniform(1e-6, 1e-5, (5, 3)), layers=[0, 0, 1, 2, 2])
    w1 = _brownout_run()[0]  # 200 identical units over layers 0 and 1: brown-outs mid-run
    w2 = make_work([0.01] * 4, [[0.1 * _E_CYCLE, 0, 0], [0.2 * _E_CYCLE, 0, 0], [1.5 * _E_CYCLE, 0, 0],
                                [0.1 * _E_CYCLE, 0, 0]], layers=[0, 1, 1, 2])
    w3 = make_work([0.02], [[5e-6, 5e-6, 5e-6]], boot_s=2e-3, boot_J=2e-6, sleep_W=3e-6, layers=[7])
    w4 = make_work([0.01] * 3000, [[10e-6, 5e-6, 5e-6]] * 3000, layers=[3] * 3000)  # ~60 mJ: > until_s
    d5 = np.repeat([2e-3, 5e-3, 2e-3], [30, 7, 12])
    e5 = np.repeat([[4e-6, 1e-6, 0.0], [2e-5, 5e-6, 5e-6], [4e-6, 1e-6, 0.0]], [30, 7, 12], axis=0)
    w5 = make_work(d5, e5, boot_s=1e-3, boot_J=3e-6, layers=np.repeat([1, 4, 5], [30, 7, 12]))
    return [w0, w1, w2, w3, w4, w5]


def _check_batch(works, power, seg, sim, bad=()):
    batch = oracle.simulate_batch(works, power, seg, sim)
    assert len(batch) == len(works)
    for i, work in enumerate(works):
        if i in bad:
            exc = batch.error(i)
            assert isinstance(exc, NonProgressError)
            with pytest.raises(NonProgressError) as alone:
                oracle.simulate(work, power, seg, sim)
            assert str(exc) == str(alone.value)
            with pytest.raises(NonProgressError, match=f"^{re.escape(str(exc))}$"):
                batch.result(i)
            with pytest.raises(NonProgressError) as by_des:  # the SimPy model says the same
                des.simulate(work, power, seg, sim)
            assert str(by_des.value) == str(exc)
            assert not batch.completed[i] and math.isnan(batch.latency_s[i])
            continue
        assert batch.error(i) is None
        res = batch.result(i)
        alone = oracle.simulate(work, power, seg, sim)
        assert res == alone  # exactly: the batch is the same compiled loop, workload by workload
        assert_agree(des.simulate(work, power, seg, sim)[0], res)
        assert bool(batch.completed[i]) is res["completed"]
        if res["completed"]:
            assert batch.latency_s[i] == res["latency_s"]
        else:
            assert math.isnan(batch.latency_s[i])
        assert batch.power_cycles[i] == res["power_cycles"]
        assert batch.units_lost[i] == res["units_lost"]
        assert batch.consumed_J[i] == res["energy_J"]["consumed"]
        assert batch.harvested_J[i] == res["energy_J"]["harvested"]
    return batch


def test_batch_matches_single_runs():
    works = _batch_works()
    power = PowerConfig(_CAP, _V_ON, _V_OFF, 3.3, v_initial=_V_ON)
    sim = SimConfig(dispatch="greedy", until_s=20.0)
    batch = _check_batch(works, power, hv.constant(1e-3), sim, bad={2})
    assert batch.completed.tolist() == [True, True, False, True, False, True]
    assert batch.power_cycles[1] >= 10 and batch.units_lost[1] >= 9
    assert batch.result(4)["reason"] == "until_s reached"
    with pytest.raises(NonProgressError, match=r"unit L1/u2\b"):
        batch.result(2)
    # order does not matter: the batch reversed gives the same answers
    rev = oracle.simulate_batch(works[::-1], power, hv.constant(1e-3), sim)
    for i in (0, 1, 3, 4, 5):
        assert rev.result(len(works) - 1 - i) == batch.result(i)


def test_batch_with_a_unit_stuck_under_leakage():
    """A unit that passes the static check but fails twice from a full capacitor (leakage) is
    reported by its workload alone."""
    works = [make_work([0.01] * 20, [[1e-6, 0, 0]] * 20),
             make_work([0.01, 1.0], [[1e-6, 0, 0], [1.1e-3, 0, 0]], boot_s=1e-4, boot_J=1e-9),
             make_work([0.005] * 40, [[2e-5, 0, 0]] * 40, layers=[2] * 40)]
    power = PowerConfig(_CAP, _V_ON, _V_OFF, _V_ON, leakage_A=1e-4, v_initial=_V_ON)
    batch = _check_batch(works, power, hv.constant(1e-3), SimConfig(dispatch="greedy", until_s=100.0), bad={1})
    assert "failed twice" in str(batch.error(1))
    assert batch.completed.tolist() == [True, False, True]


@pytest.mark.parametrize("seg", [hv.constant(2e-3), hv.thevenin(3.5, 200.0),
                                 hv.from_samples(np.array([0.0, 0.3, 0.5]), np.array([3e-3, 0.0, 1e-3]), True,
                                                 "trace")])
def test_batch_periodic_inferences(seg):
    works = [w for i, w in enumerate(_batch_works()) if i not in (2, 4)]
    power = PowerConfig(_CAP, _V_ON, _V_OFF, 3.3, leakage_A=1e-7, v_initial=0.0, converter_efficiency=0.85)
    sim = SimConfig(dispatch="greedy", inferences=3, until_s=30.0, period_s=0.75)
    batch = _check_batch(works, power, seg, sim)
    for i in range(len(works)):
        res = batch.result(i)
        assert len(res["inference_latencies_s"]) == res["inferences_completed"]
        if res["completed"]:
            assert res["inferences_completed"] == 3
    assert batch.completed.any()


def test_batch_needs_a_workload():
    with pytest.raises(ValueError):
        oracle.simulate_batch([], PowerConfig(_CAP, _V_ON, _V_OFF, 3.3), hv.constant(1e-3), SimConfig(dispatch="greedy"))


# ---------------------------------------------------------------------------------------------
# physics: the rate bound and long moves toward an equilibrium
# ---------------------------------------------------------------------------------------------

@st.composite
def moves(draw):
    """(a, b, c, cap, v, target) for a Thevenin + constant-power + leakage capacitor, where Q has no
    root between v and target (target short of the equilibrium in the direction of motion)."""
    cap = draw(logu(-5, -2))
    g = draw(st.sampled_from([0.0]) | logu(-3, -1))
    vs = draw(st.floats(1.0, 5.0))
    i_leak = draw(st.sampled_from([0.0]) | logu(-9, -4))
    p_src = draw(st.sampled_from([0.0]) | logu(-6, -2))
    p_load = draw(st.sampled_from([0.0]) | logu(-5, -2))
    a, b = g * vs - i_leak, -g
    if g > 0.0 and draw(st.integers(0, 3)) == 0:
        # near a double root: the load takes (almost) the source's maximum power
        c = -a * a / (4.0 * g) * (1.0 + draw(st.sampled_from([1.0, -1.0])) * draw(logu(-15, -3)))
    else:
        c = p_src - p_load
    v = draw(st.floats(0.05, 4.0))
    q = ph.q_of(a, b, c, v)
    assume(q != 0.0)
    up = q > 0.0
    eq = ph.equilibrium(a, b, c, v, up)
    frac = draw(st.floats(1e-6, 1.0, exclude_max=True) | st.sampled_from([1e-12, 1.0 - 1e-9]))
    if math.isfinite(eq):
        target = v + frac * (eq - v)
    else:
        target = v + frac * 5.0 if up else v * (1.0 - frac)
    assume(target != v and target > 0.0)
    qt = ph.q_of(a, b, c, target)
    assume(qt != 0.0 and (qt > 0.0) == up)
    return a, b, c, cap, v, target


def _t_exact(a, b, c, cap, v1, v2):
    """T(v1, v2) = C int_v1^v2 V / Q(V) dV in 60-digit arithmetic from the float inputs (Q has no
    root between v1 and v2)."""
    with mpmath.workdps(60):
        a, b, c, cap, v1, v2 = (mpmath.mpf(x) for x in (a, b, c, cap, v1, v2))
        w = v2 - v1
        if b == 0:
            if c == 0:
                return float(cap * w / a)
            if a == 0:
                return float(cap * (v2 * v2 - v1 * v1) / (2 * c))
            return float(cap * (w / a - c / (a * a) * mpmath.log((a * v2 + c) / (a * v1 + c))))
        disc = a * a - 4 * b * c
        if abs(disc) < mpmath.mpf(10) ** -45 * a * a:  # a double root, exactly: quadrature
            return float(cap * mpmath.quad(lambda x: x / ((b * x + a) * x + c), [v1, v2]))
        sq = mpmath.sqrt(mpmath.mpc(disc))  # complex roots too: the logs then sum to the arctangent
        r1, r2 = (-a + sq) / (2 * b), (-a - sq) / (2 * b)
        t = cap / (b * (r1 - r2)) * (r1 * mpmath.log((v2 - r1) / (v1 - r1)) - r2 * mpmath.log((v2 - r2) / (v1 - r2)))
        return float(mpmath.re(t))


@pytest.mark.slow
@settings(max_examples=400, deadline=None)
@given(moves(), st.floats(-3.0, 3.0) | st.sampled_from([-1e-9, -1e-12, 0.0, 1e-12, 1e-9]))
def test_cannot_reach_never_rules_out_a_reachable_target(move, log_ratio):
    """If _cannot_reach says the target is out of reach within span, the move takes longer than span.

    Checked against the exact time and against capacitor.integrals, the closed form advance uses,
    wherever that is accurate: it is not for short moves when Q has complex roots nor in the
    near-double-root band where it falls back to Gauss-Legendre (see the xfail tests below).
    """
    a, b, c, cap, v, target = move
    t = ph.integrals(a, b, c, cap, v, target)[0]
    t_ex = _t_exact(a, b, c, cap, v, target)
    assume(math.isfinite(t_ex) and t_ex > 0.0)
    span = t_ex * 10.0**log_ratio if abs(log_ratio) >= 1e-3 else t_ex * (1.0 + log_ratio)
    if ph._cannot_reach(a, b, c, cap, v, target, span):
        assert t_ex > span, (a, b, c, cap, v, target, span, t_ex)
        if abs(t - t_ex) <= 1e-10 * t_ex:
            assert t > span, (a, b, c, cap, v, target, span, t)
    # the same with span taken from the closed form itself
    span = t * 10.0**log_ratio if abs(log_ratio) >= 1e-3 else t * (1.0 + log_ratio)
    if ph._cannot_reach(a, b, c, cap, v, target, span):
        assert t_ex > span
        if abs(t - t_ex) <= 1e-10 * t_ex:
            assert t > span, (a, b, c, cap, v, target, span, t)


@pytest.mark.parametrize("w", [1e-9, 1e-12])
def test_integrals_complex_roots_short_move_keeps_precision(w):
    # a lab supply (3 V through 52 ohm, at most 43 mW) under a 50 mW load: Q < 0 everywhere
    a, b, c, cap, v1 = 3.0 / 52.0, -1.0 / 52.0, -0.05, 1e-4, 2.5
    assert a * a - 4.0 * b * c < -1e-12 * a * a
    t = ph.integrals(a, b, c, cap, v1, v1 - w)[0]
    # x2 - x1 was once taken as a difference of two O(a / s) numbers: off by ~3e-8 and ~7e-5
    assert t == pytest.approx(_t_exact(a, b, c, cap, v1, v1 - w), rel=1e-9, abs=0.0)


@pytest.mark.xfail(strict=True, reason="capacitor.integrals: the Gauss-Legendre fallback for |disc| <= 1e-12 a^2 "
                                       "cannot resolve V / Q(V) where Q nearly vanishes at its vertex")
def test_integrals_near_double_root_across_the_vertex():
    # a load within 1e-13 of the Thevenin source's maximum power transfer: V creeps past the vertex
    g, vs = 1.0 / 200.0, 3.0
    a, b = g * vs, -g
    c = -a * a / (4.0 * g) * (1.0 + 1e-13)
    v1, v2, cap = 2.0, 1.0, 1e-3
    assert abs(a * a - 4.0 * b * c) <= 1e-12 * a * a
    t = ph.integrals(a, b, c, cap, v1, v2)[0]
    assert t == pytest.approx(_t_exact(a, b, c, cap, v1, v2), rel=1e-6, abs=0.0)


@st.composite
def long_moves(draw):
    """(a, b, c, cap, v1, root, tau) for a move from v1 toward the root of Q it approaches, with tau
    the time constant there (C V / |Q'(V)| at the root)."""
    cap = draw(logu(-5, -2))
    kind = draw(st.sampled_from(["thevenin", "thevenin", "constant+leak"]))
    if kind == "thevenin":
        g = draw(logu(-3, -1))
        vs = draw(st.floats(1.5, 5.0))
        i_leak = draw(st.sampled_from([0.0]) | logu(-8, -4))
        a, b = g * vs - i_leak, -g
        p_max = a * a / (4.0 * g)  # the most the source gives a load (after leakage)
        p = draw(st.sampled_from([0.0]) | st.floats(0.01, 0.99).map(lambda f: f * p_max))
        c = -p
    else:  # constant power in, leakage out: V_eq = P / I
        i_leak = draw(logu(-7, -3))
        v_eq = draw(st.floats(1.0, 3.3))
        a, b, c = -i_leak, 0.0, v_eq * i_leak
    v1 = draw(st.floats(1.0, 3.3))
    q = ph.q_of(a, b, c, v1)
    assume(q != 0.0)
    root = ph.equilibrium(a, b, c, v1, q > 0.0)
    assume(math.isfinite(root) and root > 0.0 and abs(root - v1) > 1e-6 * root)
    slope = abs(2.0 * b * root + a)
    tau = cap * root / slope
    return a, b, c, cap, v1, root, tau


@settings(max_examples=300, deadline=None)
@given(long_moves(), st.floats(0.0, 4.0))
def test_voltage_after_long_moves_toward_an_equilibrium(move, log_taus):
    a, b, c, cap, v1, root, tau = move
    dt = tau * 10.0**log_taus
    v = ph.voltage_after(a, b, c, cap, v1, dt, root)
    assert min(v1, root) <= v <= max(v1, root), (v, v1, root)
    if v == root or abs(v - root) <= 1e-12 * root:
        # on the equilibrium to float precision: the exact move does come that close within dt
        near = root - math.copysign(2e-12 * root, root - v1)
        assert _t_exact(a, b, c, cap, v1, near) <= dt * (1.0 + 1e-9), (v, root, dt)
        return
    # the closed form inverts: T(v1, v) = dt.  Near the root T(V) is ill-conditioned (dT/dV = C V / |Q|
    # grows as tau / |V - root|), so allow what rounding V to a float costs, a few ulps of V times dT/dV;
    # far from the root this is far below 1e-9 dt.
    q = (v - root) * (a + b * (v + root))  # Q(v) - Q(root), accurate near the root
    slack = 4.0 * math.ulp(v) * cap * v / abs(q)
    t = ph.integrals(a, b, c, cap, v1, v)[0]
    assert abs(t - dt) <= 1e-9 * dt + slack, (t, dt, v, root, slack)
    assert abs(_t_exact(a, b, c, cap, v1, v) - dt) <= 1e-9 * dt + slack, (dt, v, root, slack)


def _read_only(a):
    a = np.array(a)
    a.flags.writeable = False
    return a


def test_compiled_calls_take_arguments_of_any_array_or_number_type():
    """The oracle calls its compiled entry points without numba's typing (oracle._call: one entry point per
    function, compiled for one type of every argument).  Arguments of other types (read-only, strided,
    float32 or int32 arrays, numpy scalars) are normalised first: the same answers as the usual ones, single
    calls and populations alike (a wrong type reaching the entry point would read garbage)."""
    from dataclasses import replace

    from tests.test_sim_engines import with_dispatch_costs

    rng = np.random.default_rng(3)
    d = rng.uniform(1e-3, 5e-3, 40)
    work = with_dispatch_costs(make_work(d, np.outer(d * 3e-3, [0.6, 0.3, 0.1]), layers=np.arange(40) // 10))
    power = PowerConfig(capacitor_F=100e-6, v_on=3.0, v_off=2.0, v_max=3.3, leakage_A=1e-7)
    seg = hv.thevenin(3.2, 300.0)
    sim = SimConfig(until_s=30.0)
    ref = oracle.simulate(work, power, seg, sim)
    odd_work = replace(work, durations_s=_read_only(work.durations_s), energy_J=np.asfortranarray(work.energy_J),
                       layers=work.layers.astype(np.int32))
    wide = np.zeros(2 * len(work))  # a strided view
    wide[::2] = work.durations_s
    strided_work = replace(work, durations_s=wide[::2])
    odd_seg = replace(seg, seg_t=_read_only(seg.seg_t), seg_p=seg.seg_p.astype(np.float32),
                      seg_g=_read_only(seg.seg_g), seg_vs=np.asfortranarray(seg.seg_vs))
    odd_power = replace(power, capacitor_F=np.float64(100e-6), v_on=np.float32(3.0), v_off=2)
    assert odd_power.v_on == 3.0 and ref["completed"]
    for w, p, s in ((odd_work, power, seg), (strided_work, power, seg), (work, odd_power, odd_seg)):
        assert oracle.simulate(w, p, s, sim) == ref
        assert oracle.Population([w, work]).evaluate(p, s, sim).result(0) == ref
