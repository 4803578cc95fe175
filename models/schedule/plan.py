"""Frozen execution plans: one layer (:class:`LayerPlan`) and a network (:class:`NetPlan`).

A plan is everything needed to execute and cost a layer under one
:class:`~.design.ExecutionDesign`: the normalised design and backend, the tile
grid, the cost tables, the per-unit costs and the per-tile schedule recorded by
the walk, its rows of the SRAM arena, and the FRAM regions it reads and
writes.  A network's plan owns its SRAM (:attr:`NetPlan.sram`: one arena laid
out per layer, the runtime's state, the stack reserve; ``NetPlan.sram_bytes``
is the one SRAM figure, see :mod:`.memory`).  The simulator (task graph), the
functional run (:mod:`aidi.models.functional`), the C emitter
(:mod:`aidi.models.emit`) and the iNAS comparison all read plans; nothing else
re-derives a schedule or a buffer size.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

import numpy as np

from ...sim.platform import Platform, get_platform
from ...sim.taskgraph import UNIT_CATEGORIES, FramRange, TaskGraph, Unit
from ..costs import CostTables, cost_tables
from ..layers import LayerGeom, Network, geometry, parse_network
from .design import (BACKENDS, DEFAULT_BACKEND, F_INIT_PSUM, F_LOAD_B, F_LOAD_IN, F_LOAD_W, F_WRITE_OUT, F_WRITE_PSUM,
                     LOOP_NESTS, ExecutionDesign, n_stride, normalize_design)
from .memory import (FramLayout, SramLayout, check_sram, fram_layout, layer_sram_buffers, runtime_layout,
                     sram_footprint, tensor_region)
from .walk import walk


def get_platform_of(p: Platform | str) -> Platform:
    """A :class:`Platform` from a preset name or a Platform."""
    return get_platform(p) if isinstance(p, str) else p


def sram_budget_of(p: Platform, sram_budget: int | None) -> int:
    """The SRAM budget (bytes): the platform's SRAM when None; ValueError when not in (0, SRAM]."""
    b = p.sram_bytes if sram_budget is None else int(sram_budget)
    if b <= 0:
        raise ValueError(f"sram_budget_bytes must be positive, got {b}")
    if b > p.sram_bytes:
        raise ValueError(f"sram_budget_bytes {b} exceeds the {p.name} SRAM of {p.sram_bytes} B")
    return b


def backend_choices(design_backend: str | None, backend: str) -> list[str]:
    """Backends to try: the design's, else ``backend`` ("auto": both)."""
    b = design_backend or backend
    if b == "auto":
        return list(BACKENDS)
    if b not in BACKENDS:
        raise ValueError(f"execution.backend must be one of {', '.join(BACKENDS)} or auto, got {b!r}")
    return [b]


def _geom_of(layer) -> LayerGeom:
    return layer.geom if hasattr(layer, "geom") else layer


# --------------------------------------------------------------------------- costing one design
@dataclass(frozen=True)
class DesignCost:
    """Totals of one layer under one design.

    cycles: MCLK cycles of all units; energy_J: total (J); by_category: energy per
    :data:`UNIT_CATEGORIES`; max_unit_energy_J: the largest unit (J); n_units,
    n_tiles; sram_bytes: the layer's SRAM (:func:`~.memory.sram_footprint`: arena rows, runtime state,
    stack); sram_reason: why it does not fit (None if it does).
    """

    design: ExecutionDesign
    cycles: float
    energy_J: float
    by_category: dict
    max_unit_energy_J: float
    n_units: int
    n_tiles: int
    sram_bytes: int
    slots: int
    sram_reason: str | None = None

    def latency_s(self, mclk_hz: float) -> float:
        return self.cycles / mclk_hz


def evaluate_design(layer, design: ExecutionDesign, platform: Platform | str, sram_budget: int | None = None,
                    backend: str = DEFAULT_BACKEND, idempotent: bool = True) -> DesignCost:
    """Cost of one layer under one design (no SRAM error: see ``sram_reason``).

    ``backend`` ("lea", "cpu" or "auto" = the faster of both) applies unless the
    design pins its own; the returned ``DesignCost.design`` has it set.
    """
    geom = _geom_of(layer)
    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    best = None
    for b in backend_choices(design.backend, backend) if geom.weighted else ["cpu"]:
        d = replace(normalize_design(geom, design), backend=b)
        tab = cost_tables(geom, d.Tr, d.Tc, d.Tm, d.Tn, p, b)
        w = walk(tab, d, geom, idempotent=idempotent)
        bufs = layer_sram_buffers(geom, d, w.acc_extent, b)
        tot = w.unit_cost.sum(axis=0)
        why = check_sram(geom, bufs, budget, p, b, int(w.max_slots))
        c = DesignCost(d, float(tot[:, 0].sum()), float(tot[:, 1].sum()),
                       {c: float(tot[k, 1]) for k, c in enumerate(UNIT_CATEGORIES)}, float(w.max_unit_energy),
                       w.unit_cost.shape[0], int(np.prod(tab.grid)), sram_footprint(bufs), int(w.max_slots),
                       why and f"{geom.describe()}: {why}")
        if best is None or (c.sram_reason is None, -c.cycles) > (best.sram_reason is None, -best.cycles):
            best = c
    return best


# --------------------------------------------------------------------------- plans
@dataclass
class LayerPlan:
    """Everything needed to execute and cost one layer.

    Attributes:
        geom, design (normalised), backend.
        grid: tile grid ``(Mt, Nt, Rt, Ct)``; tables: per-axis extents and cost tables.
        sram: the layer's arena rows ``name -> (offset, bytes)`` (:func:`~.memory.layer_sram_buffers`);
            sram_bytes: its SRAM need (:func:`~.memory.sram_footprint`: arena rows, runtime state, stack).
        unit_cost: ``(U, 3, 2)`` [category][cycles, energy] per unit (the last
            unit of the layer may hold fewer than S tiles).
        tiles: per-tile schedule arrays ``idx, flags, slot, rd, wr, t_end, w_start``
            (see :class:`~.walk.WalkResult`).
        fram_in / fram_out: FRAM region names of the layer's (first) input and output tensors.
        unit_offset: index of the layer's first unit in the task graph.
        fram_src: ``(region, element offset)`` of every input view (an add has two).
        out_offset: element offset of the output inside ``fram_out`` (a concat's channel slice).
    """

    geom: LayerGeom
    design: ExecutionDesign
    backend: str
    grid: tuple[int, int, int, int]
    tables: CostTables = field(repr=False)
    sram: dict[str, tuple[int, int]]
    sram_bytes: int
    slots: int
    unit_cost: np.ndarray = field(repr=False)
    tiles: dict[str, np.ndarray] = field(repr=False)
    fram_in: str
    fram_out: str
    unit_offset: int = 0
    fram_src: tuple[tuple[str, int], ...] = ()
    out_offset: int = 0

    @property
    def n_units(self) -> int:
        return self.unit_cost.shape[0]

    @property
    def n_tiles(self) -> int:
        return int(self.tiles["flags"].shape[0])

    @property
    def loop_nest(self) -> tuple[str, str, str, str]:
        """Tile axes outer -> inner (``"m"``, ``"n"``, ``"r"``, ``"c"``)."""
        return LOOP_NESTS[self.design.loop_order]

    @property
    def n_stride(self) -> int:
        """Distance in the tile sequence between consecutive input-channel tiles of one output block."""
        return n_stride(self.grid, self.design.loop_order)

    def unit_tiles(self, k: int) -> range:
        """Tile indices (in loop order) of the layer's unit ``k``."""
        return range(k * self.design.S, min((k + 1) * self.design.S, self.n_tiles))

    def unit_cycles(self, k: int) -> float:
        return float(self.unit_cost[k, :, 0].sum())

    @property
    def runtime(self):
        """The C runtime's tile geometry and buffer sizes (:class:`~.memory.RuntimeLayout`)."""
        return runtime_layout(self.geom, self.design, self.grid[1])

    @property
    def cycles(self) -> float:
        """MCLK cycles of all the layer's units."""
        return float(self.unit_cost[:, :, 0].sum())


@dataclass(frozen=True)
class UnitWork:
    """Payload of a task-graph unit: its layer plan and index within the layer."""

    plan: "NetPlan" = field(repr=False, compare=False)
    layer: int
    k: int


@dataclass
class NetPlan:
    """A network tiled for a platform: layer plans, FRAM layout, budget."""

    geoms: list[LayerGeom] = field(repr=False)
    layers: list[LayerPlan]
    fram: FramLayout
    platform: Platform
    sram_budget: int
    backend: str
    idempotent: bool = True
    units: list[tuple[int, int]] = field(default_factory=list, repr=False)  # global unit -> (layer, k)

    @property
    def designs(self) -> list[ExecutionDesign]:
        return [lp.design for lp in self.layers]

    @property
    def sram(self) -> SramLayout:
        """The network's SRAM: one arena laid out per layer, the runtime state, the stack reserve."""
        return SramLayout(tuple(lp.sram for lp in self.layers), any(lp.backend == "lea" for lp in self.layers))

    @property
    def sram_bytes(self) -> int:
        """The one SRAM figure (B): the largest layer's need, what the emitted runtime allocates
        (``AIDI_SRAM_BYTES``) and ``aidi check`` reports as ``sram_max_bytes``."""
        return self.sram.total_bytes

    def task_graph(self) -> TaskGraph:
        """Units in execution order with cycles, energy per category, SRAM and FRAM ranges."""
        out = []
        for lp in self.layers:
            reads, writes = unit_fram_ranges(lp, self.fram)
            for k in range(lp.n_units):
                uc = lp.unit_cost[k]
                out.append(Unit(
                    name=f"L{lp.geom.index}/u{k}", layer=lp.geom.index, cycles=float(uc[:, 0].sum()),
                    energy_J={c: float(uc[j, 1]) for j, c in enumerate(UNIT_CATEGORIES)},
                    sram_bytes=lp.sram_bytes, fram_reads=reads[k], fram_writes=writes[k],
                    tiles=len(lp.unit_tiles(k)), payload=UnitWork(self, lp.geom.index, k)))
        return TaskGraph(out, [f"{g.name}{g.index}" for g in self.geoms], self.platform.mclk_hz)


def _box_extent(c0, cn, y0, yn, x0, xn, h, w):
    """Flat [start, end) element extent of CHW boxes (vectorised)."""
    start = (c0 * h + y0) * w + x0
    end = ((c0 + cn - 1) * h + y0 + yn - 1) * w + x0 + xn
    return start, end


def unit_fram_ranges(lp: LayerPlan, fram: FramLayout):
    """Per unit: bounding FRAM byte ranges per region read and written."""
    g, tab, tl = lp.geom, lp.tables, lp.tiles
    C, H, W = g.in_shape
    M, Ho, Wo = g.out_shape
    mi, ni, ri, ci = (tl["idx"][:, k] for k in range(4))
    fl = tl["flags"]
    m0, tm, r0, tr, c0, tc = tab.m0[mi], tab.tm[mi], tab.r0[ri], tab.tr[ri], tab.c0[ci], tab.tc[ci]
    if g.channel_tied:
        x0c, xn = m0, tm
    else:
        x0c, xn = tab.n0[ni], tab.tn[ni]
    pt, pl = g.pads[0], g.pads[1]
    y0 = np.maximum(r0 * g.sh - pt, 0)
    y1 = np.minimum(r0 * g.sh - pt + (tr - 1) * g.sh + g.kh, H)
    xa = np.maximum(c0 * g.sw - pl, 0)
    xb = np.minimum(c0 * g.sw - pl + (tc - 1) * g.sw + g.kw, W)
    items = []  # (mask, region, start_elem, end_elem, bytes_per_elem, is_write)
    s, e = _box_extent(x0c, xn, y0, y1 - y0, xa, xb - xa, H, W)
    for region, off in lp.fram_src or ((lp.fram_in, 0),):
        items.append((fl & F_LOAD_IN, region, s + off, e + off, 2, False))
    if g.weighted:
        kk = g.kh * g.kw
        if g.channel_tied:
            s, e = m0 * kk, (m0 + tm) * kk
        else:
            s, e = (m0 * C + tab.n0[ni]) * kk, ((m0 + tm - 1) * C + tab.n0[ni] + tab.tn[ni]) * kk
        items.append((fl & F_LOAD_W, f"w{g.index}", s, e, 2, False))
        items.append((fl & F_LOAD_B, f"b{g.index}", m0, m0 + tm, 4, False))
    os_, oe = _box_extent(m0, tm, r0, tr, c0, tc, Ho, Wo)
    items.append((fl & F_WRITE_OUT, lp.fram_out, os_ + lp.out_offset, oe + lp.out_offset, 2, True))
    for par in (0, 1):
        items.append(((fl & F_INIT_PSUM) * (tl["rd"] == par), f"psum{par}", os_, oe, 4, False))
        items.append(((fl & F_WRITE_PSUM) * (tl["wr"] == par), f"psum{par}", os_, oe, 4, True))
    n_units, S = lp.n_units, lp.design.S
    starts = np.arange(0, lp.n_tiles, S)
    reads = [[] for _ in range(n_units)]
    writes = [[] for _ in range(n_units)]
    big = np.iinfo(np.int64).max
    for mask, region, st, en, bpe, is_w in items:
        mask = np.asarray(mask) != 0
        if not mask.any():
            continue
        lo = np.minimum.reduceat(np.where(mask, st, big), starts)
        hi = np.maximum.reduceat(np.where(mask, en, -1), starts)
        base = fram.regions[region][0]
        for k in np.nonzero(hi >= 0)[0]:
            r = FramRange(int(base + lo[k] * bpe), int((hi[k] - lo[k]) * bpe))
            (writes if is_w else reads)[k].append(r)
    prog = fram.range("progress")
    return ([tuple(sorted(r, key=lambda x: x.start)) for r in reads],
            [tuple(sorted(w, key=lambda x: x.start)) + (prog,) for w in writes])


def geoms_of(model, input_shape=None) -> list[LayerGeom]:
    """Executed layers of a QModel, Network, LayerGeom list, or layer dicts + ``input_shape``."""
    if hasattr(model, "layers") and model.layers and hasattr(model.layers[0], "geom"):
        return [ql.geom for ql in model.layers]  # QModel
    if isinstance(model, Network):
        return geometry(model)
    if isinstance(model, Sequence) and model and isinstance(model[0], LayerGeom):
        return list(model)
    if isinstance(model, Sequence):
        return geometry(parse_network(model, input_shape))
    raise ValueError(f"cannot tile a {type(model).__name__}: expected a QModel, Network, LayerGeom list or layer dicts")


def plan_layer(geom: LayerGeom, design: ExecutionDesign, platform: Platform | str, sram_budget: int | None = None,
               backend: str = DEFAULT_BACKEND, idempotent: bool = True, fram_in: str = "input",
               fram_out: str = "act0") -> LayerPlan:
    """Tile one layer; raises ValueError if the design does not fit the SRAM budget.

    The backend is the design's, else ``backend`` ("auto": the faster of LEA and CPU that fits).
    """
    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    cands = backend_choices(design.backend, backend)
    if len(cands) > 1:
        design = evaluate_design(geom, design, p, budget, backend, idempotent).design
    b = (design.backend or cands[0]) if geom.weighted else "cpu"
    d = replace(normalize_design(geom, design), backend=b)
    tab = cost_tables(geom, d.Tr, d.Tc, d.Tm, d.Tn, p, b)
    w = walk(tab, d, geom, idempotent=idempotent, record=True)
    bufs = layer_sram_buffers(geom, d, w.acc_extent, b)
    why = check_sram(geom, bufs, budget, p, b, int(w.max_slots))
    if why:
        raise ValueError(f"{geom.describe()}: {why}")
    return LayerPlan(geom, d, b, tab.grid, tab, bufs, sram_footprint(bufs), int(w.max_slots), w.unit_cost,
                     {"idx": w.idx, "flags": w.flags, "slot": w.slot, "rd": w.rd, "wr": w.wr, "t_end": w.t_end,
                      "w_start": w.w_start}, fram_in, fram_out)


def check_lea_arena(plans: Sequence[LayerPlan], p: Platform) -> None:
    """ValueError when a plan runs a layer on the LEA (so its one arena sits in LEA RAM) and another layer's
    arena rows exceed the LEA RAM (each LEA layer's own rows were checked by :func:`plan_layer`)."""
    if not any(lp.backend == "lea" for lp in plans):
        return
    for lp in plans:
        why = check_sram(lp.geom, lp.sram, p.sram_bytes, p, lp.backend, lp.slots, lea_arena=True)
        if why:
            raise ValueError(f"{lp.geom.describe()}: {why} (the plan runs a layer on the LEA, so the whole "
                             "arena sits in LEA RAM)")


def plan_network(model, designs, platform: Platform | str = "msp430fr5994", sram_budget: int | None = None, *,
                 backend: str = DEFAULT_BACKEND, idempotent: bool = True, input_shape=None) -> NetPlan:
    """Tile every executed layer of ``model`` (QModel, Network, LayerGeom list, or layer dicts + input_shape).

    ``designs``: one :class:`ExecutionDesign` per executed layer, or a dict
    ``{layer index: design}`` covering every layer.  Automatic designs come
    from :func:`aidi.models.design_search.design_network`.  Raises ValueError
    for a wrong design count, a missing design, a design that does not fit
    SRAM (or, when a layer runs on the LEA, LEA RAM: :func:`check_lea_arena`),
    or an FRAM overflow.
    """
    p = get_platform_of(platform)
    budget = sram_budget_of(p, sram_budget)
    geoms = geoms_of(model, input_shape)
    if isinstance(designs, ExecutionDesign) or designs is None or isinstance(designs, str):
        raise ValueError("designs: give one ExecutionDesign per executed layer "
                         f"({', '.join(g.name for g in geoms)})")
    if isinstance(designs, Mapping):
        designs = [designs.get(i) for i in range(len(geoms))]
    designs = list(designs)
    if len(designs) != len(geoms):
        raise ValueError(f"designs: {len(designs)} given for {len(geoms)} executed layers "
                         f"({', '.join(g.name for g in geoms)})")
    for g, d in zip(geoms, designs):
        if not isinstance(d, ExecutionDesign):
            raise ValueError(f"{g.describe()}: no execution design given (automatic designs: design_search)")
    plans = []
    for g, d in zip(geoms, designs):
        lp = plan_layer(g, d, p, budget, backend, idempotent, tensor_region(g.src[0][0], geoms),
                        tensor_region(g.dst[0], geoms))
        lp.fram_src = tuple((tensor_region(t, geoms), off) for t, off in g.src)
        lp.out_offset = g.dst[1]
        plans.append(lp)
    check_lea_arena(plans, p)
    fram = fram_layout(geoms, [lp.grid[1] for lp in plans])  # tensors placed by lifetime; refuses aliasing
    if fram.total > p.fram_bytes:
        raise ValueError(f"model needs {fram.total} B of FRAM data, {p.name} has {p.fram_bytes} B")
    units, off = [], 0
    for lp in plans:
        lp.unit_offset = off
        units.extend((lp.geom.index, k) for k in range(lp.n_units))
        off += lp.n_units
    return NetPlan(geoms, plans, fram, p, budget, backend, idempotent, units)
