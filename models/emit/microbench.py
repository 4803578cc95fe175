"""The microbench firmware (``runtime/aidi_microbench.c``): build it and run it on mspdebug's simulator.

``aidi emit-c SCENARIO --out DIR --microbench`` adds ``src/aidi_microbench.c`` to the emitted project
(:func:`aidi.models.emit.emit_project` with ``microbench=True``); ``make microbench-sim`` builds
``build/microbench-sim.elf`` and :func:`run_microbench` runs it under ``mspdebug sim`` with its ``timer``
device (Timer_A at the classic address 0x0160, counting SMCLK, which the simulator clocks with MCLK) and its
``console`` device (bytes written to 0x00FF are printed), and returns the counts text that
``aidi calibrate`` reads (format: the C file's header comment, parser :mod:`aidi.analysis.calibrate`).
On a real MSP430FR5994, ``make microbench-msp430`` builds the same program with Timer_A0 and the
back-channel UART instead.

mspdebug 0.22 counts classic MSP430 cycles (not CPUX), miscounts some constant-generator forms and has no
FRAM wait states, LEA, DMA or MPY32: counts from it calibrate aidi to that simulator, not to silicon.
"""

from __future__ import annotations

from pathlib import Path

from . import build
from .mspsim import MspSimError, run_mspdebug

#: the counts format version the firmware prints (``aidi-microbench 1``)
COUNTS_FORMAT = 1
#: the file ``aidi emit-c --microbench --build`` writes the simulator's counts to
COUNTS_FILE = "microbench-counts.txt"
ELF = "build/microbench-sim.elf"


def run_microbench(root: str | Path, *, sim_hwmult: bool = True, timeout: float = 120.0) -> str:
    """Build ``root``'s microbench for mspdebug (``make microbench-sim``, ``SIM_HWMULT``) and run it; return
    the counts text (from its ``aidi-microbench`` header to its ``end`` line, ``\\n`` line ends).  Raises
    :class:`aidi.models.emit.build.BuildError` or :class:`MspSimError`."""
    root = Path(root)
    hw = "1" if sim_hwmult else "0"
    build.make(root, "microbench-sim", variables={"SIM_HWMULT": hw})
    cmds = [f"prog {root / ELF}", "simio add console con", "simio add timer ta0"]
    cmds += ["simio add hwmult mpy"] if sim_hwmult else []
    cmds += ["setbreak aidi_done", "run"]
    out = run_mspdebug(cmds, timeout=timeout)
    start, end = out.find(f"aidi-microbench {COUNTS_FORMAT}\n"), out.find("\nend\n")
    if start < 0 or end < start:
        raise MspSimError(f"{root / ELF}: no complete counts in mspdebug's output (did it reach aidi_done?)")
    return out[start:end + len("\nend\n")]


__all__ = ["COUNTS_FILE", "COUNTS_FORMAT", "run_microbench"]
