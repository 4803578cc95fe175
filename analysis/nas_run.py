"""``aidi nas``: accelerated intermittent NAS end to end, and the comparison with two baselines.

One search (:func:`run_nas`):

1. the data set (digits bundled; CIFAR-10 / Tiny ImageNet from ``--data-dir``)
   split into train / validation (search) / test (report);
2. the supernet of the data set's search space, trained once with progressive
   shrinking and KD (cached under the user cache dir);
3. a controller (random, evolution, rl) proposes candidates; each is tiled
   with per-layer automatic execution designs for the scenario's per-cycle
   energy budget and simulated with the fast oracle under the scenario's
   harvester (parallel on local processes or Dask), its accuracy read off the
   supernet;
4. the Pareto front (validation accuracy vs intermittent latency) of the
   feasible candidates; its members are fine-tuned (KD from the supernet's
   teacher), saved (``models.net.save_model``) with a scenario TOML
   (``[model] file``, layers, and the chosen designs in ``[execution]``), and
   re-simulated with the SimPy model to confirm feasibility;
5. the chosen model: the best fine-tuned validation accuracy among the
   confirmed candidates, written as ``OUT/model.pt`` + ``OUT/scenario.toml``
   (``aidi run OUT/scenario.toml`` and ``aidi emit-c OUT/scenario.toml`` load it).

``--compare`` (:func:`run_compare`) runs, for three latency requirements and
under one wall-clock search budget per method and requirement (supernet
training included in ours), ours (weight sharing + the chosen controller;
the front's finalists trained from scratch, the fastest within one standard
error of the best validation accuracy taken), an iNAS-style search as iNAS describes it (its LSTM controller and
reward, :mod:`aidi.models.nas.baselines`; latency and designs from iNAS's cost
model and explorer, :mod:`aidi.analysis.inas`; children trained from scratch;
the winner deployed with its iNAS designs) and an HW-NAS-style search (latency
and designs for continuous power; the winner deployed under the harvester with
our optimizer's designs).  Every winner is judged by our simulator.
"""

from __future__ import annotations

import json
import math
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np

from . import jsonout, outdir
from .errors import UserError
from .parallel import executor

DATASETS = ("digits", "cifar10", "tinyimagenet", "fashion-mnist", "mnist")
#: requirements of --compare: geometric points between the fastest and the slowest member of the space
COMPARE_FRACTIONS = (0.25, 0.5, 0.75)
BATCH = 4  # candidates per ask/tell round (fixed, so results do not depend on the worker count)
MAX_FINALISTS = 5
#: --compare: epochs ours' and HW-NAS-style's finalists train from scratch (normal, --quick): iNAS's child
#: epochs (:data:`aidi.models.nas.baselines.INAS_EPOCHS`), and --quick's fine-tuning epochs
#: (:meth:`aidi.models.nas.supernet.SupernetConfig.quick`)
COMPARE_FINAL_EPOCHS = {False: 25, True: 2}


# --------------------------------------------------------------------------- parallel maps
@contextmanager
def parallel_map(workers: int = 1, dask: str | None = None):
    """Yield ``map_fn(fn, list_of_arg_tuples) -> list`` on local processes or Dask, or None (serial)."""
    with executor(workers, dask) as pool:
        yield None if pool is None else pool.map


# --------------------------------------------------------------------------- inputs
# The search's options (controller, budget, dataset, workers, seed, requirement) are checked by the callers,
# the API and the command line alike, with :func:`aidi.analysis.api.nas_options`.

#: --quick on a folder data set: a subset drawn by the seed (a smoke run, not an experiment)
QUICK_SUBSET = {"max_train": 2048, "max_test": 512}


def load_data(dataset: str, data_dir: str | Path | None, seed: int, quick: bool = False,
              train_images: int | None = None, space: str = "inas"):
    """(search space, NasData) of a data set (``quick``: at most :data:`QUICK_SUBSET` images of a folder data set;
    ``train_images``: at most that many training images (then split into train / validation) and half as many
    test images, drawn by the seed; ``space``: ``"inas"`` the data set's chain space, ``"mbconv"`` inverted-residual
    stages, :func:`aidi.models.nas.space.search_space`).  The data come from :func:`nas_data_spec` (loaded once
    per process, as training jobs on workers load them)."""
    from aidi.models.nas.space import search_space
    from aidi.models.data import DatasetError

    spec = nas_data_spec(dataset, data_dir, seed, quick, train_images)
    try:
        data = spec.load()
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    return search_space(space, dataset, data.input_shape, data.n_classes), data


def nas_data_spec(dataset: str, data_dir: str | Path | None, seed: int, quick: bool = False,
                  train_images: int | None = None, option: str = "--train-images"):
    """The :class:`aidi.models.nas.jobs.DataSpec` :func:`load_data` loads (options checked as it says;
    ``option`` names ``train_images`` in the error)."""
    from aidi.models.nas.jobs import data_spec

    if train_images is not None and (isinstance(train_images, bool) or train_images < 10):
        raise UserError(f"{option}: must be at least 10, got {train_images}")
    if train_images is not None and dataset in ("digits", "tinyimagenet"):
        raise UserError(f"{option}: only for cifar10, fashion-mnist and mnist, not {dataset}")
    kw = dict(QUICK_SUBSET) if quick and dataset not in ("tinyimagenet", "digits") else {}
    if train_images is not None:
        kw = {"max_train": int(train_images), "max_test": max(1, int(train_images) // 2)}
    return data_spec(dataset, data_dir, seed, **kw)


def check_device(device: str) -> str:
    """``device`` if :func:`aidi.models.nas.supernet.resolve_device` accepts it, else a one-line UserError."""
    from aidi.models.nas.supernet import resolve_device

    try:
        resolve_device(device)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return device


def supernet_config(quick: bool, space=None):
    """The supernet settings of ``space`` (None: the chain space's), :func:`aidi.models.nas.mbconv_supernet.config_for_space`."""
    from aidi.models.nas import SupernetConfig
    from aidi.models.nas.mbconv_supernet import config_for_space

    return config_for_space(space, quick) if space is not None else SupernetConfig.quick() if quick else SupernetConfig()


# --------------------------------------------------------------------------- scenario TOML
def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"cannot write {f} to TOML")
        return repr(f)
    if isinstance(v, (str, Path)):
        return json.dumps(str(v))
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items() if x is not None) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise ValueError(f"cannot write {type(v).__name__} to TOML")


def dumps_toml(doc: dict) -> str:
    """The subset of TOML scenarios use: top-level scalars, then one table per section."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    for sec, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"\n[{sec}]")
            for k, v in table.items():
                if v is None:
                    continue
                if k == "layers" and isinstance(v, list):
                    lines.append(f"{k} = [")
                    lines += [f"  {_toml_value(x)}," for x in v]
                    lines.append("]")
                else:
                    lines.append(f"{k} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"


def scenario_doc(sc, arch, designs: list[dict], model_file: str | None, seed: int,
                 requirement_s: float | None, data_dir: str | Path | None = None) -> dict:
    """The scenario's document with [model] = the candidate and [execution] = its explicit designs."""
    raw = json.loads(json.dumps(sc.raw, default=str))
    if sc.harvester.file is not None:  # relative paths resolved against the original folder
        raw.setdefault("harvester", {})["file"] = str(Path(sc.harvester.file).resolve())
    raw["name"] = f"{sc.name}-nas"
    raw["description"] = f"aidi nas: {arch.describe()} (arch {arch.id}) searched under {sc.name}"
    model = {"input": list(arch.input_shape), "seed": int(seed), "layers": arch.to_layers()}
    if model_file is not None:
        model["file"] = model_file
    if data_dir is not None:  # the folder data set the weights were trained on (their test accuracy needs it)
        model["data_dir"] = str(Path(data_dir).resolve())
    else:
        model["weights"] = "random"
    raw["model"] = model
    raw["execution"] = {
        "tile": [[d["Tr"], d["Tc"], d["Tm"], d["Tn"]] for d in designs],
        "loop_order": [d["loop_order"] for d in designs],
        "hyper_tile": [d["S"] for d in designs],
        "preservation": sc.execution.preservation,
        "backend": sc.execution.backend,
    }
    if requirement_s is not None:
        raw.setdefault("sim", {})["deadline_s"] = float(requirement_s)
    order = ["name", "description", "device", "power", "harvester", "model", "execution", "sim"]
    return {k: raw[k] for k in order if k in raw} | {k: v for k, v in raw.items() if k not in order}


def write_candidate(out_dir: Path, stem: str, sc, arch, designs, module, data, seed: int,
                    requirement_s: float | None, data_dir: str | Path | None = None) -> Path:
    """Save weights (``stem.pt``) and a scenario (``stem.toml``) that loads them; returns the TOML path."""
    from aidi.models import net as mnet
    from aidi.models.layers import parse_network

    out_dir.mkdir(parents=True, exist_ok=True)
    trained = mnet.TrainedModel(parse_network(arch.to_layers(), arch.input_shape), module, data.as_dataset(), seed,
                                0, "nas", float("nan"))
    mnet.save_model(trained, out_dir / f"{stem}.pt")
    path = out_dir / f"{stem}.toml"
    path.write_text(dumps_toml(scenario_doc(sc, arch, designs, f"{stem}.pt", seed, requirement_s, data_dir)))
    return path


#: test images the Q15 accuracy of a confirmed candidate is computed on (the float accuracy uses all of them)
Q15_TEST_IMAGES = 500


def confirm(toml_path: Path, oracle_latency: float | None, module, data) -> dict:
    """Re-simulate a written candidate with the SimPy model under its scenario file's designs (feasibility as
    a user would see it; a run that cannot progress is not completed, ``des_note`` says why); its float
    accuracy on the run's test split and its Q15 accuracy on the first :data:`Q15_TEST_IMAGES` of it
    (``module`` = the saved weights; the file's data set is not reloaded: a folder data set's full test
    split takes minutes in Q15)."""
    from aidi.models import hardware, q15
    from aidi.models import net as mnet
    from aidi.models.layers import parse_network
    from aidi.models.nas.supernet import module_accuracy
    from aidi.sim import des
    from aidi.sim.dispatch import NonProgressError

    from . import pipeline

    sc = pipeline.load_scenario(toml_path)
    trained = mnet.TrainedModel(parse_network(list(sc.model.layers), sc.model.input), module, data.as_dataset(),
                                sc.model.seed, 0, str(toml_path), float("nan"))
    qm = q15.quantize(trained)
    try:
        hw = hardware.compose(sc, qm)
    except ValueError as exc:
        raise UserError(f"{toml_path.name}: {str(exc).splitlines()[0]}") from None
    note = None
    try:
        res, _ = des.simulate(hw.work, sc.power, hw.segments, sc.sim)
    except NonProgressError as exc:  # e.g. a baseline's pinned designs: a unit that can never start
        res, note = {"completed": False, "latency_s": None, "power_cycles": None}, str(exc).splitlines()[0]
    req = sc.sim.deadline_s
    lat = res["latency_s"]
    return {"scenario": str(toml_path), "des_completed": bool(res["completed"]), "des_latency_s": lat,
            "des_power_cycles": res["power_cycles"], "des_note": note,
            "des_meets_requirement": bool(res["completed"] and (req is None or lat <= req)),
            "des_matches_oracle": bool(oracle_latency is not None and lat is not None
                                       and abs(lat - oracle_latency) <= 1e-9 * max(1.0, abs(lat))),
            "float_test_accuracy": float(module_accuracy(module, data.x_test, data.y_test)),
            "q15_test_accuracy": float(q15.q15_accuracy(qm, data.x_test[:Q15_TEST_IMAGES],
                                                         data.y_test[:Q15_TEST_IMAGES])),
            "q15_test_images": int(min(Q15_TEST_IMAGES, len(data.y_test))),
            "sram_max_bytes": hw.graph.max_sram_bytes()}


# --------------------------------------------------------------------------- one search
def _finalists(front: list[dict], k: int) -> list[dict]:
    if len(front) <= k:
        return list(front)
    idx = sorted({int(round(i)) for i in np.linspace(0, len(front) - 1, k)})
    return [front[i] for i in idx]


def _summary_row(o: dict) -> dict:
    return {"arch_id": o["arch_id"], "arch": o["describe"], "accuracy": o["accuracy"], "latency_s": o["latency_s"],
            "continuous_latency_s": o["continuous_latency_s"], "sram_bytes": o["sram_bytes"],
            "power_cycles": o["power_cycles"], "feasible": o["feasible"], "reasons": o["reasons"]}


def run_nas(scenario: str | Path, controller: str = "evolution", budget: int = 48, seed: int = 0,
            requirement_s: float | None = None, workers: int = 1, dask: str | None = None,
            dataset: str = "digits", data_dir: str | Path | None = None, out: str | Path | None = None,
            quick: bool = False, progress: Callable[[int, int], None] | None = None,
            log: Callable[[str], None] | None = None, force: bool = False, formats=("html",),
            train_progress: Callable[[int, int], None] | None = None, train_images: int | None = None,
            space: str = "inas", device: str = "cpu") -> dict:
    """One search; returns a JSON-ready summary and writes OUT (see the module docstring);
    ``formats``: the Pareto figure's files (:data:`aidi.analysis.figures.FORMATS`); ``progress(done, budget)``
    follows the search (called with 0 first), ``train_progress(batches, total)`` the supernet's training.
    ``space="mbconv"``: inverted-residual stages (:mod:`aidi.models.nas.mbconv`) with their Once-for-All
    supernet (:mod:`aidi.models.nas.mbconv_supernet`), searched and fine-tuned as the chain space is.
    Training (the supernet, finalists) runs on ``device`` (:func:`aidi.models.nas.supernet.resolve_device`);
    finalists as :mod:`aidi.models.nas.jobs` on ``workers``/``dask``, seeds in the job, so results do not
    depend on them.

    OUT (default ``out/nas/<scenario>``) must be new, empty or made by aidi, unless ``force``
    (:func:`aidi.analysis.outdir.prepare`, checked before any work starts)."""
    from aidi.models.hardware import HardwareEvaluator
    from aidi.models.nas import Evaluator, SupernetAccuracy, extract, make_controller, pareto_front, run_search, teacher_of
    from aidi.models.nas.jobs import FinetuneJob, run_jobs
    from aidi.models.nas.mbconv_supernet import train_for_space
    from aidi.models.nas.space import arch_from_dict
    from aidi.models.nas.supernet import calibration_images

    from . import pipeline

    check_device(device)
    log = log or (lambda s: None)
    sc = pipeline.load_scenario(scenario)
    req = requirement_s if requirement_s is not None else sc.sim.deadline_s
    out_dir = outdir.prepare(Path(out) if out is not None else Path("out") / "nas" / sc.name, force)
    space_kind = space
    space, data = load_data(dataset, data_dir, seed, quick, train_images, space_kind)
    spec = nas_data_spec(dataset, data_dir, seed, quick, train_images)
    cfg = supernet_config(quick, space)
    t0 = time.perf_counter()
    with parallel_map(workers, dask) as map_fn:
        sn = train_for_space(space, data, seed, cfg, log=log, progress=train_progress, device=device)
        accuracy = SupernetAccuracy(sn, data)
        log(f"supernet ready ({'cache' if sn.meta.get('cached') else f'trained in {time.perf_counter() - t0:.1f} s'})")
        sn_s = time.perf_counter() - t0
        ev = Evaluator(HardwareEvaluator(sc), accuracy, req, map_fn=map_fn)
        if progress:
            progress(0, budget)  # the total up front: the time left is estimated from the first batch on
        res = run_search(make_controller(controller, space, seed, budget), ev, budget, BATCH, progress)
        front = pareto_front(res.history)
        xc = calibration_images(data)
        teacher = teacher_of(sn, xc)[0]
        t1 = time.perf_counter()
        picked = [(o, arch_from_dict(o["arch"])) for o in _finalists(front, MAX_FINALISTS)]
        trained = run_jobs([FinetuneJob(extract(sn, a, xc), spec, seed, teacher, cfg.ft_epochs, cfg.alpha,
                                        cfg.temperature, cfg.ft_lr, device) for _, a in picked], map_fn)
    log(f"search: {res.evaluations} evaluations in {res.wall_s:.1f} s, {len(res.feasible())} feasible, "
        f"front of {len(front)}")
    finals = []
    for (o, arch), job in zip(picked, trained):
        m = job["module"]
        row = _summary_row(o)
        row["finetuned_val_accuracy"] = job["val_accuracy"]
        path = write_candidate(out_dir / "candidates", arch.id, sc, arch, o["designs"], m, data, seed, req, data_dir)
        row.update(confirm(path, o["latency_s"], m, data))
        row["designs"] = o["designs"]
        finals.append((row, arch, m))
    finalize_s = time.perf_counter() - t1
    ok = [f for f in finals if f[0]["des_meets_requirement"]]
    chosen = None
    if ok:
        row, arch, m = max(ok, key=lambda f: (f[0]["finetuned_val_accuracy"], -f[0]["latency_s"]))
        path = write_candidate(out_dir, "model", sc, arch, row["designs"], m, data, seed, req, data_dir)
        (out_dir / "scenario.toml").write_text((out_dir / "model.toml").read_text())
        (out_dir / "model.toml").unlink()
        chosen = {**{k: v for k, v in row.items() if k != "scenario"}, "scenario": str(out_dir / "scenario.toml"),
                  "weights": str(out_dir / "model.pt"), "layers": arch.to_layers()}
    summary = {
        "scenario": sc.name, "dataset": dataset, "search_space": space.name, "space_size": space.size(),
        "controller": controller, "budget": budget, "seed": seed, "requirement_s": req,
        "workers": workers, "dask": dask,
        "supernet": {"seconds": sn_s, "cached": bool(sn.meta.get("cached")),
                     "seconds_when_built": sn.meta.get("train_seconds_when_built"), "history": sn.meta.get("history")},
        "search": {"wall_s": res.wall_s, "evaluations": res.evaluations, "evals_per_s": res.evals_per_s,
                   "unique": len({o["arch_id"] for o in res.history}), "feasible": len(res.feasible()),
                   "cache_hits": ev.cache.hits, "accuracy_seconds": ev.accuracy_seconds,
                   "accuracy_source": accuracy.key},
        "pareto": [_summary_row(o) for o in front],
        "finalists": [f[0] for f in finals],
        "finalize_s": finalize_s,
        "chosen": chosen,
        "out": str(out_dir),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    hist = pd.DataFrame([{**_summary_row(o), "step": o["step"], "reward": o["reward"],
                          "reasons": "; ".join(o["reasons"])} for o in res.history])
    hist.to_csv(out_dir / "history.csv", index=False)
    from .figures import FigureWriter

    with FigureWriter(out_dir, formats) as fw:  # pareto.html (+ .svg/.pdf/.png), plotly.js once in out_dir
        fw.figure(pareto_figure(res.history, front, req, f"{sc.name}: {controller} search, {budget} evaluations"),
                  out_dir / "pareto")
    (out_dir / "result.json").write_text(jsonout.dumps(summary, indent=1))
    return summary


def _json_default(o):
    if isinstance(o, np.integer):
        return int(o)
    if isinstance(o, np.floating):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def pareto_figure(history: list[dict], front: list[dict], requirement_s: float | None, title: str):
    import plotly.graph_objects as go

    fig = go.Figure()
    feas = [o for o in history if o["feasible"]]
    infeas = [o for o in history if not o["feasible"] and o["latency_s"] is not None]
    for pts, name, sym in ((infeas, "infeasible", "x"), (feas, "feasible", "circle")):
        fig.add_trace(go.Scatter(x=[o["latency_s"] for o in pts], y=[o["accuracy"] for o in pts], mode="markers",
                                 name=name, marker={"symbol": sym, "size": 7, "opacity": 0.6},
                                 text=[f"{o['describe']}<br>{'; '.join(o['reasons'])}" for o in pts]))
    fig.add_trace(go.Scatter(x=[o["latency_s"] for o in front], y=[o["accuracy"] for o in front],
                             mode="lines+markers", name="Pareto front", line={"shape": "hv"},
                             text=[o["describe"] for o in front]))
    from .figures import vline

    fig.update_xaxes(type="log")
    if requirement_s is not None:  # its label at log10(x): plotly's own annotation_text would stretch the axis
        vline(fig, requirement_s, f"requirement {requirement_s:.3g} s", log_x=True)
    fig.update_layout(title=title, xaxis_title="intermittent latency (s)",
                      yaxis_title="validation accuracy (supernet)", template="plotly_white")
    return fig


def nas_compare_figure(rows, requirements_s: list[float], scenario: str):
    """Held-out accuracy against intermittent latency of each method's pick (``rows``: a DataFrame with one
    row per method and requirement: ``method``, ``latency_s``, ``test_accuracy``, ``arch``), requirements
    as dotted lines; a plotly Figure (drawn by :func:`run_compare` and by the demo)."""
    import plotly.graph_objects as go

    from .figures import vline

    fig = go.Figure()
    for method, grp in rows.groupby("method"):
        fig.add_trace(go.Scatter(x=grp["latency_s"], y=grp["test_accuracy"], mode="markers", name=method,
                                 marker=dict(size=11), text=grp["arch"]))
    for i, r in enumerate(requirements_s):
        vline(fig, r, f"requirement {r:.3g} s", dash="dot", label_y=1.0 - 0.07 * i)
    fig.update_layout(title="NAS: accuracy vs intermittent latency (dotted: the latency requirements)",
                      xaxis_title=f"intermittent latency under {scenario} (s)", yaxis_title="held-out accuracy (Q15)",
                      template="plotly_white")
    return fig


# --------------------------------------------------------------------------- the iNAS-style hardware view
def inas_supply(sc):
    """iNAS's supply model (:class:`aidi.analysis.inas.Supply`) of scenario ``sc``.

    iNAS models a lab supply V_sup behind R_ehm charging the capacitor, its margin (0.55) and its
    2048 B SRAM.  A ``thevenin`` harvester is exactly that.  Any other source becomes its Thevenin
    equivalent: V_sup = ``power.v_max`` (at least 1 % above V_on) and R such that it delivers the
    source's typical power between V_off and V_on (after the converter) at their midpoint,
    ``R = (V_sup - V_mid) V_mid / P``; iNAS's model has no leakage and no converter.
    """
    from .inas import INAS_MARGIN, INAS_SRAM_BYTES, Supply

    p, h = sc.power, sc.harvester
    if h.kind == "thevenin":
        v_sup, r = float(h.v_source), float(h.r_ohm)
    else:
        v_sup = max(float(p.v_max), 1.01 * p.v_on)
        watts = h.segments().typical_power(p.v_off, p.v_on) * p.converter_efficiency
        if not watts > 0:
            raise UserError(f"{sc.path.name}: the harvester gives no power between v_off and v_on; "
                            "iNAS's supply model needs some")
        v_mid = 0.5 * (p.v_on + p.v_off)
        r = (v_sup - v_mid) * v_mid / watts
    return Supply(p.capacitor_F, r, p.v_on, p.v_off, v_sup, INAS_MARGIN, min(INAS_SRAM_BYTES,
                                                                             sc.device.sram_budget_bytes))


def inas_layers(geoms) -> list:
    """iNAS's layer (:class:`aidi.analysis.inas.InasLayer`) of each executed layer, or None where its
    model has none (dwconv, maxpool).  A conv with padding is costed on its padded input."""
    from .inas import InasLayer

    out = []
    for g in geoms:
        (cin, _, _), (cout, oh, ow) = g.in_shape, g.out_shape
        if g.op == "conv":
            out.append(InasLayer(N=cin, H=oh, W=ow, M=cout, K=g.kh, s=g.stride))
        elif g.op == "fc":
            out.append(InasLayer(N=cin, H=1, W=1, M=cout, K=1, kind="fc"))
        elif g.op == "avgpool" and oh == 1 and ow == 1:
            out.append(InasLayer(N=cin, H=g.in_shape[1], W=g.in_shape[2], M=cin, K=g.in_shape[1], kind="gap"))
        else:
            out.append(None)
    return out


class InasHardware:
    """``hardware(arch) -> dict``: iNAS's cost model and explorer (:func:`aidi.analysis.inas.explore_network`)
    on a candidate under iNAS's view of scenario ``sc`` (:func:`inas_supply`) and iNAS's device profile
    (:data:`aidi.sim.platform.MSP430FR5994_EXTFRAM`: its micro-benchmark fits, which only that profile has;
    the scenario's own device runs the deployed model).

    Returns ``latency_s`` (iNAS's estimate over the layers its model has), ``inas_power_cycles``,
    ``designs`` (per executed layer: iNAS's chosen design as a dict for conv and fc layers, None for
    the layers our optimizer designs at deployment: the GAP, whose iNAS design tiles the input map
    while ours tiles the channels, and layers iNAS's model lacks), ``hw_feasible``, ``reasons``,
    ``explore_wall_s``, ``hw_seconds``.
    """

    def __init__(self, sc, energy_constants_as_latency: bool = False):
        from aidi.sim.platform import MSP430FR5994_EXTFRAM

        self.sc = sc
        self.platform = MSP430FR5994_EXTFRAM
        self.supply = inas_supply(sc)
        self.energy_constants_as_latency = energy_constants_as_latency
        self.key = f"inas:{sc.digest()}:{int(energy_constants_as_latency)}"
        self.deadline_s = sc.sim.deadline_s

    def __call__(self, arch) -> dict:
        from aidi.models.schedule.plan import geoms_of

        from .inas import explore_network

        t0 = time.perf_counter()
        geoms = geoms_of(arch.to_layers(), arch.input_shape)
        mine = inas_layers(geoms)
        covered = [ly for ly in mine if ly is not None]
        res = explore_network(covered, self.supply, self.platform, self.energy_constants_as_latency)
        per = iter(res["layers"])
        designs, reasons = [], []
        for g, ly in zip(geoms, mine):
            r = next(per) if ly is not None else None
            if r is not None and r["design"] is None:
                reasons.append(f"iNAS's explorer finds no feasible design for {g.describe()}")
            keep = r is not None and r["design"] is not None and ly.kind != "gap"
            designs.append(r["design"].to_dict() if keep else None)
        lat = res["latency_s"]
        return {"latency_s": float(lat) if math.isfinite(lat) else None, "inas_latency_s":
                float(lat) if math.isfinite(lat) else None, "inas_power_cycles": float(res["power_cycles"]),
                "designs": designs, "hw_feasible": not reasons, "reasons": reasons,
                "explore_wall_s": res["explore_wall_s"], "hw_seconds": time.perf_counter() - t0}


def pinned_deployment(sc, arch, designs: list[dict | None]) -> dict:
    """Our oracle's objectives (:class:`aidi.models.hardware.HardwareEvaluator`) of ``arch`` under ``sc`` with
    ``designs`` pinned per executed layer (None: our optimizer designs that layer, with the others pinned)."""
    from aidi.models.hardware import HardwareEvaluator

    def pick(key):
        return [("auto" if d is None else ([d["Tr"], d["Tc"], d["Tm"], d["Tn"]] if key == "tile" else d[key]))
                for d in designs]

    pinned = sc.with_values(**{"execution.tile": pick("tile"), "execution.loop_order": pick("loop_order"),
                               "execution.hyper_tile": pick("S")})
    return HardwareEvaluator(pinned)(arch)


# --------------------------------------------------------------------------- comparison
def default_requirements(sc, space, requirement_s: float | None = None,
                         fractions: tuple[float, ...] = COMPARE_FRACTIONS) -> list[float]:
    """Requirements between the smallest and the largest member's intermittent latency (geometric; one per
    fraction of the way, three by default)."""
    from aidi.models.hardware import HardwareEvaluator

    hw = HardwareEvaluator(sc)
    lo = hw(space.smallest())["latency_s"]
    hi = hw(space.largest("conv"))["latency_s"]
    cap = requirement_s if requirement_s is not None else sc.sim.deadline_s
    if hi is None or (cap is not None and cap < hi):
        hi = cap
    if lo is None or hi is None or hi <= lo:
        raise UserError(f"{sc.path.name}: cannot derive latency requirements (smallest member: {lo} s, "
                        f"largest: {hi} s); give --requirement")
    return [float(lo * (hi / lo) ** f) for f in fractions]


def _deploy_and_confirm(tag: str, sc, arch, obj: dict, module, data, seed: int, req: float, out_dir: Path,
                        data_dir: str | Path | None = None) -> dict:
    """Write the winner with its designs, re-simulate it with the SimPy model; the row's deployment fields."""

    path = write_candidate(out_dir, tag, sc, arch, obj["designs"], module, data, seed, req, data_dir)
    c = confirm(path, obj["intermittent_latency_s"], module, data)
    lat = obj["intermittent_latency_s"]
    return {"arch": arch.describe(), "arch_id": arch.id, "arch_spec": arch.to_dict(), "layers": arch.to_layers(),
            "test_accuracy": c["float_test_accuracy"],
            "latency_s": lat, "continuous_latency_s": obj["continuous_latency_s"],
            "power_cycles": obj["power_cycles"], "designs": obj["designs"],
            "deploy_reasons": list(obj["reasons"]),
            "meets": bool(obj["hw_feasible"] and lat is not None and lat <= req and c["des_meets_requirement"]), **c}


INAS_REQUIREMENTS = ("calibrated", "as-is")


def inas_latency_scale(sc, space, inas_hw, hw_int) -> float:
    """How many times our oracle's latency iNAS's model estimates under ``sc``: the geometric mean of the
    ratio on the space's smallest and largest member (the two members the requirements come from)."""
    ratios = []
    for arch in (space.smallest(), space.largest("conv")):
        est, real = inas_hw(arch)["latency_s"], hw_int(arch)["latency_s"]
        if est is not None and real:
            ratios.append(est / real)
    if not ratios:
        raise UserError(f"{sc.path.name}: cannot calibrate iNAS's latency (neither the smallest nor the largest "
                        "member has a feasible design under both models); use the iNAS requirement as-is")
    return float(np.exp(np.mean(np.log(ratios))))


def _largest_epoch_s(sn) -> float:
    """Seconds per training epoch of the space's largest member, from the supernet's full phase (inf: unknown)."""
    h = (sn.meta.get("history") or {}).get("full") or {}
    return h["seconds"] / h["epochs"] if h.get("epochs") else math.inf


def compare_finalists(history: list[dict], k: int = MAX_FINALISTS) -> list[dict]:
    """Up to ``k`` members spread evenly along the Pareto front (supernet accuracy vs latency) of a search's
    ``history`` (feasible candidates: they meet the requirement), fastest first, both ends included: the
    supernet ranks, and a fast member it under-rates may train as well as a slow one."""
    from aidi.models.nas.controllers import pareto_front

    return _finalists(pareto_front(history), k)


def _no_winner(row: dict, note: str) -> dict:
    row.update({"arch": None, "test_accuracy": None, "latency_s": None, "meets": False, "note": note})
    return row


def run_compare(scenario: str | Path, controller: str = "evolution", budget: int = 24, seed: int = 0,
                requirement_s: float | None = None, workers: int = 1, dask: str | None = None,
                dataset: str = "digits", data_dir: str | Path | None = None, out: str | Path | None = None,
                quick: bool = False, requirements: list[float] | None = None,
                progress: Callable[[str, int, int], None] | None = None,
                log: Callable[[str], None] | None = None, force: bool = False,
                train_progress: Callable[[int, int], None] | None = None,
                search_budget_s: float | None = None, formats=("html",), train_images: int | None = None,
                inas_requirement: str = "calibrated", fractions: tuple[float, ...] = COMPARE_FRACTIONS,
                write_figure: bool = True, space: str = "inas", device: str = "cpu",
                views: tuple[str, ...] = ("equal-time",), final_epochs: int | None = None,
                final_seeds: tuple[int, ...] | None = None, truth_members: int | None = None,
                final_train_images: int | None = None, q15_images: int = 0) -> dict:
    """Ours vs iNAS-style vs HW-NAS-style at three requirements under one wall-clock search budget each.

    Per requirement (each method's ``search_s`` = everything up to its deployable model):

    * ours: the supernet's training (its build time, charged in full at every requirement, also when
      it is loaded from the cache), ``budget`` evaluations with ``controller`` (supernet accuracy, our
      optimizer's designs, our oracle's latency under the scenario), then up to :data:`MAX_FINALISTS`
      members spread along the search's front (:func:`compare_finalists`) trained from scratch for
      :data:`COMPARE_FINAL_EPOCHS` (the supernet ranks; its inherited weights, fine-tuned, tested 2-3
      points below a from-scratch training of the same member on digits), and the fastest whose
      validation accuracy is within one standard error of the best
      (:func:`aidi.models.nas.controllers.one_standard_error_pick`), refined by training the pick's faster
      one-decision neighbours the supernet rates best (:func:`aidi.models.nas.controllers.refine_pick`:
      up to REFINE_ROUNDS rounds of REFINE_K, stopping when the pick stays or, under a wall-clock limit, when
      a round would overrun it; they are in the row's
      "finalists" with ``refined`` > 0, their evaluations in ``refine_evaluations``);
    * iNAS-style: iNAS's LSTM controller and reward (:mod:`aidi.models.nas.baselines`) over iNAS's
      space (plain convolutions), iNAS's cost model and explorer on iNAS's view of the supply
      (:class:`InasHardware`) for latency and designs, children trained from scratch for the
      epochs the budget allows (:func:`~aidi.models.nas.baselines.scratch_epochs`); the most
      accurate child is deployed with its iNAS-chosen designs (:func:`pinned_deployment`).  With
      ``space="mbconv"`` it searches the same inverted-residual space as the others (and ours and
      HW-NAS-style read the MBConv supernet, :mod:`aidi.models.nas.mbconv_supernet`); iNAS's cost model
      has no depthwise conv or add, so its estimate covers the 1x1 convs, stem and head, and our
      optimizer designs the other layers at deployment;
    * HW-NAS-style: as ours but latency and designs for continuous power; the winner is deployed
      under the harvester with our optimizer's designs.

    ``inas_requirement``: "as-is" hands the iNAS-style search each requirement unchanged, judged by
    iNAS's estimate, which is many times our simulator's (README: iNAS's cost model), so it may find
    nothing; "calibrated" (default) multiplies it by :func:`inas_latency_scale`, as a user of iNAS would
    have to set the requirement in its model's units.  The deployed model is judged by the real one.

    The budget is ``search_budget_s`` (s) when given (ours and HW-NAS-style stop searching when
    the supernet, the search and the finalists' expected training would exceed it), else ours' measured
    ``search_s`` at that requirement.  No search starts a new round or trial once its budget is
    spent.  Every winner is re-simulated under the scenario by the SimPy model; a method *meets* a
    requirement when that run completes within it.  Writes OUT/compare.json and the accuracy vs
    latency figure (``formats``) OUT/compare.html; returns the JSON-ready summary.

    ``views`` (:data:`aidi.analysis.nas_protocol.VIEWS`): besides "equal-time" (always), "quality" and
    "truth" (:mod:`aidi.analysis.nas_protocol`) retrain every pick and a sample of ``truth_members``
    members (default :data:`~aidi.analysis.nas_protocol.TRUTH_MEMBERS`: 30, 6 with ``quick``) with one final recipe:
    ``final_epochs`` (default :data:`~aidi.analysis.nas_protocol.FINAL_EPOCHS`) from scratch on the
    whole training split (``final_train_images``: at most that many, drawn by the seed, and half as
    many test images; default all, or :data:`QUICK_SUBSET` with ``quick``), at each of ``final_seeds``
    (default :data:`~aidi.analysis.nas_protocol.FINAL_SEEDS`), Q15 accuracy on ``q15_images`` test
    images; summary["views"] and OUT/compare.txt, the figure OUT/compare-views.html.  Training
    (children, finalists, final recipe) runs as :mod:`aidi.models.nas.jobs` on ``workers``/``dask``,
    on ``device`` (:func:`aidi.models.nas.supernet.resolve_device`).
    """
    from aidi.models.hardware import HardwareEvaluator
    from aidi.models.nas import Evaluator, SupernetAccuracy, make_controller, run_search
    from aidi.models.nas.baselines import (InasController, inas_subspace, run_inas_search, scratch_epochs,
                                           scratch_trainer)
    from aidi.models.nas.controllers import REFINE_K, REFINE_ROUNDS, neighbours, refine_pick
    from aidi.models.nas.jobs import ScratchJob, run_jobs
    from aidi.models.nas.mbconv_supernet import train_for_space
    from aidi.models.nas.space import SPACE_KINDS, arch_from_dict

    from . import nas_protocol as proto
    from . import pipeline

    check_device(device)
    bad = [v for v in views if v not in proto.VIEWS]
    if bad:
        raise UserError(f"--views: expected some of {', '.join(proto.VIEWS)}, got {', '.join(bad)}")
    final_seeds = tuple(proto.FINAL_SEEDS if final_seeds is None else final_seeds)
    if not final_seeds or any(isinstance(x, bool) or int(x) != x or x < 0 for x in final_seeds):
        raise UserError(f"--final-seeds: one or more seeds >= 0, got {list(final_seeds)}")
    for name, v, least in (("--final-epochs", final_epochs, 1), ("--truth-members", truth_members, 2),
                           ("--q15-images", q15_images, 0)):
        if v is not None and (isinstance(v, bool) or int(v) != v or v < least):
            raise UserError(f"{name}: must be an integer >= {least}, got {v}")
    if inas_requirement not in INAS_REQUIREMENTS:
        raise UserError(f"--inas-requirement: expected one of {', '.join(INAS_REQUIREMENTS)}, got {inas_requirement!r}")
    if space not in SPACE_KINDS:
        raise UserError(f"--space: expected one of {', '.join(SPACE_KINDS)}, got {space!r}")
    if search_budget_s is not None and not (math.isfinite(search_budget_s) and search_budget_s > 0):
        raise UserError(f"--search-budget-s: must be a positive number of seconds, got {search_budget_s}")
    log = log or (lambda s: None)
    sc = pipeline.load_scenario(scenario)
    out_dir = outdir.prepare(Path(out) if out is not None else Path("out") / "nas" / f"{sc.name}-compare", force)
    space_kind = space
    space, data = load_data(dataset, data_dir, seed, quick, train_images, space_kind)
    spec = nas_data_spec(dataset, data_dir, seed, quick, train_images)
    final_spec = nas_data_spec(dataset, data_dir, seed, quick, final_train_images, "--final-train-images")
    # iNAS's own space is the chain of plain convolutions; on --space mbconv every method searches the same space
    i_space = space if space_kind == "mbconv" else inas_subspace(space)
    inas_hw = InasHardware(sc)
    cfg = supernet_config(quick, space)
    t0 = time.perf_counter()
    sn = train_for_space(space, data, seed, cfg, log=log, progress=train_progress, device=device)
    sn_s = time.perf_counter() - t0
    sn_charge = float(sn.meta.get("train_seconds_when_built") or sn_s) if sn.meta.get("cached") else sn_s
    epoch_s = _largest_epoch_s(sn)
    final_epochs_ours = COMPARE_FINAL_EPOCHS[bool(quick)]
    # every finalist trains from scratch, up to `workers` at a time
    ft_estimate = (final_epochs_ours * epoch_s * (math.ceil(MAX_FINALISTS / max(1, workers))
                                                  + REFINE_ROUNDS * math.ceil(REFINE_K / max(1, workers)))
                   if math.isfinite(epoch_s) else 0.0)
    reqs = requirements or default_requirements(sc, space, requirement_s, fractions)
    hw_int = HardwareEvaluator(sc)
    scale = inas_latency_scale(sc, i_space, inas_hw, hw_int) if inas_requirement == "calibrated" else 1.0
    rows = []

    def tick(tag):
        return (lambda d, t: progress(tag, d, t)) if progress else None

    def supernet_method(method: str, req: float, ri: int, limit: float | None, map_fn) -> dict:
        tag = f"{method}-r{ri}"
        t0_method = time.perf_counter()
        if progress:
            progress(tag, 0, budget)
        hw = hw_int if method == "ours" else HardwareEvaluator(sc, "continuous")
        ev = Evaluator(hw, SupernetAccuracy(sn, data), req, map_fn=map_fn)
        res = run_search(make_controller(controller, space, seed, budget), ev, budget, BATCH, tick(tag),
                         time_limit_s=limit)
        row = {"requirement_s": req, "method": method, "controller": controller, "supernet_s": sn_charge,
               "search_loop_s": res.wall_s, "evaluations": res.evaluations, "evals_per_s": res.evals_per_s,
               "feasible_found": len(res.feasible()), "final_train_s": 0.0, "epochs": final_epochs_ours}
        finalists = compare_finalists(res.history)
        if not finalists:
            row["search_s"] = sn_charge + res.wall_s
            return _no_winner(row, "no feasible candidate found")
        t1 = time.perf_counter()

        def train(objs: list[dict]) -> list[dict]:
            jobs = [ScratchJob(o["arch"], spec, seed, final_epochs_ours, device=device, keep_module=True)
                    for o in objs]
            return [{"obj": o, **j} for o, j in zip(objs, run_jobs(jobs, map_fn))]

        def near(obj: dict) -> list:  # the pick's one-decision neighbours (fewer MACs is no guide: under
            # intermittent power a larger kernel can run faster, e.g. conv1x4 -> conv5x4 at 42.3 -> 33.8 s)
            return neighbours(space, arch_from_dict(obj["arch"]))

        def faster(obj: dict) -> list[dict]:  # ... evaluated by this method's evaluator
            return ev.evaluate_many(near(obj))

        def may_start(obj: dict) -> bool:  # a refinement round fits in the method's budget (none: always)
            if limit is None:
                return True
            round_s = (len(near(obj)) / max(res.evals_per_s, 1e-9)
                       + final_epochs_ours * epoch_s * math.ceil(REFINE_K / max(1, workers)))
            return time.perf_counter() - t0_method + round_s <= limit + ft_estimate

        i, pool = refine_pick(train(finalists), len(data.y_val), faster, train, may_start=may_start)
        row["final_train_s"] = time.perf_counter() - t1
        best, module = pool[i]["obj"], pool[i]["module"]
        arch = arch_from_dict(best["arch"])
        row["finalists"] = [{"arch": e["obj"]["describe"], "supernet_accuracy": e["obj"]["accuracy"],
                             "latency_s": e["obj"]["latency_s"], "val_accuracy": e["val_accuracy"],
                             "refined": e.get("refined", 0)} for e in pool]
        row["refine_evaluations"] = ev.evaluations - res.evaluations
        row["epochs"] = final_epochs_ours
        row["val_accuracy"] = pool[i]["val_accuracy"]
        row["search_s"] = sn_charge + res.wall_s + row["final_train_s"]
        obj = best if method == "ours" else hw_int(arch)  # HW-NAS: deployed with our intermittent designs
        row.update(_deploy_and_confirm(tag, sc, arch, obj, module, data, seed, req, out_dir, data_dir))
        row["search_accuracy"] = best["accuracy"]
        row["search_latency_s"] = best["latency_s"]
        return row

    def inas_method(req: float, ri: int, budget_s: float, map_fn) -> dict:
        tag = f"inas-r{ri}"
        epochs = scratch_epochs(budget_s, epoch_s)
        s = run_inas_search(InasController(i_space, seed), inas_hw,
                            scratch_trainer(data, seed, epochs, map_fn=map_fn, spec=spec, device=device),
                            req * scale, budget_s, progress=tick(tag))
        res = s.result
        row = {"requirement_s": req, "method": "inas", "controller": "inas-rl", "supernet_s": 0.0,
               "search_loop_s": res.wall_s, "search_s": res.wall_s, "evaluations": res.evaluations,
               "evals_per_s": res.evals_per_s, "feasible_found": s.trained, "trained": s.trained,
               "child_train_s": s.train_s, "final_train_s": 0.0, "epochs": epochs,
               "inas_requirement_s": req * scale,
               "moving_accuracy": res.history[-1]["moving_accuracy"] if res.history else None}
        if s.best is None:
            return _no_winner(row, f"no child met the requirement by iNAS's estimate ({req * scale:.4g} s)")
        arch = arch_from_dict(s.best["arch"])
        obj = pinned_deployment(sc, arch, s.best["designs"])
        row.update(_deploy_and_confirm(tag, sc, arch, obj, s.best_module, data, seed, req, out_dir, data_dir))
        row.update(search_accuracy=s.best["accuracy"], search_latency_s=s.best["latency_s"],
                   inas_designs=[None if d is None else _design_text(d) for d in s.best["designs"]])
        return row

    with parallel_map(workers, dask) as map_fn:
        for ri, req in enumerate(reqs):
            limit = None if search_budget_s is None else max(0.0, search_budget_s - sn_charge - ft_estimate)
            ours = supernet_method("ours", req, ri, limit, map_fn)
            b = float(search_budget_s if search_budget_s is not None else ours["search_s"])
            inas = inas_method(req, ri, b, map_fn)
            hwnas = supernet_method("hwnas", req, ri, max(0.0, b - sn_charge - ft_estimate), map_fn)
            for row in (ours, inas, hwnas):
                row["budget_s"] = b
                rows.append(row)
                acc = row.get("test_accuracy")
                log(f"{row['method']}-r{ri}: {row.get('arch')}, test accuracy "
                    f"{'-' if acc is None else format(acc, '.3f')}, {row['search_s']:.0f} s of {b:.0f} s, "
                    f"{'meets' if row['meets'] else 'misses'} the requirement {req:.3g} s")
        extra = {}
        if set(views) - {"equal-time"}:
            recipe = proto.FinalRecipe(final_spec, int(final_epochs or proto.FINAL_EPOCHS[bool(quick)]), final_seeds,
                                       device, int(q15_images))
            extra = proto.run_views(sc, space, rows, reqs, recipe, views,
                                    int(truth_members or proto.TRUTH_MEMBERS[bool(quick)]), seed, map_fn, log)
    table = []
    for req in reqs:
        line = {"requirement_s": req}
        for r in rows:
            if r["requirement_s"] == req:
                line[r["method"]] = {"accuracy": r["test_accuracy"] if r["meets"] else None, "arch": r.get("arch"),
                                     "test_accuracy": r.get("test_accuracy"), "latency_s": r.get("latency_s"),
                                     "power_cycles": r.get("des_power_cycles"), "search_s": r["search_s"],
                                     "budget_s": r["budget_s"], "meets": r["meets"]}
        table.append(line)
    summary = {"scenario": sc.name, "dataset": dataset, "controller": controller, "budget": budget, "seed": seed,
               "quick": quick, "requirements_s": reqs, "search_budget_s": search_budget_s,
               "supernet_s": sn_s, "supernet_cached": bool(sn.meta.get("cached")),
               "supernet_s_when_built": sn.meta.get("train_seconds_when_built"), "supernet_charged_s": sn_charge,
               "largest_epoch_s": epoch_s if math.isfinite(epoch_s) else None,
               "inas_supply": {"capacitor_F": inas_hw.supply.capacitor_F, "r_ohm": inas_hw.supply.r_ohm,
                               "v_sup": inas_hw.supply.v_sup, "v_on": inas_hw.supply.v_on,
                               "v_off": inas_hw.supply.v_off, "margin": inas_hw.supply.margin,
                               "sram_bytes": inas_hw.supply.sram_bytes},
               "scratch_epochs": sorted({r["epochs"] for r in rows if r["method"] == "inas"}),
               "inas_requirement": inas_requirement, "inas_latency_scale": scale,
               "rows": rows, "table": table, "device": device, "workers": workers, "dask": dask,
               "views": {"equal_time": table, **extra}, "out": str(out_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(jsonout.dumps(summary, indent=1))
    (out_dir / "compare.txt").write_text(proto.views_text(summary))
    if not write_figure:  # the caller draws it (the demo, into its report folder's one plotly.js)
        return summary
    import pandas as pd

    from .figures import FigureWriter

    shown = pd.DataFrame([r for r in rows if r.get("latency_s") is not None],
                         columns=["method", "latency_s", "test_accuracy", "arch"])
    with FigureWriter(out_dir, formats) as fw:
        fw.figure(nas_compare_figure(shown, reqs, sc.name), out_dir / "compare")
        if extra:
            fw.figure(proto.views_figure(summary), out_dir / "compare-views")
    return summary


def _design_text(d: dict) -> str:
    return f"{d['Tr']}_{d['Tc']}_{d['Tm']}_{d['Tn']}_{d['loop_order']}_S{d['S']}"


# --------------------------------------------------------------------------- printing
def _console():
    from .console import console

    return console(wide=True)


def print_nas(summary: dict, console=None) -> None:
    from rich.table import Table

    from .console import styled

    con = console or _console()
    s = summary["search"]
    sn = summary["supernet"]
    sn_txt = "from cache" if sn["cached"] else "{:.1f} s".format(sn["seconds"])
    con.print(styled(("aidi nas", "bold"), f" {summary['scenario']} ({summary['dataset']}, space {summary['search_space']} of "
              f"{summary['space_size']} members): {summary['controller']}, {s['evaluations']} evaluations in "
              f"{s['wall_s']:.1f} s ({s['evals_per_s']:.1f}/s), {s['feasible']} feasible; supernet {sn_txt}; "
              f"requirement {summary['requirement_s']} s"))
    t = Table(title="Pareto front (feasible; validation accuracy read off the supernet vs intermittent latency)")
    for col in ("arch", "val acc (supernet)", "val acc (fine-tuned)", "test acc (Q15)", "latency s (oracle)",
                "latency s (SimPy)", "SRAM B", "cycles"):
        t.add_column(col)
    fin = {f["arch_id"]: f for f in summary["finalists"]}
    for p in summary["pareto"]:
        f = fin.get(p["arch_id"], {})
        t.add_row(p["arch"], f"{p['accuracy']:.3f}",
                  f"{f['finetuned_val_accuracy']:.3f}" if f else "-",
                  f"{f['q15_test_accuracy']:.3f}" if f else "-", f"{p['latency_s']:.4g}",
                  (f"{f['des_latency_s']:.4g}" + ("" if f["des_meets_requirement"] else " (misses)")) if f else "-",
                  str(p["sram_bytes"]), str(p["power_cycles"]))
    con.print(t)
    c = summary["chosen"]
    if c:
        con.print(styled("chosen: ", (c["arch"], "bold"), f" fine-tuned val acc {c['finetuned_val_accuracy']:.3f}, "
                         f"Q15 test acc {c['q15_test_accuracy']:.3f}, {c['des_latency_s']:.4g} s (SimPy) -> "
                         f"{c['scenario']}"))
    else:
        con.print("no candidate meets every constraint", style="red")
    con.print(f"wrote {summary['out']}/pareto.html, history.csv, result.json")


def print_compare(summary: dict, console=None) -> None:
    from rich.table import Table

    con = console or _console()
    t = Table(title=f"{summary['scenario']} ({summary['dataset']}): test accuracy of each method's model, its "
                    f"intermittent latency (SimPy) and power cycles, search time / budget (seed {summary['seed']})")
    t.add_column("requirement s")
    names = {"ours": f"ours ({summary['controller']} + supernet)", "inas": "iNAS-style (LSTM RL, scratch)",
             "hwnas": "HW-NAS-style (continuous)"}
    for m in ("ours", "inas", "hwnas"):
        t.add_column(f"{names[m]}: acc / latency s / cycles / search s")
    for line in summary["table"]:
        cells = []
        for m in ("ours", "inas", "hwnas"):
            r = line.get(m, {})
            acc = "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}"
            if r.get("test_accuracy") is not None and not r.get("meets"):
                acc += " (misses)"
            lat = "-" if r.get("latency_s") is None else f"{r['latency_s']:.3g}"
            cyc = "-" if r.get("power_cycles") is None else str(r["power_cycles"])
            cells.append(f"{acc} / {lat} / {cyc} / {r.get('search_s', float('nan')):.0f} of "
                         f"{r.get('budget_s', float('nan')):.0f}")
        t.add_row(f"{line['requirement_s']:.3g}", *cells)
    con.print(t)
    sn_txt = "from cache" if summary["supernet_cached"] else "{:.1f} s".format(summary["supernet_s"])
    con.print(f"supernet: {sn_txt}, {summary['supernet_charged_s']:.1f} s charged to ours and HW-NAS-style at every "
              f"requirement; iNAS-style children trained {', '.join(map(str, summary['scratch_epochs']))} epochs each, "
              f"its requirement {summary['inas_requirement']} (x {summary['inas_latency_scale']:.3g}); "
              f"wrote {summary['out']}/compare.json, compare.txt, compare.html")
    if set(summary.get("views", {})) - {"equal_time"}:
        from .nas_protocol import views_text

        con.print(views_text(summary).split("\n\n", 1)[1], end="")
        con.print(f"wrote {summary['out']}/compare-views.html")
