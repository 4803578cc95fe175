"""The Python API: load a scenario, change it, simulate it with either engine, check it, sweep it, explore its
execution designs, search networks for it.

Everything here is exported by the package itself (``import aidi``) and is the stable surface;
the modules behind it may change.  The functions are the command line's own steps
(:mod:`~aidi.analysis.pipeline`, :mod:`~aidi.analysis.check`, :mod:`~aidi.analysis.sweep`,
:mod:`~aidi.analysis.explore`, :mod:`~aidi.analysis.nas_run`), so a result here equals the matching
``aidi ... --json`` object (the ``json`` field of every result is that object).

    >>> import aidi
    >>> sc = aidi.load("lab-1mF").replace({"power.capacitor_F": 4.7e-4})
    >>> r = aidi.run(sc, engine="oracle")
    >>> r.latency_s, r.power_cycles, r.energy.loc["compute", "energy_J"]

Errors: every problem with what the caller gave (a missing file, a bad key or value, a scenario
that cannot progress, an unknown engine) raises :class:`UserError` (a ``ValueError``) whose
message is the one line ``aidi`` prints after ``aidi: error:``; the original exception is its
``__cause__``.  Anything else is a bug and propagates unchanged.

Units are SI throughout (s, J, W, V, F, ohm); column and field names carry them (``latency_s``,
``energy_J``).  Results are deterministic given the scenario (its ``[model] seed`` and
``[sim] seed``) and the ``seed`` arguments.
"""

from __future__ import annotations

import contextlib
import copy
import math
import os
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

from aidi.scenarios import loader

from . import explore as _explore
from .errors import UserError, one_line, user_errors

if TYPE_CHECKING:  # pragma: no cover - annotations only; pandas/numpy load when a result is made
    import numpy as np
    import pandas as pd

    from aidi.sim.workload import RunRecord

    from .pipeline import Built

ENGINES = ("des", "oracle")

__all__ = ["UserError", "Scenario", "load", "loads", "shipped_scenarios", "run", "RunResult", "check", "CheckResult",
           "sweep", "SweepResult", "nas", "NasResult", "nas_compare", "NasCompareResult", "explore", "ExploreResult",
           "import_onnx", "from_torch", "ImportResult"]


# --------------------------------------------------------------------------- errors
@contextlib.contextmanager
def _user_errors(context: str = "") -> Iterator[None]:
    """Re-raise an expected error (:func:`aidi.analysis.errors.user_errors`) as one-line :class:`UserError`."""
    try:
        yield
    except user_errors() as exc:
        raise UserError(one_line(exc, context)) from exc


def _prepare_out(out: str | os.PathLike, force: bool) -> Path:
    """An output folder made ready (:func:`aidi.analysis.outdir.prepare`; errors name it ``out``)."""
    from . import outdir

    with _user_errors():
        return outdir.prepare(Path(out), force, option="out")


# --------------------------------------------------------------------------- option checks
# One check per option, made by these functions for the API and for the command line alike (``aidi`` calls
# them with ``cli=True``, so its message names the option as it is typed, ``--top``, where the API's names
# the parameter, ``top_k``).  Each raises UserError before any work starts.

#: the command line's spelling of a parameter, where it is not ``--`` and the name with dashes
CLI_OPTIONS = {"top_k": "--top", "requirement_s": "--requirement"}


def option_name(param: str, cli: bool = False) -> str:
    """``param`` as an error message names it: the parameter, or with ``cli`` the command line's option."""
    return (CLI_OPTIONS.get(param) or "--" + param.replace("_", "-")) if cli else param


def _choice(param: str, value: Any, choices: Sequence[str], cli: bool = False) -> str:
    if value not in choices:
        raise UserError(f"{option_name(param, cli)}: expected one of {', '.join(choices)}, got {value!r}")
    return value


def _positive_int(param: str, value: Any, cli: bool = False, least: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        what = "a positive integer" if least == 1 else f"an integer >= {least}"
        raise UserError(f"{option_name(param, cli)}: must be {what}, got {value!r}")
    return value


def run_options(engine: str, functional: bool | None, cli: bool = False) -> bool:
    """Check :func:`run`'s (``aidi run``'s) options; returns whether the run is functional: ``functional`` None
    means True under "des" and False under "oracle".  UserError: an unknown engine, or ``functional`` asked of
    the oracle, which computes no output."""
    _choice("engine", engine, ENGINES, cli)
    if functional is None:
        return engine == "des"
    if functional and engine != "des":
        use = "--engine des, or leave out --functional" if cli else 'engine="des"'
        raise UserError(f"{option_name('functional', cli)}: only the des engine computes the network's output "
                        f"(use {use})")
    return bool(functional)


def _workers(workers: int, dask: str | None, cli: bool) -> None:
    from .parallel import check_address

    _positive_int("workers", workers, cli)
    check_address(dask, option_name("dask", cli))


def sweep_options(engine: str, workers: int, dask: str | None = None, cli: bool = False) -> None:
    """Check :func:`sweep`'s (``aidi sweep``'s) engine, worker count (processes, >= 1) and Dask address
    (None, "local" or HOST:PORT: :func:`aidi.analysis.parallel.check_address`)."""
    _choice("engine", engine, ENGINES, cli)
    _workers(workers, dask, cli)


def explore_options(top_k: int, cli: bool = False) -> None:
    """Check :func:`explore`'s (``aidi explore``'s) alternatives per layer (>= 1)."""
    _positive_int("top_k", top_k, cli)


def nas_options(controller: str, dataset: str, budget: int, workers: int, seed: int = 0,
                requirement_s: float | None = None, dask: str | None = None, cli: bool = False) -> None:
    """Check a search's options (:func:`nas`, :func:`nas_compare`, ``aidi nas``): controller and data set by
    name, ``budget`` and ``workers`` >= 1, ``seed`` >= 0 (numpy's seed sequences take no negative seed),
    ``requirement_s`` a positive number of seconds or None, ``dask`` as :func:`sweep_options` checks it."""
    from aidi.models.nas import CONTROLLERS

    from .nas_run import DATASETS

    _choice("controller", controller, CONTROLLERS, cli)
    _choice("dataset", dataset, DATASETS, cli)
    _positive_int("budget", budget, cli)
    _workers(workers, dask, cli)
    _positive_int("seed", seed, cli, least=0)
    if requirement_s is not None and (isinstance(requirement_s, bool) or not isinstance(requirement_s, (int, float))
                                      or not math.isfinite(requirement_s) or requirement_s <= 0):
        raise UserError(f"{option_name('requirement_s', cli)}: must be a positive number of seconds, "
                        f"got {requirement_s!r}")


# --------------------------------------------------------------------------- scenarios
def _plain(v: Any) -> Any:
    """A value as TOML would hold it: tuples as lists, paths as strings, numpy scalars as Python numbers."""
    if isinstance(v, Mapping):
        return {str(k): _plain(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, os.PathLike):
        return os.fspath(v)
    if hasattr(v, "item") and callable(v.item) and not isinstance(v, (str, bytes)):  # numpy scalar
        return v.item()
    return v


class Scenario(loader.Scenario):
    """A validated scenario (frozen): what ``aidi run SCENARIO`` reads from a TOML file.

    Made by :func:`load` / :func:`loads`; change it with :meth:`replace`.  Fields (all read-only):

    * ``path`` (Path): the file it came from; relative paths in it resolve against its folder,
      and errors name its file name.  ``name``, ``description`` (str).
    * ``device`` (:class:`~aidi.scenarios.loader.DeviceSpec`): ``platform``, ``mclk_hz`` (Hz),
      ``sram_budget_bytes`` (B).
    * ``power`` (:class:`~aidi.sim.config.PowerConfig`): ``capacitor_F`` (F), ``v_on``, ``v_off``,
      ``v_max``, ``v_initial`` (V), ``leakage_A`` (A), ``converter_efficiency``; ``e_cycle_J`` (J).
    * ``harvester`` (:class:`~aidi.scenarios.loader.HarvesterSpec`): ``kind`` and its values
      (``power_W`` W; ``v_source`` V, ``r_ohm`` ohm; ``file`` ...).
    * ``model`` (:class:`~aidi.scenarios.loader.ModelSpec`): ``input`` [C, H, W], ``layers``, ``weights``.
    * ``execution`` (:class:`~aidi.scenarios.loader.ExecutionSpec`), ``sim``
      (:class:`~aidi.sim.config.SimConfig`: ``inferences``, ``until_s``, ``deadline_s`` s, ``seed``).

    Every value was checked by the loader: the ranges are :data:`aidi.scenarios.loader.LIMITS`.
    """

    def replace(self, changes: Mapping[str, Any] | None = None, /, **tables: Any) -> "Scenario":
        """A copy with values changed, validated exactly as a file is (same one-line errors).

        ``changes``: ``{"section.key": value}`` (e.g. ``{"power.capacitor_F": 4.7e-4}``), or the top-level
        ``"name"`` / ``"description"``; ``tables``: whole sections as keywords, merged key by key
        (``replace(power={"v_on": 3.1}, sim={"inferences": 3})``) or ``name="..."``.  A value of ``None``
        removes the key (its default applies again).  Tuples become TOML arrays, paths strings.

        Raises :class:`UserError` naming the scenario's file and the key (``lab-1mF.toml: power.v_on:
        must be > power.v_off (2.8 V), got 2.7 V``).
        """
        dotted: dict[str, Any] = dict(changes or {})
        for sec, value in tables.items():
            if isinstance(value, Mapping):
                dotted.update({f"{sec}.{k}": v for k, v in value.items()})
            else:
                dotted[sec] = value
        doc = self.document()
        for key, value in dotted.items():
            section, dot, name = str(key).partition(".")
            if not dot:
                target, name = doc, section
            else:
                target = doc.setdefault(section, {})
                if not isinstance(target, dict):
                    raise UserError(f"{self.path.name}: {key}: {section} is not a table")
            if value is None:
                target.pop(name, None)
            else:
                target[name] = _plain(value)
        return _parse(doc, self.path)

    def document(self) -> dict:
        """The scenario as its TOML document (a deep copy: ``{"power": {"capacitor_F": ...}, ...}``)."""
        return copy.deepcopy(self.raw)

    def to_toml(self) -> str:
        """The scenario as TOML text; file paths are written absolute, so :func:`loads` reads it anywhere."""
        from .nas_run import dumps_toml

        doc = self.document()
        h, m = doc.get("harvester", {}), doc.get("model", {})
        if "file" in h and self.harvester.file is not None:
            h["file"] = str(self.harvester.file)
        if self.model.file is not None:
            for key in ("file", "weights"):
                if key in m and m[key] not in ("random",) and not str(m[key]).startswith("trained:"):
                    m[key] = str(self.model.file)
        if "data_dir" in m and self.model.data_dir is not None:
            m["data_dir"] = str(self.model.data_dir)
        for key in ("onnx", "sample_input", "calibration"):  # an imported model's files
            if key in m and getattr(self.model, key) is not None:
                m[key] = str(getattr(self.model, key))
        return dumps_toml(doc)


def _wrap(sc: loader.Scenario) -> Scenario:
    return sc if isinstance(sc, Scenario) else Scenario(**{f.name: getattr(sc, f.name) for f in fields(sc)})


def _parse(doc: dict, path: Path) -> Scenario:
    with _user_errors():
        return _wrap(loader.parse(doc, path))


def load(source: str | os.PathLike | Mapping[str, Any] | loader.Scenario, base_dir: str | os.PathLike | None = None
         ) -> Scenario:
    """Load and validate a scenario.

    ``source``: the name of a shipped scenario (``"lab-1mF"``, see :func:`shipped_scenarios`), a path
    to a TOML file, a TOML document as a dict (``{"power": {"capacitor_F": 1e-3, ...}, ...}``; its
    relative paths resolve against ``base_dir``, default the working folder, and errors name it
    ``<dict>``), or a Scenario (returned as is).  TOML text: :func:`loads`.

    Raises :class:`UserError` with the loader's one line (``nosuch: scenario file not found``,
    ``lab.toml: power.v_on: must be > power.v_off (2.8 V), got 2.7 V``).
    """
    if isinstance(source, loader.Scenario):
        return _wrap(source)
    if isinstance(source, Mapping):
        return _parse(_plain(source), Path(base_dir or Path.cwd()).absolute() / "<dict>")
    if not isinstance(source, (str, os.PathLike)):
        raise UserError(f"load: expected a scenario name, a path, a dict or a Scenario, got {type(source).__name__}")
    with _user_errors():
        return _wrap(loader.load(source))


def loads(text: str, base_dir: str | os.PathLike | None = None, name: str = "<string>") -> Scenario:
    """Load a scenario from TOML text; relative paths resolve against ``base_dir`` (default: the working
    folder) and errors name ``name``.  Raises :class:`UserError` (``<string>: not valid TOML (...)``)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"{name}: not valid TOML ({exc})") from exc
    return _parse(doc, Path(base_dir or Path.cwd()).absolute() / name)


def shipped_scenarios() -> list[str]:
    """Names of the scenarios shipped with aidi (each loads with :func:`load` by name)."""
    return [p.stem for p in loader.shipped()]


def _scenario_and_context(scenario: Any) -> tuple[Scenario, str]:
    sc = load(scenario)
    return sc, sc.path.name


# --------------------------------------------------------------------------- run
@dataclass(frozen=True, eq=False)
class RunResult:
    """One simulation (``aidi run --json`` as typed fields and DataFrames).

    Fields: ``scenario`` (name), ``engine`` ("des" | "oracle"), ``completed``, ``reason`` (why not,
    "" when completed), ``latency_s`` (s from t = 0 until the last inference completed; None when it
    did not), ``inference_latencies_s`` (s, one per completed inference), ``power_cycles``,
    ``on_time_s`` / ``off_time_s`` (s the MCU was on / off), ``units`` (atomic units per inference),
    ``units_executed`` / ``units_reexecuted`` / ``units_lost``, ``meets_deadline`` (None without
    ``[sim] deadline_s``), ``sram_max_bytes`` (B), ``designs`` (layer name -> execution design),
    ``output`` (int16 array of the last layer's Q15 output, functional DES runs only, else None),
    ``output_matches_reference`` (bool, or None when not functional).

    DataFrames:

    * ``energy``: one row per category (index ``category``: compute, data_movement, preservation,
      restore, reexecution, ..., converter_loss), columns ``energy_J`` (J) and ``fraction`` (of
      the consumed energy); the rows sum to ``energy_totals["consumed"]``.
    * ``energy_totals``: a Series (J) indexed harvested, consumed, stored_initial, stored_final,
      leaked, clipped; stored_initial + harvested = consumed + leaked + clipped + stored_final.
    * ``energy_by_layer``: index ``layer`` (int), columns ``name`` and ``energy_J`` (J, units only).
    * ``events``: the SimPy event log, one row per activity (charge, boot, unit, ...), columns
      :data:`aidi.sim.des.EVENT_COLUMNS` (times s, voltages V, ``energy_J`` J); empty (same columns)
      for the oracle, which keeps no log, or when ``run(..., events=False)``.

    ``json``: the exact ``aidi run --json`` object (strict: undefined numbers are None).
    """

    scenario: str
    engine: str
    completed: bool
    reason: str
    latency_s: float | None
    inference_latencies_s: tuple[float, ...]
    power_cycles: int
    on_time_s: float
    off_time_s: float
    units: int
    units_executed: int
    units_reexecuted: int
    units_lost: int
    meets_deadline: bool | None
    sram_max_bytes: int
    designs: dict[str, str]
    energy: "pd.DataFrame" = field(repr=False)
    energy_totals: "pd.Series" = field(repr=False)
    energy_by_layer: "pd.DataFrame" = field(repr=False)
    events: "pd.DataFrame" = field(repr=False)
    output: "np.ndarray | None" = field(repr=False)
    output_matches_reference: bool | None
    json: dict = field(repr=False)
    built: "Built" = field(repr=False, compare=False)

    def balance_error(self) -> float:
        """Relative error of the energy balance (:func:`aidi.sim.workload.energy_balance_error`); ~1e-12."""
        from aidi.sim.workload import energy_balance_error

        return energy_balance_error(self.json)

    def to_json(self, **kw: Any) -> str:
        """Strict JSON of :attr:`json` (``indent=1`` etc. passed to :func:`json.dumps`)."""
        from . import jsonout

        return jsonout.dumps(self.json, **kw)

    def write(self, out: str | os.PathLike, force: bool = False) -> Path:
        """Write what ``aidi run --out OUT`` writes (events.csv/.parquet, result.json, voltage.html,
        energy.html, report.html) into ``out``: a new or empty folder, or one aidi made, unless ``force``.
        Returns the folder.  Raises :class:`UserError` for a folder of the user's or a file."""
        from aidi.sim.des import Event

        from . import report

        folder = _prepare_out(out, force)
        log = [Event(*row) for row in self.events.itertuples(index=False, name=None)]
        report.write_run(folder, self.built, self.json, log)
        return folder


def _run_result(built: "Built", rec: "RunRecord", events: list | None) -> RunResult:
    """The typed result of a run, read off the engine's :class:`~aidi.sim.workload.RunRecord`; ``json`` made from
    it in one place (:func:`aidi.analysis.pipeline.run_json`, over :meth:`RunRecord.as_json`)."""
    import numpy as np
    import pandas as pd

    from . import jsonout, pipeline
    from .report import events_frame

    t = rec.tally
    cats = rec.energy_by_category()
    energy = pd.DataFrame({"energy_J": pd.Series(cats, dtype=float)}).rename_axis("category")
    energy["fraction"] = energy["energy_J"] / rec.consumed_J if rec.consumed_J else math.nan
    totals = pd.Series({"harvested": t.harvested, "consumed": rec.consumed_J, "stored_initial": rec.stored_initial_J,
                        "stored_final": rec.stored_final_J, "leaked": rec.leaked_J, "clipped": t.clipped},
                       name="energy_J", dtype=float)
    names = built.graph.layer_names
    layers = sorted(t.by_layer)
    by_layer = pd.DataFrame({"layer": layers, "name": [names[i] if i < len(names) else str(i) for i in layers],
                             "energy_J": [float(t.by_layer[i]) for i in layers]}).set_index("layer")
    data = jsonout.strict(pipeline.run_json(built, rec))
    return RunResult(
        scenario=built.scenario.name, engine=rec.engine, completed=rec.completed, reason=rec.reason,
        latency_s=None if rec.latency_s is None else float(rec.latency_s), inference_latencies_s=tuple(float(x) for _, x in t.latencies),
        power_cycles=int(t.power_cycles), on_time_s=float(t.on_time), off_time_s=float(t.off_time), units=rec.units,
        units_executed=int(t.units_executed), units_reexecuted=int(t.units_reexecuted), units_lost=int(t.units_lost),
        meets_deadline=rec.meets_deadline, sram_max_bytes=data["sram_max_bytes"], designs=dict(data["designs"]),
        energy=energy, energy_totals=totals, energy_by_layer=by_layer, events=events_frame(events),
        output=None if rec.output is None else np.asarray(rec.output, dtype=np.int16),
        output_matches_reference=rec.output_matches_reference, json=data, built=built)


def run(scenario: Any, engine: str = "des", functional: bool | None = None, events: bool = True) -> RunResult:
    """Simulate a scenario, as ``aidi run SCENARIO --engine ENGINE --json`` does.

    ``scenario``: anything :func:`load` takes.  ``engine``: "des" (the SimPy model) or "oracle"
    (the compiled numba loop; same latency, cycles and energy to ~1e-9).  ``functional``: also
    compute the network's output bit-exactly over simulated FRAM/SRAM (DES only; default True for
    "des", False for "oracle").  ``events``: keep the DES event log (:attr:`RunResult.events`).

    A functional run loads the model's weights (the first one trains it: digits, about a minute, then
    cached on disk) and reports ``float_accuracy`` / ``q15_accuracy`` in :attr:`RunResult.json`; a cost-only
    run plans from the layers' shapes alone and imports no torch (:func:`aidi.analysis.pipeline.model_geometry`).
    Raises :class:`UserError`: a bad scenario, a unit that can never fit one power cycle, an
    unknown engine, ``functional=True`` with the oracle.
    """
    from aidi.models.design_cache import default_store

    from . import pipeline

    functional = run_options(engine, functional)
    sc, ctx = _scenario_and_context(scenario)
    with _user_errors(ctx):
        built = pipeline.build(sc, store=default_store())
        rec, log = pipeline.run_record(built, engine=engine, functional=bool(functional),
                                       log=bool(events) and engine == "des")
    return _run_result(built, rec, log)


# --------------------------------------------------------------------------- check
@dataclass(frozen=True, eq=False)
class CheckResult:
    """Schedulability (``aidi check --json`` as typed fields and DataFrames).

    ``schedulable``: every unit fits one power cycle, SRAM fits the budget, the harvester run
    completes within ``[sim] deadline_s``; ``reasons``: why not (one string each).  ``e_cycle_J`` /
    ``e_store_J`` (J per power cycle after / before the converter), ``boot_J`` (J), ``sram_budget_bytes``,
    ``sram_max_bytes`` (B), ``deadline_s`` (s or None), ``continuous_latency_s`` (s under continuous
    power), ``harvester_latency_s`` (s under the scenario's harvester, one inference; None when it
    does not complete), ``harvester_power_cycles``; ``latency_bound_s``: the worst-case latency of one
    inference under the source's guaranteed minimum power (s; None when no bound exists,
    :mod:`aidi.sim.bound`), ``guaranteed``: whether that bound meets the deadline as well.

    ``units``: one row per atomic unit (:func:`aidi.analysis.check.unit_table`): unit, layer,
    time_s (s), energy_J (J), need_from_store_J (J), e_store_J (J), margin (fraction of a cycle
    left), sram_bytes (B), verdict ("fits" | "needs_harvest" | "never").  ``layers``: one row per
    layer (the ``layers`` of the JSON).  ``json``: the exact ``aidi check --json`` object.
    """

    scenario: str
    schedulable: bool
    reasons: tuple[str, ...]
    e_cycle_J: float
    e_store_J: float
    boot_J: float
    sram_budget_bytes: int
    sram_max_bytes: int
    deadline_s: float | None
    continuous_latency_s: float | None
    harvester_latency_s: float | None
    harvester_power_cycles: int | None
    latency_bound_s: float | None
    guaranteed: bool | None
    units: "pd.DataFrame" = field(repr=False)
    layers: "pd.DataFrame" = field(repr=False)
    json: dict = field(repr=False)


def check(scenario: Any) -> CheckResult:
    """Schedulability analysis of a scenario, as ``aidi check SCENARIO --json`` does (``aidi check`` exits 1
    where ``schedulable`` is False).

    ``scenario``: anything :func:`load` takes.  Raises :class:`UserError` for a bad scenario.  An
    unschedulable scenario is a result (``schedulable`` False, ``reasons``), not an error.
    """
    import pandas as pd

    from aidi.models.design_cache import default_store

    from . import check as chk
    from . import jsonout, pipeline

    sc, ctx = _scenario_and_context(scenario)
    with _user_errors(ctx):
        built = pipeline.build(sc, store=default_store())
        data = jsonout.strict(chk.analyse(built))
        units = chk.unit_table(built)
    harvested = data.get("harvester", {})
    return CheckResult(
        scenario=data["scenario"], schedulable=data["schedulable"], reasons=tuple(data["reasons"]),
        e_cycle_J=data["e_cycle_J"], e_store_J=data["e_store_J"], boot_J=data["boot_J"],
        sram_budget_bytes=data["sram_budget_bytes"], sram_max_bytes=data["sram_max_bytes"],
        deadline_s=data["deadline_s"], continuous_latency_s=data.get("continuous", {}).get("latency_s"),
        harvester_latency_s=harvested.get("latency_s"), harvester_power_cycles=harvested.get("power_cycles"),
        latency_bound_s=data.get("latency_bound_s"), guaranteed=data.get("guaranteed"), units=units,
        layers=pd.DataFrame(data["layers"]), json=data)


# --------------------------------------------------------------------------- sweep
@dataclass(frozen=True, eq=False)
class SweepResult:
    """A parameter sweep (``aidi sweep --json`` as a DataFrame).

    ``table``: one row per grid point, in grid order (the first key varies slowest): the swept keys
    (e.g. ``power.capacitor_F``), ``completed``, ``error`` ("" or why the point could not run),
    ``reason`` ("" or why a point that ran did not complete), ``latency_s`` (s), ``power_cycles``, ``on_time_s`` / ``off_time_s`` (s), ``units``,
    ``units_reexecuted``, ``meets_deadline``, ``harvested_J`` / ``consumed_J`` (J) and
    ``E_<category>_J`` (J per energy category), ``designs`` (the executed designs, "layer
    Tr_Tc_Tm_Tn_order_S; ..."); the ``rows`` of ``aidi sweep --json``.  ``keys``: the swept keys (``section.key``), ``grid``: their values; ``boundary``: along the first key,
    the smallest value tried at which the run completes (``completes``) / meets the deadline
    (``meets_deadline``; None when none does), the largest value below it (``completes_below``,
    ``meets_deadline_below``; None when it is the lower end of the range tried, so only a bound),
    ``range`` and ``deadline_set`` (:func:`aidi.analysis.sweep.boundary_summary`).  ``json``: the exact
    ``aidi sweep --json`` object.
    """

    scenario: str
    engine: str
    keys: tuple[str, ...]
    grid: dict[str, list]
    table: "pd.DataFrame" = field(repr=False)
    boundary: dict
    json: dict = field(repr=False)

    def figure(self, title: str | None = None):
        """The sweep figure of ``aidi sweep --out`` (plotly Figure): latency, power cycles and energy split
        against the first key."""
        from . import sweep as sw

        key = self.keys[0]
        return sw.figure(self.table, key, title or f"{self.scenario}: sweep of {key}")


def _grid(grid: Mapping[str, Any] | Sequence[str]) -> dict[str, list]:
    from . import sweep as sw

    if isinstance(grid, Mapping):
        out = {}
        for name, values in grid.items():
            key = sw.key_of(str(name), f"sweep: {str(name).strip()!r}", out)
            vals = list(values) if isinstance(values, (list, tuple, range)) or hasattr(values, "tolist") \
                else [values]
            if not vals:
                raise UserError(f"sweep: {key}: give at least one value")
            out[key] = [_plain(v) for v in vals]
    else:
        out = sw.parse_sets([grid] if isinstance(grid, str) else list(grid))
    if not out:
        raise UserError("sweep: give at least one key and its values, e.g. {\"power.capacitor_F\": [1e-4, 1e-3]}")
    return out


def sweep(scenario: Any, grid: Mapping[str, Any] | Sequence[str], engine: str = "oracle", workers: int = 1,
          dask: str | None = None, progress: Callable[[int, int], None] | None = None,
          reoptimize: bool = False) -> SweepResult:
    """Run a grid of scenario variants, as ``aidi sweep SCENARIO --set KEY=V1,V2 ... --json`` does.

    ``grid``: ``{"power.capacitor_F": [4.7e-6, 1e-5], "power.v_on": [3.0, 3.3]}`` (the product is run;
    the shortcuts of :data:`aidi.analysis.sweep.SHORTCUTS` such as ``capacitor_F`` work; a single value
    is a one-point axis) or the CLI's ``["power.capacitor_F=4.7e-6,1e-5"]``.  ``engine``: "oracle" or
    "des"; ``workers``: local processes; ``dask``: a scheduler address or "local";
    ``progress(done, total)`` is called after each point.  ``reoptimize``: choose each point's "auto"
    designs under its own power (``aidi sweep --reoptimize``); by default every point keeps the designs the
    scenario gets under its own power (for power, harvester and run keys: one workload, built once and
    evaluated per point; the ``designs`` column names them).

    Bad input raises :class:`UserError` before any point runs, as :func:`run` would refuse it: an option, a
    value (naming the key), the base scenario's harvester data or model (unless a swept key of that section
    replaces it; then each variant is read: :func:`aidi.analysis.sweep.check_inputs`).  A point that cannot run
    (a capacitor too small to boot, nothing fits, no progress) is a row with ``error``, and one that runs but
    does not complete a row with ``reason``, not an error; a sweep in which no point completes is a result
    too (the table has every column; ``aidi sweep`` then exits 1).
    """
    from . import sweep as sw

    sweep_options(engine, workers, dask)
    g = _grid(grid)
    sc, ctx = _scenario_and_context(scenario)
    with _user_errors(ctx):
        sw.check_inputs(sc, g, reoptimize)
        df = sw.run_sweep(sc, g, workers=workers, dask=dask, engine=engine, progress=progress, reoptimize=reoptimize)
    data = sweep_summary(sc.name, g, df, reoptimize)
    return SweepResult(scenario=sc.name, engine=engine, keys=tuple(g), grid=g, table=df, boundary=data["boundary"],
                       json=data)


def sweep_summary(name: str, grid: Mapping[str, list], table: "pd.DataFrame", reoptimize: bool = False) -> dict:
    """The ``aidi sweep --json`` object of a sweep's table: scenario, points, keys, reoptimize (whether each
    point's designs were chosen under its own power), boundary (along the first key,
    :func:`aidi.analysis.sweep.boundary_summary`) and rows (undefined numbers None)."""
    from . import jsonout
    from . import sweep as sw

    return jsonout.strict({
        "scenario": name,
        "points": len(table),
        "keys": list(grid),
        "reoptimize": bool(reoptimize),
        "boundary": sw.boundary_summary(table, next(iter(grid))),
        "rows": table.where(table.notna(), None).to_dict(orient="records"),
    })


# --------------------------------------------------------------------------- NAS
@dataclass(frozen=True, eq=False)
class NasResult:
    """One architecture + execution-design search (``aidi nas --json`` as typed fields and DataFrames).

    ``pareto``: the Pareto front of the feasible candidates (validation accuracy vs intermittent
    latency), one row each: arch_id, arch, accuracy (supernet, validation), latency_s (s, oracle,
    under the harvester), continuous_latency_s (s), sram_bytes (B), power_cycles, feasible, reasons.
    ``finalists``: the fine-tuned members of the front, re-simulated with the SimPy model
    (``finetuned_val_accuracy``, ``des_latency_s``, ``des_meets_requirement``, ``q15_test_accuracy``,
    ``scenario`` = the candidate's TOML ...).  ``history``: every evaluation in order (``step``,
    ``reward`` and the pareto columns; ``OUT/history.csv``).  ``chosen``: the chosen model's row
    (dict) or None when no finalist met the requirement; ``chosen_scenario``: it loaded as a
    :class:`Scenario` (``OUT/scenario.toml``, runs with :func:`run`) or None.  ``requirement_s`` (s or
    None), ``evaluations``, ``search_s`` (s wall), ``out`` (the output folder).  ``json``: the exact
    ``aidi nas --json`` object.
    """

    scenario: str
    controller: str
    budget: int
    seed: int
    requirement_s: float | None
    evaluations: int
    search_s: float
    pareto: "pd.DataFrame" = field(repr=False)
    finalists: "pd.DataFrame" = field(repr=False)
    history: "pd.DataFrame" = field(repr=False)
    chosen: dict | None
    chosen_scenario: Scenario | None = field(repr=False)
    out: Path
    json: dict = field(repr=False)


def nas(scenario: Any, out: str | os.PathLike, controller: str = "evolution", budget: int = 48, seed: int = 0,
        requirement_s: float | None = None, dataset: str = "digits", data_dir: str | os.PathLike | None = None,
        quick: bool = False, workers: int = 1, dask: str | None = None, force: bool = False,
        progress: Callable[[int, int], None] | None = None, log: Callable[[str], None] | None = None,
        space: str = "inas") -> NasResult:
    """Search a network and its intermittent execution design, as ``aidi nas SCENARIO --out OUT --json`` does.

    ``scenario``: anything :func:`load` takes (its harvester, capacitor, SRAM budget and, unless
    ``requirement_s`` (s) is given, ``[sim] deadline_s`` as the latency requirement).  ``out``: a new
    or empty folder, or one aidi made (else ``force``); it receives the candidates, ``history.csv``,
    ``pareto.html``, ``result.json`` and the chosen ``model.pt`` + ``scenario.toml``.
    ``controller``: "random", "evolution" or "rl"; ``budget``: evaluations; ``dataset``: "digits"
    (bundled) or one of :data:`aidi.analysis.nas_run.DATASETS` read from ``data_dir`` (never downloaded);
    ``quick``: tiny training epochs (smoke runs); ``space``: "inas" (the data set's chain of convolutions) or
    "mbconv" (inverted-residual stages, :mod:`aidi.models.nas.mbconv`, read off their supernet,
    :mod:`aidi.models.nas.mbconv_supernet`).
    ``progress(done, total)`` after each batch of evaluations, ``log(message)`` for each step.

    The supernet is trained once per data set and seed and cached on disk.  Raises
    :class:`UserError` for a bad scenario, option, data folder or output folder.
    """
    import pandas as pd

    from . import jsonout, nas_run

    from aidi.models.nas.space import SPACE_KINDS

    nas_options(controller, dataset, budget, workers, seed, requirement_s, dask)
    _choice("space", space, SPACE_KINDS)
    sc, ctx = _scenario_and_context(scenario)
    _prepare_out(out, force)  # before any work
    with _user_errors(ctx):
        data = nas_run.run_nas(sc, controller=controller, budget=budget, seed=seed, requirement_s=requirement_s,
                               workers=workers, dask=dask, dataset=dataset, data_dir=data_dir, out=Path(out),
                               quick=quick, progress=progress, log=log, force=force, space=space)
    data = jsonout.strict(data)
    folder = Path(data["out"])
    chosen = data["chosen"]
    return NasResult(
        scenario=data["scenario"], controller=data["controller"], budget=data["budget"], seed=data["seed"],
        requirement_s=data["requirement_s"], evaluations=data["search"]["evaluations"],
        search_s=data["search"]["wall_s"], pareto=pd.DataFrame(data["pareto"]),
        finalists=pd.DataFrame(data["finalists"]), history=pd.read_csv(folder / "history.csv"), chosen=chosen,
        chosen_scenario=None if chosen is None else load(chosen["scenario"]), out=folder, json=data)


# --------------------------------------------------------------------------- explore
class ExploreResult(_explore.ExploreResult):
    """The latency optimizer's execution designs (``aidi explore --json``), with DataFrames.

    Fields (of :class:`aidi.analysis.explore.ExploreResult`): ``scenario``, ``dispatch``, ``latency_s``
    (s, the oracle's latency of one inference with the chosen designs; None if it does not complete),
    ``explore_wall_s`` (s, the search alone), ``exhaustive``, ``evaluations`` (oracle runs), ``layers``
    (one dict per executed layer, as in the JSON).  DataFrames:

    * ``designs``: one row per executed layer: ``layer`` ("layer 0 (conv)"), ``design``
      ("Tr_Tc_Tm_Tn_order_S"), ``backend``, ``latency_s`` (s, the whole inference with it),
      ``n_designs`` (the layer's design space) and ``rejected_sram``, ``rejected_atomicity``,
      ``rejected_fram``, ``rejected_pruned`` (designs rejected by reason).
    * ``alternatives``: one row per layer and alternative, best first: ``layer``, ``rank`` (0 = best),
      ``design``, ``backend``, ``latency_s`` (s, the whole inference with it swapped in), ``chosen``.

    ``json``: the exact ``aidi explore --json`` object.
    """

    @property
    def designs(self) -> "pd.DataFrame":
        import pandas as pd

        cols = ["layer", "design", "backend", "latency_s", "n_designs"]
        reasons = sorted({r for L in self.layers for r in L["rejected"]})
        return pd.DataFrame([{**{c: L[c] for c in cols}, **{f"rejected_{r}": L["rejected"].get(r, 0) for r in reasons}}
                             for L in self.layers], columns=cols + [f"rejected_{r}" for r in reasons])

    @property
    def alternatives(self) -> "pd.DataFrame":
        import pandas as pd

        rows = [{"layer": L["layer"], "rank": i, **a, "chosen": a["design"] == L["design"]}
                for L in self.layers for i, a in enumerate(L["alternatives"])]
        return pd.DataFrame(rows, columns=["layer", "rank", "design", "backend", "latency_s", "chosen"])

    @property
    def json(self) -> dict:
        from . import jsonout

        return jsonout.strict(self.to_dict())


def explore(scenario: Any, top_k: int = 5, exhaustive: bool = False) -> ExploreResult:
    """The execution designs the latency optimizer chooses per layer, as ``aidi explore SCENARIO --json``.

    ``scenario``: anything :func:`load` takes (its "auto" designs are the ones searched); ``top_k``: the
    alternatives kept per layer (>= 1); ``exhaustive``: simulate every design combination instead
    (small networks only).  Raises :class:`UserError` for a bad scenario, ``top_k``, or a network no
    design fits.
    """
    explore_options(top_k)
    sc, ctx = _scenario_and_context(scenario)
    with _user_errors(ctx):
        res = _explore.explore(sc, top_k=top_k, exhaustive=bool(exhaustive))
    return ExploreResult(**{f.name: getattr(res, f.name) for f in fields(res)})


# --------------------------------------------------------------------------- NAS comparison
@dataclass(frozen=True, eq=False)
class NasCompareResult:
    """Ours vs an iNAS-style and an HW-NAS-style search (``aidi nas --compare --json``) with DataFrames.

    ``requirements_s``: the latency requirements (s), ``rows``: one row per requirement and method
    ("ours", "inas", "hwnas"): ``requirement_s`` (s), ``method``, ``controller``, ``search_s`` (s wall),
    ``evaluations``, ``feasible_found``, ``arch``, ``test_accuracy`` (held out), ``latency_s`` (s,
    intermittent, oracle), ``des_latency_s`` (s, SimPy), ``meets`` (the deployed model meets the
    requirement), ``note`` ...  ``table``: one row per requirement (index ``requirement_s``) with, per
    method, ``<method>_accuracy`` (None when it misses), ``<method>_latency_s`` (s) and ``<method>_meets``.
    ``out``: the folder (``compare.json`` and the deployed candidates); ``json``: the exact
    ``aidi nas --compare --json`` object.
    """

    scenario: str
    controller: str
    budget: int
    seed: int
    requirements_s: tuple[float, ...]
    rows: "pd.DataFrame" = field(repr=False)
    table: "pd.DataFrame" = field(repr=False)
    out: Path
    json: dict = field(repr=False)


def nas_compare(scenario: Any, out: str | os.PathLike, requirements_s: Sequence[float] | None = None,
                controller: str = "evolution", budget: int = 24, seed: int = 0, dataset: str = "digits",
                data_dir: str | os.PathLike | None = None, quick: bool = False, workers: int = 1,
                dask: str | None = None, force: bool = False,
                progress: Callable[[str, int, int], None] | None = None,
                log: Callable[[str], None] | None = None, views: Sequence[str] = ("equal-time",),
                final_epochs: int | None = None, final_seeds: Sequence[int] | None = None,
                truth_members: int | None = None, final_train_images: int | None = None,
                device: str = "cpu", space: str = "inas") -> NasCompareResult:
    """Compare our search with an iNAS-style and an HW-NAS-style one, as ``aidi nas SCENARIO --compare --json``.

    Same seed and ``budget`` (evaluations per requirement and method) for all three.
    ``requirements_s``: the latency requirements (s, each > 0); default: three between the smallest and
    the largest member of the search space (as the CLI picks them).  ``progress(tag, done, total)`` per
    search (tag "ours-r0", "inas-r0", ...).  ``views`` adds "quality" and "truth" (``json["views"]``;
    the final recipe's ``final_epochs``, ``final_seeds``, ``truth_members``, ``final_train_images`` as
    :func:`aidi.analysis.nas_run.run_compare` takes them), ``device`` where training runs ("auto", "cpu",
    "cuda"), ``space`` the space every method searches.  The other arguments as in :func:`nas`.  Raises
    :class:`UserError` for a bad scenario, option, requirement, data folder or output folder.
    """
    import pandas as pd

    from aidi.models.nas.space import SPACE_KINDS

    from . import jsonout, nas_run

    nas_options(controller, dataset, budget, workers, seed, dask=dask)
    _choice("space", space, SPACE_KINDS)
    reqs = None
    if requirements_s is not None:
        reqs = [_plain(r) for r in requirements_s]
        bad = [r for r in reqs if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r)
               or r <= 0]
        if not reqs or bad:
            raise UserError(f"requirements_s: expected positive numbers of seconds, got {list(requirements_s)!r}")
        reqs = [float(r) for r in reqs]
    sc, ctx = _scenario_and_context(scenario)
    _prepare_out(out, force)
    with _user_errors(ctx):
        data = nas_run.run_compare(sc, controller=controller, budget=budget, seed=seed, workers=workers, dask=dask,
                                   dataset=dataset, data_dir=data_dir, out=Path(out), quick=quick,
                                   requirements=reqs, progress=progress, log=log, force=force, views=tuple(views),
                                   final_epochs=final_epochs, final_seeds=final_seeds, truth_members=truth_members,
                                   final_train_images=final_train_images, device=device, space=space)
    data = jsonout.strict(data)
    methods = ("ours", "inas", "hwnas")
    table = pd.DataFrame([{"requirement_s": line["requirement_s"],
                           **{f"{m}_{k}": line.get(m, {}).get(src) for m in methods
                              for k, src in (("accuracy", "accuracy"), ("latency_s", "latency_s"), ("meets", "meets"))}}
                          for line in data["table"]]).set_index("requirement_s")
    return NasCompareResult(scenario=data["scenario"], controller=data["controller"], budget=data["budget"],
                            seed=data["seed"], requirements_s=tuple(data["requirements_s"]),
                            rows=pd.DataFrame(data["rows"]), table=table, out=Path(data["out"]), json=data)


# --------------------------------------------------------------------------- import
@dataclass(frozen=True, eq=False)
class ImportResult:
    """An imported ONNX model: the scenario folder ``aidi import MODEL.onnx --out DIR`` writes.

    ``scenario``: the written ``DIR/scenario.toml``, loaded (a :class:`Scenario`: run, check, sweep or emit it
    like any other); ``path``: its file.  ``mapping``: one row per ONNX node (node, op, layer: the aidi layer
    it became or None, note: what was folded, fused or dropped).  ``agreement``: how the Q15 model agrees
    with onnxruntime's float run on the calibration inputs: ``inputs``, ``top1_agreement`` (fraction),
    ``max_abs_error`` (the largest |Q15 - float| output, in the model's real output units), ``max_abs_output``
    (the largest |float| output, for scale), ``reference`` (onnxruntime's version).  ``notes``: what aidi
    assumed (the input ranges without calibration data).  ``import_s`` (s): import, quantization and
    agreement.  ``json``: the exact ``aidi import --json`` object.
    """

    scenario: Scenario
    path: Path
    mapping: "pd.DataFrame" = field(repr=False)
    agreement: dict
    notes: tuple[str, ...]
    import_s: float
    json: dict = field(repr=False)


def _import_result(data: dict) -> ImportResult:
    import pandas as pd

    return ImportResult(scenario=load(data["scenario"]), path=Path(data["scenario"]),
                        mapping=pd.DataFrame(data["mapping"], columns=["node", "op", "layer", "note"]),
                        agreement=dict(data["agreement"]), notes=tuple(data["notes"]), import_s=data["import_s"],
                        json=data)


def import_onnx(model: str | os.PathLike | bytes, out: str | os.PathLike, calibration: Any = None,
                sample_input: Any = None, power: str = "lab-1mF", force: bool = False) -> ImportResult:
    """Import an ONNX model into a scenario folder, as ``aidi import MODEL.onnx --out OUT`` does.

    ``model``: an ``.onnx`` path, its bytes or an ``onnx.ModelProto``.  ``calibration``: N inputs stacked on a
    leading axis, in the model's own layout (an array or a ``.npy`` path): the Q15 scales are chosen on them
    (without: inputs uniform in [-1, 1], and ``notes`` says so).  ``sample_input``: one input (with or
    without its batch axis of 1): the one ``aidi run --functional`` computes and ``aidi emit-c`` embeds.
    ``power``: the shipped scenario whose ``[device]``, ``[power]`` and ``[harvester]`` the folder gets.

    Raises :class:`UserError` (one line naming the node, its op type and the supported list) for an op aidi
    cannot map, a missing or unreadable file, inputs of the wrong shape, or an ``out`` folder aidi did not make.
    """
    from . import importer

    target = _prepare_out(out, force)
    with _user_errors():
        return _import_result(importer.write_scenario(model, target, calibration, sample_input, power))


def from_torch(module: Any, example_input: Any, out: str | os.PathLike, calibration: Any = None,
               sample_input: Any = None, power: str = "lab-1mF", force: bool = False,
               dynamo: bool = False) -> ImportResult:
    """Export a PyTorch ``module`` through ``torch.onnx.export`` and import it (:func:`import_onnx`).

    ``example_input``: a tensor (or array) with the batch axis of 1 that the export traces; it is also the
    sample input unless ``sample_input`` is given.  ``dynamo``: use torch's ``torch.export``-based exporter
    (its default; about 8 s) instead of the TorchScript one (0.2 s).  Raises :class:`UserError` for a module
    the exporter rejects, and as :func:`import_onnx` does.
    """
    from . import importer

    blob = importer.torch_to_onnx(module, example_input, dynamo=dynamo)
    return import_onnx(blob, out, calibration, example_input if sample_input is None else sample_input, power, force)
