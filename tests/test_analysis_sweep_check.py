"""Sweeps (local processes and a Dask LocalCluster give the same frame) and schedulability verdicts."""

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import aidi
from aidi.analysis import check, pipeline, sweep
from aidi.analysis.cli import app
from aidi.analysis.errors import UserError
from aidi.scenarios import loader

runner = CliRunner()


def test_parse_sets_grid_and_errors():
    grid = sweep.parse_sets(["capacitor=1e-4,1e-3", "execution.loop_order=reuse_I,reuse_O"])
    assert grid == {"power.capacitor_F": [1e-4, 1e-3], "execution.loop_order": ["reuse_I", "reuse_O"]}
    # a key given twice (here once by its shortcut) would lose one list of values: refused, CLI and API alike
    with pytest.raises(UserError, match="power.capacitor_F is swept twice"):
        sweep.parse_sets(["power.capacitor_F=1e-4,1e-3", "capacitor=2e-3"])
    with pytest.raises(UserError, match="^sweep: 'capacitor_F': power.capacitor_F is swept twice"):
        aidi.sweep("lab-1mF", {"power.capacitor_F": [1e-3], "capacitor_F": [2e-3]})
    assert len(sweep.points({"a.b": [1, 2], "c.d": [3, 4, 5]})) == 6
    with pytest.raises(UserError, match="KEY=V1"):
        sweep.parse_sets(["power.capacitor_F"])
    with pytest.raises(UserError, match="SECTION.KEY"):
        sweep.parse_sets(["bogus=1"])


@pytest.mark.slow
def test_sweep_local_processes_equal_dask_local_cluster():
    path = loader.load("rf-intermittent").path
    grid = {"power.capacitor_F": [2.2e-6, 4.7e-6, 1e-5]}
    # designs chosen per capacitor, so the boundary is the network's (the default keeps the 100 uF designs)
    a = sweep.run_sweep(path, grid, workers=1, reoptimize=True)
    b = sweep.run_sweep(path, grid, workers=2, reoptimize=True)
    c = sweep.run_sweep(path, grid, workers=2, dask="local", reoptimize=True)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    # the smallest capacitor cannot hold any unit; the boundary is the next one
    assert not a["completed"].iloc[0] and "E_cycle" in a["error"].iloc[0]
    assert sweep.feasibility_boundary(a, "power.capacitor_F") == 4.7e-6
    # a bigger capacitor never needs more power cycles here
    ok = a[a["completed"]]
    assert ok["power_cycles"].is_monotonic_decreasing


def test_sweep_cli_writes_files(tmp_path):
    r = runner.invoke(app, ["sweep", "rf-intermittent", "--set", "power.capacitor_F=4.7e-6,1e-5", "--json",
                            "--out", str(tmp_path), "--reoptimize"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["points"] == 2 and res["boundary"]["completes"] == 4.7e-6 and res["reoptimize"] is True
    assert (tmp_path / "sweep.csv").exists() and (tmp_path / "sweep.parquet").exists()
    assert "latency" in (tmp_path / "sweep.html").read_text()


def test_sweep_cli_bad_value_is_one_line():
    r = runner.invoke(app, ["sweep", "rf-intermittent", "--set", "power.capacitor_F=-1"])
    assert r.exit_code == 2
    assert "power.capacitor_F" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def _counting_plans(monkeypatch):
    """Count plans made through the composition root; start the sweep's per-process cache afresh."""
    from aidi.models import hardware

    calls = []
    real = hardware.plan_network

    def counting(*a, **k):
        calls.append(1)
        return real(*a, **k)

    monkeypatch.setattr(hardware, "plan_network", counting)
    monkeypatch.setattr(sweep, "_PLANS", None)
    return calls


def test_sweep_plans_once_per_structure_and_equals_per_point_rebuild(monkeypatch):
    from aidi.models import hardware

    calls = _counting_plans(monkeypatch)
    path = str(loader.load("lab-1mF").path)
    # power, harvester and run values that leave the designs alone, crossed with a structural change
    grid = {"power.v_initial": [0.0, 2.9], "sim.inferences": [1, 2], "device.sram_budget_bytes": [3072, 4096]}
    df = sweep.run_sweep(path, grid, workers=1)
    assert len(df) == 8 and df["completed"].all() and (df["error"] == "").all()
    assert len(calls) == 2  # one plan per SRAM budget
    calls.clear()
    rebuilt = sweep.sweep_table(grid, [sweep.evaluate_point(path, p, plans=hardware.PlanCache())
                                       for p in sweep.points(grid)])
    assert len(calls) == 8
    pd.testing.assert_frame_equal(df, rebuilt)
    # a capacitor changes the per-cycle budget, so re-optimised "auto" designs may change: one plan per distinct
    # design set; by default every point keeps the scenario's own designs: one plan
    caps = {"power.capacitor_F": [1e-3, 1.2e-3, 2e-3, 4e-3]}
    calls = _counting_plans(monkeypatch)
    fixed = sweep.run_sweep(path, caps, workers=1)
    assert len(calls) == 1 and fixed["designs"].nunique() == 1
    calls = _counting_plans(monkeypatch)
    df = sweep.run_sweep(path, caps, workers=1, reoptimize=True)
    sc = loader.load(path)
    geoms = list(pipeline.model_geometry(sc))
    distinct = {tuple(hardware.resolve(sc.with_values(**p), geoms)) for p in sweep.points(caps)}
    assert len(calls) == len(distinct)
    rebuilt = sweep.sweep_table(caps, [sweep.evaluate_point(path, p, plans=hardware.PlanCache())
                                       for p in sweep.points(caps)])
    pd.testing.assert_frame_equal(df, rebuilt)


def test_sweep_point_bug_propagates_infeasible_point_is_a_row(monkeypatch):
    from aidi.models import hardware
    from aidi.sim import oracle

    path = str(loader.load("rf-intermittent").path)
    row = sweep.evaluate_point(path, {"power.capacitor_F": 2.2e-6})  # no unit fits one cycle
    assert row["completed"] is False and "E_cycle" in row["error"]

    def bug(*a, **k):
        raise ZeroDivisionError("a bug, not a data point")

    monkeypatch.setattr(oracle, "simulate", bug)
    with pytest.raises(ZeroDivisionError):
        sweep.evaluate_point(path, {"power.capacitor_F": 1e-5})
    with monkeypatch.context() as m, pytest.raises(ZeroDivisionError):
        m.setattr(oracle.Population, "evaluate", bug)  # the batched path's engine call
        sweep.run_sweep(path, {"power.capacitor_F": [1e-5]}, workers=1)
    monkeypatch.setattr(hardware, "plan_network", lambda *a, **k: None.plan)  # a TypeError-like AttributeError
    with pytest.raises(AttributeError):
        sweep.evaluate_point(path, {"power.capacitor_F": 1e-5}, plans=hardware.PlanCache())


def _built(tmp_path, cap, extra=""):
    text = f"""
[power]
capacitor_F = {cap}
v_on = 3.0
v_off = 2.0
[harvester]
kind = "constant"
power_W = 0.0
[sim]
deadline_s = 10.0
until_s = 100
{extra}
"""
    p = tmp_path / "s.toml"
    p.write_text(text)
    return pipeline.build(loader.load(p))


def test_check_verdicts_by_hand(tmp_path):
    built = _built(tmp_path, 100e-6, '[execution]\ndispatch = "greedy"')
    res = check.analyse(built)
    e_store = 0.5 * 100e-6 * (3.0**2 - 2.0**2)
    assert res["e_store_J"] == pytest.approx(e_store)
    units = check.unit_table(built)
    need = (built.work.boot_J + built.work.energy_J.sum(axis=1))
    assert units["need_from_store_J"].to_numpy() == pytest.approx(need)
    assert ((units["verdict"] == "fits") == (need <= e_store)).all()
    # no harvest at all: the capacitor's initial charge (0 V) never boots the device
    assert not res["schedulable"]
    assert res["harvester"]["latency_s"] is None
    assert res["continuous"]["latency_s"] == pytest.approx(built.work.boot_s + built.work.durations_s.sum())
    # energy_aware (the default) on continuous power: the same plus whole voltage measurements
    aware = check.analyse(_built(tmp_path, 100e-6))["continuous"]
    k = (aware["latency_s"] - aware["compute_time_s"]) / built.work.measure_s
    assert aware["compute_time_s"] == pytest.approx(res["continuous"]["compute_time_s"])
    assert k == pytest.approx(round(k), abs=1e-6) and round(k) >= 0


def test_check_deadline_and_sram_reasons(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text("""
[power]
capacitor_F = 1e-3
v_on = 2.99
v_off = 2.8
[harvester]
kind = "thevenin"
v_source = 3.0
r_ohm = 52.0
[sim]
deadline_s = 0.01
""")
    res = check.analyse(pipeline.build(loader.load(p)))
    assert not res["schedulable"]
    assert any("deadline" in r for r in res["reasons"])
    assert all(L["verdict"] == "fits" for L in res["layers"])


# --------------------------------------------------------------------------- sweeps that run no point, bad bases
def test_a_sweep_in_which_no_point_runs_writes_its_table_json_and_files_and_exits_1(tmp_path):
    """Every capacitor too small to boot: each row says why; the JSON, the table and the files are all written;
    exit status 1 (ran, nothing completed), a one-line note on stderr."""
    out = tmp_path / "out"
    args = ["sweep", "lab-1mF", "--set", "power.capacitor_F=1e-7,2e-7"]
    r = runner.invoke(app, [*args, "--json", "--out", str(out)])
    assert r.exit_code == 1, r.output
    res = json.loads(r.stdout)
    assert res["points"] == 2 and res["boundary"]["completes"] is None
    for row in res["rows"]:
        assert set(sweep.ROW_COLUMNS) <= set(row) and row["completed"] is False and row["latency_s"] is None
        assert row["error"].startswith("lab-1mF.toml: power: one power cycle") and "does not even cover the boot" \
            in row["error"]
    assert r.stderr.strip().splitlines()[-1] == ("aidi: no point of the sweep completed (2 tried; each row's error "
                                                 "or reason says why)")  # after the progress line
    csv = pd.read_csv(out / "sweep.csv", keep_default_na=False)
    assert csv["error"].tolist() == [row["error"] for row in res["rows"]]
    assert len(pd.read_parquet(out / "sweep.parquet")) == 2
    assert "no point completed" in (out / "sweep.html").read_text()
    text = runner.invoke(app, args)
    assert text.exit_code == 1 and "does not even cover" in text.stdout and "never completes" in text.stdout
    # the API: the same rows, a result and not an error
    api = aidi.sweep("lab-1mF", {"power.capacitor_F": [1e-7, 2e-7]})
    assert api.json == res and list(api.table.columns[:len(sweep.ROW_COLUMNS) + 1]) == ["power.capacitor_F",
                                                                                       *sweep.ROW_COLUMNS]


def test_a_point_that_runs_but_does_not_complete_says_why_in_reason():
    df = aidi.sweep("lab-1mF", {"sim.until_s": [0.01, 100.0]}).table
    assert df["completed"].tolist() == [False, True] and df["error"].tolist() == ["", ""]
    assert df["reason"].iloc[0] == aidi.run(aidi.load("lab-1mF").replace({"sim.until_s": 0.01}),
                                            engine="oracle").reason != ""
    assert df["reason"].iloc[1] == ""
    r = runner.invoke(app, ["sweep", "lab-1mF", "--set", "sim.until_s=0.01,100"])
    assert r.exit_code == 0 and df["reason"].iloc[0] in r.stdout  # some point completed: exit 0


def _nan_trace(tmp_path: Path) -> Path:
    (tmp_path / "bad.csv").write_text("time_s,power_W\n0,0.01\n1,nan\n2,0.01\n")
    (tmp_path / "good.csv").write_text("time_s,power_W\n0,0.01\n1,0.02\n")
    p = tmp_path / "nan.toml"
    p.write_text('[power]\ncapacitor_F = 1e-3\nv_on = 2.99\nv_off = 2.8\n'
                 '[harvester]\nkind = "trace"\nfile = "bad.csv"\n')
    return p


def test_a_bad_base_scenario_is_refused_before_any_point_runs_as_run_refuses_it(tmp_path):
    p = _nan_trace(tmp_path)
    run = runner.invoke(app, ["run", str(p), "--engine", "oracle"])
    assert run.exit_code == 2
    want = run.stderr.strip()
    assert len(want.splitlines()) == 1 and "bad.csv" in want
    for extra in ([], ["--out", str(tmp_path / "out")]):
        r = runner.invoke(app, ["sweep", str(p), "--set", "power.capacitor_F=1e-3,2e-3", "--json", *extra])
        assert r.exit_code == 2 and r.stdout == "" and r.stderr.strip() == want, r.output
    assert not (tmp_path / "out").exists()  # refused before the output folder was made
    calls = []
    with pytest.raises(aidi.UserError) as info:
        aidi.sweep(str(p), {"power.capacitor_F": [1e-3]}, progress=lambda d, t: calls.append(d))
    assert str(info.value).startswith("nan.toml: ") and calls == []
    assert want.endswith(str(info.value).removeprefix("nan.toml"))  # the CLI names the path as it was typed


def test_a_swept_harvester_replaces_a_bad_base_one_only_where_designs_are_chosen_per_point(tmp_path):
    """--set harvester.file=good.csv replaces the bad trace under --reoptimize; without it the designs are chosen
    under the base's own harvester, so the base is read and refused with a hint; a bad swept value is refused."""
    p = _nan_trace(tmp_path)
    ok = runner.invoke(app, ["sweep", str(p), "--set", "harvester.file=good.csv", "--reoptimize", "--json"])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.stdout)["rows"][0]["completed"] is True
    fixed = runner.invoke(app, ["sweep", str(p), "--set", "harvester.file=good.csv", "--json"])
    assert fixed.exit_code == 2 and fixed.stdout == ""
    assert "bad.csv" in fixed.stderr and fixed.stderr.strip().endswith("--reoptimize chooses them per point)")
    good = tmp_path / "good.toml"
    good.write_text(p.read_text().replace("bad.csv", "good.csv"))
    r = runner.invoke(app, ["sweep", str(good), "--set", "harvester.file=good.csv,bad.csv", "--reoptimize"])
    assert r.exit_code == 2 and "bad.csv" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert r.stdout == ""


def test_a_trace_is_read_once_per_sweep_and_again_when_it_changes(tmp_path, monkeypatch):
    from aidi.sim import harvesters

    p = _nan_trace(tmp_path)
    p.write_text(p.read_text().replace("bad.csv", "good.csv"))
    reads = []
    real = harvesters.read_trace
    monkeypatch.setattr(harvesters, "read_trace", lambda *a, **k: reads.append(a[0]) or real(*a, **k))
    first = aidi.sweep(str(p), {"power.capacitor_F": [1e-3, 2e-3]}).table
    assert len(reads) == 1 and first["completed"].all()  # checked up front, then used by both points
    (tmp_path / "good.csv").write_text("time_s,power_W\n0,0.02\n1,0.04\n")  # another size: read afresh
    again = aidi.sweep(str(p), {"power.capacitor_F": [1e-3, 2e-3]}).table
    assert len(reads) == 2 and (again["latency_s"] < first["latency_s"]).all()
