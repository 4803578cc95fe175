"""Harvesters: what flows into the capacitor, as piecewise segments.

Every harvester is reduced to the same segment arrays, consumed by
:func:`aidi.sim.physics.advance`:

* ``seg_t``  start time (s) of each segment (``seg_t[0] == 0``)
* ``seg_p``  constant power into the capacitor during the segment (W)
* ``seg_g``  Thevenin conductance 1/R (S); the source adds a current ``g (V_s - V)``
* ``seg_vs`` Thevenin source voltage (V)
* ``period`` > 0: the sequence repeats with this period (s); 0: the last segment lasts forever

Kinds:

``constant``  power_W (after ``efficiency``)
``thevenin``  v_source through r_ohm, the iNAS bench supply
``trace``     CSV ``time_s,power_W`` or ``time_s,voltage_V,current_A`` (power = V * I), piecewise
              constant, repeated with period ``t_last + (t_last - t_prev)`` unless ``repeat = false``.
              Times are relative to the first row: the first row is t = 0 of the simulation, whatever
              its time_s (5 s, -2 s, a logger's Unix time); every later row keeps its distance from it.
              Text as :mod:`aidi.sim.textfile` reads it (UTF-8, UTF-16/32 with a byte-order mark, or
              Windows-1252; CRLF; ``#`` starts a comment; blank lines skipped; errors name the file's
              line).  Logger noise: a negative sample no further below 0 than the noise floor
              (``NOISE_FLOOR``: 1 mV, 1 uA, 1 uW) is read as 0; anything more negative is an error naming
              the line, and so is a power above ``MAX_POWER_W`` (100 W, the bound on a constant source).
``pv``        a TMY3-format file (pvlib's bundled ``723170TYA.CSV`` by default), read by pvlib's
              ``read_tmy3`` at the file's own time step (hourly, or sub-hourly such as 15 min, from its
              Date and Time columns): global horizontal irradiance linearly interpolated to ``step_s``
              and turned into cell power as irradiance * area * efficiency; starts at ``start_hour``
              (hours of the file's time from its first row) and lasts ``hours``; the window must lie
              inside the file (no wrap-around).  A blank or non-numeric GHI cell, a step aidi cannot use
              or irregular steps are errors naming the line (aidi does not guess missing irradiance:
              fill it in, e.g. 0 at night).  See :func:`read_tmy3`.
``shepherd``  a Shepherd testbed harvest recording (HDF5, IV samples) read by shepherd-core, V * I under
              the trace rule for logger noise, averaged over ``window_s``; a hole in its time stamps is
              an error unless ``gaps = "zero"`` (see :func:`read_shepherd`).

Every :class:`Segments` is checked when it is built: times, powers, conductances and source
voltages must be finite and non-negative, times strictly increasing from 0, the period finite
(a :class:`TraceError` otherwise), so neither engine is handed a source it cannot integrate.
"""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from . import textfile

if TYPE_CHECKING:
    import pandas as pd  # imported where a file is read: a scenario without a trace file loads no pandas


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file and the reason."""


@dataclass(frozen=True)
class Segments:
    seg_t: np.ndarray
    seg_p: np.ndarray
    seg_g: np.ndarray
    seg_vs: np.ndarray
    period: float
    kind: str
    #: with a power front end (:mod:`aidi.sim.frontend`): the harvester's own power in each segment (W), before
    #: the input converter (seg_p is what enters the capacitor); None without one
    raw_p: np.ndarray | None = None

    def __post_init__(self):
        arrays = {"time": self.seg_t, "power": self.seg_p, "conductance": self.seg_g, "source voltage": self.seg_vs}
        n = np.shape(self.seg_t)[0] if np.ndim(self.seg_t) == 1 else -1
        for name, a in arrays.items():
            a = np.asarray(a, dtype=np.float64)
            if a.ndim != 1 or a.shape[0] != n or n < 1:
                raise TraceError(f"{self.kind} source: segment arrays must be 1-D of one length >= 1")
            if not np.isfinite(a).all():
                raise TraceError(f"{self.kind} source: segment {int(np.argmax(~np.isfinite(a)))}: {name} is not finite")
            if (a < 0).any():
                raise TraceError(f"{self.kind} source: segment {int(np.argmax(a < 0))}: negative {name}")
        if self.raw_p is not None:
            raw = np.asarray(self.raw_p, dtype=np.float64)
            if raw.shape != (n,) or not np.isfinite(raw).all() or (raw < 0).any():
                raise TraceError(f"{self.kind} source: the raw (pre-converter) powers must be finite, >= 0 and one "
                                 "per segment")
        t = np.asarray(self.seg_t, dtype=np.float64)
        if t[0] != 0.0 or (n > 1 and not (np.diff(t) > 0).all()):
            raise TraceError(f"{self.kind} source: segment times must start at 0 and strictly increase")
        if not (np.isfinite(self.period) and self.period >= 0.0) or (self.period > 0.0 and self.period <= t[-1]):
            raise TraceError(f"{self.kind} source: period must be finite and beyond the last segment, "
                             f"got {self.period!r}")

    @property
    def time_invariant(self) -> bool:
        """True when the source never changes (constant or Thevenin)."""
        return self.seg_t.shape[0] == 1 and self.period == 0.0

    def max_power(self, v_lo: float, v_hi: float) -> float:
        """Largest power the source can put into the capacitor for V in [v_lo, v_hi] (W)."""
        from .capacitor import source_max_power

        return float(source_max_power(self.seg_p, self.seg_g, self.seg_vs, v_lo, v_hi))

    def typical_power(self, v_lo: float, v_hi: float) -> float:
        """Mean constant-power part plus the Thevenin power at mid-range voltage (W): a recharge-rate estimate."""
        p = self.mean_power()
        g = float(self.seg_g.max())
        if g > 0:
            v = 0.5 * (v_lo + v_hi)
            p += g * max(float(self.seg_vs.max()) - v, 0.0) * v
        return p

    def mean_power(self) -> float:
        """Time-averaged constant-power part of the source over one period (W)."""
        if self.period <= 0.0 or self.seg_t.shape[0] == 1:
            return float(self.seg_p[-1])
        edges = np.append(self.seg_t, self.period)
        return float(np.sum(self.seg_p * np.diff(edges)) / self.period)


def constant(power_W: float, efficiency: float = 1.0) -> Segments:
    return Segments(np.zeros(1), np.array([power_W * efficiency]), np.zeros(1), np.zeros(1), 0.0, "constant")


def thevenin(v_source: float, r_ohm: float) -> Segments:
    return Segments(np.zeros(1), np.zeros(1), np.array([1.0 / r_ohm]), np.array([v_source]), 0.0, "thevenin")


def from_samples(times: np.ndarray, power: np.ndarray, repeat: bool, kind: str) -> Segments:
    """Piecewise-constant segments from samples (power[i] holds from times[i] to times[i+1])."""
    times = np.asarray(times, dtype=np.float64)
    power = np.asarray(power, dtype=np.float64)
    t = times - times[0]
    if repeat:
        last = t[-1] - t[-2] if t.shape[0] > 1 else 1.0
        period = t[-1] + last
    else:
        period = 0.0
    n = t.shape[0]
    return Segments(t, power, np.zeros(n), np.zeros(n), period, kind)


#: the plausible largest power of any harvester (W), shared with the scenario loader's bound on
#: ``harvester.power_W`` (:data:`aidi.scenarios.loader.LIMITS`): an MSP430 harvester delivers mW, and a
#: trace above 100 W is a column in other units (an irradiance in W/m^2, mW)
MAX_POWER_W = 100.0

#: logger noise floor: a negative sample no further below 0 than this reads as 0 (V, A, W)
NOISE_FLOOR = {"voltage_V": 1e-3, "current_A": 1e-6, "power_W": 1e-6}


def _denoise(name: str, a: np.ndarray, where) -> np.ndarray:
    """``a`` with negatives inside the noise floor read as 0; below it a TraceError at ``where(index)``."""
    neg = a < -NOISE_FLOOR[name]
    if neg.any():
        row = int(np.argmax(neg))
        raise TraceError(f"{where(row)}: negative {name} {a[row]:g} (below the logger noise floor "
                         f"-{NOISE_FLOOR[name]:g})")
    return np.where(a < 0, 0.0, a)


def _column(df: pd.DataFrame, name: str) -> np.ndarray:
    import pandas as pd

    return pd.to_numeric(df[name].str.strip(), errors="coerce").to_numpy(float)


def _plausible_power(power: np.ndarray, where) -> None:
    """A TraceError at ``where(index)`` for the first power above :data:`MAX_POWER_W` (an irradiance column in
    W/m^2, or mW, taken for watts)."""
    high = power > MAX_POWER_W
    if high.any():
        row = int(np.argmax(high))
        raise TraceError(f"{where(row)}: power {power[row]:g} W is above the plausible {MAX_POWER_W:g} W (the bound "
                         "on harvester.power_W; is the column in W?)")


def read_trace(path: Path, efficiency: float = 1.0, repeat: bool = True, input_power=None) -> Segments:
    """Read a CSV trace: ``time_s,power_W`` or ``time_s,voltage_V,current_A`` (see the module docstring).

    The text is read by :func:`aidi.sim.textfile.read_lines` (encodings, BOM, CRLF, ``#`` comments).  Times
    are seconds relative to the first row, which becomes t = 0 of the simulation (a trace whose times start
    at 5 s, at -2 s or at a logger's Unix time is read the same as one starting at 0).  Power (or V * I) must
    be finite, not below the logger noise floor, and at most :data:`MAX_POWER_W`.  Returns segments of one
    row each; raises TraceError naming the file's line.

    ``input_power`` (a power front end's :meth:`aidi.sim.frontend.Frontend.input_power`, W of (V, A) arrays):
    each row of a voltage_V,current_A trace enters as input_power(V, I) (times ``efficiency``) and its V * I is
    kept as the segments' ``raw_p``; a power_W trace has no voltage (the front end then needs
    ``power.v_input_V``: :func:`aidi.sim.frontend.through`).
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: trace file not found")
    text = textfile.read_lines(path, TraceError)
    if not len(text):
        raise TraceError(f"{path}: not a readable CSV (no header line)")
    import pandas as pd
    try:
        df = pd.read_csv(io.StringIO(text.text()), skip_blank_lines=False, dtype=str)
    except Exception as exc:  # pandas raises many kinds
        raise TraceError(f"{path}: not a readable CSV ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    cols = [str(c).strip() for c in df.columns]
    df.columns = cols
    if "time_s" not in cols:
        raise TraceError(f"{path}: missing column time_s (have {', '.join(cols)})")

    def line_of(row: int) -> str:  # data row -> "file: line n" (kept line 0 is the header)
        return text.where(row + 1)

    if "power_W" in cols:
        parts = {"power_W": _column(df, "power_W")}
    elif "voltage_V" in cols and "current_A" in cols:
        parts = {"voltage_V": _column(df, "voltage_V"), "current_A": _column(df, "current_A")}
    else:
        raise TraceError(f"{path}: needs columns power_W or voltage_V,current_A (have {', '.join(cols)})")
    times = _column(df, "time_s")
    if times.shape[0] < 2:
        raise TraceError(f"{path}: a trace needs at least two rows")
    bad = ~np.isfinite(times)
    for a in parts.values():
        bad |= ~np.isfinite(a)
    if bad.any():
        raise TraceError(f"{line_of(int(np.argmax(bad)))}: time or power is not a finite number")
    power = np.ones_like(times)
    for name, a in parts.items():
        parts[name] = _denoise(name, a, line_of)
        power = power * parts[name]
    _plausible_power(power, line_of)
    if (np.diff(times) <= 0).any():
        row = int(np.argmax(np.diff(times) <= 0)) + 1
        raise TraceError(f"{line_of(row)}: times are not strictly increasing")
    seg = from_samples(times, power * efficiency, repeat, "trace")
    if input_power is None or "voltage_V" not in parts:
        return seg
    cap = input_power(parts["voltage_V"], parts["current_A"]) * efficiency
    return Segments(seg.seg_t, cap, seg.seg_g, seg.seg_vs, seg.period, seg.kind, raw_p=seg.seg_p)


def default_tmy3() -> Path:
    import pvlib

    return Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"


#: the physically possible upper limit of global horizontal irradiance (W/m^2) with the sun at the zenith:
#: 1.5 * S0 * cos(z)^1.2 + 100 W/m^2 at cos(z) = 1, S0 = 1361 W/m^2 (Long & Shi 2008, the BSRN quality check
#: "physically possible limits"); a GHI column above it holds something else (kJ/m^2, a sum, a unit slip)
GHI_MAX_W_M2 = 1.5 * 1361.0 + 100.0
#: time steps of a TMY3-format file aidi reads (s): whole minutes (the Time column is HH:MM) up to one hour
#: (TMY3's own step; each value covers the step before its time stamp)
TMY3_STEPS_S = (60.0, 3600.0)
#: the year rows of a typical-year file are moved into when its months come from different years: a year
#: without 29 February, as the files have none (pvlib's read_tmy3 moves a 29 February row to 1 March)
TYPICAL_YEAR = 1990


def _tmy3_elapsed(index: pd.DatetimeIndex, in_one_year: bool) -> np.ndarray:
    """Seconds of each row from the first: from pvlib's index as it is, or with every row moved into
    :data:`TYPICAL_YEAR` (pvlib's ``coerce_year`` rule, done on its index: a last row at midnight starting
    1 January, NREL's "12/31 24:00", goes into the next year)."""
    import pandas as pd

    if not in_one_year:
        return (index - index[0]).total_seconds().to_numpy(float)
    years = np.full(len(index), TYPICAL_YEAR)
    last = len(index) - 1
    if (index.month[last], index.day[last], index.hour[last], index.minute[last], index.month[last - 1]) \
            == (1, 1, 0, 0, 12):
        years[last] += 1
    moved = pd.to_datetime(pd.DataFrame({"year": years, "month": index.month, "day": index.day,
                                         "hour": index.hour, "minute": index.minute}))
    return (moved - moved.iloc[0]).dt.total_seconds().to_numpy(float)


#: the columns aidi needs in a TMY3-format file (pvlib's read_tmy3 names; GHI becomes "ghi")
TMY3_COLUMNS = ("Date (MM/DD/YYYY)", "Time (HH:MM)", "GHI (W/m^2)")
#: the site line's fields (pvlib's read_tmy3 reads them by position; the last four as numbers)
TMY3_SITE = ("USAF", "Name", "State", "TZ", "latitude", "longitude", "altitude")


def _tmy3_layout(text: textfile.TextLines) -> None:
    """A TraceError naming the line where ``text`` is not laid out as pvlib's read_tmy3 expects: the site line,
    the header with :data:`TMY3_COLUMNS`, and rows whose Date and Time cells are MM/DD/YYYY and HH:MM.
    Called once pvlib has failed, to say where."""
    if len(text) < 2:
        raise TraceError(f"{text.path}: not a TMY3 file (it needs a site line, a header line and rows)")
    site = text.lines[0].split(",")
    try:
        numbers = [int(site[0])] + [float(v) for v in site[3:len(TMY3_SITE)]]
    except ValueError:
        numbers = []
    if len(numbers) < 5:
        raise TraceError(f"{text.where(0)}: not a TMY3 site line ({','.join(TMY3_SITE)}; USAF and the last "
                         "four numbers)")
    import pandas as pd
    try:
        rows = pd.read_csv(io.StringIO(text.text(1)), dtype=str)
    except Exception as exc:  # pandas raises many kinds
        raise TraceError(f"{text.path}: not a TMY3 file ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    missing = [c for c in TMY3_COLUMNS if c not in rows.columns]
    if missing:
        raise TraceError(f"{text.where(1)}: TMY3 header without the column {missing[0]!r}")
    checks = ((TMY3_COLUMNS[0], "date MM/DD/YYYY", None), (TMY3_COLUMNS[1], "time HH:MM", r"\d\d?:\d\d"))
    for col, fmt, pattern in checks:
        cells = rows[col].fillna("").str.strip()
        ok = (pd.to_datetime(cells, format="%m/%d/%Y", errors="coerce").notna() if pattern is None
              else cells.str.fullmatch(pattern))
        if not ok.all():
            row = int(np.argmax(~ok.to_numpy(bool)))
            raise TraceError(f"{text.where(row + 2)}: {col!r} holds {cells.iloc[row]!r}, not a {fmt}")


def read_tmy3(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    """(time of each row in s from the first row, GHI in W/m^2, the file's time step in s) of a TMY3-format file.

    The text is read by :func:`aidi.sim.textfile.read_lines` (encodings, BOM, CRLF, ``#`` comments); the rows
    by pvlib's ``iotools.read_tmy3``, whose Date and Time columns give each row's time (24:00 or 00:00 for
    midnight).  The step is the first row's step and must be whole minutes from 1 to 60 (:data:`TMY3_STEPS_S`).
    A typical-year file (each month from another year, as NREL's TMY3) is read in one year (see
    :func:`_tmy3_elapsed`); a file whose times run on regularly (field data, across years) as it is.
    Raises TraceError naming the file's line: not TMY3 (the site line, a header without
    :data:`TMY3_COLUMNS`, a Date or Time cell pvlib cannot read), fewer than two rows, a step aidi cannot
    use, irregular steps (a missing or repeated row), a blank GHI cell, GHI below 0 or above
    :data:`GHI_MAX_W_M2`.
    """
    import pandas as pd
    import pvlib

    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: TMY3 file not found")
    text = textfile.read_lines(path, TraceError)
    try:
        data, _meta = pvlib.iotools.read_tmy3(io.StringIO(text.text()), map_variables=True)
        if "ghi" not in data.columns:
            raise KeyError(TMY3_COLUMNS[2])
    except Exception as exc:  # pandas and pvlib raise many kinds: find the line, else say what pvlib said
        _tmy3_layout(text)
        raise TraceError(f"{path}: not a TMY3 file ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    row_line = lambda row: text.where(row + 2)  # noqa: E731  kept line 0 is the site, 1 the header
    n = len(data)
    if n < 2:
        raise TraceError(f"{path}: a TMY3 file needs at least two rows, got {n}")
    ghi = pd.to_numeric(data["ghi"], errors="coerce").to_numpy(float)
    if not np.isfinite(ghi).all():
        raise TraceError(f"{row_line(int(np.argmax(~np.isfinite(ghi))))}: GHI is blank or not a number (aidi does "
                         "not guess missing irradiance; fill the cell, e.g. 0 at night)")
    out = (ghi < 0) | (ghi > GHI_MAX_W_M2)
    if out.any():
        row = int(np.argmax(out))
        raise TraceError(f"{row_line(row)}: GHI {ghi[row]:g} W/m^2 is outside 0 .. {GHI_MAX_W_M2:g} W/m^2 (the "
                         "physically possible limit at the zenith)")
    dates, clocks = data[TMY3_COLUMNS[0]].astype(str), data[TMY3_COLUMNS[1]].astype(str)
    stamp = lambda row: f"{dates.iloc[row]} {clocks.iloc[row]}"  # noqa: E731  the row's own cells
    t = _tmy3_elapsed(data.index, False)
    if (np.diff(t) != t[1]).any():  # a typical year (months from other years), or a missing or repeated row
        in_year = _tmy3_elapsed(data.index, True)
        if (np.diff(in_year) == in_year[1]).all() or not (np.diff(t) > 0).all():
            t = in_year  # regular in one year, or real times that run backwards: report the rows in one year
    step = float(t[1])
    lo, hi = TMY3_STEPS_S
    if not (lo <= step <= hi and step % 60.0 == 0.0):
        raise TraceError(f"{row_line(1)}: time step {step / 60:g} min after the first row ({stamp(0)} to "
                         f"{stamp(1)}): aidi reads TMY3-format files with steps of 1 to 60 whole minutes")
    irregular = np.diff(t) != step
    if irregular.any():
        row = int(np.argmax(irregular)) + 1
        leap = " (pvlib moves 29 February to 1 March: a TMY3 file has no leap day)" \
            if dates.str.startswith("02/29").any() else ""
        raise TraceError(f"{row_line(row)}: {stamp(row)} comes {(t[row] - t[row - 1]) / 60:g} min after the row "
                         f"before, not the file's step of {step / 60:g} min (a missing or repeated row?){leap}")
    return t, ghi, step


def pv(area_cm2: float, efficiency: float, file: Path | None = None, start_hour: float = 0.0,
       step_s: float = 60.0, hours: float = 24.0 * 7) -> Segments:
    """Solar cell power (W) from a TMY3-format file's global horizontal irradiance (W/m^2), see :func:`read_tmy3`.

    The file's rows lie at their own time step (hourly for NREL's TMY3, 15 min for a sub-hourly export); the
    file covers ``rows * step``.  ``start_hour`` and ``hours`` are hours of the file's time from its first row;
    the window must lie inside the file.  GHI is linearly interpolated between rows, sampled every ``step_s``
    seconds and held (piecewise constant), times ``area_cm2 * 1e-4 * efficiency``.  Raises TraceError.
    """
    path = Path(file) if file is not None else default_tmy3()
    t_rows, ghi, step = read_tmy3(path)
    t_rows_h = t_rows / 3600.0
    n_h = (t_rows[-1] + step) / 3600.0
    if start_hour + hours > n_h * (1 + 1e-12):
        raise TraceError(f"{path}: harvester.start_hour {start_hour:g} + hours {hours:g} goes beyond the file's "
                         f"{n_h:g} hours")
    t_h = start_hour + np.arange(0.0, hours, step_s / 3600.0)
    irr = np.interp(np.mod(t_h, n_h), t_rows_h, ghi, period=n_h)
    power = np.clip(irr, 0.0, None) * area_cm2 * 1e-4 * efficiency
    times = (t_h - start_hour) * 3600.0
    return from_samples(times, power, True, "pv")

#: the crystalline-silicon cell whose voltage a pv source gives a front end: one of the 96 series cells of the
#: Canadian Solar CS5P-220M (mono-c-Si) in pvlib's bundled CEC library (data/sam-library-cec-modules-2019-03-05.csv,
#: ``pvlib.pvsystem.retrieve_sam("CECMod")``), the module pvlib's own examples use; the cell's voltage does not
#: depend on its area (its photocurrent, saturation current and resistances scale together)
PV_MODULE = "Canadian_Solar_Inc__CS5P_220M"
#: the cell temperature the pv source's voltage is taken at (deg C: the reference conditions; TMY3 temperatures
#: are not used)
PV_CELL_TEMP_C = 25.0


def pv_operating_point(ghi_W_m2, setpoint: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Operating point of one :data:`PV_MODULE` cell at irradiance ``ghi_W_m2`` (W/m^2) and :data:`PV_CELL_TEMP_C`
    under an MPPT: ``(v_cell, fraction)``, arrays like ``ghi_W_m2``.  pvlib's De Soto single-diode model
    (``calcparams_desoto`` with the module's CEC parameters, ``singlediode``); the operating voltage is the
    maximum-power point's when ``setpoint`` is None (an optimal MPPT), else ``setpoint`` times the open-circuit
    voltage (an MPPT on a fraction of V_oc), divided over the module's N_s series cells (V).  ``fraction`` is the
    power there over the maximum power, V * I(V) / P_mp (``i_from_v``; 1 at the maximum-power point): what the
    cell gives at that point of the harvester's rated (maximum-power) figure.  Both 0 where the irradiance is 0."""
    import pvlib

    g = np.asarray(ghi_W_m2, dtype=np.float64)
    m = pvlib.pvsystem.retrieve_sam("CECMod")[PV_MODULE]
    v_cell, fraction = np.zeros_like(g), np.zeros_like(g)
    lit = g > 0.0
    if np.any(lit):
        params = pvlib.pvsystem.calcparams_desoto(g[lit], PV_CELL_TEMP_C, m["alpha_sc"], m["a_ref"], m["I_L_ref"],
                                                  m["I_o_ref"], m["R_sh_ref"], m["R_s"])
        sd = pvlib.pvsystem.singlediode(*params)
        p_mp = np.asarray(sd["p_mp"], dtype=np.float64)
        if setpoint is None:
            v, f = np.asarray(sd["v_mp"], dtype=np.float64), np.ones_like(p_mp)
        else:
            v = setpoint * np.asarray(sd["v_oc"], dtype=np.float64)
            i = np.maximum(np.asarray(pvlib.pvsystem.i_from_v(v, *params), dtype=np.float64), 0.0)
            f = np.clip(v * i / p_mp, 0.0, 1.0)
        v_cell[lit], fraction[lit] = v / float(m["N_s"]), f
    return v_cell, fraction


def pv_cell_voltage(ghi_W_m2, setpoint: float | None = None) -> np.ndarray:
    """The operating voltage of :func:`pv_operating_point` (V, one cell)."""
    return pv_operating_point(ghi_W_m2, setpoint)[0]


#: ``harvester.gaps`` of a Shepherd recording: a hole in ``data/time`` is an error, or no harvest
SHEPHERD_GAPS = ("error", "zero")

#: averaging window of a Shepherd recording (s) when ``harvester.window_s`` is not given: 1000 samples at the
#: testbed's 100 kS/s (shepherd_core.config.CoreConfig.SAMPLERATE_SPS, a 10 us sample period)
SHEPHERD_WINDOW_S = 0.01


@contextmanager
def _shepherd_quiet():
    """Silence shepherd-core's own log records (its file checks log to stderr); aidi reports one line itself."""
    loggers = [logging.getLogger(n) for n in ("SHPCore", "SHPCore.Reader", "SHPCore.Writer")]
    for lg in loggers:
        lg.addFilter(_drop_all)
    try:
        yield
    finally:
        for lg in loggers:
            lg.removeFilter(_drop_all)


def _drop_all(_record) -> bool:
    return False


def read_shepherd(path: Path, efficiency: float = 1.0, repeat: bool = True,
                  window_s: float = SHEPHERD_WINDOW_S, algorithm: str | None = None, gaps: str = "error",
                  input_power=None) -> Segments:
    """A Shepherd testbed harvest recording (HDF5) as power segments of ``window_s`` seconds.

    Read through the Shepherd project's own ``shepherd_core.Reader`` (the file's ``data/time``,
    ``data/voltage``, ``data/current`` datasets, raw integers turned into s, V and A by each dataset's
    ``gain``/``offset`` attributes: SI = raw * gain + offset).  Only harvester recordings of IV samples
    (``mode = "harvester"``, ``datatype = "ivsample"``: the voltage and current at the harvester's
    operating point, 100 kS/s on the testbed) are read as they are.  An ``ivcurve`` recording (IV
    curves swept over and over) needs ``algorithm``, the name of one of shepherd-core's virtual
    harvesters (``mppt_opt``, ``mppt_voc``, ``mppt_po``, ``cv20``, ...): shepherd-core's own
    ``vsource.simulate_harvester`` picks the operating point on every curve into IV samples (its
    Writer keeps whole 10 000-sample chunks), which are then read as above.  An ``isc_voc`` or
    emulator recording (a target's consumption), or ``algorithm`` with an IV-sample recording, is a
    one-line :class:`TraceError`.

    Power is V * I per sample under the ``trace`` kind's logger rule: a negative voltage or current
    no further below 0 than :data:`NOISE_FLOOR` (1 mV, 1 uA; calibration offsets of real recordings
    give about -1e-7 A) reads as 0, anything more negative is an error naming the sample and its
    time, and a power above :data:`MAX_POWER_W` is an error naming the sample.  Each sample holds
    until the next timestamp (the last one for the last step), so the recording's energy is
    integrated exactly; it is then averaged over windows of ``window_s`` seconds from the first
    sample (the last window ends with the recording), times ``efficiency``.
    With ``repeat`` the recording repeats with its duration as the period; otherwise the last
    window's power lasts forever.  The file is streamed in the Reader's chunks (bounded memory).

    Time jumps: consecutive timestamps must lie one sample period (10 us) apart, compared after
    rounding to 1 us as shepherd-core's ``Reader.check_timediffs`` does (it flags a file whose chunks
    do not span 10 000 sample periods of 10 us: "time-jumps").  A step shorter than the period is always an error.
    A longer step is a hole in the recording (lost buffers): with ``gaps = "error"`` (the default)
    an error naming the time and the gap; with ``gaps = "zero"`` the sample before the hole holds
    for one sample period (shepherd-core's ``core_config.SAMPLERATE_SPS``: 10 us) and the rest of the hole
    harvests nothing (the energy is the samples' own).

    ``input_power`` (a power front end's :meth:`aidi.sim.frontend.Frontend.input_power`): each sample enters
    as input_power(V, I) instead of V * I (the front end's efficiency at that sample's operating point).

    Returns segments of length ceil(duration / window_s).  Raises TraceError (missing file, not an
    HDF5 Shepherd file, wrong mode or datatype, fewer than two samples, times not increasing, time
    jumps, negative samples below the noise floor, implausible power).
    """
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: Shepherd recording not found")
    if gaps not in SHEPHERD_GAPS:
        raise TraceError(f"{path}: harvester.gaps must be one of {', '.join(SHEPHERD_GAPS)}, got {gaps!r}")
    if not (np.isfinite(window_s) and window_s > 0):
        raise TraceError(f"{path}: window_s must be a positive number of seconds, got {window_s!r}")
    try:
        import shepherd_core
    except ImportError:  # pragma: no cover - a pinned dependency
        raise TraceError(f"{path}: reading Shepherd recordings needs the shepherd-core package "
                         "(pip install -r requirements.txt)") from None
    with _shepherd_quiet():
        try:
            reader = shepherd_core.Reader(path, verbose=False)
        except KeyError:
            raise TraceError(f"{path}: not a Shepherd recording (no data group with time, voltage and current "
                             "datasets)") from None
        except Exception as exc:  # h5py and pydantic raise many kinds for a file that is not HDF5
            raise TraceError(f"{path}: not a Shepherd HDF5 recording ({exc.__class__.__name__})") from None
        with reader:
            if _shepherd_datatype(reader, path, algorithm) == "ivsample":
                return _shepherd_segments(reader, path, efficiency, repeat, window_s, gaps, input_power)
        return _shepherd_harvest(path, algorithm, efficiency, repeat, window_s, gaps, input_power)


def _shepherd_harvest(path: Path, algorithm: str, efficiency: float, repeat: bool, window_s: float,
                      gaps: str, input_power=None) -> Segments:
    """IV samples from an ivcurve recording by shepherd-core's virtual harvester ``algorithm``, then read."""
    import tempfile

    from shepherd_core.data_models.content.virtual_harvester_config import VirtualHarvesterConfig
    from shepherd_core.vsource import simulate_harvester

    try:
        config = VirtualHarvesterConfig(name=algorithm)
    except Exception:  # pydantic's ValidationError: not one of shepherd-core's named harvesters
        raise TraceError(f"{path}: harvester.algorithm {algorithm!r} is not a virtual harvester of shepherd-core "
                         "(e.g. mppt_opt, mppt_voc, mppt_po, cv20)") from None
    with tempfile.TemporaryDirectory(prefix="aidi-shepherd-") as tmp:
        out = Path(tmp) / f"{path.stem}-{algorithm}.h5"
        try:
            simulate_harvester(config, path, out)
        except ValueError as exc:
            raise TraceError(f"{path}: harvester.algorithm {algorithm!r}: " + str(exc).splitlines()[0]) from None
        return read_shepherd(out, efficiency, repeat, window_s, gaps=gaps, input_power=input_power)


def _shepherd_datatype(reader, path: Path, algorithm: str | None) -> str:
    """'ivsample' or 'ivcurve' (with an algorithm); anything else a TraceError."""
    mode = reader.get_mode()
    mode = mode.decode() if isinstance(mode, bytes) else str(mode)
    if mode != "harvester":
        raise TraceError(f"{path}: Shepherd mode {mode!r}: aidi reads harvester recordings (mode 'harvester'; "
                         "an emulator recording is a target's consumption, not a harvest)")
    raw_type = reader.h5file["data"].attrs.get("datatype", "")
    raw_type = raw_type.decode() if isinstance(raw_type, bytes) else str(raw_type)
    dtype = reader.get_datatype()
    name = dtype.value if dtype is not None else (raw_type or "missing")
    if name == "ivsample" and algorithm is not None:
        raise TraceError(f"{path}: harvester.algorithm {algorithm!r} picks operating points on IV curves, and this "
                         "recording has IV samples (datatype 'ivsample'): leave it out")
    if name == "ivcurve" and algorithm is None:
        raise TraceError(f"{path}: Shepherd datatype 'ivcurve': name the virtual harvester that picks the "
                         "operating point on each curve, e.g. harvester.algorithm = \"mppt_opt\"")
    if name not in ("ivsample", "ivcurve"):
        raise TraceError(f"{path}: Shepherd datatype {name!r}: aidi reads IV-sample recordings (datatype "
                         "'ivsample') and IV curves (datatype 'ivcurve', with harvester.algorithm)")
    return name


def _shepherd_steps(path: Path, t: np.ndarray, p: np.ndarray, first: int, period: float,
                    gaps: str) -> tuple[np.ndarray, np.ndarray]:
    """Samples at times ``t`` (s, sample ``first`` first) with power ``p`` checked against the sample
    ``period`` (see :func:`read_shepherd`); under ``gaps = "zero"`` a 0 W sample is inserted one period
    after the sample before each hole."""
    dt = np.diff(t)
    step = np.rint(dt * 1e6)  # us: shepherd-core's Reader.check_timediffs rounds seconds to 6 decimals
    nominal = round(period * 1e6)
    bad = (dt <= 0) | (step < nominal) | ((step > nominal) & (gaps == "error"))
    if bad.any():
        j = int(np.argmax(bad)) + 1
        if dt[j - 1] <= 0:
            raise TraceError(f"{path}: sample {first + j}: time does not increase ({t[j]:.9f} s after "
                             f"{t[j - 1]:.9f} s)")
        at = f"{path}: sample {first + j} (t = {t[j]:.6f} s)"
        if step[j - 1] < nominal:
            raise TraceError(f"{at}: {dt[j - 1] * 1e6:.6g} us after the sample before, less than the sample period "
                             f"{period * 1e6:g} us")
        raise TraceError(f"{at}: time jumps by {dt[j - 1]:.6g} s after the sample before (a gap in the recording; "
                         f"sample period {period * 1e6:g} us): set harvester.gaps = \"zero\" to read it as no harvest")
    holes = np.flatnonzero(step > nominal)
    if holes.shape[0]:
        t = np.insert(t, holes + 1, t[holes] + period)
        p = np.insert(p, holes + 1, 0.0)
    return t, p


def _shepherd_segments(reader, path: Path, efficiency: float, repeat: bool, window_s: float,
                       gaps: str, input_power=None) -> Segments:
    from shepherd_core.config import core_config

    n = int(reader.samples_n)
    if n < 2:
        raise TraceError(f"{path}: a Shepherd recording needs at least two samples, got {n}")
    cal = reader.get_calibration_data()
    t_gain = float(cal.time.gain)
    t0 = int(reader.ds_time[0])
    period = 1.0 / core_config.SAMPLERATE_SPS  # the testbed's 10 us (the Reader's own interval assumes no gaps)

    def chunks():  # (first index, raw time, raw voltage, raw current); the Reader's chunks, then the tail
        step = reader.CHUNK_SAMPLES_N
        full = n // step
        for k, (t, v, i) in enumerate(reader.read(0, full, step, is_raw=True)):
            yield k * step, t, v, i
        if full * step < n:
            lo = full * step
            yield lo, reader.ds_time[lo:n], reader.ds_voltage[lo:n], reader.ds_current[lo:n]

    closed: list[float] = []  # energy (J) of each finished window k * window_s .. (k + 1) * window_s
    open_e = 0.0  # energy so far in the window that is open (index len(closed))

    def add(t: np.ndarray, p: np.ndarray, t_end: float, last: bool = False) -> None:
        """Add samples starting at t (s) with power p (W), the last one lasting until t_end (s): each piece
        between sample times and window edges goes to its window (sums, no differences: a silent window is 0)."""
        nonlocal open_e
        k = len(closed) + 1  # the open window ends at edge k (> t[0]: earlier edges went to earlier calls)
        b = np.arange(k, int(np.floor(t_end / window_s)) + 2) * window_s  # one past, in case t_end / w rounds down
        b = b[b < t_end - 1e-9 * window_s] if last else b[b <= t_end]  # no sliver of a window at the very end
        cuts = np.concatenate((t, b))
        order = np.argsort(cuts, kind="stable")  # both parts are sorted: a merge
        is_sample = order < t.shape[0]
        energy = p[np.cumsum(is_sample) - 1] * np.diff(np.append(cuts[order], t_end))
        sums = np.bincount(np.cumsum(~is_sample), weights=energy, minlength=b.shape[0] + 1)
        if b.shape[0]:
            closed.append(open_e + float(sums[0]))
            closed.extend(sums[1:-1].tolist())
            open_e = float(sums[-1])
        else:
            open_e += float(sums[0])

    prev_t = prev_p = None  # the previous chunk's last sample: start time (s) and power (W)
    for first, t_raw, v_raw, i_raw in chunks():
        t = (np.asarray(t_raw, dtype=np.int64) - t0).astype(np.float64) * t_gain
        sample = lambda j, t=t, first=first: f"{path}: sample {first + j} (t = {t[j]:.6f} s)"  # noqa: E731
        v = _denoise("voltage_V", np.asarray(cal.voltage.raw_to_si(np.asarray(v_raw, dtype=np.float64))), sample)
        i = _denoise("current_A", np.asarray(cal.current.raw_to_si(np.asarray(i_raw, dtype=np.float64))), sample)
        p = v * i
        _plausible_power(p, sample)
        if input_power is not None:
            p = input_power(v, i)
        if prev_t is not None:
            t, p = np.concatenate(([prev_t], t)), np.concatenate(([prev_p], p))
            first -= 1
        if t.shape[0] > 1:  # the last step, unless it is a hole: how long the recording's last sample lasts
            last_dt = float(t[-1] - t[-2]) if round((t[-1] - t[-2]) * 1e6) == round(period * 1e6) else period
        t, p = _shepherd_steps(path, t, p, first, period, gaps)
        if t.shape[0] > 1:
            add(t[:-1], p[:-1], float(t[-1]))
        prev_t, prev_p = float(t[-1]), float(p[-1])
    duration = prev_t + last_dt
    add(np.array([prev_t]), np.array([prev_p]), duration, last=True)
    closed.append(open_e)
    m = len(closed)
    edges = np.arange(m) * window_s
    power = np.array(closed) / np.diff(np.append(edges, duration))
    return Segments(edges, power * efficiency, np.zeros(m), np.zeros(m), duration if repeat else 0.0, "shepherd")


__all__ = ["Segments", "constant", "thevenin", "read_trace", "pv", "pv_cell_voltage", "from_samples", "TraceError",
           "default_tmy3",
           "read_shepherd", "read_tmy3", "SHEPHERD_WINDOW_S", "SHEPHERD_GAPS", "MAX_POWER_W", "GHI_MAX_W_M2"]
