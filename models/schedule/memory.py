"""SRAM and FRAM layout of a planned network: the one memory map the simulator, ``aidi check`` and the C runtime read.

SRAM (TFLite Micro's arena is the model): the emitted runtime allocates one
arena (``aidi_arena``, 4-byte aligned; in ``.leaRAM`` on a LEA build) whose
layout changes per layer, plus a fixed runtime state and the stack.  A layer's
arena rows (:data:`ARENA_ROWS`, :func:`layer_sram_buffers`; each row 4-byte
aligned for the LEA) are its int32 accumulators (one output block, or the
walk's live accumulator slots when more), on a LEA layer the LEA's Q31
result, sum|w| per output channel and one im2col vector, then the weight tile
and the input tile(s).  A layer needs::

    align(end of its last row) + RUNTIME_STATE_BYTES + STACK_BYTES

and the network needs the largest layer's total (:class:`SramLayout`): that
is the one SRAM figure that ``aidi check``/``run``/``explore``, the optimizer,
the NAS, the emitted header (``AIDI_SRAM_BYTES``) and ``make size`` (``.bss``
plus the linker script's stack reserve) all report and hold against
``[device] sram_budget_bytes``.  Counted: the arena, the runtime's state
(:data:`RUNTIME_STATE_BYTES`), the stack reserve (:data:`STACK_BYTES`).  Not
counted: what an application linking the library adds, and, on the host
build, the wider pointers of the runtime state.  Biases and outputs go between
FRAM and the accumulators directly (no SRAM staging), under every cost model.
When a plan runs a layer on the LEA the whole arena sits in LEA RAM, so it
must fit ``Platform.lea_ram_bytes`` too.

FRAM data (:func:`fram_layout`): the progress records, the input sample,
per weighted layer its int16 weights and int32 bias, one activation region
``act`` in which every intermediate tensor (``t<k>``) is placed by its
lifetime (the planner reuses a tensor's bytes once its last reader is done),
the output, and two int32 partial-sum buffers (double buffering, see
:mod:`.walk`).  The emitted C runtime allocates the same regions
(``aidi_progress``, ``aidi_input``, ``aidi_w<i>``/``aidi_b<i>``,
``aidi_act``, ``aidi_output``, ``aidi_psum``) and static-asserts each size
against this layout.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ...sim.platform import Platform
from ...sim.taskgraph import FramRange
from ..layers import LayerGeom
from ..runtime_sram import ALIGN, RUNTIME_STATE_BYTES, STACK_BYTES
from .design import ExecutionDesign

#: progress records in FRAM: two records of ``PROGRESS_WORDS`` 16-bit words {g_lo, g_hi, ~g_lo, ~g_hi};
#: the commit of unit index g rewrites record g % 2 (see models/emit/runtime/aidi_runtime.h)
PROGRESS_RECORDS = 2
PROGRESS_WORDS = 4
#: FRAM bytes of the progress records (the C runtime static-asserts ``sizeof aidi_progress`` against it)
PROGRESS_BYTES = 2 * PROGRESS_RECORDS * PROGRESS_WORDS


def align(n: int) -> int:
    """``n`` rounded up to :data:`ALIGN` bytes."""
    return (int(n) + ALIGN - 1) // ALIGN * ALIGN


class RuntimeLayout(NamedTuple):
    """One layer's tile geometry and SRAM/FRAM buffer sizes as the emitted C runtime lays them out.

    Element counts, not bytes (int16 unless noted).  The arena rows
    (:func:`layer_sram_buffers`) are sized from these; the FRAM partial sums
    (``AIDI_PSUM_LEN``) from the largest ``psum_elems``.
    """

    tri: int  # input tile rows: (Tr - 1) * sh + kh
    tci: int  # input tile columns: (Tc - 1) * sw + kw
    in_buf: int  # input tiles: inputs * Tin * tri * tci (Tin = Tn, or Tm for channel-tied layers; add: 2 inputs)
    w_stride: int  # int16 per output channel in the weight tile, rounded up to even (LEA vectors)
    w_buf: int  # weight tile: Tm * w_stride
    acc_buf: int  # int32 accumulators of one output block: Tm * Tr * Tc (0 for pools)
    psum_elems: int  # int32 partial sums per FRAM slot: the layer's outputs when Nt > 1, else 0
    macs: int  # multiply-accumulates (pools: window taps) of the whole layer


def runtime_layout(geom: LayerGeom, d: ExecutionDesign, n_in_tiles: int) -> RuntimeLayout:
    """:class:`RuntimeLayout` of ``geom`` under a normalised design ``d`` with ``n_in_tiles`` input-channel tiles."""
    tri = (d.Tr - 1) * geom.sh + geom.kh
    tci = (d.Tc - 1) * geom.sw + geom.kw
    per_m = geom.kh * geom.kw * (1 if geom.channel_tied else d.Tn) if geom.weighted else 0
    w_stride = per_m + (per_m & 1)
    window = geom.kh * geom.kw * (1 if geom.channel_tied else geom.in_shape[0]) * len(geom.src)
    out = int(np.prod(geom.out_shape))
    return RuntimeLayout(tri, tci, len(geom.src) * d.Tn * tri * tci, w_stride, d.Tm * w_stride,
                         d.Tm * d.Tr * d.Tc if geom.weighted else 0,
                         out if geom.weighted and n_in_tiles > 1 else 0, out * window)


class ArenaRow(NamedTuple):
    """One row of a layer's arena table: a buffer the C runtime addresses through the layer's table."""

    name: str  # key in LayerPlan.sram
    c_type: str  # element type of the buffer in C
    c_name: str  # member of the layer's struct in the generated arena union, and pointer field of aidi_layer_t


#: the arena rows in layout order (zero-sized rows are left out of a layer's layout).  A new operation that
#: needs another SRAM buffer adds a row here, its size in :func:`layer_sram_buffers` (and its mirror
#: :func:`aidi.models.costs.fast.sram_fits`), and the runtime's use of the pointer.
ARENA_ROWS = (
    ArenaRow("acc", "int32_t", "acc"),  # accumulators of one output block (or the walk's live slots)
    ArenaRow("lea_mac", "int32_t", "mac"),  # LEA layers: msp_mac_q15's Q31 result
    ArenaRow("lea_wabs", "uint32_t", "wabs"),  # LEA layers: sum |w| per output channel of the weight tile
    ArenaRow("lea_vec", "int16_t", "vec"),  # LEA layers: one im2col input vector (even length)
    ArenaRow("weights", "int16_t", "w"),  # weight tile, Tm rows of w_stride
    ArenaRow("input", "int16_t", "in"),  # input tile(s), zero padded
)


def layer_sram_buffers(geom: LayerGeom, d: ExecutionDesign, acc_extent: int, backend: str) -> dict[str, tuple[int, int]]:
    """A layer's arena rows ``name -> (offset, bytes)`` in :data:`ARENA_ROWS` order, each start 4-byte aligned.

    ``d``: the normalised design; ``backend``: the layer's ("lea" adds the LEA rows to a weighted layer);
    ``acc_extent``: bytes of accumulator slots the walk keeps live (the runtime's cost model spills, so one
    block; the iNAS-style model may keep several): the accumulator row holds the larger of it and one block.
    """
    rt = runtime_layout(geom, d, 1)
    sizes = {}
    if geom.weighted:
        sizes["acc"] = max(4 * rt.acc_buf, int(acc_extent))
        if backend == "lea":
            sizes["lea_mac"] = 4
            sizes["lea_wabs"] = 4 * d.Tm
            sizes["lea_vec"] = 2 * max(2, rt.w_stride)
        sizes["weights"] = 2 * rt.w_buf
    sizes["input"] = 2 * rt.in_buf
    out, off = {}, 0
    for k, v in sizes.items():
        out[k] = (off, int(v))
        off = align(off + v)
    return out


def arena_extent(buffers: Mapping[str, tuple[int, int]]) -> int:
    """Bytes of arena a layer's rows span: the end of the last one, 4-byte aligned."""
    return align(max((o + n for o, n in buffers.values()), default=0))


def sram_footprint(buffers: Mapping[str, tuple[int, int]]) -> int:
    """Bytes of SRAM a layer needs: its :func:`arena_extent` plus :data:`RUNTIME_STATE_BYTES` and
    :data:`STACK_BYTES`."""
    return arena_extent(buffers) + RUNTIME_STATE_BYTES + STACK_BYTES


def check_sram(geom: LayerGeom, buffers, budget: int, platform: Platform, backend: str, slots: int,
               lea_arena: bool = False) -> str | None:
    """None if the layer's SRAM (:func:`sram_footprint`) fits ``budget`` and, when the arena sits in LEA RAM
    (a LEA layer, or ``lea_arena``: a plan that may run any of its layers on the LEA), its arena rows fit
    the LEA RAM; else the reason (which buffers, bytes).

    The reason does not name the layer: callers prefix ``geom.describe()``.
    """
    total = sram_footprint(buffers)
    parts = ", ".join(f"{k} {n} B" + (f" ({slots} slot{'s' * (slots != 1)})" if k == "acc" else "")
                      for k, (_, n) in buffers.items())
    if total > budget:
        big = max(buffers.items(), key=lambda kv: kv[1][1])[0]
        return (f"SRAM footprint {total} B exceeds budget {budget} B (arena: {parts}; runtime state "
                f"{RUNTIME_STATE_BYTES} B, stack {STACK_BYTES} B; largest: {big})")
    ext = arena_extent(buffers)
    if (backend == "lea" or lea_arena) and ext > platform.lea_ram_bytes:
        return f"SRAM arena {ext} B ({parts}) exceeds LEA RAM {platform.lea_ram_bytes} B"
    return None


@dataclass(frozen=True)
class SramLayout:
    """A network's SRAM: the arena (laid out per layer), the runtime state and the stack reserve (bytes).

    ``layers``: each layer's arena rows ``name -> (offset, bytes)`` (:func:`layer_sram_buffers`);
    ``lea``: the arena sits in LEA RAM (a layer runs on the LEA).  ``total_bytes`` is the one SRAM figure
    (see the module docstring)."""

    layers: tuple
    lea: bool
    state_bytes: int = RUNTIME_STATE_BYTES
    stack_bytes: int = STACK_BYTES

    @property
    def arena_bytes(self) -> int:
        """The largest layer's :func:`arena_extent` (at least 4: C has no empty arrays)."""
        return max([ALIGN] + [arena_extent(b) for b in self.layers])

    @property
    def total_bytes(self) -> int:
        return self.arena_bytes + self.state_bytes + self.stack_bytes


@dataclass(frozen=True)
class FramLayout:
    """FRAM data regions ``name -> (offset, bytes)`` (offsets from the data base, 4-byte aligned)."""

    regions: dict[str, tuple[int, int]]
    total: int

    def range(self, name: str) -> FramRange:
        o, n = self.regions[name]
        return FramRange(o, n)


def tensor_lifetimes(geoms: Sequence[LayerGeom]) -> dict[int, tuple[int, int]]:
    """``tensor -> (first layer writing it, last layer reading it)`` (inclusive; tensor 0, the input, from -1)."""
    life: dict[int, list[int]] = {0: [-1, -1]}
    for g in geoms:
        for t, _ in g.src:
            life.setdefault(t, [g.index, g.index])[1] = g.index
        t = g.dst[0]
        lo_hi = life.setdefault(t, [g.index, g.index])
        lo_hi[0] = min(lo_hi[0], g.index)
        lo_hi[1] = max(lo_hi[1], g.index)
    return {t: (a, b) for t, (a, b) in life.items()}


def place_tensors(sizes: Mapping[int, int], life: Mapping[int, tuple[int, int]]) -> tuple[dict[int, int], int]:
    """Greedy lifetime placement (TFLite Micro's greedy planner): tensors by decreasing size, each at the
    lowest aligned byte offset clear of every placed tensor whose lifetime overlaps its own.

    ``sizes``: bytes per tensor.  Returns ``(offsets, arena bytes)``."""
    order = sorted(sizes, key=lambda t: (-sizes[t], life[t][0], t))
    placed: list[tuple[int, int, int]] = []  # (offset, end, tensor)
    offsets = {}
    for t in order:
        a, b = life[t]
        busy = sorted((o, e) for o, e, u in placed if not (life[u][1] < a or b < life[u][0]))
        off = 0
        for o, e in busy:
            if off + sizes[t] <= o:
                break
            off = max(off, align(e))
        offsets[t] = off
        placed.append((off, off + sizes[t], t))
    return offsets, align(max((e for _, e, _ in placed), default=0))


def check_aliasing(geoms: Sequence[LayerGeom], fram: "FramLayout") -> None:
    """Refuse a layout where a layer's output overlaps an input it reads: a re-executed unit would read
    values it (or an earlier unit of its layer) already overwrote.  ValueError naming the layer and regions."""
    for g in geoms:
        o_reg, o_off = tensor_region(g.dst[0], geoms), g.dst[1]
        ob = fram.regions[o_reg][0] + 2 * o_off
        oe = ob + 2 * math.prod(g.out_shape)
        for t, off in g.src:
            i_reg = tensor_region(t, geoms)
            ib = fram.regions[i_reg][0] + 2 * off
            ie = ib + 2 * math.prod(g.in_shape)
            if ib < oe and ob < ie:
                raise ValueError(f"{g.describe()}: its output ({o_reg}, FRAM bytes {ob}..{oe}) aliases its input "
                                 f"({i_reg}, bytes {ib}..{ie}); a re-executed unit would read what it overwrote, "
                                 "so the plan is not idempotent")


def tensor_region(t: int, geoms: Sequence[LayerGeom]) -> str:
    """FRAM region name of tensor ``t``: ``input`` (0), ``output`` (the last layer's), else ``t<k>``."""
    if t == 0:
        return "input"
    if t == geoms[-1].dst[0]:
        return "output"
    return f"t{t}"


def fram_layout(geoms: Sequence[LayerGeom], n_in_tiles: Sequence[int]) -> FramLayout:
    """The FRAM regions of a network whose layers have ``n_in_tiles`` input-channel tiles each.

    Intermediate tensors share one region ``act`` by lifetime (:func:`place_tensors`): each is a
    region ``t<k>`` inside it; a tensor that a skip connection keeps alive holds its place until its
    last reader.  The partial-sum buffers hold the largest output of a layer with more than one
    input-channel tile, as the C runtime's ``AIDI_PSUM_LEN`` does.  Raises ValueError when a layer's
    output would alias its input (:func:`check_aliasing`).
    """
    regions, off = _fram_tensors(geoms)
    off = _with_psum(regions, off, psum_bytes(geoms, n_in_tiles))
    layout = FramLayout(regions, off)
    check_aliasing(geoms, layout)
    return layout


def fram_totals(geoms: Sequence[LayerGeom], n_in_tiles: Sequence[Sequence[int]]) -> list[int]:
    """``fram_layout(geoms, nts).total`` (bytes) for every ``nts`` of ``n_in_tiles``, from one placement of the
    tensors (only the partial-sum buffers differ).  Raises ValueError as :func:`fram_layout`."""
    regions, off = _fram_tensors(geoms)
    check_aliasing(geoms, FramLayout(regions, off))
    return [_with_psum({}, off, psum_bytes(geoms, nts)) for nts in n_in_tiles]


def psum_bytes(geoms: Sequence[LayerGeom], n_in_tiles: Sequence[int]) -> int:
    """Bytes of one partial-sum buffer: the largest int32 output of a weighted layer with more than one
    input-channel tile (0: none)."""
    return max((4 * math.prod(g.out_shape) for g, nt in zip(geoms, n_in_tiles) if nt > 1 and g.weighted), default=0)


def _add_region(regions: dict, off: int, name: str, nbytes: int) -> int:
    """Add region ``name`` of ``nbytes`` at ``off``; returns the next aligned offset."""
    regions[name] = (off, int(nbytes))
    return align(off + nbytes)


def _fram_tensors(geoms: Sequence[LayerGeom]) -> tuple[dict, int]:
    """The FRAM regions before the partial-sum buffers (progress, input, weights and biases, ``act`` with the
    intermediate tensors, output) and the offset after them."""
    from ..layers import tensor_sizes

    regions: dict[str, tuple[int, int]] = {}
    off = _add_region(regions, 0, "progress", PROGRESS_BYTES)
    sizes = tensor_sizes(geoms)
    off = _add_region(regions, off, "input", 2 * sizes[0])
    for g in geoms:
        if g.weighted:
            off = _add_region(regions, off, f"w{g.index}", 2 * math.prod(g.weight_shape))
            off = _add_region(regions, off, f"b{g.index}", 4 * g.out_shape[0])
    out_t = geoms[-1].dst[0]
    inner = {t: 2 * n for t, n in sizes.items() if t not in (0, out_t)}
    offsets, arena = place_tensors(inner, tensor_lifetimes(geoms))
    base = off
    off = _add_region(regions, off, "act", arena)
    for t in sorted(inner):
        regions[f"t{t}"] = (base + offsets[t], inner[t])
    return regions, _add_region(regions, off, "output", 2 * sizes[out_t])


def _with_psum(regions: dict, off: int, ps: int) -> int:
    """Add the two partial-sum buffers of ``ps`` bytes each at ``off``; returns the total (bytes)."""
    return _add_region(regions, _add_region(regions, off, "psum0", ps), "psum1", ps)
