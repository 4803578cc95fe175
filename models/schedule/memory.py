"""SRAM and FRAM layout of a planned network: the one memory map the simulator and the C templates read.

SRAM footprint of a layer (bytes, each buffer 4-byte aligned for LEA): input
tile ``2*Tin*Tri*Tci`` (``Tri = (Tr-1)*s + kh``), weight tile, bias ``4*Tm``,
int16 output staging ``2*Tm*Tr*Tc``, the accumulator slots actually used
(extent of the highest slot), plus :data:`STACK_BYTES`.  With
``backend="lea"`` the input and weight buffers must also fit the platform's
LEA RAM.

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

from dataclasses import dataclass
from typing import Mapping, NamedTuple, Sequence

import numpy as np

from ...sim.platform import Platform
from ...sim.taskgraph import FramRange
from ..layers import LayerGeom
from .design import ExecutionDesign

#: stack and runtime locals reserved in SRAM (inferred: kernel call depth of the runtime)
STACK_BYTES = 256
#: buffer alignment in SRAM (LEA operands must be 32-bit aligned)
ALIGN = 4
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

    Element counts, not bytes (int16 unless noted).  The C runtime sizes its
    static buffers from the largest of these over all layers
    (``AIDI_IN_BUF``, ``AIDI_W_BUF``, ``AIDI_ACC_BUF``, ``AIDI_PSUM_LEN``) and
    the generated tables static-assert them.
    """

    tri: int  # input tile rows: (Tr - 1) * sh + kh
    tci: int  # input tile columns: (Tc - 1) * sw + kw
    in_buf: int  # input tiles: inputs * Tin * tri * tci (Tin = Tn, or Tm for channel-tied layers; add: 2 inputs)
    w_stride: int  # int16 per output channel in the weight tile, rounded up to even (LEA vectors)
    w_buf: int  # weight tile: Tm * w_stride
    acc_buf: int  # int32 accumulators of one output block: Tm * Tr * Tc (0 for pools)
    psum_elems: int  # int32 partial sums per FRAM slot: the layer's outputs when Nt > 1, else 0
    macs: int  # multiply-accumulates (pools: window taps) of the whole layer

    @property
    def sram_bytes(self) -> int:
        return 2 * self.in_buf + 2 * self.w_buf + 4 * self.acc_buf


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


#: bytes of the C runtime's fetch cache in ``aidi_sram_t`` (3 pointers, 5 + 4 uint16, one uint32; MSP430
#: small memory model: 2-byte pointers)
RUNTIME_CACHE_BYTES = 3 * 2 + 9 * 2 + 4


def runtime_sram_buffers(geom: LayerGeom, d: ExecutionDesign, backend: str) -> dict[str, tuple[int, int]]:
    """The emitted C runtime's SRAM (``aidi_sram_t``, models/emit/runtime/aidi_runtime.h) for one layer:
    ``name -> (offset, bytes)`` in struct order.

    int32 accumulators of one output block (the runtime spills partial sums between non-adjacent touches
    of a block, so one block is live), with the LEA kernel its Q31 result, sum|w| per output channel and
    one im2col vector, then the weight and input tiles and the fetch cache.  Bias and outputs go between
    FRAM and the accumulators directly (no SRAM staging).  The runtime sizes each buffer for the largest
    layer; this is one layer's need.
    """
    rt = runtime_layout(geom, d, 1)
    sizes = {}
    if geom.weighted:
        sizes["acc"] = 4 * rt.acc_buf
        if backend == "lea":
            sizes["lea_mac"] = 4
            sizes["lea_wabs"] = 4 * d.Tm
            sizes["lea_vec"] = 2 * max(2, rt.w_stride)
        sizes["weights"] = 2 * rt.w_buf
    sizes["input"] = 2 * rt.in_buf
    sizes["cache"] = RUNTIME_CACHE_BYTES
    out, off = {}, 0
    for k, v in sizes.items():
        out[k] = (off, int(v))
        off = align(off + v)
    return out


def runtime_sram_sizes(layouts: Sequence[RuntimeLayout], tms: Sequence[int]) -> dict[str, int]:
    """Element counts of the C runtime's static SRAM buffers for a network (``AIDI_IN_BUF``,
    ``AIDI_W_BUF``, ``AIDI_ACC_BUF``, ``AIDI_VEC_BUF``, ``AIDI_TM_MAX``): the largest need of any layer,
    at least 1 (2 and even for the LEA vectors).  ``tms``: each layer's Tm."""
    def even(v: int) -> int:
        return max(2, v + (v & 1))

    return dict(in_buf=max(1, max(r.in_buf for r in layouts)), w_buf=even(max(r.w_buf for r in layouts)),
                acc_buf=max(1, max(r.acc_buf for r in layouts)), vec_buf=even(max(r.w_stride for r in layouts)),
                tm_max=max(1, max(tms)))


def layer_sram_buffers(geom: LayerGeom, d: ExecutionDesign, acc_extent: int, backend: str,
                       runtime: bool) -> dict[str, tuple[int, int]]:
    """A layer's SRAM buffers: the emitted runtime's (:func:`runtime_sram_buffers`) when the plan is costed
    as that runtime executes (``runtime``, platforms with ``cpu_sw``), else the iNAS-style
    :func:`sram_buffers`."""
    return runtime_sram_buffers(geom, d, backend) if runtime else sram_buffers(geom, d, acc_extent)


def sram_buffers(geom: LayerGeom, d: ExecutionDesign, acc_extent: int) -> dict[str, tuple[int, int]]:
    """iNAS-style SRAM buffers ``name -> (offset, bytes)`` in layout order (each start 4-byte aligned):
    input and weight tiles, bias, int16 output staging and the accumulator slots.

    ``acc_extent``: bytes of the accumulator region actually used (from the walk).
    """
    tri = (d.Tr - 1) * geom.sh + geom.kh
    tci = (d.Tc - 1) * geom.sw + geom.kw
    tin = d.Tm if geom.channel_tied else d.Tn
    sizes = {"input": 2 * len(geom.src) * tin * tri * tci}
    if geom.weighted:
        sizes["weights"] = 2 * d.Tm * (1 if geom.channel_tied else d.Tn) * geom.kh * geom.kw
    if geom.weighted:
        sizes["bias"] = 4 * d.Tm
    sizes["output"] = 2 * d.Tm * d.Tr * d.Tc
    if geom.weighted:
        sizes["acc"] = int(acc_extent)
    out, off = {}, 0
    for k, v in sizes.items():
        out[k] = (off, int(v))
        off = align(off + v)
    return out


def sram_footprint(buffers: Mapping[str, tuple[int, int]]) -> int:
    """Bytes of SRAM a layer needs: end of the last buffer (aligned) plus :data:`STACK_BYTES`."""
    end = max((o + n for o, n in buffers.values()), default=0)
    return align(end) + STACK_BYTES


def check_sram(geom: LayerGeom, buffers, budget: int, platform: Platform, backend: str, slots: int) -> str | None:
    """None if the buffers fit ``budget`` (and, on LEA, the LEA RAM), else the reason (which buffer, bytes).

    The reason does not name the layer: callers prefix ``geom.describe()``.
    """
    total = sram_footprint(buffers)
    if total > budget:
        parts = ", ".join(f"{k} {n} B" + (f" ({slots} slot{'s' * (slots != 1)})" if k == "acc" else "")
                          for k, (_, n) in buffers.items())
        big = max(buffers.items(), key=lambda kv: kv[1][1])[0]
        return (f"SRAM footprint {total} B exceeds budget {budget} B "
                f"({parts}, stack {STACK_BYTES} B; largest: {big})")
    if backend == "lea" and "lea_mac" in buffers:  # the runtime's whole SRAM struct sits in .leaRAM
        lea = align(max(o + n for o, n in buffers.values()))
        if lea > platform.lea_ram_bytes:
            return f"LEA buffers ({lea} B: accumulators, LEA vectors, tiles, fetch cache) exceed LEA RAM {platform.lea_ram_bytes} B"
    elif backend == "lea":  # iNAS-style: the DSPLib operands (input and weight tiles) live in LEA RAM
        lea = sum(align(buffers[k][1]) for k in ("input", "weights") if k in buffers)
        if geom.weighted and lea > platform.lea_ram_bytes:
            return (f"LEA operands (input {buffers['input'][1]} B + weights "
                    f"{buffers['weights'][1]} B) exceed LEA RAM {platform.lea_ram_bytes} B")
    return None


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
        oe = ob + 2 * int(np.prod(g.out_shape))
        for t, off in g.src:
            i_reg = tensor_region(t, geoms)
            ib = fram.regions[i_reg][0] + 2 * off
            ie = ib + 2 * int(np.prod(g.in_shape))
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
    from ..layers import tensor_sizes

    regions, off = {}, 0

    def add(name, nbytes):
        nonlocal off
        regions[name] = (off, int(nbytes))
        off = align(off + nbytes)

    add("progress", PROGRESS_BYTES)
    sizes = tensor_sizes(geoms)
    add("input", 2 * sizes[0])
    for g in geoms:
        if g.weighted:
            add(f"w{g.index}", 2 * int(np.prod(g.weight_shape)))
            add(f"b{g.index}", 4 * g.out_shape[0])
    out_t = geoms[-1].dst[0]
    inner = {t: 2 * n for t, n in sizes.items() if t not in (0, out_t)}
    offsets, arena = place_tensors(inner, tensor_lifetimes(geoms))
    base = off
    add("act", arena)
    for t in sorted(inner):
        regions[f"t{t}"] = (base + offsets[t], inner[t])
    add("output", 2 * sizes[out_t])
    ps = max((4 * int(np.prod(g.out_shape)) for g, nt in zip(geoms, n_in_tiles) if g.weighted and nt > 1),
             default=0)
    add("psum0", ps)
    add("psum1", ps)
    layout = FramLayout(regions, off)
    check_aliasing(geoms, layout)
    return layout
