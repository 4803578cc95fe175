"""Console summaries in words a reader can check (issue 15 item 21)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from aidi.analysis import report
from aidi.analysis import sweep as sw
from aidi.analysis.cli import app

runner = CliRunner()
KEY = "power.capacitor_F"


def frame(completed, meets=None):
    caps = [1e-6, 1e-5, 1e-4, 1e-3][:len(completed)]
    meets = meets if meets is not None else [None] * len(caps)
    return pd.DataFrame({KEY: caps, "completed": completed, "meets_deadline": meets})


# --------------------------------------------------------------------------- sweep boundary
def test_boundary_inside_the_range_names_both_sides():
    b = sw.boundary_summary(frame([False, True, True, True], [False, False, True, True]), KEY)
    assert (b["completes"], b["completes_below"]) == (1e-5, 1e-6)
    assert (b["meets_deadline"], b["meets_deadline_below"]) == (1e-4, 1e-5)
    assert sw.describe_boundary(b, KEY) == [
        f"{KEY}: completes from 1e-05; the boundary lies between 1e-06 (does not) and 1e-05",
        f"{KEY}: meets the deadline from 0.0001; the boundary lies between 1e-05 (does not) and 0.0001"]


def test_boundary_at_the_lower_end_is_called_a_bound():
    b = sw.boundary_summary(frame([True, True, True], [True, True, True]), KEY)
    assert b["completes"] == 1e-6 and b["completes_below"] is None
    text = sw.describe_boundary(b, KEY)
    assert text[0] == (f"{KEY}: completes already at 1e-06, the lower end of the range tried; the boundary lies "
                       "at or below it (a bound, not the boundary: try smaller values)")
    assert "lower end" in text[1] and "meets the deadline" in text[1]


def test_never_meeting_the_deadline_says_so():
    b = sw.boundary_summary(frame([False, True, True], [False, False, False]), KEY)
    text = sw.describe_boundary(b, KEY)
    assert b["meets_deadline"] is None
    assert text[1] == f"{KEY}: never meets the deadline in the range tried (1e-06 to 0.0001)"
    assert not any("None" in t for t in text)


def test_never_completing_and_no_deadline():
    b = sw.boundary_summary(frame([False, False]), KEY)
    assert b["deadline_set"] is False
    assert sw.describe_boundary(b, KEY) == [f"{KEY}: never completes in the range tried (1e-06 to 1e-05)",
                                            f"{KEY}: no deadline set ([sim] deadline_s), so none to meet"]


def test_unordered_values_say_where_they_succeed():
    df = pd.DataFrame({"execution.hyper_tile": [1, 2, "auto"], "completed": [True, False, True],
                       "meets_deadline": [True, False, False]})
    b = sw.boundary_summary(df, "execution.hyper_tile")
    assert b["completes"] is None and b["completes_at"] == [1, "auto"] and b["meets_deadline_at"] == [1]
    assert sw.describe_boundary(b, "execution.hyper_tile") == ["execution.hyper_tile: completes at 1, auto",
                                                              "execution.hyper_tile: meets the deadline at 1"]
    b = sw.boundary_summary(df.assign(completed=False), "execution.hyper_tile")
    assert sw.describe_boundary(b, "execution.hyper_tile")[0] == ("execution.hyper_tile: completes at none of the "
                                                                  "values tried (1, 2, auto)")
    sw.figure(df.assign(latency_s=1.0, power_cycles=1, E_compute_J=1e-4), "execution.hyper_tile", "t")


def test_sweep_cli_words_and_json(tmp_path):
    args = ["sweep", "rf-intermittent", "--set", "capacitor_F=4.7e-6,1e-5", "--reoptimize"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert "completes already at 4.7e-06, the lower end of the range tried" in " ".join(r.stdout.split())
    assert "from None" not in r.stdout and "feasibility boundary" not in r.stdout
    assert "no deadline set ([sim] deadline_s)" in " ".join(r.stdout.split())  # printed as text, not markup
    r = runner.invoke(app, args + ["--json"])
    b = json.loads(r.stdout)["boundary"]
    assert b["completes"] == 4.7e-6 and b["completes_below"] is None and b["range"] == [4.7e-6, 1e-5]


# --------------------------------------------------------------------------- run summary
def result(**kw):
    res = {"completed": True, "reason": "", "latency_s": 120.05, "inferences": 3,
           "inference_latencies_s": [2.18, 0.052, 0.052], "power_cycles": 1, "on_time_s": 1.0, "off_time_s": 2.0,
           "units": 7, "units_executed": 21, "units_reexecuted": 1,
           "energy_J": {"harvested": 1e-3, "consumed": 1e-3, "leaked": 0.0, "clipped": 0.0,
                        "by_category": {"compute": 1e-4, "data_movement": 2e-5, "converter_loss": 0.0}}}
    return res | kw


def test_run_summary_several_inferences_lists_each_latency():
    rows = dict(report.run_summary_rows(result(), period_s=60.0))
    assert rows["latency, all 3 inferences"] == "120.050 s until the last output (released every 60 s)"
    assert rows["latency per inference (release to output)"] == "2.180 s, 52.00 ms, 52.00 ms"
    assert rows["units per inference"] == "7"
    assert rows["unit runs"] == "21 committed, 1 unit re-run after a brown-out lost it"
    assert rows["  data movement (FRAM/DMA)"] == "20.00 uJ"
    assert "  converter loss" not in rows  # zero categories are left out
    assert not any("(executed / re-executed)" in k for k in rows)


def test_run_summary_one_inference_and_many_latencies():
    rows = dict(report.run_summary_rows(result(inferences=1, inference_latencies_s=[0.5], latency_s=0.5,
                                               units_reexecuted=3)))
    assert rows["latency"] == "500.00 ms" and "units" in rows
    assert rows["unit runs"] == "21 committed, 3 units re-run after a brown-out lost it"
    rows = dict(report.run_summary_rows(result(inferences=8, inference_latencies_s=[1.0] * 7 + [3.0]), 0.0))
    assert rows["latency, all 8 inferences"].endswith("(back to back)")
    assert rows["latency per inference (release to output)"] == "min 1.000 s, mean 1.250 s, max 3.000 s"
    rows = dict(report.run_summary_rows(result(completed=False, reason="until_s", latency_s=None,
                                               inferences_completed=1, inference_latencies_s=[2.0]), 60.0))
    assert rows["status"] == "NOT completed: until_s"
    assert rows["latency, all 3 inferences"] == "- (1 of 3 completed) (released every 60 s)"
    assert rows["latency per inference (release to output)"] == "2.000 s"


@pytest.mark.parametrize("n, text", [(1, "(1 power cycle)"), (2, "(2 power cycles)"),
                                     (None, "(power cycles unknown: the run did not complete)")])
def test_check_pluralises_power_cycles(n, text, capsys):
    res = {"scenario": "x", "schedulable": True, "layers": [], "e_cycle_J": 1e-4, "boot_J": 1e-6,
           "sram_max_bytes": 1, "sram_budget_bytes": 2, "continuous": {"latency_s": 0.05},
           "harvester": {"latency_s": 0.05, "power_cycles": n}, "deadline_s": None, "reasons": []}
    report.print_check(res)
    out = " ".join(capsys.readouterr().out.split())
    assert text in out and "1 power cycles" not in out


def test_run_cli_shows_per_inference_latency():
    r = runner.invoke(app, ["run", "solar-tmy3", "--engine", "oracle"])
    assert r.exit_code == 0, r.output
    assert "latency per inference (release to output)" in r.stdout
    assert "released every 60 s" in r.stdout
