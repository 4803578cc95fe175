"""Issue 15 A/B/C: real-world inputs at the edges give a right answer or a one-line error (exit 2), never a
hang, a traceback, invalid JSON or a silently replaced file."""

from __future__ import annotations

import codecs
import json
import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis import jsonout, outdir, parallel
from aidi.analysis.cli import app
from aidi.models import layers as ml
from aidi.scenarios import loader
from aidi.scenarios.loader import LIMITS, ScenarioError
from aidi.sim import harvesters as hv
from aidi.sim.harvesters import TraceError

runner = CliRunner()
POWER = '[power]\ncapacitor_F = 1e-4\nv_on = 3.0\nv_off = 2.0\n'
BASE = POWER + '[harvester]\nkind = "constant"\npower_W = 1e-3\n'
TMY3_HEAD = '999004,"MINI",XX,-5.0,36.1,-79.9,273\nDate (MM/DD/YYYY),Time (HH:MM),GHI (W/m^2)\n'
PV_SCEN = POWER + '[harvester]\nkind = "pv"\nfile = "mini.csv"\nhours = {hours}\nstart_hour = {start}\n[sim]\nuntil_s = 3600\n'


def assert_one_line(msg: str, *parts: str) -> None:
    assert "\n" not in msg.strip() and "\r" not in msg, repr(msg)
    assert "Traceback" not in msg
    for part in parts:
        assert part in msg, (part, msg)


def write(folder: Path, text: str, name: str = "scen.toml") -> Path:
    p = folder / name
    p.write_text(text)
    return p


def load_error(path: Path) -> str:
    with pytest.raises(ScenarioError) as info:
        loader.load(path)
    return str(info.value)


def cli_error(args: list[str], *parts: str) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, r.output
    assert_one_line(r.stderr, *parts)
    assert r.stdout.strip() == ""
    return r.stderr


def mini_tmy3(folder: Path, ghi: list[str]) -> Path:
    rows = "".join(f"06/01/2005,{h + 1:02d}:00,{g}\n" for h, g in enumerate(ghi))
    p = folder / "mini.csv"
    p.write_text(TMY3_HEAD + rows)
    return p


# --------------------------------------------------------------------------------------------- A1 missing irradiance
@pytest.mark.parametrize("blank", [0, 2], ids=["first_row", "third_row"])
def test_pv_blank_ghi_is_an_error_naming_the_line(tmp_path, blank):
    ghi = ["0", "300", "600", "600"]
    ghi[blank] = ""
    mini_tmy3(tmp_path, ghi)
    s = loader.load(write(tmp_path, PV_SCEN.format(hours=4, start=0)))
    with pytest.raises(TraceError) as info:
        s.harvester.segments()
    assert_one_line(str(info.value), "mini.csv", f"line {blank + 3}", "GHI")


def test_pv_blank_ghi_check_and_run_exit_2_without_hanging(tmp_path):
    mini_tmy3(tmp_path, ["", "300", "600", "600"])
    p = write(tmp_path, PV_SCEN.format(hours=4, start=0))
    for args in (["check", str(p)], ["run", str(p), "--engine", "oracle"], ["run", str(p), "--no-functional"]):
        t0 = time.perf_counter()
        cli_error(args, "line 3")
        assert time.perf_counter() - t0 < 60


finite = st.floats(0.0, 1e3, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 6), where=st.data(), bad=st.sampled_from([math.nan, math.inf, -math.inf]),
       field=st.sampled_from(["seg_p", "seg_g", "seg_vs", "seg_t"]))
def test_segments_refuse_non_finite_values(n, where, bad, field):
    """Whatever builds them, segments with NaN/inf never reach an engine (which would loop on them)."""
    arrays = {"seg_t": np.arange(n, dtype=float), "seg_p": np.full(n, 1e-3), "seg_g": np.zeros(n),
              "seg_vs": np.zeros(n)}
    arrays[field][where.draw(st.integers(0, n - 1))] = bad
    with pytest.raises(TraceError) as info:
        hv.Segments(**arrays, period=0.0, kind="trace")
    assert_one_line(str(info.value))


@pytest.mark.parametrize("period", [math.nan, math.inf, -1.0])
def test_segments_refuse_a_bad_period(period):
    with pytest.raises(TraceError):
        hv.Segments(np.zeros(1), np.ones(1), np.zeros(1), np.zeros(1), period, "trace")


def test_from_samples_refuses_nan_power():
    with pytest.raises(TraceError):
        hv.from_samples(np.array([0.0, 1.0]), np.array([1e-3, math.nan]), True, "pv")


# --------------------------------------------------------------------------------------------- A2 pv window
@pytest.mark.parametrize("start,hours", [(3989, 4), (0, 5), (3, 2), (4, 1)])
def test_pv_window_outside_the_file_is_an_error(tmp_path, start, hours):
    mini_tmy3(tmp_path, ["0", "300", "600", "600"])
    s = loader.load(write(tmp_path, PV_SCEN.format(hours=hours, start=start)))
    with pytest.raises(TraceError) as info:
        s.harvester.segments()
    assert_one_line(str(info.value), "start_hour", "4 hours")


def test_pv_window_inside_the_file_runs(tmp_path):
    mini_tmy3(tmp_path, ["0", "300", "600", "600"])
    seg = loader.load(write(tmp_path, PV_SCEN.format(hours=2, start=1))).harvester.segments()
    assert seg.seg_p[0] == pytest.approx(300 * 5e-4 * 0.15)


# --------------------------------------------------------------------------------------------- A3 line numbers
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(bom=st.booleans(), prefix=st.lists(st.sampled_from(["# a comment", "", "   ", "  # indented"]), max_size=4),
       between=st.lists(st.sampled_from(["# note", ""]), max_size=3))
def test_trace_error_names_the_right_line(tmp_path, bom, prefix, between):
    lines = [*prefix, "time_s,power_W", "0,1e-3", *between, "1,2e-3", "1,3e-3"]
    p = tmp_path / "t.csv"
    p.write_bytes(("\ufeff" if bom else "").encode() + "\n".join(lines).encode() + b"\n")
    with pytest.raises(TraceError) as info:
        hv.read_trace(p)
    assert_one_line(str(info.value), f"line {len(lines)}:", "strictly increasing")


def test_trace_with_bom_and_comment_line_reports_line_5(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("\ufeff# logger export\ntime_s,power_W\n0,1e-3\n1,2e-3\n1,0\n".encode())
    with pytest.raises(TraceError) as info:
        hv.read_trace(p)
    assert_one_line(str(info.value), "line 5:")


def test_trace_with_bom_reads(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("\ufefftime_s,power_W\n0,1e-3\n1,2e-3 # inline\n".encode())
    np.testing.assert_array_equal(hv.read_trace(p).seg_p, [1e-3, 2e-3])


# --------------------------------------------------------------------------------------------- A4 logger noise
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(noise=st.floats(-hv.NOISE_FLOOR["current_A"], 0.0), row=st.integers(0, 2))
def test_current_noise_below_the_floor_reads_as_zero(tmp_path, noise, row):
    cur = ["1e-3", "2e-3", "1e-3"]
    cur[row] = repr(noise)
    p = tmp_path / "vi.csv"
    p.write_text("time_s,voltage_V,current_A\n" + "".join(f"{t},3.0,{c}\n" for t, c in enumerate(cur)))
    seg = hv.read_trace(p)
    assert seg.seg_p[row] == 0.0 and (seg.seg_p >= 0).all()


@pytest.mark.parametrize("col,value", [("current_A", "-2e-6"), ("voltage_V", "-0.01"), ("power_W", "-1e-3")])
def test_clearly_negative_samples_are_errors_naming_the_line(tmp_path, col, value):
    p = tmp_path / "t.csv"
    if col == "power_W":
        p.write_text(f"time_s,power_W\n0,1e-3\n1,{value}\n")
    else:
        v, i = ("3.0", value) if col == "current_A" else (value, "1e-3")
        p.write_text(f"time_s,voltage_V,current_A\n0,3.0,1e-3\n1,{v},{i}\n")
    with pytest.raises(TraceError) as info:
        hv.read_trace(p)
    assert_one_line(str(info.value), "line 3", col, "noise floor")


# --------------------------------------------------------------------------------------------- A5 weights = a file
def test_model_weights_may_name_a_saved_file(tmp_path):
    from aidi.models import net

    trained = net.load_model(list(loader.DEFAULT_LAYERS), [1, 8, 8], weights="random", seed=3)
    net.save_model(trained, tmp_path / "chosen.pt")
    s = loader.load(write(tmp_path, BASE + '[model]\nweights = "chosen.pt"\n'))
    assert s.model.file == (tmp_path / "chosen.pt").absolute()
    from aidi.analysis import pipeline

    got, _qm, _acc = pipeline.load_model(s)
    for a, b in zip(got.module.state_dict().values(), trained.module.state_dict().values()):
        assert (a == b).all()


def test_model_weights_missing_file_is_one_line(tmp_path):
    msg = load_error(write(tmp_path, BASE + '[model]\nweights = "gone.pt"\n'))
    assert_one_line(msg, "scen.toml", "model.weights", "gone.pt", "aidi nas")


# --------------------------------------------------------------------------------------------- B6/B7/B8 ranges
SECTION_BASE = {
    "power": POWER + "v_max = 3.6\n",
    "harvester": None,
}
KIND_FOR = {"power_W": "constant", "v_source": "thevenin", "r_ohm": "thevenin", "area_cm2": "pv",
            "start_hour": "pv", "step_s": "pv", "hours": "pv", "window_s": "shepherd", "p_min_W": "pv"}


def scenario_with(key: str, value) -> str:
    section, name = key.split(".")
    power = {"capacitor_F": 1e-4, "v_on": 3.0, "v_off": 2.0, "v_max": 3.6}
    harv = {"kind": "constant", "power_W": 1e-3}
    extra = ""
    if section == "power":
        power[name] = value
        if name in ("v_on", "v_max"):  # keep v_off < v_on <= v_max apart from the value under test
            power["v_off"] = 0.1
            power.setdefault("v_max", 60.0)
            if name == "v_on":
                power["v_max"] = max(value, 3.6) if isinstance(value, float) and math.isfinite(value) else 3.6
            else:
                power["v_on"] = 0.2
        elif name == "v_off":
            power["v_on"], power["v_max"] = 60.0, 60.0
    elif section == "harvester":
        kind = KIND_FOR[name]
        harv = {"kind": kind, "thevenin": {"v_source": 3.3, "r_ohm": 52.0}, "constant": {"power_W": 1e-3},
                "pv": {}, "shepherd": {"file": "rec.h5"}}[kind] | {"kind": kind}
        harv[name] = value
    else:
        extra = f"[{section}]\n{name} = {json.dumps(value)}\n"
    text = "[power]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in power.items())
    text += "[harvester]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in harv.items())
    return text + extra


def outside(key: str):
    lo, hi = LIMITS[key]
    below = st.floats(-1e308, lo, allow_nan=False, allow_infinity=False, exclude_max=True) if lo > -1e308 else None
    above = st.floats(hi, 1e308, allow_nan=False, allow_infinity=False, exclude_min=True)
    if isinstance(lo, int) and isinstance(hi, int):
        return st.one_of(st.integers(hi + 1, 2**62), st.integers(-2**62, lo - 1))
    return st.one_of(above, below) if below is not None else above


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.parametrize("key", sorted(LIMITS))
@given(data=st.data())
def test_values_outside_the_plausible_range_are_one_line_errors(tmp_path, key, data):
    value = data.draw(outside(key))
    msg = load_error(write(tmp_path, scenario_with(key, value)))
    assert_one_line(msg, "scen.toml", key)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@pytest.mark.parametrize("key", sorted(k for k in LIMITS if k.startswith(("power.capacitor", "harvester.r_ohm",
                                                                          "harvester.power", "sim.until"))))
@given(data=st.data())
def test_values_inside_the_plausible_range_load(tmp_path, key, data):
    lo, hi = LIMITS[key]
    value = data.draw(st.floats(lo, hi))
    loader.load(write(tmp_path, scenario_with(key, value)))


@pytest.mark.parametrize("text,key", [
    (BASE.replace("capacitor_F = 1e-4", "capacitor_F = 1e308"), "power.capacitor_F"),
    (BASE.replace("capacitor_F = 1e-4", "capacitor_F = 1e15"), "power.capacitor_F"),
    (BASE.replace("v_on = 3.0", "v_on = 1e308\nv_max = 1e308"), "power.v_on"),
    (POWER + '[harvester]\nkind = "thevenin"\nv_source = 3.0\nr_ohm = 1e-9\n', "harvester.r_ohm"),
    (BASE.replace("power_W = 1e-3", "power_W = 1e300"), "harvester.power_W"),
    (BASE + "[sim]\nuntil_s = 1e300\n", "sim.until_s"),
])
def test_cli_out_of_range_one_line_exit_2(tmp_path, text, key):
    p = write(tmp_path, text, "bad.toml")
    cli_error(["run", str(p), "--json"], "bad.toml", key)


def test_thevenin_at_the_resistance_floor_balances():
    from aidi.analysis import pipeline
    from aidi.sim.workload import energy_balance_error

    sc = loader.load("lab-1mF").with_values(**{"harvester.r_ohm": LIMITS["harvester.r_ohm"][0],
                                               "power.capacitor_F": 1e-4})
    res, _ = pipeline.simulate(pipeline.build(sc), engine="oracle", functional=False, log=False)
    assert res["completed"] and energy_balance_error(res) < 1e-9


# --------------------------------------------------------------------------------------------- strict JSON
def _strict_loads(text: str):
    def no(c):
        raise AssertionError(f"non-standard JSON constant {c}")

    return json.loads(text, parse_constant=no)


@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=3),
                    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=3), kids, max_size=3),
                    max_leaves=12))
def test_jsonout_is_strict_and_keeps_finite_values(obj):
    text = jsonout.dumps(obj)
    back = _strict_loads(text)
    if isinstance(obj, float) and math.isfinite(obj):
        assert back == obj
    if isinstance(obj, float) and not math.isfinite(obj):
        assert back is None


def test_jsonout_numpy_and_paths():
    got = _strict_loads(jsonout.dumps({"a": np.float64("nan"), "b": np.arange(3), "c": np.int64(4),
                                       "d": Path("/x"), "e": np.array([1.0, np.inf]), "f": np.bool_(True)}))
    assert got == {"a": None, "b": [0, 1, 2], "c": 4, "d": "/x", "e": [1.0, None], "f": True}


def test_run_json_is_strict():
    r = runner.invoke(app, ["run", "continuous", "--engine", "oracle", "--json"])
    assert r.exit_code == 0, r.output
    _strict_loads(r.stdout)


# --------------------------------------------------------------------------------------------- B9 choices
@pytest.mark.parametrize("args", [
    ["run", "continuous", "--engine", "bogus"],
    ["sweep", "continuous", "--set", "power.capacitor_F=1e-3", "--engine", "bogus"],
    ["emit-c", "continuous", "--out", "unused", "--backend", "bogus"],
    ["nas", "lab-1mF", "--controller", "bogus"],
    ["nas", "lab-1mF", "--dataset", "bogus"],
])
def test_enumerated_options_are_validated_as_choices(args, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cli_error(args, "bogus", args[-2], "is not one of")
    assert not (tmp_path / "unused").exists()


@pytest.mark.parametrize("args,part", [(["run"], "SCENARIO"), (["run", "continuous", "--bogus"], "--bogus"),
                                       (["run", "continuous", "--out"], "--out"), (["nosuch"], "nosuch")])
def test_usage_errors_are_one_line(args, part):
    cli_error(args, part, "--help")


@pytest.mark.parametrize("cmd,choices", [("run", "des|oracle"), ("sweep", "des|oracle"),
                                         ("emit-c", "portable|lea"), ("nas", "random|evolution|rl"),
                                         ("nas", "digits|cifar10|tinyimagenet|fashion-mnist|mnist")])
def test_help_lists_the_choices(cmd, choices):
    r = runner.invoke(app, [cmd, "--help"], env={"COLUMNS": "200"})
    assert r.exit_code == 0
    assert f"<{choices}>" in r.output


# --------------------------------------------------------------------------------------------- B10 dask
@pytest.mark.parametrize("address", ["notanaddress", "tcp://", "tcp://host:notaport", "tcp://127.0.0.1:99999"])
def test_dask_bad_address_is_one_line(address):
    t0 = time.perf_counter()
    cli_error(["sweep", "continuous", "--set", "power.capacitor_F=1e-3", "--dask", address], "--dask")
    assert time.perf_counter() - t0 < 30


def test_dask_unreachable_scheduler_is_one_line_and_quick(monkeypatch):
    monkeypatch.setattr(parallel, "CONNECT_TIMEOUT_S", 1.0)
    t0 = time.perf_counter()
    cli_error(["sweep", "continuous", "--set", "power.capacitor_F=1e-3", "--dask", "tcp://127.0.0.1:1"],
              "--dask tcp://127.0.0.1:1")
    assert time.perf_counter() - t0 < 25


# --------------------------------------------------------------------------------------------- B11 / C14 --out
@pytest.mark.parametrize("cmd", [["run", "continuous", "--engine", "oracle"], ["emit-c", "continuous"],
                                 ["sweep", "continuous", "--set", "power.capacitor_F=1e-3"]])
def test_out_naming_an_existing_file_is_one_line(tmp_path, cmd):
    f = tmp_path / "file.txt"
    f.write_text("mine")
    cli_error([*cmd, "--out", str(f)], "--out", "not a folder")
    assert f.read_text() == "mine"
    cli_error([*cmd, "--out", str(f / "sub")], "--out")


@pytest.mark.parametrize("cmd", [["run", "continuous", "--engine", "oracle"], ["emit-c", "continuous"],
                                 ["sweep", "continuous", "--set", "power.capacitor_F=1e-3"]])
def test_out_refuses_a_users_non_empty_folder_unless_forced(tmp_path, cmd):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "Makefile").write_text("my own\n")
    (user / "README.md").write_text("my own\n")
    cli_error([*cmd, "--out", str(user)], "not empty", "--force")
    assert (user / "Makefile").read_text() == "my own\n"
    r = runner.invoke(app, [*cmd, "--out", str(user), "--force"])
    assert r.exit_code == 0, r.output
    assert (user / outdir.MARKER).is_file()


def test_out_folders_aidi_made_are_reused(tmp_path):
    out = tmp_path / "a" / "b"
    for _ in range(2):
        r = runner.invoke(app, ["run", "continuous", "--engine", "oracle", "--out", str(out)])
        assert r.exit_code == 0, r.output
    assert (out / outdir.MARKER).is_file() and (out / "events.csv").is_file()
    empty = tmp_path / "empty"
    empty.mkdir()
    outdir.prepare(empty)  # an empty folder is fine
    assert (empty / outdir.MARKER).is_file()


# --------------------------------------------------------------------------------------------- B12 layer numbers
@pytest.mark.parametrize("layer,part", [
    ({"type": "fc", "units": 1e308}, "units"),
    ({"type": "fc", "units": 70000}, "units"),
    ({"type": "conv", "k": 3, "filters": 2**40}, "filters"),
    ({"type": "conv", "k": 1.5, "filters": 8}, "'k'"),
    ({"type": "bn", "eps": math.inf}, "eps"),
])
def test_layer_numbers_bounded(layer, part):
    layers = [layer] if layer["type"] != "bn" else [{"type": "fc", "units": 4}, layer]
    with pytest.raises(ValueError) as info:
        ml.parse_network(layers, [1, 8, 8])
    assert_one_line(str(info.value), part)


@settings(max_examples=30, deadline=None)
@given(units=st.integers(ml.MAX_INT + 1, 2**200) | st.floats(ml.MAX_INT + 1, 1e308))
def test_huge_units_are_a_one_line_error(units):
    with pytest.raises(ValueError) as info:
        ml.parse_network([{"type": "fc", "units": units}], [1, 8, 8])
    assert_one_line(str(info.value), "units", str(ml.MAX_INT))


def test_layer_too_big_for_any_device_is_refused_before_torch():
    with pytest.raises(ValueError) as info:
        ml.parse_network([{"type": "fc", "units": 6000}, {"type": "fc", "units": 6000}], [1, 8, 8])
    assert_one_line(str(info.value), "layer 1", "weights")
    with pytest.raises(ValueError):
        ml.parse_network([{"type": "fc", "units": 4}], [3, 4096, 4096])


def test_cli_huge_layer_one_line(tmp_path):
    p = write(tmp_path, BASE + '[model]\nlayers = [{type = "fc", units = 1e308}]\n', "bad.toml")
    cli_error(["run", str(p)], "bad.toml", "units")


@pytest.mark.parametrize("extra", [[], ["--compare"]])
def test_nas_refuses_a_users_folder_before_any_work(tmp_path, extra):
    user = tmp_path / "mine"
    user.mkdir()
    (user / "notes.txt").write_text("my own\n")
    t0 = time.perf_counter()
    cli_error(["nas", "lab-1mF", "--budget", "2", "--quick", "--out", str(user), *extra], "not empty", "--force")
    assert time.perf_counter() - t0 < 30
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]


def test_nas_default_folder_is_checked_too(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out" / "nas").mkdir(parents=True)
    (tmp_path / "out" / "nas" / "lab-1mF").write_text("a file where the folder would go")
    cli_error(["nas", "lab-1mF", "--budget", "2", "--quick"], "not a folder")


@settings(max_examples=10, deadline=None)
@given(r_ohm=st.floats(LIMITS["harvester.r_ohm"][0], 1e3), cap=st.floats(1e-4, 1e-1))
def test_thevenin_in_range_keeps_the_energy_balance(r_ohm, cap):
    from aidi.analysis import pipeline
    from aidi.sim.workload import energy_balance_error

    sc = loader.load("lab-1mF").with_values(**{"harvester.r_ohm": r_ohm, "power.capacitor_F": cap})
    res, _ = pipeline.simulate(pipeline.build(sc), engine="oracle", functional=False, log=False)
    assert energy_balance_error(res) < 1e-9


# --------------------------------------------------------------------------------------------- issue 19: harvest files
def tmy3_text(site: str, stamps, ghi) -> str:
    """A TMY3-format file (pvlib's read_tmy3 layout: site line, header, Date and Time columns) with NREL's
    midnight as 24:00 of the day before."""
    rows = []
    for ts, g in zip(pd.DatetimeIndex(stamps), ghi):
        day, clock = ts, ts.strftime("%H:%M")
        if clock == "00:00":
            day, clock = ts - pd.Timedelta(days=1), "24:00"
        rows.append(f"{day.strftime('%m/%d/%Y')},{clock},{g:.6g}\n")
    return site + "\n" + "Date (MM/DD/YYYY),Time (HH:MM),GHI (W/m^2)\n" + "".join(rows)


def bundled_hourly():
    """(first time stamp, the hourly GHI rows' hours from it, GHI) of pvlib's bundled TMY3 file, in one year."""
    import pvlib

    data, _ = pvlib.iotools.read_tmy3(str(hv.default_tmy3()), coerce_year=2005, map_variables=True)
    first = data.index[0].tz_localize(None)
    hours = (data.index - data.index[0]).total_seconds().to_numpy() / 3600
    return first, hours, data["ghi"].to_numpy(float)


def quarter_hour_tmy3(folder: Path) -> tuple[Path, pd.Timestamp]:
    """The bundled file at 15 min (values on its hourly interpolant, so both files describe one irradiance):
    rows 00:15 .. 24:00 of every day; returns the file and its first time stamp."""
    first, hours, ghi = bundled_hourly()
    q = np.arange(-0.75, hours[-1] + 1e-9, 0.25)
    p = folder / "quarter.csv"
    p.write_text(tmy3_text(hv.default_tmy3().read_text().splitlines()[0], first + pd.to_timedelta(q, unit="h"),
                           np.interp(q, hours, ghi, period=hours[-1] + 1)))
    return p, first + pd.Timedelta(minutes=-45)


def test_quarter_hour_tmy3_harvests_the_june_morning_of_the_hourly_file(tmp_path):
    """Issue 19: a 15-min TMY3-format file read one row per hour put June 06:00 on a February night (0 J).
    Windows are hours of the file's own time: the same morning from both files harvests the same energy (to
    1e-9: the 15-min rows lie on the hourly rows' interpolant, which the reader samples at the same times)."""
    quarter, q_first = quarter_hour_tmy3(tmp_path)
    h_first, _, _ = bundled_hourly()
    june = pd.Timestamp("2005-06-01 06:00")
    energy = {}
    for name, path, first in (("hourly", None, h_first), ("quarter", quarter, q_first)):
        start = (june - first) / pd.Timedelta(hours=1)
        seg = hv.pv(area_cm2=1.0, efficiency=0.15, file=path, start_hour=start, step_s=60.0, hours=6.0)
        energy[name] = float(np.sum(seg.seg_p) * 60.0)
    assert energy["hourly"] > 10.0  # J: 1 cm^2 at 15 % through a June morning (a February night gives 0)
    assert energy["quarter"] == pytest.approx(energy["hourly"], rel=1e-9)
    t, ghi, step = hv.read_tmy3(quarter)
    assert step == 900.0 and t.shape == (35040,) and t[-1] == 365 * 86400 - 900


def small_tmy3(folder: Path, stamps, ghi=None, name: str = "small.csv") -> Path:
    stamps = pd.DatetimeIndex(stamps)
    p = folder / name
    p.write_text(tmy3_text(TMY3_HEAD.splitlines()[0], stamps, ghi if ghi is not None else np.zeros(len(stamps))))
    return p


QUARTERS = pd.date_range("2005-06-01 00:15", periods=96, freq="15min")


@pytest.mark.parametrize("stamps,line,part", [
    (QUARTERS.delete(40), 43, "06/01/2005 10:30 comes 30 min after the row before, not the file's step of 15 min"),
    (QUARTERS.insert(20, QUARTERS[19]), 23, "comes 0 min after the row before"),
    (pd.date_range("2005-06-01 01:30", periods=8, freq="90min"), 4, "time step 90 min after the first row"),
    (pd.date_range("2005-06-01 02:00", periods=8, freq="2h"), 4, "time step 120 min"),
], ids=["missing-row", "repeated-row", "90-min", "2-hours"])
def test_tmy3_step_it_cannot_use_or_irregular_is_an_error_naming_the_line(tmp_path, stamps, line, part):
    p = small_tmy3(tmp_path, stamps)
    with pytest.raises(TraceError) as info:
        hv.read_tmy3(p)
    assert_one_line(str(info.value), f"small.csv: line {line}:", part)


def test_tmy3_leap_day_is_named(tmp_path):
    """pvlib moves 29 February to 1 March, where the file's own 1 March rows are: irregular, and said why."""
    p = small_tmy3(tmp_path, pd.date_range("2004-02-28 20:00", periods=60, freq="h"))
    with pytest.raises(TraceError) as info:
        hv.read_tmy3(p)
    assert_one_line(str(info.value), "small.csv: line", "a TMY3 file has no leap day")


@pytest.mark.parametrize("midnight", ["24:00", "00:00"])  # NREL and SolarAnywhere midnights
def test_tmy3_hourly_day_reads_either_midnight(tmp_path, midnight):
    stamps = pd.date_range("2005-06-01 01:00", periods=48, freq="h")
    p = small_tmy3(tmp_path, stamps, np.arange(48.0))
    if midnight == "00:00":
        p.write_text(p.read_text().replace("06/01/2005,24:00", "06/02/2005,00:00")
                     .replace("06/02/2005,24:00", "06/03/2005,00:00"))
    t, ghi, step = hv.read_tmy3(p)
    assert step == 3600.0
    np.testing.assert_array_equal(t, np.arange(48) * 3600.0)
    np.testing.assert_array_equal(ghi, np.arange(48.0))


@pytest.mark.parametrize("value", [-1.0, 6000.0])
def test_tmy3_ghi_outside_the_possible_range_is_an_error_naming_the_line(tmp_path, value):
    ghi = np.zeros(24)
    ghi[12] = value
    p = small_tmy3(tmp_path, pd.date_range("2005-06-01 01:00", periods=24, freq="h"), ghi)
    with pytest.raises(TraceError) as info:
        hv.read_tmy3(p)
    assert_one_line(str(info.value), "small.csv: line 15:", f"GHI {value:g} W/m^2 is outside 0 .. 2141.5")


def test_pv_window_is_in_hours_of_a_sub_hourly_file(tmp_path):
    """A 15-min file of 2 h: 2 hours long, its rows a quarter of an hour apart."""
    stamps = pd.date_range("2005-06-01 10:15", periods=8, freq="15min")
    p = small_tmy3(tmp_path, stamps, [0, 100, 200, 300, 400, 500, 600, 700])
    scen = PV_SCEN.replace("mini.csv", "small.csv")
    seg = loader.load(write(tmp_path, scen.format(hours=0.5, start=1.0))).harvester.segments()
    assert seg.seg_p[0] == pytest.approx(400 * 5e-4 * 0.15)  # start_hour 1 = the fifth row (11:15)
    assert seg.seg_p[15] == pytest.approx(500 * 5e-4 * 0.15)  # 15 min later: the next row
    with pytest.raises(TraceError) as info:
        loader.load(write(tmp_path, scen.format(hours=1.5, start=1.0))).harvester.segments()
    assert_one_line(str(info.value), "goes beyond the file's 2 hours")


# the plausible range of power, shared with [harvester] power_W
@pytest.mark.parametrize("text,line,part", [
    ("time_s,power_W\n0,1e-3\n1,6000\n2,21000\n", 3, "power 6000 W is above the plausible 100 W"),
    ("# W/m^2 by mistake\ntime_s,power_W\n0,1e-3\n1,100.5\n", 4, "power 100.5 W"),
    ("time_s,voltage_V,current_A\n0,3,1e-3\n1,30,5\n", 3, "power 150 W"),
])
def test_trace_power_above_the_constant_bound_is_an_error_naming_the_line_and_value(tmp_path, text, line, part):
    assert LIMITS["harvester.power_W"][1] == hv.MAX_POWER_W == 100.0
    p = tmp_path / "t.csv"
    p.write_text(text)
    with pytest.raises(TraceError) as info:
        hv.read_trace(p)
    assert_one_line(str(info.value), f"t.csv: line {line}:", part)


def test_trace_at_the_bound_reads(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("time_s,power_W\n0,100\n1,0\n")
    np.testing.assert_array_equal(hv.read_trace(p).seg_p, [100.0, 0.0])


def test_cli_implausible_trace_exit_2(tmp_path):
    (tmp_path / "irr.csv").write_text("time_s,power_W\n0,6000\n60,21000\n")
    p = write(tmp_path, POWER + '[harvester]\nkind = "trace"\nfile = "irr.csv"\n')
    cli_error(["run", str(p), "--engine", "oracle", "--no-functional", "--json"], "irr.csv: line 2", "6000 W")


# a trace's times are relative to its first row
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(offset=st.floats(-1e6, 2e9, allow_nan=False).map(lambda x: float(np.round(x, 3))),
       steps=st.lists(st.sampled_from([0.5, 1.0, 2.0, 10.0]), min_size=1, max_size=6), repeat=st.booleans())
def test_trace_times_are_relative_to_the_first_row(tmp_path, offset, steps, repeat):
    """The first row is t = 0 whatever its time_s (5 s, -2 s, a Unix time): the same segments as the trace
    written from 0 (README, scenario format; harvesters module docstring)."""
    rel = np.concatenate(([0.0], np.cumsum(steps)))
    power = np.linspace(1e-4, 1e-3, rel.shape[0])
    segs = []
    for start in (0.0, offset):
        p = tmp_path / "t.csv"
        p.write_text("time_s,power_W\n" + "".join(f"{float(start + r)!r},{float(w)!r}\n" for r, w in zip(rel, power)))
        segs.append(hv.read_trace(p, repeat=repeat))
    ulp = 2 * np.spacing(abs(offset) + rel[-1])  # the written times' own rounding
    np.testing.assert_allclose(segs[1].seg_t, segs[0].seg_t, rtol=0, atol=ulp)
    np.testing.assert_array_equal(segs[1].seg_p, segs[0].seg_p)
    assert segs[1].period == pytest.approx(segs[0].period, abs=2 * ulp)


# one text reader for every text file: encodings, a BOM, CRLF
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "utf-32", "cp1252"]
EOLS = ["\n", "\r\n", "\r"]
line_text = st.text(st.characters(codec="cp1252", exclude_categories=("Cc", "Cs"), exclude_characters="#"),
                    max_size=12)


def encoded(text: str, encoding: str) -> bytes:
    return text.encode(encoding)  # utf-16 and utf-32 write their BOM, utf-8-sig the UTF-8 one


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(st.tuples(line_text, st.booleans()), max_size=8), encoding=st.sampled_from(ENCODINGS),
       eol=st.sampled_from(EOLS), final_eol=st.booleans())
def test_text_reader_keeps_lines_and_numbers_under_any_encoding_and_line_end(tmp_path, lines, encoding, eol,
                                                                              final_eol):
    from aidi.sim import textfile

    raw = [t + ("# note" if c else "") for t, c in lines]
    text = eol.join(raw) + (eol if final_eol and raw else "")
    data = encoded(text, encoding)
    if encoding == "cp1252":  # UTF-8 is tried first: skip the cp1252 bytes that are also UTF-8 for other text
        try:
            assume(data.decode("utf-8") == text)
        except UnicodeDecodeError:
            pass
    p = tmp_path / "f.txt"
    p.write_bytes(data)
    got = textfile.read_lines(p)
    keep = [(k + 1, t) for k, (t, _) in enumerate(lines) if t.strip()]
    assert list(got.numbers) == [k for k, _ in keep]
    assert list(got.lines) == [t for _, t in keep]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(encoding=st.sampled_from(ENCODINGS), eol=st.sampled_from(EOLS), bad_row=st.integers(0, 3))
def test_trace_and_tmy3_read_the_same_under_any_encoding_and_line_end(tmp_path, encoding, eol, bad_row):
    """Both readers accept the same text, and their errors name the same line whatever the encoding."""
    trace = "# logger export, µ and ° in a comment\ntime_s,power_W\n0,1e-3\n1,2e-3\n2,0\n3,1e-3\n"
    tmy3 = small_tmy3(tmp_path, pd.date_range("2005-06-01 01:00", periods=24, freq="h"),
                      np.arange(24.0) * 10).read_text().replace('"MINI"', '"MÜNSTER – Süd"')
    plain = {}
    for name, text in (("trace.csv", trace), ("tmy3.csv", tmy3)):
        (tmp_path / name).write_bytes(encoded(text.replace("\n", eol), encoding))
        plain[name] = tmp_path / f"plain-{name}"
        plain[name].write_text(text, encoding="utf-8")
    a, b = hv.read_trace(tmp_path / "trace.csv"), hv.read_trace(plain["trace.csv"])
    np.testing.assert_array_equal(a.seg_p, b.seg_p)
    for x, y in zip(hv.read_tmy3(tmp_path / "tmy3.csv"), hv.read_tmy3(plain["tmy3.csv"])):
        np.testing.assert_array_equal(x, y)
    bad = trace.splitlines()
    bad[2 + bad_row] = bad[2 + bad_row].replace(",", ",x")
    (tmp_path / "bad.csv").write_bytes(encoded(eol.join(bad) + eol, encoding))
    with pytest.raises(TraceError) as info:
        hv.read_trace(tmp_path / "bad.csv")
    assert_one_line(str(info.value), f"bad.csv: line {3 + bad_row}:", "not a finite number")


@pytest.mark.parametrize("data,part", [
    (b"time_s,power_W\n0,1\x00\n", "NUL bytes"),
    (b"time_s,power_W\n0,1e-3\n1,\x1b[0m\n", "line 3: not a text file (control character"),
    (b"time_s,power_W\n\x81\x8d,1\n", "neither UTF-8 nor Windows-1252"),
    (codecs.BOM_UTF16_LE + b"\x00\xd8", "not UTF-16 text after its byte-order mark"),
])
def test_text_that_is_not_text_is_a_one_line_error(tmp_path, data, part):
    p = tmp_path / "t.csv"
    p.write_bytes(data)
    for read in (hv.read_trace, hv.read_tmy3):
        with pytest.raises(TraceError) as info:
            read(p)
        assert_one_line(str(info.value), "t.csv", part)


# messages that point the right way (issue 19 item 5), each through the CLI: exit 2, one line, no traceback
@pytest.mark.parametrize("text,parts", [
    (POWER + '[harvester]\nkind = "thevenin"\nv_source = 1.0\nr_ohm = 52\n',
     ("bad.toml: harvester.v_source: 1 V must be above power.v_on (3 V)", "never boot")),
    (BASE + "[execution]\ntile = [1.5, 2, 2, 2]\n",
     ("bad.toml: execution.tile: a tile size must be a positive integer, got 1.5",)),
    (BASE + "[execution]\ntile = " + "[" * 500 + "]" * 500 + "\n", ("bad.toml: arrays or tables nested more than",)),
], ids=["v_source-below-v_off", "fractional-tile", "nested-500-deep"])
@pytest.mark.parametrize("cmd", [["run", "--engine", "oracle", "--no-functional"], ["check"]])
def test_cli_messages_name_the_cause(tmp_path, text, parts, cmd):
    p = write(tmp_path, text, "bad.toml")
    cli_error([cmd[0], str(p), *cmd[1:]], *parts)


@pytest.mark.parametrize("text,part", [
    (TMY3_HEAD + "06/01/2005,01:00,0\n# a note\n13/45/2005,02:00,0\n",
     "line 5: 'Date (MM/DD/YYYY)' holds '13/45/2005', not a date"),
    (TMY3_HEAD + "06/01/2005,01:00,0\n06/01/2005,02:xx,0\n", "line 4: 'Time (HH:MM)' holds '02:xx', not a time"),
    ("time_s,power_W\n0,1e-3\n1,2e-3\n", "line 1: not a TMY3 site line"),
    (TMY3_HEAD.replace("GHI (W/m^2)", "DNI (W/m^2)") + "06/01/2005,01:00,0\n06/01/2005,02:00,0\n",
     "line 2: TMY3 header without the column 'GHI (W/m^2)'"),
    (TMY3_HEAD + "06/01/2005,01:00,0\n", "a TMY3 file needs at least two rows"),
], ids=["bad-date", "bad-time", "a-trace", "no-ghi", "one-row"])
def test_tmy3_that_pvlib_cannot_read_is_an_error_naming_the_line(tmp_path, text, part):
    p = tmp_path / "site.csv"
    p.write_text(text)
    with pytest.raises(TraceError) as info:
        hv.read_tmy3(p)
    assert_one_line(str(info.value), "site.csv", part)
