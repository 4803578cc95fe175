"""Objectives of a candidate under a scenario: accuracy, intermittent latency, SRAM, feasibility.

:func:`hardware_objectives` (no weights needed) tiles the candidate with
:func:`aidi.models.design_search.auto_design` per layer for the scenario's per-cycle
energy budget (:func:`aidi.analysis.pipeline.unit_energy_budget`: one power
cycle after the converter, minus the boot) and SRAM budget, builds the task
graph and runs the fast oracle under the scenario's harvester.  Per-layer
designs are memoised by layer geometry, so candidates that share layers share
the search.

:class:`Evaluator` adds the accuracy (a pluggable source: supernet readout,
training from scratch, or any ``arch -> float``) and the latency requirement
(the scenario's ``[sim] deadline_s`` or a given value), and caches objectives
by ``(arch.id, scenario.digest(), accuracy source, requirement, mode)``; a
cached call returns an identical dict.

Objectives dict (``evaluate(arch)``)::

    arch_id, arch (its dict), layers, accuracy (fraction), latency_s (intermittent; in "continuous"
    mode the continuous one), intermittent_latency_s, continuous_latency_s, sram_bytes, sram_budget_bytes,
    max_unit_energy_J, e_budget_J, power_cycles, energy_J, designs (one dict per executed layer),
    requirement_s, mode, hw_feasible, feasible, reasons (list of one-line strings)

Constraints: SRAM footprint <= budget; every unit within one cycle's energy;
the oracle run completes; latency <= requirement.  ``mode="continuous"`` is the
HW-NAS view: designs for an unbounded energy budget and latency = the sum of
unit durations (compute only, no recharging, no boots).
"""

from __future__ import annotations

import copy
import functools
import time
from dataclasses import replace
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from ..layers import LayerGeom, geometry, parse_network
from .space import Arch

MODES = ("intermittent", "continuous")
#: per-cycle energy budget standing for "unbounded" under continuous power (J)
CONTINUOUS_E_CYCLE_J = 1e3


def unit_energy_budget(sc) -> float:
    """The scenario's per-unit energy budget (J): :func:`aidi.analysis.pipeline.unit_energy_budget`.

    Computed here the same way (one power cycle after the converter, minus the
    boot) so that models/ does not import analysis/; a test checks both agree.
    """
    return sc.power.e_cycle_J - sc.device.make_platform().boot_energy_J


@functools.lru_cache(maxsize=4096)
def _layer_design(geom: LayerGeom, device, budget: int, e_cycle_J: float, backend: str, preservation: str):
    from ..design_search import auto_design

    try:
        return auto_design(geom, device.make_platform(), budget, e_cycle_J, backend=backend,
                                  preservation=preservation), None
    except ValueError as exc:
        return None, str(exc).splitlines()[0]


def _canonical(g: LayerGeom) -> LayerGeom:
    return replace(g, index=0, bn=-1, spec_indices=())


def hardware_objectives(scenario, arch: Arch | Sequence[dict], mode: str = "intermittent",
                        input_shape=None) -> dict:
    """Tile and simulate ``arch`` (an :class:`Arch` or layer dicts + ``input_shape``) under ``scenario``.

    Never raises for an infeasible candidate: ``hw_feasible`` is False and ``reasons`` says why.
    """
    from ..schedule import plan_network
    from ...sim import oracle
    from ...sim.workload import NonProgressError, Workload

    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    t0 = time.perf_counter()
    if isinstance(arch, Arch):
        layers, shape = arch.to_layers(), arch.input_shape
    else:
        layers, shape = list(arch), input_shape
    sc = scenario
    platform = sc.device.make_platform()
    budget = sc.device.sram_budget_bytes
    e_budget = unit_energy_budget(sc)
    e_design = e_budget if mode == "intermittent" else CONTINUOUS_E_CYCLE_J
    ex = sc.execution
    out: dict[str, Any] = {"latency_s": None, "intermittent_latency_s": None, "continuous_latency_s": None,
                           "sram_bytes": None, "sram_budget_bytes": budget, "max_unit_energy_J": None,
                           "e_budget_J": e_budget, "power_cycles": None, "energy_J": None, "designs": [],
                           "mode": mode, "hw_feasible": False, "reasons": []}
    geoms = geometry(parse_network(layers, shape))
    designs = []
    for g in geoms:
        d, why = _layer_design(_canonical(g), sc.device, budget, e_design, ex.backend, ex.preservation)
        if d is None:
            out["reasons"].append(why.replace("layer 0 (", f"layer {g.index} (", 1))
            designs.append(None)
        else:
            designs.append(d)
    if out["reasons"]:
        out["hw_seconds"] = time.perf_counter() - t0
        return out
    out["designs"] = [d.to_dict() for d in designs]
    try:
        plan = plan_network(geoms, designs, platform, budget, backend=ex.backend)
    except ValueError as exc:
        out["reasons"].append(str(exc).splitlines()[0])
        out["hw_seconds"] = time.perf_counter() - t0
        return out
    graph = plan.task_graph()
    work = Workload.from_graph(graph, platform)
    unit_e = work.energy_J.sum(axis=1)
    out["sram_bytes"] = int(graph.max_sram_bytes())
    out["max_unit_energy_J"] = float(unit_e.max())
    out["continuous_latency_s"] = float(work.durations_s.sum())
    out["units"] = len(work)
    if out["sram_bytes"] > budget:
        out["reasons"].append(f"SRAM {out['sram_bytes']} B exceeds the budget {budget} B")
    if mode == "continuous":
        out["latency_s"] = out["continuous_latency_s"]
        out["energy_J"] = float(unit_e.sum())
    else:
        if out["max_unit_energy_J"] > e_budget * (1 + 1e-12):
            out["reasons"].append(f"a unit needs {out['max_unit_energy_J'] * 1e6:.3f} uJ, one power cycle gives "
                                  f"{e_budget * 1e6:.3f} uJ")
        try:
            res = oracle.simulate(work, sc.power, sc.harvester.segments(), sc.sim)
        except NonProgressError as exc:
            out["reasons"].append(str(exc).splitlines()[0])
        except Exception as exc:  # a simulator failure is an infeasible candidate, not a crashed search
            out["reasons"].append(f"simulator error: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
        else:
            out["power_cycles"] = int(res["power_cycles"])
            out["energy_J"] = float(res["energy_J"]["consumed"])
            if res["completed"]:
                out["latency_s"] = out["intermittent_latency_s"] = float(res["latency_s"])
            else:
                out["reasons"].append(f"the inference does not complete ({res['reason'] or 'unknown'})")
    out["hw_feasible"] = not out["reasons"]
    out["hw_seconds"] = time.perf_counter() - t0
    return out


# --------------------------------------------------------------------------- accuracy sources
class AccuracySource(Protocol):
    """``arch -> accuracy`` (fraction) with a ``key`` naming the source (part of the cache key)."""

    key: str

    def __call__(self, arch: Arch) -> float: ...


class SupernetAccuracy:
    """Validation accuracy read off a trained supernet (inherited weights, BN recalibrated)."""

    def __init__(self, supernet, data):
        from .supernet import calibration_images

        self.supernet, self.data = supernet, data
        self.x_calib = calibration_images(data)
        meta = getattr(supernet, "meta", {}) or {}
        self.key = f"supernet:{meta.get('cache_path') or id(supernet)}"

    def __call__(self, arch: Arch) -> float:
        from .supernet import supernet_accuracy

        return supernet_accuracy(self.supernet, arch, self.data.x_val, self.data.y_val, self.x_calib)


class ScratchAccuracy:
    """iNAS-style: train each child from scratch for a few epochs (no KD, no weight sharing)."""

    def __init__(self, data, epochs: int = 3, seed: int = 0):
        self.data, self.epochs, self.seed = data, epochs, seed
        self.key = f"scratch:{data.fingerprint()}:{epochs}:{seed}"

    def __call__(self, arch: Arch) -> float:
        from .supernet import module_accuracy, train_from_scratch

        m = train_from_scratch(arch, self.data, self.seed, self.epochs)
        return module_accuracy(m, self.data.x_val, self.data.y_val)


class ProxyAccuracy:
    """A training-free stand-in (tests, dry runs): ``1 - exp(-MACs / scale)``, monotone in size."""

    def __init__(self, scale: float = 2e5):
        self.scale = scale
        self.key = f"proxy:{scale:g}"

    def __call__(self, arch: Arch) -> float:
        return float(1.0 - np.exp(-arch.macs() / self.scale))


# --------------------------------------------------------------------------- evaluator and cache
class ObjectiveCache:
    """In-memory objectives keyed by ``(arch.id, scenario digest, accuracy key, requirement, mode)``."""

    def __init__(self):
        self._d: dict[tuple, dict] = {}
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple) -> dict | None:
        v = self._d.get(key)
        if v is None:
            self.misses += 1
            return None
        self.hits += 1
        return copy.deepcopy(v)

    def put(self, key: tuple, value: dict) -> None:
        self._d[key] = copy.deepcopy(value)

    def __len__(self) -> int:
        return len(self._d)


def serial_map(fn: Callable, args: list[tuple]) -> list:
    return [fn(*a) for a in args]


class Evaluator:
    """``evaluate(arch) -> objectives`` under one scenario, requirement and accuracy source.

    ``map_fn(fn, list_of_arg_tuples) -> list`` runs :func:`hardware_objectives`
    (serially by default; analysis.nas_run passes process-pool or Dask maps).
    Accuracy is computed in the calling process (the supernet lives there).
    """

    def __init__(self, scenario, accuracy: AccuracySource, requirement_s: float | None = None,
                 mode: str = "intermittent", cache: ObjectiveCache | None = None,
                 map_fn: Callable[[Callable, list], list] | None = None):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        req = requirement_s if requirement_s is not None else scenario.sim.deadline_s
        if req is not None and not (np.isfinite(req) and req > 0):
            raise ValueError(f"latency requirement must be a positive number of seconds, got {req!r}")
        self.scenario = scenario
        self.digest = scenario.digest()
        self.accuracy = accuracy
        self.requirement_s = req
        self.mode = mode
        self.cache = cache if cache is not None else ObjectiveCache()
        self.map_fn = map_fn or serial_map
        self.evaluations = 0
        self.accuracy_seconds = 0.0

    def key(self, arch: Arch) -> tuple:
        return (arch.id, self.digest, self.accuracy.key, self.requirement_s, self.mode)

    def _finish(self, arch: Arch, hw: dict, acc: float) -> dict:
        obj = {"arch_id": arch.id, "arch": arch.to_dict(), "describe": arch.describe(), "accuracy": float(acc),
               **hw, "requirement_s": self.requirement_s}
        obj["reasons"] = list(hw["reasons"])
        lat = obj["latency_s"]
        if hw["hw_feasible"] and self.requirement_s is not None and lat > self.requirement_s:
            obj["reasons"].append(f"latency {lat:.4g} s exceeds the requirement {self.requirement_s:.4g} s")
        obj["feasible"] = bool(hw["hw_feasible"] and not obj["reasons"])
        return obj

    def evaluate(self, arch: Arch) -> dict:
        return self.evaluate_many([arch])[0]

    def evaluate_many(self, archs: Sequence[Arch]) -> list[dict]:
        """Objectives of each arch (in order); misses are computed once each, hardware part via ``map_fn``."""
        self.evaluations += len(archs)
        results: dict[str, dict] = {}
        todo: list[Arch] = []
        for a in archs:
            if a.id in results or any(t.id == a.id for t in todo):
                continue
            hit = self.cache.get(self.key(a))
            if hit is not None:
                results[a.id] = hit
            else:
                todo.append(a)
        if todo:
            hws = self.map_fn(hardware_objectives, [(self.scenario, a, self.mode) for a in todo])
            for a, hw in zip(todo, hws):
                t0 = time.perf_counter()
                acc = self.accuracy(a)
                self.accuracy_seconds += time.perf_counter() - t0
                obj = self._finish(a, hw, acc)
                self.cache.put(self.key(a), obj)
                results[a.id] = copy.deepcopy(obj)
        return [copy.deepcopy(results[a.id]) for a in archs]
