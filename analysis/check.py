"""Schedulability analysis (``aidi check``): does every unit fit one power cycle, SRAM, the deadline?

Per power cycle the capacitor gives E_store = C (V_on^2 - V_off^2) / 2; the MCU
gets eta * E_store after the converter.  A unit is *atomic*: after a boot it must
finish before V falls to V_off, so it needs (E_boot + E_unit) / eta from the store
(worst case: no harvesting during the cycle).  With the scenario's harvester the
best case adds the largest source power over the boot + unit time.  Verdicts:

* ``fits``         worst case fits: it completes in one cycle whatever the source does
* ``needs_harvest`` fits only if the source delivers during the cycle
* ``never``        does not fit even in the best case: the run cannot progress

Latency is reported twice.  *Simulated*: the oracle runs one inference under the scenario's
harvester and dispatch policy.  *Guaranteed*: :func:`aidi.sim.bound.latency_bound`, an upper
bound for every source that never gives less than the scenario's guaranteed minimum power
(the source model for constant and Thevenin sources; the minimum over the run's window, or
``[harvester] p_min_W``, for time-varying ones); None with a reason when the source can give
0 W or the minimum cannot carry the device.  The deadline verdict is given for both.

``schedulable`` (the exit status of ``aidi check``: 0 when true, 1 when false) is the simulated
verdict: every unit can complete, SRAM fits, the inference completes under the harvester and
meets the deadline.  ``guaranteed`` adds that the bound exists and meets the deadline.

SRAM (``sram_max_bytes``, ``sram``) is the plan's one figure
(:attr:`aidi.models.schedule.NetPlan.sram`): the emitted runtime's arena, laid out per layer
(the largest layer's rows), plus its fixed state and the stack reserve -- exactly what
``aidi emit-c`` allocates (``AIDI_SRAM_BYTES``) and ``make size`` reads from the ELF.  Per layer
and per unit: that layer's rows plus the same state and stack.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from aidi.sim import bound as bnd
from aidi.sim import frontend
from aidi.sim import oracle
from aidi.sim.harvesters import constant
from aidi.sim.workload import NonProgressError


def unit_table(built) -> pd.DataFrame:
    """One row per unit: time, energy, need from the store, verdict and margin."""
    w = built.work
    p = built.scenario.power
    eta = p.converter_efficiency
    e_store = p.e_store_J
    p_src = built.segments.max_power(p.v_off, p.v_on)
    drawn = frontend.loads(w, p)  # as the engines draw the units (a power front end's buck)
    need = (drawn.boot_J + drawn.energy_J.sum(axis=1)) / eta
    best = e_store + p_src * (w.boot_s + w.durations_s)
    verdict = np.where(need <= e_store, "fits", np.where(need <= best, "needs_harvest", "never"))
    sram = np.array([u.sram_bytes for u in built.graph.units])
    return pd.DataFrame({
        "unit": w.names,
        "layer": w.layers,
        "time_s": w.durations_s,
        "energy_J": w.energy_J.sum(axis=1),
        "need_from_store_J": need,
        "e_store_J": e_store,
        "margin": 1.0 - need / e_store,
        "sram_bytes": sram,
        "verdict": verdict,
    })


def guarantee(built) -> bnd.Bound:
    """The worst-case latency bound of one inference of ``built`` (:func:`aidi.sim.bound.latency_bound`) under the
    scenario's guaranteed minimum source power and dispatch policy."""
    sc = built.scenario
    h = sc.harvester
    p_min = getattr(h, "p_min_W", None)
    source = bnd.min_source(built.segments, sc.power, sc.sim.until_s,
                            None if p_min is None else p_min * h.efficiency)
    return bnd.latency_bound(built.work, sc.power, source, sc.sim)


def analyse(built) -> dict:
    """The full verdict: per layer and unit, SRAM, latency under continuous power and the harvester, the
    worst-case latency bound, the deadline (guaranteed and simulated); see the module docstring."""
    sc = built.scenario
    p = sc.power
    units = unit_table(built)
    budget = sc.device.sram_budget_bytes
    layers = []
    for layer, grp in units.groupby("layer"):
        worst = grp.loc[grp["margin"].idxmin()]
        reasons = []
        if (grp["verdict"] == "never").any():
            reasons.append(f"{int((grp['verdict'] == 'never').sum())} unit(s) exceed one power cycle even with "
                           f"harvesting (worst {worst['unit']}: needs {worst['need_from_store_J'] * 1e6:.2f} uJ, "
                           f"a cycle stores {worst['e_store_J'] * 1e6:.2f} uJ)")
        elif (grp["verdict"] == "needs_harvest").any():
            reasons.append(f"{int((grp['verdict'] == 'needs_harvest').sum())} unit(s) fit only while harvesting "
                           f"(worst margin {worst['margin']:.1%})")
        if grp["sram_bytes"].max() > budget:
            reasons.append(f"SRAM {int(grp['sram_bytes'].max())} B > budget {budget} B")
        li = int(layer)
        layers.append({
            "layer": li,
            "name": built.graph.layer_names[li] if li < len(built.graph.layer_names) else str(li),
            "units": int(len(grp)),
            "design": built.design_summary(li),
            "energy_J": float(grp["energy_J"].sum()),
            "time_s": float(grp["time_s"].sum()),
            "max_unit_need_J": float(grp["need_from_store_J"].max()),
            "min_margin": float(grp["margin"].min()),
            "sram_bytes": int(grp["sram_bytes"].max()),
            "verdict": next((v for v in ("never", "needs_harvest") if (grp["verdict"] == v).any()), "fits"),
            "reasons": reasons,
        })
    # latency: continuous power (no brown-outs) and the scenario's harvester (oracle)
    continuous_s = float(built.work.boot_s + built.work.durations_s.sum())
    sim_one = replace(sc.sim, inferences=1, period_s=0.0)  # the scenario's dispatch policy and margin
    harvested: dict
    try:
        r = oracle.simulate(built.work, p, built.segments, sim_one)
        harvested = {"completed": r["completed"], "latency_s": r["latency_s"], "power_cycles": r["power_cycles"],
                     "reason": r["reason"]}
    except NonProgressError as exc:
        harvested = {"completed": False, "latency_s": None, "power_cycles": None, "reason": str(exc)}
    # continuous supply: a constant source larger than the MCU ever draws
    strong = constant(10.0 * float(built.work.power_W.max()) / p.converter_efficiency + 1e-3)
    rc = oracle.simulate(built.work, replace(p, v_initial=max(p.v_initial, p.v_on)), strong, sim_one)
    deadline = sc.sim.deadline_s
    static = []  # what fails whatever the source does
    max_sram = int(built.plan.sram_bytes)  # = the largest unit's (every unit carries its layer's figure)
    if max_sram > budget:
        static.append(f"SRAM {max_sram} B > budget {budget} B")
    never = units[units["verdict"] == "never"]
    if len(never):
        static.append(f"{len(never)} unit(s) can never complete in one power cycle (first: {never['unit'].iloc[0]})")
    sim_s = harvested["latency_s"]
    reasons = _late(sim_s, f"does not complete under the harvester: {harvested['reason']}", "latency",
                    deadline) + static
    bound = guarantee(built)
    b_s = bound.latency_s
    not_guaranteed = _late(b_s, f"no latency guarantee: {bound.reason}", "latency bound", deadline) + static
    return {
        "scenario": sc.name,
        "e_cycle_J": p.e_cycle_J,
        "e_store_J": p.e_store_J,
        "boot_J": built.work.boot_J,
        "sram_budget_bytes": budget,
        "sram_max_bytes": max_sram,
        "sram": {"arena_bytes": built.plan.sram.arena_bytes, "state_bytes": built.plan.sram.state_bytes,
                 "stack_bytes": built.plan.sram.stack_bytes, "arena_in_lea_ram": built.plan.sram.lea},
        "units": int(len(units)),
        "units_fit": int((units["verdict"] == "fits").sum()),
        "units_need_harvest": int((units["verdict"] == "needs_harvest").sum()),
        "units_never": int(len(never)),
        "continuous": {"latency_s": rc["latency_s"], "compute_time_s": continuous_s},
        "harvester": harvested,
        "deadline_s": deadline,
        "latency_bound_s": b_s,
        "latency_bound": bound.as_dict(),
        "meets_deadline": {
            "guaranteed": None if deadline is None else bool(b_s is not None and b_s <= deadline),
            "simulated": None if deadline is None else bool(sim_s is not None and sim_s <= deadline),
        },
        "schedulable": not reasons,
        "reasons": reasons,
        "guaranteed": not not_guaranteed,
        "guarantee_reasons": not_guaranteed,
        "layers": layers,
    }


def _late(latency_s: float | None, missing: str, what: str, deadline_s: float | None) -> list[str]:
    """[``missing``] when there is no latency, [why it misses the deadline] when it does, else []."""
    if latency_s is None:
        return [missing]
    if deadline_s is not None and latency_s > deadline_s:
        return [f"{what} {latency_s:.6g} s > deadline {deadline_s:g} s"]
    return []


def guarantee_lines(res: dict) -> list[str]:
    """The bound and the two deadline verdicts of an :func:`analyse` result, as lines for the terminal."""
    b = res["latency_bound"]
    src = b["p_min"]["from"]
    if res["latency_bound_s"] is None:
        lines = [f"latency bound ({b['dispatch']}): no guarantee: {b['reason']}"]
    else:
        parts = ", ".join(f"{k} {v:.4g} s" for k, v in b["parts_s"].items() if v > 0.0)
        lines = [f"latency bound ({b['dispatch']}, guaranteed minimum {src}): {res['latency_bound_s']:.6g} s "
                 f"({parts})"]
    d = res["deadline_s"]
    if d is not None:
        m = res["meets_deadline"]
        lines.append(f"deadline {d:g} s: guaranteed {'met' if m['guaranteed'] else 'NOT guaranteed'}; simulated "
                     f"{'met' if m['simulated'] else 'missed'}")
    return lines
