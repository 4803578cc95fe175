"""Functional intermittent execution: intermittent == continuous == reference, bit for bit.

The network covers every layer type (conv with padding and folded BN, depthwise
with stride, maxpool, pointwise, avgpool, conv, gap, fc).  Besides calibrated
random weights, an "extreme" variant uses full-range int16 weights, int32
biases and random shifts so that accumulators saturate and partial sums carry
saturated values across units.
"""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aidi.models.functional import FunctionalRun
from aidi.models.net import random_model
from aidi.models import q15
from aidi.models.q15 import QModel, quantize, reference_forward
from aidi.models.design_search import design_network
from aidi.models.schedule import LOOP_ORDERS, PRESERVATIONS, RUNTIME_STATE_BYTES, STACK_BYTES, ExecutionDesign, plan_network
from aidi.models.schedule.design import F_LOAD_IN
from aidi.sim.platform import MSP430FR5994, MSP430FR5994_EXTFRAM

P = MSP430FR5994
NET = [
    {"type": "conv", "k": 3, "filters": 5, "padding": 1, "relu": True}, {"type": "bn"},
    {"type": "dwconv", "k": 3, "stride": 2, "padding": 1, "relu": True},
    {"type": "maxpool", "k": 2, "stride": 1},
    {"type": "pwconv", "filters": 4, "relu": True},
    {"type": "avgpool", "k": 2, "stride": 1},
    {"type": "conv", "k": 2, "filters": 6},
    {"type": "gap", "relu": True},
    {"type": "fc", "units": 3},
]
INPUT = [3, 9, 8]


def extreme(qm: QModel, x: np.ndarray, rng) -> QModel:
    """Full-range random int16 weights and int32 biases; each shift is the smallest that leaves at
    most a quarter of the layer's outputs saturated (so later layers still see varied values)."""
    layers = []
    for ql in qm.layers:
        if ql.w is not None:
            w = rng.integers(-32768, 32768, ql.w.shape).astype(np.int16)
            b = (rng.integers(-(2**31), 2**31, ql.b.shape, dtype=np.int64) >> rng.integers(0, 8)).astype(np.int32)
            for k in range(32):
                ql2 = replace(ql, w=w, b=b, shift=k)
                y = reference_forward(replace(qm, layers=tuple(layers) + (ql2,)), x)[-1]
                if np.mean(np.abs(y.astype(np.int64)) >= 32767) <= 0.25:
                    break
            ql = ql2
        layers.append(ql)
    return replace(qm, layers=tuple(layers))


@pytest.fixture(scope="module")
def models():
    tm = random_model(NET, INPUT, seed=0)
    qm = quantize(tm)
    x = qm.quantize_input(tm.dataset.x_test[0])
    xq_ext = np.random.default_rng(5).integers(-32768, 32768, INPUT).astype(np.int16)
    return {"calibrated": (qm, x), "extreme": (extreme(qm, xq_ext, np.random.default_rng(1)), xq_ext)}


def test_extreme_model_saturates(models):
    qm, x = models["extreme"]
    xb = x[None].astype(np.int64)
    saturated_acc = False
    for ql, y in zip(qm.layers, reference_forward(qm, x)):
        g = ql.geom
        if g.op in ("conv", "fc"):  # accumulators hit the int32 rails somewhere
            xin = np.pad(xb.reshape(1, *g.in_shape), ((0, 0), (0, 0), (g.pad, g.pad), (g.pad, g.pad)))
            acc = q15.conv_accumulate(xin, ql.w, np.broadcast_to(ql.b[None, :, None, None], (1, *g.out_shape)),
                                      g.stride)
            saturated_acc |= bool((np.abs(acc.astype(np.int64)) >= 2**31 - 1).any())
        assert len(np.unique(y)) > 1 or y.size == 1
        xb = y[None].astype(np.int64)
    assert saturated_acc


@st.composite
def designs(draw, geoms, order):
    out = []
    for g in geoms:
        m, ho, wo = g.out_shape
        out.append(ExecutionDesign(draw(st.integers(1, ho)), draw(st.integers(1, wo)), draw(st.integers(1, m)),
                                   draw(st.integers(1, g.in_shape[0])), order, draw(st.integers(1, 8)),
                                   draw(st.sampled_from(PRESERVATIONS))))
    return out


def run_with_failures(run: FunctionalRun, rng, p_fail=0.5):
    """Drive the run like the executor: random brown-outs at random points, reboots with junk.

    Returns every layer's output as found in FRAM right after the layer's last unit committed.
    """
    ends = {lp.unit_offset + lp.n_units: lp.geom.index for lp in run.plan.layers}
    outs = {}
    while not run.done():
        i = run.progress()
        if rng.random() < p_fail:
            r = rng.random()
            frac = 1 - 1e-9 if r < 0.2 else rng.random() ** 0.3  # often late: after the last write-back
            run.interrupt_unit(i, frac, rng)
            run.reboot(rng)
        else:
            run.run_unit(i)
            if run.progress() in ends:
                outs[ends[run.progress()]] = run.layer_output(ends[run.progress()])
    return [outs[k] for k in sorted(outs)]


@pytest.mark.parametrize("order", LOOP_ORDERS)
@pytest.mark.parametrize("variant", ["calibrated", "extreme"])
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), backend=st.sampled_from(["lea", "cpu"]), seed=st.integers(0, 2**32 - 1))
def test_intermittent_equals_continuous_equals_reference(models, order, variant, data, backend, seed):
    qm, x = models[variant]
    ds = data.draw(designs(qm.geoms, order))
    try:
        plan = plan_network(qm, ds, P, 8192, backend=backend)
    except ValueError:
        assume(False)
    ref = reference_forward(qm, x)[-1]
    cont = FunctionalRun(plan, qm, x)
    assert np.array_equal(cont.run_to_completion(), ref) and cont.output_matches_reference()
    run = FunctionalRun(plan, qm, x)
    layers = run_with_failures(run, np.random.default_rng(seed))
    assert run.progress() == run.n_units
    for got, want in zip(layers, reference_forward(qm, x), strict=True):  # every layer, not just the last
        assert np.array_equal(got, want)
    assert np.array_equal(run.output(), ref)
    assert run.output_matches_reference()


@pytest.mark.parametrize("platform", [P, MSP430FR5994_EXTFRAM], ids=["runtime", "inas"])
def test_sram_footprint_equals_buffers_used(models, platform):
    """The functional run's SRAM accesses fill exactly the arena rows the plan reserves (on a CPU plan: the
    accumulators, the weight tile, then the input tile, which ends the rows), on both presets; the layer's
    SRAM figure is that plus the runtime's state and the stack."""
    qm, x = models["calibrated"]
    for order in LOOP_ORDERS:
        ds = [ExecutionDesign(min(2, g.out_shape[1]), min(3, g.out_shape[2]), min(2, g.out_shape[0]),
                              min(2, g.in_shape[0]), order, 5) for g in qm.geoms]
        plan = plan_network(qm, ds, platform, 8192, backend="cpu")
        run = FunctionalRun(plan, qm, x)
        run_with_failures(run, np.random.default_rng(0))
        assert run.output_matches_reference()
        for lp in plan.layers:
            used = int(run.sram_hwm[lp.geom.index])
            assert used == sum(lp.sram["input"]), (order, lp.geom.name)
            assert lp.sram_bytes == (used + 3) // 4 * 4 + RUNTIME_STATE_BYTES + STACK_BYTES
            if platform is P:
                assert "acc" not in lp.sram or lp.sram["acc"][1] == 4 * lp.runtime.acc_buf  # one block
            spans = sorted(lp.sram.values())
            assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # buffers are disjoint


def psum_plan(qm, idempotent):
    # first conv: 3 input channels in tiles of 1 -> unit 1 reads and writes partial sums
    ds = [ExecutionDesign(3, 4, 5, 1, "reuse_O", 1)] + [
        ExecutionDesign(1, 1, 1, 1, "reuse_O", 1, "layer") for _ in qm.geoms[1:]]
    return plan_network(qm, ds, P, 8192, idempotent=idempotent)


@pytest.mark.parametrize("variant", ["calibrated", "extreme"])
def test_non_idempotent_partial_sums_are_caught(models, variant):
    qm, x = models[variant]
    ref = reference_forward(qm, x)
    good, bad = psum_plan(qm, True), psum_plan(qm, False)
    assert bad.fram.regions["psum0"][1] > 0 and bad.fram.regions["psum1"][1] > 0
    n0 = good.layers[0].n_units
    for plan, expect in ((good, True), (bad, False)):
        run = FunctionalRun(plan, qm, x)
        rng = np.random.default_rng(0)
        run.run_unit(0)
        run.interrupt_unit(1, 1 - 1e-9, rng)  # unit 1 read and wrote partial sums; commit lost
        run.reboot(rng)
        for i in range(1, n0):
            run.run_unit(i)
        assert np.array_equal(run.layer_output(0), ref[0]) is expect
        run.run_to_completion()
        if expect:  # (a wrong layer 0 may be masked downstream by ReLU, max or saturation)
            assert run.output_matches_reference()
    # without failures the naive variant is fine: only re-execution double counts
    naive = FunctionalRun(bad, qm, x)
    naive.run_to_completion()
    assert naive.output_matches_reference()


def test_junk_sram_matters(models):
    """A runtime that trusts SRAM across a unit boundary is right on continuous power, wrong after a reboot."""
    qm, x = models["calibrated"]
    ds = [ExecutionDesign(3, 4, 1, 3, "reuse_I", 1)] + [
        ExecutionDesign(1, 1, 1, 1, "reuse_O", 1, "layer") for _ in qm.geoms[1:]]
    plan = plan_network(qm, ds, P, 8192)
    lp = plan.layers[0]
    fl = lp.tiles["flags"]
    idx = lp.tiles["idx"]
    for t in range(1, lp.n_tiles):  # skip reloading an input tile already fetched by the previous unit
        if (idx[t][[1, 2, 3]] == idx[t - 1][[1, 2, 3]]).all():
            fl[t] &= ~F_LOAD_IN
    assert (fl & F_LOAD_IN == 0).any()
    continuous = FunctionalRun(plan, qm, x)
    continuous.run_to_completion()
    assert continuous.output_matches_reference()
    rebooted = FunctionalRun(plan, qm, x)
    rng = np.random.default_rng(0)
    while not rebooted.done():
        rebooted.run_unit(rebooted.progress())
        rebooted.reboot(rng)
    assert not rebooted.output_matches_reference()


def test_partial_write_back_lands_a_prefix(models):
    qm, x = models["calibrated"]
    ds = [ExecutionDesign(9, 8, 5, 3, "reuse_O", 1)] + [
        ExecutionDesign(1, 1, 1, 1, "reuse_O", 1, "layer") for _ in qm.geoms[1:]]
    plan = plan_network(qm, ds, P, 8192)
    lp = plan.layers[0]
    ws, te = lp.tiles["w_start"][0], lp.tiles["t_end"][0]
    total = lp.unit_cycles(0)
    run = FunctionalRun(plan, qm, x)
    before = run.fram.copy()
    # half-way through the write-back window, half an element past the 180th landed output, so that the
    # fraction -> cycles round trip (non-integer runtime cycles) cannot move the count across a boundary
    n = 5 * 9 * 8 // 2
    run.interrupt_unit(0, (ws + (n + 0.5) / (5 * 9 * 8) * (te - ws)) / total, np.random.default_rng(0))
    out = run._fram(plan.layers[0].fram_out, np.int16)[:5 * 9 * 8]
    expect = reference_forward(qm, x)[0].ravel()
    landed = np.flatnonzero(run.fram != before)
    assert landed.size > 0 and run.progress() == 0
    assert np.array_equal(out[:n], expect[:n]) and (out[n:] == 0).all()


def test_from_graph_and_api_errors(models):
    qm, x = models["calibrated"]
    tg = design_network(qm, P, 4096, e_cycle_J=1e-4).task_graph()
    run = FunctionalRun.from_graph(tg, qm, x)
    assert run.n_units == len(tg) and run.progress() == 0
    with pytest.raises(ValueError, match="unit 1 requested but committed progress is 0"):
        run.run_unit(1)
    with pytest.raises(ValueError, match=r"interrupt fraction must be in \[0, 1\)"):
        run.interrupt_unit(0, 1.0, np.random.default_rng(0))
    with pytest.raises(ValueError, match="out of range"):
        run.run_unit(len(tg))
    assert not run.output_matches_reference()  # not done yet
    run.run_to_completion()
    assert run.output_matches_reference() and run.done()
    # a second inference on another input
    x2 = np.zeros_like(x)
    run.reset(x2)
    assert run.progress() == 0
    run.run_to_completion()
    assert np.array_equal(run.output(), reference_forward(qm, x2)[-1])
    with pytest.raises(ValueError, match="input must be int16"):
        run.reset(x2.astype(np.int32))
    other = quantize(random_model([{"type": "fc", "units": 2}], INPUT, seed=0))
    with pytest.raises(ValueError, match="do not match the tiled network"):
        FunctionalRun.from_graph(tg, other, x)
