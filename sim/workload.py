"""What both engines (SimPy model and oracle) need: flat arrays, results, static checks."""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass, field

import numpy as np
from numba import njit

from .config import PowerConfig, SimConfig
from .harvesters import Segments
from .dispatch import NonProgressError, PhaseCosts  # noqa: F401  (NonProgressError re-exported)
from .platform import Platform
from .taskgraph import UNIT_CATEGORIES, TaskGraph

#: the columns of :attr:`Workload.energy_J`: a unit's own categories, then "board" (the board's active draw while
#: the unit runs, :attr:`aidi.sim.platform.Platform.board_active_W`)
WORK_CATEGORIES = UNIT_CATEGORIES + ("board",)
#: energy categories reported in ``energy_J.by_category``; their sum is ``consumed``
#: ("wait": energy_aware dispatch's voltage measurements, LPM3 threshold waits and wake-ups; "board" also holds
#: the board's sleep current drawn from the capacitor, PowerConfig.board_sleep_A)
CATEGORIES = WORK_CATEGORIES + ("restore", "reexecution", "sleep", "unfinished", "wait", "converter_loss")


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

    durations_s[i], energy_J[i, k] (k over WORK_CATEGORIES, at the MCU), power_W[i] = E_i / d_i.
    With a board (``board_W`` > 0: its draw besides the MCU while a unit runs, W), an ``energy_J`` given with the
    UNIT_CATEGORIES columns only gets the "board" column appended: ``board_W * durations_s``; without, it may
    keep those columns only (the engines read as many columns as there are).
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
    board_W: float = 0.0

    def __post_init__(self):
        e = np.asarray(self.energy_J, dtype=np.float64)
        if self.board_W != 0.0 and e.ndim == 2 and e.shape[1] == len(UNIT_CATEGORIES):
            e = np.hstack([e, (self.board_W * np.asarray(self.durations_s, dtype=np.float64))[:, None]])
        object.__setattr__(self, "energy_J", e)

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
            board_W=platform.board_active_W,
        )

    @property
    def dispatch_costs(self) -> PhaseCosts:
        """energy_aware's measurement, wait and wake-up costs (:class:`~aidi.sim.dispatch.PhaseCosts`, MCU side)."""
        return PhaseCosts(self.measure_s, self.measure_W, self.wait_W, self.wake_s, self.wake_W)

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
    return power.e_store_J, seg.max_power(power.v_off, power.v_on)


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
        for k in range(len(c1)):
            by_cat[WORK_CATEGORIES[k]] += c1[k] - c0[k]
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
        """Add the energy integrals of one :class:`aidi.sim.capacitor.Move` (an advance result)."""
        self.harvested += res.harvested_J
        self.consumed += res.consumed_J
        self.leaked += res.leaked_J
        self.clipped += res.clipped_J


@dataclass(frozen=True)
class RunRecord:
    """What an engine returns for one run: typed and frozen.  :meth:`as_json` is the one place the
    ``aidi run --json`` object is made (the DESIGN contract: energies in J, times in s, voltages in V).

    ``latencies`` holds (inference index, latency s) of every completed inference; ``by_category`` the energy
    (J) of each of CATEGORIES but converter_loss, which :meth:`as_json` derives (consumed minus the MCU side);
    ``by_layer`` the energy (J) by layer index; ``output`` / ``output_matches_reference`` the functional run's
    Q15 output and check (None when not functional).
    """

    engine: str
    completed: bool
    reason: str
    t_end_s: float
    v_final: float
    inferences: int
    units: int
    dispatch: str
    tally: Tally
    capacitor_F: float
    v_initial: float
    deadline_s: float | None = None
    output: tuple | None = None
    output_matches_reference: bool | None = None
    board_share: float = 0.0  #: PowerConfig.board_share: the board's part of the tallied leakage

    @classmethod
    def of(cls, tally: Tally, power: PowerConfig, v_final: float, t_end: float, completed: bool, reason: str,
           engine: str, work: Workload, sim: SimConfig) -> "RunRecord":
        """The record of a run that ended at ``t_end`` (s) with V = ``v_final`` (V), tallied in ``tally``."""
        return cls(engine, completed, reason, t_end, v_final, sim.inferences, len(work), sim.dispatch, tally,
                   power.capacitor_F, power.v_initial, sim.deadline_s, board_share=power.board_share)

    @property
    def latency_s(self) -> float | None:
        """Time from t = 0 to the end of the last inference (s), None when not completed."""
        return self.t_end_s if self.completed else None

    @property
    def stored_initial_J(self) -> float:
        """Energy in the capacitor at t = 0 (J)."""
        return 0.5 * self.capacitor_F * self.v_initial**2

    @property
    def stored_final_J(self) -> float:
        """Energy in the capacitor at the end (J)."""
        return 0.5 * self.capacitor_F * self.v_final**2

    @property
    def meets_deadline(self) -> bool | None:
        """Completed within ``deadline_s``; None without a deadline."""
        if self.deadline_s is None:
            return None
        return bool(self.completed and self.t_end_s <= self.deadline_s)

    @property
    def board_sleep_J(self) -> float:
        """The board's sleep current's part of the capacitor's tallied constant-current drain (J): consumed
        under ``board``, not leaked."""
        return self.tally.leaked * self.board_share

    @property
    def consumed_J(self) -> float:
        """Energy consumed (J), the board's sleep current included."""
        return self.tally.consumed + self.board_sleep_J

    @property
    def leaked_J(self) -> float:
        """Energy leaked (J): the capacitor's own leakage, without the board's sleep current."""
        return self.tally.leaked - self.board_sleep_J

    def energy_by_category(self) -> dict[str, float]:
        """Energy (J) by category of CATEGORIES, the board's sleep current added to ``board``, converter_loss
        derived: consumed minus the MCU side."""
        cats = {k: float(v) for k, v in self.tally.by_category.items()}
        cats["board"] = cats.get("board", 0.0) + self.board_sleep_J
        mcu_side = sum(v for k, v in cats.items() if k != "converter_loss")
        cats["converter_loss"] = self.consumed_J - mcu_side
        return cats

    def as_json(self) -> dict:
        """The JSON contract of ``aidi run --json``."""
        tally = self.tally
        cats = self.energy_by_category()
        completed, t_end = self.completed, self.t_end_s
        lat = tally.latencies[-1][1] if completed and tally.latencies else None
        out = {
            "engine": self.engine,
            "completed": completed,
            "reason": self.reason,
            "latency_s": t_end if completed else None,
            "inferences": self.inferences,
            "inferences_completed": tally.inferences_completed,
            "inference_latencies_s": [float(l) for _, l in tally.latencies],
            "last_inference_latency_s": lat,
            "power_cycles": tally.power_cycles,
            "on_time_s": tally.on_time,
            "off_time_s": tally.off_time,
            "sim_time_s": t_end,
            "units": self.units,
            "units_executed": tally.units_executed,
            "units_reexecuted": tally.units_reexecuted,
            "units_lost": tally.units_lost,
            "v_final": self.v_final,
            "dispatch": self.dispatch,
            "wait_s": tally.wait_time,
            "threshold_waits": tally.threshold_waits,
            "measurements": tally.measurements,
            "energy_J": {
                "harvested": tally.harvested,
                "consumed": self.consumed_J,
                "stored_initial": self.stored_initial_J,
                "stored_final": self.stored_final_J,
                "leaked": self.leaked_J,
                "clipped": tally.clipped,
                "by_category": cats,
                "by_layer": {str(k): float(v) for k, v in sorted(tally.by_layer.items())},
            },
        }
        if self.deadline_s is not None:
            out["deadline_s"] = self.deadline_s
            out["meets_deadline"] = self.meets_deadline
        if self.output is not None:
            out["output"] = list(self.output)
            out["output_matches_reference"] = self.output_matches_reference
        return out


def energy_balance_error(res: dict) -> float:
    """Relative error of stored_initial + harvested = consumed + leaked + clipped + stored_final."""
    e = res["energy_J"]
    lhs = e["stored_initial"] + e["harvested"]
    rhs = e["consumed"] + e["leaked"] + e["clipped"] + e["stored_final"]
    return abs(lhs - rhs) / max(abs(lhs), abs(rhs), 1e-30)
