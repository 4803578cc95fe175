"""One execution plan per layer, owned here: design, tile grid and walk, SRAM/FRAM layout, per-tile schedule.

* :mod:`.design` -- :class:`ExecutionDesign`, loop nests, tile flags, the tile grid;
* :mod:`.memory` -- the SRAM arena (per-layer rows, the one SRAM figure) and the FRAM layout (progress
  record size, regions);
* :mod:`.walk` -- the numba walk over a layer's tiles (NamedTuple in, NamedTuple out);
* :mod:`.plan` -- :class:`LayerPlan` / :class:`NetPlan` and :func:`plan_network`.

Costing (:mod:`aidi.models.costs`) feeds the walk; the design search
(:mod:`aidi.models.design_search`) chooses designs; the functional run, the
C emitter and the iNAS comparison consume plans.
"""

from .design import (BACKENDS, DEFAULT_BACKEND, LOOP_NESTS, LOOP_ORDERS, ORDER_AXES, PRESERVATIONS, ExecutionDesign,
                     TileFlag, block_version, clip_design, normalize_design)
from .memory import (ALIGN, PROGRESS_BYTES, RUNTIME_STATE_BYTES, STACK_BYTES, FramLayout, SramLayout,
                     layer_sram_buffers, sram_footprint)
from .plan import DesignCost, LayerPlan, NetPlan, UnitWork, evaluate_design, plan_layer, plan_network
from .walk import WalkResult

__all__ = ["BACKENDS", "DEFAULT_BACKEND", "LOOP_NESTS", "LOOP_ORDERS", "ORDER_AXES", "PRESERVATIONS",
           "ExecutionDesign", "TileFlag", "block_version", "clip_design", "normalize_design", "ALIGN",
           "PROGRESS_BYTES", "RUNTIME_STATE_BYTES", "STACK_BYTES", "FramLayout", "SramLayout", "layer_sram_buffers",
           "sram_footprint", "DesignCost",
           "LayerPlan", "NetPlan", "UnitWork", "evaluate_design", "plan_layer", "plan_network", "WalkResult"]
