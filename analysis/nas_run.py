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
with the same seed and budget, ours (weight sharing + KD + the chosen
controller), an iNAS-style search (RL controller, each child trained from
scratch for a few epochs, no KD, no weight sharing; the per-layer execution
design search is the same) and an HW-NAS-style search (the same controller
and accuracy, but latency and designs for continuous power; the winner is then
deployed under the harvester with the best execution design found afterwards).
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
SCRATCH_EPOCHS = 3


# --------------------------------------------------------------------------- parallel maps
@contextmanager
def parallel_map(workers: int = 1, dask: str | None = None):
    """Yield ``map_fn(fn, list_of_arg_tuples) -> list`` on local processes or Dask, or None (serial)."""
    with executor(workers, dask) as pool:
        yield None if pool is None else pool.map


# --------------------------------------------------------------------------- inputs
def _check_args(controller: str, budget: int, dataset: str, workers: int) -> None:
    from aidi.models.nas import CONTROLLERS

    if controller not in CONTROLLERS:
        raise UserError(f"--controller: expected one of {', '.join(CONTROLLERS)}, got {controller!r}")
    if budget < 1:
        raise UserError(f"--budget: must be at least 1 evaluation, got {budget}")
    if dataset not in DATASETS:
        raise UserError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if workers < 1:
        raise UserError(f"--workers: must be at least 1, got {workers}")


#: --quick on a folder data set: a subset drawn by the seed (a smoke run, not an experiment)
QUICK_SUBSET = {"max_train": 2048, "max_test": 512}


def load_data(dataset: str, data_dir: str | Path | None, seed: int, quick: bool = False):
    """(search space, NasData) of a data set (``quick``: at most :data:`QUICK_SUBSET` images of a folder data set)."""
    from aidi.models.nas import space_for, split_validation
    from aidi.models.data import DatasetError, load_dataset, load_image_folder

    try:
        kw = dict(QUICK_SUBSET) if quick and dataset != "tinyimagenet" else {}
        ds = load_dataset("digits", seed) if dataset == "digits" else load_image_folder(dataset, data_dir, seed, **kw)
    except DatasetError as exc:
        raise UserError(str(exc)) from None
    data = split_validation(ds, seed)
    return space_for(dataset, ds.input_shape, ds.n_classes), data


def supernet_config(quick: bool):
    from aidi.models.nas import SupernetConfig

    return SupernetConfig.quick() if quick else SupernetConfig()


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


def confirm(toml_path: Path, oracle_latency: float | None) -> dict:
    """Re-simulate a written candidate with the SimPy model (and the oracle); feasibility as a user would see it."""
    from . import pipeline

    sc = pipeline.load_scenario(toml_path)
    built = pipeline.build(sc)
    des, _ = pipeline.simulate(built, engine="des", functional=False)
    req = sc.sim.deadline_s
    lat = des["latency_s"]
    return {"scenario": str(toml_path), "des_completed": bool(des["completed"]), "des_latency_s": lat,
            "des_power_cycles": des["power_cycles"],
            "des_meets_requirement": bool(des["completed"] and (req is None or lat <= req)),
            "des_matches_oracle": bool(oracle_latency is not None and lat is not None
                                       and abs(lat - oracle_latency) <= 1e-9 * max(1.0, abs(lat))),
            "float_test_accuracy": float(built.trained.float_accuracy), "q15_test_accuracy": float(built.q15_accuracy),
            "sram_max_bytes": des["sram_max_bytes"]}


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
            train_progress: Callable[[int, int], None] | None = None) -> dict:
    """One search; returns a JSON-ready summary and writes OUT (see the module docstring);
    ``formats``: the Pareto figure's files (:data:`aidi.analysis.figures.FORMATS`); ``progress(done, budget)``
    follows the search (called with 0 first), ``train_progress(batches, total)`` the supernet's training.

    OUT (default ``out/nas/<scenario>``) must be new, empty or made by aidi, unless ``force``
    (:func:`aidi.analysis.outdir.prepare`, checked before any work starts)."""
    from aidi.models.hardware import HardwareEvaluator
    from aidi.models.nas import (Evaluator, SupernetAccuracy, extract, finetune, make_controller, pareto_front,
                                 run_search, teacher_of, train_supernet)
    from aidi.models.nas.supernet import calibration_images, module_accuracy

    from . import pipeline

    _check_args(controller, budget, dataset, workers)
    log = log or (lambda s: None)
    sc = pipeline.load_scenario(scenario)
    req = requirement_s if requirement_s is not None else sc.sim.deadline_s
    if req is not None and not (math.isfinite(req) and req > 0):
        raise UserError(f"--requirement: must be a positive number of seconds, got {req}")
    out_dir = outdir.prepare(Path(out) if out is not None else Path("out") / "nas" / sc.name, force)
    space, data = load_data(dataset, data_dir, seed, quick)
    cfg = supernet_config(quick)
    t0 = time.perf_counter()
    sn = train_supernet(space, data, seed, cfg, log=log, progress=train_progress)
    sn_s = time.perf_counter() - t0
    log(f"supernet ready ({'cache' if sn.meta.get('cached') else f'trained in {sn_s:.1f} s'})")
    with parallel_map(workers, dask) as map_fn:
        ev = Evaluator(HardwareEvaluator(sc), SupernetAccuracy(sn, data), req, map_fn=map_fn)
        if progress:
            progress(0, budget)  # the total up front: the time left is estimated from the first batch on
        res = run_search(make_controller(controller, space, seed, budget), ev, budget, BATCH, progress)
    front = pareto_front(res.history)
    log(f"search: {res.evaluations} evaluations in {res.wall_s:.1f} s, {len(res.feasible())} feasible, "
        f"front of {len(front)}")
    xc = calibration_images(data)
    teacher, _ = teacher_of(sn, xc)
    finals = []
    t1 = time.perf_counter()
    from aidi.models.nas import Arch

    for o in _finalists(front, MAX_FINALISTS):
        arch = Arch.from_dict(o["arch"])
        m = finetune(extract(sn, arch, xc), data, seed, teacher, cfg.ft_epochs, cfg.alpha, cfg.temperature, cfg.ft_lr)
        row = _summary_row(o)
        row["finetuned_val_accuracy"] = module_accuracy(m, data.x_val, data.y_val)
        path = write_candidate(out_dir / "candidates", arch.id, sc, arch, o["designs"], m, data, seed, req, data_dir)
        row.update(confirm(path, o["latency_s"]))
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
                     "seconds_when_built": sn.meta.get("train_seconds_when_built"),
                     "history": sn.meta.get("history")},
        "search": {"wall_s": res.wall_s, "evaluations": res.evaluations, "evals_per_s": res.evals_per_s,
                   "unique": len({o["arch_id"] for o in res.history}), "feasible": len(res.feasible()),
                   "cache_hits": ev.cache.hits, "accuracy_seconds": ev.accuracy_seconds},
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


# --------------------------------------------------------------------------- comparison
def default_requirements(sc, space, requirement_s: float | None = None) -> list[float]:
    """Three requirements between the smallest and the largest member's intermittent latency (geometric)."""
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
    return [float(lo * (hi / lo) ** f) for f in COMPARE_FRACTIONS]


def _deploy_and_confirm(tag: str, sc, arch, obj: dict, module, data, seed: int, req: float, out_dir: Path,
                        data_dir: str | Path | None = None) -> dict:
    from aidi.models.nas.supernet import module_accuracy

    path = write_candidate(out_dir, tag, sc, arch, obj["designs"], module, data, seed, req, data_dir)
    c = confirm(path, obj["intermittent_latency_s"])
    return {"arch": arch.describe(), "arch_id": arch.id, "test_accuracy": module_accuracy(module, data.x_test,
                                                                                            data.y_test),
            "latency_s": obj["intermittent_latency_s"], "continuous_latency_s": obj["continuous_latency_s"],
            "meets": bool(obj["feasible"] and c["des_meets_requirement"]), **c}


def run_compare(scenario: str | Path, controller: str = "evolution", budget: int = 24, seed: int = 0,
                requirement_s: float | None = None, workers: int = 1, dask: str | None = None,
                dataset: str = "digits", data_dir: str | Path | None = None, out: str | Path | None = None,
                quick: bool = False, requirements: list[float] | None = None,
                progress: Callable[[str, int, int], None] | None = None,
                log: Callable[[str], None] | None = None, force: bool = False,
                train_progress: Callable[[int, int], None] | None = None) -> dict:
    """Ours vs iNAS-style vs HW-NAS-style at three requirements, same seed and budget (OUT as in :func:`run_nas`)."""
    from aidi.models.hardware import HardwareEvaluator
    from aidi.models.nas import (Arch, Evaluator, ScratchAccuracy, SupernetAccuracy, extract, finetune,
                                 make_controller, run_search, teacher_of, train_from_scratch, train_supernet)
    from aidi.models.nas.supernet import calibration_images

    from . import pipeline

    _check_args(controller, budget, dataset, workers)
    log = log or (lambda s: None)
    sc = pipeline.load_scenario(scenario)
    out_dir = outdir.prepare(Path(out) if out is not None else Path("out") / "nas" / f"{sc.name}-compare", force)
    space, data = load_data(dataset, data_dir, seed, quick)
    cfg = supernet_config(quick)
    t0 = time.perf_counter()
    sn = train_supernet(space, data, seed, cfg, log=log, progress=train_progress)
    sn_s = time.perf_counter() - t0
    xc = calibration_images(data)
    teacher, _ = teacher_of(sn, xc)
    reqs = requirements or default_requirements(sc, space, requirement_s)
    scratch_epochs = 1 if quick else SCRATCH_EPOCHS
    final_epochs = cfg.full_epochs
    hw_int = HardwareEvaluator(sc)
    rows = []
    with parallel_map(workers, dask) as map_fn:
        for ri, req in enumerate(reqs):
            for method in ("ours", "inas", "hwnas"):
                tag = f"{method}-r{ri}"
                if progress:
                    progress(tag, 0, budget)
                cb = (lambda d, t, tag=tag: progress(tag, d, t)) if progress else None
                if method == "ours":
                    ev = Evaluator(hw_int, SupernetAccuracy(sn, data), req, map_fn=map_fn)
                    ctl = make_controller(controller, space, seed, budget)
                elif method == "inas":
                    ev = Evaluator(hw_int, ScratchAccuracy(data, scratch_epochs, seed), req, map_fn=map_fn)
                    ctl = make_controller("rl", space, seed, budget)
                else:
                    ev = Evaluator(HardwareEvaluator(sc, "continuous"), SupernetAccuracy(sn, data), req,
                                   map_fn=map_fn)
                    ctl = make_controller(controller, space, seed, budget)
                res = run_search(ctl, ev, budget, BATCH, cb)
                best = res.best_feasible()
                row = {"requirement_s": req, "method": method,
                       "controller": "rl" if method == "inas" else controller,
                       "search_s": res.wall_s, "evaluations": res.evaluations, "evals_per_s": res.evals_per_s,
                       "feasible_found": len(res.feasible())}
                if best is None:
                    row.update({"arch": None, "test_accuracy": None, "meets": False, "final_train_s": 0.0,
                                "note": "no feasible candidate found"})
                    rows.append(row)
                    continue
                arch = Arch.from_dict(best["arch"])
                t1 = time.perf_counter()
                if method == "inas":
                    module = train_from_scratch(arch, data, seed, final_epochs)
                else:
                    module = finetune(extract(sn, arch, xc), data, seed, teacher, cfg.ft_epochs, cfg.alpha,
                                      cfg.temperature, cfg.ft_lr)
                row["final_train_s"] = time.perf_counter() - t1
                obj = best
                if method == "hwnas":  # deploy under the harvester with the best design found afterwards
                    obj = hw_int(arch)
                    obj["feasible"] = bool(obj["hw_feasible"] and obj["latency_s"] <= req)
                row.update(_deploy_and_confirm(tag, sc, arch, obj, module, data, seed, req, out_dir, data_dir))
                row["search_accuracy"] = best["accuracy"]
                rows.append(row)
                acc = row.get("test_accuracy")
                log(f"{tag}: {row.get('arch')}, test accuracy {'-' if acc is None else format(acc, '.3f')}, "
                    f"{'meets' if row['meets'] else 'misses'} the requirement")
    table = []
    for ri, req in enumerate(reqs):
        line = {"requirement_s": req}
        for r in rows:
            if r["requirement_s"] == req:
                acc = r["test_accuracy"] if r["meets"] else None
                line[r["method"]] = {"accuracy": acc, "arch": r.get("arch"), "latency_s": r.get("latency_s"),
                                     "search_s": r["search_s"], "meets": r["meets"]}
        table.append(line)
    summary = {"scenario": sc.name, "dataset": dataset, "controller": controller, "budget": budget, "seed": seed,
               "requirements_s": reqs, "supernet_s": sn_s, "supernet_cached": bool(sn.meta.get("cached")),
               "supernet_s_when_built": sn.meta.get("train_seconds_when_built"),
               "scratch_epochs": scratch_epochs, "rows": rows, "table": table, "out": str(out_dir)}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "compare.json").write_text(jsonout.dumps(summary, indent=1))
    return summary


# --------------------------------------------------------------------------- printing
def _console():
    import sys

    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 160)


def print_nas(summary: dict, console=None) -> None:
    from rich.table import Table

    con = console or _console()
    s = summary["search"]
    sn = summary["supernet"]
    sn_txt = "from cache" if sn["cached"] else "{:.1f} s".format(sn["seconds"])
    con.print(f"[bold]aidi nas[/bold] {summary['scenario']} ({summary['dataset']}, space {summary['search_space']} of "
              f"{summary['space_size']} members): {summary['controller']}, {s['evaluations']} evaluations in "
              f"{s['wall_s']:.1f} s ({s['evals_per_s']:.1f}/s), {s['feasible']} feasible; supernet {sn_txt}; "
              f"requirement {summary['requirement_s']} s")
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
        con.print(f"chosen: [bold]{c['arch']}[/bold] fine-tuned val acc {c['finetuned_val_accuracy']:.3f}, Q15 test acc "
                  f"{c['q15_test_accuracy']:.3f}, {c['des_latency_s']:.4g} s (SimPy) -> {c['scenario']}")
    else:
        con.print("[red]no candidate meets every constraint[/red]")
    con.print(f"wrote {summary['out']}/pareto.html, history.csv, result.json")


def print_compare(summary: dict, console=None) -> None:
    from rich.table import Table

    con = console or _console()
    t = Table(title=f"{summary['scenario']}: best test accuracy meeting each latency requirement "
                    f"(budget {summary['budget']}, seed {summary['seed']})")
    t.add_column("requirement s")
    names = {"ours": f"ours ({summary['controller']} + supernet + KD)", "inas": "iNAS-style (RL, scratch)",
             "hwnas": "HW-NAS-style (continuous)"}
    for m in ("ours", "inas", "hwnas"):
        t.add_column(f"{names[m]}: acc / latency s / search s")
    for line in summary["table"]:
        cells = []
        for m in ("ours", "inas", "hwnas"):
            r = line.get(m, {})
            acc = "misses" if r.get("accuracy") is None else f"{r['accuracy']:.3f}"
            lat = "-" if r.get("latency_s") is None else f"{r['latency_s']:.3g}"
            cells.append(f"{acc} / {lat} / {r.get('search_s', float('nan')):.1f}")
        t.add_row(f"{line['requirement_s']:.3g}", *cells)
    con.print(t)
    sn_txt = "from cache" if summary["supernet_cached"] else "{:.1f} s".format(summary["supernet_s"])
    con.print(f"supernet: {sn_txt} "
              f"(built in {summary['supernet_s_when_built'] or summary['supernet_s']:.1f} s, once for all "
              f"requirements); iNAS-style children trained {summary['scratch_epochs']} epochs each")
