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
(:func:`aidi.models.costs.fast.geom_vector`; their ``op <= 2`` is "weighted",
``op >= 2`` "tied"); the C runtime's enum value is named by ``c_op``; ``tied`` (channel-tied) means the input channels follow
the output channels (no Tn loop); ``inputs`` is the number of input tensors a
tile fetches (one input tile each).  ``concat`` is not an executed operation:
its producers write into channel slices of one FRAM tensor (CHW: a channel
slice is a contiguous range), so it costs nothing and has no row.

Kernels per row: ``kernel`` names the numba tile kernel (:mod:`aidi.models.kernels`,
driven by :mod:`aidi.models.functional`), ``c_kernel`` the C runtime's
(models/emit/runtime/aidi_kernels_cpu.c).  The numpy reference
(:func:`aidi.models.q15.forward_batch`), the float forward
(:func:`aidi.models.net.folded_forward`), the functional run and the cost
builders (:mod:`aidi.models.costs.software`, :mod:`aidi.models.costs.lea_dma`,
:mod:`aidi.models.costs.fast`) branch on these rows (``weighted``, ``tied``,
``inputs``) and on the op codes, never on op names; a new operation is a row
here, its kernels, and its cases in those four places.
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
    kernel: str
    c_kernel: str


CONV, FC, DWCONV, MAXPOOL, AVGPOOL, ADD = range(6)

OPS: dict[str, OpTraits] = {t.name: t for t in (
    OpTraits("conv", CONV, True, False, 1, "AIDI_OP_CONV",
             "writes an output tensor disjoint from its input; partial sums double-buffered",
             "conv_tile", "aidi_conv_tile"),
    OpTraits("fc", FC, True, False, 1, "AIDI_OP_CONV",
             "writes an output tensor disjoint from its input; partial sums double-buffered",
             "fc_tile", "aidi_conv_tile"),
    OpTraits("dwconv", DWCONV, True, True, 1, "AIDI_OP_DWCONV",
             "writes an output tensor disjoint from its input", "dw_tile", "aidi_conv_tile"),
    OpTraits("maxpool", MAXPOOL, False, True, 1, "AIDI_OP_MAXPOOL",
             "writes an output tensor disjoint from its input", "pool_tile", "aidi_pool_tile"),
    OpTraits("avgpool", AVGPOOL, False, True, 1, "AIDI_OP_AVGPOOL",
             "writes an output tensor disjoint from its input", "pool_tile", "aidi_pool_tile"),
    OpTraits("add", ADD, False, True, 2, "AIDI_OP_ADD",
             "writes an output tensor disjoint from both inputs (an in-place add re-executed adds twice)",
             "add_tile", "aidi_add_tile"),
)}
#: op names by code (the compiled builders' numbering)
BY_CODE: tuple[str, ...] = tuple(sorted(OPS, key=lambda k: OPS[k].code))


def traits(op: str) -> OpTraits:
    """The row of ``op``; ValueError naming the known ops otherwise."""
    try:
        return OPS[op]
    except KeyError:
        raise ValueError(f"unknown executed operation {op!r} (one of {', '.join(OPS)})") from None
