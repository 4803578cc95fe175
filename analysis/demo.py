"""``aidi demo``: the embedded defaults end to end, one self-contained report.html."""

from __future__ import annotations

import html
import time
from pathlib import Path

import pandas as pd
import plotly.graph_objects as go
from rich.console import Console
from rich.table import Table

from aidi.scenarios import loader

from . import check as chk
from . import jsonout
from . import pipeline, report
from .report import Section, render, table_html
from . import sweep as sw

DEMO_SCENARIOS = ("solar-tmy3", "rf-intermittent")
SWEEP_SCENARIO = "rf-intermittent"
NAS_SCENARIO = "lab-1mF"


def run_demo(out: Path, quick: bool = False, console: Console | None = None) -> dict:
    """Run every step; returns a summary dict and writes ``out/report.html``."""
    import sys

    con = console or Console(width=None if sys.stdout.isatty() else 160)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    summary: dict = {"steps": {}}
    t_all = time.perf_counter()

    def step(name: str):
        con.print(f"[bold]aidi demo[/bold]: {name}")
        return time.perf_counter()

    # 1. the bundled model under two real harvesting scenarios
    rows = []
    for name in DEMO_SCENARIOS:
        t0 = step(f"simulating {name} (SimPy model, functional Q15)")
        sc = loader.load(name)
        built = pipeline.build(sc)
        res, events = pipeline.simulate(built, engine="des", functional=True, log=True)
        report.write_run(out / name, built, res, events)
        ev = report.events_frame(events)
        chk_res = chk.analyse(built)
        rows.append({"scenario": name, "completed": res["completed"], "latency_s": res["latency_s"],
                     "power_cycles": res["power_cycles"], "units": res["units"],
                     "re-executed": res["units_reexecuted"], "output == reference": res["output_matches_reference"],
                     "Q15 accuracy": built.q15_accuracy,
                     "float accuracy": built.trained.float_accuracy})
        sched = pd.DataFrame([{k: v for k, v in L.items() if k != "reasons"} | {"reasons": "; ".join(L["reasons"])}
                              for L in chk_res["layers"]])
        body = (f"<p>{html.escape(sc.description)}</p><p>Completed: {res['completed']}, latency "
                f"{res['latency_s']:.3f} s, {res['power_cycles']} power cycles, {res['units_reexecuted']} units "
                f"re-executed; the intermittent output equals the Q15 reference: "
                f"<b>{res['output_matches_reference']}</b>.</p><h3>Schedulability</h3>{table_html(sched)}")
        sections.append(Section(f"{name}: voltage and energy", body,
                                [report.voltage_figure(ev, built.graph.layer_names, f"{name}: capacitor voltage", sc.power,
                                                      built.segments),
                                 report.energy_figure(res, built.graph.layer_names)]))
        summary["steps"][name] = {"seconds": time.perf_counter() - t0, "result": {
            k: res[k] for k in ("completed", "latency_s", "power_cycles", "units_reexecuted",
                                "output_matches_reference")}}

    # 2. capacitor sweep with the feasibility boundary
    t0 = step("capacitor sweep (oracle, 2 workers)")
    caps = ([1e-6, 4.7e-6, 22e-6, 100e-6] if quick
            else [1e-6, 2.2e-6, 4.7e-6, 10e-6, 22e-6, 47e-6, 100e-6, 220e-6, 470e-6, 1e-3])
    sc = loader.load(SWEEP_SCENARIO)
    df = sw.run_sweep(sc.path, {"power.capacitor_F": caps}, workers=1 if quick else 2)
    df.to_csv(out / "sweep.csv", index=False)
    bound = sw.feasibility_boundary(df, "power.capacitor_F")
    fig = sw.figure(df, "power.capacitor_F", f"{SWEEP_SCENARIO}: latency vs capacitor")
    cols = ["power.capacitor_F", "completed", "latency_s", "power_cycles", "units_reexecuted", "error"]
    sections.append(Section("Latency vs capacitor", f"<p>Smallest capacitor that completes: {bound}</p>"
                            + table_html(df[[c for c in cols if c in df]]), [fig]))
    summary["steps"]["sweep"] = {"seconds": time.perf_counter() - t0, "boundary_F": bound}

    # 3. a short NAS: ours (supernet + KD, evolution) against the iNAS-style and HW-NAS-style baselines
    t0 = step("NAS on digits under lab-1mF: ours vs iNAS-style vs HW-NAS-style (same seed and budget)")
    from .nas_run import run_compare

    cmp = run_compare(loader.load(NAS_SCENARIO).path, budget=8 if quick else 16, seed=0, quick=quick,
                      out=out / "nas")
    nas_rows = pd.DataFrame(cmp["rows"])
    fig = go.Figure()
    for method, grp in nas_rows.groupby("method"):
        fig.add_trace(go.Scatter(x=grp["latency_s"], y=grp["test_accuracy"], mode="markers", name=method,
                                 marker=dict(size=11), text=grp["arch"]))
    for r in cmp["requirements_s"]:
        fig.add_vline(x=r, line_dash="dot", line_color="grey")
    fig.update_layout(title="NAS: accuracy vs intermittent latency (dotted: the three latency requirements)",
                      xaxis_title="intermittent latency under lab-1mF (s)", yaxis_title="held-out accuracy (Q15)",
                      template="plotly_white")
    cols = ["requirement_s", "method", "arch", "test_accuracy", "latency_s", "meets", "search_s", "des_matches_oracle"]
    nas_table = nas_rows[[c for c in cols if c in nas_rows]]
    sections.append(Section("NAS: ours vs the baselines",
                            f"<p>Budget {cmp['budget']} evaluations per method and requirement, seed 0; every "
                            "reported model re-simulated with the SimPy model.</p>" + table_html(nas_table), [fig]))
    summary["steps"]["nas"] = {"seconds": time.perf_counter() - t0, "rows": nas_table.to_dict(orient="records")}

    # 4. the C runtime for the RF scenario, built and checked on the host and on mspdebug
    t0 = step("emitting the C runtime and checking it (gcc host build; clang-14 + mspdebug when installed)")
    from . import emit as em

    built = pipeline.build(loader.load(SWEEP_SCENARIO))
    er = em.emit(built, out / "firmware", build=True)
    body = (f"<p>Emitted to <code>{html.escape(er['out'])}</code>; the host build's output equals the Q15 "
            f"reference and the simulated functional run: <b>{er['host']['matches_reference']}</b>.</p>")
    m = er["msp430"]
    if "skipped" in m:
        body += f"<p>MSP430 build skipped: {html.escape(m['skipped'])}</p>"
    else:
        body += (f"<p>MSP430 (clang-14, ld.lld-14): FRAM {m['fram_bytes']} B, SRAM {m['sram_bytes']} B + "
                 f"{m['stack_reserve_bytes']} B stack (peak {m['stack_peak_bytes']} B); on mspdebug's simulator the "
                 f"output equals the reference: <b>{m['matches_reference']}</b>; {m['total_cycles']} MCLK cycles."
                 f"</p>" + table_html(pd.DataFrame(m["cycles_per_layer"])) + f"<p>{html.escape(m['note'])}</p>")
    sections.append(Section("Emitted firmware", body))
    summary["steps"]["emit"] = {"seconds": time.perf_counter() - t0, "host_ok": er["host"]["matches_reference"],
                                "msp430": {k: v for k, v in m.items() if k != "cycles_per_layer"}}

    summary["wall_s"] = time.perf_counter() - t_all
    (out / "report.html").write_text(render(sections, "aidi demo report"))
    (out / "summary.json").write_text(jsonout.dumps(summary, indent=1))
    t = Table(title="aidi demo")
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()])
    con.print(t)
    con.print(f"capacitor sweep on {SWEEP_SCENARIO}: completes from {bound} F")
    t = Table(title=f"NAS under {NAS_SCENARIO} (accuracy / intermittent latency per requirement)")
    t.add_column("requirement")
    methods = list(dict.fromkeys(nas_table["method"]))
    for m in methods:
        t.add_column(m)
    for req, grp in nas_table.groupby("requirement_s", sort=True):
        cells = []
        for m in methods:
            g = grp[grp["method"] == m]
            cells.append("-" if g.empty else f"{g['test_accuracy'].iloc[0]:.3f} / {g['latency_s'].iloc[0]:.3f} s"
                         + ("" if bool(g["meets"].iloc[0]) else " (misses)"))
        t.add_row(f"{req:.3f} s", *cells)
    con.print(t)
    con.print(f"report: {out / 'report.html'}  ({summary['wall_s']:.1f} s)")
    return summary
