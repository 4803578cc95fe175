"""The front end's threshold-check interval (issue 23 item 1): power good decided only every ``threshold_check_s``.

The checked moves are compared with the continuous closed form (:func:`aidi.sim.capacitor.advance_continuous`)
run to the check instant computed here; the scenario key is read from the preset and overridden.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim import frontend as fr
from aidi.sim.capacitor import HIT_HIGH, HIT_LOW, HORIZON, Circuit, advance, advance_continuous
from tests.test_frontend import scenario as frontend_scenario

runner = CliRunner()


def _circ(p_src: float, check_s: float, v_floor: float, leak: float = 0.0, seg_t=(0.0,), seg_p=None) -> Circuit:
    seg_p = [p_src] if seg_p is None else seg_p
    z = np.zeros(len(seg_t))
    return Circuit(1e-4, leak, 5.5, np.array(seg_t, dtype=float), np.array(seg_p, dtype=float), z, z, 0.0, check_s,
                   v_floor)


def _first_check(t: float, check_s: float) -> float:
    """The first k * check_s at or after t (k an integer), computed independently of the module."""
    k = math.floor(t / check_s)
    while k * check_s < t * (1 - 1e-12):
        k += 1
    return k * check_s


def _close(a, b):
    return a == pytest.approx(b, rel=1e-9, abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(st.floats(0.0, 0.5), st.floats(1e-4, 2e-3), st.floats(3e-3, 2e-2), st.floats(2e-3, 0.2), st.floats(0.0, 2.2),
       st.floats(0.0, 1e-6))
def test_brownout_at_the_first_check_below_v_off_or_at_the_floor(t0, p_src, p_load, check_s, v_floor, leak):
    """The MCU draws on below V_off until a check instant finds V there (HIT_LOW then, V below V_off), unless V
    reaches the MCU's floor first (HIT_LOW there); V and the energies are the continuous closed form's."""
    v0, v_off = 3.0, 2.5
    circ = _circ(p_src, check_s, v_floor, leak)
    plain = circ._replace(check_s=0.0)
    cross = advance_continuous(v0, t0, 10.0, p_load, v_off, 9.0, False, plain)
    assert cross.reason == HIT_LOW
    t_g = _first_check(t0 + cross.elapsed_s, check_s)
    r = advance(v0, t0, 10.0, p_load, v_off, 9.0, False, circ)
    to_check = advance_continuous(v0, t0, t_g - t0, p_load, v_floor, 9.0, False, plain)
    assert r.reason == HIT_LOW
    if to_check.reason == HIT_LOW:  # the floor comes first
        assert _close(r.elapsed_s, to_check.elapsed_s) and _close(r.v_end, v_floor)
    else:
        assert _close(r.elapsed_s, t_g - t0) and _close(r.v_end, to_check.v_end) and r.v_end <= v_off
    assert _close(r.consumed_J, to_check.consumed_J) and _close(r.harvested_J, to_check.harvested_J)
    assert _close(r.leaked_J, to_check.leaked_J)
    # cut into activities: the second one starts below V_off and browns out at the same check
    first = advance(v0, t0, cross.elapsed_s + 0.3 * (t_g - t0 - cross.elapsed_s), p_load, v_off, 9.0, False, circ)
    if first.reason == HORIZON:
        second = advance(first.v_end, t0 + first.elapsed_s, 10.0, p_load, v_off, 9.0, False, circ)
        assert second.reason == HIT_LOW and _close(first.elapsed_s + second.elapsed_s, r.elapsed_s)
        assert _close(second.v_end, r.v_end)


@settings(max_examples=100, deadline=None)
@given(st.floats(0.0, 0.5), st.floats(1e-4, 5e-3), st.floats(2e-3, 0.2), st.floats(0.0, 2.9))
def test_boot_at_the_first_check_above_v_on(t0, p_src, check_s, v0):
    """Charging with the MCU off stops at the first check instant that finds V >= V_on (the charge goes on past
    V_on meanwhile, clamped at V_max)."""
    circ = _circ(p_src, check_s, 2.0)
    plain = circ._replace(check_s=0.0)
    cross = advance_continuous(v0, t0, 1e3, 0.0, -1.0, 3.0, True, plain)
    assert cross.reason == HIT_HIGH
    t_g = _first_check(t0 + cross.elapsed_s, check_s)
    r = advance(v0, t0, 1e3, 0.0, -1.0, 3.0, True, circ)
    to_check = advance_continuous(v0, t0, t_g - t0, 0.0, -1.0, 3.0, False, plain)
    assert r.reason == HIT_HIGH and _close(r.elapsed_s, t_g - t0) and _close(r.v_end, to_check.v_end)
    assert r.v_end >= 3.0 and _close(r.harvested_J, to_check.harvested_J)


def test_v_recovering_before_the_check_is_no_brownout():
    """A dip below V_off that the source lifts back above it before the next check does not brown out."""
    check_s = 0.064
    circ = _circ(0.0, check_s, 2.0, seg_t=(0.0, 0.01), seg_p=(0.0, 0.05))  # 0 W, then 50 mW from 10 ms
    r = advance(2.52, 0.0, 0.05, 5e-3, 2.5, 9.0, False, circ)  # crosses V_off within 10 ms, back by 64 ms
    assert r.reason == HORIZON and r.elapsed_s == pytest.approx(0.05) and r.v_end > 2.5
    assert advance(2.52, 0.0, 0.05, 5e-3, 2.5, 9.0, False, circ._replace(check_s=0.0)).reason == HIT_LOW


def scenario(tmp_path, power: str):
    return frontend_scenario(tmp_path, power, extra='[execution]\ndispatch = "greedy"\n')


def test_the_interval_comes_from_the_preset_unless_overridden(tmp_path):
    fe = fr.preset("BQ25570")
    p = loader.load(scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5')).power
    assert p.threshold_check_s == fe.check_interval_s == 0.064 and p.v_floor == pytest.approx(2.0)
    assert fe.v_floor == pytest.approx(fr.MCU_MIN_SUPPLY_V + fe.v_output_drop)
    schmitt = loader.load(scenario(tmp_path, 'frontend = "BQ25570s"\nv_input_V = 0.5')).power
    assert schmitt.threshold_check_s == 0.0 and schmitt.v_floor == 0.0  # its power good is immediate
    own = loader.load(scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5\nthreshold_check_s = 0.01')).power
    assert own.threshold_check_s == 0.01
    plain = loader.load(scenario(tmp_path, "capacitor_F = 1e-4\nv_on = 2.8\nv_off = 2.0")).power
    assert plain.threshold_check_s == 0.0 and plain.v_floor == 0.0


def test_interval_changes_the_run_and_zero_is_instant(tmp_path):
    """Through the CLI: the preset's 64 ms against threshold_check_s = 0 (instant decisions), both engines."""
    out = {}
    for name, extra in (("preset", ""), ("instant", "\nthreshold_check_s = 0.0")):
        path = scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5\nv_initial = 0.0' + extra)
        for engine in ("des", "oracle"):
            r = runner.invoke(app, ["run", str(path), "--engine", engine, "--json", "--no-functional"])
            assert r.exit_code == 0, r.output
            out[name, engine] = json.loads(r.stdout)
    for name in ("preset", "instant"):
        a, b = out[name, "des"], out[name, "oracle"]
        assert a["latency_s"] == pytest.approx(b["latency_s"], rel=1e-9) and a["power_cycles"] == b["power_cycles"]
    assert out["preset", "des"]["latency_s"] != out["instant", "des"]["latency_s"]


@pytest.mark.parametrize("value", ["-0.01", '"fast"', "inf", "nan"])
def test_bad_interval_is_one_line_exit_2(tmp_path, value):
    r = runner.invoke(app, ["run", str(scenario(tmp_path, f'frontend = "BQ25570"\nv_input_V = 0.5\n'
                                                          f"threshold_check_s = {value}")), "--json"])
    assert r.exit_code == 2, r.output
    msg = (r.stderr or r.output).strip()
    assert "\n" not in msg and "Traceback" not in msg and "power.threshold_check_s" in msg, msg

