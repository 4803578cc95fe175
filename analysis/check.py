"""Schedulability analysis (``aidi check``): does every unit fit one power cycle, SRAM, the deadline?

Per power cycle the capacitor gives E_store = C (V_on^2 - V_off^2) / 2; the MCU
gets eta * E_store after the converter.  A unit is *atomic*: after a boot it must
finish before V falls to V_off, so it needs (E_boot + E_unit) / eta from the store
(worst case: no harvesting during the cycle).  With the scenario's harvester the
best case adds the largest source power over the boot + unit time.  Verdicts:

* ``fits``         worst case fits: it completes in one cycle whatever the source does
* ``needs_harvest`` fits only if the source delivers during the cycle
* ``never``        does not fit even in the best case: the run cannot progress
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from aidi.sim import oracle
from aidi.sim.config import SimConfig
from aidi.sim.harvesters import constant
from aidi.sim.workload import NonProgressError


def unit_table(built) -> pd.DataFrame:
    """One row per unit: time, energy, need from the store, verdict and margin."""
    w = built.work
    p = built.scenario.power
    eta = p.converter_efficiency
    e_store = p.e_store_J
    p_src = built.segments.max_power(p.v_off, p.v_on)
    need = (w.boot_J + w.energy_J.sum(axis=1)) / eta
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


def analyse(built) -> dict:
    """The full verdict: per layer and unit, SRAM, latency under continuous power and the harvester."""
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
    sim_one = SimConfig(inferences=1, until_s=sc.sim.until_s, seed=sc.sim.seed)
    harvested: dict
    try:
        r = oracle.simulate(built.work, p, built.segments, sim_one)
        harvested = {"completed": r["completed"], "latency_s": r["latency_s"], "power_cycles": r["power_cycles"],
                     "reason": r["reason"]}
    except NonProgressError as exc:
        harvested = {"completed": False, "latency_s": None, "power_cycles": None, "reason": str(exc)}
    # continuous supply: a constant source larger than the MCU ever draws
    strong = constant(10.0 * float(built.work.power_W.max()) / p.converter_efficiency + 1e-3)
    from dataclasses import replace

    rc = oracle.simulate(built.work, replace(p, v_initial=max(p.v_initial, p.v_on)), strong, sim_one)
    deadline = sc.sim.deadline_s
    reasons = []
    if harvested["latency_s"] is None:
        reasons.append(f"does not complete under the harvester: {harvested['reason']}")
    elif deadline is not None and harvested["latency_s"] > deadline:
        reasons.append(f"latency {harvested['latency_s']:.3f} s > deadline {deadline:g} s")
    max_sram = int(units["sram_bytes"].max())
    if max_sram > budget:
        reasons.append(f"SRAM {max_sram} B > budget {budget} B")
    never = units[units["verdict"] == "never"]
    if len(never):
        reasons.append(f"{len(never)} unit(s) can never complete in one power cycle (first: {never['unit'].iloc[0]})")
    return {
        "scenario": sc.name,
        "e_cycle_J": p.e_cycle_J,
        "e_store_J": p.e_store_J,
        "boot_J": built.work.boot_J,
        "sram_budget_bytes": budget,
        "sram_max_bytes": max_sram,
        "units": int(len(units)),
        "units_fit": int((units["verdict"] == "fits").sum()),
        "units_need_harvest": int((units["verdict"] == "needs_harvest").sum()),
        "units_never": int(len(never)),
        "continuous": {"latency_s": rc["latency_s"], "compute_time_s": continuous_s},
        "harvester": harvested,
        "deadline_s": deadline,
        "schedulable": not reasons,
        "reasons": reasons,
        "layers": layers,
    }
