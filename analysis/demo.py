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
from .console import console as make_console
from .figures import FigureWriter, vline
from .progress import Progress

DEMO_SCENARIOS = ("solar-tmy3", "rf-intermittent")
SWEEP_SCENARIO = "rf-intermittent"
NAS_SCENARIO = "lab-1mF"


STEPS = 4 + len(DEMO_SCENARIOS) - 1  # each scenario, the sweep, the NAS, the firmware


def nas_compare_figure(rows: pd.DataFrame, requirements_s: list[float], scenario: str) -> go.Figure:
    """Held-out accuracy against intermittent latency of each method's pick (one row per method and
    requirement: ``method``, ``latency_s``, ``test_accuracy``, ``arch``), requirements as dotted lines."""
    fig = go.Figure()
    for method, grp in rows.groupby("method"):
        fig.add_trace(go.Scatter(x=grp["latency_s"], y=grp["test_accuracy"], mode="markers", name=method,
                                 marker=dict(size=11), text=grp["arch"]))
    for i, r in enumerate(requirements_s):
        vline(fig, r, f"requirement {r:.3g} s", dash="dot", label_y=1.0 - 0.07 * i)
    fig.update_layout(title="NAS: accuracy vs intermittent latency (dotted: the latency requirements)",
                      xaxis_title=f"intermittent latency under {scenario} (s)", yaxis_title="held-out accuracy (Q15)",
                      template="plotly_white")
    return fig


def run_demo(out: Path, quick: bool = False, console: Console | None = None, formats=("html",),
             progress: Progress | None = None) -> dict:
    """Run every step; returns a summary dict and writes ``out/report.html``.

    ``formats``: the figure files of every step (:data:`aidi.analysis.figures.FORMATS`); the folder
    holds one ``plotly.min.js`` that every HTML file loads.  ``progress``: where the steps and their
    inner work (sweep points, NAS evaluations) are reported (default: stderr, see
    :mod:`aidi.analysis.progress`); ``console``: where the closing tables go (default stdout).
    """
    con = console or make_console(wide=True)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with (progress or Progress("aidi demo")) as prog, FigureWriter(out, formats) as fw:
        return _run_demo(out, quick, con, prog, fw)


def _run_demo(out: Path, quick: bool, con: Console, prog: Progress, fw: FigureWriter) -> dict:
    sections: list[Section] = []
    summary: dict = {"steps": {}}
    t_all = time.perf_counter()
    steps = prog.task("steps", STEPS)

    started = [0]

    def step(name: str):
        if started[0]:
            steps.advance()
        started[0] += 1
        prog.log(f"step {started[0]}/{STEPS}: {name}")
        return time.perf_counter()

    # 1. the bundled model under two real harvesting scenarios
    rows = []
    for name in DEMO_SCENARIOS:
        t0 = step(f"simulating {name} (SimPy model, functional Q15)")
        sc = loader.load(name)
        built = pipeline.build(sc)
        res, events = pipeline.simulate(built, engine="des", functional=True, log=True)
        report.write_run(out / name, built, res, events, writer=fw)
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
    t0 = step("capacitor sweep (oracle, designs chosen per capacitor)")
    caps = ([1e-6, 4.7e-6, 22e-6, 100e-6] if quick
            else [1e-6, 2.2e-6, 4.7e-6, 10e-6, 22e-6, 47e-6, 100e-6, 220e-6, 470e-6, 1e-3])
    sc = loader.load(SWEEP_SCENARIO)
    with prog.task("sweep: points", len(caps)) as task:
        # the network's own boundary: designs chosen per capacitor; one process (workers would only add start-up)
        df = sw.run_sweep(sc.path, {"power.capacitor_F": caps}, reoptimize=True, progress=task.callback())
    df.to_csv(out / "sweep.csv", index=False)
    key = "power.capacitor_F"
    bound = sw.boundary_summary(df, key)
    bound_text = sw.describe_boundary(bound, key)
    fig = sw.figure(df, key, f"{SWEEP_SCENARIO}: latency vs capacitor")
    fw.figure(fig, out / "sweep")
    cols = [key, "completed", "latency_s", "power_cycles", "units_reexecuted", "error"]
    sections.append(Section("Latency vs capacitor", "".join(f"<p>{html.escape(t)}</p>" for t in bound_text)
                            + table_html(df[[c for c in cols if c in df]]), [fig]))
    summary["steps"]["sweep"] = {"seconds": time.perf_counter() - t0, "boundary_F": bound["completes"],
                                 "boundary": bound}

    # 3. a short NAS: ours (supernet + KD, evolution) against the iNAS-style and HW-NAS-style baselines
    t0 = step("NAS on digits under lab-1mF: ours vs iNAS-style vs HW-NAS-style (same wall-clock budget)")
    from .nas_run import run_compare

    tasks: dict = {}

    def tick(tag, done, total):
        if tag not in tasks:
            tasks[tag] = prog.task(f"NAS {tag}: {'batches' if tag == 'supernet training' else 'evaluations'}", total)
        tasks[tag].update(done, total)
        if done >= total:
            tasks.pop(tag).close()

    # one requirement (half-way, geometrically, between the space's fastest and slowest member): each
    # baseline searches for ours' whole time, supernet included, so three would triple the step
    cmp = run_compare(loader.load(NAS_SCENARIO).path, budget=8 if quick else 16, seed=0, quick=quick,
                      out=out / "nas", progress=tick, log=prog.log, fractions=(0.5,), write_figure=False,
                      train_progress=lambda d, t: tick("supernet training", d, t))
    nas_rows = pd.DataFrame(cmp["rows"])
    fig = nas_compare_figure(nas_rows, cmp["requirements_s"], NAS_SCENARIO)
    cols = ["requirement_s", "method", "arch", "test_accuracy", "latency_s", "meets", "search_s", "des_matches_oracle"]
    nas_table = nas_rows[[c for c in cols if c in nas_rows]]
    sections.append(Section("NAS: ours vs the baselines",
                            f"<p>Ours: {cmp['budget']} evaluations; each baseline searches for as long as ours took, "
                            "supernet training included (seed 0); every reported model re-simulated with the "
                            "SimPy model. <code>aidi nas SCENARIO --compare</code> runs three requirements.</p>" + table_html(nas_table), [fig]))
    fw.figure(fig, out / "nas" / "accuracy_vs_latency")
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

    steps.advance()
    steps.close()
    summary["wall_s"] = time.perf_counter() - t_all
    fw.page(out / "report.html", lambda src: render(sections, "aidi demo report", src))
    (out / "summary.json").write_text(jsonout.dumps(summary, indent=1))
    fw.flush()  # static figures before the closing tables
    t = Table(title="aidi demo")
    for c in rows[0]:
        t.add_column(c)
    for r in rows:
        t.add_row(*[f"{v:.4g}" if isinstance(v, float) else str(v) for v in r.values()])
    con.print(t)
    for line in bound_text:
        con.print(f"capacitor sweep on {SWEEP_SCENARIO}: {line}")
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
