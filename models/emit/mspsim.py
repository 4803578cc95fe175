"""Drive mspdebug's MSP430 simulator: run the emitted firmware, cut its power, count cycles.

``mspdebug -q -n sim CMD...`` executes the commands given as arguments and
exits (a failing command aborts with status 255).  The helpers below build
command lists:

* :func:`run_firmware` -- ``prog`` the ELF, then for each scheduled power
  failure ``step N`` (N instructions of that power cycle), ``fill`` SRAM
  (0x1C00-0x3BFF) with junk, ``reset`` and junk in the registers; finally
  ``setbreak aidi_done``, ``run`` and ``md aidi_output``.  Every boot starts
  at the reset vector with SRAM unknown, as on the device.
* :func:`measure_layer_cycles` -- one continuous run with breakpoints on
  ``aidi_layer_mark`` (entered with the layer index in R12 when a layer
  starts) and ``aidi_done``, reading the tracer's MCLK counter at each stop.

Caveats of mspdebug 0.22's simulator (state them wherever its counts are
compared with a cost model):

* cycle counts come from the classic MSP430 instruction timing tables, not
  the MSP430X/CPUX tables of the FR5994 (the firmware is built for the
  classic instruction set, which the CPUX runs, but some CPUX timings differ);
* it miscounts some constant-generator addressing forms (e.g. ``#4``/``#8``
  through R2, ``#-1``/``#2`` through R3), which cost fewer cycles on silicon;
* no FRAM wait states (real at 16 MHz: one per FRAM access beyond the
  cache), no LEA, no DMA, no MPY32 (its ``hwmult`` device is the classic MPY
  at 0x0130; the firmware uses it only when built with ``SIM_HWMULT=1``),
  no clock system: MCLK cycles are all it knows;
* a 64 KB address space: firmware must fit below 0x10000.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from .elfsize import symbols

SRAM_START, SRAM_BYTES = 0x1C00, 0x2000
_PC = re.compile(r"\( PC: ([0-9a-fA-F]+)\)")
_R12 = re.compile(r"\(R12: ([0-9a-fA-F]+)\)")
# md lines end with an ASCII column "|...|", which disassembly lines lack
_MD = re.compile(r"^\s+([0-9a-fA-F]{4,5}):((?: [0-9a-fA-F]{2})+)\s+\|.*\|$", re.M)
_INSNS = re.compile(r"Instruction count:\s+(\d+)")
_MCLK = re.compile(r"MCLK:\s+(\d+)")


class MspSimError(RuntimeError):
    """mspdebug failed, timed out, or the firmware did not reach aidi_done."""


def mspdebug_path() -> str | None:
    return shutil.which("mspdebug")


def run_mspdebug(commands: Sequence[str], *, timeout: float = 60.0, mspdebug: str | None = None) -> str:
    """Run ``mspdebug -q -n sim`` with ``commands``; return its stdout (raises MspSimError)."""
    exe = mspdebug or mspdebug_path()
    if exe is None:
        raise MspSimError("mspdebug not found (Debian: apt-get install mspdebug)")
    try:
        proc = subprocess.run([exe, "-q", "-n", "sim", *commands], capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise MspSimError(f"mspdebug did not finish within {timeout:.0f} s (firmware never reached the "
                          "breakpoint?)") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise MspSimError(f"mspdebug exited with status {proc.returncode}: {' | '.join(tail)}")
    return proc.stdout


def _md_bytes(text: str) -> bytes:
    out = bytearray()
    for _addr, hexes in _MD.findall(text):
        out.extend(int(h, 16) for h in hexes.split())
    return bytes(out)


@dataclass(frozen=True)
class SimRun:
    """Result of :func:`run_firmware`.

    ``cycles``/``instructions`` cover every power cycle (tracer totals);
    ``failures`` the instruction counts after which each boot lost power.
    """

    output: np.ndarray
    cycles: int
    instructions: int
    failures: tuple[int, ...] = ()

    @property
    def boots(self) -> int:
        return len(self.failures) + 1


def _junk(rng: np.random.Generator, n: int) -> str:
    return " ".join(f"0x{b:02x}" for b in rng.integers(0, 256, size=n))


#: the FRAM word (mV) the simulator firmware reads as its supply voltage (platform_msp430.c)
VCC_SYMBOL = "aidi_sim_vcc_mv"


def set_vcc(mv: int) -> str:
    """The mspdebug command that sets the simulated supply voltage to ``mv`` millivolts
    (``mw aidi_sim_vcc_mv LO HI``, little-endian)."""
    if not 0 <= int(mv) <= 0xFFFF:
        raise ValueError(f"supply voltage must be 0..65535 mV, got {mv}")
    return f"mw {VCC_SYMBOL} 0x{int(mv) & 0xFF:02x} 0x{int(mv) >> 8:02x}"


def run_firmware(elf: str | Path, output_len: int, *, failures: Sequence[int] = (),
                 rng: np.random.Generator | None = None, hwmult: bool = True, vcc_mv: int | None = None,
                 timeout: float = 60.0) -> SimRun:
    """Run ``elf`` to ``aidi_done`` with a power failure after each count in ``failures``.

    ``failures[i]`` is the number of instructions boot ``i`` executes before its
    power fails; after each failure SRAM is filled with junk from ``rng`` and the
    CPU is reset with junk in R1 and R4-R15.  ``vcc_mv``: the supply voltage the
    firmware reads (:data:`VCC_SYMBOL`; None keeps the programmed 3600 mV).
    Returns ``aidi_output`` (int16).
    """
    elf = str(elf)
    rng = rng or np.random.default_rng(0)
    syms = symbols(elf)
    for name in ("aidi_done", "aidi_output"):
        if name not in syms:
            raise MspSimError(f"{elf}: symbol {name} missing")
    cmds = [f"prog {elf}", "simio add tracer trace"]
    if hwmult:
        cmds.append("simio add hwmult mpy")
    if vcc_mv is not None:
        if VCC_SYMBOL not in syms:
            raise MspSimError(f"{elf}: symbol {VCC_SYMBOL} missing (built with DISPATCH=greedy?)")
        cmds.append(set_vcc(vcc_mv))
    for n in failures:
        if int(n) < 1:
            raise ValueError(f"failure points must be >= 1 instruction, got {n}")
        cmds += [f"step {int(n)}", f"fill 0x{SRAM_START:04x} {SRAM_BYTES} {_junk(rng, 8)}", "reset"]
        cmds += [f"set r{r} 0x{int(v):04x}" for r, v in zip([1] + list(range(4, 16)), rng.integers(0, 1 << 16, 13))]
    cmds += ["setbreak aidi_done", "run", "regs", f"md aidi_output {2 * output_len}", "simio info trace"]
    out = run_mspdebug(cmds, timeout=timeout)
    tail = out[out.rindex("Running."):] if "Running." in out else out
    pcs = _PC.findall(tail)
    if not pcs or int(pcs[-1], 16) != syms["aidi_done"][0]:
        raise MspSimError(f"firmware stopped at PC {pcs[-1] if pcs else '?'}, not at aidi_done")
    data = _md_bytes(tail)
    if len(data) != 2 * output_len:
        raise MspSimError(f"could not read {output_len} values of aidi_output")
    return SimRun(
        output=np.frombuffer(data, dtype="<i2").astype(np.int16),
        cycles=int(_MCLK.findall(out)[-1]),
        instructions=int(_INSNS.findall(out)[-1]),
        failures=tuple(int(n) for n in failures),
    )


@dataclass(frozen=True)
class WaitProbe:
    """Result of :func:`probe_dispatch_wait`."""

    threshold_mv: int        # the threshold the firmware waited for (R12 at aidi_vcc_wait_mv)
    progress: bytes          # aidi_progress (FRAM) while it waited
    output: np.ndarray       # aidi_output once the harness raised the voltage and it completed


def probe_dispatch_wait(elf: str | Path, output_len: int, *, low_mv: int, high_mv: int, hwmult: bool = True,
                        timeout: float = 60.0) -> WaitProbe:
    """An energy_aware firmware under a low supply: set ``low_mv``, run to the first ``aidi_vcc_wait_mv``
    (the threshold it waits for is in R12, the progress records are read there), then set ``high_mv`` and
    run to ``aidi_done``.  Raises MspSimError if it never waits or never completes."""
    elf = str(elf)
    syms = symbols(elf)
    for name in ("aidi_done", "aidi_output", "aidi_progress", "aidi_vcc_wait_mv", VCC_SYMBOL):
        if name not in syms:
            raise MspSimError(f"{elf}: symbol {name} missing")
    cmds = [f"prog {elf}"] + (["simio add hwmult mpy"] if hwmult else [])
    cmds += [set_vcc(low_mv), "setbreak aidi_vcc_wait_mv", "run", "regs", f"md aidi_progress {syms['aidi_progress'][1]}",
             "delbreak", set_vcc(high_mv), "setbreak aidi_done", "run", "regs", f"md aidi_output {2 * output_len}"]
    out = run_mspdebug(cmds, timeout=timeout)
    stops = out.split("Running.")[1:]
    if len(stops) != 2:
        raise MspSimError(f"expected 2 breakpoint stops, got {len(stops)}")
    pc = int(_PC.findall(stops[0])[-1], 16)
    if pc != syms["aidi_vcc_wait_mv"][0]:
        raise MspSimError(f"first stop at PC 0x{pc:04x}, not at aidi_vcc_wait_mv (the firmware did not wait)")
    pc = int(_PC.findall(stops[1])[-1], 16)
    if pc != syms["aidi_done"][0]:
        raise MspSimError(f"stopped at PC 0x{pc:04x}, not at aidi_done")
    data = _md_bytes(stops[1])
    if len(data) != 2 * output_len:
        raise MspSimError(f"could not read {output_len} values of aidi_output")
    return WaitProbe(threshold_mv=int(_R12.findall(stops[0])[-1], 16), progress=_md_bytes(stops[0]),
                     output=np.frombuffer(data, dtype="<i2").astype(np.int16))


@dataclass(frozen=True)
class LayerCycles:
    """MCLK cycles of a continuous run, split at the layer markers."""

    layer_cycles: tuple[int, ...]   # cycles of layer l: from its marker to the next one
    layer_instructions: tuple[int, ...]
    total_cycles: int               # reset to aidi_done
    total_instructions: int
    boot_cycles: int                # reset to the first layer marker (init, progress load)
    stack_peak_bytes: int           # SRAM below the stack top that the run touched (upper bound)
    output: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int16))


def measure_layer_cycles(elf: str | Path, n_layers: int, output_len: int, *, hwmult: bool = True,
                         timeout: float = 120.0) -> LayerCycles:
    """Cycles per layer of one uninterrupted inference (tracer MCLK at each ``aidi_layer_mark``)."""
    elf = str(elf)
    syms = symbols(elf)
    mark, done = syms["aidi_layer_mark"][0], syms["aidi_done"][0]
    cmds = [f"prog {elf}", "simio add tracer trace"]
    if hwmult:
        cmds.append("simio add hwmult mpy")
    cmds += ["setbreak aidi_layer_mark", "setbreak aidi_done"]
    cmds += ["run", "simio info trace"] * (n_layers + 2)
    cmds += [f"md aidi_output {2 * output_len}", f"md 0x{SRAM_START:04x} {SRAM_BYTES}"]
    out = run_mspdebug(cmds, timeout=timeout)
    stops = out.split("Running.")[1:]
    if len(stops) != n_layers + 2:
        raise MspSimError(f"expected {n_layers + 2} breakpoint stops, got {len(stops)}")
    seen, insns, cycles = [], [], []
    for s in stops:
        pc = int(_PC.search(s).group(1), 16)
        if pc == mark:
            seen.append(int(_R12.search(s).group(1), 16))
        elif pc == done:
            seen.append(-1)
        else:
            raise MspSimError(f"stopped at unexpected PC 0x{pc:04x}")
        insns.append(int(_INSNS.search(s).group(1)))
        cycles.append(int(_MCLK.search(s).group(1)))
    if seen != list(range(n_layers + 1)) + [-1]:
        raise MspSimError(f"layer markers out of order: {seen}")
    mem = _md_bytes(stops[-1])
    output = np.frombuffer(mem[: 2 * output_len], dtype="<i2").astype(np.int16)
    sram = mem[2 * output_len:]
    bss_end = syms.get("__aidi_bss_end", (SRAM_START, 0))[0] - SRAM_START
    touched = [i for i in range(bss_end, len(sram)) if sram[i] != 0xFF]
    stack_peak = len(sram) - touched[0] if touched else 0
    return LayerCycles(
        layer_cycles=tuple(cycles[i + 1] - cycles[i] for i in range(n_layers)),
        layer_instructions=tuple(insns[i + 1] - insns[i] for i in range(n_layers)),
        total_cycles=cycles[-1],
        total_instructions=insns[-1],
        boot_cycles=cycles[0],
        stack_peak_bytes=stack_peak,
        output=output,
    )


def random_failure_schedule(rng: np.random.Generator, n: int, total_instructions: int) -> list[int]:
    """``n`` power-cycle lengths (instructions), each uniform in [1, total_instructions]."""
    return [int(v) for v in rng.integers(1, max(2, total_instructions + 1), size=n)]


def layer_cycle_records(prog, lc: LayerCycles) -> list[dict]:
    """One flat record per layer (tidy-table ready): work counts of the plan and measured cycles."""
    out = []
    for i, (name, lp) in enumerate(zip(prog.layer_names, prog.layers)):
        cyc, ins, macs = lc.layer_cycles[i], lc.layer_instructions[i], lp.runtime.macs
        out.append({
            "layer": i, "name": name, "op": lp.geom.op, "macs": macs,
            "outputs": int(np.prod(lp.geom.out_shape)), "tiles": lp.n_tiles, "units": lp.n_units,
            "cycles": cyc, "instructions": ins, "cycles_per_mac": cyc / macs if macs else float("nan"),
        })
    return out


def calibrate(prog, workdir: str | Path, *, sim_hwmult: bool = True, backend: str = "portable") -> list[dict]:
    """Emit ``prog`` (a :class:`~.program.Program`), build the simulator firmware and measure cycles per layer.

    ``sim_hwmult=True`` builds with ``SIM_HWMULT=1`` (16x16 multiplies on the MPY
    peripheral, as the FR5994 does with its MPY32); False uses the software
    shift-and-add multiply.  Returns :func:`layer_cycle_records` plus run totals
    in every record (``total_cycles``, ``boot_cycles``, ``stack_peak_bytes``).
    Raises MspSimError when the firmware's output differs from the Q15 reference.
    """
    from . import build
    from .emitter import emit_project

    proj = emit_project(prog, workdir, backend=backend)
    build.make(proj.root, "msp430-sim", variables={"SIM_HWMULT": "1" if sim_hwmult else "0"})
    lc = measure_layer_cycles(proj.sim_elf, len(prog.layers), prog.output_len, hwmult=sim_hwmult)
    if not np.array_equal(lc.output, prog.reference_output()):
        raise MspSimError("firmware output differs from the reference")
    recs = layer_cycle_records(prog, lc)
    for r in recs:
        r.update(total_cycles=lc.total_cycles, boot_cycles=lc.boot_cycles, stack_peak_bytes=lc.stack_peak_bytes,
                 sim_hwmult=sim_hwmult)
    return recs
