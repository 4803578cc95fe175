"""Choosing execution designs: the per-layer search and the scenario's ``[execution]`` values.

Public API::

    search_design(layer, platform, sram_budget, e_cycle_J, *, backend, preservation, harvest_power_W,
                  tile, loop_order, S) -> ExecutionDesign        # uncached
    auto_design(...)                                              # the same, memoised on the layer's geometry
    resolve_designs(model, tile, loop_order, hyper_tile, preservation, ...) -> list[ExecutionDesign]
    design_network(model, platform, sram_budget, e_cycle_J, ...) -> NetPlan   # auto designs, then the plan

The search consumes the schedule (:mod:`aidi.models.schedule`): it costs
candidates with the cost tables and the walk, and returns designs; it plans
nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..sim.platform import Platform
from .costs import cost_tables, lower_bound, runtime_model
from .layers import LayerGeom
from .schedule.design import (DEFAULT_BACKEND, LOOP_ORDERS, PRESERVATIONS, ExecutionDesign, normalize_design,
                              tile_limits)
from .schedule.memory import check_sram, layer_sram_buffers
from .schedule.plan import NetPlan, backend_choices, geoms_of, get_platform_of, plan_network, sram_budget_of
from .schedule.walk import COMPLETE, OVER_BOUND, OVER_E_LIMIT, walk


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def s_candidates(n_tiles: int) -> list[int]:
    """Hyper-tile sizes tried: powers of two below the tile count, and the tile count."""
    out, s = [], 1
    while s < n_tiles:
        out.append(s)
        s *= 2
    out.append(n_tiles)
    return out


@dataclass(frozen=True)
class _Outcome:
    """What the search found for a geometry: a design, or why nothing fits (without the layer's name)."""

    design: ExecutionDesign | None
    reason: str | None


def _canonical(geom: LayerGeom) -> LayerGeom:
    """The geometry without its identity (index, name, BN link): the memo key of the search."""
    return replace(geom, index=0, name=geom.op, bn=-1, spec_indices=())


def _check_args(geom: LayerGeom, e_cycle_J, preservation: str, tile) -> None:
    if not (isinstance(e_cycle_J, (int, float)) and e_cycle_J > 0):
        raise ValueError(f"{geom.describe()}: per-cycle energy budget must be positive, got {e_cycle_J!r}")
    if preservation not in PRESERVATIONS:
        raise ValueError(f"execution.preservation must be one of {', '.join(PRESERVATIONS)}, got {preservation!r}")
    if tile is not None:  # a pinned tile must fit the layer (user error, named here)
        normalize_design(geom, ExecutionDesign(*(int(v) for v in tile)))


def _raise_infeasible(geom: LayerGeom, p: Platform, sram_budget, e_cycle_J: float, reason: str):
    budget = sram_budget_of(p, sram_budget)
    raise ValueError(f"{geom.describe()}: no execution design fits (SRAM budget {budget} B, "
                     f"E_cycle {e_cycle_J:.3e} J); closest: {reason}")


def search_design(layer, platform: Platform | str, sram_budget: int | None, e_cycle_J: float, *,
                  backend: str = DEFAULT_BACKEND, preservation: str = "hypertile",
                  harvest_power_W: float | None = None, tile=None,
                  loop_order: str | None = None, S: int | None = None) -> ExecutionDesign:
    """The fastest feasible design of one layer (uncached search).

    Candidates (bounded, no sampling): Tr, Tc, Tm, Tn over the divisors of the
    layer's output rows, columns, output channels and input channels (Tn fixed
    to Tm for depthwise/pooling), the three loop orders, the backend(s)
    (``"auto"`` tries LEA and CPU), and for ``preservation="hypertile"`` S over
    powers of two up to the tile count (and the tile count), searched by
    bisection for the largest S whose units all fit ``e_cycle_J`` and whose
    accumulator slots fit SRAM.

    Feasible: SRAM footprint <= ``sram_budget`` (and LEA RAM), every unit's
    energy <= ``e_cycle_J`` (J).  Latency: total unit cycles / MCLK, plus
    energy / ``harvest_power_W`` (recharge time, s) when given.  Ties prefer
    lower energy, then the first candidate.

    ``tile=(Tr, Tc, Tm, Tn)``, ``loop_order`` and ``S`` pin those fields.
    Returns the design (with its backend set).  Raises ValueError naming the
    layer when nothing is feasible.
    """
    geom = layer.geom if hasattr(layer, "geom") else layer
    p = get_platform_of(platform)
    _check_args(geom, e_cycle_J, preservation, tile)
    out = _search(geom, p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W,
                  None if tile is None else tuple(int(v) for v in tile), loop_order, S)
    if out.design is None:
        _raise_infeasible(geom, p, sram_budget, e_cycle_J, out.reason)
    return out.design


def auto_design(layer, platform: Platform | str, sram_budget: int | None, e_cycle_J: float, *,
                backend: str = DEFAULT_BACKEND, preservation: str = "hypertile",
                harvest_power_W: float | None = None, tile=None,
                loop_order: str | None = None, S: int | None = None, return_cost: bool = False):
    """:func:`search_design`, memoised on the layer's geometry (not its index or name) and the budgets.

    ``e_cycle_J`` is the energy (J) one power cycle can give a unit: the
    scenario's :func:`aidi.models.hardware.unit_energy_budget`.
    """
    from .schedule.plan import evaluate_design

    geom = layer.geom if hasattr(layer, "geom") else layer
    p = get_platform_of(platform)
    _check_args(geom, e_cycle_J, preservation, tile)
    out = _search_cached(_canonical(geom), p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W,
                         None if tile is None else tuple(int(v) for v in tile), loop_order, S)
    if out.design is None:
        _raise_infeasible(geom, p, sram_budget, e_cycle_J, out.reason)
    if return_cost:
        return out.design, evaluate_design(geom, out.design, p, sram_budget, backend)
    return out.design


@lru_cache(maxsize=4096)
def _search_cached(geom, p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W, tile, loop_order, S):
    return _search(geom, p, sram_budget, e_cycle_J, backend, preservation, harvest_power_W, tile, loop_order, S)


def _search(geom: LayerGeom, p: Platform, sram_budget, e_cycle_J: float, backend: str, preservation: str,
            harvest_power_W, tile, loop_order, S) -> _Outcome:
    budget = sram_budget_of(p, sram_budget)
    backends = backend_choices(None, backend)
    if not geom.weighted:
        backends = ["cpu"]  # pools run on the CPU whatever the backend
    m, ho, wo = geom.out_shape
    if tile is not None:
        tiles = [tile]
    else:
        tns = [0] if geom.channel_tied else divisors(geom.in_shape[0])
        tiles = [(tr, tc, tm, tn) for tm in divisors(m) for tn in tns for tr in divisors(ho) for tc in divisors(wo)]
    orders = [loop_order] if loop_order else list(LOOP_ORDERS)
    runtime = runtime_model(p)  # costed (and laid out in SRAM) as the emitted C runtime
    obj_a = 1.0 / p.mclk_hz
    obj_b = 1.0 / harvest_power_W if harvest_power_W else 0.0
    # candidates with their lower bound; explored best-first, stopping when the bound cannot win
    cands = []
    closest = None  # (energy, reason) of the smallest infeasible candidate, for the error message
    for tr, tc, tm, tn in tiles:
        base = normalize_design(geom, ExecutionDesign(tr, tc, tm, tn if tn else tm, orders[0], 1, preservation))
        for b in backends:  # one accumulator block: what every schedule of these tiles needs at least
            bufs = layer_sram_buffers(geom, base, 4 * base.Tm * base.Tr * base.Tc, b, runtime)
            reason = check_sram(geom, bufs, budget, p, b, 1)
            if reason:
                if closest is None:
                    closest = (np.inf, reason)
                continue
            tab = cost_tables(geom, base.Tr, base.Tc, base.Tm, base.Tn, p, b)
            lb = lower_bound(geom, tab)
            cands.append((obj_a * lb[0] + obj_b * lb[1], len(cands), base, b, tab))
    cands.sort(key=lambda c: (c[0], c[1]))
    best, best_key = None, (np.inf, np.inf)
    for lb_obj, _, base, b, tab in cands:
        if lb_obj >= best_key[0]:
            break
        nt = int(np.prod(tab.grid))
        if S is not None:
            svals = [min(int(S), nt)]
        elif preservation == "hypertile":
            svals = s_candidates(nt)
        else:
            svals = [1 if preservation == "tile" else nt]
        for order in orders:
            cache: dict[int, tuple] = {}

            def ev(s: int):
                # -> (design, walk result, why-infeasible or None, beaten-by-best)
                if s not in cache:
                    d = replace(base, loop_order=order, S=s, backend=b)
                    w = walk(tab, d, geom, e_limit=e_cycle_J, obj_a=obj_a, obj_b=obj_b, bound=best_key[0])
                    why = None
                    if w.status == OVER_E_LIMIT:
                        why = f"a unit needs more than E_cycle {e_cycle_J:.3e} J"
                    elif w.status == COMPLETE:
                        why = check_sram(geom, layer_sram_buffers(geom, d, w.acc_extent, b, runtime), budget, p, b,
                                         int(w.max_slots))
                    cache[s] = (d, w, why, w.status == OVER_BOUND)
                return cache[s]

            _, w0, why0, _ = ev(svals[0])
            if why0 is not None:
                if closest is None or closest[0] == np.inf:
                    closest = (w0.max_unit_energy, why0)
                continue
            lo, hi = 0, len(svals) - 1
            while lo < hi:  # largest feasible S: cost falls and unit energy grows with S
                mid = (lo + hi + 1) // 2
                if ev(svals[mid])[2] is None:
                    lo = mid
                else:
                    hi = mid - 1
            d, w, why, beaten = ev(svals[lo])
            if why is not None or beaten:
                continue
            cyc = float(w.unit_cost[:, :, 0].sum())
            en = float(w.unit_cost[:, :, 1].sum())
            key = (obj_a * cyc + obj_b * en, en)
            if key < best_key:
                best_key, best = key, d
    if best is None:
        return _Outcome(None, closest[1] if closest else "no candidate")
    return _Outcome(best, None)


def resolve_designs(model, tile="auto", loop_order="auto", hyper_tile="auto", preservation: str = "hypertile", *,
                    platform: Platform | str = "msp430fr5994", sram_budget: int | None = None,
                    e_cycle_J: float | None = None, backend: str = DEFAULT_BACKEND, input_shape=None,
                    harvest_power_W: float | None = None) -> list[ExecutionDesign]:
    """Designs from a scenario's ``[execution]`` values, filling ``"auto"`` fields with :func:`auto_design`.

    ``tile``: "auto", ``[Tr, Tc, Tm, Tn]``, a table ``{Tr=.., Tc=.., Tm=.., Tn=..}``
    (one value for every layer, clipped to each layer's dimensions), or a list
    with one of those per executed layer (checked strictly); ``loop_order`` and
    ``hyper_tile`` (S): "auto", one value, or one per layer.  Raises ValueError
    naming the ``execution.*`` key.
    """
    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    geoms = geoms_of(model, input_shape)
    n = len(geoms)

    def per_layer(v, key, is_single):
        if isinstance(v, list) and not is_single(v):
            if len(v) != n:
                raise ValueError(f"execution.{key}: {len(v)} values given for {n} executed layers")
            return v
        return [v] * n

    def tile_single(v):
        return v == "auto" or isinstance(v, Mapping) or (isinstance(v, list) and v and all(isinstance(x, int) for x in v))

    shared_tile = tile_single(tile)
    tiles = per_layer(tile, "tile", lambda v: tile_single(v))
    orders = per_layer(loop_order, "loop_order", lambda v: False)
    hypers = per_layer(hyper_tile, "hyper_tile", lambda v: False)
    out = []
    for g, t, o, h in zip(geoms, tiles, orders, hypers):
        if isinstance(t, Mapping):
            try:
                t = [t["Tr"], t["Tc"], t["Tm"], t.get("Tn", t["Tm"])]
            except KeyError as e:
                raise ValueError(f"execution.tile ({g.describe()}): missing key {e.args[0]!r}") from None
        if t != "auto" and (not isinstance(t, list) or len(t) != 4):
            raise ValueError(f"execution.tile ({g.describe()}): expected \"auto\" or [Tr, Tc, Tm, Tn], got {t!r}")
        if t != "auto" and shared_tile:  # one tile for all layers: clip to each layer's dimensions
            t = [min(v, m) if isinstance(v, int) and not isinstance(v, bool) else v for v, m in zip(t, tile_limits(g))]
        if t != "auto" and o != "auto" and (h != "auto" or preservation != "hypertile"):
            out.append(normalize_design(g, ExecutionDesign(*t, loop_order=o, S=1 if h == "auto" else h,
                                                           preservation=preservation)))
            continue
        if e_cycle_J is None:
            raise ValueError(f"{g.describe()}: automatic execution design needs the per-cycle energy budget")
        out.append(auto_design(g, p, budget, e_cycle_J, backend=backend, preservation=preservation,
                               harvest_power_W=harvest_power_W,
                               tile=None if t == "auto" else t, loop_order=None if o == "auto" else o,
                               S=None if h == "auto" else h))
    return out


def design_network(model, platform: Platform | str = "msp430fr5994", sram_budget: int | None = None, *,
                   e_cycle_J: float, designs=None, backend: str = DEFAULT_BACKEND, preservation: str = "hypertile",
                   idempotent: bool = True, input_shape=None, harvest_power_W: float | None = None) -> NetPlan:
    """Plan ``model`` with :func:`auto_design` for every layer whose design is None or ``"auto"``.

    ``designs``: None (all automatic), a list with one entry per executed layer,
    or a dict ``{layer index: design}``; ``e_cycle_J`` (J per unit) and
    ``harvest_power_W`` (W, for the recharge-time term) drive the automatic
    ones.  See :func:`aidi.models.schedule.plan_network` for the rest.
    """
    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    geoms = geoms_of(model, input_shape)
    if designs is None or isinstance(designs, str):
        designs = [None] * len(geoms)
    elif isinstance(designs, Mapping):
        designs = [designs.get(i) for i in range(len(geoms))]
    elif isinstance(designs, ExecutionDesign):
        raise ValueError("designs: give one ExecutionDesign per executed layer "
                         f"({', '.join(g.name for g in geoms)})")
    designs = list(designs)
    if len(designs) != len(geoms):
        raise ValueError(f"designs: {len(designs)} given for {len(geoms)} executed layers "
                         f"({', '.join(g.name for g in geoms)})")
    resolved = [auto_design(g, p, budget, e_cycle_J, backend=backend, preservation=preservation,
                            harvest_power_W=harvest_power_W) if d is None or d == "auto" else d
                for g, d in zip(geoms, designs)]
    return plan_network(geoms, resolved, p, budget, backend=backend, idempotent=idempotent)
