"""ELF inspection for the emitted MSP430 firmware: sections, symbols, memory report.

Standard library only: this file is also copied into every emitted project
as ``tools/aidi_elfsize.py`` (``make size``), where aidi itself is not
installed.  MSP430FR5994 address ranges (TI SLASE54): SRAM 0x1C00-0x3BFF,
FRAM 0x4000-0xFF7F and 0x10000-0x43FFF, interrupt vectors 0xFF80-0xFFFF.

    python3 aidi_elfsize.py build/firmware-sim.elf --fram-budget 49024 --sram-budget 4096 [--json]
"""

from __future__ import annotations

import argparse
import json
import struct
import sys
from dataclasses import dataclass

SRAM = (0x1C00, 0x3C00)
FRAM_LOW = (0x4000, 0xFF80)
VECTORS = (0xFF80, 0x10000)
FRAM_HIGH = (0x10000, 0x44000)
SHF_ALLOC = 0x2
SHT_NOBITS = 8
SHT_SYMTAB = 2


@dataclass(frozen=True)
class Section:
    name: str
    addr: int
    size: int
    alloc: bool
    nobits: bool


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        data = f.read()
    if data[:4] != b"\x7fELF" or data[4] != 1 or data[5] != 1:
        raise ValueError(f"{path}: not a 32-bit little-endian ELF file")
    return data


def _sections_raw(data: bytes) -> list[tuple]:
    shoff, = struct.unpack_from("<I", data, 0x20)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x2E)
    raw = [struct.unpack_from("<IIIIIIIIII", data, shoff + i * shentsize) for i in range(shnum)]
    strtab = raw[shstrndx]
    out = []
    for r in raw:
        name_off = strtab[4] + r[0]
        name = data[name_off: data.index(b"\0", name_off)].decode()
        out.append((name,) + r)
    return out


def sections(path: str) -> list[Section]:
    """Every section of the ELF file (name, address, size, flags)."""
    data = _read(path)
    return [Section(name, addr, size, bool(flags & SHF_ALLOC), typ == SHT_NOBITS)
            for name, _n, typ, flags, addr, _off, size, *_ in _sections_raw(data)]


def symbols(path: str) -> dict[str, tuple[int, int]]:
    """Symbol name -> (address, size) from .symtab."""
    data = _read(path)
    raw = _sections_raw(data)
    out: dict[str, tuple[int, int]] = {}
    for name, _n, typ, _fl, _addr, off, size, link, _info, _al, entsize in raw:
        if typ != SHT_SYMTAB:
            continue
        stroff = raw[link][5]
        for i in range(size // entsize):
            st_name, st_value, st_size, _info8, _other, _shndx = struct.unpack_from("<IIIBBH", data, off + i * entsize)
            if st_name:
                nm = data[stroff + st_name: data.index(b"\0", stroff + st_name)].decode()
                out[nm] = (st_value, st_size)
    return out


def _within(addr: int, size: int, rng: tuple[int, int]) -> bool:
    return rng[0] <= addr and addr + size <= rng[1]


def memory_report(path: str, fram_budget: int, sram_budget: int, stack_reserve: int | None = None) -> dict:
    """FRAM and SRAM bytes by section, against the budgets.

    FRAM counts every allocated section placed in FRAM (code, constants,
    persistent data).  SRAM (``sram_bytes``) counts the allocated sections in
    SRAM (``.bss``: the runtime's arena and state; ``sram_data_bytes``) plus
    the stack reserve (symbol ``__aidi_stack_reserve`` of the linker script,
    the plan's ``STACK_BYTES``): the figure aidi's plan reports
    (``AIDI_SRAM_BYTES``), held against ``sram_budget``.
    """
    secs = [s for s in sections(path) if s.alloc and s.size]
    syms = symbols(path)
    if stack_reserve is None:
        stack_reserve = syms.get("__aidi_stack_reserve", (0, 0))[0]
    fram = {s.name: s.size for s in secs if _within(s.addr, s.size, FRAM_LOW) or _within(s.addr, s.size, FRAM_HIGH)}
    sram = {s.name: s.size for s in secs if _within(s.addr, s.size, SRAM)}
    vectors = {s.name: s.size for s in secs if _within(s.addr, s.size, VECTORS)}
    other = sorted(s.name for s in secs if s.name not in fram and s.name not in sram and s.name not in vectors)
    fram_total, sram_data = sum(fram.values()), sum(sram.values())
    sram_total = sram_data + stack_reserve
    return {
        "file": path,
        "fram_sections": fram,
        "sram_sections": sram,
        "vector_sections": vectors,
        "unplaced_sections": other,
        "fram_bytes": fram_total,
        "sram_data_bytes": sram_data,
        "sram_bytes": sram_total,
        "stack_reserve_bytes": stack_reserve,
        "fram_budget_bytes": fram_budget,
        "sram_budget_bytes": sram_budget,
        "fram_ok": fram_total <= fram_budget,
        "sram_ok": sram_total <= sram_budget,
        "fits": fram_total <= fram_budget and sram_total <= sram_budget and not other,
    }


def format_report(rep: dict) -> str:
    def pct(a: int, b: int) -> str:
        return f"{100.0 * a / b:.1f}%" if b else "-"

    fram = ", ".join(f"{k} {v}" for k, v in rep["fram_sections"].items())
    sram = ", ".join(f"{k} {v}" for k, v in rep["sram_sections"].items()) or "none"
    lines = [
        f"{rep['file']}: memory use (bytes)",
        f"  FRAM {rep['fram_bytes']:6d} of budget {rep['fram_budget_bytes']:6d} ({pct(rep['fram_bytes'], rep['fram_budget_bytes'])})"
        f"  {'ok' if rep['fram_ok'] else 'OVER BUDGET'}   [{fram}]",
        f"  SRAM {rep['sram_bytes']:6d} of budget {rep['sram_budget_bytes']:6d} ({pct(rep['sram_bytes'], rep['sram_budget_bytes'])})"
        f"  {'ok' if rep['sram_ok'] else 'OVER BUDGET'}   [{sram}, stack reserve {rep['stack_reserve_bytes']}]",
    ]
    if rep["unplaced_sections"]:
        lines.append(f"  sections outside FRAM/SRAM: {', '.join(rep['unplaced_sections'])}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("elf")
    ap.add_argument("--fram-budget", type=int, required=True)
    ap.add_argument("--sram-budget", type=int, required=True)
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--no-check", action="store_true", help="exit 0 even when over budget")
    a = ap.parse_args(argv)
    try:
        rep = memory_report(a.elf, a.fram_budget, a.sram_budget)
    except (OSError, ValueError, struct.error) as e:
        print(f"aidi_elfsize: {e}", file=sys.stderr)
        return 2
    print(json.dumps(rep) if a.json else format_report(rep))
    return 0 if (rep["fits"] or a.no_check) else 1


if __name__ == "__main__":
    sys.exit(main())
