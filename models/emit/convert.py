"""Conversion of the project's quantised model and tiling plan into the emission IR.

``aidi.models.q15.QModel`` holds executed layers (``QLayer``: a
``LayerGeom`` plus int16 ``w``, int32 ``b`` and ``shift``);
``aidi.models.tiling`` gives one ``ExecutionDesign`` per layer (directly or
inside a ``NetPlan``).  Both map field by field onto :class:`LayerIR` /
:class:`ExecDesign`; this module only reads attributes, so it does not import
torch or numba.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Budgets, ExecDesign, LayerIR, NetworkIR


def design_from(d: Any) -> ExecDesign:
    """An :class:`ExecDesign` from a tiling ``ExecutionDesign`` (honouring its
    ``preservation``: ``"tile"`` -> S = 1, ``"layer"`` -> one unit per layer), an
    ExecDesign, a mapping or None."""
    if d is None or isinstance(d, ExecDesign):
        return ExecDesign.from_any(d)
    if isinstance(d, dict):
        d = dict(d)
        pres = d.pop("preservation", "hypertile")
        d.pop("backend", None)
    else:
        pres = getattr(d, "preservation", "hypertile")
        d = {k: getattr(d, k) for k in ("Tr", "Tc", "Tm", "Tn", "loop_order", "S")}
    if pres == "tile":
        d["S"] = 1
    elif pres == "layer":
        d["S"] = 1 << 30  # clipped to the layer's tile count when planned
    elif pres != "hypertile":
        raise ValueError(f"execution design: unknown preservation {pres!r}")
    return ExecDesign.from_any(d)


def _designs(designs: Any, n: int) -> list[ExecDesign]:
    if designs is None:
        return [ExecDesign()] * n
    if hasattr(designs, "layers") and not isinstance(designs, (list, tuple)):  # a tiling NetPlan
        designs = [lp.design for lp in designs.layers]
    designs = list(designs)
    if len(designs) != n:
        raise ValueError(f"{n} layers but {len(designs)} execution designs")
    return [design_from(d) for d in designs]


def layer_from_geom(geom: Any, weight: np.ndarray | None = None, bias: np.ndarray | None = None, shift: int = 0,
                    design: Any = None) -> LayerIR:
    """A :class:`LayerIR` from a ``LayerGeom``-like object (``op``, ``in_shape``, ``kh``,
    ``kw``, ``stride``, ``pad``, ``relu``, optional ``name``/``index``) and Q15 parameters."""
    name = f"L{getattr(geom, 'index', '')}_{getattr(geom, 'name', geom.op)}"
    kw = dict(op=geom.op, in_shape=tuple(geom.in_shape), stride=geom.stride, pad=geom.pad, relu=geom.relu,
              design=design_from(design), name=name)
    if geom.op in ("conv", "dwconv", "fc", "pwconv"):
        kw.update(weight=weight, bias=bias, shift=shift)
    else:
        kw.update(kh=geom.kh, kw=geom.kw)
    layer = LayerIR(**kw)
    if tuple(layer.out_shape) != tuple(geom.out_shape):
        raise ValueError(f"{name}: IR output shape {layer.out_shape} differs from the geometry's {tuple(geom.out_shape)}")
    return layer


def ir_from_qmodel(qmodel: Any, x_q: np.ndarray, designs: Any = None, *, budgets: Budgets | None = None,
                   name: str = "aidi_net") -> NetworkIR:
    """The emission IR of a ``QModel`` on the input sample ``x_q`` (int16 CHW).

    ``designs``: None (one element per tile, S = 1), a sequence of execution
    designs (one per executed layer), or a tiling ``NetPlan``.
    """
    qlayers = list(qmodel.layers)
    ds = _designs(designs, len(qlayers))
    layers = tuple(layer_from_geom(ql.geom, ql.w, ql.b, ql.shift, d) for ql, d in zip(qlayers, ds))
    return NetworkIR(input=np.asarray(x_q), layers=layers, budgets=budgets or Budgets(), name=name)
