"""SRAM and FRAM layout of a planned network: the one memory map the simulator and the C templates read.

SRAM footprint of a layer (bytes, each buffer 4-byte aligned for LEA): input
tile ``2*Tin*Tri*Tci`` (``Tri = (Tr-1)*s + kh``), weight tile, bias ``4*Tm``,
int16 output staging ``2*Tm*Tr*Tc``, the accumulator slots actually used
(extent of the highest slot), plus :data:`STACK_BYTES`.  With
``backend="lea"`` the input and weight buffers must also fit the platform's
LEA RAM.

FRAM data (:func:`fram_layout`): the progress records, the input sample,
per weighted layer its int16 weights and int32 bias, two activation
ping-pong buffers (the largest output of a layer but the last), the output,
and two int32 partial-sum buffers (double buffering, see :mod:`.walk`).  The
emitted C runtime allocates the same regions (``aidi_progress``,
``aidi_input``, ``aidi_w<i>``/``aidi_b<i>``, ``aidi_act_a``/``aidi_act_b``,
``aidi_output``, ``aidi_psum``) and static-asserts each size against this
layout.
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

    tri: int  # input tile rows: (Tr - 1) * stride + kh
    tci: int  # input tile columns
    in_buf: int  # input tile: Tin * tri * tci (Tin = Tn, or Tm for channel-tied layers)
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
    tri = (d.Tr - 1) * geom.stride + geom.kh
    tci = (d.Tc - 1) * geom.stride + geom.kw
    per_m = geom.kh * geom.kw * (1 if geom.op == "dwconv" else d.Tn) if geom.weighted else 0
    w_stride = per_m + (per_m & 1)
    window = geom.kh * geom.kw * (1 if geom.channel_tied else geom.in_shape[0])
    out = int(np.prod(geom.out_shape))
    return RuntimeLayout(tri, tci, d.Tn * tri * tci, w_stride, d.Tm * w_stride,
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
    tri = (d.Tr - 1) * geom.stride + geom.kh
    tci = (d.Tc - 1) * geom.stride + geom.kw
    tin = d.Tm if geom.channel_tied else d.Tn
    sizes = {"input": 2 * tin * tri * tci}
    if geom.op in ("conv", "fc"):
        sizes["weights"] = 2 * d.Tm * d.Tn * geom.kh * geom.kw
    elif geom.op == "dwconv":
        sizes["weights"] = 2 * d.Tm * geom.kh * geom.kw
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
        if geom.op in ("conv", "fc", "dwconv") and lea > platform.lea_ram_bytes:
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


def fram_layout(geoms: Sequence[LayerGeom], n_in_tiles: Sequence[int]) -> FramLayout:
    """The FRAM regions of a network whose layers have ``n_in_tiles`` input-channel tiles each.

    The partial-sum buffers hold the largest output of a layer with more than
    one input-channel tile, as the C runtime's ``AIDI_PSUM_LEN`` does.
    """
    regions, off = {}, 0

    def add(name, nbytes):
        nonlocal off
        regions[name] = (off, int(nbytes))
        off = align(off + nbytes)

    add("progress", PROGRESS_BYTES)
    add("input", 2 * int(np.prod(geoms[0].in_shape)))
    for g in geoms:
        if g.weighted:
            add(f"w{g.index}", 2 * int(np.prod(g.weight_shape)))
            add(f"b{g.index}", 4 * g.out_shape[0])
    n = len(geoms)
    act = max((2 * int(np.prod(g.out_shape)) for g in geoms[:-1]), default=0)
    add("act0", act)  # ping-pong between the layers; the last one writes "output"
    add("act1", act if n > 2 else 0)
    add("output", 2 * int(np.prod(geoms[-1].out_shape)))
    ps = max((4 * int(np.prod(g.out_shape)) for g, nt in zip(geoms, n_in_tiles) if g.weighted and nt > 1),
             default=0)
    add("psum0", ps)
    add("psum1", ps)
    return FramLayout(regions, off)
