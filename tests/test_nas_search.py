"""End to end: `aidi nas` with each controller, the saved model, --compare, parallel maps, errors."""

import json
import tomllib

import pytest
from typer.testing import CliRunner

from aidi.analysis import nas_run, pipeline
from aidi.analysis.cli import app
from aidi.models.nas import CONTROLLERS

runner = CliRunner()


@pytest.fixture(scope="module", autouse=True)
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("AIDI_CACHE_DIR", str(tmp_path_factory.mktemp("nas-cache")))
    yield
    mp.undo()


def nas_json(*args) -> dict:
    r = runner.invoke(app, ["nas", *args, "--json", "--quick"])
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.stdout.splitlines() if ln.strip()]
    assert len(lines) == 1, f"--json must print exactly one line, got {len(lines)}"
    return json.loads(lines[0])


@pytest.mark.slow
@pytest.mark.parametrize("controller", CONTROLLERS)
def test_tiny_search_finds_only_feasible_candidates(controller, tmp_path):
    s = nas_json("lab-1mF", "--controller", controller, "--budget", "8", "--out", str(tmp_path))
    assert s["search"]["evaluations"] == 8
    assert s["pareto"], "some candidate must be feasible"
    assert all(p["feasible"] and p["latency_s"] <= s["requirement_s"] for p in s["pareto"])
    for f in s["finalists"]:  # every reported candidate re-simulated with the SimPy model
        assert f["des_completed"] and f["des_meets_requirement"] and f["des_matches_oracle"]
    c = s["chosen"]
    assert c is not None and (tmp_path / "model.pt").is_file() and (tmp_path / "scenario.toml").is_file()
    assert (tmp_path / "pareto.html").is_file() and (tmp_path / "history.csv").is_file()


@pytest.mark.slow
def test_chosen_model_loads_in_aidi_run(tmp_path):
    s = nas_json("lab-1mF", "--budget", "6", "--seed", "1", "--out", str(tmp_path))
    doc = tomllib.loads((tmp_path / "scenario.toml").read_text())
    assert doc["model"]["file"] == "model.pt" and doc["model"]["layers"] == s["chosen"]["layers"]
    assert len(doc["execution"]["tile"]) == len(s["chosen"]["designs"])
    r = runner.invoke(app, ["run", str(tmp_path / "scenario.toml"), "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["completed"] and res["output_matches_reference"]
    assert res["latency_s"] == pytest.approx(s["chosen"]["des_latency_s"], rel=1e-12)
    assert res["q15_accuracy"] == pytest.approx(s["chosen"]["q15_test_accuracy"])


@pytest.mark.slow
def test_parallel_workers_and_dask_give_the_same_search(tmp_path):
    kw = dict(controller="evolution", budget=8, seed=2, quick=True)
    a = nas_run.run_nas("lab-1mF", out=tmp_path / "a", **kw)
    b = nas_run.run_nas("lab-1mF", out=tmp_path / "b", workers=2, **kw)
    c = nas_run.run_nas("lab-1mF", out=tmp_path / "c", workers=2, dask="local", **kw)
    for other in (b, c):
        assert [p["arch_id"] for p in a["pareto"]] == [p["arch_id"] for p in other["pareto"]]
        assert [p["latency_s"] for p in a["pareto"]] == [p["latency_s"] for p in other["pareto"]]


@pytest.mark.slow
def test_readme_compare_json(tmp_path, monkeypatch):
    """The README's `aidi nas lab-1mF --compare` (as tests/test_demo_readme.py runs README commands: quick, budget
    capped at 4), its JSON."""
    from tests.test_demo_readme import quick_args, readme_commands, run_elsewhere

    (cmd,) = [c for c in readme_commands() if run_elsewhere(c) == "compare"]
    monkeypatch.chdir(tmp_path)  # its default --out folder lands in tmp
    args = quick_args(cmd)
    assert args[0] == "nas" and args[args.index("--budget") + 1] == "4"
    s = nas_json(*args[1:])
    assert len(s["table"]) == 3 and len(s["requirements_s"]) == 3
    assert s["requirements_s"] == sorted(s["requirements_s"])
    methods = {r["method"] for r in s["rows"]}
    assert methods == {"ours", "inas", "hwnas"}
    for r in s["rows"]:
        # ours: --budget evaluations; the baselines search within ours' wall-clock time (iNAS-style: trials)
        # (a loaded machine can spend a baseline's whole budget before its first trial ends: no winner then)
        assert r["search_s"] > 0
        assert r["evaluations"] == 4 if r["method"] == "ours" else (r["evaluations"] >= 1 or r["arch"] is None)
        if r["meets"]:
            assert r["des_meets_requirement"] and r["latency_s"] <= r["requirement_s"]


@pytest.mark.parametrize("args, msg", [
    (["--controller", "bogus"], "--controller"),
    (["--budget", "0"], "--budget"),
    (["--dataset", "bogus"], "--dataset"),
    (["--dataset", "mnist"], "dataset mnist needs --data-dir"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "train-images-idx3-ubyte"),
    (["--dataset", "cifar10"], "needs --data-dir"),
    (["--dataset", "cifar10", "--data-dir", "/nonexistent/cifar"], "data_batch_1"),
    (["--dataset", "tinyimagenet", "--data-dir", "/nonexistent/tiny"], "wnids.txt"),
])
def test_bad_input_is_one_line_exit_2(args, msg):
    r = runner.invoke(app, ["nas", "lab-1mF", *args])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and msg in err and "Traceback" not in r.output


def test_toml_writer_round_trips():
    sc = pipeline.load_scenario("lab-1mF")
    doc = json.loads(json.dumps(sc.raw))
    assert tomllib.loads(nas_run.dumps_toml(doc)) == doc
