"""C runtime emitter: renders a Q15 model and its execution plan through templates, plus the static runtime.

Public API::

    from aidi.models.emit import Budgets, Program, emit_project

    prog = Program(qmodel, plan, x_q)                # plan: aidi.models.schedule.NetPlan
    proj = emit_project(prog, "out/c")               # Makefile, README.md, src/, ld/, tools/
    # make -C out/c host check msp430-sim size

    from aidi.models.emit import build, mspsim       # build helpers, mspdebug driver
    build.make(proj.root, "msp430-sim")
    mspsim.run_firmware(proj.sim_elf, prog.output_len, failures=[120000, 45000])
    mspsim.measure_layer_cycles(proj.sim_elf, len(prog.layers), prog.output_len)

The Q15 semantics are defined in :mod:`aidi.models.q15`, the schedule in
:mod:`aidi.models.schedule`; the C runtime's execution and power-failure
protocol in ``runtime/aidi_runtime.h``.
"""

from .emitter import EmittedProject, emit_project, memory_estimate
from .program import Budgets, Program

__all__ = ["Budgets", "EmittedProject", "Program", "emit_project", "memory_estimate"]
