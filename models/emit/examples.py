"""Small programs (Q15 model + plan + input) with random parameters, for tests, demos and calibration runs.

:func:`random_program` takes layer dicts in the scenario format
(``{"type": "conv", "k": 3, "filters": 4, "stride": 1, "padding": 1, "relu": True}``,
see :mod:`aidi.models.layers`), builds the executed layers (BN folded, ReLU
fused, pwconv/fc/gap as convs and pools) and fills in random int16 weights,
int32 biases and shifts chosen so the outputs use the int16 range without
saturating everywhere.  ``extreme=True`` instead draws full-range values and
biases near the int32 limits, which exercises the saturating paths of every
kernel.  The execution designs are planned with :mod:`aidi.models.schedule`.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

from ..layers import LayerGeom, geometry, parse_network
from ..q15 import QLayer, QModel, conv_accumulate, dw_accumulate, forward_batch
from ..schedule import ExecutionDesign, clip_design, plan_network
from .program import Budgets, Program

Spec = Mapping[str, Any]
#: the default design of :func:`random_program`: one output element per tile, one tile per commit
UNIT_DESIGN = ExecutionDesign(1, 1, 1, 1, "reuse_O", 1)


def _accumulate(g: LayerGeom, w: np.ndarray, b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """int32 accumulators of weighted layer ``g`` on int16 ``x`` (for choosing its shift)."""
    acc0 = np.broadcast_to(b[:, None, None], g.out_shape).astype(np.int32)
    pt, pl, pb, pr = g.pads
    x = np.pad(x.reshape(g.in_shape), ((0, 0), (pt, pb), (pl, pr)))
    return (dw_accumulate if g.channel_tied else conv_accumulate)(x, w, acc0, g.sh, g.sw)


def _pick_shift(acc: np.ndarray) -> int:
    """Smallest shift that brings the largest accumulator to about 2^13."""
    peak = int(np.max(np.abs(acc.astype(np.int64))))
    shift = 0
    while shift < 31 and (peak >> shift) > (1 << 13):
        shift += 1
    return shift


def random_qmodel(specs: Sequence[Spec], input_shape, rng: np.random.Generator, *,
                  extreme: bool = False) -> tuple[QModel, np.ndarray]:
    """A :class:`QModel` of ``specs`` with random Q15 parameters and a random int16 input sample."""
    hi = 32767 if extreme else 8192
    x = rng.integers(-hi - (1 if extreme else 0), hi + 1, size=tuple(input_shape)).astype(np.int16)
    net = parse_network([dict(s) for s in specs], list(input_shape))
    layers: list[QLayer] = []
    s_in = s_input = 12
    cur = x
    wmax = 32767 if extreme else 4096
    for g in geometry(net):
        if g.weighted:
            w = rng.integers(-wmax - (1 if extreme else 0), wmax + 1, size=g.weight_shape).astype(np.int16)
            m = g.out_shape[0]
            if extreme:
                b = rng.choice([-(1 << 31), (1 << 31) - 1, 0, 1 << 30, -(1 << 30)], size=m)
                b = (b + rng.integers(-1000, 1001, size=m)).clip(-(1 << 31), (1 << 31) - 1)
            else:
                b = rng.integers(-(1 << 20), (1 << 20) + 1, size=m)
            b = b.astype(np.int32)
            shift = int(rng.integers(0, 32)) if extreme else _pick_shift(_accumulate(g, w, b, cur))
            ql = QLayer(g, w, b, s_in, 15, s_in + 15 - shift, shift)
        else:
            ql = QLayer(g, None, None, s_in, 0, s_in, 0)
        layers.append(ql)
        cur = forward_batch(QModel((ql,), tuple(int(v) for v in cur.shape) if g.op != "fc" else g.in_shape, 0),
                            cur.reshape(g.in_shape)[None])[-1][0]
        s_in = ql.s_out
    return QModel(tuple(layers), tuple(int(v) for v in input_shape), s_input, net), x


def random_program(specs: Sequence[Spec], input_shape, rng: np.random.Generator,
                   designs: Sequence[Any] | None = None, *, extreme: bool = False, backend: str = "cpu",
                   budgets: Budgets | None = None, name: str = "aidi_net") -> Program:
    """:func:`random_qmodel` planned with ``designs`` (one :class:`ExecutionDesign` or None per executed
    layer; None = :data:`UNIT_DESIGN`; tile sizes are clipped to each layer) on ``backend``, within the SRAM
    budget of ``budgets`` (ValueError when a design does not fit it)."""
    qm, x = random_qmodel(specs, input_shape, rng, extreme=extreme)
    geoms = qm.geoms
    designs = list(designs) if designs is not None else [None] * len(geoms)
    if len(designs) != len(geoms):
        raise ValueError(f"random_program: {len(geoms)} executed layers but {len(designs)} designs")
    ds = [clip_design(g, d or UNIT_DESIGN) for g, d in zip(geoms, designs)]
    budgets = budgets or Budgets()
    plan = plan_network(geoms, ds, "msp430fr5994", budgets.sram_bytes, backend=backend)
    return Program(qm, plan, x, name=name, budgets=budgets)


#: a tiny network touching every kind, with input-channel tiling (Tn < N) in every loop order
#: (the standalone relu fuses into the conv before it: 8 executed layers)
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
TINY_DESIGNS: tuple[ExecutionDesign, ...] = (
    ExecutionDesign(Tr=3, Tc=4, Tm=2, Tn=2, loop_order="reuse_O", S=3),
    ExecutionDesign(Tr=2, Tc=2, Tm=3, Tn=1, loop_order="reuse_I", S=2),
    ExecutionDesign(Tr=4, Tc=1, Tm=4, Tn=1, loop_order="reuse_I", S=5),
    ExecutionDesign(Tr=1, Tc=2, Tm=6, Tn=1, loop_order="reuse_W", S=1),
    ExecutionDesign(Tr=1, Tc=1, Tm=2, Tn=2, loop_order="reuse_W", S=4),
    ExecutionDesign(Tr=1, Tc=1, Tm=1, Tn=1, loop_order="reuse_O", S=3),
    ExecutionDesign(Tr=1, Tc=1, Tm=5, Tn=1, loop_order="reuse_W", S=1),
    ExecutionDesign(Tr=1, Tc=1, Tm=3, Tn=2, loop_order="reuse_O", S=1),
)


def tiny_program(seed: int = 0, *, extreme: bool = False, backend: str = "cpu") -> Program:
    """:data:`TINY_SPECS` on a random ``3x9x9`` input with :data:`TINY_DESIGNS`."""
    return random_program(TINY_SPECS, TINY_INPUT, np.random.default_rng(seed), TINY_DESIGNS,
                          extreme=extreme, backend=backend, name="aidi_tiny")


#: the repository's default architecture (models/layers.py DEFAULT_LAYERS) on 1x8x8 digits
DEFAULT_SPECS: tuple[Spec, ...] = (
    {"type": "conv", "k": 3, "filters": 8, "relu": True},
    {"type": "conv", "k": 3, "filters": 16, "relu": True},
    {"type": "maxpool", "k": 2},
    {"type": "fc", "units": 10},
)
DEFAULT_INPUT = (1, 8, 8)
DEFAULT_DESIGNS: tuple[ExecutionDesign, ...] = (
    ExecutionDesign(Tr=2, Tc=6, Tm=8, Tn=1, loop_order="reuse_O", S=1),
    ExecutionDesign(Tr=2, Tc=4, Tm=4, Tn=8, loop_order="reuse_O", S=1),
    ExecutionDesign(Tr=2, Tc=2, Tm=16, Tn=16, loop_order="reuse_O", S=1),
    ExecutionDesign(Tr=1, Tc=1, Tm=10, Tn=64, loop_order="reuse_O", S=1),
)


def default_program(seed: int = 0, designs: Sequence[Any] | None = None, *, backend: str = "cpu") -> Program:
    """The default architecture with random Q15 parameters (for cycle measurements)."""
    return random_program(DEFAULT_SPECS, DEFAULT_INPUT, np.random.default_rng(seed),
                          DEFAULT_DESIGNS if designs is None else designs, backend=backend, name="aidi_default")
