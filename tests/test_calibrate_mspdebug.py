"""aidi calibrate end to end, with mspdebug's simulator standing in for the board.

``aidi emit-c --microbench --build`` builds the microbench with clang-14/ld.lld-14 and runs it on mspdebug
(its timer and console devices); ``aidi calibrate`` fits a platform file from the counts; a scenario names
the file and runs.  The fitted constants must reproduce every fitted count within TOLERANCE (the primitives
are linear in N on the simulator, except the 32-bit division, whose shift-and-subtract loop depends on the
operands, and the running maximum, whose branch does); the commit, which the cost model charges as a DMA
write of ``commit_words`` rather than fitting it, within COMMIT_TOLERANCE.  mspdebug 0.22 counts classic
MSP430 cycles and has no DMA, LEA or FRAM wait states (the microbench's DMA and LEA lines time the CPU copy and
the C emulation of msp_mac_q15 there): this calibrates aidi to the simulator, not to silicon.

Gated by conftest's ``toolchain`` marker (fails instead of skipping under AIDI_REQUIRE_TOOLCHAIN=1).
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from aidi.analysis import calibrate as cal
from aidi.scenarios import loader
from aidi.sim.platform import Linear, load_platform_file

pytestmark = pytest.mark.toolchain("sim")

TOLERANCE = 0.02
COMMIT_TOLERANCE = 0.25
SCENARIO = Path(loader.__file__).parent / "continuous.toml"


def aidi(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aidi.analysis.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=900)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory):
    root = tmp_path_factory.mktemp("calib")
    r = aidi("emit-c", SCENARIO, "--out", root / "c", "--build", "--microbench", "--json")
    assert r.returncode == 0, r.stderr
    mb = json.loads(r.stdout)["microbench"]
    r = aidi("calibrate", mb["counts_file"], "--out", root / "board.toml", "--json")
    assert r.returncode == 0, r.stderr
    return root, mb, json.loads(r.stdout)


def test_the_microbench_counts_every_primitive(calibrated):
    _, mb, _ = calibrated
    counts = cal.read_counts(mb["counts_file"])
    assert mb["measurements"] == len(counts.rows)
    assert counts.mclk_hz == 16e6 and "msp430-sim clang-14" in counts.build
    measured = {r.primitive for r in counts.rows}
    assert measured == set(cal.PRIMITIVES)
    assert {(b.primitive, b.n) for b in counts.bursts} == {(r.primitive, r.n) for r in counts.rows
                                                             if r.primitive != "timer"}
    # more work, more cycles: every primitive's count grows with N
    for p in (*cal.LINEAR, *cal.PER_OP):
        rows = sorted((r.n, r.value) for r in counts.rows if r.primitive == p)
        assert all(a[1] < b[1] for a, b in zip(rows, rows[1:])), (p, rows)


def test_fitted_constants_reproduce_the_counts(calibrated):
    _, _, res = calibrated
    fitted = [r for r in res["residuals"] if not r["what"].startswith("check")]
    bad = [f"{r['primitive']} {r['n']}: {r['error']:+.2%}" for r in fitted if abs(r["error"]) > TOLERANCE]
    assert not bad, bad
    commit = [r for r in res["residuals"] if r["primitive"] == "commit"]
    assert commit and all(abs(r["error"]) < COMMIT_TOLERANCE for r in commit), commit


def test_the_platform_file_holds_the_fit_and_a_scenario_runs_on_it(calibrated, tmp_path):
    root, mb, res = calibrated
    p = load_platform_file(root / "board.toml")
    assert p.lea_mac_cycles == Linear(*res["values"]["lea_mac_cycles"])
    assert p.cpu_mac_cycles == res["values"]["cpu_mac_cycles"]
    counts = cal.read_counts(mb["counts_file"])
    for r in counts.rows:  # the platform's own primitives give the counts back (less the empty interval)
        if r.primitive == "lea_mac":
            assert p.lea_mac(r.n).cycles == pytest.approx(counts.net(r), rel=TOLERANCE)
        if r.primitive == "dma_read":
            assert p.dma_read(r.n).cycles == pytest.approx(counts.net(r), rel=TOLERANCE)
    text = SCENARIO.read_text().replace('platform = "msp430fr5994"', f'platform = "{root / "board.toml"}"')
    (tmp_path / "s.toml").write_text(text)
    assert loader.load(tmp_path / "s.toml").device.make_platform() == p
    r = aidi("run", tmp_path / "s.toml", "--engine", "oracle", "--json")
    assert r.returncode == 0, r.stderr
    r0 = aidi("run", SCENARIO, "--engine", "oracle", "--json")
    # the simulator's LEA (the C emulation, ~59 cycles per element) is far slower than iNAS's LEA fit (1.5)
    assert json.loads(r.stdout)["latency_s"] > json.loads(r0.stdout)["latency_s"]
