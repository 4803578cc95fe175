"""Build and run an emitted project from Python (tests, CLI, calibration scripts).

Tools are looked up on PATH under their Debian names first (``clang-14``,
``ld.lld-14``) and then unversioned.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

#: logical tool -> executable names tried in order
TOOLS: dict[str, tuple[str, ...]] = {
    "make": ("make",),
    "gcc": ("gcc",),
    "clang": ("clang-14", "clang"),
    "lld": ("ld.lld-14", "ld.lld"),
    "mspdebug": ("mspdebug",),
    "python3": ("python3",),
}
#: what each target needs
NEEDS: dict[str, tuple[str, ...]] = {
    "host": ("make", "gcc"),
    "check": ("make", "gcc"),
    "msp430-sim": ("make", "clang", "lld", "python3"),
    "size": ("make", "clang", "lld", "python3"),
    "sim": ("make", "clang", "lld", "python3", "mspdebug"),
}
#: Debian packages providing them
PACKAGES = {"make": "make", "gcc": "gcc", "clang": "clang-14", "lld": "lld-14", "mspdebug": "mspdebug",
            "python3": "python3"}


class BuildError(RuntimeError):
    """make failed; the message carries the tail of its output."""


def tool(name: str) -> str | None:
    """Path of a logical tool (see :data:`TOOLS`), or None."""
    for exe in TOOLS[name]:
        p = shutil.which(exe)
        if p:
            return p
    return None


def missing(target: str) -> list[str]:
    """Logical tools missing for ``target`` (a key of :data:`NEEDS`)."""
    return [t for t in NEEDS[target] if tool(t) is None]


def missing_message(target: str) -> str:
    miss = missing(target)
    if not miss:
        return ""
    pk = " ".join(sorted({PACKAGES[t] for t in miss}))
    return f"{', '.join(TOOLS[t][0] for t in miss)} not found (Debian: apt-get install {pk})"


def make(root: str | Path, *targets: str, variables: Mapping[str, str] | None = None,
         timeout: float = 300.0) -> subprocess.CompletedProcess:
    """``make -C root [VAR=value ...] targets``; raises BuildError on failure.

    ``PYTHON`` defaults to the running interpreter (used by ``make size``)."""
    exe = tool("make")
    if exe is None:
        raise BuildError("make not found")
    cmd = [exe, "-C", str(root), "--no-print-directory"]
    variables = {"PYTHON": sys.executable, **(variables or {})}  # the size tool runs on this interpreter
    cmd += [f"{k}={v}" for k, v in variables.items()]
    cmd += list(targets)
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise BuildError(f"make {' '.join(targets)} failed (status {proc.returncode}):\n{tail}")
    return proc


@dataclass(frozen=True)
class HostRun:
    """Result of one ``build/aidi-host`` invocation."""

    returncode: int
    output: np.ndarray | None
    stdout: str
    stderr: str


def run_host(root: str | Path, *args: str, timeout: float = 120.0) -> HostRun:
    """Run ``build/aidi-host args`` (see runtime/host_main.c); parse the printed vector."""
    exe = Path(root) / "build" / "aidi-host"
    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    out = None
    lines = proc.stdout.strip().splitlines()
    if lines:
        try:
            out = np.array([int(v) for v in lines[-1].split()], dtype=np.int16)
        except ValueError:
            out = None
    return HostRun(proc.returncode, out, proc.stdout, proc.stderr)



_CAPACITOR = re.compile(r"capacitor \S+ W: (\d+) boots, (\d+) units started, (\d+) lost, (\d+) threshold waits "
                        r"\((\S+) s\), (\d+) measurements, (\S+) s")


def capacitor_stats(stderr: str) -> dict | None:
    """The summary of ``aidi-host --capacitor P`` (runtime/host_main.c): ``boots``, ``units_started``,
    ``units_lost``, ``threshold_waits``, ``wait_s`` (LPM3), ``measurements`` (voltage reads) and ``time_s``
    (from the first boot at V_on to the delivery); None if ``stderr`` has none."""
    m = _CAPACITOR.search(stderr)
    if m is None:
        return None
    ints = dict(zip(("boots", "units_started", "units_lost", "threshold_waits"), map(int, m.groups()[:4])))
    return {**ints, "wait_s": float(m.group(5)), "measurements": int(m.group(6)), "time_s": float(m.group(7))}
