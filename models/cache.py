"""Where aidi keeps what it computes once: ``$AIDI_CACHE_DIR`` or ``~/.cache/aidi``.

Subfolders by owner: ``models/`` (trained weights, :mod:`aidi.models.net`),
``nas/`` (supernets, :mod:`aidi.models.nas.supernet`), ``data/`` (decoded
Tiny ImageNet, :mod:`aidi.models.data`) and ``designs/`` (the latency optimizer's
designs, :mod:`aidi.models.design_cache`).  The cache is never inside the
repository; writers create folders on demand and write atomically.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$AIDI_CACHE_DIR`` or ``~/.cache/aidi`` (created on demand by writers)."""
    env = os.environ.get("AIDI_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "aidi"
