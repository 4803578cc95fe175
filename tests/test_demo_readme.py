"""What a newcomer runs: the demo (quick) and every example command in the README."""

import json
import re
import shlex
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.analysis.demo import DISPATCH_SCENARIO, STEPS
from aidi.analysis.progress import ENV
from tests.conftest import DATASET_PACKAGES

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def readme_commands() -> list[str]:
    """`aidi ...` lines of the README's indented command blocks (comments stripped)."""
    text = (ROOT / "README.md").read_text()
    cmds = []
    for line in text.splitlines():
        m = re.match(r"^ {4}(aidi [^#]+?)\s*(#.*)?$", line)
        if m:
            cmds.append(m.group(1).strip())
    return cmds


def test_readme_has_commands():
    cmds = readme_commands()
    assert len(cmds) >= 6
    for verb in ("run", "check", "sweep", "demo", "bench"):
        assert any(c.split()[1] == verb for c in cmds), verb


def needs(cmd: str) -> list:
    """The optional tools and data sets a README command needs, as the markers of tests/conftest.py (each
    skips with a reason where its tool or data is missing): a --dataset with a Debian package, a static
    --format (a browser), a C build (emit-c --build; demo builds its firmware)."""
    args = shlex.split(cmd)[1:]
    opts = dict(zip(args, args[1:]))
    marks = []
    if opts.get("--dataset") in DATASET_PACKAGES:
        marks.append(pytest.mark.dataset(opts["--dataset"]))
    if set(opts.get("--format", "html").split(",")) - {"html"}:
        marks.append(pytest.mark.chromium)
    if args[0] == "demo" or (args[0] == "emit-c" and "--build" in args):
        marks.append(pytest.mark.toolchain("host"))
    if args[0] == "emit-c" and "--microbench" in args and "--build" in args:  # counts come from mspdebug's run
        marks.append(pytest.mark.toolchain("sim"))
    return marks


def quick_args(cmd: str) -> list[str]:
    """A README command's arguments as the tests run them: `demo` and `nas` with ``--quick`` (small training
    budgets) and a `nas` ``--budget`` capped at 4 evaluations; the commands and their outputs are what is tested."""
    args = shlex.split(cmd)[1:]
    if args[0] in ("demo", "nas"):
        args.append("--quick")
    if args[0] == "nas" and "--budget" in args:
        k = args.index("--budget") + 1
        args[k] = str(min(int(args[k]), 4))
    return args


#: README commands whose run one test makes once and reads in full, by :func:`run_elsewhere`'s name: the demo
#: (test_demo_quick_report_has_every_section), the comparison (tests/test_nas_search.py::test_readme_compare_json)
RUN_ELSEWHERE = ("compare", "demo")


def run_elsewhere(cmd: str) -> str | None:
    args = shlex.split(cmd)[1:]
    if args[0] == "demo":
        return "demo"
    if args[:2] == ["nas", "lab-1mF"] and "--compare" in args and "--out" not in args:
        return "compare"
    return None


def test_the_commands_run_elsewhere_are_in_the_readme():
    """Each command left out of the parametrization below is in the README, once (else its test reads nothing)."""
    assert sorted(filter(None, map(run_elsewhere, readme_commands()))) == list(RUN_ELSEWHERE)


@pytest.mark.slow
@pytest.mark.parametrize("cmd", [pytest.param(c, marks=needs(c), id=c) for c in readme_commands()
                                 if run_elsewhere(c) is None])
def test_readme_command_runs(cmd, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative --out folders land in tmp
    args = quick_args(cmd)
    if args[0] == "run" and args[1].startswith("out/"):  # a file written by an earlier README command
        r = runner.invoke(app, ["nas", "lab-1mF", "--budget", "4", "--quick", "--out", "out/nas"])
        assert r.exit_code == 0, r.output
    if "model.onnx" in args or any(a.startswith("mynet/") for a in args):  # the "Your own network" files
        own_network_files(tmp_path, imported="model.onnx" not in args)
    if args[0] == "calibrate":  # a board's microbench counts and EnergyTrace export (known synthetic constants)
        import numpy as np

        from tests.test_calibrate import counts_text, energytrace_csv, truth

        cyc, energy, _, idle = truth(np.random.default_rng(0))
        (tmp_path / "counts.txt").write_text(counts_text(cyc))
        (tmp_path / "et.csv").write_text(energytrace_csv(cyc, energy, idle))
    r = runner.invoke(app, args)
    assert r.exit_code == 0, f"{cmd}\n{r.output}"


def own_network_files(folder: Path, imported: bool) -> None:
    """What a user of README's "Your own network" has before its commands: ``model.onnx`` (a small CNN on 8x8
    inputs with a rectangular kernel, exported by torch.onnx as tests/test_onnx_import.py builds it; small enough
    for the mspdebug build), ``calib.npy`` and ``x.npy``; with ``imported``, also the ``mynet/`` folder that its
    ``aidi import`` line writes."""
    import numpy as np
    import torch

    from aidi.analysis.importer import torch_to_onnx
    from tests.test_onnx_import import calibration, small_cnn, torch_model

    shape = (1, 1, 8, 8)
    blob = torch_to_onnx(torch_model(small_cnn), torch.zeros(shape))
    (folder / "model.onnx").write_bytes(blob)
    calib = calibration(shape)
    np.save(folder / "calib.npy", calib)
    np.save(folder / "x.npy", calib[0])
    if imported:
        r = runner.invoke(app, ["import", "model.onnx", "--calibration", "calib.npy", "--sample-input", "x.npy",
                                "--out", "mynet"])
        assert r.exit_code == 0, r.output


@pytest.mark.slow
@pytest.mark.toolchain("host")  # the demo builds its firmware on the host
def test_demo_quick_report_has_every_section(tmp_path, monkeypatch):
    """The README's `aidi demo` (quick, one run for all of this): its report, its summary, its progress lines."""
    monkeypatch.delenv(ENV, raising=False)  # progress as a user sees it
    (cmd,) = [c for c in readme_commands() if run_elsewhere(c) == "demo"]
    args = quick_args(cmd)
    args[args.index("--out") + 1] = str(tmp_path)
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, f"{cmd}\n{r.output}"
    # the progress lines: every step, the sweep's points; one copy of plotly.js, shared by every figure
    assert STEPS == 6  # two scenarios, greedy vs energy_aware, the sweep, the NAS, the firmware
    for k in range(1, STEPS + 1):
        assert f"aidi demo: step {k}/{STEPS}: " in r.stderr
    assert f"aidi demo: steps {STEPS}/{STEPS} (100%)" in r.stderr and "aidi demo: sweep: points 4/4 (100%)" in r.stderr
    assert [p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.js")] == ["plotly.min.js"]
    assert 'src="../plotly.min.js"' in (tmp_path / "solar-tmy3" / "voltage.html").read_text()
    html = (tmp_path / "report.html").read_text()
    for title in ("solar-tmy3: voltage and energy", "rf-intermittent: voltage and energy", "Latency vs capacitor",
                  "Schedulability", "Emitted firmware", "NAS: ours vs the baselines",
                  f"Intermittent execution: greedy vs energy_aware on {DISPATCH_SCENARIO}"):
        assert title in html, title
    assert "<script" in html and not re.search(r"<script[^>]+src=.http", html)  # self-contained, offline
    assert (tmp_path / "rf-intermittent" / "events.csv").exists()
    # intermittent execution is shown, not assumed: greedy browns out and re-executes, and the output is
    # bit-exact under each policy
    summary = json.loads(r.stdout)
    rows = {row["dispatch"]: row for row in summary["steps"]["dispatch"]["rows"]}
    assert set(rows) == {"greedy", "energy_aware"}
    g, e = rows["greedy"], rows["energy_aware"]
    assert g["brown_outs"] >= 1 and g["units_reexecuted"] >= 1 and g["wasted_J"] > 0 and g["power_cycles"] > 1
    assert all(row["completed"] and row["output_matches_reference"] for row in rows.values())
    assert e["brown_outs"] < g["brown_outs"] and e["wait_J"] > 0
    events = pd.read_csv(tmp_path / f"{DISPATCH_SCENARIO}-greedy" / "events.csv")
    assert (events["outcome"] == "lost").sum() == g["units_reexecuted"]
    # the console summary (stderr with --json) has the comparison, and '[sim]' is text, not markup
    assert f"intermittent execution on {DISPATCH_SCENARIO}" in r.stderr
    assert "no deadline set ([sim] deadline_s)" in " ".join(r.stderr.split())
