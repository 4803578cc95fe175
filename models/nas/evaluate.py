"""Objectives of a candidate: accuracy, the hardware's objectives, the latency requirement, feasibility.

:class:`Evaluator` is handed a hardware evaluator (``hardware(arch) -> dict``
with a ``key``; :class:`aidi.models.hardware.HardwareEvaluator` binds a
scenario) and an accuracy source (supernet readout, training from scratch, or
any ``arch -> float``), as Once-for-All's search is handed an efficiency and an
accuracy predictor: it knows nothing of how either is computed.  It adds the
latency requirement (given, or the hardware evaluator's ``deadline_s``) and
caches objectives by ``(arch.id, hardware key, accuracy key, requirement)``; a
cached call returns an identical dict.

Objectives dict (``evaluate(arch)``): the hardware evaluator's (latency_s,
sram_bytes, hw_feasible, reasons, ...; see
:class:`aidi.models.hardware.HardwareEvaluator`) plus::

    arch_id, arch (its dict), describe, accuracy (fraction), requirement_s, feasible

Constraints: the hardware's (``hw_feasible``) and latency <= requirement.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Callable, Protocol, Sequence

import numpy as np

from .space import Arch


class HardwareSource(Protocol):
    """``arch -> hardware objectives`` (with ``latency_s``, ``hw_feasible``, ``reasons``) and a ``key``."""

    key: str
    deadline_s: float | None

    def __call__(self, arch: Arch) -> dict[str, Any]: ...


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
    """iNAS-style: train each child from scratch for a few epochs (no KD, no weight sharing), on ``device``.

    With ``spec`` (the :class:`~aidi.models.nas.jobs.DataSpec` ``data`` was loaded from), :meth:`many`
    trains a batch of children as :mod:`~aidi.models.nas.jobs` through ``map_fn`` (in parallel); the
    seed is in each job, so the accuracies do not depend on the worker count."""

    def __init__(self, data, epochs: int = 3, seed: int = 0, device: str = "cpu", spec=None,
                 map_fn: Callable[[Callable, list], list] | None = None):
        self.data, self.epochs, self.seed, self.device = data, epochs, seed, device
        self.spec, self.map_fn = spec, map_fn
        self.key = f"scratch:{data.fingerprint()}:{epochs}:{seed}"

    def __call__(self, arch: Arch) -> float:
        return self.many([arch])[0]

    def many(self, archs: Sequence[Arch]) -> list[float]:
        if self.spec is None:
            from .supernet import module_accuracy, train_from_scratch

            return [module_accuracy(train_from_scratch(a, self.data, self.seed, self.epochs, device=self.device),
                                    self.data.x_val, self.data.y_val) for a in archs]
        from .jobs import ScratchJob, run_jobs

        jobs = [ScratchJob(a.to_dict(), self.spec, self.seed, self.epochs, device=self.device) for a in archs]
        return [r["val_accuracy"] for r in run_jobs(jobs, self.map_fn)]


class ProxyAccuracy:
    """A training-free stand-in (tests, dry runs): ``1 - exp(-MACs / scale)``, monotone in size."""

    def __init__(self, scale: float = 2e5):
        self.scale = scale
        self.key = f"proxy:{scale:g}"

    def __call__(self, arch: Arch) -> float:
        return float(1.0 - np.exp(-arch.macs() / self.scale))


# --------------------------------------------------------------------------- evaluator and cache
class ObjectiveCache:
    """In-memory objectives keyed by ``(arch.id, hardware key, accuracy key, requirement)``."""

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
    """``evaluate(arch) -> objectives`` with one hardware evaluator, requirement and accuracy source.

    ``map_fn(fn, list_of_arg_tuples) -> list`` runs the hardware evaluator
    (serially by default; analysis.nas_run passes process-pool or Dask maps, so
    it must pickle).  Accuracy is computed in the calling process (the supernet
    lives there).
    """

    def __init__(self, hardware: HardwareSource, accuracy: AccuracySource, requirement_s: float | None = None,
                 cache: ObjectiveCache | None = None, map_fn: Callable[[Callable, list], list] | None = None):
        req = requirement_s if requirement_s is not None else getattr(hardware, "deadline_s", None)
        if req is not None and not (np.isfinite(req) and req > 0):
            raise ValueError(f"latency requirement must be a positive number of seconds, got {req!r}")
        self.hardware = hardware
        self.accuracy = accuracy
        self.requirement_s = req
        self.cache = cache if cache is not None else ObjectiveCache()
        self.map_fn = map_fn or serial_map
        self.evaluations = 0
        self.accuracy_seconds = 0.0

    def key(self, arch: Arch) -> tuple:
        return (arch.id, self.hardware.key, self.accuracy.key, self.requirement_s)

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
            if self.map_fn is serial_map and hasattr(self.hardware, "evaluate_many"):
                hws = self.hardware.evaluate_many(todo)  # a generation's fitness in one compiled oracle call
            else:
                hws = self.map_fn(self.hardware, [(a,) for a in todo])
            t0 = time.perf_counter()
            many = getattr(self.accuracy, "many", None)  # a batch at once (training jobs in parallel)
            accs = many(todo) if many is not None else [self.accuracy(a) for a in todo]
            self.accuracy_seconds += time.perf_counter() - t0
            for a, hw, acc in zip(todo, hws, accs):
                obj = self._finish(a, hw, acc)
                self.cache.put(self.key(a), obj)
                results[a.id] = copy.deepcopy(obj)
        return [copy.deepcopy(results[a.id]) for a in archs]
