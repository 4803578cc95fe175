"""The oracle's repeating-pattern shortcut (stepping.run_units_merged) against the SimPy model.

Tiled layers alternate a few kinds of unit (first-channel and accumulating tiles, edge tiles):
the oracle steps such a pattern of runs until the capacitor comes back to the same voltage, then
jumps over the identical repeats.  These tests build workloads of repeated patterns, with the
random power configurations of test_sim_engines, so that brown-outs, until_s and changes of a
trace source fall inside the repeats, and check the two engines still agree to 1e-9.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.sim import harvesters as hv
from aidi.sim import oracle
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.capacitor import ALL_DONE, HORIZON
from tests.test_sim_engines import assert_agree, both, check_engines_agree, make_work, scenarios, with_dispatch_costs


def patterned(work, kinds, run_lengths, repeats, prefix=0):
    """``prefix`` copies of unit 0, then ``repeats`` times the pattern: run_lengths[j] copies of unit kinds[j]."""
    idx = np.repeat(np.asarray(kinds), np.asarray(run_lengths))
    idx = np.concatenate([np.zeros(prefix, dtype=int), np.tile(idx, repeats)])
    return make_work(work.durations_s[idx], work.energy_J[idx], boot_s=work.boot_s, boot_J=work.boot_J,
                     sleep_W=work.sleep_W, layers=np.sort(work.layers[idx]))


@st.composite
def pattern_scenarios(draw):
    work, power, seg, sim = draw(scenarios())
    n = len(work)
    size = draw(st.integers(2, 4))
    kinds = draw(st.lists(st.integers(0, n - 1), min_size=size, max_size=size))
    lengths = draw(st.lists(st.integers(1, 5), min_size=size, max_size=size))
    repeats = draw(st.integers(4, 30))
    return patterned(work, kinds, lengths, repeats, draw(st.integers(0, 3))), power, seg, sim


@settings(max_examples=120, deadline=None)
@given(pattern_scenarios())
def test_oracle_agrees_with_des_on_repeating_patterns(case):
    check_engines_agree(case)


def _two_kinds(n_pairs, d=(0.03, 0.05), p=(5e-3, 9e-3)):
    """A tiled layer's alternation: a first-channel tile and an accumulating tile, n_pairs times."""
    durations = np.tile(np.array(d), n_pairs)
    power = np.tile(np.array(p), n_pairs)
    energy = np.stack([durations * power * 0.7, durations * power * 0.2, durations * power * 0.1], axis=1)
    return make_work(durations, energy)


def test_pattern_shortcut_is_taken_and_agrees_under_the_inas_supply():
    """iNAS's bench supply (3 V through 52 ohm, 1 mF) never browns out: the voltage settles into a
    periodic orbit, which the oracle detects and jumps over; results must not change."""
    work = _two_kinds(400)
    power = PowerConfig(1e-3, 2.99, 2.8, 3.0)
    seg = hv.thevenin(3.0, 52.0)
    sim = SimConfig(dispatch="greedy", until_s=1e5)
    r_des, _log, r_ora = both(work, power, seg, sim)
    assert_agree(r_des, r_ora)
    assert r_ora["completed"] and r_ora["power_cycles"] == 1
    cp = oracle.Population([work]).compiled
    assert cp.per_len[0] == 2 and cp.per_end[0] == len(work)  # the whole workload is one repeating pattern


def test_brownouts_inside_patterns_agree():
    """A weak source: the capacitor browns out many times in the middle of the repeats."""
    work = _two_kinds(300, p=(5e-3, 12e-3))
    power = PowerConfig(470e-6, 3.0, 2.4, 3.3, leakage_A=1e-6)
    seg = hv.thevenin(3.3, 900.0)
    sim = SimConfig(dispatch="greedy", until_s=1e5)
    r_des, _log, r_ora = both(work, power, seg, sim)
    assert_agree(r_des, r_ora)
    assert r_ora["power_cycles"] > 10 and r_ora["units_lost"] > 5


def test_until_s_and_a_trace_change_inside_the_repeats_agree():
    """The source steps up in the middle of the pattern stretch and until_s cuts another: the jump
    over steady repeats must stop at both."""
    work = _two_kinds(2000)
    power = PowerConfig(1e-3, 2.9, 2.5, 3.0, v_initial=2.9)
    seg = hv.from_samples(np.array([0.0, 7.3]), np.array([9e-3, 2e-2]), False, "trace")
    for until in (5.0, 13.71, 1e4):
        sim = SimConfig(dispatch="greedy", until_s=until)
        r_des, _log, r_ora = both(work, power, seg, sim)
        assert_agree(r_des, r_ora)


# energy_aware: repeating patterns of measured units ------------------------------------------------------------

def _stretch_both_ways(work, power, seg, until_s, v0):
    """The oracle's stretch of ``work`` from (0, v0) with its patterns, and with none (every measured unit
    stepped): (with, without)."""
    from aidi.sim import capacitor, dispatch, stepping

    sim = SimConfig(dispatch="energy_aware", until_s=until_s)
    cp = oracle.Population([work]).compiled
    plan = dispatch.make_plan(work, power, sim.dispatch_margin)
    units = stepping.Units(cp.durations_s, cp.power_W, cp.layers, cp.run_end, cp.per_len, cp.per_end, work.boot_s,
                           work.boot_J / work.boot_s, work.sleep_W)
    flat = units._replace(per_len=np.zeros_like(cp.per_len))
    c, lim = capacitor.circuit(power, seg), capacitor.limits(power, until_s)
    return tuple(stepping.stretch(v0, 0.0, 0, 0.0, u, plan, lim, c, stepping.NO_TRACE) for u in (units, flat))


@pytest.mark.parametrize("until_s", [1e5, 40.0])
def test_measured_patterns_bit_for_bit_under_iNAS_supply(until_s):
    """iNAS's bench supply under energy_aware: nearly every unit of a two-kind alternation is measured and most
    wait for their threshold.  The oracle's stretch with the workload's repeating patterns and with none: the
    same clock bit for bit and the same counts, sums to rounding; and the same results as the SimPy model."""
    work = with_dispatch_costs(_two_kinds(400, p=(5e-3, 9e-3)))
    power = PowerConfig(1e-3, 2.99, 2.8, 3.0, v_initial=2.99)
    seg = hv.thevenin(3.0, 52.0)
    jumped, stepped = _stretch_both_ways(work, power, seg, until_s, 2.99)
    assert stepped.measurements > 0.5 * stepped.k > 200  # the units are measured: the case the jump is for
    assert (jumped.k, jumped.why, jumped.phase, jumped.measurements, jumped.waits) == \
        (stepped.k, stepped.why, stepped.phase, stepped.measurements, stepped.waits)
    if until_s > 1e4:
        assert jumped.why == ALL_DONE and jumped.t == stepped.t and jumped.v == stepped.v
    else:
        assert jumped.why == HORIZON and 0 < jumped.k < len(work)
        assert jumped.t == pytest.approx(stepped.t, rel=1e-12, abs=0)
    for f in ("harvested_J", "consumed_J", "leaked_J", "clipped_J", "wait_J", "wait_s"):
        assert getattr(jumped, f) == pytest.approx(getattr(stepped, f), rel=1e-11), f
    r_des, _log, r_ora = both(work, power, seg, SimConfig(dispatch="energy_aware", until_s=until_s))
    assert_agree(r_des, r_ora)
