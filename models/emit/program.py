"""What the emitter renders: a Q15 model, its execution plan, the input sample and the dispatch policy, bound together.

:class:`Program` only checks that the three belong together; it plans
nothing.  The plan comes from :mod:`aidi.models.schedule` (the same
:class:`~aidi.models.schedule.NetPlan` the simulator costs and the functional
run executes), the integer semantics from :mod:`aidi.models.q15`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..q15 import QModel, reference_forward
from ..schedule import NetPlan
from .dispatch import Dispatch


@dataclass(frozen=True)
class Budgets:
    """Memory budgets the emitted firmware is checked against (bytes).

    ``fram_bytes`` defaults to the FRAM below 64 KB (0x4000-0xFF7F), all that the
    16-bit (small memory model) simulator build can address; ``sram_bytes`` is
    the budget for all the SRAM the runtime takes: its arena, its state and the
    stack reserve (the plan's figure, ``AIDI_SRAM_BYTES``; default: the
    scenario default ``[device] sram_budget_bytes``).
    """

    fram_bytes: int = 0xFF80 - 0x4000
    sram_bytes: int = 4096


@dataclass(frozen=True, eq=False)
class Program:
    """A Q15 network with its plan and input sample, ready to emit.

    Args:
        qmodel: the quantized model (its executed layers must be the plan's).
        plan: the execution plan (designs, tile grid, units).
        x_q: int16 input sample ``qmodel.input_shape``; only the host harness and the
            simulator firmware embed it (``src/aidi_sample.c``), the library takes its input
            from ``aidi_infer``'s caller.
        name: a C identifier naming the network.
        budgets: memory budgets of ``make size``.
        dispatch: the runtime's dispatch policy and the power configuration its start thresholds
            and the host harness's capacitor come from (:class:`~.dispatch.Dispatch`; default greedy,
            no power model).
    Raises ValueError when they do not fit together.
    """

    qmodel: QModel
    plan: NetPlan
    x_q: np.ndarray = field(repr=False)
    name: str = "aidi_net"
    budgets: Budgets = field(default_factory=Budgets)
    dispatch: Dispatch = field(default_factory=Dispatch)

    def __post_init__(self):
        if [ql.geom for ql in self.qmodel.layers] != list(self.plan.geoms):
            raise ValueError("program: the Q15 model's layers are not the plan's")
        x = np.asarray(self.x_q)
        if x.shape != tuple(self.qmodel.input_shape):
            raise ValueError(f"program: input shape {list(x.shape)} != model input {list(self.qmodel.input_shape)}")
        if x.dtype.kind not in "iu" or (x.size and (x.min() < -32768 or x.max() > 32767)):
            raise ValueError("program: the input sample must be int16 values")
        x = np.ascontiguousarray(x, dtype=np.int16).copy()
        x.setflags(write=False)
        object.__setattr__(self, "x_q", x)
        if not self.name.isidentifier():
            raise ValueError(f"program: name must be a C identifier, got {self.name!r}")

    @property
    def layers(self):
        """The layer plans (:class:`~aidi.models.schedule.LayerPlan`), in execution order."""
        return self.plan.layers

    @property
    def layer_names(self) -> list[str]:
        return [f"L{lp.geom.index}_{lp.geom.name}" for lp in self.plan.layers]

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return tuple(self.qmodel.output_shape)

    @property
    def output_len(self) -> int:
        return int(np.prod(self.output_shape))

    def reference_output(self) -> np.ndarray:
        """The Q15 reference (:func:`aidi.models.q15.reference_forward`) output, flattened int16."""
        return np.asarray(reference_forward(self.qmodel, self.x_q)[-1], np.int16).reshape(-1)
