"""Parameter sweeps (``aidi sweep``): a grid of scenario variants, each workload built once.

By default every point keeps the designs its scenario gets under the base scenario's
own power (``--reoptimize``: under the point's own power); points that share a
workload share one plan and one compiled oracle Population, evaluated once per point
(:func:`evaluate_points`).  :func:`evaluate_point` and :func:`run_sweep_per_point` keep
the per-point path (the benchmark's baseline and the tests' reference).  Points may also
run on local processes (``workers``) or on a Dask cluster (``dask`` = an address like
``tcp://host:8786``, or ``"local"`` for a dask.distributed LocalCluster), which pays
only for long points.  Results are one tidy pandas DataFrame, one row per point, in
grid order whatever the execution order, so every path gives the same frame.
"""

from __future__ import annotations

import functools
import itertools
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable

import pandas as pd

from .errors import UserError
from .parallel import executor

#: keys a sweep may set (section.key of the scenario file)
SHORTCUTS = {
    "capacitor": "power.capacitor_F",
    "capacitor_F": "power.capacitor_F",
    "v_on": "power.v_on",
    "v_off": "power.v_off",
    "power_W": "harvester.power_W",
    "r_ohm": "harvester.r_ohm",
    "sram_budget_bytes": "device.sram_budget_bytes",
    "hyper_tile": "execution.hyper_tile",
}


def _scalar(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def key_of(name: str, where: str, grid: dict[str, list[Any]]) -> str:
    """The ``section.key`` a swept name stands for (:data:`SHORTCUTS` expanded); UserError prefixed ``where``
    if it is not ``SECTION.KEY`` or ``grid`` sweeps it already (two value lists for one key: one would be lost)."""
    key = SHORTCUTS.get(name.strip(), name.strip())
    if "." not in key:
        raise UserError(f"{where}: KEY must be SECTION.KEY (e.g. power.capacitor_F)")
    if key in grid:
        raise UserError(f"{where}: {key} is swept twice; give all its values at once")
    return key


def parse_sets(sets: Iterable[str]) -> dict[str, list[Any]]:
    """``["power.capacitor_F=1e-4,1e-3", ...]`` -> ``{"power.capacitor_F": [1e-4, 1e-3]}``."""
    grid: dict[str, list[Any]] = {}
    for item in sets:
        name, eq, values = item.partition("=")
        if not eq or not values.strip():
            raise UserError(f"--set {item!r}: expected KEY=V1,V2,...")
        key = key_of(name, f"--set {item!r}", grid)
        grid[key] = [_scalar(v.strip()) for v in values.split(",") if v.strip()]
    if not grid:
        raise UserError("--set: give at least one KEY=V1,V2,...")
    return grid


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


def check_inputs(base, grid: dict[str, list[Any]], reoptimize: bool = False) -> None:
    """Refuse, before any point runs, the bad input ``aidi run`` refuses (the caller makes it a one-line error,
    exit status 2): every value (the base scenario changed by it, validated as a file is), the base scenario's
    harvester data (a trace or recording is read) and its model's layers (:func:`aidi.analysis.pipeline.
    model_geometry`).  Where swept keys change ``harvester`` or ``model`` values, the variants they make are read
    instead of the base's, so a value may replace a bad part of the base (``--set harvester.file=good.csv``) and a
    bad variant is refused too; but without ``reoptimize`` the designs are chosen under the base's own harvester
    (:class:`_FixedDesigns`), so it is read all the same.  What only makes a point infeasible (a capacitor too
    small to boot, designs that do not fit) is not bad input: that point is a row with its ``error``.  Raises
    the loader's or the harvester reader's error, or :class:`UserError`."""
    from . import pipeline
    from .errors import one_line, user_errors

    for key, values in grid.items():
        for v in values:
            base.with_values(**{key: v})
    for section, read in (("harvester", lambda sc: segments_of(sc.harvester)), ("model", pipeline.model_geometry)):
        swept = {k: v for k, v in grid.items() if k.partition(".")[0] == section}
        variants = points(swept)  # no key swept: the base alone (one empty point)
        base_too = bool(swept) and section == "harvester" and not reoptimize
        for p in [{}] * base_too + variants:
            try:
                read(base.with_values(**p) if p else base)
            except user_errors() as exc:
                if p or not swept:
                    raise
                raise UserError(f"{one_line(exc)} (the designs are chosen under the scenario's own harvester, "
                                f"though --set replaces it; --reoptimize chooses them per point)") from None


def segments_of(harvester):
    """``harvester.segments()``, read once per process while its file is unchanged (its size and modification
    time are part of the key), so :func:`check_inputs` and the points that follow read a trace once."""
    f = getattr(harvester, "file", None)
    stamp = (f.stat().st_size, f.stat().st_mtime_ns) if f is not None and Path(f).is_file() else None
    return _segments(harvester, stamp)


@functools.lru_cache(maxsize=8)
def _segments(harvester, stamp):
    return harvester.segments()


#: plans and workloads shared by the points a process evaluates (one per structure: model, device, execution,
#: designs); a point that changes only power, harvester or run values and keeps its designs reuses one
_PLANS = None


def plan_cache():
    """This process's :class:`aidi.models.hardware.PlanCache` (created on first use)."""
    global _PLANS
    if _PLANS is None:
        from aidi.models.hardware import PlanCache

        _PLANS = PlanCache()
    return _PLANS


def reset_plan_cache() -> None:
    """Forget this process's plans (a benchmark's cold start)."""
    global _PLANS
    _PLANS = None


def point_errors() -> tuple[type[BaseException], ...]:
    """What makes a point a row with an error instead of a crash: a user's value or an infeasible point."""
    from .errors import user_errors

    return (ValueError, *user_errors())


#: sections, and keys of [execution], that leave a point's workload alone: the capacitor and thresholds, the
#: harvester, the run and the dispatch policy.  Any other key (model, device, tiles, loop order, hyper-tile,
#: backend ...) makes its own workload.
POWER_SECTIONS = ("power", "harvester", "sim")
POWER_KEYS = ("execution.dispatch", "execution.dispatch_margin")


def is_power_key(key: str) -> bool:
    """Whether sweeping ``key`` (``section.key``) leaves the workload alone once the designs are fixed."""
    return key.partition(".")[0] in POWER_SECTIONS or key in POWER_KEYS


def designs_text(hw) -> str:
    """``"name Tr_Tc_Tm_Tn_order_S; ..."``: the executed designs of a :class:`~aidi.models.hardware.Hardware`
    (or :class:`~aidi.analysis.pipeline.Built`)."""
    from .explore import design_name

    return "; ".join(f"{name} {design_name(ly.design)}" for name, ly in zip(hw.graph.layer_names, hw.plan.layers))


#: the columns of every sweep table after the swept keys, whatever its points gave (a sweep in which no point
#: ran has them too, empty); the ``E_<category>_J`` columns of the points that ran come before ``designs``
ROW_COLUMNS = ("completed", "error", "reason", "latency_s", "power_cycles", "on_time_s", "off_time_s", "units",
               "units_reexecuted", "meets_deadline", "harvested_J", "consumed_J")


def _row(overrides: dict[str, Any], res: dict, designs: str) -> dict:
    """One sweep row: the point's values, then what the engine's result dict says (``reason``: why a run that
    started did not complete, "" when it did)."""
    e = res["energy_J"]
    return {
        **overrides,
        "completed": res["completed"],
        "error": "",
        "reason": "" if res["completed"] else res.get("reason", ""),
        "latency_s": res["latency_s"],
        "power_cycles": res["power_cycles"],
        "on_time_s": res["on_time_s"],
        "off_time_s": res["off_time_s"],
        "units": res["units"],
        "units_reexecuted": res["units_reexecuted"],
        "meets_deadline": res.get("meets_deadline"),
        "harvested_J": e["harvested"],
        "consumed_J": e["consumed"],
        **{f"E_{k}_J": v for k, v in e["by_category"].items()},
        "designs": designs,
    }


def _error_row(overrides: dict[str, Any], exc: BaseException, designs: str = "") -> dict:
    return {**overrides, "completed": False, "error": str(exc).splitlines()[0], "reason": "", "designs": designs}


def sweep_table(keys: Iterable[str], rows: list[dict]) -> pd.DataFrame:
    """The tidy sweep table of ``rows`` (one per point, in grid order): the swept ``keys``, :data:`ROW_COLUMNS`,
    the energy categories the points that ran report (``E_<category>_J``, J) and ``designs``; a column no point
    filled is all missing (NaN), so a sweep in which no point ran has the same columns as any other."""
    keys = list(keys)
    energy = list(dict.fromkeys(c for r in rows for c in r if c.startswith("E_") and c.endswith("_J")))
    df = pd.DataFrame(rows, columns=[*keys, *ROW_COLUMNS, *energy, "designs"])
    df["completed"] = df["completed"].astype(bool)
    for col in ("error", "reason", "designs"):
        df[col] = df[col].fillna("")
    return df


def _compose(sc, plans, segments=None, designs=None):
    """The point's :class:`~aidi.models.hardware.Hardware` (as :func:`aidi.analysis.pipeline.build` composes it,
    or with ``designs`` fixed); UserError naming the file if it cannot be built."""
    from aidi.models import hardware

    from . import pipeline

    geoms = list(pipeline.model_geometry(sc))
    seg = segments if segments is not None else sc.harvester.segments()
    try:
        return hardware.compose(sc, geoms, segments=seg, cache=plans, designs=designs)
    except ValueError as exc:
        raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None


def _simulate(engine: str, work, sc, seg) -> dict:
    from aidi.sim import des, oracle

    if engine == "oracle":
        return oracle.simulate(work, sc.power, seg, sc.sim)
    return des.simulate(work, sc.power, seg, sc.sim)[0]


def evaluate_point(scenario_path, overrides: dict[str, Any], engine: str = "oracle", plans=None,
                   designs=None) -> dict:
    """Build and simulate one variant on its own (the per-point path); returns a flat row.

    The scenario is loaded, changed and built afresh, its designs are resolved under the point's own power
    (``designs``: one per executed layer instead, as a sweep without ``reoptimize`` fixes them) and one
    engine call simulates it.  A point that cannot run (a bad value, nothing fits, no progress) is a row
    with ``error``; any other exception is a bug and propagates.  ``plans``: the
    :class:`~aidi.models.hardware.PlanCache` to plan through (default: this process's, so points with the
    same structure and designs plan once).  :func:`evaluate_points` gives the same rows, built once.
    """
    from . import pipeline

    plans = plan_cache() if plans is None else plans
    try:
        sc = pipeline.load_scenario(scenario_path).with_values(**overrides)
        # as the sweep always built a point (pipeline.build), or with the designs given
        hw = pipeline.build(sc, plans=plans) if designs is None else _compose(sc, plans, designs=designs)
    except point_errors() as exc:  # a point that cannot run is a result, not a crash
        return _error_row(overrides, exc)
    try:
        res = _simulate(engine, hw.work, sc, hw.segments)
    except point_errors() as exc:
        return _error_row(overrides, exc, designs_text(hw))
    return _row(overrides, res, designs_text(hw))


class _FixedDesigns:
    """The designs a point keeps without ``reoptimize``: those its own model, device and ``[execution]`` values
    get under the base scenario's power, harvester, run and dispatch policy (for a sweep over power keys only,
    the base scenario's own choice, as ``aidi run`` makes it); resolved once per distinct set of structural
    values (the point's non-power keys)."""

    def __init__(self, base, segments: Callable):
        self.base, self.segments = base, segments
        self._by_structure: dict[str, Any] = {}

    @staticmethod
    def key(overrides: dict[str, Any]) -> str:
        """What points with the same designs and workload share: their structural (non-power) values."""
        return repr(sorted((k, v) for k, v in overrides.items() if not is_power_key(k)))

    def __call__(self, overrides: dict[str, Any]):
        """The designs (a list), or raise the point error resolving them gave."""
        from aidi.models import hardware

        from . import pipeline

        structural = {k: v for k, v in overrides.items() if not is_power_key(k)}
        key = self.key(overrides)
        if key not in self._by_structure:
            try:
                ref = self.base.with_values(**structural) if structural else self.base
                geoms = list(pipeline.model_geometry(ref))
                try:
                    designs = hardware.resolve(ref, geoms, segments=self.segments(ref.harvester))
                except ValueError as exc:
                    raise UserError(f"{ref.path.name}: {str(exc).splitlines()[0]}") from None
            except point_errors() as exc:
                designs = UserError(f"{str(exc).splitlines()[0]} (the designs are chosen under the scenario's "
                                    f"own power; --reoptimize chooses them per point)")
            self._by_structure[key] = designs
        out = self._by_structure[key]
        if isinstance(out, BaseException):
            raise out
        return out


def evaluate_points(scenario_path, pts: list[dict[str, Any]], engine: str = "oracle", reoptimize: bool = False,
                    tick: Callable[[], None] | None = None) -> list[dict]:
    """Rows of many points (in order), each workload built once.

    The base scenario is loaded once; each point is the base changed by its values.  Without ``reoptimize``
    a point keeps fixed designs (:class:`_FixedDesigns`: the base scenario's own choice when only power keys
    change), so points that change only power keys (:func:`is_power_key`) share one plan and Workload;
    with ``reoptimize`` each point's "auto" designs are chosen under its own power (as :func:`evaluate_point`
    without ``designs``) and points whose designs agree share a Workload.  Under the oracle, each distinct
    Workload is compiled once (:class:`aidi.sim.oracle.Population`) and evaluated under each of its points'
    power, harvester and run values, one compiled call per point; the SimPy model (``des``) runs point by
    point.  Every row equals :func:`evaluate_point`'s for the same point and designs (to the last bit:
    the same arithmetic).  ``tick()`` is called after each point.
    """
    from aidi.models import hardware
    from aidi.sim import oracle

    from . import pipeline

    base = pipeline.load_scenario(scenario_path)
    plans = plan_cache()
    seg_by_harvester: dict[Any, Any] = {}

    def segments(harvester):
        if harvester not in seg_by_harvester:
            seg_by_harvester[harvester] = segments_of(harvester)
        return seg_by_harvester[harvester]

    fixed = None if reoptimize else _FixedDesigns(base, segments)
    built: dict[str, Any] = {}  # fixed designs: the Hardware of the first point of each structure
    rows: list[dict | None] = [None] * len(pts)
    ready = []  # (index, point's scenario, Hardware, its harvester's segments)
    for i, p in enumerate(pts):
        try:
            sc = base.with_values(**p)
            seg = segments(sc.harvester)
            if fixed is None:
                hw = _compose(sc, plans, seg)
            elif (key := fixed.key(p)) in built:  # same structure and designs: only the power budget to check
                hw = built[key]
                try:
                    hardware.checked_energy_budget(sc.power, hw.platform)
                except ValueError as exc:
                    raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None
            else:
                hw = built[key] = _compose(sc, plans, seg, fixed(p))
        except point_errors() as exc:
            rows[i] = _error_row(p, exc)
            if tick:
                tick()
            continue
        ready.append((i, sc, hw, seg))
    populations: dict[int, Any] = {}  # by id of the Workload (the plan cache hands one object per plan)
    texts: dict[int, str] = {}
    for i, sc, hw, seg in ready:
        if id(hw.work) not in texts:
            texts[id(hw.work)] = designs_text(hw)
        text = texts[id(hw.work)]
        try:
            if engine == "oracle":
                key = id(hw.work)
                if key not in populations:
                    populations[key] = oracle.Population([hw.work])
                res = populations[key].evaluate(sc.power, seg, sc.sim).result(0)
            else:
                res = _simulate(engine, hw.work, sc, seg)
        except point_errors() as exc:
            rows[i] = _error_row(pts[i], exc, text)
        else:
            rows[i] = _row(pts[i], res, text)
        if tick:
            tick()
    return rows  # type: ignore[return-value]


def _chunks(n: int, workers: int, engine: str) -> list[list[int]]:
    """Point indices per task for worker processes: one point per task under the SimPy model (long points),
    otherwise about four tasks per worker (each builds its workloads once; progress advances per task)."""
    size = 1 if engine != "oracle" else max(1, -(-n // (4 * workers)))
    return [list(range(a, min(a + size, n))) for a in range(0, n, size)]


def run_sweep(scenario_path: str | Path, grid: dict[str, list[Any]], workers: int = 1, dask: str | None = None,
              engine: str = "oracle", progress: Callable[[int, int], None] | None = None,
              reoptimize: bool = False) -> pd.DataFrame:
    """Run every grid point (:func:`evaluate_points`); one row per point, in grid order.

    ``scenario_path``: a scenario file, a shipped name, or a loaded Scenario (sent to the workers as is).
    ``reoptimize``: choose each point's "auto" designs under its own power (default: keep the base scenario's,
    see :func:`evaluate_points`).  ``workers`` / ``dask``: split the points into tasks (:func:`_chunks`) run
    in worker processes; each task builds its workloads once, so a sweep over power keys only is fastest
    in one process (worker start-up costs seconds, a point a fraction of a millisecond).  Every path gives
    the same frame.  ``progress(done, total)`` is called as points finish.
    """
    pts = points(grid)
    path = str(scenario_path) if isinstance(scenario_path, (str, Path)) else scenario_path
    rows: list[dict | None] = [None] * len(pts)
    done = 0

    def tick():
        nonlocal done
        done += 1
        if progress:
            progress(done, len(pts))

    with executor(workers, dask) as pool:
        if pool is None:
            rows = evaluate_points(path, pts, engine, reoptimize, tick)
        else:
            futs = {pool.submit(evaluate_points, path, [pts[j] for j in c], engine, reoptimize): c
                    for c in _chunks(len(pts), workers, engine)}
            for fut in pool.as_completed(list(futs)):
                for j, row in zip(futs[fut], fut.result()):
                    rows[j] = row
                    tick()
    return sweep_table(grid, rows)


def run_sweep_per_point(scenario_path: str | Path, grid: dict[str, list[Any]], engine: str = "oracle",
                        plans=None) -> pd.DataFrame:
    """The sweep as it ran before it built once: every point loaded, built (designs resolved under its own
    power, as ``reoptimize``) and simulated on its own by :func:`evaluate_point`, in one process.  Kept as
    the baseline of ``aidi bench``'s sweep entry and as the reference the batched rows are tested against."""
    path = str(scenario_path) if isinstance(scenario_path, (str, Path)) else scenario_path
    return sweep_table(grid, [evaluate_point(path, p, engine, plans) for p in points(grid)])


def describe_designs(df: pd.DataFrame, scenario: str, reoptimize: bool) -> list[str]:
    """Which designs a sweep ran (the ``designs`` column), in a line or a few."""
    sets = [d for d in dict.fromkeys(df.get("designs", pd.Series(dtype=object)).tolist()) if d]
    if reoptimize:
        head = f"designs chosen per point under its own power (--reoptimize): {len(sets)} distinct set(s)"
    else:
        head = (f"designs: {scenario}'s own choice under its own power, kept at every point "
                f"(--reoptimize chooses them per point)")
    if len(sets) == 1:
        return [f"{head}: {sets[0]}"]
    return [f"{head}; per point in the designs column"] if sets else [head]


def feasibility_boundary(df: pd.DataFrame, key: str, deadline: bool = False) -> Any:
    """Smallest value of ``key`` at which the run completes (or meets the deadline), per other keys fixed;
    None when no value tried does.  When it is the smallest value tried it is only an upper bound of the
    boundary (see :func:`boundary_summary`)."""
    ok = df["completed"].astype(bool)
    if deadline and "meets_deadline" in df:
        ok &= df["meets_deadline"].eq(True)
    vals = df.loc[ok, key]
    return None if vals.empty else vals.min()


def _fmt(v: Any) -> str:
    return f"{v:g}" if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)


def boundary_summary(df: pd.DataFrame, key: str) -> dict:
    """Where along ``key`` the runs start to complete and to meet the deadline.

    Returns ``completes`` / ``meets_deadline``: the smallest value tried that does (None: none does);
    ``completes_below`` / ``meets_deadline_below``: the largest value tried below it (None when it is
    the lower end of the range tried: then the boundary lies at or below it, a bound and not the
    boundary); ``range``: [smallest, largest] value tried; ``deadline_set``: whether the scenario
    has a deadline (``[sim] deadline_s``).
    """
    out: dict[str, Any] = {"deadline_set": bool("meets_deadline" in df and df["meets_deadline"].notna().any())}
    if not pd.api.types.is_numeric_dtype(df[key]) or pd.api.types.is_bool_dtype(df[key]):
        # values without an order (e.g. hyper_tile = 1, 2, "auto"): which values succeed, no boundary
        out["range"] = list(dict.fromkeys(df[key].tolist()))
        ok = df["completed"].astype(bool)
        out["completes_at"] = df.loc[ok, key].tolist()
        out["meets_deadline_at"] = df.loc[ok & df.get("meets_deadline", ok).eq(True), key].tolist()
        for name in ("completes", "meets_deadline"):
            out[name] = out[f"{name}_below"] = None
        return out
    vals = sorted(df[key].dropna().unique().tolist())
    out["range"] = [vals[0], vals[-1]] if vals else [None, None]
    for name, deadline in (("completes", False), ("meets_deadline", True)):
        b = feasibility_boundary(df, key, deadline)
        below = [v for v in vals if b is not None and v < b]
        out[name] = b
        out[f"{name}_below"] = below[-1] if below else None
    return out


def describe_boundary(b: dict, key: str) -> list[str]:
    """Two sentences (completes, deadline) for a :func:`boundary_summary`, saying when a value is only
    the lower end of the range tried or when no value tried succeeds."""
    lines = []
    if "completes_at" in b:  # unordered values
        for name, verb in (("completes", "completes"), ("meets_deadline", "meets the deadline")):
            at = b[f"{name}_at"]
            if name == "meets_deadline" and not b["deadline_set"]:
                lines.append(f"{key}: no deadline set ([sim] deadline_s), so none to meet")
            else:
                lines.append(f"{key}: {verb} at " + (", ".join(_fmt(v) for v in at) if at else
                                                     f"none of the values tried ({', '.join(map(_fmt, b['range']))})"))
        return lines
    lo, hi = (_fmt(x) for x in b["range"])
    tried = f"in the range tried ({lo} to {hi})"
    for name, verb in (("completes", "completes"), ("meets_deadline", "meets the deadline")):
        v = b[name]
        if name == "meets_deadline" and not b["deadline_set"]:
            lines.append(f"{key}: no deadline set ([sim] deadline_s), so none to meet")
        elif v is None:
            lines.append(f"{key}: never {verb} {tried}")
        elif b[f"{name}_below"] is None:
            lines.append(f"{key}: {verb} already at {_fmt(v)}, the lower end of the range tried; the boundary "
                         f"lies at or below it (a bound, not the boundary: try smaller values)")
        else:
            lines.append(f"{key}: {verb} from {_fmt(v)}; the boundary lies between {_fmt(b[f'{name}_below'])} "
                         f"(does not) and {_fmt(v)}")
    return lines


def is_log_spread(values: pd.Series) -> bool:
    """Whether a swept column reads better on a log axis: numeric, positive, spanning more than 20x."""
    return bool(pd.api.types.is_numeric_dtype(values) and len(values) and (values > 0).all()
                and values.max() / values.min() > 20)


def figure(df: pd.DataFrame, key: str, title: str):
    """Latency, power cycles and energy split (stacked bars) against the swept parameter, boundaries marked.

    A parameter spread over more than 20x gets a log x axis; its bars are then sized by
    :func:`aidi.analysis.figures.log_bar_positions` so they look equally wide.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    from .figures import category_label, key_label, log_bar_positions, vline

    d = df.sort_values(key) if pd.api.types.is_numeric_dtype(df[key]) else df  # unordered values: grid order
    xs = d[key]
    log_x = is_log_spread(xs)
    num = ":.4g" if pd.api.types.is_numeric_dtype(xs) else ""
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, vertical_spacing=0.07,
                        subplot_titles=("latency (s)", "power cycles", "energy by category (J)"))
    fig.add_trace(go.Scatter(x=xs, y=d["latency_s"], mode="lines+markers", name="latency"), 1, 1)
    fig.add_trace(go.Scatter(x=xs, y=d["power_cycles"], mode="lines+markers", name="power cycles"), 2, 1)
    if log_x:
        bar_x, widths = log_bar_positions(xs.tolist())
    else:
        bar_x, widths = (xs.astype(str) if xs.dtype == object else xs), None
    for col in [c for c in d.columns if c.startswith("E_") and c.endswith("_J")]:
        if d[col].fillna(0).abs().sum() > 0:
            fig.add_trace(go.Bar(x=bar_x, y=d[col], width=widths, name=category_label(col[2:-2]),
                                 customdata=xs, hovertemplate=f"{key} = %{{customdata{num}}}<br>%{{y:.4g}} J"),
                          3, 1)
    fig.update_layout(barmode="stack", title=title, template="plotly_white", height=850,
                      legend_title_text="energy category")
    fig.update_xaxes(title_text=key_label(key), row=3, col=1)
    if log_x:
        fig.update_xaxes(type="log")
    if not d["completed"].any():
        first = next((t for t in (*d["error"], *d["reason"]) if t), "")
        fig.add_annotation(text=f"no point completed (see the error and reason columns){': ' + first if first else ''}",
                           xref="paper", yref="paper", x=0.5, y=1.0, showarrow=False, yanchor="bottom")
    b = boundary_summary(d, key)
    for name, label, y in (("completes", "completes", 1.0), ("meets_deadline", "meets deadline", 0.85)):
        v = b[name]
        if v is not None and not isinstance(v, str):
            at_end = b[f"{name}_below"] is None
            text = f"{label} {'already at the lowest value tried' if at_end else 'from'} {v:g}"
            for row in (1, 2, 3):
                vline(fig, v, text if row == 1 else None, log_x=log_x, row=row, col=1, label_y=y)
    return fig
