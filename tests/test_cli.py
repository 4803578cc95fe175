"""The command line as a user runs it: JSON contracts, files written, one-line errors with exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim.workload import CATEGORIES, energy_balance_error

runner = CliRunner()
SHIPPED = loader.shipped()


def run_json(*args) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got {len(lines)}"
    return json.loads(lines[0])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_run_every_shipped_scenario_functional(path):
    res = run_json("run", str(path))
    for key in ("completed", "latency_s", "power_cycles", "on_time_s", "off_time_s", "units_executed",
                "units_reexecuted", "energy_J", "output", "output_matches_reference"):
        assert key in res
    assert res["completed"], res["reason"]
    assert res["output_matches_reference"] is True
    e = res["energy_J"]
    for key in ("harvested", "consumed", "stored_initial", "stored_final", "leaked", "clipped", "by_category"):
        assert key in e
    assert set(CATEGORIES) <= set(e["by_category"])
    assert energy_balance_error(res) < 1e-9
    assert sum(e["by_category"].values()) == pytest.approx(e["consumed"], rel=1e-9)
    assert res["on_time_s"] + res["off_time_s"] == pytest.approx(res["latency_s"], rel=1e-9)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_oracle_agrees_with_simpy_on_shipped_scenarios(path):
    a = run_json("run", str(path), "--engine", "des", "--no-functional")
    b = run_json("run", str(path), "--engine", "oracle")
    for key in ("completed", "power_cycles", "units_executed", "units_reexecuted"):
        assert a[key] == b[key]
    for key in ("latency_s", "on_time_s", "off_time_s"):
        assert b[key] == pytest.approx(a[key], rel=1e-9)
    for key, v in a["energy_J"]["by_category"].items():
        assert b["energy_J"]["by_category"][key] == pytest.approx(v, rel=1e-9, abs=1e-15)
    for key in ("harvested", "consumed", "leaked", "clipped", "stored_final"):
        assert b["energy_J"][key] == pytest.approx(a["energy_J"][key], rel=1e-9, abs=1e-15)


def test_run_out_writes_event_log_and_plot(tmp_path):
    out = tmp_path / "run"
    r = runner.invoke(app, ["run", "rf-intermittent", "--out", str(out)])
    assert r.exit_code == 0, r.output
    import pandas as pd

    ev = pd.read_csv(out / "events.csv")
    # the default dispatch, energy_aware: it measures V and waits in LPM3 for thresholds; no unit is lost
    assert set(ev["kind"]) >= {"charge", "boot", "unit", "measure", "wait", "wake"}
    assert not (ev["outcome"] == "lost").any() and (ev["outcome"] == "committed").any()
    pq = pd.read_parquet(out / "events.parquet")
    assert len(pq) == len(ev)
    html = (out / "voltage.html").read_text()
    assert "capacitor voltage" in html
    # events are in time order and contiguous
    assert (ev["t_end"].to_numpy()[:-1] <= ev["t_start"].to_numpy()[1:] + 1e-12).all()


def test_human_summary_mentions_latency():
    r = runner.invoke(app, ["run", "continuous", "--engine", "oracle"])
    assert r.exit_code == 0
    assert "latency" in r.stdout and "power cycles" in r.stdout


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "bad.toml"
    p.write_text(text)
    return p


BASE = """
[power]
capacitor_F = 1e-3
v_on = 2.99
v_off = 2.8
[harvester]
kind = "constant"
power_W = 0.01
"""


@pytest.mark.parametrize("text,needle", [
    (BASE.replace("capacitor_F = 1e-3", "capacitor_F = -1e-3"), "power.capacitor_F"),
    (BASE.replace("v_on = 2.99", "v_on = 2.7"), "power.v_on"),
    (BASE + "\n[sim]\nbogus = 1\n", "sim.bogus"),
    (BASE.replace('kind = "constant"', 'kind = "nuclear"'), "harvester.kind"),
    (BASE.replace("power_W = 0.01", "power_W = nan"), "harvester.power_W"),
    (BASE + '\n[model]\nlayers = [{type="conv", k=0, filters=8}]\n', "k"),
    (BASE + '\n[device]\nsram_budget_bytes = 300\n[execution]\ntile = [[6, 6, 8, 1], "auto", "auto", "auto"]\nloop_order = "reuse_O"\n'
     'hyper_tile = 1\n', "SRAM"),
    (BASE + '\n[execution]\ntile = [64, 64, 64, 64]\nloop_order = "reuse_O"\nhyper_tile = 1\n', "exceeds"),
    ("[power\n", "not valid TOML"),
    (BASE + '\n[execution]\ndispatch = "lazy"\n', "execution.dispatch"),
    (BASE + '\n[execution]\ndispatch_margin = -0.1\n', "execution.dispatch_margin"),
])
def test_bad_input_one_line_exit_2(tmp_path, text, needle):
    p = _write(tmp_path, text)
    r = runner.invoke(app, ["run", str(p), "--json"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert "bad.toml" in err and needle in err
    assert "Traceback" not in r.output
    assert r.stdout == ""


def test_unit_that_never_fits_is_reported(tmp_path):
    p = _write(tmp_path, BASE.replace("capacitor_F = 1e-3", "capacitor_F = 1e-6").replace("power_W = 0.01", "power_W = 1e-4")
               + '\n[execution]\ntile = [6, 6, 8, 1]\nloop_order = "reuse_O"\nhyper_tile = 1\npreservation = "layer"\n')
    r = runner.invoke(app, ["run", str(p)])
    assert r.exit_code == 2
    assert "never complete" in r.stderr or "does not even cover" in r.stderr
    assert "uJ" in r.stderr


def test_start_threshold_above_v_on_is_reported(tmp_path):
    text = (Path(loader.__file__).parent / "weak-source.toml").read_text()
    # a pinned design: "auto" designs respect the start threshold (the optimizer finds smaller units)
    p = _write(tmp_path, text + '\n[execution]\ndispatch = "energy_aware"\ndispatch_margin = 10.0\n'
               'tile = [7, 7, 8, 3]\nloop_order = "reuse_O"\nhyper_tile = 1\n')
    r = runner.invoke(app, ["run", str(p), "--engine", "oracle", "--json"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "V_start = " in err and "V_on = 2.8 V" in err and "layer 0" in err, err


def test_energy_aware_weak_source_loses_no_unit(tmp_path):
    """energy_aware is the default: weak-source (no [execution] table) loses no unit; with dispatch = "greedy"
    set it loses units and is slower."""
    res = run_json("run", "weak-source", "--engine", "oracle")
    assert res["dispatch"] == "energy_aware" and res["units_lost"] == 0 and res["measurements"] > 0
    text = (Path(loader.__file__).parent / "weak-source.toml").read_text()
    assert "[execution]" not in text
    greedy = run_json("run", str(_write(tmp_path, text + '\n[execution]\ndispatch = "greedy"\n')), "--engine",
                      "oracle")
    assert greedy["dispatch"] == "greedy" and greedy["units_lost"] > 0 and greedy["measurements"] == 0
    assert res["latency_s"] < greedy["latency_s"]


def test_missing_file():
    r = runner.invoke(app, ["run", "/nonexistent/x.toml"])
    assert r.exit_code == 2 and "not found" in r.stderr


@pytest.mark.slow
def test_console_script_runs():
    r = subprocess.run([sys.executable, "-m", "aidi.analysis.cli", "check", "lab-1mF", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["schedulable"] and res["layers"]


# --------------------------------------------------------------------------- the CLI and the API check alike
def _cli_error(*args) -> str:
    """The one-line error of a command that must be refused, without ``aidi: error: ``."""
    r = runner.invoke(app, list(args))
    assert r.exit_code == 2 and r.stdout == "", r.output
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aidi: error: ") and "Traceback" not in r.output, r.stderr
    return lines[0][len("aidi: error: "):]


def _api_error(fn, *args, **kw) -> str:
    import aidi

    with pytest.raises(aidi.UserError) as info:
        fn(*args, **kw)
    return str(info.value)


@pytest.mark.parametrize("cli,call", [
    (["sweep", "lab-1mF", "--set", "capacitor_F=1e-3", "--workers", "0"],
     lambda a: a.sweep("lab-1mF", {"capacitor_F": [1e-3]}, workers=0)),
    (["sweep", "lab-1mF", "--set", "capacitor_F=1e-3", "--workers", "-3"],
     lambda a: a.sweep("lab-1mF", {"capacitor_F": [1e-3]}, workers=-3)),
    (["run", "lab-1mF", "--engine", "oracle", "--functional"],
     lambda a: a.run("lab-1mF", engine="oracle", functional=True)),
    (["explore", "lab-1mF", "--top", "0"], lambda a: a.explore("lab-1mF", top_k=0)),
    (["nas", "lab-1mF", "--budget", "0"], lambda a: a.nas("lab-1mF", out="unused", budget=0)),
    (["nas", "lab-1mF", "--workers", "0"], lambda a: a.nas("lab-1mF", out="unused", workers=0)),
    (["nas", "lab-1mF", "--seed", "-1"], lambda a: a.nas("lab-1mF", out="unused", seed=-1)),
    (["nas", "lab-1mF", "--requirement", "-1"], lambda a: a.nas("lab-1mF", out="unused", requirement_s=-1.0)),
    (["nas", "lab-1mF", "--requirement", "nan", "--compare"],
     lambda a: a.nas("lab-1mF", out="unused", requirement_s=float("nan"))),
    (["sweep", "lab-1mF", "--set", "capacitor_F=1e-3", "--dask", "nonsense"],
     lambda a: a.sweep("lab-1mF", {"capacitor_F": [1e-3]}, dask="nonsense")),
    (["nas", "lab-1mF", "--dask", "host:99999"], lambda a: a.nas("lab-1mF", out="unused", dask="host:99999")),
], ids=["workers0", "workers-3", "oracle-functional", "top0", "budget0", "nas-workers0", "seed-1", "requirement-1",
        "requirement-nan", "sweep-dask", "nas-dask"])
def test_the_cli_refuses_what_the_api_refuses_with_the_same_message(cli, call, tmp_path, monkeypatch):
    """One check per option (aidi.analysis.api's), made before any work: the CLI's message is the API's with the
    option as it is typed (--top for top_k, --requirement for requirement_s)."""
    import aidi
    from aidi.analysis import api

    monkeypatch.chdir(tmp_path)  # nothing may be written: no out/ folder, no "unused" folder
    got, want = _cli_error(*cli), _api_error(call, aidi)
    got, want = (m.split(" (use ")[0] for m in (got, want))  # the hint says how to fix it in each one's terms
    param, _, rest = want.partition(":")
    assert got == f"{api.option_name(param, cli=True)}:{rest}" and got.partition(":")[0] in cli
    assert not any(tmp_path.iterdir())


def test_the_cli_choices_are_the_api_choices():
    from aidi.analysis import api, cli, nas_run
    from aidi.models.nas import CONTROLLERS

    for enum, choices in ((cli.Engine, api.ENGINES), (cli.Controller, CONTROLLERS), (cli.Dataset, nas_run.DATASETS)):
        assert sorted(e.value for e in enum) == sorted(choices), enum


def test_oracle_runs_are_cost_only_by_default_and_des_functional():
    """--functional is tri-state: unset, des computes the output and the oracle does not (no silent drop)."""
    import aidi
    from aidi.analysis import api

    assert [api.run_options(e, None) for e in ("des", "oracle")] == [True, False]
    assert api.run_options("oracle", False) is False and api.run_options("des", False) is False
    oracle = run_json("run", "lab-1mF", "--engine", "oracle")
    assert "output" not in oracle or oracle["output"] is None
    assert "output_matches_reference" not in oracle or oracle["output_matches_reference"] is None
    assert _cli_error("run", "lab-1mF", "--engine", "bogus").startswith("Invalid value for '--engine'")
    assert _api_error(lambda: aidi.run("lab-1mF", engine="bogus")) == "engine: expected one of des, oracle, got 'bogus'"


# --------------------------------------------------------------------------- start-up: cost-only runs load no torch
#: libraries a cost-only command may do without: the model's (torch, the digits data set) and, where no file is
#: read as a table and no SimPy model runs, pandas and SimPy (each 0.1-0.6 s of start-up); scipy.linalg, which
#: numba's first dispatch would import to probe for BLAS (0.4 s; aidi/__init__.py's import hook skips it)
HEAVY = ("torch", "sklearn", "sklearn.datasets", "pandas", "simpy", "scipy.linalg")
_IMPORTS = """
import json, sys
from typer.testing import CliRunner
from aidi.analysis.cli import app
r = CliRunner().invoke(app, sys.argv[1:] + ["--json"])
heavy = sorted(m for m in %r if m in sys.modules)
print(json.dumps({"exit": r.exit_code, "heavy": heavy, "out": json.loads(r.stdout) if r.stdout else None}))
""" % (HEAVY,)


def _imports(*args) -> dict:
    r = subprocess.run([sys.executable, "-c", _IMPORTS, *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args,uses", [(["run", "lab-1mF", "--engine", "oracle", "--no-functional"], []),
                                       (["run", "lab-1mF", "--engine", "oracle"], []),
                                       (["run", "rf-intermittent", "--engine", "des", "--no-functional"],
                                        ["pandas", "simpy"]),  # a trace file (CSV) and the SimPy model
                                       (["check", "lab-1mF"], ["pandas"]),  # its unit table
                                       (["sweep", "lab-1mF", "--set", "capacitor_F=1e-3,2e-3"], ["pandas"])],
                         ids=["oracle-no-functional", "oracle", "des-no-functional", "check", "sweep"])
def test_a_cost_only_command_imports_no_torch_and_reads_no_data_set(args, uses):
    """A cost-only command needs the network's shapes only: torch and scikit-learn (the digits data set) are
    never imported; the run says nothing of accuracy, which it did not measure.  A cost-only oracle run of a
    scenario without a trace file imports neither pandas nor SimPy either (:data:`HEAVY`: what it may not)."""
    got = _imports(*args)
    assert got["exit"] == 0 and set(got["heavy"]) <= set(uses), got
    if args[0] == "run":
        assert got["out"]["completed"] and "float_accuracy" not in got["out"] and "q15_accuracy" not in got["out"]


@pytest.mark.slow
def test_numba_still_finds_blas_where_a_kernel_needs_it():
    """The counterpart of the BLAS probe skipped at start-up: after aidi's kernels ran, a numba function using
    ``np.dot`` still compiles against scipy's BLAS (imported then) and agrees with numpy."""
    code = """
import sys, numpy as np, numba
from typer.testing import CliRunner
from aidi.analysis.cli import app
assert CliRunner().invoke(app, ["run", "lab-1mF", "--engine", "oracle", "--no-functional"]).exit_code == 0
assert "scipy.linalg" not in sys.modules
import numba.np.arraymath as am
a = np.arange(12.0).reshape(3, 4)
print(am._HAVE_BLAS, float(numba.njit(lambda x, y: np.dot(x, y))(a, a.T).sum()) == float((a @ a.T).sum()),
      "scipy.linalg" in sys.modules)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "True", "True"]


@pytest.mark.slow
def test_a_functional_run_loads_the_model_the_cost_only_one_skips():
    """The counterpart (so the check above can fail): a functional run imports torch and reports accuracies;
    its cost equals the cost-only run's."""
    full = _imports("run", "lab-1mF", "--engine", "des")
    cost = _imports("run", "lab-1mF", "--engine", "des", "--no-functional")
    assert "torch" in full["heavy"] and not {"torch", "sklearn"} & set(cost["heavy"])
    assert full["out"]["output_matches_reference"] is True and 0.5 < full["out"]["q15_accuracy"] <= 1.0
    for key in ("latency_s", "power_cycles", "units_executed"):
        assert full["out"][key] == cost["out"][key]


def test_a_cost_only_run_still_refuses_an_unknown_weights_source(tmp_path):
    p = _write(tmp_path, BASE + '\n[model]\nweights = "trained:imagenet"\n')
    r = runner.invoke(app, ["run", str(p), "--engine", "oracle", "--json"])
    assert r.exit_code == 2 and r.stdout == ""
    assert r.stderr.strip() == "aidi: error: bad.toml: model.weights: unknown dataset 'imagenet' (one of " \
        "digits, synthetic, cifar10, tinyimagenet, fashion-mnist, mnist)"
    p = _write(tmp_path, BASE + '\n[model]\ninput = [3, 8, 8]\n')
    r = runner.invoke(app, ["check", str(p)])
    assert r.exit_code == 2 and "model.weights: dataset 'digits' has input shape [1, 8, 8]" in r.stderr
