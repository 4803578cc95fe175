"""aidi: accelerate intermittent deep inference on battery-less MSP430FR5994 devices.

The stable Python API (documented in the README's "Python API" section and in
:mod:`aidi.analysis.api`, where it lives)::

    import aidi
    sc = aidi.load("lab-1mF")                              # a shipped name, a TOML path, a dict
    sc = sc.replace({"power.capacitor_F": 4.7e-4})         # validated like the file
    r = aidi.run(sc, engine="oracle")                      # or engine="des" (SimPy, functional)
    r.latency_s, r.power_cycles, r.energy, r.events        # floats, ints, pandas DataFrames

* :func:`load`, :func:`loads`, :class:`Scenario` (``.replace``, ``.to_toml``), :func:`shipped_scenarios`
* :func:`run` -> :class:`RunResult`; :func:`check` -> :class:`CheckResult`;
  :func:`sweep` -> :class:`SweepResult`; :func:`explore` -> :class:`ExploreResult`;
  :func:`nas` -> :class:`NasResult`; :func:`nas_compare` -> :class:`NasCompareResult`
* :func:`import_onnx`, :func:`from_torch` (a PyTorch module through torch.onnx) -> :class:`ImportResult`
* :class:`UserError`: every problem with the caller's input, one line (as the CLI prints it)

Importing ``aidi`` is cheap: the names load on first use, and nothing here imports torch
until a model has to be trained or loaded.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the stable API: name -> module that defines it (loaded on first attribute access, PEP 562)
_API = {name: "aidi.analysis.api" for name in (
    "UserError", "Scenario", "load", "loads", "shipped_scenarios", "run", "RunResult", "check", "CheckResult",
    "sweep", "SweepResult", "nas", "NasResult", "nas_compare", "NasCompareResult", "explore", "ExploreResult",
    "import_onnx", "from_torch", "ImportResult")}

__all__ = ["__version__", *_API]

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs
    from .analysis.api import (CheckResult, ExploreResult, ImportResult, NasCompareResult, NasResult, RunResult,
                               Scenario, SweepResult, UserError, check, explore, from_torch, import_onnx, load,
                               loads, nas, nas_compare, run, shipped_scenarios, sweep)


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        value = getattr(importlib.import_module(_API[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'aidi' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
