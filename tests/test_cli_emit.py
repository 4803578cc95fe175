"""`aidi emit-c` as a user runs it: the firmware computes what `aidi run --functional` computes."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app

runner = CliRunner()


@pytest.mark.toolchain("host")
def test_emit_c_build_matches_functional_run(tmp_path, require_toolchain):
    r = runner.invoke(app, ["run", "rf-intermittent", "--json"])
    run = json.loads(r.stdout)
    r = runner.invoke(app, ["emit-c", "rf-intermittent", "--out", str(tmp_path / "c"), "--build", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["backend"] == "lea"  # the scenario's backend, the one `aidi run` simulated
    assert res["expected_output"] == run["output"]
    assert res["host"]["output"] == run["output"]
    assert (tmp_path / "c" / "README.md").exists() and (tmp_path / "c" / "Makefile").exists()
    m = res["msp430"]
    if "skipped" in m:
        require_toolchain("msp430-sim")  # skips (fails under AIDI_REQUIRE_TOOLCHAIN=1) naming the missing tools
        pytest.fail(f"msp430 part skipped although its tools are present: {m['skipped']}")
    assert m["output"] == run["output"] and m["matches_reference"]
    assert m["fits"] and m["fram_bytes"] > 0
    assert len(m["cycles_per_layer"]) == res["layers"]
    assert all(r["mspdebug_cycles"] > 0 for r in m["cycles_per_layer"])


def test_emit_c_bad_backend_one_line(tmp_path):
    r = runner.invoke(app, ["emit-c", "rf-intermittent", "--out", str(tmp_path), "--backend", "gpu"])
    assert r.exit_code == 2 and "--backend" in r.stderr


@pytest.mark.toolchain("host")
def test_emit_c_build_runs_the_simulated_capacitor(tmp_path):
    """A constant-source scenario with dispatch = energy_aware: the report has the host harness's capacitor
    run under the scenario's source (no unit lost, output equal to the reference) and the policy."""
    shipped = Path(__file__).resolve().parents[1] / "scenarios" / "weak-source.toml"
    text = shipped.read_text().replace("[model]", '[execution]\ndispatch = "energy_aware"\n\n[model]')
    (tmp_path / "ws.toml").write_text(text)
    r = runner.invoke(app, ["emit-c", str(tmp_path / "ws.toml"), "--out", str(tmp_path / "c"), "--build", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    cap = res["host"]["capacitor"]
    assert res["dispatch"] == "energy_aware" and cap["source_W"] == 1e-3
    assert cap["units_lost"] == 0 and cap["threshold_waits"] > 0 and cap["boots"] == 1 and cap["matches_reference"]
