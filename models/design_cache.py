"""The latency optimizer's designs kept on disk between runs: ``<aidi's cache>/designs/<key>.json``.

Choosing designs (:func:`aidi.models.design_search.optimize_designs`) is most of what a cost-only
``aidi run`` computes: it ranks every layer's design space, walks the best designs and simulates
candidate networks with the oracle, loading five compiled kernels from numba's cache on the way.  It
is deterministic (no random draw, no clock): its designs are a function of its inputs and of aidi's
code.  So :class:`DesignStore` keeps them under a key that is a SHA-256 (:func:`fingerprint`) of

* every argument of the call (the layers' geometry, the platform, the SRAM budget, the power, the
  harvester's segments, the run settings, the unit energy budget, backend, preservation, the pinned
  ``[execution]`` values), value by value, floats bit-exact (:meth:`float.hex`);
* the source of :mod:`aidi.models` and :mod:`aidi.sim` (:func:`code_digest`: an edited cost model,
  schedule or simulator is a new key), and the Python, numpy and numba versions.

A hit returns the designs the optimizer returned when the entry was written; anything unreadable
(a truncated or foreign file, designs of another network) is a miss and is recomputed.  Writes are
atomic (a temporary file renamed into place) and a folder that cannot be written only means no cache.
At most :data:`MAX_ENTRIES` files are kept, the least recently used removed first.

Public API::

    fingerprint(*parts) -> str                       # SHA-256 hex of values (dataclasses, arrays, floats...)
    code_digest() -> str                             # SHA-256 hex of aidi.models' and aidi.sim's source
    DesignStore(folder=None, max_entries=MAX_ENTRIES)
        .key(*parts) -> str                          # fingerprint of the parts, the code and the versions
        .get_or_compute(key, n, compute) -> list[ExecutionDesign]   # n: designs expected (one per layer)
    default_store() -> DesignStore                   # <cache_dir()>/designs (aidi.models.cache)
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from .cache import cache_dir
from .schedule.design import ExecutionDesign

#: the most design files kept; each is a few hundred bytes (a sweep with ``--reoptimize`` adds one per point)
MAX_ENTRIES = 512
#: the packages whose source is part of every key (the optimizer, its cost model and the oracle live there)
CODE_PACKAGES = ("models", "sim")


def _feed(h, v) -> None:
    """Add ``v`` to hash ``h`` unambiguously: a type tag, then the value (TypeError for a type not listed)."""
    if isinstance(v, (bool, np.bool_)):
        h.update(f"bool:{bool(v)};".encode())
    elif v is None or isinstance(v, str):
        h.update(f"{type(v).__name__}:{v!r};".encode())
    elif isinstance(v, (int, np.integer)):
        h.update(f"int:{int(v)};".encode())
    elif isinstance(v, (float, np.floating)):
        h.update(f"float:{float(v).hex()};".encode())
    elif isinstance(v, Path):
        h.update(f"path:{v};".encode())
    elif isinstance(v, np.ndarray):
        a = np.ascontiguousarray(v)
        h.update(f"array:{a.dtype.str}:{a.shape};".encode())
        h.update(a.tobytes())
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        h.update(f"{type(v).__module__}.{type(v).__qualname__}(".encode())
        for f in dataclasses.fields(v):
            if f.compare:  # a field equality ignores (documentation, e.g. Platform.sources) is no input
                h.update(f"{f.name}=".encode())
                _feed(h, getattr(v, f.name))
        h.update(b")")
    elif isinstance(v, (tuple, list)):
        h.update(f"{type(v).__name__}[{len(v)}](".encode())
        for x in v:
            _feed(h, x)
        h.update(b")")
    elif isinstance(v, dict):
        h.update(f"dict[{len(v)}](".encode())
        for k in sorted(v, key=repr):
            _feed(h, k)
            _feed(h, v[k])
        h.update(b")")
    else:
        raise TypeError(f"design cache key: cannot fingerprint a {type(v).__name__}")


def fingerprint(*parts) -> str:
    """SHA-256 (hex) of ``parts``: None, bools, ints, floats (bit-exact), strings, paths, numpy arrays
    (dtype, shape, bytes), dataclasses (their compared fields), tuples, lists and dicts of those.
    Raises TypeError for anything else (no silent fallback to ``repr`` or ``id``)."""
    h = hashlib.sha256()
    _feed(h, parts)
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (hex) of the relative path and content of every ``.py`` file under the
    :data:`CODE_PACKAGES` of aidi (read once per process)."""
    root = Path(__file__).resolve().parent.parent
    h = hashlib.sha256()
    for pkg in CODE_PACKAGES:
        for f in sorted((root / pkg).rglob("*.py")):
            h.update(f"{f.relative_to(root).as_posix()}\0".encode())
            h.update(f.read_bytes())
            h.update(b"\0")
    return h.hexdigest()


def _versions() -> tuple:
    import numba

    return sys.version, np.__version__, numba.__version__


class DesignStore:
    """Designs by key in ``folder`` (default ``<cache_dir()>/designs``), one JSON file per key.

    ``hits`` and ``misses`` count this object's lookups.
    """

    def __init__(self, folder: str | Path | None = None, max_entries: int = MAX_ENTRIES):
        self.folder = Path(folder) if folder is not None else cache_dir() / "designs"
        self.max_entries = max_entries
        self.hits = 0
        self.misses = 0

    def key(self, *parts) -> str:
        """:func:`fingerprint` of ``parts``, :func:`code_digest` and the Python, numpy and numba versions."""
        return fingerprint(code_digest(), _versions(), *parts)

    def get_or_compute(self, key: str, n: int, compute: Callable[[], list[ExecutionDesign]]) -> list[ExecutionDesign]:
        """The ``n`` designs stored under ``key``, else ``compute()`` (stored, then returned).  What
        ``compute`` raises propagates and nothing is stored."""
        path = self.folder / f"{key}.json"
        designs = self._read(path, n)
        if designs is not None:
            self.hits += 1
            return designs
        self.misses += 1
        designs = list(compute())
        self._write(path, designs)
        return designs

    def _read(self, path: Path, n: int) -> list[ExecutionDesign] | None:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            designs = [ExecutionDesign(**d) for d in data["designs"]]
        except (OSError, ValueError, KeyError, TypeError):  # none yet, or unreadable: recomputed and replaced
            return None
        if len(designs) != n:
            return None
        with contextlib.suppress(OSError):
            os.utime(path)  # recently used
        return designs

    def _write(self, path: Path, designs: list[ExecutionDesign]) -> None:
        text = json.dumps({"designs": [d.to_dict() for d in designs]})
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        except OSError:  # a read-only cache folder: no cache, the designs are still right
            return
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
            os.replace(tmp, path)
        except OSError:  # a full disk: the same
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            return
        self._evict()

    def _evict(self) -> None:
        try:
            files = [(p.stat().st_mtime_ns, p) for p in self.folder.glob("*.json")]
        except OSError:
            return
        for _, p in sorted(files)[:max(0, len(files) - self.max_entries)]:
            with contextlib.suppress(OSError):
                p.unlink()


def default_store() -> DesignStore:
    """The store in aidi's cache folder (:func:`aidi.models.cache.cache_dir`, read when called)."""
    return DesignStore()
