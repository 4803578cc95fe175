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

Caches on a read-only install: importing ``aidi`` first makes sure that numba's compiled
kernels and aidi's own cache (trained weights, supernets) have somewhere writable to go,
before any kernel module is imported (numba picks a cache folder when a ``cache=True``
function is decorated and raises ``RuntimeError: cannot cache function ...: no locator
available`` when it finds none).  See :func:`_choose_cache_dirs`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the folders (relative to the package) holding ``@njit(cache=True)`` kernels, whose ``__pycache__``
#: is numba's first choice of cache folder (numba.core.caching.InTreeCacheLocator); a test keeps it complete
_KERNEL_DIRS = ("sim", "models", "models/costs", "models/schedule")


def _writable(folder: Path) -> bool:
    """Whether this process can create files in ``folder``, or in the nearest folder above it that exists
    (``folder`` would be created there): numba's own test (``_CacheLocator.ensure_cache_path`` writes a
    temporary file), made with a probe file that is removed at once, so nothing is left behind."""
    folder = Path(folder)
    while not folder.is_dir():
        if folder.exists() or folder.parent == folder:
            return False
        folder = folder.parent
    probe = folder / f".aidi-write-probe-{os.getpid()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError:
        return False
    try:
        os.unlink(probe)
    except OSError:
        pass
    return True


def _private_temp_dir() -> Path:
    """``<tempdir>/aidi-cache-<uid>`` (mode 0700, reused across runs so kernels compile once) when this
    user owns it, else a new ``mkdtemp`` folder."""
    import tempfile

    uid = os.getuid() if hasattr(os, "getuid") else os.getpid()
    d = Path(tempfile.gettempdir()) / f"aidi-cache-{uid}"
    try:
        d.mkdir(mode=0o700, exist_ok=True)
        st = os.lstat(d)
        if not os.path.islink(d) and st.st_uid == uid and not st.st_mode & 0o077 and _writable(d):
            return d
    except (OSError, AttributeError):
        pass
    return Path(tempfile.mkdtemp(prefix="aidi-cache-"))


def _choose_cache_dirs(root: Path = Path(__file__).resolve().parent, env=os.environ, stderr=sys.stderr) -> None:
    """Give aidi's cache and numba's cache a writable folder when the defaults are read-only.

    * aidi's cache (:func:`aidi.models.cache.cache_dir`): ``$AIDI_CACHE_DIR`` when set (kept as given),
      else ``~/.cache/aidi``; when that cannot be written, ``$AIDI_CACHE_DIR`` is set to a private
      temporary folder (:func:`_private_temp_dir`).
    * numba's cache: ``$NUMBA_CACHE_DIR`` when set; else numba writes beside the kernels
      (``<package>/<dir>/__pycache__`` for each of :data:`_KERNEL_DIRS`) or, failing that, in
      ``$XDG_CACHE_HOME/numba`` (default ``~/.cache/numba``).  When neither can be written,
      ``$NUMBA_CACHE_DIR`` is set to ``<aidi's cache>/numba`` (a temporary folder if that is read-only
      too), also in numba's loaded config when numba was imported before aidi.

    Says what it did in one line on ``stderr``; the environment is inherited by worker processes, which
    then decide nothing.
    """
    moved = []
    aidi_cache = Path(env["AIDI_CACHE_DIR"]).expanduser() if env.get("AIDI_CACHE_DIR") else None
    if aidi_cache is None and not _writable(Path.home() / ".cache" / "aidi"):
        aidi_cache = _private_temp_dir()
        env["AIDI_CACHE_DIR"] = str(aidi_cache)
        moved.append(f"{Path.home() / '.cache' / 'aidi'} is read-only: aidi's cache is {aidi_cache}")
    if not env.get("NUMBA_CACHE_DIR"):
        numba_home = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "numba"
        if not (all(_writable(root / d / "__pycache__") for d in _KERNEL_DIRS) or _writable(numba_home)):
            base = aidi_cache if aidi_cache is not None else Path.home() / ".cache" / "aidi"
            numba_dir = base / "numba" if _writable(base / "numba") else _private_temp_dir() / "numba"
            env["NUMBA_CACHE_DIR"] = str(numba_dir)
            if "numba" in sys.modules:  # numba read its config when imported
                sys.modules["numba"].config.CACHE_DIR = str(numba_dir)
            moved.append(f"{root} and {numba_home} are read-only: numba caches compiled kernels in {numba_dir}")
    if moved:
        print(f"aidi: {'; '.join(moved)} (set AIDI_CACHE_DIR / NUMBA_CACHE_DIR to choose)", file=stderr)


_choose_cache_dirs()


class _ArraymathWithoutBlasProbe:
    """Import hook: numba's ``numba.np.arraymath`` loads without probing for scipy's BLAS.

    On its first compile or first cached dispatch, numba imports ``numba.np.arraymath``, which calls
    ``_check_blas()`` at module level; that imports ``scipy.linalg`` (with numpy.f2py and numpy.testing),
    about 0.4 s of a 2 s cost-only ``aidi run``, only to pick BLAS for ``np.convolve``/``np.correlate`` of
    floats, which no aidi kernel calls.  While that one module executes, ``scipy.linalg.cython_blas`` is
    made unimportable, so ``_HAVE_BLAS`` is False (those two functions use numba's own loop); everything
    that really needs BLAS (``np.dot``, ``np.linalg``) still imports scipy lazily through
    ``numba.np.linalg.ensure_blas`` when compiled.  Installed once, removed on first use; does nothing when
    numba's registries were loaded before aidi was imported.
    """

    _BLOCK = "scipy.linalg.cython_blas"

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "numba.np.arraymath":
            return None
        sys.meta_path.remove(cls)
        import importlib.machinery

        spec = importlib.machinery.PathFinder.find_spec(name, path)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        exec_module = spec.loader.exec_module

        def exec_without_blas_probe(module):
            block = cls._BLOCK not in sys.modules
            if block:
                sys.modules[cls._BLOCK] = None  # an ImportError for this one import (importlib's rule)
            try:
                exec_module(module)
            finally:
                if block and sys.modules.get(cls._BLOCK, 0) is None:
                    del sys.modules[cls._BLOCK]

        spec.loader.exec_module = exec_without_blas_probe
        return spec


if "numba.np.arraymath" not in sys.modules:
    sys.meta_path.insert(0, _ArraymathWithoutBlasProbe)

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
