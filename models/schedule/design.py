"""The execution design of one layer (iNAS's design space) and its tile grid.

Execution design (per layer, :class:`ExecutionDesign`)
------------------------------------------------------
``Tr, Tc`` output rows/columns, ``Tm`` output channels and ``Tn`` input
channels of a tile; ``loop_order`` (which buffer the innermost tile loop
reuses); ``S`` tiles per hyper-tile; ``preservation``: commit progress per
``tile`` (S = 1), per ``hypertile`` (S tiles) or per ``layer`` (one unit);
``backend``: ``"lea"`` (DSPLib ``msp_mac_q15`` on the Low-Energy Accelerator)
or ``"cpu"`` (the portable-C kernels).

The tile loop nest over the tile grid ``(m, n, r, c)`` (outer -> inner):

==========  ==============  ==========================================
loop_order  nest            reused between consecutive tiles
==========  ==============  ==========================================
reuse_O     m, r, c, n      output tile (accumulators stay in SRAM)
reuse_I     r, c, n, m      input tile
reuse_W     m, n, r, c      weight tile
==========  ==============  ==========================================

For each output tile the input-channel tiles run in ascending order whatever
the loop order, so accumulation follows the canonical order of
:mod:`aidi.models.q15` and partial sums are bit-exact.  Depthwise and pooling
layers have no ``n`` loop (their input channels are their output channels);
their ``Tn`` is normalised to ``Tm``.  ``fc`` is a 1x1 conv over
``(C*H*W, 1, 1)`` so ``Tr = Tc = 1`` and ``Tn`` tiles the flattened input.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace

import numpy as np

from ...sim.platform import DEFAULT_BACKEND  # noqa: F401  (re-exported: the one default backend)
from ..layers import LayerGeom

LOOP_ORDERS = ("reuse_I", "reuse_W", "reuse_O")
PRESERVATIONS = ("tile", "hypertile", "layer")
BACKENDS = ("lea", "cpu")
#: tile loop nest per order, outermost first, over the tile axes m (output channels),
#: n (input channels), r (output rows), c (output columns)
LOOP_NESTS: dict[str, tuple[str, str, str, str]] = {
    "reuse_O": ("m", "r", "c", "n"),  # output stationary: n innermost, the output block stays in SRAM
    "reuse_I": ("r", "c", "n", "m"),  # input stationary: one input tile serves all output channels
    "reuse_W": ("m", "n", "r", "c"),  # weight stationary: one weight tile serves all positions
}
#: index of each tile axis in the grid ``(Mt, Nt, Rt, Ct)``
AXIS = {"m": 0, "n": 1, "r": 2, "c": 3}
#: loop nest per order as axis indices into the grid (outer -> inner)
ORDER_AXES = {o: tuple(AXIS[a] for a in nest) for o, nest in LOOP_NESTS.items()}


class TileFlag(enum.IntFlag):
    """What one tile does, recorded by the walk (:mod:`.walk`) per tile.

    The numba walk uses the integer constants ``F_*`` below (same values).
    """

    LOAD_IN = 1  # fetch the input tile from FRAM
    LOAD_W = 2  # fetch the weight tile
    LOAD_B = 4  # fetch the bias of the output-channel tile
    INIT_BIAS = 8  # first input-channel tile: accumulators start at the bias
    INIT_PSUM = 16  # later input-channel tile, first in its unit: accumulators from FRAM partial sums
    WRITE_PSUM = 32  # last touch in its unit before the last input-channel tile: int32 partial sums to FRAM
    WRITE_OUT = 64  # last input-channel tile: int16 outputs to FRAM


F_LOAD_IN, F_LOAD_W, F_LOAD_B = int(TileFlag.LOAD_IN), int(TileFlag.LOAD_W), int(TileFlag.LOAD_B)
F_INIT_BIAS, F_INIT_PSUM = int(TileFlag.INIT_BIAS), int(TileFlag.INIT_PSUM)
F_WRITE_PSUM, F_WRITE_OUT = int(TileFlag.WRITE_PSUM), int(TileFlag.WRITE_OUT)


@dataclass(frozen=True)
class ExecutionDesign:
    """One layer's execution design (iNAS): tile sizes, loop order, hyper-tile size, preservation.

    ``S`` is the number of tiles per unit for ``preservation="hypertile"``;
    ``"tile"`` means S = 1 and ``"layer"`` one unit for the whole layer (S is
    then ignored).  ``S`` larger than the layer's tile count is clipped.
    ``backend`` ("lea" | "cpu") overrides the plan's backend for this layer
    (None: inherit).  Raises ValueError naming the field on a bad value.
    """

    Tr: int
    Tc: int
    Tm: int
    Tn: int
    loop_order: str = "reuse_O"
    S: int = 1
    preservation: str = "hypertile"
    backend: str | None = None

    def __post_init__(self):
        for k in ("Tr", "Tc", "Tm", "Tn", "S"):
            v = getattr(self, k)
            if type(v) is int and v >= 1:  # the common case: nothing to convert
                continue
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"execution design: {k} must be a positive integer, got {v!r}")
            object.__setattr__(self, k, int(v))
        if self.loop_order not in LOOP_ORDERS:
            raise ValueError(f"execution design: loop_order must be one of {', '.join(LOOP_ORDERS)}, got {self.loop_order!r}")
        if self.preservation not in PRESERVATIONS:
            raise ValueError(f"execution design: preservation must be one of {', '.join(PRESERVATIONS)}, got {self.preservation!r}")
        if self.backend is not None and self.backend not in BACKENDS:
            raise ValueError(f"execution design: backend must be one of {', '.join(BACKENDS)} (or None), got {self.backend!r}")

    def to_dict(self) -> dict:
        return {"Tr": self.Tr, "Tc": self.Tc, "Tm": self.Tm, "Tn": self.Tn, "loop_order": self.loop_order,
                "S": self.S, "preservation": self.preservation, "backend": self.backend}


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def grid(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int) -> tuple[int, int, int, int]:
    """Tile counts ``(Mt, Nt, Rt, Ct)`` of ``geom`` under tile sizes (Nt = 1 for channel-tied layers)."""
    m, ho, wo = geom.out_shape
    nt = 1 if geom.channel_tied else ceil_div(geom.in_shape[0], tn)
    return ceil_div(m, tm), nt, ceil_div(ho, tr), ceil_div(wo, tc)


def n_tiles(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int) -> int:
    g = grid(geom, tr, tc, tm, tn)
    return g[0] * g[1] * g[2] * g[3]


def tile_limits(geom: LayerGeom) -> tuple[int, int, int, int]:
    """Largest ``(Tr, Tc, Tm, Tn)`` of a layer: output rows, columns, channels, input channels."""
    m, ho, wo = geom.out_shape
    return ho, wo, m, m if geom.channel_tied else geom.in_shape[0]


def clip_design(geom: LayerGeom, d: ExecutionDesign) -> ExecutionDesign:
    """``d`` with its tile sizes clipped to the layer's dimensions (then see :func:`normalize_design`)."""
    lim = tile_limits(geom)
    return replace(d, **{k: min(getattr(d, k), v) for k, v in zip(("Tr", "Tc", "Tm", "Tn"), lim)})


def normalize_design(geom: LayerGeom, d: ExecutionDesign) -> ExecutionDesign:
    """Check a design against a layer and normalise Tn (tied ops) and S (tile/layer, clip).

    Raises ValueError naming the layer and the field.
    """
    m, ho, wo = geom.out_shape
    n = geom.in_shape[0]
    for k, lim, what in (("Tr", ho, "output rows"), ("Tc", wo, "output columns"), ("Tm", m, "output channels")):
        if getattr(d, k) > lim:
            raise ValueError(f"{geom.describe()}: {k}={getattr(d, k)} exceeds {what} {lim}")
    tn = d.Tm if geom.channel_tied else d.Tn
    if not geom.channel_tied and tn > n:
        raise ValueError(f"{geom.describe()}: Tn={d.Tn} exceeds input channels {n}")
    nt = n_tiles(geom, d.Tr, d.Tc, d.Tm, tn)
    s = {"tile": 1, "layer": nt}.get(d.preservation, min(d.S, nt))
    return replace(d, Tn=tn, S=s)


def n_stride(grid_: tuple[int, int, int, int], loop_order: str) -> int:
    """Distance in the tile sequence between consecutive input-channel tiles of one output block."""
    axes = ORDER_AXES[loop_order]
    st = 1
    for a in axes[axes.index(AXIS["n"]) + 1:]:
        st *= grid_[a]
    return st


def block_version(t: int, ni: int, stride: int, u: int, S: int) -> int:
    """k = number of units before unit ``u`` that touched the output block of tile ``t``.

    ``ni`` is the tile's input-channel index, ``stride`` (:func:`n_stride`) the
    distance between the block's consecutive input-channel tiles, ``S`` the tiles
    per unit.  The block's committed partial sum lives in FRAM slot ``k % 2`` and
    unit ``u`` writes slot ``(k + 1) % 2``.  Mirrored by ``aidi_block_version`` in
    the C runtime.
    """
    if ni == 0:
        return 0
    if stride >= S:
        return ni
    return u - (t - ni * stride) // S
