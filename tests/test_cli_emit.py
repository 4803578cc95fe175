"""`aidi emit-c` as a user runs it: the firmware computes what `aidi run --functional` computes."""

import json

import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.emit import build as mk

runner = CliRunner()


def test_emit_c_build_matches_functional_run(tmp_path):
    ok, why = mk.toolchain_gate("host")
    if not ok:
        if mk.toolchain_required():
            pytest.fail(why)
        pytest.skip(why)
    r = runner.invoke(app, ["run", "rf-intermittent", "--json"])
    run = json.loads(r.stdout)
    r = runner.invoke(app, ["emit-c", "rf-intermittent", "--out", str(tmp_path / "c"), "--build", "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["expected_output"] == run["output"]
    assert res["host"]["output"] == run["output"]
    assert (tmp_path / "c" / "README.md").exists() and (tmp_path / "c" / "Makefile").exists()
    m = res["msp430"]
    if "skipped" in m:
        if mk.toolchain_required():
            pytest.fail(m["skipped"])
        pytest.skip(m["skipped"])
    assert m["output"] == run["output"] and m["matches_reference"]
    assert m["fits"] and m["fram_bytes"] > 0
    assert len(m["cycles_per_layer"]) == res["layers"]
    assert all(r["mspdebug_cycles"] > 0 for r in m["cycles_per_layer"])


def test_emit_c_bad_backend_one_line(tmp_path):
    r = runner.invoke(app, ["emit-c", "rf-intermittent", "--out", str(tmp_path), "--backend", "gpu"])
    assert r.exit_code == 2 and "--backend" in r.stderr
