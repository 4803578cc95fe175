"""The portable-C cost model's fit (aidi.models.cost_calibration): the features reproduce the model, and the
fit recovers constants from cycles, non-negative, holding the fixed ones."""

from dataclasses import astuple, fields, replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.models.cost_calibration import fit_software_costs, software_cost_features
from aidi.models.emit.examples import default_program
from aidi.models.schedule import plan_network
from aidi.sim.platform import SoftwareCosts, get_platform

NAMES = [f.name for f in fields(SoftwareCosts)]


@pytest.fixture(scope="module")
def program():
    return default_program(0)


def test_features_times_the_constants_are_the_planned_cycles(program):
    """The fit's premise: the model is linear in the constants with no other term, for the platform's own
    constants and for any others."""
    p = get_platform("msp430fr5994")
    feats = software_cost_features(program.plan, p)
    assert feats.shape == (len(program.plan.layers), len(NAMES))
    designs = [replace(d, backend="cpu") for d in program.plan.designs]
    for costs in (p.cpu_sw, SoftwareCosts(*np.random.default_rng(0).uniform(1, 500, len(NAMES)))):
        q = replace(p, cpu_sw=costs)
        cycles = [lp.cycles for lp in plan_network(program.plan.geoms, designs, q, q.sram_bytes, backend="cpu").layers]
        np.testing.assert_allclose(feats @ np.array(astuple(costs)), cycles, rtol=1e-12)


@st.composite
def identifiable(draw):
    """Features with more layers than constants and full column rank, and constants >= 0 (some zero)."""
    rows = draw(st.integers(len(NAMES) + 1, 3 * len(NAMES)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    feats = rng.integers(0, 40, (rows, len(NAMES))).astype(float) * (rng.random((rows, len(NAMES))) < 0.6)
    feats[:, 0] += 1  # every layer has its layer_start: no layer of 0 cycles
    if np.linalg.matrix_rank(feats) < len(NAMES):
        feats += np.eye(rows, len(NAMES))
    costs = np.round(rng.uniform(0, 300, len(NAMES)) * (rng.random(len(NAMES)) < 0.8), 2)
    return feats, costs


@settings(max_examples=40, deadline=None)
@given(identifiable(), st.sampled_from(NAMES))
def test_fit_recovers_the_constants_and_holds_the_fixed_one(case, held):
    feats, costs = case
    fixed_value = costs[NAMES.index(held)] + 7.0  # held away from the truth: the others absorb nothing of it
    measured = feats @ costs
    fit, err = fit_software_costs(feats, measured)
    np.testing.assert_allclose(astuple(fit), costs, atol=0.011)  # rounded to 0.01 cycle
    assert np.abs(err).max() < 1e-6
    fit_fixed, _ = fit_software_costs(feats, measured, fixed={held: fixed_value})
    assert getattr(fit_fixed, held) == pytest.approx(fixed_value)
    assert min(astuple(fit_fixed)) >= 0


def test_a_constant_least_squares_would_make_negative_is_held_at_zero():
    """Cycles that only a negative constant would explain: the active set holds it at 0 (NNLS)."""
    rng = np.random.default_rng(3)
    feats = rng.integers(1, 30, (3 * len(NAMES), len(NAMES))).astype(float)
    truth = rng.uniform(10, 100, len(NAMES))
    truth[NAMES.index("mac")] = -5.0
    measured = feats @ truth
    assert measured.min() > 0
    fit, err = fit_software_costs(feats, measured)
    assert fit.mac == 0 and min(astuple(fit)) >= 0
    assert np.abs(err).max() > 1e-6  # the truth is outside what the fit may return
