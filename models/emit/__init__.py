"""C runtime emitter: renders a Q15 model and its execution plan through templates, plus the static runtime.

Public API::

    from aidi.models.emit import Budgets, Dispatch, Program, emit_project

    prog = Program(qmodel, plan, x_q)                # plan: aidi.models.schedule.NetPlan
    prog = Program(qmodel, plan, x_q, dispatch=Dispatch("energy_aware", power, 0.05))  # start thresholds
    proj = emit_project(prog, "out/c")               # Makefile, README.md, src/, ld/, tools/
    # make -C out/c host check msp430-sim size [DISPATCH=greedy|energy_aware]
    # out/c/build/aidi-host --capacitor 1e-3         # the simulated capacitor (with a power model)

    from aidi.models.emit import build, mspsim       # build helpers, mspdebug driver
    build.make(proj.root, "msp430-sim")
    mspsim.run_firmware(proj.sim_elf, prog.output_len, failures=[120000, 45000])
    mspsim.measure_layer_cycles(proj.sim_elf, len(prog.layers), prog.output_len)

The emitted C is a library, ``aidi_infer(const int16_t *input, int16_t *output)``,
resumable across power failures; the sample input ``x_q`` goes only into the host
harness and the simulator firmware.  The Q15 semantics are defined in
:mod:`aidi.models.q15`, the schedule in :mod:`aidi.models.schedule`; the C
runtime's execution, power-failure and dispatch protocol in
``runtime/aidi_runtime.h``; whether a firmware fits the simulator's memory map in
:mod:`.fit`.
"""

from .dispatch import Dispatch
from .emitter import EmittedProject, emit_project, memory_estimate
from .program import Budgets, Program

__all__ = ["Budgets", "Dispatch", "EmittedProject", "Program", "emit_project", "memory_estimate"]
