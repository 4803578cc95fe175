"""Calibration of the portable-C cost model (:mod:`aidi.models.costs.software`) against mspdebug's cycle counts.

:func:`software_cost_features` says how often the model charges each
:class:`~aidi.sim.platform.SoftwareCosts` constant in each layer of a plan
(the model is linear in them); :func:`fit_software_costs` fits the constants
to measured cycles.  ``aidi.analysis.emit.calibration_set`` measures the
calibration networks on mspdebug.

It re-plans networks (:func:`aidi.models.schedule.plan_network`), so it sits above both
:mod:`aidi.models.schedule` and :mod:`aidi.models.costs` (the planner reads the cost tables).
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Sequence

import numpy as np

from ..sim.platform import SoftwareCosts, get_platform
from .schedule import plan_network


def software_cost_features(plan, platform=None) -> np.ndarray:
    """(layers, fields of :class:`~aidi.sim.platform.SoftwareCosts`): how often the portable-C cost model
    charges each constant in each layer of ``plan`` (an :class:`~aidi.models.schedule.NetPlan`; its
    designs are re-planned on the CPU path).  The model is linear in the constants: each column is the
    layer cycles with that constant set to 1 and the others to 0."""
    p = plan.platform if platform is None else (get_platform(platform) if isinstance(platform, str) else platform)
    names = [f.name for f in fields(SoftwareCosts)]
    designs = [replace(d, backend="cpu") for d in plan.designs]
    cols = []
    for name in names:
        unit = SoftwareCosts(**{n: float(n == name) for n in names})
        cols.append([lp.cycles for lp in plan_network(plan.geoms, designs, replace(p, cpu_sw=unit), p.sram_bytes,
                                                      backend="cpu").layers])
    return np.array(cols).T


def fit_software_costs(features: np.ndarray, measured: Sequence[float], *, fixed: dict | None = None):
    """Least squares (numpy) of :class:`~aidi.sim.platform.SoftwareCosts` on per-layer ``features``
    (:func:`software_cost_features` rows) and mspdebug ``measured`` cycles, minimising the relative error
    per layer.  ``fixed``: constants held at a given value (e.g. ``acc_init``, which always occurs as often
    as ``output`` and so cannot be told apart from it).  Constants that come out negative are held at 0
    and the rest refitted (an active-set NNLS).  Returns ``(SoftwareCosts, relative errors)``."""
    names = [f.name for f in fields(SoftwareCosts)]
    fixed = dict(fixed or {})
    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    w = 1.0 / y
    coef = np.zeros(len(names))
    for k, v in fixed.items():
        coef[names.index(k)] = v
    free = [i for i, n in enumerate(names) if n not in fixed and X[:, i].any()]
    rest = y - X @ coef
    while free:
        c, *_ = np.linalg.lstsq(X[:, free] * w[:, None], rest * w, rcond=None)
        if c.min() >= 0:
            coef[free] = c
            break
        free.pop(int(np.argmin(c)))
    err = (X @ coef - y) / y
    return SoftwareCosts(**{n: float(round(v, 2)) for n, v in zip(names, coef)}), err

