"""The latency optimizer (issue 13): its designs against the exhaustive oracle reference, and its wiring."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.models import hardware
from aidi.models.design_search import EXHAUSTIVE_LIMIT, auto_design
from aidi.models.schedule.plan import geoms_of
from aidi.scenarios import loader
from aidi.sim import oracle


def _scenario(layers, shape, cap, power_w, dispatch="greedy", platform="msp430fr5994", sram=None):
    sc = loader.load("weak-source")
    vals = {"model.input": shape, "model.layers": layers, "power.capacitor_F": cap, "harvester.power_W": power_w,
            "execution.dispatch": dispatch, "device.platform": platform}
    if sram:
        vals["device.sram_budget_bytes"] = sram
    return sc.with_values(**vals)


def _latency(sc, designs):
    p = sc.device.make_platform()
    geoms = geoms_of(sc.model.layers, sc.model.input)
    planned = hardware.plan(geoms, designs, p, sc.device.sram_budget_bytes, sc.execution.backend)
    sim = hardware.power_context(sc, p).one_inference()
    return float(oracle.simulate_batch([planned.work], sc.power, sc.harvester.segments(), sim).latency_s[0])


RNG = np.random.default_rng(13)
CASES = []
for _ in range(12):
    k = int(RNG.choice([1, 3]))
    h = int(RNG.integers(max(k, 5), 11))
    c = int(RNG.integers(1, 4))
    first = ({"type": "conv", "k": k, "filters": int(RNG.integers(2, 9)), "relu": True} if RNG.random() < 0.75
             else {"type": "dwconv", "k": k, "relu": True})
    layers = [first] + ([{"type": "maxpool", "k": 2, "stride": 2}] if RNG.random() < 0.25 else [])
    CASES.append((layers, [c, h, h], float(RNG.choice([4.7e-5, 1e-4, 2.2e-4, 4.7e-4])),
                  float(RNG.choice([2e-4, 1e-3, 5e-3])), str(RNG.choice(["greedy", "energy_aware"])),
                  str(RNG.choice(["msp430fr5994", "msp430fr5994-extfram"]))))


@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_optimizer_within_one_percent_of_exhaustive(case):
    layers, shape, cap, pw, dispatch, platform = case
    sc = _scenario(layers, shape, cap, pw, dispatch, platform)
    geoms = geoms_of(sc.model.layers, sc.model.input)
    fast = hardware.optimize(sc, geoms)
    ref = hardware.optimize(sc, geoms, exhaustive=True)
    assert ref.exhaustive and np.isfinite(ref.latency_s)
    assert ref.latency_s <= fast.latency_s * (1 + 1e-12)  # the reference is the best there is
    assert fast.latency_s <= ref.latency_s * 1.01
    # the reported latency is the oracle's on the plan aidi run builds from those designs
    assert fast.latency_s == pytest.approx(_latency(sc, fast.designs), rel=1e-12)


def test_weak_source_beats_todays_auto_design_and_matches_exhaustive():
    sc = loader.load("weak-source")
    geoms = geoms_of(sc.model.layers, sc.model.input)
    p = sc.device.make_platform()
    fast = hardware.optimize(sc, geoms)
    ref = hardware.optimize(sc, geoms, exhaustive=True)
    e_cyc, p_h = hardware.design_power(sc, p)
    old = [auto_design(g, p, None, e_cyc, backend=sc.execution.backend, harvest_power_W=p_h) for g in geoms]
    assert fast.latency_s <= _latency(sc, old)
    assert fast.latency_s <= ref.latency_s * 1.01
    # every design of the space is accounted for: walked, or rejected for a reason
    lc = ref.layers[0]
    assert lc.rejected["pruned"] == 0 and lc.rejected["sram"] > 0 and lc.rejected["atomicity"] > 0
    assert lc.alternatives[0][1] == ref.latency_s


def test_two_layer_network_within_one_percent_of_exhaustive():
    sc = _scenario([{"type": "conv", "k": 3, "filters": 4, "relu": True}, {"type": "maxpool", "k": 2, "stride": 2}],
                   [2, 6, 6], 4.7e-5, 5e-4)
    geoms = geoms_of(sc.model.layers, sc.model.input)
    fast = hardware.optimize(sc, geoms)
    ref = hardware.optimize(sc, geoms, exhaustive=True)
    assert ref.evaluations > 100
    assert ref.latency_s <= fast.latency_s * (1 + 1e-12) and fast.latency_s <= ref.latency_s * 1.01


def test_run_and_nas_use_the_optimizer():
    sc = loader.load("weak-source")
    geoms = geoms_of(sc.model.layers, sc.model.input)
    opt = hardware.optimize(sc, geoms)
    assert hardware.resolve(sc, geoms) == opt.designs
    hw = hardware.compose(sc, geoms)
    assert hw.designs == opt.designs
    obj = hardware.HardwareEvaluator(sc)(list(sc.model.layers), list(sc.model.input))
    assert obj["hw_feasible"] and obj["latency_s"] == pytest.approx(opt.latency_s, rel=1e-12)


def test_pinned_fields_are_kept_and_errors_name_the_layer():
    sc = loader.load("weak-source").with_values(**{"execution.loop_order": "reuse_W", "execution.hyper_tile": 2})
    geoms = geoms_of(sc.model.layers, sc.model.input)
    ds = hardware.resolve(sc, geoms)
    assert ds[0].loop_order == "reuse_W" and ds[0].S == 2
    tiny = loader.load("weak-source").with_values(**{"device.sram_budget_bytes": 300})
    with pytest.raises(ValueError, match=r"^layer 0 \(conv\): no execution design fits"):
        hardware.optimize(tiny, geoms)


def test_exhaustive_refuses_a_space_too_large():
    sc = loader.load("rf-intermittent")
    geoms = geoms_of(sc.model.layers, sc.model.input)
    with pytest.raises(ValueError, match=f"exceed the limit of {EXHAUSTIVE_LIMIT}"):
        hardware.optimize(sc, geoms, exhaustive=True)


def _one_call_per_layer_descent(geoms, platform, ctx):
    """The coordinate descent as it was before later passes were batched: one oracle call per layer per pass.
    Returns (designs, oracle calls that simulated something)."""
    from aidi.models import design_search as ds
    from aidi.models.schedule.design import DEFAULT_BACKEND

    p_h = ctx.segments.typical_power(ctx.power.v_off, ctx.power.v_on) * ctx.power.converter_efficiency
    spaces = [ds._layer_space(g, platform, 4096, ctx, p_h, DEFAULT_BACKEND, "hypertile", None, None, None, False)
              for g in geoms]
    latency = ds._NetworkLatency(spaces, platform, ctx)
    cur, best, calls, n = [0] * len(geoms), np.inf, 0, len(geoms)
    for _ in range(ds.MAX_PASSES):
        changed = False
        for i, sp in enumerate(spaces):
            cands = list(range(min(ds.ORACLE_TOP, len(sp.walked))))
            cands += [] if cur[i] in cands else [cur[i]]
            before = latency.evaluations
            lat = latency([tuple(cur[:i]) + (j,) + tuple(cur[i + 1:]) for j in cands])
            calls += latency.evaluations > before
            k = int(np.argmin(lat))
            if lat[k] < best * (1 - 1e-12) and cands[k] != cur[i]:
                changed, cur[i] = True, cands[k]
            best = min(best, float(lat[k]))
        if not changed:
            break
    return [sp.walked[j].design for sp, j in zip(spaces, cur)], calls


def test_later_descent_passes_are_batched_with_the_decisions_of_one_call_per_layer(monkeypatch):
    from aidi.analysis.bench import explore_setup
    from aidi.models.design_search import optimize_designs

    platform, ctx, nets = explore_setup(6)
    population, calls = oracle.Population, []
    monkeypatch.setattr(oracle, "Population", lambda works: calls.append(len(works)) or population(works))
    fewer = 0
    for geoms in nets[1:]:
        ref, ref_calls = _one_call_per_layer_descent(geoms, platform, ctx)
        calls.clear()
        opt = optimize_designs(geoms, platform, 4096, ctx, alternatives=0)  # the alternatives: all memoised
        assert opt.designs == ref
        assert len(calls) <= ref_calls
        fewer += len(calls) < ref_calls
    assert fewer > 0


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 4), min_size=12, max_size=12), st.integers(0, 4))
def test_fram_totals_are_the_layouts_totals(nts, net):
    from aidi.analysis.bench import explore_setup
    from aidi.models.schedule.memory import fram_layout, fram_totals

    geoms = explore_setup(4)[2][net]
    nts = nts[:len(geoms)]
    ones = [1] * len(geoms)
    assert fram_totals(geoms, [nts, ones]) == [fram_layout(geoms, nts).total, fram_layout(geoms, ones).total]
