"""The per-operation traits table: one row per executed operation.

An executed operation (:class:`aidi.models.layers.LayerGeom` ``op``) is known
everywhere by its row here, never by a type test of its own (onnx2c's one
class per operator, TFLite Micro's op resolver):

=========  ====  ========  ======  ======  ==================  ===============================================
op         code  weighted  tied    inputs  C op                idempotence (what a re-executed unit relies on)
=========  ====  ========  ======  ======  ==================  ===============================================
conv       0     yes       no      1       AIDI_OP_CONV        output tensor disjoint from its input; partial
                                                               sums double-buffered (walk)
fc         1     yes       no      1       AIDI_OP_CONV        as conv (a 1x1 conv over the flattened input)
dwconv     2     yes       yes     1       AIDI_OP_DWCONV      as conv
maxpool    3     no        yes     1       AIDI_OP_MAXPOOL     output tensor disjoint from its input
avgpool    4     no        yes     1       AIDI_OP_AVGPOOL     output tensor disjoint from its input
add        5     no        yes     2       AIDI_OP_ADD         output tensor disjoint from BOTH inputs (never
                                                               in place: a torn in-place add adds twice)
=========  ====  ========  ======  ======  ==================  ===============================================

``code`` is the op's integer in the compiled cost builders
(:func:`aidi.models.costs.fast.geom_vector`) and in the C runtime's
``AIDI_OP_*`` enum; ``tied`` (channel-tied) means the input channels follow
the output channels (no Tn loop); ``inputs`` is the number of input tensors a
tile fetches (one input tile each).  ``concat`` is not an executed operation:
its producers write into channel slices of one FRAM tensor (CHW: a channel
slice is a contiguous range), so it costs nothing and has no row.

Hooks per row: ``reference`` (the numpy Q15 reference of one layer over a
batch, :mod:`aidi.models.q15`), ``float_forward`` (the float64 forward of a
folded layer, torch) and ``tile`` (the numba kernel of one tile,
:mod:`aidi.models.kernels`, driven by :mod:`aidi.models.functional`).  The
cost hooks are the op codes the compiled cost builders branch on
(:mod:`aidi.models.costs.fast`, :mod:`aidi.models.costs.software`,
:mod:`aidi.models.costs.lea_dma`); the C kernel is named by ``c_op``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class OpTraits:
    """One executed operation's traits (see the module table)."""

    name: str
    code: int
    weighted: bool
    tied: bool
    inputs: int
    c_op: str
    idempotence: str


CONV, FC, DWCONV, MAXPOOL, AVGPOOL, ADD = range(6)

OPS: dict[str, OpTraits] = {t.name: t for t in (
    OpTraits("conv", CONV, True, False, 1, "AIDI_OP_CONV",
             "writes an output tensor disjoint from its input; partial sums double-buffered"),
    OpTraits("fc", FC, True, False, 1, "AIDI_OP_CONV",
             "writes an output tensor disjoint from its input; partial sums double-buffered"),
    OpTraits("dwconv", DWCONV, True, True, 1, "AIDI_OP_DWCONV",
             "writes an output tensor disjoint from its input"),
    OpTraits("maxpool", MAXPOOL, False, True, 1, "AIDI_OP_MAXPOOL",
             "writes an output tensor disjoint from its input"),
    OpTraits("avgpool", AVGPOOL, False, True, 1, "AIDI_OP_AVGPOOL",
             "writes an output tensor disjoint from its input"),
    OpTraits("add", ADD, False, True, 2, "AIDI_OP_ADD",
             "writes an output tensor disjoint from both inputs (an in-place add re-executed adds twice)"),
)}
#: op names by code (the compiled builders' numbering)
BY_CODE: tuple[str, ...] = tuple(sorted(OPS, key=lambda k: OPS[k].code))


def traits(op: str) -> OpTraits:
    """The row of ``op``; ValueError naming the known ops otherwise."""
    try:
        return OPS[op]
    except KeyError:
        raise ValueError(f"unknown executed operation {op!r} (one of {', '.join(OPS)})") from None
