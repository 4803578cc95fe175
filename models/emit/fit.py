"""Does the firmware fit the mspdebug simulator build's memory map, and if not, what would take it?

The simulator build (``make msp430-sim``) uses the small memory model: 16-bit
addresses, FRAM 0x4000-0xFF7F (49024 B) for code, constants (``.rodata``) and
persistent variables (``.persistent``), SRAM 0x1C00-0x3BFF (8192 B) for ``.bss``
(the runtime's arena and state) and the plan's stack reserve
(:data:`aidi.models.schedule.memory.STACK_BYTES`), and no object above 32767 B
(clang's 16-bit ``size_t``).  A real MSP430FR5994 has 256 KB of FRAM (0x4000-0xFF7F and
0x10000-0x43FFF, TI SLASE54), which the library build reaches with
msp430-elf-gcc's large memory model (``make msp430 HW_MODEL="-mlarge
-mcode-region=either -mdata-region=either"``); its SRAM is the same 8 KB.

:func:`check_sim_fit` checks the data the emitter knows exactly (arrays, before
compiling, so it needs no compiler: code comes on top, so the FRAM figures are
lower bounds; SRAM is exact, the plan's figure) and the plan's SRAM against the
program's budget, and
:func:`link_overflow` reads ld.lld's own overflow report after a failed link.
Both raise :class:`FitError` with a one-line message: the section, by how much,
and the target that would take it.
"""

from __future__ import annotations

import re

#: the simulator build's regions (bytes), after ld/msp430fr5994_sim.ld
SIM_FRAM_BYTES = 0xFF80 - 0x4000
SIM_SRAM_BYTES = 0x2000
#: the largest object a 16-bit (small memory model) build can hold
MAX_OBJECT_BYTES = 0x7FFF
#: the MSP430FR5994's FRAM (TI SLASE54): 0x4000-0xFF7F and 0x10000-0x43FFF
HW_FRAM_BYTES = (0xFF80 - 0x4000) + (0x44000 - 0x10000)
HW_SRAM_BYTES = 0x2000
HW_TARGET = ('`make msp430 HW_MODEL="-mlarge -mcode-region=either -mdata-region=either"` (msp430-elf-gcc, '
             'the MSP430FR5994\'s 256 KB FRAM)')

_LLD = re.compile(r"section '([^']+)' will not fit in region '([^']+)': overflowed by (\d+) bytes")


class FitError(ValueError):
    """The firmware does not fit the simulator build's memory map (one-line message)."""


def _where(fram_total: int, sram_total: int) -> str:
    """Which target takes data of ``fram_total`` B of FRAM and ``sram_total`` B of SRAM (stack included)."""
    if fram_total <= HW_FRAM_BYTES and sram_total <= HW_SRAM_BYTES:
        return f"the hardware library build takes it: {HW_TARGET}"
    if fram_total > HW_FRAM_BYTES:
        return (f"no MSP430FR5994 target takes it (its FRAM is {HW_FRAM_BYTES} B): use a smaller network "
                "(fewer or narrower layers)")
    return f"no MSP430FR5994 target takes it (its SRAM is {HW_SRAM_BYTES} B): use smaller tiles or a smaller SRAM budget"


def sections(prog, mem: dict) -> dict[str, dict[str, int]]:
    """The arrays of each section of the simulator build, in bytes: ``{section: {what: bytes}}``.

    ``.rodata``: weights and biases, the sample input, the start-threshold and voltage-drop tables
    (energy_aware);
    ``.persistent``: activations, partial sums, the output, the sample application's output and
    the progress records; ``.bss``: the arena and the runtime's state (the stack reserve comes on top,
    ``mem["sram_stack"]``).  ``mem``: the manifest's ``memory_estimate``
    (:func:`aidi.models.emit.memory_estimate`, plus ``fram_v_start`` and ``fram_v_drop`` under energy_aware)."""
    rodata = {"weights and biases": mem["fram_weights"], "sample input": mem["fram_input"]}
    if mem.get("fram_v_start"):
        rodata["start thresholds"] = mem["fram_v_start"]
    if mem.get("fram_v_drop"):
        rodata["voltage drops"] = mem["fram_v_drop"]
    persistent = {"activations and output": mem["fram_activations"], "partial sums": mem["fram_psum"],
                  "progress": mem["fram_progress"], "sample output": 2 * prog.output_len}
    return {".rodata": rodata, ".persistent": persistent,
            ".bss": {"arena": mem["sram_arena"], "runtime state": mem["sram_state"]}}


def largest_object(prog) -> tuple[str, int]:
    """(C name, bytes) of the largest constant array: a layer's weights or biases, or the sample input."""
    best = ("aidi_sample_input", 2 * int(prog.x_q.size))
    for ql in prog.qmodel.layers:
        if ql.geom.weighted:
            for name, n in ((f"aidi_w{ql.geom.index}", 2 * ql.w.size), (f"aidi_b{ql.geom.index}", 4 * ql.b.size)):
                if n > best[1]:
                    best = (name, int(n))
    return best


def check_sim_fit(prog, mem: dict) -> None:
    """Raise :class:`FitError` when the data alone cannot fit the simulator build (code not counted), or the
    plan's SRAM (``mem["sram_bytes"]``: arena, runtime state, stack reserve) exceeds ``prog.budgets``."""
    secs = sections(prog, mem)
    fram = {k: int(sum(v.values())) for k, v in secs.items() if k != ".bss"}
    sram = int(sum(secs[".bss"].values())) + mem["sram_stack"]
    if mem["sram_bytes"] > prog.budgets.sram_bytes:
        raise FitError(f"SRAM {mem['sram_bytes']} B (arena {mem['sram_arena']} B, runtime state {mem['sram_state']} B, "
                       f"stack {mem['sram_stack']} B) exceeds the SRAM budget {prog.budgets.sram_bytes} B")
    fram_total = sum(fram.values())
    name, size = largest_object(prog)
    if size > MAX_OBJECT_BYTES:
        raise FitError(f"the firmware does not fit mspdebug's MSP430FR5994 memory map (small memory model): "
                       f".rodata array {name} is {size} B, over the {MAX_OBJECT_BYTES} B a 16-bit build can hold "
                       f"in one object by {size - MAX_OBJECT_BYTES} B (.rodata + .persistent need at least "
                       f"{fram_total} B of the {SIM_FRAM_BYTES} B of FRAM below 64 KB); "
                       f"{_where(fram_total, sram)}")
    used = 0
    for sec in (".rodata", ".persistent"):
        used += fram[sec]
        if used > SIM_FRAM_BYTES:
            parts = ", ".join(f"{k} {v} B" for k, v in secs[sec].items() if v)
            raise FitError(f"the firmware does not fit mspdebug's MSP430FR5994 memory map (small memory model): "
                           f"section {sec} ({parts}) overflows FRAM 0x4000-0xFF7F ({SIM_FRAM_BYTES} B) by at "
                           f"least {used - SIM_FRAM_BYTES} B (code not counted); {_where(fram_total, sram)}")
    if sram > SIM_SRAM_BYTES:
        parts = ", ".join(f"{k} {v} B" for k, v in secs[".bss"].items())
        raise FitError(f"the firmware does not fit mspdebug's MSP430FR5994 memory map: section .bss ({parts}) and "
                       f"the {mem['sram_stack']} B stack reserve overflow SRAM ({SIM_SRAM_BYTES} B) by "
                       f"{sram - SIM_SRAM_BYTES} B; {_where(fram_total, sram)}")


def link_overflow(make_output: str, prog, mem: dict) -> None:
    """Raise :class:`FitError` if ``make_output`` (a failed ``make msp430-sim``) reports a region overflow."""
    m = _LLD.search(make_output)
    if m is None and "aidi: SRAM buffers leave less than" not in make_output:
        return
    secs = sections(prog, mem)
    fram_total = int(sum(sum(v.values()) for k, v in secs.items() if k != ".bss"))
    sram = int(sum(secs[".bss"].values())) + mem["sram_stack"]
    if m is None:
        raise FitError("the firmware does not fit mspdebug's MSP430FR5994 memory map: section .bss leaves less than "
                       f"the {mem['sram_stack']} B stack reserve in SRAM ({SIM_SRAM_BYTES} B); {_where(fram_total, sram)}")
    sec, region, over = m.group(1), m.group(2), int(m.group(3))
    if region == "FRAM":  # the region's content is exactly its size plus the overflow
        fram_total = SIM_FRAM_BYTES + over
    raise FitError(f"the firmware does not fit mspdebug's MSP430FR5994 memory map (small memory model): section "
                   f"{sec} overflows region {region} by {over} B (ld.lld); {_where(fram_total, sram)}")
