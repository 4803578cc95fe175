"""The Python API (``import aidi``) as a user calls it: load, change, run with both engines, check, sweep,
search; results equal the command line's JSON; errors are the CLI's one line as ``aidi.UserError``."""

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import aidi
from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim.des import EVENT_COLUMNS

runner = CliRunner()
SHIPPED = aidi.shipped_scenarios()
REL = 1e-9


def cli_json(*args) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def cli_error(*args) -> str:
    """The CLI's one-line error, without ``aidi: error: ``."""
    r = runner.invoke(app, list(args))
    assert r.exit_code == 2, r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidi: error: "), r.stderr
    return lines[0][len("aidi: error: "):]


def api_error(fn, *args, **kw) -> str:
    with pytest.raises(aidi.UserError) as info:
        fn(*args, **kw)
    msg = str(info.value)
    assert "\n" not in msg and msg
    assert isinstance(info.value, ValueError)
    return msg


def save(sc: aidi.Scenario, folder: Path) -> Path:
    """The scenario as a file of the same name (so messages naming the file agree)."""
    folder.mkdir(parents=True, exist_ok=True)
    p = folder / sc.path.name
    p.write_text(sc.to_toml())
    return p


def assert_close(a, b, what=""):
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, rel=REL, abs=1e-15), what
    else:
        assert a == b, what


# --------------------------------------------------------------------------- import
def test_importing_aidi_imports_no_torch_and_loads_names_lazily():
    code = ("import sys, aidi\n"
            "heavy = ('torch', 'pandas', 'numba', 'typer', 'plotly')\n"
            "assert not [m for m in heavy if m in sys.modules], [m for m in heavy if m in sys.modules]\n"
            "sc = aidi.load('lab-1mF').replace({'power.capacitor_F': 4.7e-4})\n"
            "sc.to_toml(); aidi.RunResult; aidi.NasResult\n"
            "assert 'torch' not in sys.modules and 'typer' not in sys.modules\n"
            "assert set(aidi.__all__) <= set(dir(aidi))\n"
            "try:\n    aidi.nosuch\nexcept AttributeError as e:\n    print(e)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "module 'aidi' has no attribute 'nosuch'"


def test_every_exported_name_is_documented():
    for name in aidi.__all__:
        if name == "__version__":
            continue
        obj = getattr(aidi, name)
        assert obj.__doc__ and len(obj.__doc__.split()) > 8, name
    for fn in (aidi.load, aidi.loads, aidi.run, aidi.check, aidi.sweep, aidi.nas, aidi.Scenario.replace):
        assert "UserError" in fn.__doc__, fn.__name__  # errors are documented
    for cls in (aidi.RunResult, aidi.CheckResult, aidi.SweepResult):
        assert "(s" in cls.__doc__ and "(J" in cls.__doc__, cls.__name__  # units of the fields
    assert "(s" in aidi.NasResult.__doc__ and "(B)" in aidi.NasResult.__doc__


# --------------------------------------------------------------------------- scenarios
@pytest.mark.parametrize("name", SHIPPED)
def test_load_by_name_path_dict_and_toml_text_agree(name, tmp_path, monkeypatch):
    sc = aidi.load(name)
    assert isinstance(sc, aidi.Scenario) and isinstance(sc, loader.Scenario)
    same = [aidi.load(sc.path), aidi.load(str(sc.path)), aidi.load(sc), aidi.load(loader.load(sc.path)),
            aidi.load(sc.document(), base_dir=sc.path.parent)]
    monkeypatch.chdir(tmp_path)  # to_toml writes paths absolute: the text loads from anywhere
    same.append(aidi.loads(sc.to_toml()))
    for other in same:
        for f in ("name", "device", "power", "harvester", "model", "execution", "sim"):
            assert getattr(other, f) == getattr(sc, f), (f, other.path)


def test_replace_changes_values_validated_and_keeps_the_original():
    sc = aidi.load("lab-1mF")
    s2 = sc.replace({"power.capacitor_F": 4.7e-4, "name": "half"}, sim={"inferences": 3, "deadline_s": None},
                    model={"input": (1, 8, 8)})
    assert (s2.power.capacitor_F, s2.sim.inferences, s2.sim.deadline_s, s2.name) == (4.7e-4, 3, None, "half")
    assert s2.model.input == (1, 8, 8) and isinstance(s2, aidi.Scenario)
    assert (sc.power.capacitor_F, sc.sim.inferences, sc.sim.deadline_s, sc.name) == (1e-3, 1, 5.0, "lab-1mF")
    assert s2.path == sc.path and s2.digest() != sc.digest()
    assert sc.replace(power={"capacitor_F": np.float64(1e-3)}).power == sc.power  # numpy scalars are plain
    with pytest.raises(dataclass_frozen_error()):
        s2.name = "x"


def dataclass_frozen_error():
    import dataclasses

    return dataclasses.FrozenInstanceError


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cap=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5), st.text(max_size=3)),
       v_on=st.floats(0.0, 70.0), v_off=st.floats(-1.0, 70.0))
def test_replace_validates_exactly_as_the_loader(cap, v_on, v_off):
    sc = aidi.load("lab-1mF")
    doc = sc.document()
    doc["power"].update({"capacitor_F": cap, "v_on": v_on, "v_off": v_off})
    try:
        want = loader.parse(doc, sc.path)
    except loader.ScenarioError as exc:
        assert api_error(sc.replace, power={"capacitor_F": cap, "v_on": v_on, "v_off": v_off}) == str(exc)
    else:
        got = sc.replace(power={"capacitor_F": cap, "v_on": v_on, "v_off": v_off})
        assert got.power == want.power
        assert aidi.loads(got.to_toml()).power == want.power  # TOML text keeps every value exactly


# --------------------------------------------------------------------------- run
@pytest.mark.parametrize("name", SHIPPED)
def test_run_round_trip_both_engines_agree_with_the_cli_json(name, tmp_path):
    sc = aidi.load(name).replace({"sim.inferences": 2, "power.capacitor_F": aidi.load(name).power.capacitor_F * 1.5})
    path = save(sc, tmp_path)
    for engine in ("des", "oracle"):
        r = aidi.run(sc, engine=engine)
        cli = cli_json("run", str(path), "--engine", engine)
        assert r.json == cli  # the same steps: the same JSON object, bit for bit
        for key in ("completed", "latency_s", "power_cycles", "on_time_s", "off_time_s", "units", "units_executed",
                    "units_reexecuted", "units_lost", "meets_deadline", "sram_max_bytes", "designs", "reason"):
            assert_close(getattr(r, key), cli.get(key), key)
        assert list(r.inference_latencies_s) == pytest.approx(cli["inference_latencies_s"], rel=REL)
        e = cli["energy_J"]
        assert list(r.energy.index) == list(e["by_category"])
        assert r.energy["energy_J"].to_numpy() == pytest.approx(list(e["by_category"].values()), rel=REL, abs=1e-15)
        assert r.energy["energy_J"].sum() == pytest.approx(r.energy_totals["consumed"], rel=REL)
        assert r.energy["fraction"].sum() == pytest.approx(1.0, rel=1e-9)
        for k, v in r.energy_totals.items():
            assert v == pytest.approx(e[k], rel=REL, abs=1e-15), k
        assert [str(i) for i in r.energy_by_layer.index] == list(e["by_layer"])
        assert r.energy_by_layer["energy_J"].to_numpy() == pytest.approx(list(e["by_layer"].values()), rel=REL)
        assert r.balance_error() < 1e-9
        if engine == "des":
            des = r
            assert r.output.dtype == np.int16 and r.output.tolist() == cli["output"]
            assert r.output_matches_reference is True
            ev = r.events
            assert list(ev.columns) == list(EVENT_COLUMNS) and len(ev) > 0
            assert (ev["kind"] == "boot").sum() == r.power_cycles
            assert ((ev["kind"] == "unit") & (ev["outcome"] != "lost")).sum() == r.units_executed
            assert (ev["outcome"] == "lost").sum() == r.units_lost
            assert (ev["t_end"] >= ev["t_start"]).all() and ev["t_end"].max() == pytest.approx(r.latency_s, rel=REL)
        else:
            assert r.output is None and r.output_matches_reference is None and r.events.empty
            assert list(r.events.columns) == list(EVENT_COLUMNS)
            # the two engines agree on everything but the event log and the functional output
            for key in ("completed", "power_cycles", "units_executed", "units_reexecuted"):
                assert getattr(r, key) == getattr(des, key)
            for key in ("latency_s", "on_time_s", "off_time_s"):
                assert getattr(r, key) == pytest.approx(getattr(des, key), rel=REL)
            pd.testing.assert_frame_equal(r.energy, des.energy, rtol=REL, atol=1e-15)


def test_run_events_equal_the_cli_event_log_and_write_matches_the_cli(tmp_path):
    sc = aidi.load("rf-intermittent")
    r = aidi.run(sc, engine="des")
    cli_out = tmp_path / "cli"
    assert runner.invoke(app, ["run", "rf-intermittent", "--out", str(cli_out)]).exit_code == 0
    csv = pd.read_csv(cli_out / "events.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(r.events, csv, check_dtype=False, rtol=REL)
    folder = r.write(tmp_path / "api")
    for f in ("events.csv", "events.parquet", "result.json", "voltage.html", "energy.html", "report.html"):
        assert (folder / f).is_file(), f
    assert json.loads((folder / "result.json").read_text()) == json.loads((cli_out / "result.json").read_text())
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("mine")
    assert api_error(r.write, tmp_path / "mine").startswith(f"out {tmp_path / 'mine'}: folder is not empty")
    assert (tmp_path / "mine" / "notes.txt").read_text() == "mine"


def test_run_is_deterministic_and_the_event_log_changes_nothing():
    sc = aidi.load("weak-source").replace(sim={"inferences": 2})
    a, b = aidi.run(sc), aidi.run(sc, events=False)
    assert a.json == b.json and b.events.empty and not a.events.empty
    # a cost-only run loads no weights: no output and no accuracy, the same cost
    assert aidi.run(sc, functional=False).json == {k: v for k, v in a.json.items() if k not in (
        "output", "output_matches_reference", "float_accuracy", "q15_accuracy")}
    assert aidi.run(sc, engine="oracle").json == aidi.run(sc, engine="oracle").json


def test_a_run_cut_by_until_s_is_a_result_with_no_latency(tmp_path):
    sc = aidi.load("rf-intermittent").replace(sim={"until_s": 0.05})
    path = save(sc, tmp_path)
    for engine in ("des", "oracle"):
        r = aidi.run(sc, engine=engine)
        assert r.json == cli_json("run", str(path), "--engine", engine)
        assert (r.completed, r.latency_s, r.reason, r.inference_latencies_s) == (False, None, "until_s reached", ())
        assert r.balance_error() < 1e-9 and r.on_time_s + r.off_time_s == pytest.approx(0.05, rel=REL)


# --------------------------------------------------------------------------- check
@pytest.mark.parametrize("name", ["lab-1mF", "rf-intermittent"])
def test_check_equals_the_cli_json(name, tmp_path):
    sc = aidi.load(name).replace({"power.capacitor_F": aidi.load(name).power.capacitor_F / 2})
    c = aidi.check(sc)
    cli = cli_json("check", str(save(sc, tmp_path)))
    assert c.json == cli
    assert (c.schedulable, list(c.reasons), c.sram_max_bytes, c.deadline_s) == \
        (cli["schedulable"], cli["reasons"], cli["sram_max_bytes"], cli["deadline_s"])
    assert c.e_cycle_J == pytest.approx(cli["e_cycle_J"], rel=REL)
    assert c.harvester_latency_s == cli["harvester"]["latency_s"]
    assert c.continuous_latency_s == cli["continuous"]["latency_s"]
    assert len(c.units) == cli["units"] and (c.units["verdict"] == "fits").sum() == cli["units_fit"]
    assert c.layers["name"].tolist() == [L["name"] for L in cli["layers"]]
    assert c.units["sram_bytes"].max() == c.sram_max_bytes
    assert (c.latency_bound_s, c.guaranteed) == (cli.get("latency_bound_s"), cli.get("guaranteed"))
    if c.latency_bound_s is not None and c.harvester_latency_s is not None:
        assert c.latency_bound_s >= c.harvester_latency_s * (1 - 1e-9)  # a bound of the simulated latency


def test_check_unschedulable_is_a_result_not_an_error():
    c = aidi.check(aidi.load("lab-1mF").replace(sim={"deadline_s": 1e-3}))
    assert not c.schedulable and any("deadline" in x for x in c.reasons)


# --------------------------------------------------------------------------- sweep
def test_sweep_table_equals_the_cli_rows_and_is_deterministic(tmp_path):
    # greedy: lab-1mF's designs (for 1 mF) complete at 100 uF too, losing units; under energy_aware their start
    # thresholds exceed V_on there
    sc = aidi.load("lab-1mF").replace(sim={"inferences": 2}).replace({"execution.dispatch": "greedy"})
    grid = {"capacitor_F": [1e-4, 1e-3], "power.v_on": [2.95, 2.99]}
    s = aidi.sweep(sc, grid)
    assert s.keys == ("power.capacitor_F", "power.v_on") and len(s.table) == 4
    assert s.table[["power.capacitor_F", "power.v_on"]].values.tolist() == [[1e-4, 2.95], [1e-4, 2.99],
                                                                            [1e-3, 2.95], [1e-3, 2.99]]
    cli = cli_json("sweep", str(save(sc, tmp_path)), "--set", "power.capacitor_F=1e-4,1e-3",
                   "--set", "power.v_on=2.95,2.99")
    assert s.json == cli and s.boundary == cli["boundary"]
    assert len(cli["rows"]) == len(s.table)
    for row, (_, got) in zip(cli["rows"], s.table.iterrows()):
        for k, v in row.items():
            assert_close(None if isinstance(got[k], float) and math.isnan(got[k]) else got[k], v, k)
    assert s.boundary["completes"] == 1e-4 and s.boundary["completes_below"] is None  # the lower end: a bound
    pd.testing.assert_frame_equal(s.table, aidi.sweep(sc, ["power.capacitor_F=1e-4,1e-3", "v_on=2.95,2.99"]).table)
    one = aidi.run(sc.replace({"power.capacitor_F": 1e-3, "power.v_on": 2.99}), engine="oracle")
    assert s.table["latency_s"].iloc[3] == pytest.approx(one.latency_s, rel=REL)
    fig = s.figure()
    assert len(fig.data) >= 2


@pytest.mark.slow
def test_sweep_of_a_changed_scenario_on_worker_processes_equals_the_serial_one():
    sc = aidi.load("rf-intermittent").replace(sim={"inferences": 2})
    grid = {"capacitor_F": [4.7e-6, 1e-4]}
    pd.testing.assert_frame_equal(aidi.sweep(sc, grid, workers=2).table, aidi.sweep(sc, grid).table)


# --------------------------------------------------------------------------- errors
def test_errors_are_the_cli_one_line_as_user_error(tmp_path):
    assert api_error(aidi.load, "nosuch") == cli_error("run", "nosuch")
    assert api_error(aidi.load, "nosuch").startswith("nosuch: scenario file not found")
    sc = aidi.load("lab-1mF")
    bad = sc.document()
    bad["power"]["v_on"] = 2.7
    (tmp_path / "lab-1mF.toml").write_text(sc.to_toml().replace("v_on = 2.99", "v_on = 2.7"))
    msg = api_error(sc.replace, {"power.v_on": 2.7})
    assert msg == "lab-1mF.toml: power.v_on: must be > power.v_off (2.8 V), got 2.7 V"
    assert msg == cli_error("run", str(tmp_path / "lab-1mF.toml"))
    assert api_error(aidi.load, bad, base_dir=tmp_path) == msg.replace("lab-1mF.toml", "<dict>")
    unknown = api_error(sc.replace, {"power.capacitr_F": 1e-3})
    (tmp_path / "lab-1mF.toml").write_text(sc.to_toml().replace("capacitor_F", "capacitr_F"))
    assert unknown == cli_error("check", str(tmp_path / "lab-1mF.toml"))
    assert unknown.startswith("lab-1mF.toml: power.capacitr_F: unknown key")
    assert api_error(aidi.loads, "power = [").startswith("<string>: not valid TOML (")
    assert api_error(aidi.load, 42) == "load: expected a scenario name, a path, a dict or a Scenario, got int"
    assert api_error(sc.replace, {"name.x": 1}) == "lab-1mF.toml: name.x: name is not a table"
    assert api_error(aidi.run, sc, engine="bogus") == "engine: expected one of des, oracle, got 'bogus'"
    assert api_error(aidi.run, sc, engine="oracle", functional=True).startswith("functional: only the des engine")
    assert api_error(aidi.sweep, sc, {"capacitor_F": [1e-3]}, engine="x") == \
        "engine: expected one of des, oracle, got 'x'"
    assert api_error(aidi.sweep, sc, {"capacitor_F": [1e-3]}, workers=0) == "workers: must be a positive integer, got 0"
    assert api_error(aidi.sweep, sc, {}).startswith("sweep: give at least one key")
    assert api_error(aidi.sweep, sc, {"capacitor": []}) == "sweep: power.capacitor_F: give at least one value"
    assert api_error(aidi.sweep, sc, ["capacitor_F"]) == "--set 'capacitor_F': expected KEY=V1,V2,..."


def test_sweep_validates_every_value_before_any_work():
    calls = []
    msg = api_error(aidi.sweep, "lab-1mF", {"power.capacitor_F": [1e-3, -1.0]},
                    progress=lambda d, t: calls.append(d))
    assert msg == "lab-1mF.toml: power.capacitor_F: must be >= 1e-07, got -1" and calls == []


def test_a_run_that_cannot_progress_is_the_cli_error(tmp_path):
    sc = aidi.load("lab-1mF").replace({"power.capacitor_F": 1e-6})
    msg = api_error(aidi.run, sc, engine="oracle")
    assert msg == cli_error("run", str(save(sc, tmp_path)), "--engine", "oracle")
    assert msg.startswith("lab-1mF.toml: ")
    assert api_error(aidi.run, sc, engine="des") == msg


# --------------------------------------------------------------------------- NAS
@pytest.mark.slow
def test_nas_result_equals_the_cli_and_its_chosen_model_runs(tmp_path):
    kw = dict(budget=4, quick=True, seed=0)
    res = aidi.nas("lab-1mF", out=tmp_path / "api", **kw)
    cli = cli_json("nas", "lab-1mF", "--budget", "4", "--quick", "--seed", "0", "--out", str(tmp_path / "cli"))
    assert res.evaluations == 4 == len(res.history) == cli["search"]["evaluations"]
    assert res.pareto.to_dict(orient="records") == cli["pareto"]
    assert res.pareto["arch_id"].tolist() == [r["arch_id"] for r in res.json["pareto"]]
    assert res.history["arch_id"].tolist() == pd.read_csv(tmp_path / "cli" / "history.csv")["arch_id"].tolist()
    assert [f["arch_id"] for f in cli["finalists"]] == res.finalists["arch_id"].tolist()
    assert (res.chosen is None) == (cli["chosen"] is None) and res.out == tmp_path / "api"
    if res.chosen is not None:
        assert isinstance(res.chosen_scenario, aidi.Scenario)
        r = aidi.run(res.chosen_scenario, engine="oracle")
        assert r.completed and r.latency_s == pytest.approx(res.chosen["des_latency_s"], rel=REL)


@pytest.mark.slow
def test_nas_compare_rows_table_and_file_agree(tmp_path):
    res = aidi.nas_compare("lab-1mF", out=tmp_path / "cmp", requirements_s=[0.6], budget=2, quick=True)
    assert res.requirements_s == (0.6,) and res.out == tmp_path / "cmp"
    assert res.json == json.loads((res.out / "compare.json").read_text())
    assert sorted(res.rows["method"]) == ["hwnas", "inas", "ours"] and (res.rows["requirement_s"] == 0.6).all()
    assert list(res.table.index) == [0.6]
    for m in ("ours", "inas", "hwnas"):
        row = res.rows[res.rows["method"] == m].iloc[0]
        assert res.table.loc[0.6, f"{m}_meets"] == row["meets"]
        assert (res.table.loc[0.6, f"{m}_accuracy"] is None) == (not row["meets"])
        if row["meets"]:
            assert row["latency_s"] <= 0.6 and res.table.loc[0.6, f"{m}_accuracy"] == row["test_accuracy"]


def test_nas_compare_bad_requirements_are_one_line_errors(tmp_path):
    for bad in ([], [0.0], [float("nan")], ["1"], [True]):
        assert api_error(aidi.nas_compare, "lab-1mF", out=tmp_path, requirements_s=bad) == \
            f"requirements_s: expected positive numbers of seconds, got {bad!r}"
    assert api_error(aidi.nas_compare, "lab-1mF", out=tmp_path, controller="x").startswith("controller: expected")
    assert not any(tmp_path.iterdir())


def _user_folder(tmp_path: Path) -> Path:
    d = tmp_path / "mine"
    d.mkdir()
    (d / "Makefile").write_text("mine\n")
    return d


def test_nas_bad_options_are_one_line_errors(tmp_path):
    assert api_error(aidi.nas, "lab-1mF", out=tmp_path, controller="bogus") == \
        "controller: expected one of random, evolution, rl, got 'bogus'"
    assert api_error(aidi.nas, "lab-1mF", out=tmp_path, budget=0) == "budget: must be a positive integer, got 0"
    assert api_error(aidi.nas, "lab-1mF", out=tmp_path, dataset="imagenet").startswith(
        "dataset: expected one of digits, cifar10")
    assert api_error(aidi.nas, "lab-1mF", out=_user_folder(tmp_path)).startswith(
        f"out {tmp_path / 'mine'}: folder is not empty and was not made by aidi")
    assert [p.name for p in tmp_path.iterdir()] == ["mine"] and not (tmp_path / "mine" / ".aidi-output").exists()


# --------------------------------------------------------------------------- explore
def test_explore_equals_the_cli_json_and_its_frames_agree(tmp_path):
    sc = aidi.load("lab-1mF").replace({"power.capacitor_F": 4.7e-4})
    e = aidi.explore(sc, top_k=3)
    cli = cli_json("explore", str(save(sc, tmp_path)), "--top", "3")
    mine = {k: v for k, v in e.json.items() if k != "explore_wall_s"}  # the one timing
    assert mine == {k: v for k, v in cli.items() if k != "explore_wall_s"}
    d, alt = e.designs, e.alternatives
    assert d["design"].tolist() == [L["design"] for L in cli["layers"]] and len(d) == len(cli["layers"])
    assert d.filter(like="rejected_").sum(axis=1).le(d["n_designs"]).all()
    assert alt.groupby("layer", sort=False)["rank"].max().le(2).all()
    best = alt[alt["rank"] == 0]
    assert best["chosen"].all() and best["latency_s"].tolist() == pytest.approx([e.latency_s] * len(best), rel=REL)
    assert (alt.groupby("layer", sort=False)["latency_s"].apply(lambda x: x.is_monotonic_increasing)).all()
    # the chosen designs are the ones aidi.run simulates: the same latency
    assert aidi.run(sc, engine="oracle").latency_s == pytest.approx(e.latency_s, rel=REL)
    assert api_error(aidi.explore, sc, top_k=0) == "top_k: must be a positive integer, got 0"
