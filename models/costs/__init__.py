"""Cost tables of a layer's tiles: what each tile, fetch, write-back and commit costs.

Which model costs what, by platform and backend:

* a platform with ``Platform.cpu_sw`` (the ``msp430fr5994`` preset): the
  emitted C runtime, :mod:`.software`, under every backend -- CPU tile copies
  behind a fetch cache, accumulator passes and spills, per-tile runtime
  overheads, the runtime's unit commit (``CostTables.software``, which the walk
  reads).  The kernel is the backend's: ``"cpu"`` the portable C kernel
  (fitted to mspdebug), ``"lea"`` the LEA kernel's calls
  (:func:`.lea_dma.compute_per_elem`, :func:`.lea_dma.lea_tile_compute`).
  Pools run the portable pool kernel under every backend.
* a platform without ``cpu_sw`` (the ``msp430fr5994-extfram`` preset, iNAS's
  platform): :mod:`.lea_dma`, iNAS-style -- DMA transfers, LEA (or CPU) MACs,
  iNAS's addressing overheads and commit, no fetch cache.
* :mod:`.tables` -- the :class:`CostTables` record both produce and the walk reads.
* :mod:`.spi` -- tensors placed in the board's external SPI FRAM (``[device] weights`` /
  ``activations = "spi-fram"``): their SPI transfers added to either model's tables.

:func:`cost_tables` picks one for a (layer, tile sizes, backend).  Pure
functions of the platform's primitives: no planning here.
"""

from __future__ import annotations

import numpy as np

from ...sim.platform import Platform
from ..layers import LayerGeom
from . import lea_dma, software, spi
from .tables import CostTables, axis_tiles, lower_bound

__all__ = ["CostTables", "cost_tables", "lower_bound", "runtime_model"]


def runtime_model(p: Platform) -> bool:
    """Is a plan on ``p`` costed (and laid out in SRAM) as the emitted C runtime executes it?  Yes on
    platforms with ``cpu_sw`` (the FR5994 preset), no on the iNAS preset."""
    return p.cpu_sw is not None


def cost_tables(geom: LayerGeom, tr: int, tc: int, tm: int, tn: int, p: Platform, backend: str) -> CostTables:
    """:class:`CostTables` of ``geom`` under tile sizes ``(tr, tc, tm, tn)`` on ``backend`` ("lea" | "cpu").

    On a platform with ``p.cpu_sw`` (the FR5994 preset) every layer is costed
    as the emitted C runtime executes it (:mod:`.software`, with the
    ``backend`` kernel): the firmware fetches tiles with the CPU behind a fetch
    cache under both kernel backends, and pools run the portable pool kernel in
    LEA plans too.  Without ``cpu_sw`` (the iNAS preset): the iNAS-style
    :mod:`.lea_dma` tables.
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
    tab = software.tables(geom, axes, p, backend) if runtime_model(p) else lea_dma.tables(geom, axes, p, backend)
    if p.external:  # tensors in the external SPI FRAM: their transfers on top (:mod:`.spi`)
        from .fast import geom_vector

        tab = spi.with_spi(tab, geom_vector(geom), p)
    return tab
