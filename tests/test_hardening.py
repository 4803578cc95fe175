"""Issue 15 A/B/C: real-world inputs at the edges give a right answer or a one-line error (exit 2), never a
hang, a traceback, invalid JSON or a silently replaced file."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
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
        harv = {"kind": kind, "thevenin": {"v_source": 3.0, "r_ohm": 52.0}, "constant": {"power_W": 1e-3},
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
