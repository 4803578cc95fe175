"""``aidi calibrate``: a platform's constants fitted to a board's own measurements.

Inputs:

* a **counts file**, what the microbench firmware prints (``aidi emit-c --microbench``; format version 1,
  documented in ``models/emit/runtime/aidi_microbench.c``)::

      aidi-microbench 1
      mclk_hz 16000000
      build <free text>
      timer 0 <cycles>                  an empty interval, subtracted from every count
      <primitive> <N> <cycles>          one measurement (Timer_A cycles at mclk_hz)
      burst <primitive> <N> <repeats>   the energy pass: one burst of <repeats> runs
      end

  ``#`` starts a comment; the file is read by :func:`aidi.sim.textfile.read_lines`.
* optionally an **EnergyTrace CSV** recorded while the firmware ran on the board: Code Composer Studio's
  EnergyTrace export, one header row naming the columns with their units in parentheses --
  ``Time (ns)``, ``Current (nA)``, ``Voltage (mV)``, ``Energy (uJ)`` (cumulative) -- then one row per
  sample (about every 270 us).  Those columns and units are what published parsers of CCS exports read
  (time / 1e9 s, current / 1e9 A, voltage mV, energy uJ); TI's MSP430 API itself reports time, current,
  voltage and cumulative energy (derf/energytrace-util, derf/msp430-etv READMEs: us, nA, mV, nJ), so the
  other SI prefixes (s, ms, us, ns; A, mA, uA, nA; V, mV; J, mJ, uJ, nJ) are accepted too.

Fits (all by :func:`aidi.models.cost_calibration.nnls_relative`, non-negative least squares of relative
errors, i.e. :func:`scipy.optimize.nnls`):

* cycles = slope * N + offset per primitive: ``lea_mac``, ``dma_read`` and ``dma_write`` give their
  :class:`~aidi.sim.platform.Linear` fits (the cost model charges a commit as a DMA write of
  ``commit_words``, which becomes the words the board's commit writes; the ``commit`` line's residual checks
  that, it is not fitted); the CPU
  primitives give their per-operation slope (``cpu_add_cycles`` ...; the offset is the timing loop's);
  ``measure`` gives ``measure_s`` (its cycles / MCLK).
* with an EnergyTrace file: the recording is cut into bursts (power from the energy column's
  differences above the midpoint of its least value and 99th percentile), matched in order with the ``burst``
  lines; a burst's energy less the idle power over its duration, per run, fits the energy constants the
  same way (``lea_mac_energy``, ``dma_*_energy``, ``cpu_add/mul/div/max_energy``, ``measure_energy_J``) and
  ``active_power_W`` (energy per run = P * cycles per run / MCLK, over the bursts of the primitives without
  an energy constant of their own).

Output: a platform TOML file (:func:`aidi.sim.platform.load_platform_file` reads it; a scenario names it as
``[device] platform = "my-board.toml"``) and the residual of every measurement, relative.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import UserError

FORMAT = 1
#: primitives fitted as Linear(slope, offset) cycles -> Platform field, energy field
LINEAR = {"lea_mac": ("lea_mac_cycles", "lea_mac_energy"), "dma_read": ("dma_read_cycles", "dma_read_energy"),
          "dma_write": ("dma_write_cycles", "dma_write_energy")}
#: primitives fitted per operation (the slope) -> Platform field, energy field (None: cycles x energy per cycle)
PER_OP = {"cpu_add": ("cpu_add_cycles", "cpu_add_energy"), "cpu_mul": ("cpu_mul_cycles", "cpu_mul_energy"),
          "cpu_div": ("cpu_div_cycles", "cpu_div_energy"), "cpu_max": ("cpu_max_cycles", "cpu_max_energy"),
          "cpu_abs": ("cpu_abs_cycles", None), "cpu_copy": ("cpu_copy_cycles", None),
          "cpu_mac": ("cpu_mac_cycles", None)}
PRIMITIVES = ("timer", "commit", "measure", *LINEAR, *PER_OP)
#: EnergyTrace column -> unit -> factor to SI
UNITS = {"time": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9},
         "current": {"a": 1.0, "ma": 1e-3, "ua": 1e-6, "µa": 1e-6, "na": 1e-9},
         "voltage": {"v": 1.0, "mv": 1e-3},
         "energy": {"j": 1.0, "mj": 1e-3, "uj": 1e-6, "µj": 1e-6, "nj": 1e-9}}


class CalibrationError(UserError):
    """A counts or EnergyTrace file that cannot be used (one line: file, line, reason)."""


@dataclass(frozen=True)
class Row:
    primitive: str
    n: int
    value: float  # cycles (a measurement) or repeats (a burst)
    where: str


@dataclass(frozen=True)
class Counts:
    """A parsed counts file: ``rows`` (measurements), ``bursts`` (the energy pass), MCLK, build text."""

    path: Path
    mclk_hz: float
    build: str
    rows: tuple[Row, ...]
    bursts: tuple[Row, ...] = field(default=())

    @property
    def timer(self) -> float:
        """Cycles of the empty interval (mean of the ``timer`` lines; 0 without one)."""
        t = [r.value for r in self.rows if r.primitive == "timer"]
        return float(np.mean(t)) if t else 0.0

    def net(self, r: Row) -> float:
        return r.value - self.timer


def _int(tok: str, what: str, where: str, lo: int = 0) -> int:
    try:
        v = int(tok)
    except ValueError:
        raise CalibrationError(f"{where}: {what} must be an integer, got {tok!r}") from None
    if v < lo:
        raise CalibrationError(f"{where}: {what} must be >= {lo}, got {v}")
    return v


def read_counts(path: str | Path) -> Counts:
    """Parse a counts file (module docstring).  Raises :class:`CalibrationError` naming the file and line:
    not text, no or another format header, a missing ``mclk_hz``, an unknown primitive, a malformed or
    negative number, a measurement not above the ``timer`` line's cycles, or no ``end`` line (a truncated
    capture)."""
    from aidi.sim.textfile import read_lines

    tl = read_lines(path, CalibrationError)
    if not tl.lines or tl.lines[0].split() != ["aidi-microbench", str(FORMAT)]:
        got = tl.lines[0].strip() if tl.lines else "an empty file"
        raise CalibrationError(f"{tl.where(0)}: expected the header 'aidi-microbench {FORMAT}', got {got!r}")
    mclk, build, rows, bursts, ended = None, "", [], [], False
    for k in range(1, len(tl)):
        where, tok = tl.where(k), tl.lines[k].split()
        if ended:
            raise CalibrationError(f"{where}: text after the 'end' line")
        if tok[0] == "end" and len(tok) == 1:
            ended = True
        elif tok[0] == "mclk_hz" and len(tok) == 2:
            mclk = _int(tok[1], "mclk_hz", where, 1)
        elif tok[0] == "build":
            build = " ".join(tok[1:])
        elif tok[0] == "burst" and len(tok) == 4:
            if tok[1] not in PRIMITIVES or tok[1] == "timer":
                raise CalibrationError(f"{where}: unknown primitive {tok[1]!r}")
            bursts.append(Row(tok[1], _int(tok[2], "N", where), _int(tok[3], "repeats", where, 1), where))
        elif len(tok) == 3 and tok[0] in PRIMITIVES:
            rows.append(Row(tok[0], _int(tok[1], "N", where), _int(tok[2], "cycles", where), where))
        elif tok[0] in PRIMITIVES or tok[0] in ("mclk_hz", "burst", "end"):
            raise CalibrationError(f"{where}: malformed {tok[0]!r} line (expected "
                                   f"{'burst PRIMITIVE N REPEATS' if tok[0] == 'burst' else tok[0] + ' N CYCLES'})")
        else:
            raise CalibrationError(f"{where}: unknown primitive {tok[0]!r} (known: {', '.join(PRIMITIVES)})")
    if mclk is None:
        raise CalibrationError(f"{tl.path}: no 'mclk_hz' line")
    if not ended:
        raise CalibrationError(f"{tl.where(len(tl))}: no 'end' line (the capture is cut short)")
    counts = Counts(Path(path), float(mclk), build, tuple(rows), tuple(bursts))
    for r in rows:
        if r.primitive != "timer" and counts.net(r) <= 0:
            raise CalibrationError(f"{r.where}: {r.primitive} {r.n}: {r.value:g} cycles, not above the empty "
                                   f"interval's {counts.timer:g}")
    return counts


# -- EnergyTrace -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnergyTrace:
    """An EnergyTrace recording in SI units: time (s), current (A), voltage (V), cumulative energy (J)."""

    path: Path
    time_s: np.ndarray
    current_A: np.ndarray
    voltage_V: np.ndarray
    energy_J: np.ndarray


def _column(name: str, where: str) -> tuple[str, float]:
    label, _, unit = name.strip().partition("(")
    kind = label.strip().lower()
    if kind not in UNITS or not unit.endswith(")"):
        raise CalibrationError(f"{where}: column {name.strip()!r}: expected 'Time (ns)', 'Current (nA)', "
                               "'Voltage (mV)' or 'Energy (uJ)' (a quantity and its unit)")
    u = unit[:-1].strip().lower()
    if u not in UNITS[kind]:
        raise CalibrationError(f"{where}: column {name.strip()!r}: unknown unit {unit[:-1]!r} "
                               f"(known: {', '.join(UNITS[kind])})")
    return kind, UNITS[kind][u]


def read_energytrace(path: str | Path) -> EnergyTrace:
    """Parse an EnergyTrace CSV (module docstring).  Raises :class:`CalibrationError` naming the file and line:
    a missing or unknown column or unit, a value that is not a finite number, time not increasing, energy
    decreasing, fewer than 3 samples."""
    from aidi.sim.textfile import read_lines

    tl = read_lines(path, CalibrationError)
    if not tl.lines:
        raise CalibrationError(f"{tl.path}: empty file (expected an EnergyTrace CSV export)")
    header = next(csv.reader([tl.lines[0]]))
    cols = {}
    for j, name in enumerate(header):
        kind, factor = _column(name, tl.where(0))
        cols[kind] = (j, factor)
    missing = [k for k in UNITS if k not in cols]
    if missing:
        raise CalibrationError(f"{tl.where(0)}: no {missing[0]} column (expected Time (ns), Current (nA), "
                               "Voltage (mV), Energy (uJ))")
    data = np.empty((len(tl) - 1, 4))
    for k, row in enumerate(csv.reader(io.StringIO(tl.text(1))), start=1):
        if len(row) != len(header):
            raise CalibrationError(f"{tl.where(k)}: {len(row)} fields, the header has {len(header)}")
        for c, kind in enumerate(UNITS):
            j, factor = cols[kind]
            try:
                v = float(row[j])
            except ValueError:
                raise CalibrationError(f"{tl.where(k)}: {kind} {row[j]!r} is not a number") from None
            if not math.isfinite(v):
                raise CalibrationError(f"{tl.where(k)}: {kind} {row[j]!r} is not finite")
            data[k - 1, c] = v * factor
    if len(data) < 3:
        raise CalibrationError(f"{tl.path}: {len(data)} samples (need at least 3)")
    t, e = data[:, 0], data[:, 3]
    bad = np.flatnonzero(np.diff(t) <= 0)
    if bad.size:
        raise CalibrationError(f"{tl.where(int(bad[0]) + 2)}: time {t[bad[0] + 1]:g} s does not increase")
    bad = np.flatnonzero(np.diff(e) < 0)
    if bad.size:
        raise CalibrationError(f"{tl.where(int(bad[0]) + 2)}: cumulative energy decreases")
    return EnergyTrace(tl.path, t, data[:, 1], data[:, 2], e)


def bursts(trace: EnergyTrace) -> tuple[list[tuple[float, float]], float]:
    """``([(energy J, duration s) per burst], idle power W)``: runs of samples whose power (the energy
    column's difference over the time step) is above the midpoint of its least value and 99th percentile, each
    widened by the sample on either side (the idle gaps between bursts must be longer than two samples)."""
    dt, de = np.diff(trace.time_s), np.diff(trace.energy_J)
    p = de / dt
    lo, hi = p.min(), np.percentile(p, 99)
    on = p > (lo + hi) / 2
    idle = float(np.median(p[~on])) if (~on).any() else 0.0
    edges = np.flatnonzero(np.diff(np.concatenate(([0], on.astype(np.int8), [0]))))
    # one sample more on each side: the samples a burst starts and ends within (idle is subtracted over them)
    return [(float(de[max(a - 1, 0):b + 1].sum()), float(dt[max(a - 1, 0):b + 1].sum()))
            for a, b in zip(edges[::2], edges[1::2])], idle


# -- the fit ---------------------------------------------------------------------------------------------------------
@dataclass
class Fit:
    """What :func:`calibrate` found: the Platform values, their sources, and one residual per measurement."""

    values: dict
    sources: dict
    residuals: list[dict]


def _linear(rows: list[tuple[float, float, str, str]], what: str) -> tuple[float, float, list[dict]]:
    """NNLS of y = slope * n + offset over ``rows`` (n, y, primitive, where): (slope, offset, residuals)."""
    from aidi.models.cost_calibration import nnls_relative

    ns = sorted({n for n, *_ in rows})
    if len(ns) < 2:
        where = rows[0][3] if rows else what
        raise CalibrationError(f"{where}: {what}: needs measurements at 2 or more lengths, got {len(ns)}")
    X = np.array([[n, 1.0] for n, *_ in rows])
    y = np.array([v for _, v, *_ in rows])
    (slope, offset), err = nnls_relative(X, y)
    res = [{"primitive": p, "n": int(n), "measured": float(v), "model": float(slope * n + offset),
            "error": float(e), "what": what} for (n, v, p, _), e in zip(rows, err)]
    return float(slope), float(offset), res


def calibrate(counts: Counts, trace: EnergyTrace | None = None, base: str = "msp430fr5994") -> Fit:
    """Fit the platform's constants to ``counts`` (and ``trace``'s energies); see the module docstring.
    Raises :class:`CalibrationError` for a primitive measured at fewer than 2 lengths, or an EnergyTrace
    recording whose bursts do not match the counts file's ``burst`` lines."""
    from aidi.sim.platform import get_platform

    p = get_platform(base, counts.mclk_hz)
    src = f"aidi calibrate {counts.path.name} ({counts.build or 'build not named'})"
    values: dict = {"mclk_hz": counts.mclk_hz}
    sources: dict = {}
    residuals: list[dict] = []
    by = {}
    for r in counts.rows:
        if r.primitive != "timer":
            by.setdefault(r.primitive, []).append((float(r.n), counts.net(r), r.primitive, r.where))
    commit = by.pop("commit", [])
    if commit:
        values["commit_words"] = int(commit[0][0])
    cyc_per_run = {}
    for prim, (fname, _) in LINEAR.items():
        rows = by.pop(prim, [])
        if rows:
            slope, offset, res = _linear(rows, fname)
            values[fname] = (slope, offset)
            residuals += res
            sources[fname] = f"{src}: NNLS of cycles = slope * N + offset over {len(rows)} measurements"
    if commit and "dma_write_cycles" in values:  # a check: the model has no constant of its own for it
        slope, offset = values["dma_write_cycles"]
        residuals += [{"primitive": "commit", "n": int(n), "measured": v, "model": slope * n + offset,
                       "error": (slope * n + offset - v) / v, "what": "check: dma_write(commit_words)"}
                      for n, v, *_ in commit]
    for prim, (fname, _) in PER_OP.items():
        rows = by.pop(prim, [])
        if rows:
            slope, _, res = _linear(rows, fname)
            values[fname] = slope
            residuals += res
            sources[fname] = f"{src}: slope of an NNLS of cycles = slope * N + loop offset"
    for r in counts.rows:
        if r.primitive != "timer":
            cyc_per_run[(r.primitive, r.n)] = counts.net(r)
    meas = by.pop("measure", [])
    if meas:
        cyc = float(np.mean([v for _, v, *_ in meas]))
        values["measure_s"] = cyc / counts.mclk_hz
        residuals += [{"primitive": "measure", "n": int(n), "measured": v, "model": cyc, "error": (cyc - v) / v,
                       "what": "measure_s"} for n, v, *_ in meas]
        sources["measure_s"] = f"{src}: mean cycles of aidi_vcc_mv / MCLK"
    if trace is not None:
        _energy(counts, trace, p, values, sources, residuals, cyc_per_run)
    if "active_power_W" not in values and counts.mclk_hz != get_platform(base).mclk_hz:
        values["active_power_W"] = p.active_power_W
        sources["active_power_W"] = f"{base} scaled to {counts.mclk_hz:g} Hz (118 uA/MHz, SLASE54D)"
    return Fit(values, sources, residuals)


def _energy(counts, trace, p, values, sources, residuals, cyc_per_run) -> None:
    """The energy half of :func:`calibrate` (updates values, sources, residuals in place)."""
    from aidi.models.cost_calibration import nnls_relative

    found, idle = bursts(trace)
    if len(found) != len(counts.bursts):
        raise CalibrationError(f"{trace.path}: {len(found)} bursts in the recording, {counts.path.name} lists "
                               f"{len(counts.bursts)} (record the whole energy pass, from before its first burst "
                               "to after its last)")
    src = f"aidi calibrate {trace.path.name} (EnergyTrace, idle {idle * 1e6:.3g} uW subtracted)"
    per_run: dict[str, list] = {}
    for b, (e, d) in zip(counts.bursts, found):
        net = (e - idle * d) / b.value
        if net <= 0:
            raise CalibrationError(f"{trace.path}: the burst of {b.primitive} {b.n} ({b.where}) used no energy "
                                   "above idle")
        cyc = cyc_per_run.get((b.primitive, b.n))
        if cyc is None:
            raise CalibrationError(f"{b.where}: burst {b.primitive} {b.n} has no timing line")
        per_run.setdefault(b.primitive, []).append((float(b.n), net, b.primitive, b.where, cyc))
    rest = []
    for prim, rows in per_run.items():
        fields_ = LINEAR.get(prim) or PER_OP.get(prim) or (None, None)
        if prim == "measure":
            e = float(np.mean([r[1] for r in rows]))
            values["measure_energy_J"] = e
            sources["measure_energy_J"] = src
            residuals += [{"primitive": prim, "n": int(r[0]), "measured": r[1], "model": e,
                           "error": (e - r[1]) / r[1], "what": "measure_energy_J"} for r in rows]
        elif fields_[1] is not None:
            slope, offset, res = _linear([r[:4] for r in rows], fields_[1])
            values[fields_[1]] = (slope, offset) if prim in LINEAR else slope
            residuals += res
            sources[fields_[1]] = f"{src}: NNLS of energy per run = slope * N + offset"
        else:
            rest += rows
    rest = rest or [r for rows in per_run.values() for r in rows]
    X = np.array([[r[4] / counts.mclk_hz] for r in rest])
    (pw,), err = nnls_relative(X, np.array([r[1] for r in rest]))
    values["active_power_W"] = float(pw)
    sources["active_power_W"] = f"{src}: NNLS of energy per run = P * cycles / MCLK over {len(rest)} bursts"
    residuals += [{"primitive": r[2], "n": int(r[0]), "measured": r[1], "model": float(pw * r[4] / counts.mclk_hz),
                   "error": float(e), "what": "active_power_W"} for r, e in zip(rest, err)]


def platform_toml(fit: Fit, base: str = "msp430fr5994") -> str:
    """The platform file of ``fit`` (:func:`aidi.sim.platform.load_platform_file` reads it back)."""
    def value(v) -> str:
        if isinstance(v, tuple):
            return f"{{ slope = {v[0]!r}, offset = {v[1]!r} }}"
        return repr(v)

    lines = ["# aidi platform file: constants fitted by `aidi calibrate` (every other constant: the base preset)",
             f"format = 1", f'base = "{base}"']
    lines += [f"{k} = {value(v)}" for k, v in fit.values.items()]
    lines += ["", "[sources]"]
    lines += [f"{k} = {_toml_str(v)}" for k, v in fit.sources.items()]
    return "\n".join(lines) + "\n"


def _toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def residual_lines(fit: Fit) -> list[str]:
    """One line per measurement: primitive, N, measured, model, relative error; then the largest."""
    out = [f"{'primitive':<10} {'N':>5} {'measured':>12} {'model':>12} {'error':>8}  fits"]
    for r in fit.residuals:
        out.append(f"{r['primitive']:<10} {r['n']:>5} {r['measured']:>12.5g} {r['model']:>12.5g} "
                   f"{r['error']:>+8.2%}  {r['what']}")
    if fit.residuals:
        worst = max(fit.residuals, key=lambda r: abs(r["error"]))
        out.append(f"largest |error| {abs(worst['error']):.2%} ({worst['primitive']} {worst['n']})")
    return out


def run(counts_path: str | Path, energytrace: str | Path | None, out: str | Path, base: str = "msp430fr5994"
        ) -> dict:
    """``aidi calibrate``: read, fit, write ``out``; returns ``{platform_file, values, residuals}`` (JSON-ready).
    Raises :class:`CalibrationError` (bad files) or UserError (an unknown base preset)."""
    from aidi.sim.platform import PLATFORMS, load_platform_file

    if base not in PLATFORMS:
        raise UserError(f"--base: unknown platform {base!r} (known: {', '.join(PLATFORMS)})")
    counts = read_counts(counts_path)
    trace = read_energytrace(energytrace) if energytrace is not None else None
    fit = calibrate(counts, trace, base)
    out = Path(out)
    out.write_text(platform_toml(fit, base))
    load_platform_file(out)  # what a scenario will read
    return {"platform_file": str(out),
            "values": {k: (list(v) if isinstance(v, tuple) else v) for k, v in fit.values.items()},
            "residuals": fit.residuals, "lines": residual_lines(fit)}


def microbench_counts(out: str | Path) -> dict:
    """Run the emitted microbench (``out``, written by ``aidi emit-c --microbench``) on mspdebug and write
    its counts to ``out``/microbench-counts.txt: ``{counts_file, measurements}``, or ``{skipped: why}``
    when clang-14, ld.lld-14 or mspdebug is missing.  Raises UserError when the build or the run fails."""
    from aidi.models.emit import build as mk
    from aidi.models.emit.microbench import COUNTS_FILE, run_microbench
    from aidi.models.emit.mspsim import MspSimError

    msg = mk.missing_message("sim")
    if msg:
        return {"skipped": msg}
    try:
        text = run_microbench(out)
    except (mk.BuildError, MspSimError) as exc:
        raise UserError(f"microbench: {str(exc).splitlines()[0]}") from None
    path = Path(out) / COUNTS_FILE
    path.write_text(text)
    return {"counts_file": str(path), "measurements": len(read_counts(path).rows)}
