"""The cost tables of one (layer, tile sizes, backend): what the walk charges per tile.

Every entry is a ``[cycles, energy_J]`` pair (trailing axis of length 2):
MCLK cycles and joules at the MCU, from the :class:`~aidi.sim.platform.Platform`
primitives (see :mod:`.lea_dma` and :mod:`.software` for how each is made).
The tables are a :class:`CostTables` NamedTuple so the numba walk
(:mod:`aidi.models.schedule.walk`) reads them by name.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class CostTables(NamedTuple):
    """Per-axis tile extents and per-tile cost tables.

    Axes: ``Mt, Nt, Rt, Ct`` tiles along output channels, input channels, rows,
    columns; ``Xn`` input-tile channel tiles (``Mt`` for channel-tied layers,
    else ``Nt``).  Costs are ``[cycles, energy_J]``.

    The compute of tile ``(m, n, r, c)`` is ``out_elems[m, r, c] *
    compute_per_elem[n] + tile_by_input[x, r, c] + tile_by_weights[m, n] +
    tile_overhead_mr[m, r] + tile_overhead_n[n] + tile_overhead_c[c]`` (``x``
    = ``m`` for channel-tied layers, else ``n``), plus the accumulator passes.
    """

    m0: np.ndarray  # (Mt,) int64 first output channel of each m tile
    tm: np.ndarray  # (Mt,) int64 output channels of each m tile
    n0: np.ndarray  # (Nt,) first input channel
    tn: np.ndarray  # (Nt,) input channels
    r0: np.ndarray  # (Rt,) first output row
    tr: np.ndarray  # (Rt,) output rows
    c0: np.ndarray  # (Ct,) first output column
    tc: np.ndarray  # (Ct,) output columns
    compute_per_elem: np.ndarray  # (Nt, 2) compute per output element and n tile
    load_input: np.ndarray  # (Xn, Rt, Ct, 2) fetch of an input tile
    load_weights: np.ndarray  # (Mt, Nt, 2) fetch of a weight tile
    load_bias: np.ndarray  # (Mt, 2) fetch of a bias tile (software: one accumulator pass from the bias)
    acc_init: np.ndarray  # (2,) per accumulator set from the bias
    requant: np.ndarray  # (2,) per output element finalised (shift, saturate, ReLU)
    psum_read: np.ndarray  # (Mt, Rt, Ct, 2) partial sums of an output tile read from FRAM
    psum_write: np.ndarray  # (Mt, Rt, Ct, 2) partial sums written to FRAM
    out_write: np.ndarray  # (Mt, Rt, Ct, 2) int16 outputs written to FRAM
    commit: np.ndarray  # (2,) one progress commit
    out_elems: np.ndarray  # (Mt, Rt, Ct) int64 elements of each output tile
    tile_overhead_mr: np.ndarray  # (Mt, Rt, 2) per-tile overhead by (m, r) tile (software runtime)
    tile_overhead_n: np.ndarray  # (Nt, 2) per-tile overhead by n tile (software runtime)
    tile_overhead_c: np.ndarray  # (Ct, 2) per-tile overhead by c tile (software runtime)
    tile_by_input: np.ndarray  # (Xn, Rt, Ct, 2) per-tile compute keyed by its input tile (LEA kernel: scans, gathers)
    tile_by_weights: np.ndarray  # (Mt, Nt, 2) per-tile compute keyed by its weight tile (LEA kernel: sum|w|)
    version_div: np.ndarray  # (2,) partial-sum version division, per tile that needs it (software runtime)
    layer_start: np.ndarray  # (2,) once per layer (software runtime)
    software: bool  # costs follow the emitted C runtime (fetch cache, accumulator spills), either kernel

    @property
    def grid(self) -> tuple[int, int, int, int]:
        """Tile counts ``(Mt, Nt, Rt, Ct)``."""
        return len(self.m0), len(self.n0), len(self.r0), len(self.c0)


def axis_tiles(dim: int, t: int) -> tuple[np.ndarray, np.ndarray]:
    """Starts and extents (int64) of the tiles of size ``t`` along an axis of length ``dim``."""
    starts = np.arange(0, dim, t, dtype=np.int64)
    return starts, np.minimum(t, dim - starts)


def vec_cost(fn, n) -> np.ndarray:
    """Apply a scalar Platform primitive to an int array -> ``(..., 2)`` [cycles, energy]."""
    n = np.asarray(n, dtype=np.int64)
    out = np.zeros(n.shape + (2,))
    for v in np.unique(n):
        c = fn(int(v))
        out[n == v] = (c.cycles, c.energy_J)
    return out


def pair(c) -> np.ndarray:
    """A :class:`~aidi.sim.platform.Cost` as ``[cycles, energy_J]``."""
    return np.array([c.cycles, c.energy_J], dtype=np.float64)


def lower_bound(geom, tab: CostTables) -> np.ndarray:
    """[cycles, energy] no schedule of these tile sizes can beat: all compute, every input/weight/bias
    tile loaded once, every output written once, one commit, every tile's per-tile compute (and, for
    the software runtime, every tile's overhead once)."""
    mhw = float(np.prod(geom.out_shape))
    lb = mhw * (tab.compute_per_elem.sum(axis=0) + tab.acc_init + tab.requant) + tab.commit
    lb = lb + tab.load_input.reshape(-1, 2).sum(0) + tab.out_write.reshape(-1, 2).sum(0)
    mt, nt, rt, ct = tab.grid
    lb = lb + tab.tile_by_input.reshape(-1, 2).sum(0) * (1 if geom.channel_tied else mt) \
        + tab.tile_by_weights.reshape(-1, 2).sum(0) * rt * ct
    if geom.weighted:
        lb = lb + tab.load_weights.reshape(-1, 2).sum(0) + tab.load_bias.sum(0) * (rt * ct if tab.software else 1)
    if tab.software:
        lb = lb + tab.layer_start + tab.tile_overhead_mr.sum(axis=(0, 1)) * nt * ct \
            + tab.tile_overhead_n.sum(0) * mt * rt * ct + tab.tile_overhead_c.sum(0) * mt * nt * rt
    return lb
