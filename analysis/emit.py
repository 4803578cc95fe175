"""``aidi emit-c``: the scenario's network and execution design as a C project, optionally built and checked.

Checks, when ``build`` is set:

* the memory map (no compiler needed, the arrays' sizes are known): the
  plan's SRAM figure against the budget and the simulator build's 8 KB, the
  data against its FRAM (:func:`aidi.models.emit.fit.check_sim_fit`; without
  ``build`` a misfit is reported, not refused);
* host (gcc): ``make host``; the runner's output must equal the Q15 reference
  (the same input sample as ``aidi run --functional``);
* MSP430 (clang-14, ld.lld-14, mspdebug): ``make msp430-sim``, the ELF's size
  against the budgets (its SRAM must be the plan's figure), a continuous run on mspdebug's simulator whose
  ``aidi_output`` must equal the reference, and its MCLK cycles per layer next
  to the simulator's estimate for the same designs on the CPU (portable-C) path.

:func:`cycle_table` returns that per-layer table (measured, simulated, error)
for a scenario, :func:`program_cycle_table` for any program (Q15 model + plan).  The portable-C
cost constants (``Platform.cpu_sw``) are refitted with :func:`calibration_set`
(the default digits network and :func:`calibration_network` samples, measured
on mspdebug) and :func:`aidi.models.cost_calibration.fit_software_costs`; tests/test_calibration_mspdebug.py
checks them on networks outside the fit.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Sequence

import numpy as np

from .errors import UserError

#: what every mspdebug-vs-simulator comparison must say about mspdebug 0.22
MSPDEBUG_CAVEATS = ("mspdebug 0.22 counts classic MSP430 cycles (not CPUX), miscounts some constant-generator forms, "
                    "and has no FRAM wait states, LEA, DMA or MPY32 (built with SIM_HWMULT=1: its classic MPY)")


def simulated_cpu_cycles(built) -> list[float]:
    """The simulator's cycle estimate per layer for the same tiles on the portable-C (CPU) path."""
    from aidi.models import schedule

    designs = [replace(lp.design, backend="cpu") for lp in built.plan.layers]
    plan = schedule.plan_network(built.qmodel, designs, built.platform, built.scenario.device.sram_budget_bytes,
                                 backend="cpu")
    return [float(lp.unit_cost[:, :, 0].sum()) for lp in plan.layers]


def error_table(names: Sequence[str], measured: Sequence[float], simulated: Sequence[float]) -> list[dict]:
    """Rows ``{layer, mspdebug_cycles, simulated_cycles, error}``; error = (simulated - measured) / measured."""
    return [{"layer": n, "mspdebug_cycles": int(m), "simulated_cycles": float(s),
             "error": (float(s) - m) / m if m else None} for n, m, s in zip(names, measured, simulated)]


def cycle_table(built, out: Path | str) -> list[dict]:
    """Per-layer MCLK cycles of the scenario's emitted portable C on mspdebug (SIM_HWMULT=1) next to the
    simulator's estimate (:func:`simulated_cpu_cycles`): ``{layer, mspdebug_cycles, simulated_cycles, error}``.

    Emits and builds into ``out``; needs make, clang-14, ld.lld-14 and mspdebug.
    See :data:`MSPDEBUG_CAVEATS`.
    """
    res = emit(built, Path(out), build=True)
    m = res.get("msp430", {})
    if "cycles_per_layer" not in m:
        raise UserError(f"msp430-sim: {m.get('skipped', 'not built')}")
    return m["cycles_per_layer"]


# --------------------------------------------------------------------------- calibration of the CPU path
def program_cpu_cycles(prog, platform="msp430fr5994") -> list[float]:
    """The simulator's cycles per layer of a program's designs on the portable-C path (``backend="cpu"``)."""
    from aidi.models import schedule

    designs = [replace(d, backend="cpu") for d in prog.plan.designs]
    plan = schedule.plan_network(prog.plan.geoms, designs, platform, backend="cpu")
    return [lp.cycles for lp in plan.layers]


def measure_program_cycles(prog, workdir: Path | str) -> list[int]:
    """mspdebug MCLK cycles per layer of ``prog``'s emitted portable C (SIM_HWMULT=1, one continuous run);
    the firmware's output must equal the Q15 reference."""
    from aidi.models.emit import mspsim

    return [int(r["cycles"]) for r in mspsim.calibrate(prog, workdir, sim_hwmult=True)]


def program_cycle_table(prog, workdir: Path | str, platform="msp430fr5994") -> list[dict]:
    """:func:`error_table` of a program: mspdebug (SIM_HWMULT=1) vs :func:`program_cpu_cycles`."""
    return error_table(prog.layer_names, measure_program_cycles(prog, workdir), program_cpu_cycles(prog, platform))


def _calibration_spec(rng: np.random.Generator, shape, last: bool) -> dict:
    c, h, w = shape
    kinds = ["conv", "conv", "dwconv", "pwconv", "maxpool", "avgpool"] + (["fc", "fc", "gap"] if last else [])
    for _ in range(1000):
        t = str(rng.choice(kinds))
        if t in ("conv", "dwconv"):
            k = int(rng.choice([1, 2, 3, 3, 5] if t == "conv" else [2, 3, 3, 5]))
            s, p = int(rng.choice([1, 1, 2])), int(rng.integers(0, k // 2 + 1))
            if h + 2 * p < k or w + 2 * p < k:
                continue
            spec = {"type": t, "k": k, "stride": s, "padding": p, "relu": bool(rng.integers(2))}
            if t == "conv":
                spec["filters"] = int(rng.integers(2, 13))
            return spec
        if t == "pwconv":
            return {"type": t, "filters": int(rng.integers(2, 17)), "relu": bool(rng.integers(2))}
        if t in ("maxpool", "avgpool"):
            k = int(rng.choice([2, 2, 3]))
            if h < k or w < k:
                continue
            return {"type": t, "k": k, "stride": int(rng.choice([1, 2, k]))}
        if t == "fc":
            return {"type": t, "units": int(rng.integers(2, 13)), "relu": bool(rng.integers(2))}
        return {"type": "gap"}
    raise RuntimeError(f"no layer fits the shape {shape}")


def _calibration_design(rng: np.random.Generator, geom):
    from aidi.models.schedule import ExecutionDesign
    from aidi.models.schedule.design import n_tiles

    m, ho, wo = geom.out_shape
    n = geom.in_shape[0]

    def pick(hi: int) -> int:
        return int(rng.integers(1, hi + 1)) if rng.random() < 0.7 else int(rng.choice([1, hi]))

    tr, tc, tm = pick(ho), pick(wo), pick(m)
    tn = tm if geom.channel_tied else pick(n)
    nt = n_tiles(geom, tr, tc, tm, tn)
    s = int(rng.choice([1, 1, 2, 3, 4, 8, nt]))
    return ExecutionDesign(tr, tc, tm, tn, str(rng.choice(["reuse_I", "reuse_W", "reuse_O"])), max(1, min(s, nt)))


def calibration_network(seed: int, *, max_macs: int = 60000, max_tiles: int = 600):
    """A random small program (2-4 layers of conv/dwconv/pwconv/maxpool/avgpool, ending in any of those,
    fc or gap) with random Q15 parameters and random execution designs (tile sizes, loop order, S) on the
    portable-C path: one sample of the calibration set of the portable-C cost model.  Deterministic in
    ``seed``; at most ``max_macs`` MACs and ``max_tiles`` tiles so that mspdebug runs it in well under a
    second."""
    from aidi.models.emit.examples import random_program
    from aidi.models.layers import geometry, parse_network

    rng = np.random.default_rng(seed)
    for _ in range(200):
        shape = (int(rng.integers(1, 5)), int(rng.integers(5, 13)), int(rng.integers(5, 13)))
        n_layers = int(rng.integers(2, 5))
        try:
            specs = []
            for i in range(n_layers):
                cur = geometry(parse_network(specs, list(shape)))[-1].out_shape if specs else shape
                specs.append(_calibration_spec(rng, cur, i == n_layers - 1))
            geoms = geometry(parse_network(specs, list(shape)))
            designs = [_calibration_design(rng, g) for g in geoms]
            prog = random_program(specs, shape, np.random.default_rng(seed + 1000003), designs, name=f"cal{seed}")
        except (ValueError, RuntimeError):
            continue
        rts = [lp.runtime for lp in prog.layers]
        if sum(r.macs for r in rts) > max_macs or sum(lp.n_tiles for lp in prog.layers) > max_tiles:
            continue
        if max(2 * r.in_buf + 2 * r.w_buf + 4 * r.acc_buf for r in rts) > 3000:  # the set's draw (unchanged)
            continue
        return prog
    raise RuntimeError(f"calibration_network({seed}): no network within the limits")


def calibration_set(seeds: Sequence[int], workdir: Path | str, *, default: bool = True,
                    platform="msp430fr5994") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Measure the calibration set on mspdebug: the default digits network (random Q15 parameters, the
    designs of :func:`aidi.models.emit.examples.default_program`) and :func:`calibration_network` of each
    seed.  Returns ``(features, measured cycles, labels)``, one row per layer, ready for
    :func:`aidi.models.cost_calibration.fit_software_costs`.  About half a second of build and simulation
    per network."""
    from aidi.models.cost_calibration import software_cost_features
    from aidi.models.emit.examples import default_program

    nets = ([("default", default_program(0))] if default else []) + [(f"cal{s}", calibration_network(s)) for s in seeds]
    feats, meas, labels = [], [], []
    for tag, prog in nets:
        feats.append(software_cost_features(prog.plan, platform))
        meas.extend(measure_program_cycles(prog, Path(workdir) / tag))
        labels.extend(f"{tag}/{name}" for name in prog.layer_names)
    return np.vstack(feats), np.asarray(meas, dtype=np.float64), labels


def emit(built, out: Path, backend: str | None = None, build: bool = False, microbench: bool = False) -> dict:
    """Emit the scenario's program (its Q15 model, plan and input sample); ``backend`` None: the plan's
    (``lea`` when the plan runs a layer on the LEA, else ``portable``).  With ``build``: the host build
    must reproduce the Q15 reference, and on mspdebug (when installed) the portable-C build's output and
    cycles per layer are compared with the simulator's portable-C estimate (mspdebug has no LEA).
    ``microbench``: the project also carries the primitives' timing firmware (``make microbench-sim``)."""
    from aidi.models import emit as em
    from aidi.models.emit import build as mk
    from aidi.models.emit import elfsize, fit, mspsim
    from aidi.models.emit.dispatch import Dispatch

    prog = em.Program(built.qmodel, built.plan, built.x_q,
                      budgets=em.Budgets(fram_bytes=built.platform.fram_bytes,
                                         sram_bytes=built.scenario.device.sram_budget_bytes),
                      dispatch=Dispatch.of_scenario(built.scenario))
    try:
        proj = em.emit_project(prog, out, backend=backend, microbench=microbench)
    except ValueError as exc:  # a unit that energy_aware can never start, a network beyond the runtime's limits
        raise UserError(f"{built.scenario.path.name}: {str(exc).splitlines()[0]}") from None
    backend = proj.manifest["backend"]
    reference = np.asarray(built.qmodel_reference_output(), dtype=np.int16)
    mem = proj.manifest["memory_estimate"]
    res: dict = {"out": str(proj.root), "backend": backend, "layers": len(prog.layers),
                 "expected_output": [int(v) for v in proj.expected],
                 "matches_reference": bool(np.array_equal(proj.expected, reference)),
                 "sram": proj.manifest["sram"]}
    # the memory map needs no compiler: every array's size is known before compiling
    try:
        fit.check_sim_fit(prog, mem)
        res["memory_map"] = {"fits": True, "reason": None}
    except fit.FitError as exc:
        if build:
            raise UserError(f"{built.scenario.path.name}: {exc}") from None
        res["memory_map"] = {"fits": False, "reason": str(exc)}
    if not build:
        return res
    try:
        mk.make(proj.root, "host")
    except mk.BuildError as exc:
        raise UserError(f"make host failed: {str(exc).splitlines()[0]}") from None
    host = mk.run_host(proj.root)
    res["host"] = {"output": None if host.output is None else [int(v) for v in host.output],
                   "matches_reference": host.output is not None and bool(np.array_equal(host.output, reference))}
    res["dispatch"] = proj.manifest["dispatch"]["policy"]
    h = built.scenario.harvester
    if h.kind == "constant" and proj.manifest["dispatch"]["host_power_model"]:
        # the host harness's simulated capacitor under the scenario's source, with the project's dispatch
        cap = mk.run_host(proj.root, "--capacitor", repr(h.power_W * h.efficiency), "--check")
        stats = mk.capacitor_stats(cap.stderr)
        res["host"]["capacitor"] = None if stats is None else {
            **stats, "source_W": h.power_W * h.efficiency, "matches_reference": cap.returncode == 0}
    msg = mk.missing_message("msp430-sim")
    if msg:
        res["msp430"] = {"skipped": msg}
        return res
    try:
        try:
            mk.make(proj.root, "msp430-sim", variables={"SIM_HWMULT": "1", "BACKEND": "portable"})
        except mk.BuildError as exc:
            fit.link_overflow(str(exc), prog, mem)
            raise UserError(f"make msp430-sim failed: {str(exc).splitlines()[-1]}") from None
    except fit.FitError as exc:
        raise UserError(f"{built.scenario.path.name}: {exc}") from None
    size = elfsize.memory_report(str(proj.sim_elf), built.platform.fram_bytes,
                                 built.scenario.device.sram_budget_bytes)
    lc = mspsim.measure_layer_cycles(proj.sim_elf, len(prog.layers), prog.output_len, hwmult=True)
    per_layer = error_table(built.graph.layer_names, lc.layer_cycles, simulated_cpu_cycles(built))
    res["msp430"] = {
        "elf": str(proj.sim_elf),
        "fram_bytes": size["fram_bytes"], "sram_bytes": size["sram_bytes"],
        "stack_reserve_bytes": size["stack_reserve_bytes"], "fits": size["fits"],
        "sram_matches_plan": size["sram_bytes"] == mem["sram_bytes"],
        "output": [int(v) for v in lc.output],
        "matches_reference": bool(np.array_equal(lc.output, reference)),
        "total_cycles": lc.total_cycles, "boot_cycles": lc.boot_cycles, "stack_peak_bytes": lc.stack_peak_bytes,
        "cycles_per_layer": per_layer,
        "note": MSPDEBUG_CAVEATS,
    }
    return res


def print_summary(res: dict) -> None:
    from rich.table import Table

    from .console import console, styled

    con = console()
    con.print(styled("C project written to ", (res["out"], "bold"), f" ({res['backend']} kernels, {res['layers']} "
                     f"layers); embedded expected output == Q15 reference: {res['matches_reference']}"))
    if "host" in res:
        con.print(f"host build: output == reference: {res['host']['matches_reference']}")
        c = res["host"].get("capacitor")
        if c:
            con.print(f"host, simulated capacitor ({res['dispatch']} dispatch, {c['source_W']:g} W source): "
                      f"{c['boots']} boots, {c['units_lost']} units lost, {c['threshold_waits']} threshold waits, "
                      f"{c['time_s']:.6g} s from the first boot, output == reference: {c['matches_reference']}")
    sram = res["sram"]
    con.print(f"SRAM {sram['total_bytes']} B (the plan's figure): arena {sram['arena_bytes']} B"
              f"{' (LEA RAM)' if sram['arena_in_lea_ram'] else ''}, runtime state {sram['state_bytes']} B, stack "
              f"{sram['stack_bytes']} B", markup=False)
    if not res["memory_map"]["fits"]:
        con.print(f"msp430-sim memory map: {res['memory_map']['reason']}", markup=False)
    m = res.get("msp430")
    if m and "skipped" in m:
        con.print(f"msp430-sim: skipped ({m['skipped']})")
    elif m:
        con.print(f"msp430-sim: FRAM {m['fram_bytes']} B, SRAM {m['sram_bytes']} B ({m['stack_reserve_bytes']} B of "
                  f"it the stack reserve; == the plan's: {m['sram_matches_plan']}), output == reference: "
                  f"{m['matches_reference']}, {m['total_cycles']} cycles")
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
