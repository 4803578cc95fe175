"""SRAM and FRAM layout of a planned network: the one memory map the simulator and the C templates read.

SRAM footprint of a layer (bytes, each buffer 4-byte aligned for LEA): input
tile ``2*Tin*Tri*Tci`` (``Tri = (Tr-1)*s + kh``), weight tile, bias ``4*Tm``,
int16 output staging ``2*Tm*Tr*Tc``, the accumulator slots actually used
(extent of the highest slot), plus :data:`STACK_BYTES`.  With
``backend="lea"`` the input and weight buffers must also fit the platform's
LEA RAM.

FRAM data (:func:`fram_layout`): the progress record, the input sample,
per weighted layer its int16 weights and int32 bias, two activation
ping-pong buffers, and two int32 partial-sum buffers (double buffering, see
:mod:`.walk`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ...sim.platform import Platform
from ...sim.taskgraph import FramRange
from ..layers import LayerGeom
from .design import ExecutionDesign

#: stack and runtime locals reserved in SRAM (inferred: kernel call depth of the runtime)
STACK_BYTES = 256
#: buffer alignment in SRAM (LEA operands must be 32-bit aligned)
ALIGN = 4
#: FRAM bytes of the progress record
PROGRESS_BYTES = 8


def align(n: int) -> int:
    """``n`` rounded up to :data:`ALIGN` bytes."""
    return (int(n) + ALIGN - 1) // ALIGN * ALIGN


def sram_buffers(geom: LayerGeom, d: ExecutionDesign, acc_extent: int) -> dict[str, tuple[int, int]]:
    """SRAM buffers ``name -> (offset, bytes)`` in layout order (each start 4-byte aligned).

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
    if backend == "lea":
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


def fram_layout(geoms: Sequence[LayerGeom], need_psum: bool) -> FramLayout:
    """The FRAM regions of a network (see the module docstring)."""
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
    act = max(2 * int(np.prod(g.out_shape)) for g in geoms)
    add("act0", act)
    add("act1", act if len(geoms) > 1 else 0)
    ps = max((4 * int(np.prod(g.out_shape)) for g in geoms if g.weighted), default=0) if need_psum else 0
    add("psum0", ps)
    add("psum1", ps)
    return FramLayout(regions, off)
