"""Shepherd testbed recordings as a harvester source (issue 15 item 24): ``[harvester] kind = "shepherd"``.

Every recording here is made by the Shepherd project's own ``shepherd_core.Writer``, the writer the testbed
uses, so the files have the real layout (``data/time|voltage|current`` as raw integers with gain/offset).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shepherd_core import Reader, Writer
from shepherd_core.data_models.base.calibration import CalibrationPair, CalibrationSeries
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.scenarios.loader import ScenarioError
from aidi.sim import harvesters as hv
from aidi.sim.harvesters import TraceError

runner = CliRunner()
T0 = 1.7e9  # s: the recording's first timestamp (a Unix time, as on the testbed)
DT = 1e-5  # s: the testbed's sample period (100 kS/s)
POWER = '[power]\ncapacitor_F = 1e-4\nv_on = 3.0\nv_off = 2.0\n'


def record(path: Path, voltage, current, *, mode: str = "harvester", datatype: str = "ivsample",
           cal: CalibrationSeries | None = None, timestamps_ns=None, **kw) -> Path:
    """A recording made by shepherd-core's Writer (its file is cut to whole 10 000-sample chunks when the
    timestamps are evenly spaced)."""
    with Writer(path, mode=mode, datatype=datatype, cal_data=cal, compression=None, verbose=False, **kw) as w:
        w.store_hostname("artificial")
        v, i = np.asarray(voltage, float), np.asarray(current, float)
        if timestamps_ns is None:
            w.append_iv_data_si(T0, v, i)
        else:
            w.append_iv_data_raw(np.asarray(timestamps_ns, dtype="u8"), w._cal.voltage.si_to_raw(v),
                                 w._cal.current.si_to_raw(i))
    return path


def reader_samples(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(time from the first sample in s, power in W) of every sample, as the Shepherd Reader calibrates them."""
    with Reader(path, verbose=False) as r:
        cal = r.get_calibration_data()
        t = (r.ds_time[:].astype(np.int64) - int(r.ds_time[0])) * cal.time.gain
        p = cal.voltage.raw_to_si(r.ds_voltage[:].astype(float)) * cal.current.raw_to_si(r.ds_current[:].astype(float))
    return t, p


def assert_one_line(msg: str, *parts: str) -> None:
    assert "\n" not in msg.strip() and "Traceback" not in msg, repr(msg)
    for part in parts:
        assert part in msg, (part, msg)


def scenario(folder: Path, rec: Path, extra: str = "", sim: str = "") -> Path:
    p = folder / "scen.toml"
    p.write_text(POWER + f'[harvester]\nkind = "shepherd"\nfile = "{rec.name}"\n{extra}\n[sim]\nuntil_s = 600\n{sim}')
    return p


def test_ivsample_recording_becomes_window_averaged_power(tmp_path):
    n = 20_000
    i = np.where(np.arange(n) < n // 2, 1e-3, 0.5e-3)
    rec = record(tmp_path / "rec.h5", np.full(n, 2.0), i)
    seg = hv.read_shepherd(rec)
    t, p = reader_samples(rec)
    assert seg.kind == "shepherd" and seg.seg_t.shape == (20,)
    np.testing.assert_allclose(seg.seg_t, np.arange(20) * 0.01, rtol=0, atol=1e-12)
    np.testing.assert_allclose(seg.seg_p[:10], p[0], rtol=1e-12)
    np.testing.assert_allclose(seg.seg_p[10:], p[-1], rtol=1e-12)
    assert p[0] == pytest.approx(2e-3, rel=1e-6) and p[-1] == pytest.approx(1e-3, rel=1e-6)
    assert seg.period == pytest.approx(n * DT, rel=1e-12)  # the recording repeats with its duration
    once = hv.read_shepherd(rec, efficiency=0.5, repeat=False)
    assert once.period == 0.0
    np.testing.assert_allclose(once.seg_p, 0.5 * seg.seg_p, rtol=1e-15)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), per_window=st.integers(1, 4000), chunks=st.integers(1, 3))
def test_windows_of_whole_samples_are_sample_means(tmp_path_factory, seed, per_window, chunks):
    """A window of m samples has the mean of their V*I; the last window the mean of what is left."""
    rng = np.random.default_rng(seed)
    n = 10_000 * chunks
    rec = record(tmp_path_factory.mktemp("r") / "rec.h5", rng.uniform(0.5, 4.0, n), rng.uniform(0.0, 5e-3, n))
    seg = hv.read_shepherd(rec, window_s=per_window * DT)
    _, p = reader_samples(rec)
    k = -(-n // per_window)
    expect = [p[j * per_window:(j + 1) * per_window].mean() for j in range(k)]
    # window energies are differences of a running sum: exact to ~1e-12 of the largest power
    np.testing.assert_allclose(seg.seg_p, expect, rtol=1e-9, atol=1e-9 * p.max())
    widths = np.diff(np.append(seg.seg_t, seg.period))
    assert np.sum(seg.seg_p * widths) == pytest.approx(np.sum(p) * DT, rel=1e-12)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), window_s=st.floats(1e-5, 0.5), n=st.integers(2, 25_000))
def test_gaps_read_as_zero_keep_the_samples_energy_in_any_window(tmp_path_factory, seed, window_s, n):
    """gaps = "zero": each sample holds one sample period and a hole harvests nothing, across the Reader's
    10 000-sample chunks and a tail that is not a whole chunk; every window's power lies within 0 and the
    samples' largest power."""
    rng = np.random.default_rng(seed)
    steps = rng.choice([10_000, 10_000, 10_000, 20_000, 3_000_000], n - 1)  # ns: mostly 10 us, some gaps
    steps[-1] = 3_000_000  # uneven, so the Writer keeps every sample (it cuts only a 100 kS/s file to whole chunks)
    ts = int(T0 * 1e9) + np.concatenate(([0], np.cumsum(steps)))
    rec = record(tmp_path_factory.mktemp("r") / "rec.h5", rng.uniform(0.5, 4.0, n), rng.uniform(0.0, 5e-3, n),
                 timestamps_ns=ts)
    seg = hv.read_shepherd(rec, window_s=window_s, gaps="zero")
    t, p = reader_samples(rec)
    edges = np.append(seg.seg_t, seg.period)
    assert t.shape == (n,)
    assert seg.period == pytest.approx(t[-1] + DT, rel=1e-12)
    assert np.sum(seg.seg_p * np.diff(edges)) == pytest.approx(np.sum(p) * DT, rel=1e-9)
    tol = 1e-9 * p.max()  # window energies are sums of pieces
    assert seg.seg_p.min() >= -tol and seg.seg_p.max() <= p.max() + tol
    assert seg.seg_t.shape[0] == int(np.ceil(seg.period / window_s - 1e-9))


def gap_recording(path: Path, gap_s: float = 60.0) -> Path:
    """3 s of 100 kS/s samples (2 V, 1 mA) with a hole of ``gap_s`` seconds after the first 1.5 s."""
    half = 150_000
    steps = np.full(2 * half - 1, 10_000)
    steps[half - 1] = round(gap_s * 1e9)
    ts = int(T0 * 1e9) + np.concatenate(([0], np.cumsum(steps)))
    return record(path, np.full(2 * half, 2.0), np.full(2 * half, 1e-3), timestamps_ns=ts)


def test_a_gap_in_the_time_stamps_is_an_error_naming_its_time_and_length(tmp_path):
    """shepherd-core's Reader flags time jumps (check_timediffs); read as held, a 60 s hole would carry 20x the
    recording's energy.  The default is a one-line error; the CLI exits 2 before any simulation."""
    rec = gap_recording(tmp_path / "rec.h5")
    with Reader(rec, verbose=False) as r:
        assert not r.check_timediffs()  # the package's own check agrees that the file has a jump
    with pytest.raises(TraceError) as info:
        hv.read_shepherd(rec)
    assert_one_line(str(info.value), "rec.h5: sample 150000 (t = 61.499990 s)", "time jumps by 60 s",
                    'gaps = "zero"')
    r = runner.invoke(app, ["check", str(scenario(tmp_path, rec)), "--json"])
    assert r.exit_code == 2 and r.stdout.strip() == ""
    assert_one_line(r.stderr, "sample 150000", "time jumps by 60 s")


def test_gaps_zero_harvests_the_samples_energy_only(tmp_path):
    rec = gap_recording(tmp_path / "rec.h5")
    sc = loader.load(scenario(tmp_path, rec, 'gaps = "zero"\nrepeat = false\n'))
    assert sc.harvester.gaps == "zero"
    seg = sc.harvester.segments()
    t, p = reader_samples(rec)
    samples_J = np.sum(p) * DT  # 300 000 samples of 2 mW for 10 us each: 6 mJ
    assert samples_J == pytest.approx(6e-3, rel=1e-5) and t[-1] == pytest.approx(63.0 - 2 * DT, rel=1e-12)
    widths = np.diff(np.append(seg.seg_t, t[-1] + DT))  # up to the end of the last sample
    assert np.sum(seg.seg_p * widths) == pytest.approx(samples_J, rel=1e-9)
    assert seg.seg_p[150:6149].max() < 1e-12  # the 10 ms windows inside the hole (1.5 s .. 61.49 s): nothing


@pytest.mark.parametrize("step_ns", [9_000, 5_000])
def test_a_step_shorter_than_the_sample_period_is_an_error(tmp_path, step_ns):
    ts = int(T0 * 1e9) + 10_000 * np.arange(12_000)
    ts[7000:] -= 10_000 - step_ns
    rec = record(tmp_path / "rec.h5", np.full(12_000, 2.0), np.full(12_000, 1e-3), timestamps_ns=ts)
    for gaps in ("error", "zero"):
        with pytest.raises(TraceError) as info:
            hv.read_shepherd(rec, gaps=gaps)
        assert_one_line(str(info.value), "sample 7000", "less than the sample period 10 us")


def test_jitter_within_shepherds_rounding_is_no_gap(tmp_path):
    """shepherd-core compares steps rounded to 1 us: a 10.4 us step is the 10 us period."""
    ts = int(T0 * 1e9) + 10_000 * np.arange(12_000)
    ts[5000:] += 400
    rec = record(tmp_path / "rec.h5", np.full(12_000, 2.0), np.full(12_000, 1e-3), timestamps_ns=ts)
    assert hv.read_shepherd(rec).seg_p.max() == pytest.approx(2e-3, rel=1e-6)


def test_implausible_power_is_an_error_naming_the_sample(tmp_path):
    """The bound on a constant source (100 W) holds for every sample; 1 uA steps let the file hold 50 A."""
    i = np.full(10_000, 1e-3)
    i[4321] = 50.0
    v = np.full(10_000, 2.0)
    v[4321] = 2.5  # 125 W
    cal = CalibrationSeries(current=CalibrationPair(gain=1e-6, offset=0.0))
    with pytest.raises(TraceError) as info:
        hv.read_shepherd(record(tmp_path / "rec.h5", v, i, cal=cal))
    assert_one_line(str(info.value), "rec.h5: sample 4321 (t = 0.043210 s)", "power 125 W",
                    f"plausible {hv.MAX_POWER_W:g} W")


def test_slightly_negative_current_reads_as_zero(tmp_path):
    """A calibration offset of -1e-7 A (real recordings have such offsets) gives -1e-7 A at raw 0: read as 0."""
    n = 10_000
    cal = CalibrationSeries(current=CalibrationPair(gain=250e-12, offset=-1e-7))
    i = np.where(np.arange(n) < n // 2, -1e-7, 1e-3)  # the first half records raw 0 = -1e-7 A
    seg = hv.read_shepherd(record(tmp_path / "rec.h5", np.full(n, 2.0), i, cal=cal), window_s=n * DT / 2)
    assert seg.seg_p[0] == 0.0 and seg.seg_p[1] == pytest.approx(2e-3, rel=1e-6)


def test_current_below_the_noise_floor_is_an_error_naming_the_sample(tmp_path):
    n = 10_000
    cal = CalibrationSeries(current=CalibrationPair(gain=250e-12, offset=-2e-6))
    i = np.full(n, 1e-3)
    i[1234] = -2e-6  # raw 0 = -2 uA
    rec = record(tmp_path / "rec.h5", np.full(n, 2.0), i, cal=cal)
    with pytest.raises(TraceError) as info:
        hv.read_shepherd(rec)
    assert_one_line(str(info.value), "rec.h5: sample 1234 (t = 0.012340 s)", "negative current_A -2e-06",
                    "noise floor -1e-06")


@pytest.mark.parametrize("at", [5, 10_000, 12_345])  # inside the first chunk, its first sample, the tail
def test_time_that_does_not_increase_is_an_error_naming_the_sample(tmp_path, at):
    n = 12_500
    ts = int(T0 * 1e9) + 10_000 * np.arange(n)
    ts[at:] -= 10_000  # sample `at` repeats the time of the one before it
    rec = record(tmp_path / "rec.h5", np.full(n, 2.0), np.full(n, 1e-3), timestamps_ns=ts)
    with pytest.raises(TraceError) as info:
        hv.read_shepherd(rec)
    assert_one_line(str(info.value), f"rec.h5: sample {at}: time does not increase")


@pytest.mark.slow
def test_scenario_runs_with_both_engines_agreeing_and_energy_balanced(tmp_path):
    n = 20_000  # 0.2 s: 1 mW, then nothing, repeated
    i = np.where(np.arange(n) < n // 2, 0.5e-3, 0.0)
    rec = record(tmp_path / "solar.h5", np.full(n, 2.0), i)
    # greedy dispatch: the run must brown out (energy_aware would wait instead) to test the balance over cycles
    sc = loader.load(scenario(tmp_path, rec, "window_s = 0.005\nefficiency = 0.9\n",
                              sim='\n[execution]\ndispatch = "greedy"\n'))
    assert sc.harvester.kind == "shepherd" and sc.harvester.window_s == 0.005
    seg = sc.harvester.segments()
    assert seg.seg_t.shape == (40,) and seg.seg_p[0] == pytest.approx(0.9 * 1e-3, rel=1e-6)
    assert seg.seg_p[20:].max() == 0.0
    res = {}
    for engine in ("des", "oracle"):
        r = runner.invoke(app, ["run", str(sc.path), "--engine", engine, "--no-functional", "--json"])
        assert r.exit_code == 0, r.output
        res[engine] = json.loads(r.stdout)
    a, b = res["des"], res["oracle"]
    assert a["completed"] and a["power_cycles"] >= 2
    e = a["energy_J"]
    balance = e["stored_initial"] + e["harvested"] - e["consumed"] - e["leaked"] - e["clipped"] - e["stored_final"]
    assert abs(balance) < 1e-9 * max(e["harvested"], 1e-12)
    for key in ("power_cycles", "units_executed", "units_reexecuted"):
        assert a[key] == b[key]
    assert b["latency_s"] == pytest.approx(a["latency_s"], rel=1e-9)
    assert b["energy_J"]["harvested"] == pytest.approx(e["harvested"], rel=1e-9)


def iv_curves(path: Path, n: int = 20_000, window: int = 100) -> Path:
    """An ivcurve recording: the voltage swept 0..3 V over each 100-sample window, a solar cell's current
    I = 1 mA * (1 - exp((V - 2.5 V) / 0.1 V)), clipped at 0 (maximum power about 2.09 mW near 2.2 V)."""
    v = np.tile(np.linspace(0.0, 3.0, window), n // window)
    i = np.clip(1e-3 * (1 - np.exp((v - 2.5) / 0.1)), 0.0, None)
    return record(path, v, i, datatype="ivcurve", window_samples=window)


@pytest.mark.parametrize("algorithm", ["mppt_opt", "mppt_voc", "cv20"])
def test_ivcurve_recording_through_a_virtual_harvester_keeps_its_energy(tmp_path, algorithm):
    """shepherd-core's simulate_harvester picks the operating points and reports the energy it harvested: the
    segments hold that energy; mppt_opt reaches the curves' maximum power."""
    from shepherd_core.data_models.content.virtual_harvester_config import VirtualHarvesterConfig
    from shepherd_core.vsource import simulate_harvester

    rec = iv_curves(tmp_path / "curve.h5")
    seg = hv.read_shepherd(rec, algorithm=algorithm)
    energy = simulate_harvester(VirtualHarvesterConfig(name=algorithm), rec)  # the package's own number
    widths = np.diff(np.append(seg.seg_t, seg.period))
    # to 1e-4: shepherd-core counts each sample as (t_last - t_first) / n long (ours: until the next timestamp)
    # and its output file stores V and I as calibrated integers
    assert np.sum(seg.seg_p * widths) == pytest.approx(energy, rel=1e-4)
    _, p = reader_samples(rec)
    assert seg.seg_p.max() <= p.max() * (1 + 1e-6)
    if algorithm == "mppt_opt":
        assert seg.seg_p.mean() == pytest.approx(p.max(), rel=0.01)


def test_ivcurve_scenario_runs(tmp_path):
    rec = iv_curves(tmp_path / "curve.h5")
    sc = loader.load(scenario(tmp_path, rec, 'algorithm = "mppt_opt"\n'))
    assert sc.harvester.algorithm == "mppt_opt"
    r = runner.invoke(app, ["run", str(sc.path), "--engine", "oracle", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["completed"]


def bad_recordings(folder: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    n = 10_000
    v, i = np.full(n, 2.0), np.full(n, 1e-3)
    text = folder / "notes.h5"
    text.write_text("voltage,current\n2.0,0.001\n")
    empty = folder / "empty.h5"
    with h5py.File(empty, "w") as f:
        f.create_group("other")
    return {
        "missing": (folder / "gone.h5", ("harvester.file", "file not found", "gone.h5")),
        "text": (text, ("notes.h5", "not a Shepherd HDF5 recording")),
        "no-data": (empty, ("empty.h5", "not a Shepherd recording", "no data group")),
        "ivcurve": (record(folder / "curve.h5", v, i, datatype="ivcurve", window_samples=100),
                    ("curve.h5", "datatype 'ivcurve'", 'harvester.algorithm = "mppt_opt"')),
        "bad-algorithm": (iv_curves(folder / "curve2.h5"), ("curve2.h5", "harvester.algorithm 'mppt_best'",
                                                          "not a virtual harvester of shepherd-core")),
        "algorithm-on-samples": (record(folder / "samples.h5", v, i),
                                 ("samples.h5", "harvester.algorithm 'mppt_opt'", "IV samples")),
        "isc_voc": (record(folder / "iscvoc.h5", v, i, datatype="isc_voc"), ("iscvoc.h5", "datatype 'isc_voc'")),
        "emulator": (record(folder / "emu.h5", v, i, mode="emulator"), ("emu.h5", "mode 'emulator'", "harvester")),
    }


ALGORITHM = {"bad-algorithm": 'algorithm = "mppt_best"\n', "algorithm-on-samples": 'algorithm = "mppt_opt"\n'}


@pytest.mark.parametrize("case", ["missing", "text", "no-data", "ivcurve", "isc_voc", "emulator", "bad-algorithm",
                                  "algorithm-on-samples"])
def test_bad_recording_is_one_line_exit_2(tmp_path, case):
    rec, parts = bad_recordings(tmp_path)[case]
    r = runner.invoke(app, ["check", str(scenario(tmp_path, rec, ALGORITHM.get(case, ""))), "--json"])
    assert r.exit_code == 2, r.output
    assert r.stdout.strip() == ""
    assert_one_line(r.stderr, *parts)


@pytest.mark.parametrize("gaps", ["hold", "", "Zero"])
def test_loader_checks_gaps(tmp_path, gaps):
    rec = record(tmp_path / "rec.h5", np.full(10_000, 2.0), np.full(10_000, 1e-3))
    with pytest.raises(ScenarioError) as info:
        loader.load(scenario(tmp_path, rec, f'gaps = "{gaps}"\n'))
    assert_one_line(str(info.value), "scen.toml: harvester.gaps: expected 'error' or 'zero'")


def test_loader_bounds_window_s(tmp_path):
    rec = record(tmp_path / "rec.h5", np.full(10_000, 2.0), np.full(10_000, 1e-3))
    with pytest.raises(ScenarioError) as info:
        loader.load(scenario(tmp_path, rec, "window_s = 1e-6\n"))
    assert_one_line(str(info.value), "scen.toml: harvester.window_s: must be >= 1e-05, got 1e-06")


@pytest.mark.slow
def test_console_error_has_no_shepherd_log_lines(tmp_path):
    """shepherd-core logs its own file checks to stderr; the user sees aidi's one line only."""
    rec, parts = bad_recordings(tmp_path)["ivcurve"]
    r = subprocess.run([sys.executable, "-m", "aidi.analysis.cli", "run", str(scenario(tmp_path, rec))],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == ""
    assert_one_line(r.stderr, *parts)
