"""C runtime emitter: a frozen IR of a Q15 network, its numpy reference, and the C project.

Public API::

    from aidi.models.emit import (ExecDesign, Budgets, LayerIR, NetworkIR, plan_layer, plan_network,
                                  reference_forward, emit_project, ir_from_qmodel)

    ir = ir_from_qmodel(qmodel, x_q, designs)           # or build NetworkIR / LayerIR directly
    outs = reference_forward(ir)                         # int16 per layer, exact Q15 semantics
    proj = emit_project(ir, "out/c", backend="portable") # Makefile, README.md, src/, ld/, tools/
    # make -C out/c host check msp430-sim size

    from aidi.models.emit import build, mspsim           # build helpers, mspdebug driver
    build.make(proj.root, "msp430-sim")
    mspsim.run_firmware(proj.sim_elf, ir.output_len, failures=[120000, 45000])
    mspsim.measure_layer_cycles(proj.sim_elf, len(ir.layers), ir.output_len)

The Q15 semantics are defined in :mod:`aidi.models.emit.ir` (and
:mod:`aidi.models.q15`); the C runtime's execution and power-failure
protocol in ``runtime/aidi_runtime.h``.
"""

from .convert import design_from, ir_from_qmodel, layer_from_geom
from .emitter import EmittedProject, emit_project
from .ir import (KINDS, LOOP_NESTS, LOOP_ORDERS, Budgets, ExecDesign, LayerIR, LayerPlan, NetworkIR, block_version,
                 memory_estimate, plan_layer, plan_network)
from .reference import layer_forward, reference_forward

__all__ = [
    "KINDS", "LOOP_NESTS", "LOOP_ORDERS", "Budgets", "ExecDesign", "LayerIR", "LayerPlan", "NetworkIR",
    "EmittedProject", "block_version", "design_from", "emit_project", "ir_from_qmodel", "layer_from_geom",
    "layer_forward", "memory_estimate", "plan_layer", "plan_network", "reference_forward",
]
