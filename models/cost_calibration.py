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


def nnls_relative(features: np.ndarray, measured: Sequence[float], *, fixed: dict[int, float] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
    """Non-negative least squares (:func:`scipy.optimize.nnls`) of ``measured`` (n,) on ``features`` (n, k),
    minimising the *relative* error of each row (rows weighted by 1 / measured; every measured value must be
    > 0).  ``fixed``: column index -> value held (its part is subtracted before the fit).  Columns that are
    all zero get 0.  Returns ``(coefficients (k,), relative errors (n,))``, errors = (model - measured) /
    measured.  Raises ValueError for a measured value <= 0 or a shape mismatch."""
    from scipy.optimize import nnls

    X = np.asarray(features, dtype=np.float64)
    y = np.asarray(measured, dtype=np.float64)
    if X.ndim != 2 or y.shape != (X.shape[0],):
        raise ValueError(f"features {X.shape} and measured {y.shape} do not match")
    if not (y > 0).all():
        raise ValueError("measured values must be > 0 (the fit minimises relative errors)")
    fixed = dict(fixed or {})
    coef = np.zeros(X.shape[1])
    for i, v in fixed.items():
        coef[i] = v
    free = [i for i in range(X.shape[1]) if i not in fixed and X[:, i].any()]
    w = 1.0 / y
    if free:
        coef[free], _ = nnls(X[:, free] * w[:, None], (y - X @ coef) * w)
    return coef, (X @ coef - y) / y


def fit_software_costs(features: np.ndarray, measured: Sequence[float], *, fixed: dict | None = None):
    """Non-negative least squares (:func:`nnls_relative`) of :class:`~aidi.sim.platform.SoftwareCosts` on
    per-layer ``features`` (:func:`software_cost_features` rows) and mspdebug ``measured`` cycles, minimising
    the relative error per layer.  ``fixed``: constants held at a given value (e.g. ``acc_init``, which always
    occurs as often as ``output`` and so cannot be told apart from it).  Returns ``(SoftwareCosts, relative
    errors)``, constants rounded to 0.01 cycle."""
    names = [f.name for f in fields(SoftwareCosts)]
    coef, _ = nnls_relative(features, measured, fixed={names.index(k): v for k, v in (fixed or {}).items()})
    costs = SoftwareCosts(**{n: float(round(v, 2)) for n, v in zip(names, coef)})
    X, y = np.asarray(features, dtype=np.float64), np.asarray(measured, dtype=np.float64)
    return costs, (X @ np.array([getattr(costs, n) for n in names]) - y) / y
