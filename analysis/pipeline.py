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
def _onnx_model(path: str, stamp: tuple, layers_json: str | None, input_shape: tuple, sample: str | None,
                calib: str | None, seed: int):
    from aidi.models import onnx_import

    layers = None if layers_json is None else json.loads(layers_json)
    om = onnx_import.load_onnx_model(path, layers, list(input_shape), sample, calib, seed,
                                     imported=_imported(path, stamp[:1]))
    return om, om.qmodel, float("nan")


@functools.lru_cache(maxsize=8)
def _imported(path: str, stamp: tuple):
    from aidi.models import onnx_import

    return onnx_import.import_model(path)


def _stamp(*paths) -> tuple:
    """(size, mtime) of each file: a cache key that changes when a file does."""
    return tuple((p.stat().st_size, p.stat().st_mtime_ns) if p is not None else None for p in paths)


def imported_graph(sc: loader.Scenario):
    """The scenario's ``[model] onnx`` file in aidi's graph form (:class:`aidi.models.onnx_import.Imported`),
    imported once per process while the file's size and mtime are unchanged (a sweep's points share it).  Reads
    the graph with the ``onnx`` package only (no torch, no onnxruntime).  Raises :class:`UserError` naming the
    scenario file and ``model.onnx`` for a file that is gone, is no ONNX model or holds an op aidi cannot map."""
    try:
        return _imported(str(sc.model.onnx), _stamp(sc.model.onnx))
    except (ValueError, OSError) as exc:
        raise UserError(f"{sc.path.name}: model.onnx: {str(exc).strip().splitlines()[0]}") from None


def graph_spec(sc: loader.Scenario) -> tuple[tuple[dict, ...], tuple[int, int, int]]:
    """``(layer specs, input (C, H, W))`` of the scenario's network: ``[model] layers`` and ``input``, or, for an
    ``onnx`` model given without them (:attr:`~aidi.scenarios.loader.ModelSpec.graph_from_onnx`), what the
    graph imports as (:func:`imported_graph`).  Raises :class:`UserError` as :func:`imported_graph` does."""
    if sc.model.graph_from_onnx:
        imp = imported_graph(sc)
        return tuple(imp.layers), tuple(imp.input_shape)
    return tuple(sc.model.layers), tuple(sc.model.input)


def load_model(sc: loader.Scenario):
    """(TrainedModel, QModel, Q15 held-out accuracy) of the scenario's [model] (trained once, then cached on disk and in memory).

    With ``[model] onnx``: (:class:`aidi.models.onnx_import.OnnxModel`, its QModel, NaN: no labelled data; its
    ``agreement`` with onnxruntime is the measure), cached in memory while the files are unchanged; the
    scenario's ``layers`` and ``input``, when given, must be what the graph imports as."""
    m = sc.model
    if m.onnx is not None:
        imported_graph(sc)  # a bad graph is named model.onnx; imported once for the geometry and the weights
        try:
            return _onnx_model(str(m.onnx), _stamp(m.onnx, m.sample_input, m.calibration),
                               None if m.graph_from_onnx else json.dumps(list(m.layers), sort_keys=True),
                               tuple(m.input),
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


def model_geometry(sc: loader.Scenario) -> tuple:
    """The executed layers (:class:`~aidi.models.layers.LayerGeom`, in order) of the scenario's ``[model]``, from
    its layer specs and input shape alone (:func:`graph_spec`: an ONNX graph's are read from the file): what a
    cost-only run, a check or a sweep needs.  Reads no weights and no data set and imports no torch; the source
    of the weights is checked by name only (:func:`check_weights_source`).  Raises :class:`UserError` naming the
    file for a layer that does not parse."""
    check_weights_source(sc)
    layers, shape = graph_spec(sc)
    try:
        return _geometry(json.dumps(list(layers), sort_keys=True), shape)
    except ValueError as exc:
        raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None


@functools.lru_cache(maxsize=64)
def _geometry(layers_json: str, input_shape: tuple) -> tuple:
    from aidi.models.schedule.plan import geoms_of

    return tuple(geoms_of(json.loads(layers_json), list(input_shape)))


def check_weights_source(sc: loader.Scenario) -> None:
    """What can be said of ``[model] weights = "trained:<dataset>"`` without reading it: the data set is one
    :data:`aidi.models.data.DATASETS` names, and ``digits`` has the model's input shape (the loader has checked
    that a weights file exists).  The rest (a file's architecture, a folder data set's files and shape) is read,
    and refused, where the weights are loaded (:func:`load_model`).  Raises :class:`UserError` naming the file."""
    from aidi.models.data import DATASETS, DIGITS_SHAPE

    w = sc.model.weights
    if getattr(sc.model, "onnx", None) is not None or sc.model.file is not None or not w.startswith("trained:"):
        return
    name = w.split(":", 1)[1]
    if name not in DATASETS:
        raise UserError(f"{sc.path.name}: model.weights: unknown dataset {name!r} (one of {', '.join(DATASETS)})")
    if name == "digits" and tuple(sc.model.input) != DIGITS_SHAPE:
        raise UserError(f"{sc.path.name}: model.weights: dataset 'digits' has input shape {list(DIGITS_SHAPE)}, "
                        f"model.input is {list(sc.model.input)}")


@dataclass
class Built:
    """Everything a run needs, derived from one scenario.

    The plan, task graph and Workload come from the layers' shapes (:func:`model_geometry`); the weights
    (``trained``, ``qmodel``, ``x_q``, ``q15_accuracy``) are loaded on first use (:func:`load_model`: torch
    and the data set), so a run that only counts cost (``aidi run --engine oracle``, ``--no-functional``,
    ``aidi check``, sweeps) never loads them.  ``model_loaded`` says whether they were.
    """

    scenario: loader.Scenario
    platform: Platform
    plan: object
    graph: TaskGraph
    work: Workload
    segments: Segments
    _weights: tuple | None = field(default=None, repr=False)

    @property
    def model_loaded(self) -> bool:
        return self._weights is not None

    def _loaded(self) -> tuple:
        """(TrainedModel, QModel, Q15 held-out accuracy, int16 input sample), loaded once."""
        if self._weights is None:
            trained, qm, acc = load_model(self.scenario)
            if [ql.geom for ql in qm.layers] != list(self.plan.geoms):  # the plan was made from the specs' shapes
                raise ValueError(f"{self.scenario.path.name}: the loaded model's layers differ from the shapes "
                                 f"planned from [model] layers")
            self._weights = (trained, qm, acc, qm.quantize_input(trained.dataset.x_test[:1])[0])
        return self._weights

    @property
    def trained(self):
        return self._loaded()[0]

    @property
    def qmodel(self):
        return self._loaded()[1]

    @property
    def q15_accuracy(self) -> float:
        return self._loaded()[2]

    @property
    def x_q(self) -> np.ndarray:
        return self._loaded()[3]

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


def build(sc: loader.Scenario, plans=None, store=None) -> Built:
    """Execution designs, plan and task graph for a scenario (:func:`aidi.models.hardware.compose`) from its layers'
    shapes; the model's weights load when first used (:class:`Built`).

    ``plans``: a :class:`aidi.models.hardware.PlanCache` shared by runs whose
    designs agree (a sweep), or None.  ``store``: a :class:`aidi.models.design_cache.DesignStore` keeping the
    optimizer's designs between runs (``aidi run``, ``check`` and ``emit-c`` pass the one in aidi's cache),
    or None.
    """
    from aidi.models import hardware

    geoms = model_geometry(sc)
    segments = sc.harvester.segments()
    try:
        hw = hardware.compose(sc, list(geoms), segments=segments, cache=plans, store=store)
    except ValueError as exc:
        raise UserError(f"{sc.path.name}: {str(exc).splitlines()[0]}") from None
    return Built(sc, hw.platform, hw.plan, hw.graph, hw.work, hw.segments)


def run_record(built: Built, engine: str = "des", functional: bool = False, log: bool = False):
    """Run the SimPy model (``des``) or the oracle; returns (the engine's typed
    :class:`~aidi.sim.workload.RunRecord`, event log or None)."""
    sc = built.scenario
    if engine == "oracle":
        from aidi.sim import oracle

        return oracle.run(built.work, sc.power, built.segments, sc.sim), None
    from aidi.sim import des  # SimPy: imported by the runs that use it

    fn = built.functional() if functional else None
    return des.run(built.work, sc.power, built.segments, sc.sim, functional=fn, log=log)


def run_json(built: Built, rec) -> dict:
    """The ``aidi run --json`` object of a run of ``built``: the record's :meth:`~aidi.sim.workload.RunRecord.as_json`
    and the run's context (scenario, designs, SRAM; ``float_accuracy`` / ``q15_accuracy``, held-out fractions,
    when the run loaded the weights, as a functional run or an earlier use of them does)."""
    sc = built.scenario
    res = rec.as_json()
    res["scenario"] = sc.name
    if built.model_loaded:
        res["float_accuracy"] = built.trained.float_accuracy
        res["q15_accuracy"] = built.q15_accuracy
        if getattr(built.trained, "agreement", None) is not None:  # an imported ONNX model
            res["onnx_agreement"] = built.trained.agreement
    res["designs"] = {built.graph.layer_names[i]: built.design_summary(i) for i in range(len(built.plan.layers))}
    res["sram_max_bytes"] = built.graph.max_sram_bytes()
    return res


def simulate(built: Built, engine: str = "des", functional: bool = False, log: bool = False):
    """:func:`run_record`, its record as the ``aidi run --json`` object (:func:`run_json`); returns (result dict,
    event log or None)."""
    rec, events = run_record(built, engine, functional, log)
    return run_json(built, rec), events
