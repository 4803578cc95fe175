"""Scenario TOML loader (aidi.scenarios.loader) and trace files (aidi.sim.harvesters.read_trace):
every kind of bad input gives one line naming the file and the key or line; shipped scenarios load."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from aidi.scenarios import loader
from aidi.scenarios.loader import ScenarioError
from aidi.sim import des, oracle
from aidi.sim import harvesters as hv
from aidi.sim.harvesters import TraceError
from aidi.sim.workload import Workload, energy_balance_error

POWER = '[power]\ncapacitor_F = 1e-4\nv_on = 3.0\nv_off = 2.0\n'
CONSTANT = '[harvester]\nkind = "constant"\npower_W = 1e-3\n'
BASE = POWER + CONSTANT


def write(folder: Path, text: str, name: str = "scen.toml") -> Path:
    p = folder / name
    p.write_text(text)
    return p


def assert_one_line(msg: str, *parts: str) -> None:
    assert "\n" not in msg and "\r" not in msg, repr(msg)
    for part in parts:
        assert part in msg, (part, msg)


def load_error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        loader.load(path)
    return str(info.value)


# ---------------------------------------------------------------------------------------------
# a good file
# ---------------------------------------------------------------------------------------------

def test_minimal_scenario_defaults(tmp_path):
    s = loader.load(write(tmp_path, BASE))
    assert s.name == "scen"
    assert s.power.capacitor_F == 1e-4 and s.power.v_on == 3.0 and s.power.v_off == 2.0
    assert s.power.v_max == 3.6 and s.power.leakage_A == 0.0 and s.power.v_initial == 0.0
    assert s.power.converter_efficiency == 1.0
    assert s.harvester.kind == "constant" and s.harvester.power_W == 1e-3
    assert s.device.platform == "msp430fr5994"
    assert s.sim.inferences == 1 and s.sim.until_s == 7 * 86400.0
    seg = s.harvester.segments()
    assert seg.time_invariant and seg.seg_p[0] == 1e-3


def test_integers_accepted_for_float_keys(tmp_path):
    s = loader.load(write(tmp_path, '[power]\ncapacitor_F = 1\nv_on = 3\nv_off = 2\nv_max = 3\n' + CONSTANT))
    assert s.power.capacitor_F == 1.0 and isinstance(s.power.v_on, float) and s.power.v_max == 3.0


def test_thevenin_and_efficiency(tmp_path):
    s = loader.load(write(tmp_path, POWER + '[harvester]\nkind = "thevenin"\nv_source = 3.3\nr_ohm = 52\n'))
    seg = s.harvester.segments()
    assert seg.seg_g[0] == pytest.approx(1 / 52) and seg.seg_vs[0] == 3.3 and seg.seg_p[0] == 0.0
    s = loader.load(write(tmp_path, POWER + CONSTANT + "efficiency = 0.5\n"))
    assert s.harvester.segments().seg_p[0] == pytest.approx(0.5e-3)


# ---------------------------------------------------------------------------------------------
# bad scenario files: ScenarioError, one line, naming the file and the key
# ---------------------------------------------------------------------------------------------

BAD = {
    # id: (text, key the message must name)
    "unknown_section": (BASE + "[powr]\nx = 1\n", "powr"),
    "unknown_key": (BASE.replace("v_off = 2.0", "v_off = 2.0\nv_of = 2.0"), "power.v_of"),
    "unknown_harvester_key": (BASE + "powerW = 1\n", "harvester.powerW"),
    "section_not_a_table": ("sim = 3\n" + BASE, "sim"),
    "missing_power_key": (BASE.replace("capacitor_F = 1e-4\n", ""), "power.capacitor_F"),
    "missing_harvester": (POWER, "harvester"),
    "missing_kind": (POWER + "[harvester]\npower_W = 1e-3\n", "harvester.kind"),
    "string_for_number": (BASE.replace("v_on = 3.0", 'v_on = "3.0"'), "power.v_on"),
    "bool_for_number": (BASE.replace("capacitor_F = 1e-4", "capacitor_F = true"), "power.capacitor_F"),
    "array_for_number": (BASE.replace("v_on = 3.0", "v_on = [3.0]"), "power.v_on"),
    "date_for_number": (BASE.replace("v_on = 3.0", "v_on = 1979-05-27"), "power.v_on"),
    "number_for_string": (POWER + "[harvester]\nkind = 3\n", "harvester.kind"),
    "string_for_bool": (POWER + '[harvester]\nkind = "trace"\nfile = "t.csv"\nrepeat = "yes"\n',
                        "harvester.repeat"),
    "number_for_path": (POWER + '[harvester]\nkind = "trace"\nfile = 3\n', "harvester.file"),
    "float_for_int": (BASE + "[sim]\ninferences = 1.5\n", "sim.inferences"),
    "nan_capacitor": (BASE.replace("capacitor_F = 1e-4", "capacitor_F = nan"), "power.capacitor_F"),
    "inf_v_on": (BASE.replace("v_on = 3.0", "v_on = inf"), "power.v_on"),
    "minus_inf_v_off": (BASE.replace("v_off = 2.0", "v_off = -inf"), "power.v_off"),
    "nan_v_max": (BASE.replace("v_off = 2.0", "v_off = 2.0\nv_max = nan"), "power.v_max"),
    "nan_power": (BASE.replace("power_W = 1e-3", "power_W = nan"), "harvester.power_W"),
    "inf_power": (BASE.replace("power_W = 1e-3", "power_W = +inf"), "harvester.power_W"),
    "nan_until": (BASE + "[sim]\nuntil_s = nan\n", "sim.until_s"),
    "negative_capacitor": (BASE.replace("capacitor_F = 1e-4", "capacitor_F = -1e-4"), "power.capacitor_F"),
    "zero_capacitor": (BASE.replace("capacitor_F = 1e-4", "capacitor_F = 0"), "power.capacitor_F"),
    "v_on_equals_v_off": (BASE.replace("v_on = 3.0", "v_on = 2.0"), "power.v_on"),
    "v_on_below_v_off": (BASE.replace("v_on = 3.0", "v_on = 1.5"), "power.v_on"),
    "v_off_zero": (BASE.replace("v_off = 2.0", "v_off = 0.0"), "power.v_off"),
    "v_max_below_v_on": (BASE.replace("v_off = 2.0", "v_off = 2.0\nv_max = 2.9"), "power.v_max"),
    "v_initial_above_v_max": (BASE.replace("v_off = 2.0", "v_off = 2.0\nv_max = 3.3\nv_initial = 3.5"),
                              "power.v_initial"),
    "v_initial_negative": (BASE.replace("v_off = 2.0", "v_off = 2.0\nv_initial = -0.1"), "power.v_initial"),
    "negative_leakage": (BASE.replace("v_off = 2.0", "v_off = 2.0\nleakage_A = -1e-9"), "power.leakage_A"),
    "efficiency_zero": (BASE.replace("v_off = 2.0", "v_off = 2.0\nconverter_efficiency = 0"),
                        "power.converter_efficiency"),
    "efficiency_above_one": (BASE.replace("v_off = 2.0", "v_off = 2.0\nconverter_efficiency = 1.2"),
                             "power.converter_efficiency"),
    "negative_power": (BASE.replace("power_W = 1e-3", "power_W = -1e-3"), "harvester.power_W"),
    "unknown_harvester_kind": (POWER + '[harvester]\nkind = "wind"\n', "harvester.kind"),
    "thevenin_missing_v_source": (POWER + '[harvester]\nkind = "thevenin"\nr_ohm = 10\n', "harvester.v_source"),
    "thevenin_zero_r": (POWER + '[harvester]\nkind = "thevenin"\nv_source = 3.0\nr_ohm = 0\n', "harvester.r_ohm"),
    "thevenin_v_initial_above_source": (
        BASE.replace("v_off = 2.0", "v_off = 2.0\nv_initial = 3.2").replace(CONSTANT, "")
        + '[harvester]\nkind = "thevenin"\nv_source = 3.1\nr_ohm = 10\n', "power.v_initial"),
    "unknown_platform": ('[device]\nplatform = "avr"\n' + BASE, "device.platform"),
    "platform_not_a_string": ("[device]\nplatform = 5\n" + BASE, "device.platform"),
    "mclk_too_fast": ("[device]\nmclk_hz = 24e6\n" + BASE, "device.mclk_hz"),
    "trace_without_file": (POWER + '[harvester]\nkind = "trace"\n', "harvester.file"),
    "trace_file_missing": (POWER + '[harvester]\nkind = "trace"\nfile = "nope.csv"\n', "harvester.file"),
    "until_zero": (BASE + "[sim]\nuntil_s = 0\n", "sim.until_s"),
    "inferences_zero": (BASE + "[sim]\ninferences = 0\n", "sim.inferences"),
    "negative_period": (BASE + "[sim]\nperiod_s = -1\n", "sim.period_s"),
    "model_data_dir_missing": (BASE + '[model]\ndata_dir = "no-such-folder"\n', "model.data_dir"),
    # issue 19: a source that can never boot the device is named, not blamed on tiles later
    "thevenin_source_below_v_off": (POWER + '[harvester]\nkind = "thevenin"\nv_source = 1.0\nr_ohm = 52\n',
                                    "harvester.v_source: 1 V must be above power.v_on (3 V)"),
    "thevenin_source_at_v_on": (POWER + '[harvester]\nkind = "thevenin"\nv_source = 3.0\nr_ohm = 52\n',
                                "harvester.v_source: 3 V must be above power.v_on (3 V)"),
    "tile_fraction": (BASE + "[execution]\ntile = [1.5, 2, 2, 2]\n",
                      "execution.tile: a tile size must be a positive integer, got 1.5"),
    "tile_bool": (BASE + "[execution]\ntile = [true, 2, 2, 2]\n", "execution.tile: a tile size must be a positive"),
    "tile_zero_in_a_layer": (BASE + '[execution]\ntile = ["auto", [6, 6, 0, 1]]\n',
                             "execution.tile[1]: a tile size must be a positive integer, got 0"),
    "tile_string_size": (BASE + '[execution]\ntile = {Tr = 4, Tc = "4", Tm = 8}\n',
                         "execution.tile: a tile size must be a positive integer, got '4'"),
    "tile_three_values": (BASE + "[execution]\ntile = [4, 4, 8]\n", "execution.tile: expected \"auto\", [Tr, Tc"),
    "tile_unknown_key": (BASE + "[execution]\ntile = {Tr = 4, Tc = 4, Tm = 8, Tk = 1}\n",
                         "execution.tile: unknown tile key 'Tk'"),
    "tile_missing_key": (BASE + "[execution]\ntile = {Tr = 4, Tm = 8}\n", "execution.tile: missing tile key 'Tc'"),
    "nested_too_deep": (BASE + "[execution]\ntile = " + "[" * 40 + "]" * 40 + "\n", "nested more than 32 deep"),
    "nested_beyond_tomllib": (BASE + "[execution]\ntile = " + "[" * 500 + "]" * 500 + "\n",
                              "nested more than 32 deep"),
}


@pytest.mark.parametrize("text,key", list(BAD.values()), ids=list(BAD))
def test_bad_scenario_one_line_error_naming_file_and_key(tmp_path, text, key):
    msg = load_error(write(tmp_path, text))
    assert_one_line(msg, "scen.toml", key)
    assert msg.startswith("scen.toml: ")


@pytest.mark.parametrize("tile", ["[6, 6, 8, 1]", "{Tr = 6, Tc = 6, Tm = 8}", '[[6, 6, 8, 1], "auto"]',
                                  '["auto", {Tr = 2, Tc = 2, Tm = 4, Tn = 1}]'])
def test_tile_forms_load(tmp_path, tile):
    s = loader.load(write(tmp_path, BASE + f"[execution]\ntile = {tile}\n"))
    assert s.execution.tile == s.raw["execution"]["tile"]


def test_missing_scenario_file(tmp_path):
    p = tmp_path / "absent.toml"
    assert_one_line(load_error(p), str(p), "not found")


def test_scenario_path_is_a_directory(tmp_path):
    assert_one_line(load_error(tmp_path), str(tmp_path))


@pytest.mark.parametrize("text", ["[power\ncapacitor_F = 1", BASE + "[sim]\nuntil_s = = 3\n",
                                  'name = "unterminated\n' + BASE, POWER + "v_on = 3.1\n" + CONSTANT])
def test_invalid_toml(tmp_path, text):
    assert_one_line(load_error(write(tmp_path, text)), "scen.toml", "TOML")


def test_invalid_toml_names_the_line(tmp_path):
    msg = load_error(write(tmp_path, BASE + "[sim]\nuntil_s = = 3\n"))
    assert_one_line(msg, "scen.toml", "line 9")


def test_binary_file(tmp_path):
    p = tmp_path / "scen.toml"
    p.write_bytes(b"\xff\xfe\x00\x81garbage")
    assert_one_line(load_error(p), "scen.toml")


def test_with_values_revalidates(tmp_path):
    s = loader.load(write(tmp_path, BASE))
    assert s.with_values(**{"power.v_on": 3.2}).power.v_on == 3.2
    with pytest.raises(ScenarioError) as info:
        s.with_values(**{"power.v_on": 1.0})
    assert_one_line(str(info.value), "scen.toml", "power.v_on")
    with pytest.raises(ScenarioError) as info:
        s.with_values(**{"power.capacitor_F": float("nan")})
    assert_one_line(str(info.value), "scen.toml", "power.capacitor_F")
    with pytest.raises(ScenarioError) as info:
        s.with_values(**{"power.nonsense": 1})
    assert_one_line(str(info.value), "scen.toml", "power.nonsense")


@pytest.mark.parametrize("text", [BASE.replace("v_off = 2.0", 'v_off = 2.0\n"v\\nx" = 1'),
                                  BASE + '["a\\nb"]\nq = 1\n'], ids=["key", "section"])
def test_error_stays_one_line_for_keys_with_newlines(tmp_path, text):
    msg = load_error(write(tmp_path, text))
    assert_one_line(msg, "scen.toml")


# ---------------------------------------------------------------------------------------------
# trace files: relative paths, accepted formats, bad contents
# ---------------------------------------------------------------------------------------------

TRACE_SCEN = POWER + '[harvester]\nkind = "trace"\nfile = "{file}"\n'


def test_relative_trace_path_resolves_against_scenario_folder(tmp_path, monkeypatch):
    folder = tmp_path / "scen"
    (folder / "traces").mkdir(parents=True)
    (folder / "traces" / "t.csv").write_text("time_s,power_W\n0,1e-3\n1,2e-3\n3,0\n")
    p = write(folder, TRACE_SCEN.format(file="traces/t.csv"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "traces").mkdir()  # a decoy: the same relative path from the cwd does not exist
    monkeypatch.chdir(elsewhere)
    s = loader.load(p)
    assert s.harvester.file == folder / "traces" / "t.csv"
    seg = s.harvester.segments()
    np.testing.assert_array_equal(seg.seg_t, [0.0, 1.0, 3.0])
    np.testing.assert_array_equal(seg.seg_p, [1e-3, 2e-3, 0.0])
    assert seg.period == 5.0
    # loading through a relative scenario path works the same
    monkeypatch.chdir(tmp_path)
    assert loader.load(Path("scen") / "scen.toml").harvester.segments().seg_p[1] == 2e-3


def test_absolute_trace_path_and_repeat_false(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "scen").mkdir()
    t = tmp_path / "data" / "abs.csv"
    t.write_text("time_s,power_W\n0,1e-3\n2,2e-3\n")
    s = loader.load(write(tmp_path / "scen", TRACE_SCEN.format(file=t.as_posix()) + "repeat = false\n"))
    assert s.harvester.file == t
    seg = s.harvester.segments()
    assert seg.period == 0.0 and list(seg.seg_t) == [0.0, 2.0]


def test_trace_voltage_current_columns_accepted(tmp_path):
    (tmp_path / "vi.csv").write_text("time_s,voltage_V,current_A\n0,2.0,1e-3\n1,3.0,2e-3\n4,2.5,0\n")
    s = loader.load(write(tmp_path, TRACE_SCEN.format(file="vi.csv") + "efficiency = 0.5\n"))
    seg = s.harvester.segments()
    np.testing.assert_allclose(seg.seg_p, [1e-3, 3e-3, 0.0], rtol=1e-15)  # V * I * efficiency
    np.testing.assert_array_equal(seg.seg_t, [0.0, 1.0, 4.0])


def test_trace_header_whitespace_and_comments_accepted(tmp_path):
    (tmp_path / "t.csv").write_text("# an RF trace\n time_s , power_W \n0,1e-3\n1,2e-3\n")
    seg = loader.load(write(tmp_path, TRACE_SCEN.format(file="t.csv"))).harvester.segments()
    np.testing.assert_array_equal(seg.seg_p, [1e-3, 2e-3])


BAD_TRACES = {
    # id: (csv text, what the message must name besides the file)
    "unsorted_times": ("time_s,power_W\n0,1e-3\n2,2e-3\n1,0\n", "line 4"),
    "repeated_time": ("time_s,power_W\n0,1e-3\n1,2e-3\n1,0\n", "line 4"),
    "negative_power": ("time_s,power_W\n0,1e-3\n1,-2e-3\n", "line 3"),
    "negative_vi_power": ("time_s,voltage_V,current_A\n0,2.0,1e-3\n1,3.0,-2e-3\n", "line 3"),
    "nan_power": ("time_s,power_W\n0,1e-3\n1,nan\n", "line 3"),
    "inf_power": ("time_s,power_W\n0,1e-3\n1,inf\n2,0\n", "line 3"),
    "text_power": ("time_s,power_W\n0,1e-3\n1,abc\n", "line 3"),
    "empty_power": ("time_s,power_W\n0,1e-3\n1,\n", "line 3"),
    "nan_time": ("time_s,power_W\n0,1e-3\nnan,1e-3\n", "line 3"),
    "missing_power_column": ("time_s,watts\n0,1e-3\n1,2e-3\n", "power_W"),
    "missing_time_column": ("t,power_W\n0,1e-3\n1,2e-3\n", "time_s"),
    "voltage_without_current": ("time_s,voltage_V\n0,1\n1,2\n", "current_A"),
    "one_row": ("time_s,power_W\n0,1e-3\n", "two rows"),
    "header_only": ("time_s,power_W\n", "two rows"),
    "empty_file": ("", "CSV"),
}


@pytest.mark.parametrize("text,part", list(BAD_TRACES.values()), ids=list(BAD_TRACES))
def test_bad_trace_one_line_error_naming_file_and_line(tmp_path, text, part):
    (tmp_path / "t.csv").write_text(text)
    s = loader.load(write(tmp_path, TRACE_SCEN.format(file="t.csv")))
    with pytest.raises(TraceError) as info:
        s.harvester.segments()
    assert_one_line(str(info.value), str(tmp_path / "t.csv"), part)


def test_read_trace_missing_file(tmp_path):
    with pytest.raises(TraceError) as info:
        hv.read_trace(tmp_path / "gone.csv")
    assert_one_line(str(info.value), str(tmp_path / "gone.csv"), "not found")


@pytest.mark.parametrize("prefix", ["# comment\n# another\n", "\n\n"], ids=["comments", "blank_lines"])
def test_bad_trace_line_number_counts_skipped_lines(tmp_path, prefix):
    (tmp_path / "t.csv").write_text(prefix + "time_s,power_W\n0,1e-3\n1,-2e-3\n")
    with pytest.raises(TraceError) as info:
        hv.read_trace(tmp_path / "t.csv")
    assert_one_line(str(info.value), "line 5")


# ---------------------------------------------------------------------------------------------
# shipped scenarios
# ---------------------------------------------------------------------------------------------

SHIPPED = loader.shipped()


def test_shipped_scenarios_exist():
    assert {p.stem for p in SHIPPED} >= {"continuous", "lab-1mF", "rf-intermittent", "solar-tmy3"}


@pytest.fixture(scope="module")
def shipped_segments():
    return {p.stem: (loader.load(p), loader.load(p).harvester.segments()) for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_loads_and_segments_build(path, shipped_segments):
    s, seg = shipped_segments[path.stem]
    assert s.name == path.stem
    assert loader.load(path.stem).power == s.power  # a bare name selects the shipped file
    p = s.power
    assert 0 < p.v_off < p.v_on <= p.v_max and p.capacitor_F > 0
    assert seg.seg_t[0] == 0.0
    assert np.all(np.diff(seg.seg_t) > 0)
    assert np.all(np.isfinite(seg.seg_p)) and np.all(seg.seg_p >= 0)
    assert seg.seg_t.shape == seg.seg_p.shape == seg.seg_g.shape == seg.seg_vs.shape
    assert seg.period == 0.0 or seg.period > seg.seg_t[-1]
    assert seg.max_power(p.v_off, p.v_on) > 0
    assert loader.as_dict(s)["power"]["capacitor_F"] == p.capacitor_F
    assert s.digest() == loader.load(path).digest()


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_scenario_engines_agree_on_a_small_workload(path, shipped_segments):
    """The shipped power/harvester/sim settings with a small synthetic workload (independent of
    models/): both engines finish, balance energy and agree."""
    s, seg = shipped_segments[path.stem]
    n = 6
    work = Workload(names=[f"u{i}" for i in range(n)], layers=np.arange(n) // 2, durations_s=np.full(n, 5e-3),
                    energy_J=np.full((n, 3), 5e-6), boot_s=0.5e-3, boot_J=1.5e-6, sleep_W=1.5e-6)
    r_des, _ = des.simulate(work, s.power, seg, s.sim)
    r_ora = oracle.simulate(work, s.power, seg, s.sim)
    assert r_des["completed"] and r_ora["completed"]
    for k in ("power_cycles", "units_executed", "units_reexecuted", "inferences_completed"):
        assert r_des[k] == r_ora[k], k
    for k in ("latency_s", "off_time_s", "on_time_s", "v_final"):
        assert math.isclose(r_des[k], r_ora[k], rel_tol=1e-9, abs_tol=1e-15), k
    for k, v in r_des["energy_J"].items():
        if not isinstance(v, dict):
            assert math.isclose(v, r_ora["energy_J"][k], rel_tol=1e-9, abs_tol=1e-15), k
    assert energy_balance_error(r_des) < 1e-9 and energy_balance_error(r_ora) < 1e-9


def test_shipped_lab_scenario_with_periodic_inferences_balances_energy():
    s = loader.load("lab-1mF").with_values(**{"sim.inferences": 3, "sim.period_s": 2.0})
    n = 3
    work = Workload(names=[f"u{i}" for i in range(n)], layers=np.arange(n), durations_s=np.full(n, 5e-3),
                    energy_J=np.full((n, 3), 5e-6), boot_s=0.5e-3, boot_J=1.5e-6, sleep_W=1.5e-6)
    seg = s.harvester.segments()
    for res in (des.simulate(work, s.power, seg, s.sim)[0], oracle.simulate(work, s.power, seg, s.sim)):
        assert res["completed"]
        assert math.isfinite(res["energy_J"]["harvested"])
        assert energy_balance_error(res) < 1e-9
