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
              constant, repeated with period ``t_last + (t_last - t_prev)`` unless ``repeat = false``
``pv``        a TMY3 file (pvlib's bundled ``723170TYA.CSV`` by default): hourly global horizontal
              irradiance, linearly interpolated to ``step_s`` and turned into cell power as
              irradiance * area * efficiency; starts at ``start_hour`` of the year.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class Segments:
    seg_t: np.ndarray
    seg_p: np.ndarray
    seg_g: np.ndarray
    seg_vs: np.ndarray
    period: float
    kind: str

    @property
    def time_invariant(self) -> bool:
        """True when the source never changes (constant or Thevenin)."""
        return self.seg_t.shape[0] == 1 and self.period == 0.0

    def max_power(self, v_lo: float, v_hi: float) -> float:
        """Largest power the source can put into the capacitor for V in [v_lo, v_hi] (W)."""
        from .physics import source_max_power

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


class TraceError(ValueError):
    """A trace file that cannot be used; the message names the file and the reason."""


def read_trace(path: Path, efficiency: float = 1.0, repeat: bool = True) -> Segments:
    """Read a CSV trace: ``time_s,power_W`` or ``time_s,voltage_V,current_A``."""
    path = Path(path)
    if not path.is_file():
        raise TraceError(f"{path}: trace file not found")
    try:
        df = pd.read_csv(path, comment="#")
    except Exception as exc:  # pandas raises many kinds
        raise TraceError(f"{path}: not a readable CSV ({exc.__class__.__name__}: {exc})".splitlines()[0]) from None
    cols = [c.strip() for c in df.columns]
    df.columns = cols
    if "time_s" not in cols:
        raise TraceError(f"{path}: missing column time_s (have {', '.join(cols)})")
    sign_error = None
    if "power_W" in cols:
        power = pd.to_numeric(df["power_W"], errors="coerce").to_numpy(float)
    elif "voltage_V" in cols and "current_A" in cols:
        v = pd.to_numeric(df["voltage_V"], errors="coerce").to_numpy(float)
        i = pd.to_numeric(df["current_A"], errors="coerce").to_numpy(float)
        power = v * i
        sign_error = (v < 0) | (i < 0)  # a harvester delivers: a negative voltage or current is a sign error
    else:
        raise TraceError(f"{path}: needs columns power_W or voltage_V,current_A (have {', '.join(cols)})")
    times = pd.to_numeric(df["time_s"], errors="coerce").to_numpy(float)
    # file line of each data row (pandas skipped the header, blank lines and comments)
    lines = [k + 1 for k, text in enumerate(path.read_text(errors="replace").splitlines())
             if text.strip() and not text.lstrip().startswith("#")][1:]

    def line_of(row: int) -> int:
        return lines[row] if row < len(lines) else row + 2
    if times.shape[0] < 2:
        raise TraceError(f"{path}: a trace needs at least two rows")
    bad = ~np.isfinite(times) | ~np.isfinite(power)
    if bad.any():
        row = int(np.argmax(bad))
        raise TraceError(f"{path}: line {line_of(row)}: time or power is not a finite number")
    if sign_error is not None and sign_error.any():
        row = int(np.argmax(sign_error))
        raise TraceError(f"{path}: line {line_of(row)}: negative voltage_V or current_A")
    if (power < 0).any():
        row = int(np.argmax(power < 0))
        raise TraceError(f"{path}: line {line_of(row)}: negative power {power[row]:g} W")
    if (np.diff(times) <= 0).any():
        row = int(np.argmax(np.diff(times) <= 0)) + 1
        raise TraceError(f"{path}: line {line_of(row)}: times are not strictly increasing")
    return from_samples(times, power * efficiency, repeat, "trace")


def default_tmy3() -> Path:
    import pvlib

    return Path(pvlib.__file__).parent / "data" / "723170TYA.CSV"


def pv(area_cm2: float, efficiency: float, file: Path | None = None, start_hour: float = 0.0,
       step_s: float = 60.0, hours: float = 24.0 * 7) -> Segments:
    """Solar cell power from TMY3 global horizontal irradiance (W/m^2)."""
    import pvlib

    path = Path(file) if file is not None else default_tmy3()
    if not path.is_file():
        raise TraceError(f"{path}: TMY3 file not found")
    try:
        data, _meta = pvlib.iotools.read_tmy3(str(path), map_variables=True)
    except Exception as exc:
        raise TraceError(f"{path}: not a TMY3 file ({exc.__class__.__name__})") from None
    ghi = data["ghi"].to_numpy(float)
    n_h = ghi.shape[0]
    hours_axis = np.arange(n_h, dtype=float)
    t_h = start_hour + np.arange(0.0, hours, step_s / 3600.0)
    irr = np.interp(np.mod(t_h, n_h), hours_axis, ghi, period=n_h)
    power = np.clip(irr, 0.0, None) * area_cm2 * 1e-4 * efficiency
    times = (t_h - start_hour) * 3600.0
    return from_samples(times, power, True, "pv")


__all__ = ["Segments", "constant", "thevenin", "read_trace", "pv", "from_samples", "TraceError", "default_tmy3"]
