"""Parameter sweeps (``aidi sweep``): a grid of scenario variants, run in parallel.

Points run on local processes (``workers``) or on a Dask cluster (``dask`` = an
address like ``tcp://host:8786``, or ``"local"`` for a dask.distributed
LocalCluster).  Results are one tidy pandas DataFrame, one row per point, in grid
order whatever the execution order, so every path gives the same frame.
"""

from __future__ import annotations

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


def parse_sets(sets: Iterable[str]) -> dict[str, list[Any]]:
    """``["power.capacitor_F=1e-4,1e-3", ...]`` -> ``{"power.capacitor_F": [1e-4, 1e-3]}``."""
    grid: dict[str, list[Any]] = {}
    for item in sets:
        key, eq, values = item.partition("=")
        key = SHORTCUTS.get(key.strip(), key.strip())
        if not eq or not values.strip():
            raise UserError(f"--set {item!r}: expected KEY=V1,V2,...")
        if "." not in key:
            raise UserError(f"--set {item!r}: KEY must be SECTION.KEY (e.g. power.capacitor_F)")
        grid[key] = [_scalar(v.strip()) for v in values.split(",") if v.strip()]
    if not grid:
        raise UserError("--set: give at least one KEY=V1,V2,...")
    return grid


def points(grid: dict[str, list[Any]]) -> list[dict[str, Any]]:
    keys = list(grid)
    return [dict(zip(keys, combo)) for combo in itertools.product(*(grid[k] for k in keys))]


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


def point_errors() -> tuple[type[BaseException], ...]:
    """What makes a point a row with an error instead of a crash: a user's value or an infeasible point."""
    from .errors import user_errors

    return (ValueError, *user_errors())


def evaluate_point(scenario_path: str, overrides: dict[str, Any], engine: str = "oracle", plans=None) -> dict:
    """Build and simulate one variant; returns a flat row.

    A point that cannot run (a bad value, nothing fits, no progress) is a row with
    ``error``; any other exception is a bug and propagates.  ``plans``: the
    :class:`~aidi.models.hardware.PlanCache` to plan through (default: this
    process's, so points with the same structure and designs plan once).
    """
    from . import pipeline

    row: dict[str, Any] = dict(overrides)
    try:
        sc = pipeline.load_scenario(scenario_path).with_values(**overrides)
        built = pipeline.build(sc, plans=plan_cache() if plans is None else plans)
        res, _ = pipeline.simulate(built, engine=engine, functional=False, log=False)
    except point_errors() as exc:  # a point that cannot run is a result, not a crash
        row.update({"completed": False, "error": str(exc).splitlines()[0]})
        return row
    e = res["energy_J"]
    row.update({
        "completed": res["completed"],
        "error": "",
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
    })
    return row


def run_sweep(scenario_path: str | Path, grid: dict[str, list[Any]], workers: int = 1, dask: str | None = None,
              engine: str = "oracle", progress: Callable[[int, int], None] | None = None) -> pd.DataFrame:
    """Run every grid point; one row per point, in grid order.

    ``scenario_path``: a scenario file, a shipped name, or a loaded Scenario (sent to the workers as is)."""
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
            for i, p in enumerate(pts):
                rows[i] = evaluate_point(path, p, engine)
                tick()
        else:
            futs = {pool.submit(evaluate_point, path, p, engine): i for i, p in enumerate(pts)}
            for fut in pool.as_completed(list(futs)):
                rows[futs[fut]] = fut.result()
                tick()
    return pd.DataFrame(rows)


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
    b = boundary_summary(d, key)
    for name, label, y in (("completes", "completes", 1.0), ("meets_deadline", "meets deadline", 0.85)):
        v = b[name]
        if v is not None and not isinstance(v, str):
            at_end = b[f"{name}_below"] is None
            text = f"{label} {'already at the lowest value tried' if at_end else 'from'} {v:g}"
            for row in (1, 2, 3):
                vline(fig, v, text if row == 1 else None, log_x=log_x, row=row, col=1, label_y=y)
    return fig
