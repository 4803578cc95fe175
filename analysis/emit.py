"""``aidi emit-c``: the scenario's network and execution design as a C project, optionally built and checked.

Checks, when ``build`` is set:

* host (gcc): ``make host``; the runner's output must equal the Q15 reference
  (the same input sample as ``aidi run --functional``);
* MSP430 (clang-14, ld.lld-14, mspdebug): ``make msp430-sim``, the ELF's size
  against the budgets, a continuous run on mspdebug's simulator whose
  ``aidi_output`` must equal the reference, and its MCLK cycles per layer next
  to the simulator's estimate for the same designs on the CPU (portable-C) path.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from .errors import UserError


def simulated_cpu_cycles(built) -> list[float]:
    """The simulator's cycle estimate per layer for the same tiles on the portable-C (CPU) path."""
    from aidi.models import tiling

    designs = [replace(lp.design, backend="cpu") for lp in built.plan.layers]
    plan = tiling.plan_network(built.qmodel, designs, built.platform, built.scenario.device.sram_budget_bytes,
                               backend="cpu", preservation=built.scenario.execution.preservation)
    return [float(lp.unit_cost[:, :, 0].sum()) for lp in plan.layers]


def emit(built, out: Path, backend: str = "portable", build: bool = False) -> dict:
    from aidi.models import emit as em
    from aidi.models.emit import build as mk
    from aidi.models.emit import elfsize, mspsim

    ir = em.ir_from_qmodel(built.qmodel, built.x_q, built.plan,
                           budgets=em.Budgets(fram_bytes=built.platform.fram_bytes,
                                              sram_bytes=built.scenario.device.sram_budget_bytes))
    proj = em.emit_project(ir, out, backend=backend)
    reference = np.asarray(built.qmodel_reference_output(), dtype=np.int16)
    res: dict = {"out": str(proj.root), "backend": backend, "layers": len(ir.layers),
                 "expected_output": [int(v) for v in proj.expected],
                 "matches_reference": bool(np.array_equal(proj.expected, reference))}
    if not build:
        return res
    try:
        mk.make(proj.root, "host")
    except mk.BuildError as exc:
        raise UserError(f"make host failed: {str(exc).splitlines()[0]}") from None
    host = mk.run_host(proj.root)
    res["host"] = {"output": None if host.output is None else [int(v) for v in host.output],
                   "matches_reference": host.output is not None and bool(np.array_equal(host.output, reference))}
    msg = mk.missing_message("msp430-sim")
    if msg:
        res["msp430"] = {"skipped": msg}
        return res
    mk.make(proj.root, "msp430-sim", variables={"SIM_HWMULT": "1"})
    size = elfsize.memory_report(str(proj.sim_elf), built.platform.fram_bytes,
                                 built.scenario.device.sram_budget_bytes)
    lc = mspsim.measure_layer_cycles(proj.sim_elf, len(ir.layers), ir.output_len, hwmult=True)
    est = simulated_cpu_cycles(built)
    per_layer = []
    for i, (meas, sim_c) in enumerate(zip(lc.layer_cycles, est)):
        per_layer.append({"layer": built.graph.layer_names[i], "mspdebug_cycles": int(meas),
                          "simulated_cycles": sim_c, "error": (sim_c - meas) / meas if meas else None})
    res["msp430"] = {
        "elf": str(proj.sim_elf),
        "fram_bytes": size["fram_bytes"], "sram_bytes": size["sram_bytes"],
        "stack_reserve_bytes": size["stack_reserve_bytes"], "fits": size["fits"],
        "output": [int(v) for v in lc.output],
        "matches_reference": bool(np.array_equal(lc.output, reference)),
        "total_cycles": lc.total_cycles, "boot_cycles": lc.boot_cycles, "stack_peak_bytes": lc.stack_peak_bytes,
        "cycles_per_layer": per_layer,
        "note": "mspdebug 0.22 counts classic MSP430 cycles (not CPUX), miscounts some constant-generator forms, "
                "and has no FRAM wait states, LEA, DMA or MPY32 (built with SIM_HWMULT=1: its classic MPY)",
    }
    return res


def print_summary(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    con = Console()
    con.print(f"C project written to [bold]{res['out']}[/bold] ({res['backend']} kernels, {res['layers']} layers); "
              f"embedded expected output == Q15 reference: {res['matches_reference']}")
    if "host" in res:
        con.print(f"host build: output == reference: {res['host']['matches_reference']}")
    m = res.get("msp430")
    if m and "skipped" in m:
        con.print(f"msp430-sim: skipped ({m['skipped']})")
    elif m:
        con.print(f"msp430-sim: FRAM {m['fram_bytes']} B, SRAM {m['sram_bytes']} B (+{m['stack_reserve_bytes']} B "
                  f"stack), output == reference: {m['matches_reference']}, {m['total_cycles']} cycles")
        t = Table(title="cycles per layer: mspdebug vs simulator (portable C)")
        for c in ("layer", "mspdebug", "simulated", "error"):
            t.add_column(c)
        for r in m["cycles_per_layer"]:
            t.add_row(r["layer"], str(r["mspdebug_cycles"]), f"{r['simulated_cycles']:.0f}",
                      "-" if r["error"] is None else f"{r['error']:+.1%}")
        con.print(t)
        con.print(m["note"])
    if "host" not in res:
        con.print(f"build it: make -C {res['out']} host check msp430-sim size")
