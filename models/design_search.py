"""Choosing execution designs: the latency optimizer, the per-layer compute-time search, ``[execution]`` values.

Public API::

    optimize_designs(geoms, platform, sram_budget, ctx: PowerContext, *, backend, preservation, pins,
                     exhaustive, top_k, alternatives) -> Optimized   # objective: the oracle's latency
    execution_pins(geoms, tile, loop_order, hyper_tile, preservation) -> per layer a design or (tile, order, S)
    search_design(layer, platform, sram_budget, e_cycle_J, *, backend, preservation, harvest_power_W,
                  tile, loop_order, S) -> ExecutionDesign        # per layer: compute + recharge time (uncached)
    auto_design(...)                                              # the same, memoised on the layer's geometry
    resolve_designs(model, tile, loop_order, hyper_tile, preservation, ...) -> list[ExecutionDesign]
    design_network(model, platform, sram_budget, e_cycle_J, ...) -> NetPlan   # auto designs, then the plan

Scenarios go through :func:`aidi.models.hardware.resolve`: the optimizer for
intermittent power (``aidi run``, ``check``, ``sweep``, ``explore`` and the
NAS), :func:`search_design` for continuous power (HW-NAS view) and as the
benchmark's baseline.  The search consumes the schedule
(:mod:`aidi.models.schedule`): it costs candidates with the cost tables, their
closed forms and the walk, and returns designs; it plans nothing itself.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from functools import lru_cache
from typing import Mapping

import numpy as np

from ..sim.platform import Platform
from ..sim.workload import Workload
from .costs import cost_tables, lower_bound, runtime_model
from .layers import LayerGeom
from .schedule.design import (DEFAULT_BACKEND, LOOP_ORDERS, ORDER_AXES, PRESERVATIONS, ExecutionDesign,
                              normalize_design, tile_limits)
from .schedule.memory import check_sram, fram_totals, layer_sram_buffers
from .schedule.plan import NetPlan, backend_choices, geoms_of, get_platform_of, plan_network, sram_budget_of
from .schedule.walk import COMPLETE, OVER_BOUND, OVER_E_LIMIT, walk

# The compiled ranking (costs.fast, schedule.closed, schedule.rank) is imported by the functions that rank a
# layer's designs, so a run whose designs are pinned or stored (aidi.models.design_cache) loads none of it.


def may_use_lea(backend: str) -> bool:
    """May a plan under the ``backend`` setting run a layer on the LEA?  Then its one SRAM arena sits in LEA RAM,
    so the optimizer holds every layer's arena rows (pools and CPU layers too) to ``Platform.lea_ram_bytes``
    (:func:`aidi.models.schedule.memory.check_sram`'s ``lea_arena``; the plan checks the same,
    :func:`aidi.models.schedule.plan.check_lea_arena`)."""
    return "lea" in backend_choices(None, backend)


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
    """The geometry without its identity (index, name, BN link, tensors): the memo key of the search."""
    return replace(geom, index=0, name=geom.op, bn=-1, spec_indices=(), src=((0, 0),) * len(geom.src), dst=(1, 0))


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

    Feasible: the layer's SRAM (:func:`~.schedule.memory.sram_footprint`: arena rows, runtime state,
    stack) <= ``sram_budget``, its arena rows within the LEA RAM when the plan may use the LEA
    (:func:`may_use_lea`), every unit's
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
    lea_arena = may_use_lea(backend)  # the arena in LEA RAM: every layer's rows within it
    obj_a = 1.0 / p.mclk_hz
    obj_b = 1.0 / harvest_power_W if harvest_power_W else 0.0
    # candidates with their lower bound; explored best-first, stopping when the bound cannot win
    cands = []
    closest = None  # (energy, reason) of the smallest infeasible candidate, for the error message
    for tr, tc, tm, tn in tiles:
        base = normalize_design(geom, ExecutionDesign(tr, tc, tm, tn if tn else tm, orders[0], 1, preservation))
        for b in backends:  # one accumulator block: what every schedule of these tiles needs at least
            bufs = layer_sram_buffers(geom, base, 4 * base.Tm * base.Tr * base.Tc, b)
            reason = check_sram(geom, bufs, budget, p, b, 1, lea_arena)
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
                        why = check_sram(geom, layer_sram_buffers(geom, d, w.acc_extent, b), budget, p, b,
                                         int(w.max_slots), lea_arena)
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
    out = []
    for g, pin in zip(geoms, execution_pins(geoms, tile, loop_order, hyper_tile, preservation)):
        if isinstance(pin, ExecutionDesign):
            out.append(pin)
            continue
        if e_cycle_J is None:
            raise ValueError(f"{g.describe()}: automatic execution design needs the per-cycle energy budget")
        t, o, h = pin
        out.append(auto_design(g, p, budget, e_cycle_J, backend=backend, preservation=preservation,
                               harvest_power_W=harvest_power_W, tile=t, loop_order=o, S=h))
    return out


def execution_pins(geoms: list[LayerGeom], tile="auto", loop_order="auto", hyper_tile="auto",
                   preservation: str = "hypertile") -> list:
    """Per executed layer, what a scenario's ``[execution]`` values fix: a whole :class:`ExecutionDesign`
    (nothing automatic), or ``(tile, loop_order, S)`` with None for each "auto" field.

    Accepted values as :func:`resolve_designs`; raises ValueError naming the ``execution.*`` key.
    """
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
        out.append((None if t == "auto" else tuple(t), None if o == "auto" else o, None if h == "auto" else h))
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


# =========================================================================== the latency optimizer
# Objective: the oracle's latency of one whole inference under the scenario's power and dispatch.
# Each layer's design space is ranked by a surrogate on closed-form lower bounds (schedule/rank.py), the best
# (tile, backend, S) are costed exactly in closed form under every loop order (schedule/closed.py), the best of
# those walked (per-unit costs, atomicity, SRAM slots) and simulated with the oracle on the whole network,
# layer by layer (coordinate descent; one compiled Population call per layer in the first pass, one for all
# layers in a later pass).
# WALK_TOP and ORACLE_TOP are this project's choice: with them the optimizer matches the exhaustive reference
# on every case of tests/test_explore_optimizer.py (12 random small networks, weak-source, a two-layer one).

#: (tile, backend, S) combinations per layer costed exactly (under every loop order) after the surrogate's ranking
WALK_TOP = 24
#: designs per layer simulated with the oracle on the whole network (per coordinate-descent pass)
ORACLE_TOP = 6
#: coordinate-descent passes over the layers at most
MAX_PASSES = 3
#: largest number of whole-network design combinations the exhaustive reference simulates
EXHAUSTIVE_LIMIT = 200_000
#: rejection reasons counted per layer (besides the designs that were only slower)
REASONS = ("sram", "atomicity", "fram", "pruned")


@dataclass(frozen=True)
class PowerContext:
    """What the objective needs of a scenario: power, harvester segments, run settings, unit energy budget.

    ``sim`` is the scenario's :class:`~aidi.sim.config.SimConfig`; the objective simulates one inference
    from the scenario's initial state with its dispatch policy (``sim.dispatch``, ``sim.dispatch_margin``).
    ``e_unit_J``: the largest energy (J, at the MCU) one unit may use
    (:func:`aidi.models.hardware.unit_energy_budget`).
    """

    power: object
    segments: object
    sim: object
    e_unit_J: float

    def one_inference(self):
        return replace(self.sim, inferences=1, period_s=0.0, deadline_s=None)

    def atomic_limit_J(self, p: Platform) -> float:
        """Largest unit energy (J at the MCU) the dispatch policy can ever run: the unit budget under greedy;
        under energy_aware the unit whose start threshold reaches V_on (leakage over the unit not counted:
        the oracle rejects what is left)."""
        pw = self.power
        if pw.frontend:
            return self._fronted_limit_J(p)
        if not self.sim.energy_aware:
            return self.e_unit_J
        e_store = 0.5 * pw.capacitor_F * (pw.v_on ** 2 - pw.v_off ** 2)
        fixed = p.measure_energy_J + p.wake_s * p.active_power_W
        return min(self.e_unit_J, pw.converter_efficiency * e_store / (1.0 + self.sim.dispatch_margin) - fixed)

    def _fronted_limit_J(self, p: Platform) -> float:
        """:meth:`atomic_limit_J` under a power front end, in the platform's nominal unit energy (J): the same
        budget with the boot, measurement and wake-up as the front end's buck draws them
        (:func:`aidi.sim.frontend.load_scale`), divided by the smallest scale a unit's load can have, so that the
        walk never refuses a unit the engines can run; :meth:`runnable` then applies the engines' own rule."""
        from ..sim.frontend import load_scale, load_scale_range

        pw = self.power
        s_boot, s_meas, s_wake = load_scale(pw, [p.boot_energy_J / p.boot_s if p.boot_s > 0 else 0.0,
                                                 p.measure_energy_J / p.measure_s if p.measure_s > 0 else 0.0,
                                                 p.active_power_W]).tolist()
        limit = pw.e_cycle_J - p.boot_energy_J * s_boot
        if self.sim.energy_aware:
            fixed = p.measure_energy_J * s_meas + p.wake_s * p.active_power_W * s_wake
            limit = min(limit, pw.converter_efficiency * pw.e_store_J / (1.0 + self.sim.dispatch_margin) - fixed)
        return limit / load_scale_range(pw)[0]

    def runnable(self, durations_s: np.ndarray, energy_J: np.ndarray, p: Platform) -> bool:
        """Whether one power cycle carries every unit of a design (``durations_s`` (U,) s, ``energy_J`` (U, 3) J
        at the MCU): under a power front end the engines' own rule (:func:`aidi.sim.frontend.runnable`, the
        units as its buck draws them, leakage included); without one, always (the walk's
        :meth:`atomic_limit_J` decided)."""
        if not self.power.frontend:
            return True
        from ..sim.frontend import runnable

        work = _platform_workload(durations_s, energy_J, np.zeros(len(durations_s), np.int64), p)
        return bool(runnable(work, self.power, self.sim.dispatch_margin, self.sim.energy_aware).all())


@dataclass(frozen=True)
class Walked:
    """One design of one layer with its exact per-unit costs (the walk's)."""

    design: ExecutionDesign
    durations_s: np.ndarray  # (U,) s
    energy_J: np.ndarray  # (U, 3) J by unit category
    surrogate_s: float  # the surrogate's latency estimate of the layer alone (s)


@dataclass
class LayerSpace:
    """One layer's design space after ranking: the walked designs best-first (surrogate), rejection counts."""

    geom: LayerGeom
    walked: list[Walked]
    rejected: dict
    n_designs: int


@dataclass
class LayerChoice:
    """The optimizer's answer for one layer: the chosen design, the alternatives simulated, rejections.

    ``alternatives``: ``[(design, latency_s)]`` best first, each the whole inference's oracle latency (s)
    with this layer's design swapped (the other layers at their chosen designs; NaN: did not complete).
    ``rejected``: designs of the space counted by reason (``sram``, ``atomicity``, ``fram``, ``pruned``:
    never walked because the surrogate ranked them below the walked ones), ``n_designs`` the space's size.
    """

    geom: LayerGeom
    design: ExecutionDesign
    latency_s: float
    alternatives: list
    rejected: dict
    n_designs: int


@dataclass
class Optimized:
    """Designs of a network and the oracle latency (s) of one inference with them (NaN: no design completes)."""

    designs: list
    latency_s: float
    layers: list
    evaluations: int
    exhaustive: bool = False


@lru_cache(maxsize=64)
def _platform_vector(p: Platform) -> np.ndarray:
    from .costs.fast import platform_vector

    return platform_vector(p)


def _tables(geom: LayerGeom, d: ExecutionDesign, p: Platform):
    """The cost tables of a normalised design with its backend set (compiled builder)."""
    from .costs.fast import build_tables, geom_vector

    return build_tables(geom_vector(geom), _platform_vector(p), d.Tr, d.Tc, d.Tm, d.Tn, d.backend == "lea",
                        runtime_model(p))


@lru_cache(maxsize=1024)
def _tile_grid_cached(out_shape, in_channels: int, tied: bool) -> np.ndarray:
    m, ho, wo = out_shape
    tns = [0] if tied else divisors(in_channels)
    dm, dn, dr, dc = (np.array(v, np.int64) for v in (divisors(m), tns, divisors(ho), divisors(wo)))
    # the order of the nested loops tm, tn, tr, tc (tc fastest); columns (Tr, Tc, Tm, Tn)
    t = np.empty((len(dm), len(dn), len(dr), len(dc), 4), np.int64)
    t[..., 0] = dr[:, None]
    t[..., 1] = dc
    t[..., 2] = dm[:, None, None, None]
    t[..., 3] = dm[:, None, None, None] if tied else dn[:, None, None]
    t = t.reshape(-1, 4)
    t.setflags(write=False)
    return t


def _tile_grid(geom: LayerGeom) -> np.ndarray:
    """(K, 4) int64 normalised tile sizes (Tr, Tc, Tm, Tn) over the divisors (Tn = Tm for tied layers)."""
    return _tile_grid_cached(tuple(geom.out_shape), int(geom.in_shape[0]), bool(geom.channel_tied))


def _layer_space(geom: LayerGeom, p: Platform, budget: int, ctx: PowerContext, p_harvest, backend: str,
                 preservation: str, tile, loop_order, S, exhaustive: bool) -> LayerSpace:
    """:func:`_rank_layer` for ``geom``, memoised on what it depends on (the geometry without its identity,
    the platform and budget, the constraints' and surrogate's numbers): NAS candidates share layers."""
    from .schedule.rank import surrogate_params

    limit = float(ctx.atomic_limit_J(p))
    sp = surrogate_params(p, ctx.e_unit_J, p_harvest, ctx.sim.energy_aware)
    if exhaustive:  # every design of the layer: too large to keep
        return _runnable_only(replace(_rank_layer(_canonical(geom), p, budget, limit, sp, backend, preservation, tile,
                                                  loop_order, S, True), geom=geom), p, ctx)
    walked, rejected, n_designs = _rank_layer_cached(_canonical(geom), p, budget, limit, tuple(sp.tolist()), backend,
                                                     preservation, None if tile is None else tuple(tile), loop_order,
                                                     S, exhaustive)
    return _runnable_only(LayerSpace(geom, list(walked), dict(rejected), n_designs), p, ctx)


def _runnable_only(space: LayerSpace, p: Platform, ctx: PowerContext) -> LayerSpace:
    """``space`` without the walked designs a unit of which the engines could not run in one power cycle
    (:meth:`PowerContext.runnable`; counted as ``atomicity``): only under a power front end, whose per-unit
    output efficiency the walk's one limit cannot express."""
    if not ctx.power.frontend:
        return space
    keep = [w for w in space.walked if ctx.runnable(w.durations_s, w.energy_J, p)]
    rejected = dict(space.rejected)
    rejected["atomicity"] += len(space.walked) - len(keep)
    return replace(space, walked=keep, rejected=rejected)


@lru_cache(maxsize=256)  # a few hundred kB at most each: the walked designs' unit costs
def _rank_layer_cached(geom, p, budget, limit, sp, backend, preservation, tile, loop_order, S, exhaustive):
    out = _rank_layer(geom, p, budget, limit, np.array(sp), backend, preservation, tile, loop_order, S, exhaustive)
    return tuple(out.walked), tuple(out.rejected.items()), out.n_designs


def _rank_layer(geom: LayerGeom, p: Platform, budget: int, limit: float, sp: np.ndarray, backend: str,
                preservation: str, tile, loop_order, S, exhaustive: bool) -> LayerSpace:
    """Rank one layer's designs and walk the best (all of them when ``exhaustive``); ``limit``: the largest
    unit energy (J, :meth:`PowerContext.atomic_limit_J`), ``sp``: :func:`~.schedule.rank.surrogate_params`.

    Three stages: every (tile sizes, backend, S) by the surrogate on its closed-form lower bound
    (:func:`aidi.models.schedule.rank.rank_space`, which also checks SRAM); the best :data:`WALK_TOP` under
    every loop order by the surrogate on their exact closed-form totals (:func:`.schedule.closed.design_totals`);
    those walked in that order until :data:`ORACLE_TOP` pass the walk's checks (unit energy, SRAM slots).
    """
    from .costs.fast import geom_vector
    from .schedule.rank import S_FIXED, S_HYPERTILE, S_LAYER, S_TILE, rank_space, walk_ranked

    backends = backend_choices(None, backend) if geom.weighted else ["cpu"]
    m, ho, wo = geom.out_shape
    if tile is not None:
        d0 = normalize_design(geom, ExecutionDesign(*(int(v) for v in tile)))
        tiles = np.array([[d0.Tr, d0.Tc, d0.Tm, d0.Tn]], np.int64)
    else:
        tiles = _tile_grid(geom)
    orders = [loop_order] if loop_order else list(LOOP_ORDERS)
    n_ord = len(orders)
    runtime = runtime_model(p)
    if S is not None:
        s_mode, s_fixed = S_FIXED, int(S)
    else:
        s_mode, s_fixed = {"hypertile": S_HYPERTILE, "tile": S_TILE}.get(preservation, S_LAYER), 1
    arena_cap = p.lea_ram_bytes if may_use_lea(backend) else budget  # a LEA plan's arena sits in LEA RAM
    gv, pv = geom_vector(geom), _platform_vector(p)
    rej_sram, rej_atom, rk, rb, rs, units, sur = rank_space(
        gv, pv, tiles, np.array([b == "lea" for b in backends]), runtime, budget,
        arena_cap, s_mode, s_fixed, float(limit), sp)
    rejected = {"sram": rej_sram * n_ord, "atomicity": rej_atom * n_ord, "fram": 0, "pruned": 0}
    n_designs = (rej_sram + rej_atom + len(rk)) * n_ord
    if len(rk) == 0:
        return LayerSpace(geom, [], rejected, n_designs)
    if exhaustive or len(sur) <= WALK_TOP:
        first = np.argsort(sur, kind="stable")
    else:  # the best WALK_TOP (a deterministic selection), best first
        top = np.argpartition(sur, WALK_TOP - 1)[:WALK_TOP]
        first = top[np.lexsort((top, sur[top]))]
    # stages 2 and 3: exact closed-form totals of the best under every loop order, walked in the surrogate's order
    axes = np.array([ORDER_AXES[o] for o in orders], np.int64)
    lea = np.array([b == "lea" for b in backends])[rb[first]]
    sel = np.ascontiguousarray(tiles[rk[first]])
    sur_x, kept, off, costs, n_atom, n_sram, n_tried = walk_ranked(
        gv, pv, sel, lea, np.ascontiguousarray(rs[first]), units[first].astype(np.float64), runtime, axes, sp,
        float(limit), budget, arena_cap, -1 if exhaustive else ORACLE_TOP)
    rejected["atomicity"] += n_atom
    rejected["sram"] += n_sram
    walked: list[Walked] = []
    durations, energy = costs[:, :, 0].sum(axis=1) / p.mclk_hz, np.ascontiguousarray(costs[:, :, 1])
    s_of, b_of, sel_l = rs[first].tolist(), rb[first].tolist(), sel.tolist()
    for flat, a, b in zip(kept.tolist(), off[:-1].tolist(), off[1:].tolist()):
        i, o = divmod(flat, n_ord)
        d = ExecutionDesign(*sel_l[i], orders[o], s_of[i], preservation, backends[b_of[i]])
        walked.append(Walked(d, durations[a:b], energy[a:b], float(sur_x[flat])))
    rejected["pruned"] += len(rk) * n_ord - n_tried
    return LayerSpace(geom, walked, rejected, n_designs)


class _UnitNames:
    """Unit names ``L<layer>/u<k>`` made on demand (only error messages read them)."""

    def __init__(self, layers: np.ndarray):
        self.layers = layers

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, i: int) -> str:
        first = int(np.searchsorted(self.layers, self.layers[i], side="left"))
        return f"L{int(self.layers[i])}/u{int(i - first)}"


def _platform_costs(p: Platform) -> dict:
    """The :class:`~aidi.sim.workload.Workload` fields a platform ``p`` fixes (boot, sleep, dispatch, board), as
    :meth:`Workload.from_graph` sets them."""
    return dict(boot_s=p.boot_s, boot_J=p.boot_energy_J, sleep_W=p.sleep_power_W, measure_s=p.measure_s,
                measure_W=p.measure_energy_J / p.measure_s if p.measure_s > 0 else 0.0, wait_W=p.wait_power_W,
                wake_s=p.wake_s, wake_W=p.active_power_W, board_W=p.board_active_W)


def _platform_workload(d: np.ndarray, e: np.ndarray, layers: np.ndarray, p: Platform) -> Workload:
    """A Workload of units with durations ``d`` (s), energies ``e`` (J, by category) and ``layers`` on ``p``."""
    return Workload(_UnitNames(layers), layers, d, e, **_platform_costs(p))


class _NetworkLatency:
    """Oracle latencies (s, inf: does not complete) of whole networks given as one walked-design index per
    layer into ``spaces``, memoised: the oracle's answer for a network does not depend on the batch it is
    simulated in, so a network met again (the current choice in every layer's candidate set, a second
    descent pass, the alternatives) costs nothing.  ``evaluations``: networks simulated."""

    def __init__(self, spaces: list[LayerSpace], p: Platform, ctx: PowerContext):
        from ..sim import oracle

        self.spaces, self.oracle = spaces, oracle
        self.costs = _platform_costs(p)
        self.run = (ctx.power, ctx.segments, ctx.one_inference())
        self.memo: dict[tuple, float] = {}
        self.evaluations = 0

    def __call__(self, choices: list[tuple]) -> np.ndarray:
        todo = list(dict.fromkeys(c for c in choices if c not in self.memo))
        if todo:  # every network's units in one array each, the workloads views into them
            parts = [self.spaces[i].walked[j] for c in todo for i, j in enumerate(c)]
            sizes = [len(w.durations_s) for w in parts]
            d = np.concatenate([w.durations_s for w in parts])
            e = np.concatenate([w.energy_J for w in parts])
            if self.costs["board_W"] != 0.0:  # the board's column for every unit at once (else each Workload's)
                e = np.hstack([e, (self.costs["board_W"] * d)[:, None]])
            layers = np.repeat(np.tile(np.arange(len(self.spaces), dtype=np.int64), len(todo)), sizes)
            ends = np.cumsum(sizes)[len(self.spaces) - 1::len(self.spaces)].tolist()
            works = [Workload(_UnitNames(layers[a:b]), layers[a:b], d[a:b], e[a:b], **self.costs)
                     for a, b in zip([0] + ends, ends)]
            lat = self.oracle.Population(works).evaluate(*self.run).latency_s
            self.memo.update(zip(todo, np.where(np.isnan(lat), np.inf, lat).tolist()))
            self.evaluations += len(todo)
        return np.array([self.memo[c] for c in choices])


def optimize_designs(geoms: list[LayerGeom], platform: Platform | str, sram_budget: int | None, ctx: PowerContext, *,
                     backend: str = DEFAULT_BACKEND, preservation: str = "hypertile", pins=None,
                     exhaustive: bool = False, top_k: int = ORACLE_TOP, alternatives: int | None = None) -> Optimized:
    """Execution designs of ``geoms`` minimising the oracle latency of one inference under ``ctx``.

    ``pins``: per layer ``(tile, loop_order, S)`` with None for "auto" (or a fixed
    :class:`ExecutionDesign`).  Per layer, the space of :func:`search_design` (tiles over divisors, loop
    orders, S over powers of two and the tile count, backends) is ranked by a surrogate latency (lower-bound
    costs, recharge and reboots, the dispatch policy's losses); the best :data:`WALK_TOP` are walked
    (constraints: SRAM budget, unit energy within one power cycle / the dispatch threshold, FRAM
    capacity) and the best ``top_k`` simulated with the oracle on the whole network, layer by layer, until no
    layer changes (at most :data:`MAX_PASSES` passes).  ``exhaustive``: every design of every layer is
    walked and every combination simulated (ValueError when more than :data:`EXHAUSTIVE_LIMIT`): the
    reference the tests compare with.  ``alternatives``: designs per layer reported in
    :attr:`LayerChoice.alternatives` besides the chosen one (default ``top_k``; 0: only the chosen one;
    reporting only, the choice does not depend on it).
    Raises ValueError naming the layer when nothing fits.
    """
    import itertools

    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    pins = pins or [None] * len(geoms)
    p_h = ctx.segments.typical_power(ctx.power.v_off, ctx.power.v_on) * ctx.power.converter_efficiency
    spaces = []
    for g, pin in zip(geoms, pins):
        if isinstance(pin, ExecutionDesign):  # fixed by the scenario: only the backend may be open
            walked = []
            for b in backend_choices(pin.backend, backend) if g.weighted else ["cpu"]:
                d = replace(normalize_design(g, pin), backend=b)
                uc = walk(_tables(g, d, p), d, g).unit_cost
                walked.append(Walked(d, uc[:, :, 0].sum(axis=1) / p.mclk_hz, np.ascontiguousarray(uc[:, :, 1]), 0.0))
            spaces.append(LayerSpace(g, walked, dict.fromkeys(REASONS, 0), len(walked)))
            continue
        tile, order, s = pin if pin is not None else (None, None, None)
        if tile is not None:
            _check_args(g, ctx.e_unit_J, preservation, tile)
        sp = _layer_space(g, p, budget, ctx, p_h, backend, preservation, tile, order, s, exhaustive)
        if not sp.walked:
            _raise_infeasible(g, p, budget, ctx.atomic_limit_J(p),
                              "every design is over the SRAM budget" if sp.rejected["sram"] == sp.n_designs
                              else "a unit needs more than one power cycle gives")
        spaces.append(sp)
    n = len(geoms)
    # FRAM: the partial-sum buffers exist when some layer has more than one input-channel tile
    nt_of = [[1] * len(sp.walked) if g.channel_tied else [-(-g.in_shape[0] // w.design.Tn) for w in sp.walked]
             for g, sp in zip(geoms, spaces)]
    no_psum, with_psum = fram_totals(geoms, [[1] * n, [2] * n])
    if no_psum > p.fram_bytes:
        raise ValueError(f"model needs {no_psum} B of FRAM data, {p.name} has {p.fram_bytes} B")
    if with_psum > p.fram_bytes:  # a layer with psums does not fit: drop those candidates
        for i, sp in enumerate(spaces):
            fits = fram_totals(geoms, [[nt if k == i else 1 for k in range(n)] for nt in nt_of[i]])
            keep = [w for w, total in zip(sp.walked, fits) if total <= p.fram_bytes]
            sp.rejected["fram"] += len(sp.walked) - len(keep)
            if not keep:
                _raise_infeasible(geoms[i], p, budget, ctx.atomic_limit_J(p), "FRAM capacity")
            sp.walked = keep
    latency = _NetworkLatency(spaces, p, ctx)
    if exhaustive:
        total = int(np.prod([len(sp.walked) for sp in spaces], dtype=np.float64))
        if total > EXHAUSTIVE_LIMIT:
            raise ValueError(f"exhaustive search: {total} design combinations exceed the limit of "
                             f"{EXHAUSTIVE_LIMIT}; use a smaller network or drop --exhaustive")
        best, best_lat, chunk = None, np.inf, []
        combos = itertools.product(*(range(len(sp.walked)) for sp in spaces))
        while True:
            chunk = list(itertools.islice(combos, 4096))
            if not chunk:
                break
            lat = latency(chunk)
            k = int(np.argmin(lat))
            if lat[k] < best_lat:
                best_lat, best = float(lat[k]), chunk[k]
        current = list(best) if best is not None else [0] * n

    def swapped(i: int, j: int) -> tuple:  # the current network with layer i's walked design j
        return tuple(current[:i]) + (j,) + tuple(current[i + 1:])

    def candidates(i: int, top: int) -> list[int]:  # layer i's best ``top`` walked designs and its current one
        cands = list(range(min(top, len(spaces[i].walked))))
        return cands if current[i] in cands else cands + [current[i]]

    if not exhaustive:
        # Coordinate descent (Gauss-Seidel: each layer's step sees the steps before it).  The first pass is one
        # oracle call per layer: its steps usually change the network.  A later pass usually changes nothing,
        # so it simulates every remaining layer's candidates in one call and walks them in layer order; a step
        # that changes the network makes the later layers' results stale, and they are simulated again (the
        # memo keeps what is still valid).  The decisions are those of one call per layer.
        current = [0] * n  # the surrogate's best per layer
        best_lat = np.inf
        for pass_no in range(MAX_PASSES):
            changed = False
            i = 0
            while i < n:
                batch = [(k, candidates(k, top_k)) for k in range(i, n if pass_no else i + 1)]
                lat_all = latency([swapped(k, j) for k, cands in batch for j in cands])
                at = 0
                for k, cands in batch:
                    lat = lat_all[at:at + len(cands)]
                    at += len(cands)
                    q = int(np.argmin(lat))
                    i = k + 1
                    step = lat[q] < best_lat * (1 - 1e-12) and cands[q] != current[k]
                    best_lat = min(best_lat, float(lat[q]))
                    if step:
                        changed = True
                        current[k] = cands[q]
                        break
            if not changed or n == 1:
                break
    # alternatives per layer: the top designs swapped into the chosen network (all layers in one oracle call)
    n_alt = top_k if alternatives is None else alternatives
    per_layer = [candidates(i, n_alt) for i in range(n)]
    lat_all = latency([swapped(i, j) for i, cands in enumerate(per_layer) for j in cands])
    lat_all = np.where(np.isinf(lat_all), np.nan, lat_all)
    layers, at = [], 0
    for i, (sp, cands) in enumerate(zip(spaces, per_layer)):
        lat = lat_all[at:at + len(cands)]
        at += len(cands)
        alts = sorted(((sp.walked[j].design, float(x)) for j, x in zip(cands, lat)),
                      key=lambda a: (np.inf if np.isnan(a[1]) else a[1]))
        chosen = sp.walked[current[i]].design
        layers.append(LayerChoice(sp.geom, chosen, float(lat[cands.index(current[i])]), alts, dict(sp.rejected),
                                  sp.n_designs))
    final = float(layers[-1].latency_s) if layers else float("nan")
    return Optimized([lc.design for lc in layers], final, layers, latency.evaluations, exhaustive)
