"""Energy-aware dispatch in the emitted runtime: the per-unit start thresholds and the host harness's power model.

The simulator's ``[execution] dispatch = "energy_aware"`` measures V before each
unit and sleeps in LPM3 until V reaches the unit's start threshold
``V_start = sqrt(V_off^2 + 2 E_need / C)`` (:func:`aidi.sim.dispatch.start_thresholds`).
The emitted runtime does the same from a const table ``aidi_v_start_mv[]``: the
thresholds come from the very function the engines call
(:func:`aidi.sim.dispatch.check_thresholds`) on the very Workload they run
(:meth:`aidi.sim.workload.Workload.from_graph` of the plan's task graph and
platform, as a ``[power] frontend``'s buck draws it: :func:`aidi.sim.frontend.loads`),
rounded *up* to whole millivolts so that the C threshold is never below the simulator's.

Like the engines (:func:`aidi.sim.dispatch.dispatch_unit`) the runtime measures V
only when it must: it keeps in SRAM (so a power failure forgets it) a lower bound
K on V^2, set from a measurement (rounded down to mV) or to a threshold it waited
for, and lowered after each unit by that unit's ``aidi_v_drop_mv2[]`` entry,
2 E_need / C in mV^2 rounded *up* (:func:`aidi.sim.dispatch.known_drops`, the
energy the threshold is built from), so K stays below the real V^2 whatever the
source gives.  A unit whose threshold squared is at most K starts unmeasured.
Right after a boot K is the const ``aidi_v_boot_mv2`` (:func:`boot_known_mv2`):
the engines' boot seed V_on^2 - 2 E_boot_need / C
(:func:`aidi.sim.dispatch.boot_known`) in mV^2 rounded *down*, since the device
boots only at V_on.  Only the boot path uses it (``aidi_infer_at_boot``, which
the sample application calls at every boot); ``aidi_infer`` starts from 0.

The host harness's simulated capacitor (``aidi-host --capacitor P``) draws, per
unit, the energy and duration of that same Workload; its other constants are the
scenario's ``[power]`` and the platform's boot, measurement, wait and wake-up
costs (:mod:`aidi.sim.platform`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ...sim.config import PowerConfig
from ...sim.frontend import loads
from ...sim.dispatch import DispatchPlan, boot_need, check_thresholds, make_plan, start_message, unstartable
from ...sim.workload import NonProgressError, Workload

POLICIES = ("greedy", "energy_aware")


@dataclass(frozen=True)
class Dispatch:
    """The dispatch policy the emitted runtime is built with, and the power it was planned for.

    Args:
        policy: ``"greedy"`` (start a unit whenever on) or ``"energy_aware"`` (wait for its start threshold).
        power: the scenario's :class:`~aidi.sim.config.PowerConfig`; None: no thresholds, no host power
            model (then the policy must be greedy).
        margin: ``[execution] dispatch_margin`` (fraction added to each unit's E_need).
    Raises ValueError for an unknown policy, energy_aware without a power configuration, or a negative margin.
    """

    policy: str = "greedy"
    power: Optional[PowerConfig] = None
    margin: float = 0.05

    def __post_init__(self):
        if self.policy not in POLICIES:
            raise ValueError(f"dispatch must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        if self.policy == "energy_aware" and self.power is None:
            raise ValueError("dispatch: energy_aware needs the power configuration (capacitor, V_off) for its "
                             "start thresholds")
        if not (self.margin >= 0 and math.isfinite(self.margin)):
            raise ValueError(f"dispatch: margin must be a finite fraction >= 0, got {self.margin!r}")

    @classmethod
    def of_scenario(cls, scenario) -> "Dispatch":
        """The policy, power and margin of a loaded scenario (``[execution] dispatch``, ``[power]``)."""
        return cls(scenario.sim.dispatch, scenario.power, scenario.sim.dispatch_margin)


def workload(plan) -> Workload:
    """The engines' Workload of ``plan`` (a :class:`~aidi.models.schedule.NetPlan`): one row per unit, in order."""
    return Workload.from_graph(plan.task_graph(), plan.platform)


def start_thresholds_V(work: Workload, power: PowerConfig, margin: float) -> np.ndarray:
    """Start threshold of every unit (V), as both engines compute it (:func:`aidi.sim.dispatch.check_thresholds`).

    Raises :class:`~aidi.sim.workload.NonProgressError` (a ValueError) naming the unit when one exceeds V_on.
    """
    return check_thresholds(loads(work, power), power, margin)


def millivolts_up(volts: np.ndarray) -> np.ndarray:
    """``volts`` as whole millivolts (uint16), rounded up: ``mv / 1000 >= v`` for every element.

    Raises ValueError above 65.535 V or for a non-finite value."""
    v = np.asarray(volts, dtype=np.float64)
    if not np.all(np.isfinite(v)) or (v.size and (v.min() < 0 or v.max() > 65.535)):
        raise ValueError("start thresholds must be finite voltages in [0, 65.535] V")
    mv = np.ceil(v * 1000.0)
    mv += (mv / 1000.0 < v)  # guard against the product rounding down
    return mv.astype(np.uint16)


def millivolts2_up(volts2: np.ndarray) -> np.ndarray:
    """``volts2`` (V^2) as whole mV^2 (uint32), rounded up: ``x / 1e6 >= v2`` for every element.

    Raises ValueError for a negative or non-finite value, or one above 65535^2 mV^2."""
    v = np.asarray(volts2, dtype=np.float64)
    if not np.all(np.isfinite(v)) or (v.size and (v.min() < 0 or v.max() > 65535.0**2 / 1e6)):
        raise ValueError("voltage drops must be finite squares of voltages in [0, 65.535] V")
    x = np.ceil(v * 1e6)
    x += (x / 1e6 < v)  # guard against the product rounding down
    return x.astype(np.uint32)


def known_drops_mv2(work: Workload, power: PowerConfig, margin: float) -> np.ndarray:
    """2 E_need / C of every unit in mV^2, rounded up (uint32): what running it takes off the runtime's
    lower bound on V^2 (the engines' own :class:`~aidi.sim.dispatch.DispatchPlan` drops)."""
    return millivolts2_up(make_plan(loads(work, power), power, margin).drops)


def boot_known_mv2(work: Workload, power: PowerConfig, margin: float) -> int:
    """What the runtime knows of V^2 right after a boot (mV^2, rounded down; 0: nothing):
    V_on^2 - 2 E_boot_need / C (:func:`aidi.sim.dispatch.boot_need`, the engines' boot seed
    :func:`aidi.sim.dispatch.boot_known` for a source that never draws from the capacitor, as a harvester behind
    its rectifier or diode).  ``x / 1e6 <= V_on^2 - 2 E_boot_need / C`` for the returned x."""
    work = loads(work, power)
    need = boot_need(work.boot_J, work.boot_s, power.converter_efficiency, power.v_max, power.leakage_A, margin)
    v2 = power.v_on * power.v_on - 2.0 * need / power.capacitor_F
    if not v2 > 0.0:
        return 0
    x = min(math.floor(v2 * 1e6), 0xFFFFFFFF)
    while x > 0 and x / 1e6 > v2:  # guard against the product rounding up
        x -= 1
    return int(x)


def units_on_boot_seed(v_start_mv, v_drop_mv2, v_boot_mv2: int) -> int:
    """How many units the runtime starts unmeasured right after a boot into a new inference (its dispatch()
    from K = ``v_boot_mv2``, the tables in mV and mV^2): the first one it measures before."""
    k = int(v_boot_mv2)
    for g, (mv, drop) in enumerate(zip(v_start_mv, v_drop_mv2)):
        if k < int(mv) * int(mv):
            return g
        k = k - int(drop) if k > int(drop) else 0
    return len(v_start_mv)


def _c_doubles(values, per_line: int = 6) -> str:
    flat = [repr(float(x)) for x in np.asarray(values, dtype=np.float64).reshape(-1)]
    rows = [", ".join(flat[i: i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join("    " + r for r in rows)


def _c_uints(values, per_line: int = 12) -> str:
    flat = [f"{int(x)}u" for x in np.asarray(values).reshape(-1)]
    rows = [", ".join(flat[i: i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join("    " + r for r in rows)


def dispatch_context(plan, dispatch: Dispatch, total_units: int) -> dict:
    """What the templates need: ``policy``, ``v_start_mv`` (list, or None without a table), its C text,
    ``v_drop_mv2`` (list) and its C text ``v_drop_c``, ``v_boot_mv2`` (:func:`boot_known_mv2`), and the host power model (``host``: C text of ``aidi_host_power``/``_unit_J``/``_unit_s``, or None).

    Under greedy a unit whose threshold exceeds V_on only drops the table (the project builds greedy);
    under energy_aware that is the engines' one-line NonProgressError.
    """
    ctx = {"policy": dispatch.policy, "v_start_mv": None, "v_start_c": "", "v_drop_mv2": None, "v_drop_c": "",
           "v_boot_mv2": 0, "host": None, "margin": dispatch.margin, "capacitor_F": None, "v_off": None}
    if dispatch.power is None:
        return ctx
    p = dispatch.power
    work = loads(workload(plan), p)  # the units as the scenario's power front end draws them (the engines' loads)
    if len(work) != total_units:
        raise ValueError(f"dispatch: the Workload has {len(work)} units, the plan {total_units}")
    table: DispatchPlan = make_plan(work, p, dispatch.margin)  # the engines' plan: thresholds and drops
    bad = unstartable(table, p.v_on)
    if bad >= 0 and dispatch.policy == "energy_aware":
        raise NonProgressError(start_message(work, p, table.v_start, bad))
    if bad < 0:
        mv = millivolts_up(table.v_start)
        drop = millivolts2_up(table.drops)
        ctx.update(v_start_mv=[int(x) for x in mv], v_start_c=_c_uints(mv), v_drop_mv2=[int(x) for x in drop],
                   v_drop_c=_c_uints(drop, per_line=8), v_boot_mv2=boot_known_mv2(work, p, dispatch.margin))
    plat = plan.platform
    power = [p.capacitor_F, p.v_on, p.v_off, p.v_max, p.converter_efficiency, p.leakage_A, work.boot_s, work.boot_J,
             work.measure_s, work.measure_W, work.wait_W, work.wake_s, work.wake_W]
    ctx.update(capacitor_F=p.capacitor_F, v_off=p.v_off, platform=plat.name, host={
        "power": _c_doubles(power),
        "unit_J": _c_doubles(work.energy_J.sum(axis=1)),
        "unit_s": _c_doubles(work.durations_s),
    })
    return ctx
