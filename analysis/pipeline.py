"""Scenario -> model -> Q15 -> execution design -> task graph -> simulation.

Loads the scenario's model (trained once, cached) and hands it to the library's
composition root, :func:`aidi.models.hardware.compose` (designs, plan, Workload),
turning its ValueErrors into one-line user errors; then runs the simulator.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aidi.scenarios import loader
from aidi.sim import des, oracle
from aidi.sim.harvesters import Segments
from aidi.sim.platform import Platform
from aidi.sim.taskgraph import TaskGraph
from aidi.sim.workload import Workload

from .errors import UserError


def load_scenario(path: str | Path | loader.Scenario) -> loader.Scenario:
    """A scenario file or shipped name, loaded and validated (:func:`aidi.scenarios.loader.load`); an already
    loaded :class:`~aidi.scenarios.loader.Scenario` (e.g. one changed in Python) is returned as is."""
    return path if isinstance(path, loader.Scenario) else loader.load(path)


@functools.lru_cache(maxsize=16)
def _model(layers_json: str, input_shape: tuple, weights: str, seed: int, epochs: int, base_dir: str,
           data_dir: str | None = None):
    from aidi.models import net, q15

    trained = net.load_model(json.loads(layers_json), list(input_shape), weights=weights, seed=seed, epochs=epochs,
                             base_dir=base_dir, data_dir=data_dir)
    qm = q15.quantize(trained)
    acc = q15.q15_accuracy(qm, trained.dataset.x_test, trained.dataset.y_test)
    return trained, qm, acc


@functools.lru_cache(maxsize=4)
def _onnx_model(path: str, stamp: tuple, layers_json: str, input_shape: tuple, sample: str | None, calib: str | None,
                seed: int):
    from aidi.models import onnx_import

    om = onnx_import.load_onnx_model(path, json.loads(layers_json), list(input_shape), sample, calib, seed)
    return om, om.qmodel, float("nan")


def _stamp(*paths) -> tuple:
    """(size, mtime) of each file: a cache key that changes when a file does."""
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) if p is not None else None for p in paths)


def load_model(sc: loader.Scenario):
    """(TrainedModel, QModel, Q15 held-out accuracy) of the scenario's [model] (trained once, then cached on disk and in memory).

    With ``[model] onnx``: (:class:`aidi.models.onnx_import.OnnxModel`, its QModel, NaN: no labelled data; its
    ``agreement`` with onnxruntime is the measure), cached in memory while the files are unchanged."""
    m = sc.model
    if m.onnx is not None:
        try:
            return _onnx_model(str(m.onnx), _stamp(m.onnx, m.sample_input, m.calibration),
                               json.dumps(list(m.layers), sort_keys=True), tuple(m.input),
                               None if m.sample_input is None else str(m.sample_input),
                               None if m.calibration is None else str(m.calibration), m.seed)
        except ValueError as exc:
            raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None
    weights = str(m.file) if m.file is not None else m.weights
    try:
        return _model(json.dumps(list(m.layers), sort_keys=True), tuple(m.input), weights, m.seed, m.epochs,
                      str(sc.path.parent), None if m.data_dir is None else str(m.data_dir))
    except ValueError as exc:
        raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None


@dataclass
class Built:
    """Everything a run needs, derived from one scenario."""

    scenario: loader.Scenario
    platform: Platform
    trained: object
    qmodel: object
    plan: object
    graph: TaskGraph
    work: Workload
    segments: Segments
    x_q: np.ndarray = field(repr=False)
    q15_accuracy: float = float("nan")

    def design_summary(self, layer: int) -> str:
        d = self.plan.layers[layer].design
        return f"Tr{d.Tr} Tc{d.Tc} Tm{d.Tm} Tn{d.Tn} {d.loop_order} S{d.S}"

    def qmodel_reference_output(self) -> np.ndarray:
        """The integer reference's output for the scenario's input sample (flattened int16)."""
        from aidi.models import q15

        return np.asarray(q15.reference_forward(self.qmodel, self.x_q)[-1]).ravel()

    def functional(self):
        from aidi.models.functional import FunctionalRun

        return FunctionalRun(self.plan, self.qmodel, self.x_q)


def build(sc: loader.Scenario, plans=None) -> Built:
    """Model, Q15, execution designs and the task graph for a scenario (:func:`aidi.models.hardware.compose`).

    ``plans``: a :class:`aidi.models.hardware.PlanCache` shared by runs whose
    designs agree (a sweep), or None.
    """
    from aidi.models import hardware

    trained, qm, q_acc = load_model(sc)
    segments = sc.harvester.segments()
    try:
        hw = hardware.compose(sc, qm, segments=segments, cache=plans)
    except ValueError as exc:
        raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None
    x_q = qm.quantize_input(trained.dataset.x_test[:1])[0]
    return Built(sc, hw.platform, trained, qm, hw.plan, hw.graph, hw.work, hw.segments, x_q, q_acc)


def simulate(built: Built, engine: str = "des", functional: bool = False, log: bool = False):
    """Run the SimPy model (``des``) or the oracle; returns (result dict, event log or None)."""
    sc = built.scenario
    if engine == "oracle":
        res = oracle.simulate(built.work, sc.power, built.segments, sc.sim)
        events = None
    else:
        fn = built.functional() if functional else None
        res, events = des.simulate(built.work, sc.power, built.segments, sc.sim, functional=fn, log=log)
    res["scenario"] = sc.name
    res["float_accuracy"] = built.trained.float_accuracy
    res["q15_accuracy"] = built.q15_accuracy
    if getattr(built.trained, "agreement", None) is not None:  # an imported ONNX model
        res["onnx_agreement"] = built.trained.agreement
    res["designs"] = {built.graph.layer_names[i]: built.design_summary(i) for i in range(len(built.plan.layers))}
    res["sram_max_bytes"] = built.graph.max_sram_bytes()
    return res, events
