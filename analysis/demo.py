"""``aidi demo``: the embedded defaults end to end, one self-contained report.html.

Steps: the bundled digits CNN under two real harvesting scenarios (:data:`DEMO_SCENARIOS`, their own
dispatch); intermittent execution itself, :data:`DISPATCH_SCENARIO` under ``greedy`` and ``energy_aware``
side by side (brown-outs, re-executed units, wasted energy, latency, the output bit-exact under each); a
capacitor sweep; a short NAS against two baselines; the emitted C runtime, built and checked.
"""

from __future__ import annotations

import html
import time
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.table import Table

from aidi.scenarios import loader

from . import check as chk
from . import jsonout
from . import pipeline, report
from .report import Section, render, table_html
from . import sweep as sw
from .console import console as make_console
from .figures import FigureWriter
from .nas_run import nas_compare_figure, run_compare
from .progress import Progress

DEMO_SCENARIOS = ("solar-tmy3", "rf-intermittent")
#: a shipped scenario whose supply browns the device out under ``greedy`` dispatch (iNAS's bench supply
#: through 150 ohm): the run that shows intermittent execution, under each policy of :data:`DISPATCHES`
DISPATCH_SCENARIO = "lab-1mF-brownout"
DISPATCHES = ("greedy", "energy_aware")
SWEEP_SCENARIO = "rf-intermittent"
NAS_SCENARIO = "lab-1mF"
#: ours' evaluations in the NAS step (normal, --quick).  64 on the digits space (2304 members): at 16 the
#: search was 2 % of ours' time (the supernet the rest) and its front had no member as fast as the
#: iNAS-style pick, which dominated ours (README, "NAS: ours vs the baselines"); 64 cost about 15 s more
NAS_BUDGET = {False: 64, True: 16}


STEPS = len(DEMO_SCENARIOS) + 4  # each scenario, greedy vs energy_aware, the sweep, the NAS, the firmware


def _interrupted_text(res: dict) -> str:
    """What the output check of a run proves: a run that no power failure interrupted checks the Q15
    arithmetic only (intermittent execution is shown by the greedy vs energy_aware section)."""
    if res["units_lost"] or res["power_cycles"] > 1:
        return (f"The run crossed {res['power_cycles'] - 1} brown-out(s) and lost {res['units_lost']} unit(s) "
                "to them, so this checks intermittent execution.")
    return ("No power failure interrupted this run, so this checks the Q15 arithmetic only; the greedy vs "
            "energy_aware section shows an output computed across brown-outs.")


def dispatch_row(res: dict, ev: pd.DataFrame) -> dict:
    """One dispatch policy's run (``res``: :func:`aidi.analysis.pipeline.simulate`'s result, ``ev``: its event
    log): latency, power cycles, brown-outs (activities a brown-out cut: a unit lost, a boot, a wait...),
    units re-executed, the energy of the work lost at brown-outs (``reexecution``, J), of reboots (``restore``)
    and of energy_aware's measurements and waits (``wait``), and whether the output is bit-exact."""
    cat = res["energy_J"]["by_category"]
    return {"dispatch": res["dispatch"], "completed": res["completed"], "latency_s": res["latency_s"],
            "power_cycles": res["power_cycles"], "brown_outs": int(ev["outcome"].isin(("brownout", "lost")).sum()),
            "units_reexecuted": res["units_reexecuted"], "wasted_J": cat["reexecution"] + cat["unfinished"],
            "restore_J": cat["restore"], "wait_J": cat["wait"], "consumed_J": res["energy_J"]["consumed"],
            "output_matches_reference": res["output_matches_reference"]}


def dispatch_html(disp: pd.DataFrame, description: str) -> str:
    """The greedy vs energy_aware section's text: the scenario and what each column means, then the
    outcome in numbers (one row per policy of ``disp``, :func:`dispatch_row`)."""
    runs = "; ".join(f"<b>{r.dispatch}</b>: {r.latency_s:.3f} s, {r.brown_outs} brown-out(s), "
                     f"{r.units_reexecuted} unit(s) re-executed, {r.wasted_J * 1e6:.2f} uJ of lost work, "
                     f"output bit-exact: <b>{r.output_matches_reference}</b>" for r in disp.itertuples())
    return (f"<p>{html.escape(description)}</p><p>The same network and supply under each dispatch policy. "
            "<code>greedy</code> starts a unit whenever the MCU is on: a brown-out cuts the unit in progress, "
            "SRAM is lost, and the unit runs again after the capacitor recharges and the MCU reboots. "
            "<code>energy_aware</code> measures the capacitor first and sleeps until it holds the unit's "
            "energy. Wasted: the energy of work lost at brown-outs; restore: reboots; wait: "
            f"energy_aware's measurements and sleeps.</p><p>{runs}.</p>")


def dispatch_table(disp: pd.DataFrame) -> Table:
    """The console's greedy vs energy_aware table (one row per policy of ``disp``, :func:`dispatch_row`)."""
    t = Table(title=f"intermittent execution on {DISPATCH_SCENARIO}: greedy vs energy_aware dispatch")
    cols = {"dispatch": str, "latency_s": "{:.3f} s".format, "power_cycles": str, "brown_outs": str,
            "units_reexecuted": str, "wasted_J": lambda v: f"{v * 1e6:.2f} uJ",
            "restore_J": lambda v: f"{v * 1e6:.2f} uJ", "wait_J": lambda v: f"{v * 1e6:.2f} uJ",
            "output_matches_reference": str}
    heads = {"latency_s": "latency", "power_cycles": "power cycles", "brown_outs": "brown-outs",
             "units_reexecuted": "re-executed", "wasted_J": "wasted (lost work)", "restore_J": "reboots",
             "wait_J": "waits",
             "output_matches_reference": "output == reference"}
    for c in cols:
        t.add_column(heads.get(c, c))
    for r in disp.to_dict(orient="records"):
        t.add_row(*(f(r[c]) for c, f in cols.items()))
    return t


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
        rows.append({"scenario": name, "dispatch": res["dispatch"], "completed": res["completed"], "latency_s": res["latency_s"],
                     "power_cycles": res["power_cycles"], "units": res["units"],
                     "re-executed": res["units_reexecuted"], "output == reference": res["output_matches_reference"],
                     "Q15 accuracy": built.q15_accuracy,
                     "float accuracy": built.trained.float_accuracy})
        sched = pd.DataFrame([{k: v for k, v in L.items() if k != "reasons"} | {"reasons": "; ".join(L["reasons"])}
                              for L in chk_res["layers"]])
        body = (f"<p>{html.escape(sc.description)}</p><p>Completed: {res['completed']}, latency "
                f"{res['latency_s']:.3f} s, {res['power_cycles']} power cycles, {res['units_reexecuted']} units "
                f"re-executed ({res['dispatch']} dispatch); the output equals the Q15 reference: "
                f"<b>{res['output_matches_reference']}</b>. {_interrupted_text(res)}</p>"
                f"<h3>Schedulability</h3>{table_html(sched)}")
        sections.append(Section(f"{name}: voltage and energy", body,
                                [report.voltage_figure(ev, built.graph.layer_names, f"{name}: capacitor voltage", sc.power,
                                                      built.segments),
                                 report.energy_figure(res, built.graph.layer_names)]))
        summary["steps"][name] = {"seconds": time.perf_counter() - t0, "result": {
            k: res[k] for k in ("completed", "latency_s", "power_cycles", "units_reexecuted",
                                "output_matches_reference")}}

    # 2. intermittent execution: one scenario that browns out, under each dispatch policy
    t0 = step(f"intermittent execution: {DISPATCH_SCENARIO} under {' and '.join(DISPATCHES)} (SimPy model, "
              "functional Q15)")
    disp_rows, figs = [], []
    for policy in DISPATCHES:
        sc = loader.load(DISPATCH_SCENARIO).with_values(**{"execution.dispatch": policy})
        built = pipeline.build(sc)
        res, events = pipeline.simulate(built, engine="des", functional=True, log=True)
        report.write_run(out / f"{DISPATCH_SCENARIO}-{policy}", built, res, events, writer=fw)
        ev = report.events_frame(events)
        disp_rows.append(dispatch_row(res, ev))
        figs.append(report.voltage_figure(ev, built.graph.layer_names, f"{DISPATCH_SCENARIO}, {policy} dispatch: "
                                          "capacitor voltage", sc.power, built.segments))
    disp = pd.DataFrame(disp_rows)
    sections.append(Section(f"Intermittent execution: greedy vs energy_aware on {DISPATCH_SCENARIO}",
                            dispatch_html(disp, loader.load(DISPATCH_SCENARIO).description) + table_html(disp), figs))
    summary["steps"]["dispatch"] = {"scenario": DISPATCH_SCENARIO, "seconds": time.perf_counter() - t0,
                                    "rows": disp.to_dict(orient="records")}

    # 3. capacitor sweep with the feasibility boundary
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

    # 4. a short NAS: ours (supernet, evolution) against the iNAS-style and HW-NAS-style baselines
    t0 = step("NAS on digits under lab-1mF: ours vs iNAS-style vs HW-NAS-style (same wall-clock budget)")

    tasks: dict = {}

    def tick(tag, done, total):
        if tag not in tasks:
            tasks[tag] = prog.task(f"NAS {tag}: {'batches' if tag == 'supernet training' else 'evaluations'}", total)
        tasks[tag].update(done, total)
        if done >= total:
            tasks.pop(tag).close()

    # one requirement (half-way, geometrically, between the space's fastest and slowest member): each
    # baseline searches for ours' whole time, supernet included, so three would triple the step
    cmp = run_compare(loader.load(NAS_SCENARIO).path, budget=NAS_BUDGET[bool(quick)], seed=0, quick=quick,
                      out=out / "nas", progress=tick, log=prog.log, fractions=(0.5,), write_figure=False,
                      train_progress=lambda d, t: tick("supernet training", d, t))
    nas_rows = pd.DataFrame(cmp["rows"])
    fig = nas_compare_figure(nas_rows, cmp["requirements_s"], NAS_SCENARIO)
    cols = ["requirement_s", "method", "arch", "test_accuracy", "latency_s", "meets", "search_s", "des_matches_oracle"]
    nas_table = nas_rows[[c for c in cols if c in nas_rows]]
    sections.append(Section("NAS: ours vs the baselines",
                            f"<p>Ours: {cmp['budget']} evaluations read off the supernet, its front's finalists "
                            "trained from scratch and the fastest within one standard error of the best validation "
                            "accuracy taken, then the pick's faster one-decision neighbours trained and the rule "
                            "applied again (up to two rounds); each baseline searches for as long as ours took, supernet training "
                            "included (seed 0); every reported model re-simulated with the SimPy model. "
                            "<code>aidi nas SCENARIO --compare</code> runs three requirements.</p>" + table_html(nas_table), [fig]))
    fw.figure(fig, out / "nas" / "accuracy_vs_latency")
    summary["steps"]["nas"] = {"seconds": time.perf_counter() - t0, "rows": nas_table.to_dict(orient="records")}

    # 5. the C runtime for the RF scenario, built and checked on the host and on mspdebug
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
    con.print(dispatch_table(disp))
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
