"""``aidi explore``: the execution designs the latency optimizer chooses, the alternatives and the rejections.

The optimizer (:func:`aidi.models.hardware.optimize`, objective: the oracle's latency of one inference under
the scenario's power and dispatch policy) is the one ``aidi run``, ``aidi check`` and the NAS use for
"auto" designs; this command shows its answer per layer: the chosen design, the best ``top_k`` designs of
the layer with the whole inference's simulated latency when each is swapped in, and how many designs of the
layer's space were rejected, by reason (SRAM budget, atomicity = a unit needs more than one power cycle /
the dispatch threshold allows, FRAM capacity, pruned = never walked because the surrogate ranked it lower).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from aidi.scenarios import loader

from .errors import UserError


def design_name(d) -> str:
    """``"Tr_Tc_Tm_Tn_order_S"`` of an :class:`~aidi.models.schedule.ExecutionDesign`."""
    return f"{d.Tr}_{d.Tc}_{d.Tm}_{d.Tn}_{d.loop_order}_{d.S}"


@dataclass
class ExploreResult:
    """What :func:`explore` found.

    ``latency_s``: the oracle's latency of one inference with the chosen designs (s; None if it does not
    complete); ``explore_wall_s``: wall time of the search alone (s, after start-up and compilation);
    ``layers``: one dict per executed layer with ``layer``, ``design`` ("Tr_Tc_Tm_Tn_order_S"),
    ``backend``, ``latency_s``, ``alternatives`` ([{design, backend, latency_s}], best first, the
    chosen one included), ``rejected`` ({sram, atomicity, fram, pruned}: designs) and ``n_designs``;
    ``sram_bytes``: the chosen designs' SRAM (B), the plan's one figure that ``aidi check`` reports and the
    emitted runtime allocates (arena, runtime state, stack), against ``sram_budget_bytes``.
    """

    scenario: str
    dispatch: str
    latency_s: float | None
    explore_wall_s: float
    exhaustive: bool
    evaluations: int
    layers: list = field(default_factory=list)
    sram_bytes: int = 0
    sram_budget_bytes: int = 0

    def to_dict(self) -> dict:
        return {"scenario": self.scenario, "dispatch": self.dispatch, "latency_s": self.latency_s,
                "explore_wall_s": self.explore_wall_s, "exhaustive": self.exhaustive,
                "evaluations": self.evaluations, "sram_bytes": self.sram_bytes,
                "sram_budget_bytes": self.sram_budget_bytes, "layers": self.layers}


def _finite(x: float) -> float | None:
    return None if x != x or x in (float("inf"), float("-inf")) else float(x)


def explore(scenario_or_path, top_k: int = 5, exhaustive: bool = False) -> ExploreResult:
    """Run the latency optimizer on a scenario (a :class:`~aidi.scenarios.loader.Scenario`, a path or a shipped
    name); ``top_k`` (>= 1) alternatives per layer; ``exhaustive``: simulate every design combination.

    Raises :class:`~aidi.analysis.errors.UserError` (one line naming the scenario file) for bad input or a
    network no design fits.
    """
    from aidi.models import hardware

    from . import pipeline

    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
        raise UserError(f"--top: expected a positive integer, got {top_k!r}")
    sc = scenario_or_path if isinstance(scenario_or_path, loader.Scenario) else loader.load(scenario_or_path)
    name = Path(sc.path).name
    geoms = list(pipeline.model_geometry(sc))  # [model] layers, or an ONNX file's graph; its errors name the file
    try:
        platform = sc.device.make_platform()
        segments = sc.harvester.segments()
        ctx = hardware.power_context(sc, platform, segments)
        _warm_up(platform, ctx)
        t0 = time.perf_counter()
        opt = hardware.optimize(sc, geoms, platform=platform, segments=segments, exhaustive=exhaustive,
                                alternatives=top_k)
        wall = time.perf_counter() - t0
        budget = sc.device.sram_budget_bytes
        sram = hardware.plan(geoms, opt.designs, platform, budget, sc.execution.backend).plan.sram_bytes
    except ValueError as exc:
        raise UserError(f"{name}: {str(exc).strip().splitlines()[0]}") from None
    layers = []
    for lc in opt.layers:
        layers.append({
            "layer": lc.geom.describe(),
            "design": design_name(lc.design),
            "backend": lc.design.backend,
            "latency_s": _finite(lc.latency_s),
            "alternatives": [{"design": design_name(d), "backend": d.backend, "latency_s": _finite(x)}
                             for d, x in lc.alternatives[:top_k]],
            "rejected": dict(lc.rejected),
            "n_designs": lc.n_designs,
        })
    return ExploreResult(sc.name, sc.sim.dispatch, _finite(opt.latency_s), wall, exhaustive, opt.evaluations, layers,
                         sram, budget)


def _warm_up(platform, ctx) -> None:
    """Load the compiled walk and oracle (numba) on a one-tile layer, so the timed search excludes them."""
    from aidi.models.design_search import optimize_designs
    from aidi.models.layers import LayerGeom

    g = LayerGeom(0, "conv", "conv", (1, 2, 2), (1, 2, 2), 1, 1, 1, 0, False, True)
    try:
        optimize_designs([g], platform, None, ctx, backend="cpu", top_k=1)
    except ValueError:
        pass


def print_explore(res: ExploreResult) -> None:
    """The result as tables (rich): per layer the chosen design, the alternatives and the rejections."""
    from rich.table import Table

    from .console import console, styled

    con = console()
    lat = "does not complete" if res.latency_s is None else f"{res.latency_s:.6g} s"
    con.print(styled((res.scenario, "bold"), f" ({res.dispatch} dispatch): one inference {lat}; "
                     f"search {res.explore_wall_s * 1e3:.1f} ms, {res.evaluations} oracle evaluations"
                     + (" (exhaustive)" if res.exhaustive else "") + f"; SRAM {res.sram_bytes} of "
                     f"{res.sram_budget_bytes} B"))
    for lay in res.layers:
        t = Table(title=f"{lay['layer']}: {lay['design']} ({lay['backend']})", title_justify="left")
        t.add_column("design Tr_Tc_Tm_Tn_order_S")
        t.add_column("backend")
        t.add_column("latency (s)", justify="right")
        for a in lay["alternatives"]:
            mark = " *" if a["design"] == lay["design"] and a["backend"] == lay["backend"] else ""
            t.add_row(a["design"] + mark, a["backend"], "-" if a["latency_s"] is None else f"{a['latency_s']:.6g}")
        con.print(t)
        rej = lay["rejected"]
        con.print(f"  {lay['n_designs']} designs; rejected: SRAM {rej['sram']}, atomicity {rej['atomicity']}, "
                  f"FRAM {rej['fram']}; pruned by the surrogate {rej['pruned']}")
