"""Terminal summaries, event logs and plotly figures for runs and sweeps."""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import plotly.graph_objects as go
from rich.table import Table

from . import jsonout
from .console import console
from .figures import FigureWriter, category_bar, category_label, fit_labels, hline, plural

if TYPE_CHECKING:  # pandas and SimPy load where an event log or a table is written, not for a summary
    import pandas as pd

    from aidi.sim.des import Event

_console = console(wide=True)


@dataclass
class Section:
    title: str
    body_html: str
    figures: list = field(default_factory=list)


def table_html(df: pd.DataFrame) -> str:
    return df.to_html(index=False, border=0, classes="tbl", float_format=lambda x: f"{x:.4g}")


def render(sections: list[Section], title: str, plotlyjs_src: str | None = None) -> str:
    """One HTML page.  ``plotlyjs_src``: the URL of the output folder's plotly.js (see
    :class:`~aidi.analysis.figures.FigureWriter`); None embeds plotly.js in the page (4.8 MB)."""
    from plotly.offline import get_plotlyjs

    script = (f"<script type='text/javascript' src='{html.escape(plotlyjs_src)}'></script>" if plotlyjs_src
              else f"<script type='text/javascript'>{get_plotlyjs()}</script>")
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>",
             "<style>body{font-family:sans-serif;max-width:1200px;margin:auto;padding:1em}"
             ".tbl{border-collapse:collapse;font-size:90%}.tbl td,.tbl th{padding:2px 8px;border-bottom:1px solid #ddd}"
             "nav a{margin-right:1em}</style>",
             f"{script}</head><body>",
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
    import pandas as pd

    from aidi.sim.des import EVENT_COLUMNS

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
    if ax < 5e-15:  # a sum's rounding (e.g. -1e-19 J of converter loss), not a negative energy
        x = ax = 0.0
    if ax < 1e-6:
        return f"{x * 1e9:.2f} nJ"
    if ax < 1e-3:
        return f"{x * 1e6:.2f} uJ"
    return f"{x * 1e3:.3f} mJ"


def _latency_list(xs: list[float], shown: int = 6) -> str:
    if len(xs) <= shown:
        return ", ".join(_fmt_s(x) for x in xs)
    return f"min {_fmt_s(min(xs))}, mean {_fmt_s(float(np.mean(xs)))}, max {_fmt_s(max(xs))}"


def run_summary_rows(res: dict, period_s: float | None = None) -> list[tuple[str, str]]:
    """The (what, value) rows of ``aidi run``'s summary, in words a reader can check.

    ``latency_s`` is the simulated time until the last inference's output; with several
    inferences released ``period_s`` apart it is mostly waiting for the next release, so the
    latency of each inference (release to output, ``inference_latencies_s``) is listed too.
    """
    rows = [("status", "completed" if res["completed"] else f"NOT completed: {res['reason']}")]
    lats = [float(x) for x in res.get("inference_latencies_s") or []]
    n_inf = int(res.get("inferences", 1) or 1)
    if n_inf > 1:
        released = (f"released every {period_s:g} s" if period_s else "back to back")
        done = (f"{_fmt_s(res['latency_s'])} until the last output" if res["latency_s"] is not None else
                f"- ({res.get('inferences_completed', len(lats))} of {n_inf} completed)")
        rows.append((f"latency, all {n_inf} inferences", f"{done} ({released})"))
        if lats:
            rows.append(("latency per inference (release to output)", _latency_list(lats)))
    else:
        rows.append(("latency", _fmt_s(res["latency_s"])))
    rows.append(("power cycles", str(res["power_cycles"])))
    rows.append(("on / off time", f"{_fmt_s(res['on_time_s'])} / {_fmt_s(res['off_time_s'])}"))
    per = "" if n_inf == 1 else " per inference"
    rows.append((f"units{per}", str(res["units"])))
    rows.append(("unit runs", f"{res['units_executed']} committed, "
                              f"{plural(res['units_reexecuted'], 'unit')} re-run after a brown-out lost it"))
    e = res["energy_J"]
    rows.append(("harvested / consumed", f"{_fmt_J(e['harvested'])} / {_fmt_J(e['consumed'])}"))
    rows.append(("leaked / clipped", f"{_fmt_J(e['leaked'])} / {_fmt_J(e['clipped'])}"))
    for k, v in e["by_category"].items():
        if v:
            rows.append((f"  {category_label(k)}", _fmt_J(v)))
    if "deadline_s" in res:
        rows.append(("deadline", f"{_fmt_s(res['deadline_s'])} ({'met' if res['meets_deadline'] else 'missed'})"))
    if "onnx_agreement" in res:  # an imported model: no labelled data, its float reference is onnxruntime
        a = res["onnx_agreement"]
        rows.append(("Q15 vs onnxruntime", f"top-1 agreement {a['top1_agreement']:.1%}, largest output error "
                                           f"{a['max_abs_error']:.3g} ({a['inputs']} calibration inputs)"))
    elif "q15_accuracy" in res:
        rows.append(("accuracy float / Q15 (held-out)", f"{res['float_accuracy']:.1%} / {res['q15_accuracy']:.1%}"))
    if "output" in res:
        rows.append(("output (Q15)", " ".join(str(x) for x in res["output"])))
        rows.append(("output == reference", str(res["output_matches_reference"])))
    return rows


def print_run_summary(built, res: dict, out: Path | None = None) -> None:
    sc = built.scenario
    t = Table(title=f"aidi run {sc.name} ({res['engine']})", show_header=False)
    t.add_column("what")
    t.add_column("value", justify="right")
    for what, value in run_summary_rows(res, getattr(sc.sim, "period_s", None)):
        t.add_row(what, value)
    if out is not None:
        t.add_row("written", str(out))
    _console.print(t)


def _charge_curve(row, power, seg, n: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Voltage samples along a charging interval (MCU off), from the closed-form physics."""
    from aidi.sim import capacitor

    ts = np.linspace(row.t_start, row.t_end, n)
    return ts, capacitor.charge_trace(row.v_start, row.t_start, ts, power.v_on, capacitor.circuit(power, seg))


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
    if power is not None:  # the thresholds the trace moves between
        for v, label, dash in ((power.v_max, "V_max", "dot"), (power.v_on, "V_on (boot)", "dash"),
                               (power.v_off, "V_off (brown-out)", "dash")):
            hline(fig, v, f"{label} {v:g} V", dash=dash)
    fig.update_layout(title=title, xaxis_title="time (s)", yaxis_title="capacitor voltage (V)",
                      template="plotly_white")
    return fig


def energy_figure(res: dict, layer_names: list[str]) -> go.Figure:
    """Energy by category (bar) and by layer (bar)."""
    from plotly.subplots import make_subplots

    e = res["energy_J"]
    fig = make_subplots(rows=1, cols=2, subplot_titles=("by category (J)", "by layer (J, MCU side)"))
    fig.add_trace(category_bar(e["by_category"]), 1, 1)  # horizontal: the long labels read in full
    fig.update_yaxes(autorange="reversed", row=1, col=1)  # in CATEGORIES' order, top down
    lay = e.get("by_layer", {})
    names = [layer_names[int(k)] if int(k) < len(layer_names) else k for k in lay]
    fig.add_trace(go.Bar(x=names, y=list(lay.values()), name="layer"), 1, 2)
    fig.update_layout(template="plotly_white", showlegend=False)
    return fit_labels(fig)


def cycles_per_layer(ev: pd.DataFrame) -> pd.DataFrame:
    """Per layer: power cycles its units ran in, units committed and units lost."""
    import pandas as pd

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


def write_run(out: Path, built, res: dict, events: list[Event] | None, formats=("html",),
              writer: FigureWriter | None = None) -> list[Path]:
    """Write the event log (CSV and parquet), ``result.json``, the voltage and energy figures in
    ``formats`` (``html``, ``svg``, ``pdf``, ``png``) and ``report.html`` with them all.

    ``writer``: the :class:`~aidi.analysis.figures.FigureWriter` of an enclosing report folder
    (its plotly.js and its static batch are shared); by default one for ``out`` alone.
    Returns the figure and report paths written.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ev = events_frame(events)
    ev.to_csv(out / "events.csv", index=False)
    ev.to_parquet(out / "events.parquet", index=False)
    (out / "result.json").write_text(jsonout.dumps(res, indent=1))
    names = built.graph.layer_names
    own = writer is None
    w = FigureWriter(out, formats) if own else writer
    n0 = len(w.written)
    w.figure(voltage_figure(ev, names, f"{built.scenario.name}: capacitor voltage", built.scenario.power,
                            built.segments), out / "voltage")
    w.figure(energy_figure(res, names), out / "energy")
    write_run_report(out / "report.html", built, res, ev, writer=w)
    if own:
        w.flush()
    return w.written[n0:]


def write_run_report(path: Path, built, res: dict, ev: pd.DataFrame, writer: FigureWriter | None = None) -> None:
    """One HTML page: voltage, energy, power cycles per layer, schedulability (plotly.js beside it,
    or the ``writer``'s folder copy)."""
    import pandas as pd

    from . import check as chk

    names = built.graph.layer_names
    sched = chk.analyse(built)
    table = pd.DataFrame([{k: v for k, v in L.items() if k != "reasons"} | {"reasons": "; ".join(L["reasons"])}
                          for L in sched["layers"]])
    per_layer = cycles_per_layer(ev)
    summary = {k: res[k] for k in ("completed", "latency_s", "inference_latencies_s", "power_cycles", "units",
                                   "units_executed", "units_reexecuted", "on_time_s", "off_time_s") if k in res}
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
    w = writer or FigureWriter(Path(path).parent)
    w.page(path, lambda src: render(sections, f"aidi run {built.scenario.name}", src))


def _cycles(n: int | None) -> str:
    return "power cycles unknown: the run did not complete" if n is None else plural(int(n), "power cycle")


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
                   f"{_fmt_s(h['latency_s'])} ({_cycles(h['power_cycles'])})"
                   + (f"; deadline {res['deadline_s']:g} s" if res["deadline_s"] else ""))
    for r in res["reasons"]:
        _console.print(f"- {r}", style="red")
    for L in res["layers"]:
        for r in L["reasons"]:
            _console.print(f"  layer {L['layer']}: {r}")


def print_sweep(df, summary: dict, out) -> None:
    t = Table(title=f"aidi sweep {summary['scenario']} ({summary['points']} points)")
    cols = summary["keys"] + ["completed", "latency_s", "power_cycles", "units_reexecuted", "error"]
    if "reason" in df and df["reason"].astype(bool).any():  # why a point that ran did not complete
        cols.append("reason")
    for c in cols:
        t.add_column(c)
    for _, row in df.iterrows():
        t.add_row(*[(_fmt_s(row[c]) if c == "latency_s" and row[c] == row[c] and row[c] is not None else str(row.get(c, "")))
                    for c in cols])
    _console.print(t)
    from .sweep import describe_boundary

    for line in describe_boundary(summary["boundary"], summary["keys"][0]):
        _console.print(line)  # "[sim] deadline_s" is text: the console reads no markup
    if out is not None:
        _console.print(f"written: {out}/sweep.csv, sweep.parquet, sweep.html")
