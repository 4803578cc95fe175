"""Small networks with random Q15 parameters, for tests, demos and calibration runs.

:func:`random_network` takes layer dicts in the scenario format
(``{"type": "conv", "k": 3, "filters": 4, "stride": 1, "padding": 1, "relu": True}``,
see :mod:`aidi.models.layers`) and fills in random int16 weights, int32 biases
and shifts chosen so the outputs use the int16 range without saturating
everywhere.  ``extreme=True`` instead draws full-range values and biases near
the int32 limits, which exercises the saturating paths of every kernel.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from .ir import Budgets, ExecDesign, LayerIR, NetworkIR
from .reference import layer_forward

Spec = Mapping[str, Any]


def _pick_shift(layer: LayerIR, x: np.ndarray) -> int:
    """Smallest shift that brings the largest accumulator to about 2^13."""
    from .reference import _accumulate

    peak = int(np.max(np.abs(_accumulate(layer, x)))) if layer.weighted else 0
    shift = 0
    while shift < 31 and (peak >> shift) > (1 << 13):
        shift += 1
    return shift


def random_network(
    specs: Sequence[Spec],
    input_shape: tuple[int, int, int],
    rng: np.random.Generator,
    designs: Sequence[Any] | None = None,
    *,
    extreme: bool = False,
    budgets: Budgets | None = None,
    name: str = "aidi_net",
) -> NetworkIR:
    """A network of ``specs`` on a random input of ``input_shape`` (CHW) with random parameters.

    ``designs``: one execution design per layer (ExecDesign, mapping, any object with
    Tr/Tc/Tm/Tn/loop_order/S, or None for the default).
    """
    designs = list(designs) if designs is not None else [None] * len(specs)
    if len(designs) != len(specs):
        raise ValueError(f"random_network: {len(specs)} layers but {len(designs)} designs")
    hi = 32767 if extreme else 8192
    x = rng.integers(-hi - (1 if extreme else 0), hi + 1, size=input_shape).astype(np.int16)
    layers: list[LayerIR] = []
    shape = tuple(input_shape)
    cur = x
    for i, (spec, design) in enumerate(zip(specs, designs)):
        t = spec["type"]
        c, h, w = shape
        common = dict(design=ExecDesign.from_any(design), relu=bool(spec.get("relu", False)), name=f"L{i}_{t}")
        wmax = 32767 if extreme else 4096
        if t in ("conv", "pwconv", "dwconv", "fc"):
            if t == "conv":
                k = int(spec["k"])
                wshape = (int(spec["filters"]), c, k, k)
            elif t == "pwconv":
                wshape = (int(spec["filters"]), c, 1, 1)
            elif t == "dwconv":
                k = int(spec["k"])
                wshape = (c, 1, k, k)
            else:
                wshape = (int(spec["units"]), c * h * w)
            wt = rng.integers(-wmax - (1 if extreme else 0), wmax + 1, size=wshape)
            m = wshape[0]
            if extreme:
                bias = rng.choice([-(1 << 31), (1 << 31) - 1, 0, 1 << 30, -(1 << 30)], size=m)
                bias = (bias + rng.integers(-1000, 1001, size=m)).clip(-(1 << 31), (1 << 31) - 1)
            else:
                bias = rng.integers(-(1 << 20), (1 << 20) + 1, size=m)
            kw = dict(op=t, in_shape=shape, weight=wt, bias=bias, **common)
            if t != "fc":
                kw.update(stride=int(spec.get("stride", 1)))
            if t in ("conv", "dwconv"):
                kw.update(pad=int(spec.get("padding", 0)))
            layer = LayerIR(**kw)
            shift = int(rng.integers(0, 32)) if extreme else _pick_shift(layer, cur)
            layer = LayerIR(**{**kw, "shift": shift})
        elif t in ("maxpool", "avgpool"):
            k = int(spec["k"])
            layer = LayerIR(op=t, in_shape=shape, kh=k, kw=k, stride=int(spec.get("stride", k)), **common)
        elif t in ("gap", "relu"):
            layer = LayerIR(op=t, in_shape=shape, **common)
        else:
            raise ValueError(f"layer {i}: unknown type {t!r}")
        layers.append(layer)
        cur = layer_forward(layer, cur)
        shape = layer.out_shape
    return NetworkIR(input=x, layers=tuple(layers), budgets=budgets or Budgets(), name=name)


#: a tiny network touching every kind, with input-channel tiling (Tn < N) in every loop order
TINY_SPECS: tuple[Spec, ...] = (
    {"type": "conv", "k": 3, "filters": 4, "padding": 1, "relu": True},
    {"type": "dwconv", "k": 3, "stride": 2, "padding": 1},
    {"type": "pwconv", "filters": 6, "relu": True},
    {"type": "maxpool", "k": 2, "stride": 1},
    {"type": "conv", "k": 2, "filters": 5},
    {"type": "relu"},
    {"type": "avgpool", "k": 2, "stride": 1},
    {"type": "gap"},
    {"type": "fc", "units": 7},
)
TINY_INPUT = (3, 9, 9)
TINY_DESIGNS: tuple[ExecDesign, ...] = (
    ExecDesign(Tr=3, Tc=4, Tm=2, Tn=2, loop_order="reuse_O", S=3),
    ExecDesign(Tr=2, Tc=2, Tm=3, Tn=1, loop_order="reuse_I", S=2),
    ExecDesign(Tr=4, Tc=1, Tm=4, Tn=1, loop_order="reuse_I", S=5),
    ExecDesign(Tr=1, Tc=2, Tm=6, Tn=1, loop_order="reuse_W", S=1),
    ExecDesign(Tr=1, Tc=1, Tm=2, Tn=2, loop_order="reuse_W", S=4),
    ExecDesign(Tr=1, Tc=1, Tm=5, Tn=1, loop_order="reuse_O", S=2),
    ExecDesign(Tr=1, Tc=1, Tm=1, Tn=1, loop_order="reuse_O", S=3),
    ExecDesign(Tr=1, Tc=1, Tm=5, Tn=1, loop_order="reuse_W", S=1),
    ExecDesign(Tr=1, Tc=1, Tm=3, Tn=2, loop_order="reuse_O", S=1),
)


def tiny_network(seed: int = 0, *, extreme: bool = False) -> NetworkIR:
    """:data:`TINY_SPECS` on a random ``3x9x9`` input with :data:`TINY_DESIGNS`."""
    return random_network(TINY_SPECS, TINY_INPUT, np.random.default_rng(seed), TINY_DESIGNS,
                          extreme=extreme, name="aidi_tiny")


#: the repository's default architecture (models/layers.py DEFAULT_LAYERS) on 1x8x8 digits
DEFAULT_SPECS: tuple[Spec, ...] = (
    {"type": "conv", "k": 3, "filters": 8, "relu": True},
    {"type": "conv", "k": 3, "filters": 16, "relu": True},
    {"type": "maxpool", "k": 2},
    {"type": "fc", "units": 10},
)
DEFAULT_INPUT = (1, 8, 8)


def default_network(seed: int = 0, designs: Sequence[Any] | None = None) -> NetworkIR:
    """The default architecture with random Q15 parameters (for cycle measurements)."""
    if designs is None:
        designs = (
            ExecDesign(Tr=2, Tc=6, Tm=8, Tn=1, loop_order="reuse_O", S=1),
            ExecDesign(Tr=2, Tc=4, Tm=4, Tn=8, loop_order="reuse_O", S=1),
            ExecDesign(Tr=2, Tc=2, Tm=16, Tn=16, loop_order="reuse_O", S=1),
            ExecDesign(Tr=1, Tc=1, Tm=10, Tn=64, loop_order="reuse_O", S=1),
        )
    return random_network(DEFAULT_SPECS, DEFAULT_INPUT, np.random.default_rng(seed), designs, name="aidi_default")
