"""Scenario TOML files: load, validate, and turn into typed dataclasses.

Every problem raises :class:`ScenarioError` whose message is one line naming the
file and the key (``lab.toml: power.v_on: must be > power.v_off (2.8)``).
Relative paths resolve against the scenario file's folder.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import tomllib
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from aidi.sim import frontend as frontends
from aidi.sim import harvesters
from aidi.sim.config import DEFAULT_DISPATCH, PowerConfig, SimConfig
from aidi.sim.platform import DEFAULT_BACKEND
from aidi.sim.platform import (BOARDS, PLACEMENTS, PLATFORMS, Board, Platform, PlatformFileError, get_platform,
                               load_platform_file)

SHIPPED_DIR = Path(__file__).parent


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message is one line naming the file and key."""


@dataclass(frozen=True)
class DeviceSpec:
    """``[device]``: the platform (a preset's name, or a platform file), its clock and SRAM budget, the board around
    it (a preset of :data:`aidi.sim.platform.BOARDS`, its currents overridable) and where weights and activations
    live ("fram": on-chip, "spi-fram": the board's external SPI FRAM)."""

    platform: str = "msp430fr5994"  # a preset's name, or a platform file as the scenario names it
    mclk_hz: float | None = None
    sram_budget_bytes: int = 4096
    #: the platform file's constants (``platform = "my-board.toml"``, aidi.sim.platform.load_platform_file)
    platform_file: Platform | None = None
    board: Board = BOARDS["none"]
    weights: str = "fram"
    activations: str = "fram"

    def make_platform(self) -> Platform:
        return get_platform(self.platform_file or self.platform, self.mclk_hz).with_board(
            self.board, weights=self.weights, activations=self.activations)


@dataclass(frozen=True)
class HarvesterSpec:
    kind: str
    power_W: float | None = None
    v_source: float | None = None
    r_ohm: float | None = None
    file: Path | None = None
    repeat: bool = True
    efficiency: float = 1.0
    area_cm2: float = 5.0
    cell_efficiency: float = 0.15
    start_hour: float = 0.0
    step_s: float = 60.0
    hours: float = 168.0
    window_s: float = harvesters.SHEPHERD_WINDOW_S
    algorithm: str | None = None  # shepherd: shepherd-core's virtual harvester for an ivcurve recording
    gaps: str = "error"  # shepherd: a hole in the recording's time stamps is an error, or "zero" (no harvest)
    p_min_W: float | None = None  # a time-varying source's guaranteed minimum (W, before efficiency), aidi check
    frontend: str | None = None  # [power] frontend: the segments enter the capacitor through its input converter
    v_input_V: float | None = None  # [power] v_input_V: the operating voltage of a source that gives none (V)

    def segments(self) -> harvesters.Segments:
        """The harvester's segments as they enter the capacitor (through ``[power] frontend``'s input converter,
        :func:`aidi.sim.frontend.through`, when there is one).  Raises TraceError or FrontendError (ValueErrors
        with one-line messages)."""
        if self.frontend is None:
            return self._raw_segments()
        fe = frontends.preset(self.frontend)
        if self.kind == "shepherd":  # per sample: read once at the harvester, once through the converter
            raw = self._raw_segments()
            cap = harvesters.read_shepherd(self.file, self.efficiency, self.repeat, self.window_s, self.algorithm,
                                           self.gaps, input_power=fe.input_power)
            return replace(cap, raw_p=raw.seg_p)
        if self.kind == "trace":
            return frontends.through(fe, harvesters.read_trace(self.file, self.efficiency, self.repeat,
                                                               input_power=fe.input_power), self.v_input_V)
        if self.kind == "pv":  # the cell's operating point per segment, under the preset's MPPT
            seg = self._raw_segments()
            ghi = seg.seg_p / (self.area_cm2 * 1e-4 * self.cell_efficiency * self.efficiency)
            v_cell, fraction = harvesters.pv_operating_point(ghi, fe.mppt_setpoint)
            return frontends.through(fe, replace(seg, seg_p=seg.seg_p * fraction), v_cell)
        return frontends.through(fe, self._raw_segments(), self.v_input_V)

    def _raw_segments(self) -> harvesters.Segments:
        if self.kind == "constant":
            return harvesters.constant(self.power_W, self.efficiency)
        if self.kind == "thevenin":
            return harvesters.thevenin(self.v_source, self.r_ohm)
        if self.kind == "trace":
            return harvesters.read_trace(self.file, self.efficiency, self.repeat)
        if self.kind == "shepherd":
            return harvesters.read_shepherd(self.file, self.efficiency, self.repeat, self.window_s, self.algorithm,
                                            self.gaps)
        return harvesters.pv(self.area_cm2, self.cell_efficiency * self.efficiency, self.file, self.start_hour,
                             self.step_s, self.hours)


@dataclass(frozen=True)
class ModelSpec:
    input: tuple[int, ...] = (1, 8, 8)  # (C, H, W); () with graph_from_onnx
    layers: tuple[dict, ...] = ()
    weights: str = "trained:digits"
    seed: int = 0
    file: Path | None = None
    epochs: int = 30
    data_dir: Path | None = None  # folder of a folder data set (cifar10, tinyimagenet) the weights were trained on
    onnx: Path | None = None  # an ONNX model: the weights (layers and input as `aidi import` wrote them)
    sample_input: Path | None = None  # .npy: one input in the ONNX model's own layout (the functional run's)
    calibration: Path | None = None  # .npy: N inputs in the ONNX model's layout (the Q15 scales are chosen on them)

    @property
    def graph_from_onnx(self) -> bool:
        """True for an ``onnx`` model without ``input`` and ``layers`` (then both are empty here): the graph is
        read from the ONNX file where the network is built (:func:`aidi.analysis.pipeline.graph_spec`), since the
        loader imports nothing of aidi.models."""
        return self.onnx is not None and not self.layers


@dataclass(frozen=True)
class ExecutionSpec:
    """"auto" or explicit values; explicit values may be one value or one per layer."""

    tile: Any = "auto"
    loop_order: Any = "auto"
    hyper_tile: Any = "auto"
    preservation: str = "hypertile"
    backend: str = DEFAULT_BACKEND


@dataclass(frozen=True)
class Scenario:
    path: Path
    name: str
    description: str
    device: DeviceSpec
    power: PowerConfig
    harvester: HarvesterSpec
    model: ModelSpec
    execution: ExecutionSpec
    sim: SimConfig
    raw: dict = field(default_factory=dict, compare=False, repr=False)

    def digest(self) -> str:
        """A hash of the scenario's content (used as a cache key)."""
        blob = json.dumps(self.raw, sort_keys=True, default=str).encode()
        if self.device.platform_file is not None:  # the file's constants, not only its name
            blob += repr(self.device.platform_file).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

    def with_values(self, **dotted: Any) -> "Scenario":
        """A copy with ``section.key`` values replaced (validated like the file)."""
        raw = json.loads(json.dumps(self.raw, default=str))
        for key, value in dotted.items():
            section, _, name = key.partition(".")
            if not name:
                raise ScenarioError(f"{self.path.name}: {key}: expected SECTION.KEY")
            raw.setdefault(section, {})[name] = value
        return parse(raw, self.path)


DEFAULT_LAYERS = (
    {"type": "conv", "k": 3, "filters": 8, "relu": True},
    {"type": "conv", "k": 3, "filters": 16, "relu": True},
    {"type": "maxpool", "k": 2, "stride": 2},
    {"type": "fc", "units": 10},
)

#: plausible range of every physical quantity (SI units, inclusive; "open" bounds in the message are exclusive).
#: Outside it the loader stops with a one-line error naming the key: the engines' closed forms keep the energy
#: balance to ~1e-12 inside these ranges (a Thevenin R*C far below 1 us, or capacitors of 1e15 F, lose it).
TEN_YEARS_S = 10 * 365 * 86400.0
LIMITS: dict[str, tuple[float, float]] = {
    "power.capacitor_F": (1e-7, 100.0),        # 100 nF .. 100 F (supercapacitors)
    "power.v_on": (0.1, 60.0),                 # V
    "power.v_off": (0.1, 60.0),
    "power.v_max": (0.1, 60.0),
    "power.v_initial": (0.0, 60.0),
    "power.leakage_A": (0.0, 1.0),             # A
    "device.board_active_A": (0.0, 1.0),       # A
    "device.board_sleep_A": (0.0, 1.0),        # A
    "harvester.power_W": (0.0, harvesters.MAX_POWER_W),  # W: 100 W, the bound on every trace's power too
    "harvester.v_source": (0.1, 60.0),         # V
    "harvester.r_ohm": (1.0, 1e9),             # ohm: 1 ohm .. 1 Gohm
    "harvester.area_cm2": (1e-3, 1e4),         # cm^2
    "harvester.start_hour": (0.0, 87600.0),    # h from the TMY3 file's first row (the window must lie in the file)
    "harvester.step_s": (1.0, 3600.0),         # s
    "harvester.hours": (1.0 / 60.0, 87600.0),  # h
    "harvester.p_min_W": (0.0, harvesters.MAX_POWER_W),  # W (open at 0: a guarantee of 0 W guarantees nothing)
    "harvester.window_s": (1e-5, 3600.0),      # s: one Shepherd sample (10 us) .. 1 h
    "sim.until_s": (1e-6, TEN_YEARS_S),        # s
    "sim.period_s": (0.0, TEN_YEARS_S),
    "sim.deadline_s": (1e-6, TEN_YEARS_S),
    "sim.seed": (0, 2**32 - 1),
    "model.seed": (0, 2**32 - 1),
    "model.epochs": (1, 100000),
}

_ALLOWED = {
    "name": None,
    "description": None,
    "device": {"platform", "mclk_hz", "sram_budget_bytes", "board", "board_active_A", "board_sleep_A", "weights",
               "activations"},
    "power": {"capacitor_F", "v_on", "v_off", "v_max", "leakage_A", "v_initial", "converter_efficiency", "frontend",
              "v_input_V", "threshold_check_s"},
    "harvester": {"kind", "power_W", "v_source", "r_ohm", "file", "repeat", "efficiency", "area_cm2",
                  "cell_efficiency", "start_hour", "step_s", "hours", "window_s", "algorithm", "gaps",
                  "p_min_W"},
    "model": {"input", "layers", "weights", "seed", "file", "epochs", "data_dir", "onnx", "sample_input",
              "calibration"},
    "execution": {"tile", "loop_order", "hyper_tile", "preservation", "backend", "dispatch", "dispatch_margin"},
    "sim": {"inferences", "until_s", "seed", "period_s", "deadline_s"},
}


class _Reader:
    def __init__(self, raw: dict, path: Path):
        self.raw = raw
        self.path = path
        self.where = path.name

    def fail(self, key: str, msg: str):
        key = key if key.isprintable() else repr(key)  # a quoted TOML key may hold a newline
        raise ScenarioError(f"{self.where}: {key}: {msg}")

    def get(self, section: str, key: str, default: Any = ..., kind: str = "float", lo: float | None = None,
            lo_open: bool = False, hi: float | None = None) -> Any:
        sec = self.raw.get(section, {})
        full = f"{section}.{key}"
        if key not in sec:
            if default is ...:
                self.fail(full, "missing")
            return default
        v = sec[key]
        if full in LIMITS and kind in ("float", "int"):
            lim_lo, lim_hi = LIMITS[full]
            if lo is None or lim_lo > lo or (lim_lo == lo and not lo_open):
                lo, lo_open = lim_lo, False
            hi = lim_hi if hi is None else min(hi, lim_hi)
        if kind in ("float", "int"):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                self.fail(full, f"expected a number, got {v!r}")
            if isinstance(v, float) and not math.isfinite(v):
                self.fail(full, f"must be a finite number, got {v!r}")
            if kind == "int":
                if isinstance(v, float) and not v.is_integer():
                    self.fail(full, f"expected an integer, got {v!r}")
                v = int(v)
            else:
                v = float(v)
            if lo is not None and (v <= lo if lo_open else v < lo):
                self.fail(full, f"must be {'>' if lo_open else '>='} {lo:g}, got {v:g}")
            if hi is not None and v > hi:
                self.fail(full, f"must be <= {hi:g}, got {v:g}")
        elif kind == "str":
            if not isinstance(v, str):
                self.fail(full, f"expected a string, got {v!r}")
        elif kind == "bool":
            if not isinstance(v, bool):
                self.fail(full, f"expected true or false, got {v!r}")
        elif kind == "path":
            if not isinstance(v, str):
                self.fail(full, f"expected a file path, got {v!r}")
            p = Path(v)
            v = (p if p.is_absolute() else (self.path.parent / p)).absolute()
        return v


def parse(raw: dict, path: Path) -> Scenario:
    """Validate a parsed TOML document (``path`` names it in errors and anchors relative paths)."""
    path = Path(path)
    r = _Reader(raw, path)
    if _depth(raw) > MAX_DEPTH:
        raise ScenarioError(f"{path.name}: {TOO_DEEP}")
    for section, value in raw.items():
        if section not in _ALLOWED:
            r.fail(section, f"unknown section{did_you_mean(section, _ALLOWED)} (known: {', '.join(_ALLOWED)})")
        allowed = _ALLOWED[section]
        if allowed is None:
            continue
        if not isinstance(value, dict):
            r.fail(section, "expected a table")
        for key in value:
            if key not in allowed:
                r.fail(f"{section}.{key}",
                       f"unknown key{did_you_mean(key, allowed)} (known: {', '.join(sorted(allowed))})")

    platform = r.get("device", "platform", "msp430fr5994", "str")
    platform_file = None
    if platform.endswith(".toml"):  # a platform file (aidi calibrate writes them), relative to the scenario
        try:
            platform_file = load_platform_file(r.get("device", "platform", kind="path"))
        except PlatformFileError as exc:
            r.fail("device.platform", str(exc))
    elif platform not in PLATFORMS:
        r.fail("device.platform", f"unknown platform {platform!r}{did_you_mean(platform, PLATFORMS)} "
                                  f"(known: {', '.join(PLATFORMS)}, or a platform file NAME.toml)")
    device = DeviceSpec(
        platform=platform,
        mclk_hz=r.get("device", "mclk_hz", None, lo=0.0, lo_open=True, hi=16e6),
        sram_budget_bytes=r.get("device", "sram_budget_bytes", 4096, "int", lo=0, lo_open=True,
                                hi=(platform_file or PLATFORMS[platform]).sram_bytes),
        platform_file=platform_file,
        **_board_keys(r, platform_file or platform),
    )

    fe_name = r.get("power", "frontend", None, "str")
    fe = None
    if fe_name is not None:
        try:
            fe = frontends.preset(fe_name)
        except frontends.FrontendError as exc:
            raise ScenarioError(f"{r.where}: {exc}") from None
        if "converter_efficiency" in raw.get("power", {}):
            r.fail("power.converter_efficiency", f"not with power.frontend: the {fe_name} preset's output LUT gives "
                                                 "the converter's efficiency")
        if fe.capacitor_F is None and "capacitor_F" not in raw.get("power", {}):
            r.fail("power.capacitor_F", f"missing: the {fe_name} front end has no storage of its own")
    cap = r.get("power", "capacitor_F", fe.capacitor_F if fe else ..., kind="float", lo=0.0, lo_open=True)
    v_off = r.get("power", "v_off", fe.v_off if fe else ..., kind="float", lo=0.0, lo_open=True)
    v_on = r.get("power", "v_on", fe.v_on if fe else ..., kind="float", lo=0.0, lo_open=True)
    if v_on <= v_off:
        r.fail("power.v_on", f"must be > power.v_off ({v_off:g} V), got {v_on:g} V")
    v_max = r.get("power", "v_max", max(v_on, fe.v_max if fe else 3.6), kind="float")
    if v_max < v_on:
        r.fail("power.v_max", f"must be >= power.v_on ({v_on:g} V), got {v_max:g} V")
    v_init = r.get("power", "v_initial", min(fe.v_initial, v_max) if fe else 0.0, kind="float", lo=0.0, hi=v_max)
    plat = device.make_platform()
    board_sleep = device.board.sleep_A
    # power good decided every threshold_check_s (the preset's interval; 0: at the threshold), the MCU's floor below
    check_s = r.get("power", "threshold_check_s", fe.power_good_check_s if fe else 0.0, kind="float", lo=0.0)
    v_floor = min(fe.v_floor if fe else frontends.MCU_MIN_SUPPLY_V, v_off) if check_s > 0.0 else 0.0
    power = PowerConfig(
        capacitor_F=cap, v_on=v_on, v_off=v_off, v_max=v_max,
        leakage_A=r.get("power", "leakage_A", fe.leakage_A(v_on, v_off) if fe else 0.0, lo=0.0) + board_sleep,
        v_initial=v_init,
        converter_efficiency=(frontends.reference_efficiency(fe, plat.active_power_W, plat.v_nominal) if fe else
                              r.get("power", "converter_efficiency", 1.0, lo=0.0, lo_open=True, hi=1.0)),
        frontend=fe_name,
        v_input_V=r.get("power", "v_input_V", None, lo=0.0, lo_open=True),
        load_v_nominal_V=plat.v_nominal,
        board_sleep_A=board_sleep,
        threshold_check_s=check_s,
        v_floor=v_floor,
    )
    if power.v_input_V is not None and fe is None:
        r.fail("power.v_input_V", "only with power.frontend (the harvester's operating voltage at its input)")
    gives_voltage = {"pv": "a pv harvester: its cell model gives the operating voltage per segment",
                     "thevenin": "a thevenin harvester: the front end runs it at its maximum-power point, v_source / 2",
                     "shepherd": "a shepherd recording: it gives the voltage per sample"}
    if power.v_input_V is not None and r.get("harvester", "kind", None, "str") in gives_voltage:
        r.fail("power.v_input_V", f"not with {gives_voltage[r.get('harvester', 'kind', None, 'str')]}")

    if "harvester" not in raw:
        r.fail("harvester", "missing section")
    kind = r.get("harvester", "kind", kind="str")
    kinds = ("constant", "thevenin", "trace", "pv", "shepherd")
    if kind not in kinds:
        r.fail("harvester.kind", f"unknown kind {kind!r}{did_you_mean(kind, kinds)} (known: {', '.join(kinds)})")
    hk: dict[str, Any] = {"kind": kind, "efficiency": r.get("harvester", "efficiency", 1.0, lo=0.0, lo_open=True,
                                                             hi=1.0)}
    if kind == "constant":
        hk["power_W"] = r.get("harvester", "power_W", lo=0.0)
    elif kind == "thevenin":
        hk["v_source"] = r.get("harvester", "v_source", lo=0.0, lo_open=True)
        hk["r_ohm"] = r.get("harvester", "r_ohm", lo=0.0, lo_open=True)
        # the capacitor charges towards the source voltage (less a front end's input drop), unless a boost
        # converter stands between them (it then delivers power at any storage voltage)
        drop = fe.v_input_drop if fe is not None else 0.0
        if not (fe is not None and fe.boost) and hk["v_source"] - drop <= v_on:
            seen = f"{hk['v_source']:g} V" + (f" less {fe.name}'s {drop:g} V input drop" if drop else "")
            r.fail("harvester.v_source", f"{seen} must be above power.v_on ({v_on:g} V): the capacitor "
                                         "charges towards the source voltage and never reaches v_on, so the device "
                                         "can never boot")
        if not (fe is not None and fe.boost) and v_init > hk["v_source"] - drop:
            r.fail("power.v_initial", f"must be <= harvester.v_source ({hk['v_source'] - drop:g} V)")
    elif kind == "trace":
        hk["file"] = r.get("harvester", "file", kind="path")
        hk["repeat"] = r.get("harvester", "repeat", True, kind="bool")
    elif kind == "shepherd":
        hk["file"] = r.get("harvester", "file", kind="path")
        hk["repeat"] = r.get("harvester", "repeat", True, kind="bool")
        hk["window_s"] = r.get("harvester", "window_s", harvesters.SHEPHERD_WINDOW_S)
        hk["algorithm"] = r.get("harvester", "algorithm", None, "str")
        hk["gaps"] = r.get("harvester", "gaps", "error", "str")
        if hk["gaps"] not in harvesters.SHEPHERD_GAPS:
            r.fail("harvester.gaps", f"expected {' or '.join(map(repr, harvesters.SHEPHERD_GAPS))}, "
                                     f"got {hk['gaps']!r}")
    else:
        f = r.get("harvester", "file", None, kind="path")
        hk["file"] = f
        hk["area_cm2"] = r.get("harvester", "area_cm2", 5.0, lo=0.0, lo_open=True)
        hk["cell_efficiency"] = r.get("harvester", "cell_efficiency", 0.15, lo=0.0, lo_open=True, hi=1.0)
        hk["start_hour"] = r.get("harvester", "start_hour", 0.0, lo=0.0)
        hk["step_s"] = r.get("harvester", "step_s", 60.0, lo=1.0)
        hk["hours"] = r.get("harvester", "hours", 168.0, lo=0.0, lo_open=True)
    if kind in ("constant", "thevenin"):
        if "p_min_W" in raw["harvester"]:
            r.fail("harvester.p_min_W", f"only for a time-varying source (trace, pv, ...): a {kind} source's "
                                        "minimum comes from its model")
    else:
        hk["p_min_W"] = r.get("harvester", "p_min_W", None, lo=0.0, lo_open=True)
    hk["frontend"], hk["v_input_V"] = fe_name, power.v_input_V
    harvester = HarvesterSpec(**hk)
    if fe is not None and kind in ("constant", "thevenin"):  # no file to read: the front end's range checked now
        try:
            frontends.through(fe, harvester._raw_segments(), power.v_input_V)
        except frontends.FrontendError as exc:
            raise ScenarioError(f"{r.where}: {exc}") from None
    if kind in ("trace", "pv", "shepherd") and harvester.file is not None and not harvester.file.is_file():
        r.fail("harvester.file", f"file not found: {harvester.file}")

    onnx_keys = _onnx_keys(r)
    shape, layers = [], []  # an onnx model without input and layers: read from the graph (graph_from_onnx)
    if onnx_keys["onnx"] is None or "layers" in raw.get("model", {}):
        shape = raw.get("model", {}).get("input", [1, 8, 8])
        if (not isinstance(shape, list) or len(shape) != 3
                or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in shape)):
            r.fail("model.input", f"expected [C, H, W] of positive integers, got {shape!r}")
        layers = raw.get("model", {}).get("layers", list(DEFAULT_LAYERS))
        if not isinstance(layers, list) or not layers or not all(isinstance(x, dict) for x in layers):
            r.fail("model.layers", "expected a non-empty array of tables like {type=\"conv\", k=3, filters=8}")
    weights = r.get("model", "weights", "trained:digits", "str")
    mfile = r.get("model", "file", None, kind="path")
    if mfile is not None and not mfile.is_file():
        r.fail("model.file", f"file not found: {mfile}")
    if weights not in ("random", "trained:digits") and not weights.startswith("trained:"):
        # a file saved by `aidi nas` may be named in `weights` too (the same as `file = ...`)
        wfile = r.get("model", "weights", kind="path")
        if not wfile.is_file():
            r.fail("model.weights", f"expected \"random\", \"trained:<dataset>\" or a weights file saved by "
                                    f"`aidi nas` (file not found: {wfile})")
        if mfile is not None and mfile != wfile:
            r.fail("model.weights", f"names a file ({wfile.name}) and model.file names another ({mfile.name}): "
                                    "give one")
        mfile, weights = wfile, str(wfile)
    ddir = r.get("model", "data_dir", None, kind="path")
    if ddir is not None and not ddir.is_dir():
        r.fail("model.data_dir", f"not a folder: {ddir}")
    model = ModelSpec(input=tuple(shape), layers=tuple(layers), weights=weights,
                      seed=r.get("model", "seed", 0, "int", lo=0), file=mfile,
                      epochs=r.get("model", "epochs", 30, "int", lo=1), data_dir=ddir, **onnx_keys)

    ex = raw.get("execution", {})
    pres = r.get("execution", "preservation", "hypertile", "str")
    if pres not in ("tile", "hypertile", "layer"):
        r.fail("execution.preservation", f"expected tile, hypertile or layer, got {pres!r}")
    backend = r.get("execution", "backend", DEFAULT_BACKEND, "str")
    if backend not in ("lea", "cpu", "auto"):
        r.fail("execution.backend", f"expected lea, cpu or auto, got {backend!r}")
    lo = ex.get("loop_order", "auto")
    orders = ("auto", "reuse_I", "reuse_W", "reuse_O")
    for o in (lo if isinstance(lo, list) else [lo]):
        if o not in orders:
            r.fail("execution.loop_order", f"expected one of {', '.join(orders)} (or a list of them), got {o!r}")
    hyper = ex.get("hyper_tile", "auto")
    for h in (hyper if isinstance(hyper, list) else [hyper]):
        if h != "auto" and not (isinstance(h, int) and not isinstance(h, bool) and h >= 1):
            r.fail("execution.hyper_tile", f"expected \"auto\" or a positive integer (or a list), got {h!r}")
    tile = ex.get("tile", "auto")
    _check_tile(r, tile)
    execution = ExecutionSpec(tile=tile, loop_order=lo, hyper_tile=hyper, preservation=pres,
                              backend=backend)

    dispatch = r.get("execution", "dispatch", DEFAULT_DISPATCH, "str")
    if dispatch not in ("greedy", "energy_aware"):
        r.fail("execution.dispatch", f"expected greedy or energy_aware, got {dispatch!r}")
    margin = r.get("execution", "dispatch_margin", 0.05, lo=0.0, hi=10.0)
    until = r.get("sim", "until_s", 7 * 86400.0, lo=0.0, lo_open=True)
    deadline = r.get("sim", "deadline_s", None, lo=0.0, lo_open=True)
    sim = SimConfig(inferences=r.get("sim", "inferences", 1, "int", lo=1, hi=1e6), until_s=until,
                    seed=r.get("sim", "seed", 0, "int", lo=0), period_s=r.get("sim", "period_s", 0.0, lo=0.0),
                    deadline_s=deadline, dispatch=dispatch, dispatch_margin=margin)
    for key in ("name", "description"):
        if key in raw and not isinstance(raw[key], str):
            r.fail(key, f"expected a string, got {raw[key]!r}")
    name = raw.get("name", path.stem)
    return Scenario(path=path, name=str(name), description=str(raw.get("description", "")), device=device,
                    power=power, harvester=harvester, model=model, execution=execution, sim=sim, raw=raw)


def _board_keys(r: _Reader, platform: "str | Platform") -> dict:
    """``[device] board`` (a preset of :data:`aidi.sim.platform.BOARDS`, default "none"), ``board_active_A`` /
    ``board_sleep_A`` (override the preset's currents), ``weights`` / ``activations`` ("fram" | "spi-fram")."""
    name = r.get("device", "board", "none", "str")
    if name not in BOARDS:
        r.fail("device.board", f"unknown board preset {name!r}{did_you_mean(name, BOARDS)} (known: {', '.join(BOARDS)})")
    board = BOARDS[name]
    board = replace(board, active_A=r.get("device", "board_active_A", board.active_A, lo=0.0),
                    sleep_A=r.get("device", "board_sleep_A", board.sleep_A, lo=0.0))
    out = {"board": board}
    for key in ("weights", "activations"):
        where = r.get("device", key, "fram", "str")
        if where not in PLACEMENTS:
            r.fail(f"device.{key}", f"unknown placement {where!r}{did_you_mean(where, PLACEMENTS)} "
                                    f"(known: {', '.join(PLACEMENTS)})")
        out[key] = where
    try:
        get_platform(platform).with_board(board, weights=out["weights"], activations=out["activations"])
    except ValueError as exc:
        r.fail("device." + str(exc).split(":", 1)[0], str(exc).split(": ", 1)[1])
    return out


TILE_KEYS = ("Tr", "Tc", "Tm", "Tn")


def _check_tile(r: _Reader, tile: Any) -> None:
    """``execution.tile``: "auto", one tile ([Tr, Tc, Tm, Tn] or a table of those keys, Tn optional) for every
    layer, or an array with one "auto" or tile per executed layer (their number is checked against the
    network later).  A tile size must be a positive integer (not 1.5, true or "2")."""
    def sizes(t, key: str) -> None:
        if isinstance(t, dict):
            unknown = [k for k in t if k not in TILE_KEYS]
            if unknown:
                r.fail(key, f"unknown tile key {unknown[0]!r} (known: {', '.join(TILE_KEYS)})")
            missing = [k for k in TILE_KEYS[:3] if k not in t]
            if missing:
                r.fail(key, f"missing tile key {missing[0]!r}")
            values = list(t.values())
        elif isinstance(t, list) and len(t) == 4:
            values = t
        else:
            r.fail(key, f"expected \"auto\", [Tr, Tc, Tm, Tn] or {{Tr=, Tc=, Tm=, Tn=}}, got {t!r}")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                r.fail(key, f"a tile size must be a positive integer, got {v!r}")

    if tile == "auto":
        return
    if isinstance(tile, list) and tile and all(isinstance(t, (list, dict, str)) for t in tile):
        for k, t in enumerate(tile):  # one per executed layer
            if t != "auto":
                sizes(t, f"execution.tile[{k}]")
        return
    sizes(tile, "execution.tile")


#: deepest nesting of arrays and tables a scenario may have (its own keys nest at most 4 deep:
#: [model] layers = [{inputs = [...]}]); deeper documents are refused before anything walks them
MAX_DEPTH = 32
TOO_DEEP = f"arrays or tables nested more than {MAX_DEPTH} deep (a scenario's own keys nest at most 4 deep)"


def _depth(doc: Any) -> int:
    """Nesting depth of arrays and tables in ``doc`` (a table of scalars is 1), without recursion."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, d = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is None:
            continue
        deepest = max(deepest, d)
        if d <= MAX_DEPTH:
            stack.extend((c, d + 1) for c in children)
    return deepest


def _onnx_keys(r: _Reader) -> dict:
    """``[model] onnx``, ``sample_input``, ``calibration``: readable, non-empty files; the two ``.npy`` files only
    with ``onnx``, which carries the weights (no ``weights``/``file``).  ``input`` and ``layers`` come both (as
    ``aidi import`` writes them; checked against the graph when the weights load) or neither (then the graph is
    read from the file where the network is built, :attr:`ModelSpec.graph_from_onnx`): the loader reads no ONNX."""
    m = r.raw.get("model", {})
    out = {k: r.get("model", k, None, kind="path") for k in ("onnx", "sample_input", "calibration")}
    if out["onnx"] is None:
        for k in ("sample_input", "calibration"):
            if out[k] is not None:
                r.fail(f"model.{k}", "only with model.onnx (the inputs of an imported ONNX model)")
        return out
    for k, f in out.items():
        if f is None:
            continue
        if not f.is_file():
            r.fail(f"model.{k}", f"file not found: {f}")
        try:
            with f.open("rb") as fh:
                empty = not fh.read(1)
        except OSError as exc:
            r.fail(f"model.{k}", f"cannot read {f} ({exc.strerror or type(exc).__name__})")
        if empty:
            r.fail(f"model.{k}", f"empty file: {f}")
    for k in ("weights", "file", "epochs", "data_dir"):
        if k in m:
            r.fail(f"model.{k}", "not with model.onnx, which carries its own weights")
    given = [k for k in ("input", "layers") if k in m]
    if len(given) == 1:
        other = "layers" if given[0] == "input" else "input"
        r.fail(f"model.{other}", f"missing: with model.onnx give both input and layers (as `aidi import "
                                 f"{out['onnx'].name} --out DIR` writes them) or neither (read from the graph)")
    return out


def did_you_mean(word: str, known) -> str:
    """`` (did you mean 'x'?)`` for the closest of ``known`` (difflib, case-insensitive), or ``""``."""
    if not isinstance(word, str):
        return ""
    by_lower = {str(k).lower(): str(k) for k in known}
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)
    return f" (did you mean {by_lower[close[0]]!r}?)" if close else ""


def load(path: str | Path) -> Scenario:
    """Read and validate a scenario file; a bare name (``lab-1mF`` or ``lab-1mF.toml``, no such file here)
    selects a shipped scenario.  Raises ScenarioError; a missing file's message lists the shipped names and
    suggests the closest one."""
    p = Path(path)
    bare = p.parent == Path(".") and p.suffix in ("", ".toml")
    if not p.exists() and bare and (SHIPPED_DIR / f"{p.stem}.toml").is_file():
        p = SHIPPED_DIR / f"{p.stem}.toml"
    if not p.is_file():
        names = [f.stem for f in shipped()]
        hint = did_you_mean(p.stem, names) if bare else ""
        raise ScenarioError(f"{p}: scenario file not found{hint} (shipped scenarios: {', '.join(names)}; "
                            "`aidi scenarios` describes them)")
    try:
        raw = tomllib.loads(p.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioError(f"{p.name}: not valid TOML ({exc})") from None
    except UnicodeDecodeError:
        raise ScenarioError(f"{p.name}: not a text file") from None
    except RecursionError:  # tomllib recurses once per nested array or inline table
        raise ScenarioError(f"{p.name}: {TOO_DEEP}") from None
    return parse(raw, p)


def shipped() -> list[Path]:
    """The scenario files that ship with aidi."""
    return sorted(SHIPPED_DIR.glob("*.toml"))


def describe_shipped() -> list[dict]:
    """Name, one-line description and path of every shipped scenario, by name.

    The description is the file's ``description`` key, else its leading ``#`` comment (first line).
    """
    rows = []
    for f in shipped():
        text = f.read_text()
        raw = tomllib.loads(text)
        desc = raw.get("description", "")
        if not desc:
            lead = [ln.lstrip("#").strip() for ln in text.splitlines() if ln.startswith("#")][:1]
            desc = lead[0] if lead and text.lstrip().startswith("#") else ""
        rows.append({"name": f.stem, "description": " ".join(str(desc).split()), "path": str(f)})
    return rows


def as_dict(s: Scenario) -> dict:
    d = asdict(s)
    d.pop("raw", None)
    return json.loads(json.dumps(d, default=str))


__all__ = ["Scenario", "ScenarioError", "load", "parse", "shipped", "describe_shipped", "did_you_mean", "replace",
           "as_dict"]
