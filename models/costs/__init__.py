"""Cost tables of a layer's tiles: what each tile, fetch, write-back and commit costs.

* :mod:`.lea_dma` -- iNAS-style: DMA transfers, LEA (or CPU) MACs, addressing overheads;
* :mod:`.software` -- the emitted portable-C runtime, constant by constant (fitted to mspdebug);
* :mod:`.tables` -- the :class:`CostTables` record both produce and the walk reads.

:func:`cost_tables` picks one for a (layer, tile sizes, backend).  Pure
functions of the platform's primitives: no planning here.
"""

from __future__ import annotations

import numpy as np

from ...sim.platform import Platform
from ..layers import LayerGeom
from . import lea_dma, software
from .tables import CostTables, axis_tiles, lower_bound

__all__ = ["CostTables", "cost_tables", "lower_bound", "uses_software_model"]


def uses_software_model(geom: LayerGeom, p: Platform, backend: str, requested: str | None) -> bool:
    """Cost layer ``geom`` on ``backend`` with the emitted portable-C runtime's model (``p.cpu_sw``)?

    Weighted layers: whenever they run on the CPU.  Pools run on the CPU under
    every backend; they take the software model only in plans that asked for
    ``backend="cpu"`` (LEA and auto plans keep the iNAS-style costs).
    """
    return p.cpu_sw is not None and backend == "cpu" and (geom.weighted or requested == "cpu")


def cost_tables(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int, p: Platform, backend: str,
                software_model: bool = False) -> CostTables:
    """:class:`CostTables` of ``geom`` under tile sizes ``(tr, tc, tm, tn)`` on ``backend`` ("lea" | "cpu").

    ``software_model``: cost the CPU path with the portable-C runtime's model
    (:func:`uses_software_model`); needs ``p.cpu_sw``.
    """
    M, Ho, Wo = geom.out_shape
    m0, tm_ = axis_tiles(M, tm)
    r0, tr_ = axis_tiles(Ho, tr)
    c0, tc_ = axis_tiles(Wo, tc)
    if geom.channel_tied:
        n0, tn_ = np.zeros(1, np.int64), np.array([tm], np.int64)
    else:
        n0, tn_ = axis_tiles(geom.in_shape[0], tn)
    axes = (m0, tm_, n0, tn_, r0, tr_, c0, tc_)
    if software_model and backend == "cpu" and p.cpu_sw is not None:
        return software.tables(geom, axes, p)
    return lea_dma.tables(geom, axes, p, backend)
