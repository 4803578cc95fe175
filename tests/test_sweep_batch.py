"""Sweeps build once: the batched rows equal per-point runs, one plan and one compiled population per workload."""

import json
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis import pipeline, sweep
from aidi.analysis.cli import app
from aidi.models import hardware
from aidi.scenarios import loader
from aidi.sim import oracle

runner = CliRunner()


def per_point(path, grid, designs=None, engine="oracle"):
    """The reference: every point loaded, built and simulated on its own (evaluate_point, fresh plan cache)."""
    return sweep.sweep_table(grid, [sweep.evaluate_point(path, p, engine, plans=hardware.PlanCache(),
                                                         designs=designs) for p in sweep.points(grid)])


def base_designs(name):
    sc = loader.load(name)
    return hardware.resolve(sc, list(pipeline.model_geometry(sc)))


def assert_rows_equal(a, b):
    pd.testing.assert_frame_equal(a, b, check_exact=False, rtol=1e-9, atol=0.0)


@pytest.fixture
def counts(monkeypatch):
    """Plans made and populations compiled while the test runs (the sweep's plan cache starts empty)."""
    made = {"plans": 0, "populations": 0}
    real_plan, real_init = hardware.plan_network, oracle.Population.__init__

    def plan_network(*a, **k):
        made["plans"] += 1
        return real_plan(*a, **k)

    def init(self, works):
        made["populations"] += 1
        real_init(self, works)

    monkeypatch.setattr(hardware, "plan_network", plan_network)
    monkeypatch.setattr(oracle.Population, "__init__", init)
    sweep.reset_plan_cache()
    return made


def test_power_sweep_builds_once_and_equals_per_point_runs(counts):
    path = str(loader.load("rf-intermittent").path)
    grid = {"power.capacitor_F": [float(c) for c in np.geomspace(4.7e-6, 1e-3, 12)]}
    df = sweep.run_sweep(path, grid)
    # the scenario's own designs (as aidi run chooses them) at every point: one plan
    designs = base_designs("rf-intermittent")
    assert counts["plans"] == 1
    assert df["designs"].nunique() == 1
    text = df["designs"].iloc[0]
    assert text.count(";") == len(designs) - 1 and all(
        f"{d.Tr}_{d.Tc}_{d.Tm}_{d.Tn}_{d.loop_order}_{d.S}" in text for d in designs)
    assert_rows_equal(df, per_point(path, grid, designs))
    assert df["completed"].any() and (df.loc[~df["completed"], "error"] != "").all()


def test_one_population_per_workload(monkeypatch):
    """One Population (the sweep's own, not the optimizer's) for the 6 points of a power-only grid."""
    path = str(loader.load("weak-source").path)
    made = []
    real_init = oracle.Population.__init__

    def init(self, works):
        if sys._getframe(1).f_code.co_name == "evaluate_points":
            made.append(len(works))
        real_init(self, works)

    monkeypatch.setattr(oracle.Population, "__init__", init)
    grid = {"power.capacitor_F": [5e-5, 1e-4, 2e-4], "harvester.power_W": [1e-3, 3e-3]}
    df = sweep.run_sweep(path, grid)
    assert made == [1] and len(df) == 6 and df["completed"].any()


def test_structural_keys_make_one_workload_each_and_equal_per_point(counts):
    path = str(loader.load("weak-source").path)
    grid = {"execution.hyper_tile": [1, 2], "power.capacitor_F": [5e-5, 1e-4, 2e-4]}
    df = sweep.run_sweep(path, grid)
    assert counts["plans"] == 2 and df["designs"].nunique() == 2
    sc = loader.load(path)
    geoms = list(pipeline.model_geometry(sc))
    for h in (1, 2):  # each hyper-tile value keeps its own designs under the scenario's own power
        d = hardware.resolve(sc.with_values(**{"execution.hyper_tile": h}), geoms)
        ref = per_point(path, {"execution.hyper_tile": [h], "power.capacitor_F": grid["power.capacitor_F"]}, d)
        assert_rows_equal(df[df["execution.hyper_tile"] == h].reset_index(drop=True), ref)


def test_reoptimize_equals_the_per_point_sweep(counts):
    path = str(loader.load("rf-intermittent").path)
    grid = {"power.capacitor_F": [2.2e-6, 4.7e-6, 1e-5, 1e-4, 1e-3]}
    df = sweep.run_sweep(path, grid, reoptimize=True)
    assert_rows_equal(df, sweep.run_sweep_per_point(path, grid, plans=hardware.PlanCache()))
    # designs chosen per capacitor: more than one set, the smallest capacitor fits no design at all
    assert df["designs"].nunique() > 2 and "no execution design fits" in df["error"].iloc[0]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(caps=st.lists(st.floats(2e-5, 2e-3), min_size=1, max_size=3, unique=True),
       v_on=st.sampled_from([2.6, 2.8, 3.0]), v_off=st.sampled_from([1.9, 2.0, 2.2]),
       power_W=st.floats(2e-4, 2e-2), dispatch=st.sampled_from(["greedy", "energy_aware"]),
       margin=st.sampled_from([0.0, 0.05, 0.3]), inferences=st.integers(1, 3))
def test_property_batched_rows_equal_per_point_rows(caps, v_on, v_off, power_W, dispatch, margin, inferences):
    path = str(loader.load("weak-source").path)
    grid = {"power.capacitor_F": caps, "power.v_on": [v_on], "power.v_off": [v_off],
            "harvester.power_W": [power_W, power_W / 3], "execution.dispatch": [dispatch],
            "execution.dispatch_margin": [margin], "sim.inferences": [inferences]}
    df = sweep.run_sweep(path, grid)
    assert df["designs"].nunique() <= 1  # power keys only: the scenario's own designs everywhere
    assert_rows_equal(df, per_point(path, grid, base_designs("weak-source")))


def test_des_engine_runs_point_by_point_with_the_same_designs_and_agrees():
    path = str(loader.load("weak-source").path)
    grid = {"power.capacitor_F": [5e-5, 2e-4]}
    des = sweep.run_sweep(path, grid, engine="des")
    assert_rows_equal(des, per_point(path, grid, base_designs("weak-source"), engine="des"))
    ora = sweep.run_sweep(path, grid)
    for col in ("latency_s", "power_cycles", "consumed_J", "harvested_J"):
        np.testing.assert_allclose(des[col].astype(float), ora[col].astype(float), rtol=1e-9)


def test_bad_points_are_rows_and_infeasible_base_designs_say_reoptimize(tmp_path):
    path = str(loader.load("weak-source").path)
    # a combination the loader refuses is that point's row, named as the loader names it
    df = sweep.run_sweep(path, {"power.v_on": [2.8, 1.5]})
    assert df["completed"].tolist() == [True, False]
    assert df["error"].iloc[1] == sweep.evaluate_point(path, {"power.v_on": 1.5})["error"]
    assert "power.v_on" in df["error"].iloc[1]
    # a base scenario whose own power fits no design: every point says why and how to choose per point
    sc = loader.load("weak-source")
    tiny = tmp_path / "tiny.toml"
    tiny.write_text(sc.path.read_text().replace("capacitor_F = 1e-4", "capacitor_F = 2e-7"))
    df = sweep.run_sweep(str(tiny), {"power.capacitor_F": [1e-4, 1e-3]})
    assert not df["completed"].any()
    msg = df["error"].iloc[0]
    assert msg.startswith("tiny.toml: ") and msg.endswith("--reoptimize chooses them per point)")
    ok = sweep.run_sweep(str(tiny), {"power.capacitor_F": [1e-4, 1e-3]}, reoptimize=True)
    assert ok["completed"].all()


def test_progress_counts_every_point_in_order():
    calls = []
    path = str(loader.load("weak-source").path)
    sweep.run_sweep(path, {"power.capacitor_F": [5e-5, 1e-4, 2e-4], "power.v_on": [2.8, 1.5]},
                    progress=lambda d, t: calls.append((d, t)))
    assert calls == [(k, 6) for k in range(1, 7)]


def test_cli_reoptimize_flag_and_designs_line():
    args = ["sweep", "weak-source", "--set", "capacitor_F=5e-5,2e-4"]
    fixed = json.loads(runner.invoke(app, args + ["--json"]).stdout)
    again = json.loads(runner.invoke(app, args + ["--json", "--reoptimize"]).stdout)
    assert fixed["reoptimize"] is False and again["reoptimize"] is True
    assert len({r["designs"] for r in fixed["rows"]}) == 1
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "designs: weak-source's own choice under its own power, kept at every point" in r.stdout
    assert fixed["rows"][0]["designs"] in r.stdout.replace("\n", "")
    r = runner.invoke(app, args + ["--reoptimize"])
    assert "designs chosen per point under its own power (--reoptimize)" in r.stdout


def test_bench_only_runs_the_named_benchmarks(monkeypatch):
    from aidi.analysis import bench

    monkeypatch.setattr(bench, "BENCHMARKS", {"a": lambda quick: {"x": 1.0}, "sweep": lambda quick: {"y": 2.0}})
    r = runner.invoke(app, ["bench", "--only", "sweep", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"sweep": {"y": 2.0}}
    r = runner.invoke(app, ["bench", "--only", "swep"])
    assert r.exit_code == 2
    assert r.stderr.strip() == "aidi: error: --only: unknown benchmark 'swep' (one of a, sweep)"


@pytest.mark.slow
def test_bench_sweep_measures_both_paths_in_one_run():
    from aidi.analysis import bench

    res = bench.bench_sweep(quick=True)
    assert res["points"] == 4
    for k in ("per_point_points_per_s", "batched_points_per_s", "batched_reoptimize_points_per_s",
              "per_point_fixed_designs_points_per_s", "batched_2_workers_points_per_s"):
        assert res[k] > 0
    assert res["speedup_batched_vs_per_point"] == pytest.approx(
        res["batched_points_per_s"] / res["per_point_points_per_s"])
