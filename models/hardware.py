"""The composition root: a scenario's device, power, harvester and execution + the executed layers -> a Workload.

The one place where a scenario becomes something the simulator runs; ``aidi run``
(:func:`aidi.analysis.pipeline.build`), the sweeps and the NAS all go through it,
so the NAS judges a candidate on the designs ``aidi run`` would choose.

Public API::

    unit_energy_budget(power, platform) -> float      # J a unit may use: E_cycle after the converter minus the boot
    checked_energy_budget(power, platform) -> float   # the same, ValueError if the boot uses a whole cycle
    design_power(sc, platform, segments, continuous) -> (e_cycle_J, harvest_power_W)   # what "auto" designs fit
    resolve(sc, layers, ...) -> list[ExecutionDesign]  # the scenario's [execution] values, "auto" searched
    compose(sc, layers, ...) -> Hardware               # designs -> plan -> task graph -> Workload
    PlanCache                                          # plans and workloads by (layers, designs, platform, budget, backend)
    HardwareEvaluator(sc, mode)(arch) -> dict          # a candidate's hardware objectives (the NAS's efficiency predictor)

``sc`` is anything with the scenario's ``device``, ``power``, ``harvester`` and
``execution`` sections (:class:`aidi.scenarios.loader.Scenario`); ``layers`` is a
QModel, a LayerGeom list, or layer dicts with ``input_shape``.  Errors: a
ValueError (its first line names the layer or the key) for what the user can
fix or a candidate that cannot run; :data:`INFEASIBLE` lists the types a caller
may turn into data.  Anything else is a bug and propagates.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Hashable

from ..sim.harvesters import Segments
from ..sim.platform import Platform
from ..sim.taskgraph import TaskGraph
from ..sim.workload import NonProgressError, Workload
from .design_search import Optimized, PowerContext, execution_pins, optimize_designs, resolve_designs
from .layers import LayerGeom
from .schedule.design import ExecutionDesign
from .schedule.plan import NetPlan, geoms_of, plan_network, sram_budget_of

if TYPE_CHECKING:
    from .design_cache import DesignStore

#: per-cycle energy (J) standing for "unbounded": designs under continuous power
CONTINUOUS_E_CYCLE_J = 1e3
#: what a scenario the user can fix, or a candidate that cannot run, raises (NonProgressError is a ValueError)
INFEASIBLE: tuple[type[BaseException], ...] = (ValueError, NonProgressError)
MODES = ("intermittent", "continuous")


def unit_energy_budget(power, platform: Platform) -> float:
    """Energy (J, at the MCU) a unit may use: one power cycle after the converter (``power.e_cycle_J``), minus the boot."""
    return power.e_cycle_J - platform.boot_energy_J


def checked_energy_budget(power, platform: Platform) -> float:
    """:func:`unit_energy_budget`; ValueError (naming ``power``) if the boot alone uses a whole power cycle."""
    e_budget = unit_energy_budget(power, platform)
    if e_budget <= 0:
        raise ValueError(f"power: one power cycle ({power.e_cycle_J * 1e6:.3f} uJ) does not even cover the boot "
                         f"({platform.boot_energy_J * 1e6:.3f} uJ): raise capacitor_F or v_on")
    return e_budget


def design_power(sc, platform: Platform, segments: Segments | None = None,
                 continuous: bool = False) -> tuple[float, float | None]:
    """``(e_cycle_J, harvest_power_W)`` the "auto" designs are searched for.

    Intermittent: the per-unit budget (:func:`unit_energy_budget`; ValueError if
    the boot alone uses a whole cycle) and the source's typical power between
    V_off and V_on after the converter (W; None when the source gives nothing),
    so designs minimise compute time plus recharge time.  Continuous: an
    unbounded budget and no recharge term.
    """
    if continuous:
        return CONTINUOUS_E_CYCLE_J, None
    p = sc.power
    e_budget = checked_energy_budget(p, platform)
    seg = segments if segments is not None else sc.harvester.segments()
    p_harvest = seg.typical_power(p.v_off, p.v_on) * p.converter_efficiency
    return e_budget, (p_harvest if p_harvest > 0 else None)


def resolve(sc, layers, *, platform: Platform | None = None, segments: Segments | None = None,
            continuous: bool = False, input_shape=None, store: DesignStore | None = None) -> list[ExecutionDesign]:
    """One design per executed layer from the scenario's ``[execution]`` values.

    Intermittent: "auto" fields come from the latency optimizer (:func:`optimize`: the oracle's latency
    of one inference under the scenario's power and dispatch); with a ``store``
    (:class:`aidi.models.design_cache.DesignStore`) its designs are looked up there first by everything
    the optimizer is given, and stored.  Continuous: the fastest designs for an unbounded energy budget
    (:func:`aidi.models.design_search.resolve_designs`).
    """
    platform = platform or sc.device.make_platform()
    geoms = geoms_of(layers, input_shape)
    ex = sc.execution
    e_cycle_J, p_harvest = design_power(sc, platform, segments, continuous)  # checks the budget
    if not continuous:
        pins = execution_pins(geoms, ex.tile, ex.loop_order, ex.hyper_tile, ex.preservation)
        if all(isinstance(pin, ExecutionDesign) for pin in pins):
            return pins
        args, kw = _optimizer_arguments(sc, geoms, platform, segments)
        chosen = lambda: optimize_designs(*args, **kw, alternatives=0).designs  # noqa: E731
        return chosen() if store is None else store.get_or_compute(store.key(args, kw), len(geoms), chosen)
    return resolve_designs(geoms, ex.tile, ex.loop_order, ex.hyper_tile, ex.preservation,
                           platform=platform, sram_budget=sc.device.sram_budget_bytes, e_cycle_J=e_cycle_J,
                           backend=ex.backend, harvest_power_W=p_harvest)


def power_context(sc, platform: Platform, segments: Segments | None = None) -> PowerContext:
    """The optimizer's view of scenario ``sc``: power, harvester segments, run settings, unit energy budget
    (ValueError if the boot alone uses a whole power cycle)."""
    e_budget, _ = design_power(sc, platform, segments)
    seg = segments if segments is not None else sc.harvester.segments()
    return PowerContext(sc.power, seg, sc.sim, e_budget)


def optimize(sc, layers, *, platform: Platform | None = None, segments: Segments | None = None, input_shape=None,
             exhaustive: bool = False, alternatives: int | None = None) -> Optimized:
    """The latency optimizer (:func:`aidi.models.design_search.optimize_designs`) on scenario ``sc``'s
    ``[execution]`` values ("auto" fields searched), its power and dispatch policy; ``alternatives``: designs
    reported per layer (the choice does not depend on it)."""
    platform = platform or sc.device.make_platform()
    args, kw = _optimizer_arguments(sc, geoms_of(layers, input_shape), platform, segments)
    return optimize_designs(*args, **kw, exhaustive=exhaustive, alternatives=alternatives)


def _optimizer_arguments(sc, geoms: list[LayerGeom], platform: Platform, segments: Segments | None) -> tuple:
    """``(args, kwargs)`` of :func:`~aidi.models.design_search.optimize_designs` for scenario ``sc`` (all
    it is given besides ``exhaustive`` and ``alternatives``: a design store's key is made of them)."""
    ex = sc.execution
    pins = execution_pins(geoms, ex.tile, ex.loop_order, ex.hyper_tile, ex.preservation)
    return ((geoms, platform, sc.device.sram_budget_bytes, power_context(sc, platform, segments)),
            dict(backend=ex.backend, preservation=ex.preservation, pins=pins))


@dataclass(frozen=True)
class Planned:
    """A plan and what the simulator needs from it."""

    plan: NetPlan
    graph: TaskGraph
    work: Workload


class PlanCache:
    """Plans and workloads by ``(layers, designs, platform, SRAM budget, backend)``, least recently used out.

    A plan is a pure function of that key, so points of a sweep that change only
    power, harvester or run values (and so keep their designs) share one plan and
    workload.  ``builds`` counts the plans made.
    """

    def __init__(self, maxsize: int = 32):
        self.maxsize = maxsize
        self._d: OrderedDict[Hashable, Planned] = OrderedDict()
        self.builds = 0
        self.hits = 0

    def get(self, key: Hashable, build: Callable[[], Planned]) -> Planned:
        if key in self._d:
            self._d.move_to_end(key)
            self.hits += 1
            return self._d[key]
        value = build()
        self.builds += 1
        self._d[key] = value
        while len(self._d) > self.maxsize:
            self._d.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._d)


def plan(geoms: list[LayerGeom], designs: list[ExecutionDesign], platform: Platform, sram_budget: int | None,
         backend: str, cache: PlanCache | None = None) -> Planned:
    """Plan ``geoms`` with ``designs`` (:func:`aidi.models.schedule.plan_network`), its task graph and Workload."""
    budget = sram_budget_of(platform, sram_budget)

    def build() -> Planned:
        p = plan_network(geoms, designs, platform, budget, backend=backend)
        graph = p.task_graph()
        return Planned(p, graph, Workload.from_graph(graph, platform))

    if cache is None:
        return build()
    return cache.get((tuple(geoms), tuple(designs), platform, budget, backend), build)


@dataclass(frozen=True)
class Hardware:
    """A scenario's layers made executable: designs, plan, task graph, Workload, and the budgets behind them."""

    platform: Platform
    segments: Segments
    e_budget_J: float
    designs: list
    plan: NetPlan
    graph: TaskGraph
    work: Workload


def compose(sc, layers, *, input_shape=None, segments: Segments | None = None, continuous: bool = False,
            cache: PlanCache | None = None, designs: list[ExecutionDesign] | None = None,
            store: DesignStore | None = None) -> Hardware:
    """Designs (:func:`resolve`), plan and Workload of ``layers`` under scenario ``sc``; ValueError if infeasible.

    ``designs``: one per executed layer, used instead of resolving the scenario's ``[execution]`` values
    (a sweep keeps the base scenario's designs across power points); the power budget is checked all the same.
    ``store``: where :func:`resolve` looks the optimizer's designs up (None: always optimize).
    """
    platform = sc.device.make_platform()
    seg = segments if segments is not None else sc.harvester.segments()
    geoms = geoms_of(layers, input_shape)
    if designs is None:
        designs = resolve(sc, geoms, platform=platform, segments=seg, continuous=continuous, store=store)
    else:
        if not continuous:
            checked_energy_budget(sc.power, platform)  # the budget check resolve makes
        if len(designs) != len(geoms):
            raise ValueError(f"designs: {len(designs)} given for {len(geoms)} executed layers")
    p = plan(geoms, designs, platform, sc.device.sram_budget_bytes, sc.execution.backend, cache)
    return Hardware(platform, seg, unit_energy_budget(sc.power, platform), designs, p.plan, p.graph, p.work)


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


class HardwareEvaluator:
    """``evaluator(arch) -> objectives`` of a candidate's hardware under one scenario (the NAS's efficiency predictor).

    Binds a scenario and a mode and forwards to :func:`resolve` (the latency
    optimizer's designs, as ``aidi run`` chooses them), :func:`plan` and the fast
    oracle; :meth:`evaluate_many` evaluates a generation's fitness in one
    compiled :class:`~aidi.sim.oracle.Population` call.  ``mode="intermittent"``: the scenario's designs and its harvester;
    ``"continuous"`` (the HW-NAS view): designs for an unbounded energy budget
    and latency = the sum of unit durations.  ``key`` names the scenario and
    mode (part of a cache key); ``deadline_s`` is the scenario's.

    Objectives dict::

        latency_s (intermittent; in "continuous" mode the continuous one), intermittent_latency_s,
        continuous_latency_s, sram_bytes, sram_budget_bytes, max_unit_energy_J, e_budget_J, power_cycles,
        energy_J, designs (one dict per executed layer), units, mode, hw_feasible, reasons, hw_seconds

    Never raises for an infeasible candidate (:data:`INFEASIBLE`): ``hw_feasible``
    is False and ``reasons`` says why in one line each.  Other errors propagate.
    """

    def __init__(self, scenario, mode: str = "intermittent"):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.scenario = scenario
        self.mode = mode
        self.key = f"{scenario.digest()}:{mode}"
        self.deadline_s = scenario.sim.deadline_s
        self._segments: Segments | None = None

    @property
    def segments(self) -> Segments:
        if self._segments is None:
            self._segments = self.scenario.harvester.segments()
        return self._segments

    def __call__(self, arch, input_shape=None) -> dict:
        """Objectives of ``arch``: an object with ``to_layers()`` and ``input_shape``, or layers + ``input_shape``."""
        return self.evaluate_many([arch], input_shape)[0]

    def evaluate_many(self, archs, input_shape=None) -> list[dict]:
        """Objectives of each arch (in order): designs from the latency optimizer per candidate, exactly as
        ``aidi run`` chooses them, then every feasible candidate's fitness (the oracle's latency under the
        scenario's power, dispatch and run settings) in one compiled :class:`~aidi.sim.oracle.Population` call."""
        from ..sim import oracle

        prepared = [self._prepare(a, input_shape) for a in archs]
        works = [w for _, w, _ in prepared if w is not None]
        t0 = time.perf_counter()
        batch = oracle.Population(works).evaluate(self.scenario.power, self.segments, self.scenario.sim) \
            if works else None
        share = (time.perf_counter() - t0) / max(len(works), 1)  # the population's time, split evenly
        out, k = [], 0
        for obj, work, seconds in prepared:
            if work is not None:
                exc = batch.error(k)
                if exc is not None:
                    obj["reasons"].append(_first_line(exc))
                else:
                    res = batch.result(k)
                    obj["power_cycles"] = int(res["power_cycles"])
                    obj["energy_J"] = float(res["energy_J"]["consumed"])
                    if res["completed"]:
                        obj["latency_s"] = obj["intermittent_latency_s"] = float(res["latency_s"])
                    else:
                        obj["reasons"].append(f"the inference does not complete ({res['reason'] or 'unknown'})")
                k += 1
            obj["hw_feasible"] = not obj["reasons"]
            obj["hw_seconds"] = seconds + (share if work is not None else 0.0)
            out.append(obj)
        return out

    def _prepare(self, arch, input_shape=None):
        """(objectives so far, the Workload to simulate or None, seconds spent) of one candidate."""
        t0 = time.perf_counter()
        if hasattr(arch, "to_layers"):
            layers, shape = arch.to_layers(), arch.input_shape
        else:
            layers, shape = list(arch), input_shape
        sc = self.scenario
        platform = sc.device.make_platform()
        budget = sc.device.sram_budget_bytes
        e_budget = unit_energy_budget(sc.power, platform)
        out: dict[str, Any] = {"latency_s": None, "intermittent_latency_s": None, "continuous_latency_s": None,
                               "sram_bytes": None, "sram_budget_bytes": budget, "max_unit_energy_J": None,
                               "e_budget_J": e_budget, "power_cycles": None, "energy_J": None, "designs": [],
                               "mode": self.mode, "hw_feasible": False, "reasons": []}
        continuous = self.mode == "continuous"
        try:
            geoms = geoms_of(layers, shape)
            seg = None if continuous else self.segments
            designs = resolve(sc, geoms, platform=platform, segments=seg, continuous=continuous)
            out["designs"] = [d.to_dict() for d in designs]
            planned = plan(geoms, designs, platform, budget, sc.execution.backend)
        except INFEASIBLE as exc:
            out["reasons"].append(_first_line(exc))
            return out, None, time.perf_counter() - t0
        work = planned.work
        unit_e = work.energy_J.sum(axis=1)
        out["sram_bytes"] = int(planned.graph.max_sram_bytes())
        out["max_unit_energy_J"] = float(unit_e.max())
        out["continuous_latency_s"] = float(work.durations_s.sum())
        out["units"] = len(work)
        if out["sram_bytes"] > budget:
            out["reasons"].append(f"SRAM {out['sram_bytes']} B exceeds the budget {budget} B")
        if continuous:
            out["latency_s"] = out["continuous_latency_s"]
            out["energy_J"] = float(unit_e.sum())
            return out, None, time.perf_counter() - t0
        if out["max_unit_energy_J"] > e_budget * (1 + 1e-12):
            out["reasons"].append(f"a unit needs {out['max_unit_energy_J'] * 1e6:.3f} uJ, one power cycle gives "
                                  f"{e_budget * 1e6:.3f} uJ")
        return out, work, time.perf_counter() - t0
