"""``aidi explore``: the JSON contract, the same designs as ``aidi run``, one-line errors."""

import json

import pytest
from typer.testing import CliRunner

from aidi.analysis import pipeline
from aidi.analysis.cli import app
from aidi.analysis.errors import UserError
from aidi.analysis.explore import design_name, explore
from aidi.scenarios import loader

runner = CliRunner()


def test_explore_json_contract_and_same_designs_as_run():
    path = loader.load("weak-source").path
    r = runner.invoke(app, ["explore", str(path), "--top", "3", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert set(out) >= {"latency_s", "explore_wall_s", "layers"}
    assert out["explore_wall_s"] > 0
    (lay,) = out["layers"]
    assert len(lay["alternatives"]) == 3
    lats = [a["latency_s"] for a in lay["alternatives"]]
    assert lats == sorted(lats) and lats[0] == lay["latency_s"] == out["latency_s"]
    assert sum(lay["rejected"].values()) < lay["n_designs"]
    built = pipeline.build(loader.load(path))
    assert [design_name(lp.design) for lp in built.plan.layers] == [lay["design"]]
    res, _ = pipeline.simulate(built, engine="oracle")
    assert res["latency_s"] == pytest.approx(out["latency_s"], rel=1e-12)


def test_explore_text_and_multi_layer():
    res = explore("rf-intermittent", top_k=2)
    assert len(res.layers) == 4 and all(len(lay["alternatives"]) <= 2 for lay in res.layers)
    built = pipeline.build(loader.load("rf-intermittent"))
    assert [design_name(lp.design) for lp in built.plan.layers] == [lay["design"] for lay in res.layers]
    r = runner.invoke(app, ["explore", str(loader.load("weak-source").path), "--top", "1"])
    assert r.exit_code == 0 and "rejected: SRAM" in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["missing.toml"], "missing.toml: scenario file not found"),
    (["WEAK", "--exhaustive"], "exceed the limit"),
    (["WEAK", "--top", "0"], "--top"),
])
def test_explore_bad_input_is_one_line_exit_2(args, msg, tmp_path):
    weak = str(loader.load("weak-source").path)
    rf = str(loader.load("rf-intermittent").path)
    args = [weak if a == "WEAK" else a for a in args]
    if "--exhaustive" in args:
        args = [rf if a == weak else a for a in args]
    r = runner.invoke(app, ["explore", *args])
    assert r.exit_code == 2
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and msg in err and "Traceback" not in err


def test_explore_api_errors():
    with pytest.raises(UserError, match="--top"):
        explore("weak-source", top_k=0)
    sc = loader.load("weak-source").with_values(**{"device.sram_budget_bytes": 300})
    with pytest.raises(UserError, match=r"^weak-source.toml: layer 0 \(conv\): no execution design fits"):
        explore(sc)
