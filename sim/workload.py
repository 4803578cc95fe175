"""What both engines (SimPy model and oracle) need: flat arrays, results, static checks."""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .physics import e_cycle, known_after
from .platform import Platform
from .taskgraph import UNIT_CATEGORIES, TaskGraph

#: energy categories reported in ``energy_J.by_category``; their sum is ``consumed``
#: ("wait": energy_aware dispatch's voltage measurements, LPM3 threshold waits and wake-ups)
CATEGORIES = UNIT_CATEGORIES + ("restore", "reexecution", "sleep", "unfinished", "wait", "converter_loss")


class NonProgressError(ValueError):
    """A unit needs more energy than one power cycle can ever give."""


STUCK_BOOT = ("the boot failed twice from a full capacitor under a constant source: "
              "it cannot complete in one power cycle")


def stuck_unit(name: str) -> str:
    return (f"unit {name} failed twice from a full capacitor under a constant source: "
            "it cannot complete in one power cycle")


def stuck_wait(name: str) -> str:
    return (f"unit {name}: the device browned out twice before it (measuring V or waiting in LPM3 for the "
            "unit's start threshold) from a full capacitor under a constant source: the source cannot lift V "
            "to the threshold")


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
    #: energy_aware dispatch: the voltage measurement before a unit (s, W at the MCU), the LPM3
    #: threshold wait (W) and the wake-up from it (s, W)
    measure_s: float = 0.0
    measure_W: float = 0.0
    wait_W: float = 0.0
    wake_s: float = 0.0
    wake_W: float = 0.0

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
            measure_s=platform.measure_s,
            measure_W=platform.measure_energy_J / platform.measure_s if platform.measure_s > 0 else 0.0,
            wait_W=platform.wait_power_W,
            wake_s=platform.wake_s,
            wake_W=platform.active_power_W,
        )

    @property
    def dispatch_costs(self) -> np.ndarray:
        """(measure_s, measure_W, wait_W, wake_s, wake_W), the MCU's powers (W)."""
        return np.array([self.measure_s, self.measure_W, self.wait_W, self.wake_s, self.wake_W])

    def prefix_sums(self):
        """(cumulative energy per category, cumulative total, [(layer, first, end) runs], run firsts),
        as Python lists."""
        cached = self.__dict__.get("_prefix")
        if cached is None:
            cum = np.vstack([np.zeros((1, self.energy_J.shape[1])), np.cumsum(self.energy_J, axis=0)])
            total = np.concatenate([[0.0], np.cumsum(self.energy_J.sum(axis=1))])
            edges = np.flatnonzero(np.diff(self.layers)) + 1
            starts = np.concatenate([[0], edges])
            ends = np.concatenate([edges, [len(self.layers)]])
            runs = [(int(self.layers[a]), int(a), int(b)) for a, b in zip(starts, ends)]
            cached = (cum.tolist(), total.tolist(), runs, [int(a) for a in starts])
            object.__setattr__(self, "_prefix", cached)
        return cached

    @property
    def power_W(self) -> np.ndarray:
        """E_i / d_i at the MCU (W), computed once."""
        cached = self.__dict__.get("_power")
        if cached is None:
            cached = self.energy_J.sum(axis=1) / self.durations_s
            object.__setattr__(self, "_power", cached)
        return cached

    def __len__(self) -> int:
        return self.durations_s.shape[0]


@njit(cache=True)
def progress_violation(energy, durations, units, boot_J, boot_s, eta, e_store, p_src):
    """-2 if the boot can never finish in one power cycle, else the unit (among ``units``, in order)
    furthest from fitting, the first such on a tie, else -1 (see :func:`check_progress`)."""
    if boot_J / eta > e_store + p_src * boot_s:
        return -2
    worst = -1
    gap = 0.0
    for x in range(units.shape[0]):
        i = units[x]
        u = 0.0
        for c in range(energy.shape[1]):
            u += energy[i, c]
        need = (boot_J + u) / eta
        avail = e_store + p_src * (boot_s + durations[i])
        if need > avail and (worst < 0 or need - avail > gap):
            worst = i
            gap = need - avail
    return worst


def progress_budget(power: PowerConfig, seg: Segments) -> tuple[float, float]:
    """(energy the capacitor gives between V_on and V_off, the source's best power there)."""
    return e_cycle(power.capacitor_F, power.v_on, power.v_off), seg.max_power(power.v_off, power.v_on)


def check_progress(work: Workload, power: PowerConfig, seg: Segments) -> None:
    """Raise NonProgressError if some unit (after a boot) can never finish in one power cycle.

    Best case: the cycle starts at V_on with no leakage and the source gives its largest
    power for the whole boot + unit; if even that is short of what the unit draws, the run
    could only loop.
    """
    e_store, p_src = progress_budget(power, seg)
    bad = progress_violation(work.energy_J, work.durations_s, np.arange(len(work)), work.boot_J, work.boot_s,
                             power.converter_efficiency, e_store, p_src)
    if bad != -1:
        raise NonProgressError(progress_message(work, power, seg, bad))


def progress_message(work: Workload, power: PowerConfig, seg: Segments, bad: int) -> str:
    """The one-line reason for a :func:`progress_violation` result ``bad`` (-2 or a unit index)."""
    eta = power.converter_efficiency
    e_store, p_src = progress_budget(power, seg)
    where = f"(C={power.capacitor_F:g} F, V_on={power.v_on:g} V, V_off={power.v_off:g} V)"
    if bad == -2:
        return (f"the boot needs {work.boot_J / eta * 1e6:.3f} uJ from the capacitor but one power cycle gives at "
                f"most {(e_store + p_src * work.boot_s) * 1e6:.3f} uJ {where}: the device can never finish booting")
    need = (work.boot_J + work.energy_J[bad].sum()) / eta
    avail = e_store + p_src * (work.boot_s + work.durations_s[bad])
    return (f"unit {work.names[bad]} (layer {int(work.layers[bad])}) needs {need * 1e6:.3f} uJ from the capacitor "
            f"(boot included) but one power cycle gives at most {avail * 1e6:.3f} uJ {where}; "
            f"it can never complete: use smaller tiles/hyper-tiles or a larger capacitor")


@njit(cache=True, error_model="numpy")
def start_needs(energy, durations, costs, eta, v_max, i_leak, margin):
    """energy_aware's E_need of every unit (J, drawn from the capacitor, no harvest):

    E_need = (1 + margin) * [(E_unit + E_measure + E_wake) / eta + I_leak * V_max * (d_unit + t_measure + t_wake)]:
    the unit, the measurement before it and the wake-up from LPM3 drawn through the converter, and
    leakage bounded at V_max over their durations.  ``energy[i, k]`` (J at the MCU), ``durations[i]`` (s),
    ``costs`` = Workload.dispatch_costs.

    It bounds what running the unit alone takes out of the capacitor whatever the source gives (>= 0 W):
    the load draws E_unit / eta, leakage I_leak * int V dt <= I_leak * V_max * d_unit (V never exceeds
    V_max), so after the unit started at V >= K, V >= sqrt(K^2 - 2 E_need / C) (:func:`aidi.sim.physics.known_after`).
    """
    n = durations.shape[0]
    out = np.empty(n)
    meas_s, meas_w, wake_s, wake_w = costs[0], costs[1], costs[3], costs[4]
    fixed = meas_s * meas_w + wake_s * wake_w
    for i in range(n):
        u = 0.0
        for c in range(energy.shape[1]):
            u += energy[i, c]
        out[i] = (1.0 + margin) * ((u + fixed) / eta + i_leak * v_max * (durations[i] + meas_s + wake_s))
    return out


@njit(cache=True, error_model="numpy")
def start_thresholds(energy, durations, costs, eta, cap, v_off, v_max, i_leak, margin):
    """energy_aware's start threshold of every unit (V): V_start = sqrt(V_off^2 + 2 E_need / C), E_need from
    :func:`start_needs` (same arguments, ``cap`` in F, voltages in V, ``i_leak`` in A)."""
    need = start_needs(energy, durations, costs, eta, v_max, i_leak, margin)
    out = np.empty(need.shape[0])
    for i in range(need.shape[0]):
        out[i] = math.sqrt(v_off * v_off + 2.0 * need[i] / cap)
    return out


@njit(cache=True, error_model="numpy")
def known_drops(energy, durations, costs, eta, cap, v_max, i_leak, margin):
    """2 E_need / C of every unit (V^2, :func:`start_needs`): what running it takes off the square of the
    voltage the MCU knows a lower bound of (:func:`aidi.sim.physics.known_after`)."""
    need = start_needs(energy, durations, costs, eta, v_max, i_leak, margin)
    return 2.0 * need / cap


@njit(cache=True, error_model="numpy")
def boot_need(boot_J, boot_s, eta, v_max, i_leak, margin):
    """energy_aware's E_need of the boot (J, drawn from the capacitor, no harvest), as :func:`start_needs` for a
    unit: (1 + margin) * [E_boot / eta + I_leak * V_max * t_boot].  ``boot_J`` (J at the MCU) and ``boot_s`` (s)
    are the platform's boot (:class:`aidi.sim.platform.Platform` boot_energy_J, boot_s: power-up to main() and the
    resume from FRAM), ``eta`` the converter efficiency, ``i_leak`` (A), ``v_max`` (V)."""
    return (1.0 + margin) * (boot_J / eta + i_leak * v_max * boot_s)


@njit(cache=True, error_model="numpy")
def source_floor(seg_p, seg_g, seg_vs):
    """The largest V (V) below which no segment of the source draws from the capacitor (inf when none ever does):
    p + g (V_s - V) V >= 0 for every V in [0, floor].  A Thevenin segment (g > 0) draws above its upper root
    (V_s + sqrt(V_s^2 + 4 p / g)) / 2; a constant-power segment (p >= 0, g = 0) never draws."""
    out = math.inf
    for k in range(seg_p.shape[0]):
        g = seg_g[k]
        if g > 0.0:
            vs = seg_vs[k]
            disc = vs * vs + 4.0 * seg_p[k] / g
            root = 0.5 * (vs + math.sqrt(disc)) if disc > 0.0 else 0.0
            out = min(out, max(root, 0.0))
        elif seg_p[k] < 0.0:
            return 0.0
    return out


@njit(cache=True, error_model="numpy")
def boot_known(boot_J, boot_s, eta, cap, v_on, v_max, i_leak, margin, floor):
    """energy_aware's lower bound on V (V) right after a boot: sqrt(K^2 - 2 E_boot_need / C)
    (:func:`aidi.sim.physics.known_after`, :func:`boot_need`), K = min(V_on, ``floor``), ``floor`` the source's
    :func:`source_floor` (V); 0 (unknown) when that is not positive.

    Why it holds: both engines boot only at V >= V_on (they charge to V_on with the MCU off, or start above it
    at v_initial).  While V is below K the source gives >= 0 W, so from the last instant V was at K or above,
    V^2 falls by at most 2 E_boot_need / C over the boot (the boot's draw through the converter, and leakage at
    most I_leak V_max).  Capacitance in F, voltages in V, powers as :func:`boot_need`."""
    k = min(v_on, floor)
    return known_after(k, 2.0 * boot_need(boot_J, boot_s, eta, v_max, i_leak, margin) / cap)


def start_message(work: "Workload", power: PowerConfig, v_start: np.ndarray, bad: int) -> str:
    """The one-line error of a unit whose start threshold is above V_on."""
    return (f"unit {work.names[bad]} (layer {int(work.layers[bad])}) needs V_start = {v_start[bad]:.4f} V to start "
            f"under dispatch = energy_aware but the device boots at V_on = {power.v_on:g} V: it can never be "
            f"scheduled (C={power.capacitor_F:g} F, V_off={power.v_off:g} V); use smaller tiles/hyper-tiles, "
            "a larger capacitor, a smaller dispatch_margin or dispatch = \"greedy\"")


def check_thresholds(work: "Workload", power: PowerConfig, margin: float) -> np.ndarray:
    """The start thresholds (:func:`start_thresholds`); raise NonProgressError if one is above V_on."""
    v_start = start_thresholds(work.energy_J, work.durations_s, work.dispatch_costs, power.converter_efficiency,
                               power.capacitor_F, power.v_off, power.v_max, power.leakage_A, margin)
    bad = int(np.argmax(v_start))
    if v_start[bad] > power.v_on:
        raise NonProgressError(start_message(work, power, v_start, bad))
    return v_start


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
    wait_time: float = 0.0
    threshold_waits: int = 0
    measurements: int = 0
    by_category: dict = field(default_factory=lambda: {c: 0.0 for c in CATEGORIES})
    by_layer: dict = field(default_factory=dict)
    latencies: list = field(default_factory=list)

    def add_units(self, work: "Workload", i0: int, i1: int) -> None:
        """Add the energy of completed units i0..i1-1 by category and by layer (prefix sums: O(layers))."""
        cum, cum_total, runs, firsts = work.prefix_sums()
        c1, c0, by_cat = cum[i1], cum[i0], self.by_category
        for k, cat in enumerate(UNIT_CATEGORIES):
            by_cat[cat] += c1[k] - c0[k]
        by_layer = self.by_layer
        for r in range(bisect_right(firsts, i0) - 1, len(runs)):  # the layer runs that overlap [i0, i1)
            layer, a, b = runs[r]
            if a >= i1:
                break
            lo, hi = (a if a > i0 else i0), (b if b < i1 else i1)
            by_layer[layer] = by_layer.get(layer, 0.0) + cum_total[hi] - cum_total[lo]

    def add_sums(self, sums) -> None:
        """Add (harvested, consumed, leaked, clipped) sums."""
        self.harvested += sums[0]
        self.consumed += sums[1]
        self.leaked += sums[2]
        self.clipped += sums[3]

    def add_power(self, res) -> None:
        """Add the energy integrals of one :class:`aidi.sim.physics.Move` (an advance result)."""
        self.harvested += res.harvested_J
        self.consumed += res.consumed_J
        self.leaked += res.leaked_J
        self.clipped += res.clipped_J


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
        "dispatch": sim.dispatch,
        "wait_s": tally.wait_time,
        "threshold_waits": tally.threshold_waits,
        "measurements": tally.measurements,
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
