"""What both engines (SimPy model and oracle) need: flat arrays, results, static checks."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .platform import Platform
from .taskgraph import UNIT_CATEGORIES, TaskGraph

#: energy categories reported in ``energy_J.by_category``; their sum is ``consumed``
CATEGORIES = UNIT_CATEGORIES + ("restore", "reexecution", "sleep", "unfinished", "converter_loss")


class NonProgressError(ValueError):
    """A unit needs more energy than one power cycle can ever give."""


STUCK_BOOT = ("the boot failed twice from a full capacitor under a constant source: "
              "it cannot complete in one power cycle")


def stuck_unit(name: str) -> str:
    return (f"unit {name} failed twice from a full capacitor under a constant source: "
            "it cannot complete in one power cycle")


@dataclass(frozen=True)
class Workload:
    """A task graph flattened for the engines.

    durations_s[i], energy_J[i, k] (k over UNIT_CATEGORIES, at the MCU), power_W[i] = E_i / d_i.
    """

    names: list[str]
    layers: np.ndarray
    durations_s: np.ndarray
    energy_J: np.ndarray
    boot_s: float
    boot_J: float
    sleep_W: float
    layer_names: list[str] = field(default_factory=list)

    @classmethod
    def from_graph(cls, graph: TaskGraph, platform: Platform) -> "Workload":
        if len(graph) == 0:
            raise ValueError("task graph has no units")
        d = graph.durations_s()
        if (d <= 0).any():
            raise ValueError(f"unit {graph.units[int(np.argmax(d <= 0))].name}: duration must be > 0")
        return cls(
            names=[u.name for u in graph.units],
            layers=graph.layers(),
            durations_s=d,
            energy_J=graph.energy_matrix(),
            boot_s=platform.boot_s,
            boot_J=platform.boot_energy_J,
            sleep_W=platform.sleep_power_W,
            layer_names=list(graph.layer_names),
        )

    def prefix_sums(self):
        """(cumulative energy per category, cumulative total, [(layer, first, end) runs]) as Python lists."""
        cached = self.__dict__.get("_prefix")
        if cached is None:
            cum = np.vstack([np.zeros((1, self.energy_J.shape[1])), np.cumsum(self.energy_J, axis=0)])
            total = np.concatenate([[0.0], np.cumsum(self.energy_J.sum(axis=1))])
            edges = np.flatnonzero(np.diff(self.layers)) + 1
            starts = np.concatenate([[0], edges])
            ends = np.concatenate([edges, [len(self.layers)]])
            runs = [(int(self.layers[a]), int(a), int(b)) for a, b in zip(starts, ends)]
            cached = (cum.tolist(), total.tolist(), runs)
            object.__setattr__(self, "_prefix", cached)
        return cached

    @property
    def power_W(self) -> np.ndarray:
        return self.energy_J.sum(axis=1) / self.durations_s

    def __len__(self) -> int:
        return self.durations_s.shape[0]


def check_progress(work: Workload, power: PowerConfig, seg: Segments) -> None:
    """Raise NonProgressError if some unit (after a boot) can never finish in one power cycle.

    Best case: the cycle starts at V_on with no leakage and the source gives its largest
    power for the whole boot + unit; if even that is short of what the unit draws, the run
    could only loop.
    """
    eta = power.converter_efficiency
    e_store = 0.5 * power.capacitor_F * (power.v_on**2 - power.v_off**2)
    p_src = seg.max_power(power.v_off, power.v_on)
    if work.boot_J / eta > e_store + p_src * work.boot_s:
        raise NonProgressError(
            f"the boot needs {work.boot_J / eta * 1e6:.3f} uJ from the capacitor but one power cycle gives at most "
            f"{(e_store + p_src * work.boot_s) * 1e6:.3f} uJ (C={power.capacitor_F:g} F, V_on={power.v_on:g} V, "
            f"V_off={power.v_off:g} V): the device can never finish booting")
    need = (work.boot_J + work.energy_J.sum(axis=1)) / eta
    avail = e_store + p_src * (work.boot_s + work.durations_s)
    bad = np.nonzero(need > avail)[0]
    if bad.size:
        i = int(bad[np.argmax((need - avail)[bad])])
        raise NonProgressError(
            f"unit {work.names[i]} (layer {int(work.layers[i])}) needs {need[i] * 1e6:.3f} uJ from the capacitor "
            f"(boot included) but one power cycle gives at most {avail[i] * 1e6:.3f} uJ "
            f"(C={power.capacitor_F:g} F, V_on={power.v_on:g} V, V_off={power.v_off:g} V); "
            f"it can never complete: use smaller tiles/hyper-tiles or a larger capacitor"
        )


@dataclass
class Tally:
    """Accumulators both engines fill in the same way."""

    harvested: float = 0.0
    consumed: float = 0.0
    leaked: float = 0.0
    clipped: float = 0.0
    on_time: float = 0.0
    off_time: float = 0.0
    power_cycles: int = 0
    units_executed: int = 0
    units_reexecuted: int = 0
    units_lost: int = 0
    inferences_completed: int = 0
    by_category: dict = field(default_factory=lambda: {c: 0.0 for c in CATEGORIES})
    by_layer: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)

    def add_units(self, work: "Workload", i0: int, i1: int) -> None:
        """Add the energy of completed units i0..i1-1 by category and by layer (prefix sums: O(layers))."""
        cum, cum_total, runs = work.prefix_sums()
        for k, cat in enumerate(UNIT_CATEGORIES):
            self.by_category[cat] += cum[i1][k] - cum[i0][k]
        for layer, a, b in runs:
            lo, hi = max(a, i0), min(b, i1)
            if lo < hi:
                self.by_layer[layer] = self.by_layer.get(layer, 0.0) + cum_total[hi] - cum_total[lo]

    def add_sums(self, sums) -> None:
        """Add (harvested, consumed, leaked, clipped) sums."""
        self.harvested += sums[0]
        self.consumed += sums[1]
        self.leaked += sums[2]
        self.clipped += sums[3]

    def add_power(self, res) -> None:
        """Add the energy integrals of one physics.advance result."""
        self.harvested += res[3]
        self.consumed += res[4]
        self.leaked += res[5]
        self.clipped += res[6]


def result_dict(tally: Tally, power: PowerConfig, v_final: float, t_end: float, completed: bool,
                reason: str, engine: str, work: Workload, sim: SimConfig) -> dict:
    """The JSON contract of ``aidi run --json``."""
    cats = {k: float(v) for k, v in tally.by_category.items()}
    mcu_side = sum(v for k, v in cats.items() if k != "converter_loss")
    cats["converter_loss"] = tally.consumed - mcu_side
    stored_initial = 0.5 * power.capacitor_F * power.v_initial**2
    stored_final = 0.5 * power.capacitor_F * v_final**2
    lat = tally.latencies[-1][1] if completed and tally.latencies else None
    out = {
        "engine": engine,
        "completed": completed,
        "reason": reason,
        "latency_s": t_end if completed else None,
        "inferences": sim.inferences,
        "inferences_completed": tally.inferences_completed,
        "inference_latencies_s": [float(l) for _, l in tally.latencies],
        "last_inference_latency_s": lat,
        "power_cycles": tally.power_cycles,
        "on_time_s": tally.on_time,
        "off_time_s": tally.off_time,
        "sim_time_s": t_end,
        "units": len(work),
        "units_executed": tally.units_executed,
        "units_reexecuted": tally.units_reexecuted,
        "units_lost": tally.units_lost,
        "v_final": v_final,
        "energy_J": {
            "harvested": tally.harvested,
            "consumed": tally.consumed,
            "stored_initial": stored_initial,
            "stored_final": stored_final,
            "leaked": tally.leaked,
            "clipped": tally.clipped,
            "by_category": cats,
            "by_layer": {str(k): float(v) for k, v in sorted(tally.by_layer.items())},
        },
    }
    if sim.deadline_s is not None:
        out["deadline_s"] = sim.deadline_s
        out["meets_deadline"] = bool(completed and t_end <= sim.deadline_s)
    return out


def energy_balance_error(res: dict) -> float:
    """Relative error of stored_initial + harvested = consumed + leaked + clipped + stored_final."""
    e = res["energy_J"]
    lhs = e["stored_initial"] + e["harvested"]
    rhs = e["consumed"] + e["leaked"] + e["clipped"] + e["stored_final"]
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-30)
