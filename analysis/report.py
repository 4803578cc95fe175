"""Terminal summaries, event logs and plotly figures for runs and sweeps."""

from __future__ import annotations

import sys
import html
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from rich.console import Console
from rich.table import Table

from aidi.sim.des import EVENT_COLUMNS, Event

from . import jsonout

_console = Console(stderr=False, width=None if sys.stdout.isatty() else 160)


@dataclass
class Section:
    title: str
    body_html: str
    figures: list = field(default_factory=list)


def table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="tbl", float_format=lambda x: f"{x:.4g}")


def render(sections: list[Section], title: str) -> str:
    """One HTML page; plotly.js embedded once so it opens without network."""
    from plotly.offline import get_plotlyjs

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             ".tbl{border-collapse:collapse;font-size:90%}.tbl td,.tbl th{padding:2px 8px;border-bottom:1px solid #ddd}"
             "nav a{margin-right:1em}</style>",
             f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
             f"<h1>{html.escape(title)}</h1><nav>"]
    parts += [f"<a href='#s{i}'>{html.escape(s.title)}</a>" for i, s in enumerate(sections)]
    parts.append("</nav>")
    for i, s in enumerate(sections):
        parts.append(f"<section id='s{i}'><h2>{html.escape(s.title)}</h2>{s.body_html}")
        for fig in s.figures:
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False))
        parts.append("</section>")
    parts.append("</body></html>")
    return "\n".join(parts)



def events_frame(events: list[Event] | None) -> pd.DataFrame:
    """The event log (:class:`~aidi.sim.des.Event` records) as a tidy DataFrame, one column per field
    (one row per unit/commit/boot/charge/sleep)."""
    return pd.DataFrame(events or [], columns=list(EVENT_COLUMNS))


def _fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 1e-3:
        return f"{x * 1e6:.1f} us"
    if x < 1:
        return f"{x * 1e3:.2f} ms"
    return f"{x:.3f} s"


def _fmt_J(x: float) -> str:
    ax = abs(x)
    if ax < 1e-6:
        return f"{x * 1e9:.2f} nJ"
    if ax < 1e-3:
        return f"{x * 1e6:.2f} uJ"
    return f"{x * 1e3:.3f} mJ"


def print_run_summary(built, res: dict, out: Path | None = None) -> None:
    sc = built.scenario
    t = Table(title=f"aidi run {sc.name} ({res['engine']})", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    status = "completed" if res["completed"] else f"NOT completed: {res['reason']}"
    t.add_row("status", status)
    t.add_row("latency", _fmt_s(res["latency_s"]))
    t.add_row("power cycles", str(res["power_cycles"]))
    t.add_row("on / off time", f"{_fmt_s(res['on_time_s'])} / {_fmt_s(res['off_time_s'])}")
    t.add_row("units (executed / re-executed)",
              f"{res['units']} ({res['units_executed']} / {res['units_reexecuted']})")
    e = res["energy_J"]
    t.add_row("harvested / consumed", f"{_fmt_J(e['harvested'])} / {_fmt_J(e['consumed'])}")
    t.add_row("leaked / clipped", f"{_fmt_J(e['leaked'])} / {_fmt_J(e['clipped'])}")
    for k, v in e["by_category"].items():
        if v:
            t.add_row(f"  {k}", _fmt_J(v))
    if "deadline_s" in res:
        t.add_row("deadline", f"{_fmt_s(res['deadline_s'])} ({'met' if res['meets_deadline'] else 'missed'})")
    if "q15_accuracy" in res:
        t.add_row("accuracy float / Q15 (held-out)", f"{res['float_accuracy']:.1%} / {res['q15_accuracy']:.1%}")
    if "output" in res:
        t.add_row("output (Q15)", " ".join(str(x) for x in res["output"]))
        t.add_row("output == reference", str(res["output_matches_reference"]))
    if out is not None:
        t.add_row("written", str(out))
    _console.print(t)


def _charge_curve(row, power, seg, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Voltage samples along a charging interval (MCU off), from the closed-form physics."""
    from aidi.sim import physics

    ts = np.linspace(row.t_start, row.t_end, n)
    return ts, physics.charge_trace(row.v_start, row.t_start, ts, power.v_on, physics.circuit(power, seg))


PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf"]


def voltage_figure(ev: pd.DataFrame, layer_names: list[str], title: str, power=None, seg=None,
                   max_curves: int = 400) -> go.Figure:
    """Capacitor voltage over time; executed units drawn over it in their layer's colour, losses marked."""
    fig = go.Figure()
    if ev.empty:
        return fig
    xs, ys = [], []
    n_curves = 0
    for row in ev.itertuples(index=False):
        if row.kind == "charge" and power is not None and n_curves < max_curves and row.t_end > row.t_start:
            t, v = _charge_curve(row, power, seg)
            n_curves += 1
        else:
            t, v = np.array([row.t_start, row.t_end]), np.array([row.v_start, row.v_end])
        xs.append(t)
        ys.append(v)
    x, y = np.concatenate(xs), np.concatenate(ys)
    stride = max(1, len(x) // 40000)
    fig.add_trace(go.Scattergl(x=x[::stride], y=y[::stride], mode="lines", name="V_cap",
                               line=dict(color="black", width=1)))
    units = ev[ev["kind"] == "unit"]
    for layer, grp in units.groupby("layer"):
        n = len(grp)
        x = np.column_stack([grp["t_start"], grp["t_end"], np.full(n, np.nan)]).ravel()
        y = np.column_stack([grp["v_start"], grp["v_end"], np.full(n, np.nan)]).ravel()
        name = layer_names[int(layer)] if int(layer) < len(layer_names) else f"layer {layer}"
        fig.add_trace(go.Scattergl(x=x, y=y, mode="lines", line=dict(width=7, color=PALETTE[int(layer) % 10]),
                                   name=f"L{layer} {name}", opacity=0.7))
    lost = units[units["outcome"] == "lost"]
    if len(lost):
        fig.add_trace(go.Scattergl(x=lost["t_end"], y=lost["v_end"], mode="markers", name="brown-out (unit lost)",
                                   marker=dict(symbol="x", size=9, color="red")))
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="capacitor voltage (V)",
                      template="plotly_white")
    return fig


def energy_figure(res: dict, layer_names: list[str]) -> go.Figure:
    """Energy by category (bar) and by layer (bar)."""
    from plotly.subplots import make_subplots

    e = res["energy_J"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("by category (J)", "by layer (J, MCU side)"))
    cats = {k: v for k, v in e["by_category"].items() if v}
    fig.add_trace(go.Bar(x=list(cats), y=list(cats.values()), name="category"), 1, 1)
    lay = e.get("by_layer", {})
    names = [layer_names[int(k)] if int(k) < len(layer_names) else k for k in lay]
    fig.add_trace(go.Bar(x=names, y=list(lay.values()), name="layer"), 1, 2)
    fig.update_layout(template="plotly_white", showlegend=False)
    return fig


def cycles_per_layer(ev: pd.DataFrame) -> pd.DataFrame:
    """Per layer: power cycles its units ran in, units committed and units lost."""
    if ev.empty:
        return pd.DataFrame(columns=["layer", "power_cycles", "committed", "lost"])
    cycle = (ev["kind"] == "boot").cumsum()
    units = ev.assign(cycle=cycle)[ev["kind"] == "unit"]
    g = units.groupby("layer")
    return pd.DataFrame({
        "power_cycles": g["cycle"].nunique(),
        "committed": g["outcome"].apply(lambda s: int((s == "committed").sum())),
        "lost": g["outcome"].apply(lambda s: int((s == "lost").sum())),
    }).reset_index()


def cycles_figure(per_layer: pd.DataFrame, layer_names: list[str]) -> go.Figure:
    names = [layer_names[int(i)] if int(i) < len(layer_names) else str(i) for i in per_layer["layer"]]
    fig = go.Figure([go.Bar(x=names, y=per_layer["power_cycles"], name="power cycles"),
                     go.Bar(x=names, y=per_layer["lost"], name="units lost (re-executed)")])
    fig.update_layout(title="power cycles per layer", template="plotly_white", barmode="group")
    return fig


def write_run(out: Path, built, res: dict, events: list[Event] | None) -> None:
    """Write the event log (CSV and parquet), the figures and one report.html with them all."""

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev = events_frame(events)
    ev.to_csv(out / "events.csv", index=False)
    ev.to_parquet(out / "events.parquet", index=False)
    (out / "result.json").write_text(jsonout.dumps(res, indent=1))
    names = built.graph.layer_names
    voltage_figure(ev, names, f"{built.scenario.name}: capacitor voltage", built.scenario.power,
                   built.segments).write_html(
        out / "voltage.html", include_plotlyjs=True)
    energy_figure(res, names).write_html(out / "energy.html", include_plotlyjs=True)
    write_run_report(out / "report.html", built, res, ev)


def write_run_report(path: Path, built, res: dict, ev: pd.DataFrame) -> None:
    """One self-contained HTML page: voltage, energy, power cycles per layer, schedulability."""
    from . import check as chk

    names = built.graph.layer_names
    sched = chk.analyse(built)
    table = pd.DataFrame([{k: v for k, v in L.items() if k != "reasons"} | {"reasons": "; ".join(L["reasons"])}
                          for L in sched["layers"]])
    per_layer = cycles_per_layer(ev)
    summary = {k: res[k] for k in ("completed", "latency_s", "power_cycles", "units", "units_executed",
                                   "units_reexecuted", "on_time_s", "off_time_s") if k in res}
    if "output_matches_reference" in res:
        summary["output_matches_reference"] = res["output_matches_reference"]
    body = "<pre>" + html.escape(jsonout.dumps(summary, indent=1)) + "</pre>"
    verdict = "schedulable" if sched["schedulable"] else "NOT schedulable: " + "; ".join(sched["reasons"])
    sections = [
        Section("Run", body, [voltage_figure(ev, names, f"{built.scenario.name}: capacitor voltage",
                                             built.scenario.power, built.segments)]),
        Section("Energy by category and layer", "", [energy_figure(res, names)]),
        Section("Power cycles per layer", per_layer.to_html(index=False, border=0, classes="tbl"),
                [cycles_figure(per_layer, names)] if not per_layer.empty else []),
        Section("Schedulability", f"<p>{html.escape(verdict)}</p>"
                + table_html(table)),
    ]
    Path(path).write_text(render(sections, f"aidi run {built.scenario.name}"))


def print_check(res: dict) -> None:
    t = Table(title=f"aidi check {res['scenario']}: {'SCHEDULABLE' if res['schedulable'] else 'NOT schedulable'}")
    for col in ("layer", "name", "units", "design", "energy", "time", "max need", "margin", "SRAM", "verdict"):
        t.add_column(col)
    for L in res["layers"]:
        t.add_row(str(L["layer"]), L["name"], str(L["units"]), L["design"], _fmt_J(L["energy_J"]), _fmt_s(L["time_s"]),
                  _fmt_J(L["max_unit_need_J"]), f"{L['min_margin']:.1%}", str(L["sram_bytes"]), L["verdict"])
    _console.print(t)
    _console.print(f"E_cycle (after converter) {_fmt_J(res['e_cycle_J'])}, boot {_fmt_J(res['boot_J'])}, "
                   f"SRAM {res['sram_max_bytes']}/{res['sram_budget_bytes']} B")
    h = res["harvester"]
    _console.print(f"latency: continuous power {_fmt_s(res['continuous']['latency_s'])}; under the harvester "
                   f"{_fmt_s(h['latency_s'])} ({h['power_cycles']} power cycles)"
                   + (f"; deadline {res['deadline_s']:g} s" if res["deadline_s"] else ""))
    for r in res["reasons"]:
        _console.print(f"[red]- {r}[/red]")
    for L in res["layers"]:
        for r in L["reasons"]:
            _console.print(f"  layer {L['layer']}: {r}")


def print_sweep(df, summary: dict, out) -> None:
    t = Table(title=f"aidi sweep {summary['scenario']} ({summary['points']} points)")
    cols = summary["keys"] + ["completed", "latency_s", "power_cycles", "units_reexecuted", "error"]
    for c in cols:
        t.add_column(c)
    for _, row in df.iterrows():
        t.add_row(*[(_fmt_s(row[c]) if c == "latency_s" and row[c] == row[c] and row[c] is not None else str(row.get(c, "")))
                    for c in cols])
    _console.print(t)
    b = summary["boundary"]
    _console.print(f"feasibility boundary of {summary['keys'][0]}: completes from {b['completes']}, "
                   f"meets the deadline from {b['meets_deadline']}")
    if out is not None:
        _console.print(f"written: {out}/sweep.csv, sweep.parquet, sweep.html")
