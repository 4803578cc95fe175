"""The power front end from shepherd-core's virtual-source presets (issue 23 item 1): ``[power] frontend``.

Lookups are checked against shepherd-core's own emulator model (``VirtualSourceModel``), the preset's values
against ``VirtualSourceConfig`` itself (never a number copied here), and the engines under a front end against
each other and the energy balance.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shepherd_core.data_models.base.calibration import CalibrationEmulator
from shepherd_core.data_models.content.virtual_source_config import VirtualSourceConfig
from shepherd_core.vsource.virtual_source_model import VirtualSourceModel
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim import bound, des, oracle
from aidi.sim import frontend as fr
from aidi.sim import harvesters as hv
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.workload import Workload, energy_balance_error

runner = CliRunner()
BOOST = ("BQ25570", "BQ25504")


def shepherd_converter(name: str):
    """shepherd-core's emulator converter of preset ``name`` (its own Python port of the PRU code)."""
    return VirtualSourceModel(VirtualSourceConfig(name=name), CalibrationEmulator()).cnv


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(BOOST), st.integers(0, 6_000_000), st.integers(0, 200_000_000))
def test_input_lut_and_power_equal_shepherds_emulator(name, v_uv, i_na):
    fe, cnv = fr.preset(name), shepherd_converter(name)
    assert fe.input_efficiency(v_uv * 1e-6, i_na * 1e-9) == cnv.get_input_efficiency(v_uv, i_na)
    p_shepherd = cnv.calc_inp_power(v_uv, i_na) * 1e-15  # fW -> W
    assert fe.input_power(v_uv * 1e-6, i_na * 1e-9) == pytest.approx(p_shepherd, rel=1e-9, abs=1e-18)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 50_000_000))
def test_output_lut_equals_shepherds_inverse_efficiency(i_na):
    fe, cnv = fr.preset("BQ25570"), shepherd_converter("BQ25570")
    assert fe.output_efficiency(i_na * 1e-9) == pytest.approx(1.0 / cnv.get_output_inv_efficiency(i_na), rel=1e-15)
    assert fr.preset("BQ25504").output_efficiency(i_na * 1e-9) == 1.0  # no buck


@pytest.mark.parametrize("name", fr.PRESETS)
def test_preset_thresholds_and_storage_come_from_shepherd(name):
    cfg, fe = VirtualSourceConfig(name=name), fr.preset(name)
    states = cfg.calc_internal_states()
    assert fe.v_on == pytest.approx(1e-3 * max(cfg.V_pwr_good_enable_threshold_mV,
                                               states["V_mid_enable_output_threshold_mV"]))
    assert fe.v_off == pytest.approx(1e-3 * max(cfg.V_pwr_good_disable_threshold_mV,
                                                states["V_mid_disable_output_threshold_mV"]))
    assert fe.check_interval_s == pytest.approx(1e-3 * cfg.interval_check_thresholds_ms)
    assert fe.boost == (cfg.enable_boost and cfg.storage is not None) and fe.buck == cfg.enable_buck
    if cfg.storage is None:
        assert fe.capacitor_F is None
    else:
        assert fe.capacitor_F == pytest.approx(cfg.storage.q_As / cfg.storage.calc_V_OC(1.0))
        assert fe.v_initial == pytest.approx(cfg.storage.V_init)
        assert fe.leakage_A(3.0, 2.0) == pytest.approx(2.5 / cfg.storage.R_leak_Ohm)


def scenario(tmp_path, power: str, harvester: str = 'kind = "constant"\npower_W = 1e-3', name="s.toml", extra=""):
    """A scenario file: ``[power]`` and ``[harvester]`` as given, a one-conv random-weight model, then ``extra``
    (more sections)."""
    p = tmp_path / name
    p.write_text(f'[power]\n{power}\n[harvester]\n{harvester}\n[model]\ninput = [3, 16, 16]\n'
                 f'layers = [{{type = "conv", k = 3, filters = 8, relu = true}}]\nweights = "random"\n{extra}')
    return p


def test_scenario_takes_the_presets_storage_and_thresholds_unless_overridden(tmp_path):
    fe = fr.preset("BQ25570")
    sc = loader.load(scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5'))
    p = sc.power
    assert (p.capacitor_F, p.v_on, p.v_off, p.v_initial) == (fe.capacitor_F, fe.v_on, fe.v_off, fe.v_initial)
    assert p.leakage_A == fe.leakage_A(fe.v_on, fe.v_off) and p.frontend == "BQ25570"
    plat = sc.device.make_platform()
    assert p.converter_efficiency == float(fe.output_efficiency(plat.active_power_W / plat.v_nominal)) < 1.0
    sc2 = loader.load(scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5\ncapacitor_F = 1e-3\nv_off = 2.6\n'
                                         'leakage_A = 0.0\nv_initial = 0.0'))
    assert (sc2.power.capacitor_F, sc2.power.v_off, sc2.power.leakage_A, sc2.power.v_initial) == (1e-3, 2.6, 0, 0)
    seg = sc.harvester.segments()  # the boost at (0.5 V, 2 mA), per the preset's input LUT
    assert seg.raw_p[0] == 1e-3 and seg.seg_p[0] == pytest.approx(float(fe.input_power(0.5, 2e-3)))
    assert 0.0 < seg.seg_p[0] < seg.raw_p[0]


def test_absent_frontend_leaves_everything_as_it_was(tmp_path):
    sc = loader.load(scenario(tmp_path, "capacitor_F = 1e-4\nv_on = 2.8\nv_off = 2.0"))
    assert sc.power.frontend is None and sc.power.converter_efficiency == 1.0 and sc.power.leakage_A == 0.0
    seg = sc.harvester.segments()
    assert seg.raw_p is None and seg.seg_p[0] == 1e-3
    work = _work(np.full(3, 1e-3), np.full(3, 5e-3))
    assert fr.loads(work, sc.power) is work


def _work(d, p, boot_s=1e-3):
    energy = np.stack([0.8 * p * d, 0.15 * p * d, 0.05 * p * d], axis=1)
    n = len(d)
    return Workload(names=[f"u{i}" for i in range(n)], layers=np.zeros(n, dtype=np.int64), durations_s=np.asarray(d),
                    energy_J=energy, boot_s=boot_s, boot_J=boot_s * 5e-3, sleep_W=2e-6, measure_s=46e-6,
                    measure_W=6e-3, wait_W=8e-6, wake_s=10e-6, wake_W=5.7e-3)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(1e-5, 2e-2), min_size=1, max_size=8))
def test_buck_draws_each_load_at_its_own_current(powers):
    fe = fr.preset("BQ25570")
    eta_ref = float(fe.output_efficiency(5.7e-3 / 3.0))
    power = PowerConfig(1e-4, 3.0, 2.5, 5.5, converter_efficiency=eta_ref, frontend="BQ25570")
    p = np.array(powers)
    work = _work(np.full(p.shape, 1e-3), p)
    drawn = fr.loads(work, power)
    i = p / power.load_v_nominal_V
    # what the capacitor gives = I * V_out / eta_out(I): the engines draw the loads' power / converter_efficiency
    np.testing.assert_allclose(drawn.power_W / eta_ref, i * fe.v_out / fe.output_efficiency(i), rtol=1e-12)
    i_wait = work.wait_W / power.load_v_nominal_V
    assert drawn.wait_W / eta_ref == pytest.approx(i_wait * fe.v_out / float(fe.output_efficiency(i_wait)))
    assert drawn.durations_s is work.durations_s


@st.composite
def fronted_runs(draw):
    name = draw(st.sampled_from(BOOST + ("diode+capacitor",)))
    fe = fr.preset(name)
    cap = draw(st.sampled_from([fe.capacitor_F, 4.7e-4, 1e-3]))
    v_in = draw(st.floats(max(fe.v_boost_min, 0.35), 1.5))
    if draw(st.booleans()):
        raw = hv.constant(10 ** draw(st.floats(-4, -2)))
    else:
        n = draw(st.integers(2, 5))
        p = [10 ** draw(st.floats(-4, -2)) for _ in range(n)]
        raw = hv.from_samples(np.cumsum([0.0] + [draw(st.floats(0.01, 0.3)) for _ in range(n - 1)]), p, True, "trace")
    seg = fr.through(fe, raw, v_in)
    eta_ref = float(fe.output_efficiency(5.7e-3 / 3.0))
    # power good decided at the threshold, every 64 ms (the BQ presets' interval) or at another interval
    check = draw(st.sampled_from([0.0, 0.064, draw(st.floats(1e-3, 0.1))]))
    power = PowerConfig(cap, fe.v_on, fe.v_off, fe.v_max, fe.leakage_A(fe.v_on, fe.v_off),
                        draw(st.sampled_from([0.0, fe.v_initial])), eta_ref, name, v_in, threshold_check_s=check,
                        v_floor=min(fe.v_floor, fe.v_off) if check > 0 else 0.0)
    e_cyc = power.e_cycle_J
    n = draw(st.integers(1, 6))
    d = np.array([draw(st.floats(1e-4, 5e-3)) for _ in range(n)])
    frac = np.array([draw(st.floats(0.02, 0.5)) for _ in range(n)])
    work = _work(d, frac * e_cyc / d, boot_s=draw(st.floats(1e-4, 1e-3)))
    sim = SimConfig(dispatch=draw(st.sampled_from(["greedy", "energy_aware"])), inferences=draw(st.integers(1, 2)),
                    until_s=60.0)
    return work, power, seg, sim


@st.composite
def browning_runs(draw):
    """Runs that brown out under a front end with a check interval: units of 0.3 to 1.1 of a power cycle's
    energy, a source of 5 to 60 % of their power, the MCU's floor 2.4 V or the preset's."""
    name = draw(st.sampled_from(["BQ25570", "BQ25504"]))
    fe = fr.preset(name)
    check = draw(st.sampled_from([0.064, draw(st.floats(1e-3, 0.1))]))
    eta = float(fe.output_efficiency(5.7e-3 / 3.0))
    power = PowerConfig(draw(st.sampled_from([4.7e-5, 1e-4])), fe.v_on, fe.v_off, fe.v_max,
                        draw(st.sampled_from([0.0, 1e-6])), draw(st.sampled_from([0.0, 0.0, fe.v_initial])), eta, name,
                        0.5, threshold_check_s=check, v_floor=min(draw(st.sampled_from([fe.v_floor, 2.4])), fe.v_off))
    n = draw(st.integers(3, 10))
    p = np.array([draw(st.floats(2e-3, 8e-3)) for _ in range(n)])
    d = np.array([draw(st.floats(0.3, 1.1)) for _ in range(n)]) * power.e_cycle_J / p
    energy = np.stack([0.8 * p * d, 0.15 * p * d, 0.05 * p * d], axis=1)
    work = Workload(names=[f"u{i}" for i in range(n)], layers=np.zeros(n, dtype=np.int64), durations_s=d,
                    energy_J=energy, boot_s=1e-3, boot_J=5.7e-6, sleep_W=2e-6, measure_s=46e-6, measure_W=6e-3,
                    wait_W=8e-6, wake_s=10e-6, wake_W=5.7e-3)
    src = draw(st.floats(0.05, 0.6)) * float(p.mean())
    if draw(st.booleans()):
        raw = hv.constant(src)
    else:
        raw = hv.from_samples(np.array([0.0, draw(st.floats(0.01, 0.2))]), [src, src * draw(st.floats(0.2, 3.0))],
                              True, "trace")
    sim = SimConfig(dispatch=draw(st.sampled_from(["greedy", "energy_aware"])), inferences=draw(st.integers(1, 2)),
                    until_s=10.0)
    return work, power, fr.through(fe, raw, 0.5), sim



@settings(max_examples=100, deadline=None)
@given(st.one_of(fronted_runs(), browning_runs()))
def test_engines_agree_and_balance_under_a_frontend(case):
    work, power, seg, sim = case
    try:
        r_des, _ = des.simulate(work, power, seg, sim)
    except ValueError as exc:
        with pytest.raises(ValueError) as info:
            oracle.simulate(work, power, seg, sim)
        assert str(info.value) == str(exc)
        return
    r_ora = oracle.simulate(work, power, seg, sim)
    for k in ("completed", "power_cycles", "units_lost", "units_executed", "measurements"):
        assert r_des[k] == r_ora[k], k
    for k in ("sim_time_s", "v_final"):
        assert r_des[k] == pytest.approx(r_ora[k], rel=1e-9, abs=1e-12), k
    for res in (r_des, r_ora):
        e = res["energy_J"]
        assert energy_balance_error(res) < 1e-9
        cats = e["by_category"]
        assert sum(cats.values()) == pytest.approx(e["consumed"], rel=1e-9)
        # the input converter's loss: what the harvester gave over the run less what entered the capacitor
        t = res["sim_time_s"]
        assert cats["converter_input"] == pytest.approx(fr.input_loss_J(seg, t), rel=1e-12)
        assert cats["converter_input"] >= 0.0 and cats["converter_loss"] >= -1e-12 * e["consumed"]
    for k in r_des["energy_J"]["by_category"]:
        a, b = r_des["energy_J"]["by_category"][k], r_ora["energy_J"]["by_category"][k]
        assert a == pytest.approx(b, rel=1e-9, abs=1e-9 * r_des["energy_J"]["consumed"] + 1e-18), k


def test_frontend_run_and_check_through_the_cli(tmp_path):
    p = scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5')
    out = {}
    for engine in ("des", "oracle"):
        r = runner.invoke(app, ["run", str(p), "--engine", engine, "--json", "--no-functional"])
        assert r.exit_code == 0, r.output
        out[engine] = json.loads(r.stdout)
    assert out["des"]["latency_s"] == pytest.approx(out["oracle"]["latency_s"], rel=1e-9)
    cats = out["des"]["energy_J"]["by_category"]
    assert cats["converter_input"] > 0 and cats["converter_loss"] > 0
    r = runner.invoke(app, ["check", str(p), "--json"])
    assert r.exit_code in (0, 1), r.output
    b = json.loads(r.stdout)["latency_bound"]
    assert b["latency_s"] is not None and b["latency_s"] >= out["des"]["latency_s"] * (1 - 1e-9)


def test_bound_uses_the_bucks_draw(tmp_path):
    """The latency bound under the front end is the bound of the drawn loads (not of the nominal ones)."""
    fe = fr.preset("BQ25570")
    eta = float(fe.output_efficiency(5.7e-3 / 3.0))
    power = PowerConfig(1e-4, fe.v_on, fe.v_off, fe.v_max, 0.0, 0.0, eta, "BQ25570", 0.5)
    work = _work(np.full(20, 4e-3), np.full(20, 5e-3))
    seg = fr.through(fe, hv.constant(1e-3), 0.5)
    sim = SimConfig(dispatch="energy_aware")
    src = bound.min_source(seg, power, sim.until_s)
    with_fe = bound.latency_bound(work, power, src, sim).latency_s
    plain = PowerConfig(1e-4, fe.v_on, fe.v_off, fe.v_max, 0.0, 0.0, eta)
    assert with_fe == pytest.approx(bound.latency_bound(fr.loads(work, power), plain, src, sim).latency_s, rel=1e-12)
    assert with_fe != bound.latency_bound(work, plain, src, sim).latency_s


@pytest.mark.parametrize("power, key", [
    ('frontend = "BQ99999"', "power.frontend"),
    ('frontend = "BQ25570"\nv_input_V = 9.0', "power.v_input_V"),
    ('frontend = "BQ25570"\nv_input_V = 0.05', "power.v_input_V"),
    ('frontend = "BQ25570"', "power.v_input_V"),
    ('frontend = "BQ25570"\nv_input_V = 0.5\nconverter_efficiency = 0.9', "power.converter_efficiency"),
    ('frontend = "direct"\nv_input_V = 0.5', "power.capacitor_F"),
    ("capacitor_F = 1e-4\nv_on = 2.8\nv_off = 2.0\nv_input_V = 0.5", "power.v_input_V"),
])
def test_bad_frontend_input_is_one_line_exit_2(tmp_path, power, key):
    r = runner.invoke(app, ["run", str(scenario(tmp_path, power)), "--json"])
    assert r.exit_code == 2, r.output
    msg = r.stderr.strip() if r.stderr else r.output.strip()
    assert "\n" not in msg and "Traceback" not in msg and key in msg, msg


def test_input_current_above_the_presets_range_is_an_error(tmp_path):
    p = scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.2', 'kind = "constant"\npower_W = 0.05')
    r = runner.invoke(app, ["run", str(p), "--json"])
    assert r.exit_code == 2 and "I_input_max" in (r.stderr or r.output) and "power.v_input_V" in (r.stderr or r.output)


@pytest.mark.parametrize("harvester, says", [
    ('kind = "thevenin"\nv_source = 3.0\nr_ohm = 1000.0', "maximum-power point"),
    ('kind = "trace"\nfile = "vi.csv"', "voltage and current per sample"),
])
def test_a_source_that_gives_its_voltage_refuses_v_input(tmp_path, harvester, says):
    """No silent drop: a v_input_V that the source's own voltage would override is a one-line error naming the key
    (pv's case: tests/test_frontend_pv.py); without it the same scenario runs."""
    (tmp_path / "vi.csv").write_text("time_s,voltage_V,current_A\n0,1.0,2e-3\n1,1.2,3e-3\n")
    bad = scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5', harvester)
    r = runner.invoke(app, ["run", str(bad), "--engine", "oracle", "--json"])
    msg = (r.stderr or r.output).strip()
    assert r.exit_code == 2 and "\n" not in msg and "power.v_input_V" in msg and says in msg, msg
    good = scenario(tmp_path, 'frontend = "BQ25570"', harvester, name="ok.toml")
    r = runner.invoke(app, ["run", str(good), "--engine", "oracle", "--json"])
    assert r.exit_code == 0, r.output


def test_a_thevenin_source_below_v_on_boots_through_a_boost_not_through_a_diode(tmp_path):
    """A boost converter harvests a 1 V source into a 3 V capacitor (the BQ25570's point); without one the capacitor
    charges towards the source voltage less the input drop, so a source that cannot lift it above v_on is refused
    (one line, naming the drop) instead of never booting."""
    src = 'kind = "thevenin"\nv_source = 1.0\nr_ohm = 100.0'
    r = runner.invoke(app, ["run", str(scenario(tmp_path, 'frontend = "BQ25570"', src)), "--engine", "oracle",
                            "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["completed"], r.output
    fe = fr.preset("diode+capacitor")
    v = fe.v_on + fe.v_input_drop / 2  # above v_on, below it once the diode has taken its drop
    assert fe.v_input_drop > 0 and not fe.boost
    p = scenario(tmp_path, 'frontend = "diode+capacitor"', f'kind = "thevenin"\nv_source = {v}\nr_ohm = 100.0',
                 name="d.toml")
    r = runner.invoke(app, ["run", str(p), "--engine", "oracle", "--json"])
    msg = (r.stderr or r.output).strip()
    assert r.exit_code == 2 and "harvester.v_source" in msg and "input drop" in msg and "\n" not in msg, msg


def test_trace_with_voltage_takes_the_lut_per_row(tmp_path):
    f = tmp_path / "t.csv"
    f.write_text("time_s,voltage_V,current_A\n0,0.3,1e-3\n1,1.2,5e-4\n2,0.05,1e-3\n")
    fe = fr.preset("BQ25504")
    seg = hv.read_trace(f, input_power=fe.input_power)
    np.testing.assert_allclose(seg.raw_p, [0.3e-3, 0.6e-3, 0.05e-3])
    np.testing.assert_allclose(seg.seg_p, fe.input_power(np.array([0.3, 1.2, 0.05]), np.array([1e-3, 5e-4, 1e-3])))
    assert seg.seg_p[2] == 0.0  # below the boost's threshold: nothing harvested
    assert math.isclose(fr.input_loss_J(seg, 2.5), float(np.sum((seg.raw_p - seg.seg_p) * [1, 1, 0.5])))


def test_shipped_ideal_counterpart_keeps_the_presets_storage_and_thresholds():
    """scenarios/bq25570-ideal.toml writes out what scenarios/bq25570.toml reads from the BQ25570 preset; only the
    converters differ (README, The power path)."""
    fe_sc, ideal = loader.load("bq25570"), loader.load("bq25570-ideal")
    a, b = fe_sc.power, ideal.power
    assert a.frontend == "BQ25570" and b.frontend is None and b.converter_efficiency == 1.0
    for k in ("capacitor_F", "v_on", "v_off", "v_max", "leakage_A", "v_initial"):
        assert getattr(a, k) == pytest.approx(getattr(b, k), rel=1e-7), k
    assert fe_sc.harvester.segments().raw_p[0] == ideal.harvester.segments().seg_p[0]


def test_shepherd_recording_takes_the_lut_per_sample(tmp_path):
    """Each sample of a Shepherd recording enters through the input LUT at its own (V, I), then is averaged over
    the window: the window's power is the mean of input_power over its samples (not input_power of the mean)."""
    from shepherd_core import Reader, Writer

    n = 20_000
    k = np.arange(n)
    v = 0.2 + 0.9 * (k % 7) / 6.0  # 0.2 .. 1.1 V: several rows of the LUT
    i = 1e-4 * 2.0 ** (k % 9)  # 0.1 .. 25.6 mA: several columns
    rec = tmp_path / "rec.h5"
    with Writer(rec, mode="harvester", datatype="ivsample", compression=None, verbose=False) as w:
        w.store_hostname("aidi-test")
        w.append_iv_data_si(1.7e9, v, i)
    with Reader(rec, verbose=False) as r:  # the samples as the Reader calibrates them
        cal = r.get_calibration_data()
        v_r = cal.voltage.raw_to_si(r.ds_voltage[:].astype(float))
        i_r = cal.current.raw_to_si(r.ds_current[:].astype(float))
    fe = fr.preset("BQ25570")
    p = tmp_path / "s.toml"
    p.write_text(f'[power]\nfrontend = "BQ25570"\n[harvester]\nkind = "shepherd"\nfile = "{rec.name}"\n')
    seg = loader.load(p).harvester.segments()
    per_window = 1000  # the default window_s (10 ms) of 10 us samples
    np.testing.assert_allclose(seg.seg_p, fe.input_power(v_r, i_r).reshape(-1, per_window).mean(axis=1), rtol=1e-9)
    np.testing.assert_allclose(seg.raw_p, (v_r * i_r).reshape(-1, per_window).mean(axis=1), rtol=1e-9)
    assert not np.allclose(seg.seg_p, fe.input_power(v_r.reshape(-1, per_window).mean(axis=1),
                                                     i_r.reshape(-1, per_window).mean(axis=1)), rtol=1e-3)
