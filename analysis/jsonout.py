"""Strict JSON for every file and ``--json`` line aidi writes: no NaN or Infinity (RFC 8259).

A value that is legitimately undefined (a NaN latency of a run that did not complete, an infinite
bound) is written as ``null``; numpy scalars and arrays become numbers and lists, paths strings.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any


def strict(obj: Any) -> Any:
    """``obj`` with NaN/inf floats replaced by None and numpy/Path values made plain (recursively)."""
    import numpy as np

    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, (str, int, bool)) or obj is None:
        return obj
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(k)): strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return strict(obj.tolist())
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return strict(float(obj))
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and callable(obj.item):  # other array scalars (torch, pandas)
        return strict(obj.item())
    return str(obj)


def dumps(obj: Any, **kw: Any) -> str:
    """``json.dumps`` of :func:`strict` ``(obj)`` with ``allow_nan=False``."""
    return json.dumps(strict(obj), allow_nan=False, **kw)
