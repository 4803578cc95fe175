"""aidi calibrate: counts and EnergyTrace files parsed, constants recovered by NNLS from synthetic
measurements of known constants, platform files written and read back by a scenario, bad input exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidi.analysis import calibrate as cal
from aidi.scenarios import loader
from aidi.sim.platform import Linear, PlatformFileError, get_platform, load_platform_file

MCLK = 16e6
TIMER = 42
LENGTHS = (2, 8, 32, 64, 128)
CPU_LENGTHS = (4, 16, 64)
SCENARIOS = Path(loader.__file__).parent


def truth(rng):
    """Known constants: cycles (slope, offset) per primitive, energy per run (slope, offset), power, idle."""
    cyc = {p: (float(rng.uniform(1, 80)), float(rng.uniform(5, 700))) for p in cal.LINEAR}
    cyc |= {p: (float(rng.uniform(5, 900)), float(rng.uniform(5, 60))) for p in cal.PER_OP}
    cyc["measure"] = (0.0, float(rng.uniform(10, 800)))
    cyc["commit"] = (float(rng.uniform(5, 30)), float(rng.uniform(5, 30)))
    power = float(rng.uniform(2e-3, 8e-3))  # W while active
    # energies near P * cycles / MCLK (bursts of similar power, as on an MCU), each scaled by its own factor
    energy = {p: (s * power / MCLK * f, o * power / MCLK * f)
              for p, (s, o) in cyc.items() for f in [float(rng.uniform(0.8, 1.25))]}
    for p in ("cpu_abs", "cpu_copy", "cpu_mac", "commit"):  # no energy constant: cycles x energy per cycle
        s, o = cyc[p]
        energy[p] = (s * power / MCLK, o * power / MCLK)
    return cyc, energy, power, float(rng.uniform(1e-6, 3e-5))


def plan():
    rows = [("measure", 1), ("commit", 4)]
    rows += [(p, n) for p in cal.LINEAR for n in LENGTHS]
    rows += [(p, n) for p in cal.PER_OP for n in CPU_LENGTHS]
    return rows


def counts_text(cyc, repeats=2000, bursts=True):
    lines = ["aidi-microbench 1", f"mclk_hz {int(MCLK)}", "build synthetic", f"timer 0 {TIMER}"]
    for p, n in plan():
        s, o = cyc[p]
        lines.append(f"{p} {n} {round(TIMER + s * n + o)}")
    if bursts:
        lines += [f"burst {p} {n} {repeats}" for p, n in plan()]
    return "\n".join(lines + ["end"]) + "\n"


def energytrace_csv(cyc, energy, idle_W, repeats=2000, step_s=1e-3, gap_s=0.05, v=3.0, header=None):
    """An EnergyTrace export of the firmware's energy pass: idle gaps, then one burst per plan row of
    ``repeats`` runs at the synthetic constants' cycles and energies; samples every ``step_s`` (EnergyTrace's
    are ~270 us apart; 1 ms keeps the files small)."""
    t, e = [0.0], [0.0]  # breakpoints of the cumulative energy (piecewise linear)
    for p, n in plan():
        t.append(t[-1] + gap_s)
        e.append(e[-1] + idle_W * gap_s)
        s, o = cyc[p]
        d = repeats * round(s * n + o) / MCLK  # the rounded cycles the counts file carries
        es, eo = energy[p]
        t.append(t[-1] + d)
        e.append(e[-1] + idle_W * d + repeats * (es * n + eo))
    t.append(t[-1] + gap_s)
    e.append(e[-1] + idle_W * gap_s)
    ts = np.arange(step_s, t[-1], step_s)
    es = np.interp(ts, t, e)
    p = np.diff(np.concatenate(([0.0], es))) / step_s
    rows = [header or "Time (ns),Current (nA),Voltage (mV),Energy (uJ)"]
    rows += [f"{a * 1e9:.0f},{pw / v * 1e9:.6g},{v * 1e3:.1f},{en * 1e6:.9g}" for a, pw, en in zip(ts, p, es)]
    return "\n".join(rows) + "\n"


def aidi(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "aidi.analysis.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


# -- counts: parse and fit -------------------------------------------------------------------------------------------
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_cycle_fit_recovers_known_constants(tmp_path, seed):
    cyc, *_ = truth(np.random.default_rng(seed))
    f = tmp_path / "counts.txt"
    f.write_text(counts_text(cyc))
    fit = cal.calibrate(cal.read_counts(f))
    for p, (field, _) in cal.LINEAR.items():
        np.testing.assert_allclose(fit.values[field], cyc[p], rtol=0.02, atol=0.6)  # counts are whole cycles
    for p, (field, _) in cal.PER_OP.items():
        assert fit.values[field] == pytest.approx(cyc[p][0], rel=0.01, abs=0.05)
    assert fit.values["measure_s"] == pytest.approx(round(cyc["measure"][1]) / MCLK)
    assert fit.values["commit_words"] == 4
    fitted = [r for r in fit.residuals if not r["what"].startswith("check")]
    assert max(abs(r["error"]) for r in fitted) < 0.02


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_energytrace_fit_recovers_known_energies(tmp_path, seed):
    cyc, energy, power, idle = truth(np.random.default_rng(seed))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    (tmp_path / "et.csv").write_text(energytrace_csv(cyc, energy, idle))
    fit = cal.calibrate(cal.read_counts(tmp_path / "c.txt"), cal.read_energytrace(tmp_path / "et.csv"))
    for p, (_, field) in {**cal.LINEAR, **cal.PER_OP}.items():
        if field is None:
            continue
        want = energy[p] if p in cal.LINEAR else energy[p][0]
        np.testing.assert_allclose(fit.values[field], want, rtol=0.03, atol=1e-12)
    # the rest: energy per cycle, the cycles rounded to whole counts
    assert fit.values["active_power_W"] == pytest.approx(power, rel=0.02)
    assert fit.values["measure_energy_J"] == pytest.approx(energy["measure"][1], rel=0.03)


def test_energytrace_in_other_units_and_column_order_gives_the_same_fit(tmp_path):
    cyc, energy, power, idle = truth(np.random.default_rng(5))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    (tmp_path / "a.csv").write_text(energytrace_csv(cyc, energy, idle))
    text = energytrace_csv(cyc, energy, idle).splitlines()
    conv = ["Energy (nJ),Voltage (V),Time (us),Current (uA)"]
    for row in text[1:]:
        tn, ina, vmv, euj = map(float, row.split(","))
        conv.append(f"{euj * 1e3!r},{vmv / 1e3!r},{tn / 1e3!r},{ina / 1e3!r}")
    (tmp_path / "b.csv").write_text("\n".join(conv) + "\n")
    counts = cal.read_counts(tmp_path / "c.txt")
    a = cal.calibrate(counts, cal.read_energytrace(tmp_path / "a.csv")).values
    b = cal.calibrate(counts, cal.read_energytrace(tmp_path / "b.csv")).values
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6)


def test_platform_file_round_trip_and_a_scenario_runs_on_it(tmp_path):
    cyc, energy, power, idle = truth(np.random.default_rng(1))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    (tmp_path / "et.csv").write_text(energytrace_csv(cyc, energy, idle))
    r = aidi("calibrate", "c.txt", "--energytrace", "et.csv", "--out", "board.toml", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    p = load_platform_file(tmp_path / "board.toml")
    assert p.name == "board"
    assert p.lea_mac_cycles == Linear(*res["values"]["lea_mac_cycles"])
    assert p.active_power_W == pytest.approx(res["values"]["active_power_W"])
    assert p.cpu_sw == get_platform("msp430fr5994").cpu_sw  # not measured: the base's
    assert "aidi calibrate c.txt" in p.sources["lea_mac_cycles"]
    # a scenario names the file relative to itself
    sc_dir = tmp_path / "sc"
    sc_dir.mkdir()
    text = (SCENARIOS / "continuous.toml").read_text()
    assert "[device]" in text
    (sc_dir / "s.toml").write_text(text.replace("[device]", '[device]\nplatform = "../board.toml"', 1)
                                   .replace('platform = "msp430fr5994"\n', ""))
    sc = loader.load(sc_dir / "s.toml")
    assert sc.device.make_platform() == p
    base = loader.load(SCENARIOS / "continuous.toml")
    assert sc.digest() != base.digest()
    r = aidi("run", sc_dir / "s.toml", "--engine", "oracle", "--json")
    assert r.returncode == 0, r.stderr
    r0 = aidi("run", SCENARIOS / "continuous.toml", "--engine", "oracle", "--json")
    assert json.loads(r.stdout)["latency_s"] != json.loads(r0.stdout)["latency_s"]


def test_printed_residuals_name_every_measurement(tmp_path):
    cyc, *_ = truth(np.random.default_rng(2))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    r = aidi("calibrate", "c.txt", "--out", "b.toml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    for p, n in plan():
        assert any(line.split()[:2] == [p, str(n)] for line in lines), (p, n)
    assert any(line.startswith("largest |error|") for line in lines)


# -- bad input: one line naming the file and line or key, exit 2 ----------------------------------------------------
GOOD = counts_text(truth(np.random.default_rng(0))[0], bursts=False).splitlines()


@pytest.mark.parametrize("lines,match", [
    (["aidi-microbench 2"] + GOOD[1:], r"c\.txt: line 1: expected the header"),
    (GOOD[:4] + ["lea_mac 2"] + GOOD[4:], r"c\.txt: line 5: malformed 'lea_mac' line"),
    (GOOD[:4] + ["lea_mac two 300"] + GOOD[4:], r"c\.txt: line 5: N must be an integer"),
    (GOOD[:4] + ["lea_mac 2 -3"] + GOOD[4:], r"c\.txt: line 5: cycles must be >= 0"),
    (GOOD[:4] + ["fft 2 300"] + GOOD[4:], r"c\.txt: line 5: unknown primitive 'fft'"),
    (GOOD[:4] + ["lea_mac 2 40"] + GOOD[4:], r"c\.txt: line 5: lea_mac 2: 40 cycles, not above"),
    (GOOD[:-1], r"c\.txt: line \d+: no 'end' line"),
    ([GOOD[0]] + GOOD[2:], r"c\.txt: no 'mclk_hz' line"),
    (GOOD + ["lea_mac 2 300"], r"c\.txt: line \d+: text after the 'end' line"),
    ([line for line in GOOD if not line.startswith("lea_mac ") or line.startswith("lea_mac 8 ")],
     r"c\.txt: line \d+: lea_mac_cycles: needs measurements at 2 or more lengths"),
])
def test_bad_counts_file_names_file_and_line(tmp_path, lines, match):
    (tmp_path / "c.txt").write_text("\n".join(lines) + "\n")
    with pytest.raises(cal.CalibrationError, match=match):
        cal.run(tmp_path / "c.txt", None, tmp_path / "b.toml")
    assert not (tmp_path / "b.toml").exists()


def test_bad_counts_file_exits_2_in_one_line(tmp_path):
    (tmp_path / "c.txt").write_text("\n".join(GOOD[:4] + ["fft 2 300"] + GOOD[4:]) + "\n")
    r = aidi("calibrate", "c.txt", "--out", "b.toml", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in r.stderr
    assert err[0].startswith("aidi: error: c.txt: line 5: unknown primitive 'fft'"), err
    assert not (tmp_path / "b.toml").exists()


@pytest.mark.parametrize("edit,match", [
    (lambda t: t.replace("Current (nA)", "Current (pA)", 1), r"et\.csv: line 1: column 'Current \(pA\)': unknown unit"),
    (lambda t: t.replace("Voltage (mV),", "", 1), r"et\.csv: line 2: 3 fields, the header has 4|et\.csv: line 1: no voltage"),
    (lambda t: t.replace("Time (ns)", "Stamp", 1), r"et\.csv: line 1: column 'Stamp'"),
    (lambda t: "\n".join(t.splitlines()[:5] + ["1,2,3,x"] + t.splitlines()[5:]), r"et\.csv: line 6: energy 'x' is not"),
    (lambda t: "\n".join(t.splitlines()[:5] + [t.splitlines()[4]] + t.splitlines()[5:]), r"et\.csv: line 6: time .* does not increase"),
    (lambda t: "\n".join(t.splitlines()[:400]), r"et\.csv: \d+ bursts in the recording, c\.txt lists \d+"),
])
def test_bad_energytrace_file_names_file_and_line(tmp_path, edit, match):
    cyc, energy, power, idle = truth(np.random.default_rng(3))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    (tmp_path / "et.csv").write_text(edit(energytrace_csv(cyc, energy, idle)))
    with pytest.raises(cal.CalibrationError, match=match):
        cal.run(tmp_path / "c.txt", tmp_path / "et.csv", tmp_path / "b.toml")
    assert not (tmp_path / "b.toml").exists()


def test_bad_energytrace_file_exits_2_in_one_line(tmp_path):
    cyc, energy, power, idle = truth(np.random.default_rng(3))
    (tmp_path / "c.txt").write_text(counts_text(cyc))
    (tmp_path / "et.csv").write_text(energytrace_csv(cyc, energy, idle).replace("Energy (uJ)", "Energy (kJ)"))
    r = aidi("calibrate", "c.txt", "--energytrace", "et.csv", "--out", "b.toml", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert r.stderr.strip().splitlines() == [
        "aidi: error: et.csv: line 1: column 'Energy (kJ)': unknown unit 'kJ' (known: j, mj, uj, µj, nj)"]


@pytest.mark.parametrize("text,match", [
    ("lea_mac_cycle = { slope = 1.0, offset = 2.0 }\n", r"lea_mac_cycle: unknown key \(did you mean 'lea_mac_cycles'\?\)"),
    ("lea_mac_cycles = 3\n", r"lea_mac_cycles: expected a table"),
    ("lea_mac_cycles = { slope = -1.0, offset = 2.0 }\n", r"lea_mac_cycles\.slope: expected a finite number >= 0"),
    ('base = "msp430"\n', r"base: unknown platform 'msp430'"),
    ("format = 2\n", r"format: this aidi reads format 1"),
    ("commit_words = 0\n", r"commit_words: expected an integer >= 1"),
    ("[cpu_sw]\nmac = 1.0\n", r"cpu_sw\.\w+: missing key"),
    ("mclk_hz = 0\n", r"mclk_hz: must be > 0"),
    ("a = [\n", r"not valid TOML"),
])
def test_bad_platform_file_names_file_and_key(tmp_path, text, match):
    f = tmp_path / "board.toml"
    f.write_text(text)
    with pytest.raises(PlatformFileError, match=match):
        load_platform_file(f)
    sc = (SCENARIOS / "continuous.toml").read_text().replace('platform = "msp430fr5994"\n', "")
    (tmp_path / "s.toml").write_text(sc.replace("[device]", '[device]\nplatform = "board.toml"', 1))
    with pytest.raises(loader.ScenarioError, match=r"s\.toml: device\.platform: .*board\.toml: .*" + match):
        loader.load(tmp_path / "s.toml")


def test_a_scenario_with_a_bad_platform_file_exits_2_in_one_line(tmp_path):
    (tmp_path / "board.toml").write_text("lea_mac_cycle = 1\n")
    sc = (SCENARIOS / "continuous.toml").read_text().replace('platform = "msp430fr5994"\n', "")
    (tmp_path / "s.toml").write_text(sc.replace("[device]", '[device]\nplatform = "board.toml"', 1))
    r = aidi("check", tmp_path / "s.toml")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"aidi: error: s.toml: device.platform: {tmp_path / 'board.toml'}: lea_mac_cycle: unknown key (did you mean "
        "'lea_mac_cycles'?)"]


def test_missing_platform_file_and_unknown_base():
    with pytest.raises(PlatformFileError, match="nowhere.toml: platform file not found"):
        load_platform_file("/nowhere/nowhere.toml")
    with pytest.raises(cal.UserError, match="--base: unknown platform"):
        cal.run("x", None, "y", base="nope")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from([p for p in cal.PRIMITIVES if p != "timer"]),
                               st.integers(0, 500), st.integers(TIMER + 1, 10**6)), min_size=1, max_size=30),
       comment=st.booleans(), crlf=st.booleans())
def test_counts_parse_round_trip(tmp_path, rows, comment, crlf):
    """Any well-formed counts text parses back to its rows, whatever its line ends and comments."""
    lines = ["aidi-microbench 1", "mclk_hz 8000000", "build some words here", f"timer 0 {TIMER}"]
    lines += [f"{p} {n} {c}" + (f"  # {p}" if comment else "") for p, n, c in rows] + ["end"]
    f = tmp_path / "c.txt"
    f.write_bytes(("\r\n" if crlf else "\n").join(lines).encode() + b"\n")
    c = cal.read_counts(f)
    assert c.mclk_hz == 8e6 and c.build == "some words here" and c.timer == TIMER
    assert [(r.primitive, r.n, r.value) for r in c.rows if r.primitive != "timer"] == list(rows)
    assert [r.where for r in c.rows][1:] == [f"{f}: line {k}" for k in range(5, 5 + len(rows))]
