"""Emission IR: validation, planning, the k/slot rule and the numpy Q15 reference (no toolchain)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.models.emit import (LOOP_NESTS, Budgets, ExecDesign, LayerIR, NetworkIR, block_version, design_from,
                              emit_project, memory_estimate, plan_layer, reference_forward)
from aidi.models.emit.examples import TINY_SPECS, random_network, tiny_network
from aidi.models.emit.reference import layer_forward, rshift_round


# --------------------------------------------------------------------------- validation
def _conv(**kw):
    base = dict(op="conv", in_shape=(2, 4, 4), weight=np.ones((3, 2, 3, 3), np.int16))
    base.update(kw)
    return LayerIR(**base)


@pytest.mark.parametrize("kw, msg", [
    (dict(op="softmax"), "unknown op"),
    (dict(weight=np.ones((3, 1, 3, 3))), "conv weight must be"),
    (dict(weight=np.full((3, 2, 3, 3), 40000)), "values must lie in"),
    (dict(weight=np.full((3, 2, 3, 3), 0.5)), "expected integers"),
    (dict(bias=np.zeros(2)), "bias must have 3"),
    (dict(shift=32), "shift must lie in"),
    (dict(in_shape=(2, 2, 2)), "larger than padded input"),
    (dict(out_shape=(3, 3, 3)), "does not match"),
    (dict(design=dict(Tr=0)), "Tr must be a positive integer"),
    (dict(design=dict(loop_order="reuse_X")), "loop_order must be one of"),
    (dict(design=dict(Tq=1)), "unknown key"),
])
def test_layer_validation(kw, msg):
    with pytest.raises(ValueError, match=msg):
        _conv(**kw)


def test_pool_and_network_validation():
    with pytest.raises(ValueError, match="takes no padding"):
        LayerIR(op="maxpool", in_shape=(1, 4, 4), kh=2, kw=2, stride=2, pad=1)
    with pytest.raises(ValueError, match="takes no weight"):
        LayerIR(op="relu", in_shape=(1, 4, 4), weight=np.ones((1, 1)))
    layer = _conv()
    with pytest.raises(ValueError, match="does not match the previous output"):
        NetworkIR(input=np.zeros((3, 4, 4), np.int16), layers=(layer,))
    with pytest.raises(ValueError, match="C identifier"):
        NetworkIR(input=np.zeros((2, 4, 4), np.int16), layers=(layer,), name="my-net")
    # fc accepts the real CHW input shape and the flattened (C*H*W, 1, 1) view
    fc = LayerIR(op="fc", in_shape=(8, 1, 1), weight=np.ones((4, 8, 1, 1), np.int16))
    net = NetworkIR(input=np.zeros((2, 2, 2), np.int16), layers=(fc,))
    assert net.output_shape == (4, 1, 1) and fc.weight.shape == (4, 8, 1, 1)


def test_derived_shapes():
    assert _conv(pad=1, stride=2).out_shape == (3, 2, 2)
    assert LayerIR(op="gap", in_shape=(5, 3, 4)).out_shape == (5, 1, 1)
    dw = LayerIR(op="dwconv", in_shape=(3, 5, 5), weight=np.ones((3, 3, 3), np.int16), stride=2)
    assert dw.weight.shape == (3, 1, 3, 3) and dw.out_shape == (3, 2, 2)
    pw = LayerIR(op="pwconv", in_shape=(3, 5, 5), weight=np.ones((6, 3), np.int16))
    assert pw.out_shape == (6, 5, 5) and pw.kh == 1


def test_design_from_tiling_execution_design():
    tiling = pytest.importorskip("aidi.models.tiling")
    d = tiling.ExecutionDesign(2, 3, 4, 5, "reuse_W", 6)
    assert design_from(d) == ExecDesign(2, 3, 4, 5, "reuse_W", 6)
    assert design_from(tiling.ExecutionDesign(1, 1, 1, 1, S=9, preservation="tile")).S == 1
    layer = _conv(design=design_from(tiling.ExecutionDesign(1, 1, 1, 1, S=9, preservation="layer")))
    assert plan_layer(layer).n_units == 1


# --------------------------------------------------------------------------- Q15 details
def test_rshift_round_and_the_c_formula():
    """C computes rshift_round without int32 overflow as (b >> 1) + (b & 1), b = a >> (k-1)."""
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(-(2**31), 2**31, 20000), [2**31 - 1, -(2**31), 0, -1, 1]]).astype(np.int64)
    for k in range(0, 32):
        ref = rshift_round(a, k)
        if k == 0:
            assert np.array_equal(ref, a)
            continue
        b = a >> (k - 1)
        assert np.array_equal(ref, (b >> 1) + (b & 1))
        assert np.array_equal(ref, np.floor(a / 2.0**k + 0.5).astype(np.int64))  # round half up
    assert rshift_round(np.array([2**31 - 1]), 1)[0] == 2**30


def test_saturating_accumulation_order_matters():
    """acc = sat32(acc + x*w) term by term: a later negative term pulls a clipped sum back."""
    w = np.array([[[[32767]], [[-32768]]]], np.int16)  # [1, 2, 1, 1]
    layer = LayerIR(op="pwconv", in_shape=(2, 1, 1), weight=w, bias=[2**31 - 100], shift=16)
    x = np.array([[[32767]], [[32767]]], np.int16)
    acc = 2**31 - 100
    for xi, wi in ((32767, 32767), (32767, -32768)):
        acc = min(max(acc + xi * wi, -(2**31)), 2**31 - 1)
    expected = min(max(((acc >> 15) + 1) >> 1, -32768), 32767)
    assert layer_forward(layer, x).item() == expected
    # without intermediate saturation the result would differ
    assert expected != (((2**31 - 100 + 32767 * 32767 - 32767 * 32768) >> 15) + 1) >> 1


def test_avgpool_floor_division_of_negative_sums():
    x = np.array([[[-3, -2], [0, 0]]], np.int16)  # sum -5, kk 4: floor((-5 + 2) / 4) = -1
    assert layer_forward(LayerIR(op="gap", in_shape=(1, 2, 2)), x).item() == -1
    x = np.array([[[-1, -1], [0, 0]]], np.int16)  # floor((-2 + 2) / 4) = 0
    assert layer_forward(LayerIR(op="avgpool", in_shape=(1, 2, 2), kh=2, kw=2, stride=2), x).item() == 0


QSPECS = [{"type": "conv", "k": 3, "filters": 5, "padding": 1, "relu": True}, {"type": "bn"},
          {"type": "dwconv", "k": 3, "stride": 2, "relu": True}, {"type": "maxpool", "k": 2, "stride": 1},
          {"type": "pwconv", "filters": 4}, {"type": "avgpool", "k": 2, "stride": 1}, {"type": "gap"},
          {"type": "fc", "units": 3}]


@pytest.fixture(scope="module")
def qmodel():
    pytest.importorskip("torch")
    from aidi.models import q15
    from aidi.models.net import random_model

    tm = random_model(QSPECS, [2, 9, 8], seed=0)
    return tm, q15.quantize(tm)


def test_reference_matches_project_q15_reference(qmodel):
    """The IR of a quantised model (aidi.models.q15) computes what q15.reference_forward computes."""
    from aidi.models import q15
    from aidi.models.emit import ir_from_qmodel

    tm, qm = qmodel
    for i in range(3):
        x = qm.quantize_input(tm.dataset.x_test[i])
        ir = ir_from_qmodel(qm, x)
        for mine, theirs in zip(reference_forward(ir), q15.reference_forward(qm, x)):
            assert np.array_equal(mine, theirs)


def test_units_match_the_project_tiler(qmodel):
    """Converted from a tiling NetPlan, every layer has the tiler's grid and units (same S tiles per unit)."""
    from aidi.models.emit import ir_from_qmodel
    from aidi.models.tiling import ExecutionDesign as ED
    from aidi.models.tiling import plan_network as tiler_plan

    tm, qm = qmodel
    designs = [ED(2, 3, 2, 1, "reuse_I", 3), ED(1, 2, 3, 1, "reuse_W", 2), ED(1, 1, 2, 1, preservation="tile"),
               ED(1, 1, 2, 2, "reuse_O", 5), ED(1, 1, 4, 1, preservation="layer"), ED(1, 1, 4, 1),
               ED(1, 1, 3, 2, "reuse_W", 2)]
    plan = tiler_plan(qm, designs, backend="cpu")
    ir = ir_from_qmodel(qm, qm.quantize_input(tm.dataset.x_test[0]), plan)
    for lp, layer in zip(plan.layers, ir.layers):
        p = plan_layer(layer)
        assert lp.grid == (p.nm, p.nn, p.nr, p.nc) and lp.n_units == p.n_units and lp.design.S == p.S
        assert [list(lp.unit_tiles(k)) for k in range(lp.n_units)] == [
            list(range(k * p.S, min((k + 1) * p.S, p.n_tiles))) for k in range(p.n_units)]


# --------------------------------------------------------------------------- planning and the slot rule
def _tile_sequence(p):
    counts = {"r": p.nr, "c": p.nc, "m": p.nm, "n": p.nn}
    for idx in itertools.product(*(range(counts[d]) for d in p.order)):
        yield dict(zip(p.order, idx))


@settings(max_examples=200, deadline=None)
@given(nr=st.integers(1, 4), nc=st.integers(1, 3), nm=st.integers(1, 4), nn=st.integers(1, 5),
       order=st.sampled_from(sorted(LOOP_NESTS)), S=st.integers(1, 12))
def test_block_version_matches_brute_force(nr, nc, nm, nn, order, S):
    """k (the partial-sum version a unit reads) = distinct earlier units that touched the block."""
    layer = LayerIR(op="pwconv", in_shape=(nn, nr, nc), weight=np.ones((nm, nn), np.int16),
                    design=ExecDesign(1, 1, 1, 1, order, S))
    p = plan_layer(layer)
    assert (p.nr, p.nc, p.nm, p.nn) == (nr, nc, nm, nn)
    units_of_block: dict = {}
    for t, co in enumerate(_tile_sequence(p)):
        block = (co["r"], co["c"], co["m"])
        u = t // p.S
        seen = units_of_block.setdefault(block, [])
        k = len({v for v in seen if v < u})
        assert block_version(t, co["n"], p.stride_n, u, p.S) == k
        # n-tiles of a block come in ascending order, stride_n apart (canonical order is kept)
        assert co["n"] == len(seen)
        seen.append(u)
    assert all(len(v) == nn for v in units_of_block.values())


@pytest.mark.parametrize("seed", [0, 1])
def test_plans_cover_every_output_once_per_input_tile(seed):
    ir = tiny_network(seed)
    for layer in ir.layers:
        p = plan_layer(layer)
        seen = np.zeros(layer.out_shape, np.int64)
        for co in _tile_sequence(p):
            seen[co["m"] * p.tm:(co["m"] + 1) * p.tm, co["r"] * p.tr:(co["r"] + 1) * p.tr,
                 co["c"] * p.tc:(co["c"] + 1) * p.tc] += 1
        assert np.all(seen == p.nn), layer.name
        assert p.n_units == -(-p.n_tiles // p.S)


def test_memory_estimate_and_manifest(tmp_path):
    ir = tiny_network(0)
    mem = memory_estimate(ir)
    assert mem["fram_psum"] > 0 and mem["sram_buffers"] > 0
    proj = emit_project(ir, tmp_path / "c")
    m = proj.manifest
    assert m["expected_output"] == reference_forward(ir)[-1].ravel().tolist()
    assert m["total_units"] == sum(plan_layer(layer).n_units for layer in ir.layers)
    assert [layer["name"] for layer in m["layers"]] == [layer.name for layer in ir.layers]
    for rel in ("Makefile", "README.md", "aidi_manifest.json", "src/aidi_model.c", "src/aidi_runtime.c",
                "ld/msp430fr5994_sim.ld", "tools/aidi_elfsize.py"):
        assert (tmp_path / "c" / rel).is_file(), rel
    readme = (tmp_path / "c" / "README.md").read_text()
    assert "make msp430" in readme and "DSPLIB_ROOT" in readme and str(mem["fram_weights"]) in readme
    with pytest.raises(ValueError, match="backend"):
        emit_project(ir, tmp_path / "d", backend="gpu")


def test_random_network_builder_covers_every_kind():
    ir = tiny_network(3)
    assert {layer.op for layer in ir.layers} == {s["type"] for s in TINY_SPECS}
    ex = tiny_network(3, extreme=True)
    assert any(int(np.abs(layer.bias).max()) > 2**30 for layer in ex.layers if layer.weighted)
    with pytest.raises(ValueError, match="designs"):
        random_network(TINY_SPECS, (3, 9, 9), np.random.default_rng(0), designs=[None])
    assert Budgets().fram_bytes == 0xBF80
