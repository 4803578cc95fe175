"""Graph models (issue 20 items 1, 2, 4) through the whole pipeline, as a user runs them.

Four networks written in TOML (tests/graphs/): a HAR-style 1-D CNN on 9x128 (kernels [1, 5]), a KWS CNN
with 10x4 kernels and asymmetric 'same' padding, a SqueezeNet-style fire-module net on 3x32x32 (concat),
a MobileNetV2-style net with inverted residual blocks (add, relu6).  Each through `aidi check`,
`aidi run --functional` under power failures (the des engine's output bit-exact with the Q15 reference;
the oracle agrees on the run) and `aidi emit-c --build` (host bit-exact with the functional run).  Then
property tests of the planner: FRAM placement by lifetime never aliases a layer's output with an input it
reads, and a hand-made aliasing layout is refused with the reason.
"""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.functional import FunctionalRun
from aidi.models.layers import geometry, parse_network, tensor_sizes
from aidi.models.net import FoldedLayer, folded_forward
from aidi.models.q15 import _concat_formats, quantize_folded
from aidi.models.schedule import ExecutionDesign, clip_design, plan_network
from aidi.models.schedule.memory import (FramLayout, check_aliasing, fram_layout, place_tensors, tensor_lifetimes,
                                         tensor_region)
from tests.conftest import gate_toolchain

GRAPHS = Path(__file__).resolve().parent / "graphs"
NETS = ("har-1d", "kws-cnn", "squeezenet-fire", "mobilenetv2-ir")
runner = CliRunner()


def _json(args):
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code in (0, 1), r.output
    return r.exit_code, json.loads(r.stdout)


@pytest.fixture(scope="module", params=NETS)
def functional_run(request):
    path = str(GRAPHS / f"{request.param}.toml")
    code, des = _json(["run", path, "--engine", "des", "--functional"])
    return request.param, path, des


@pytest.mark.slow
def test_check_and_both_engines_under_failures(functional_run):
    name, path, des = functional_run
    code, chk = _json(["check", path])
    assert code == 0 and chk["schedulable"], chk
    assert des["completed"] and des["output_matches_reference"]
    assert des["units_reexecuted"] > 0 and des["power_cycles"] > 1  # failures cut units, re-executed exactly
    _, orc = _json(["run", path, "--engine", "oracle"])
    for k in ("latency_s", "on_time_s", "off_time_s"):
        assert math.isclose(des[k], orc[k], rel_tol=1e-9, abs_tol=1e-12), (name, k, des[k], orc[k])
    for k in ("power_cycles", "units_executed", "units_reexecuted"):
        assert des[k] == orc[k], (name, k)


@pytest.mark.slow
@pytest.mark.toolchain("host")
def test_emit_c_host_is_bit_exact(functional_run, tmp_path):
    name, path, des = functional_run
    code, res = _json(["emit-c", path, "--out", str(tmp_path / "c"), "--build"])
    assert code == 0
    assert res["expected_output"] == des["output"]
    assert res["host"]["output"] == des["output"], name
    m = res["msp430"]
    if "skipped" in m:  # skips without clang-14/lld-14/mspdebug; fails under AIDI_REQUIRE_TOOLCHAIN=1 (CI)
        gate_toolchain("msp430-sim")
    assert m["output"] == des["output"] and m["matches_reference"]


# --------------------------------------------------------------------------- the planner
def random_qmodel_for(net, seed):
    """A Q15 model of ``net`` with seeded random float weights, calibrated on random inputs, and an input."""
    rng = np.random.default_rng(seed)
    folded = [FoldedLayer(g, rng.normal(0, 0.5, g.weight_shape), rng.normal(0, 0.1, g.out_shape[0]))
              if g.weighted else FoldedLayer(g, None, None) for g in geometry(net)]
    calib = rng.uniform(-1, 1, (8, *net.input_shape))
    qm = quantize_folded(folded, calib, net.input_shape, net)
    return qm, qm.quantize_input(calib[0])

@st.composite
def graphs(draw):
    """Random graph nets on [C, 6, 6]: convs with rectangular kernels, pools, adds of earlier equal-shape
    layers, concats of fresh producers (every layer used, the last one an fc)."""
    c = draw(st.integers(1, 3))
    specs, shapes, names = [], [], []  # per spec: output shape, name
    net_in = (c, 6, 6)
    for i in range(draw(st.integers(1, 7))):
        prev = shapes[-1] if shapes else net_in
        kind = draw(st.sampled_from(["conv", "conv", "add", "concat", "pool"]))
        name = f"n{i}"
        if kind == "add":
            same = [j for j, s in enumerate(shapes[:-1]) if s == prev]
            if same:
                specs.append({"type": "add", "inputs": [names[draw(st.sampled_from(same))], names[-1]],
                              "name": name, "relu": draw(st.booleans())})
                shapes.append(prev)
                names.append(name)
                continue
            kind = "conv"
        if kind == "concat":
            f1, f2 = draw(st.integers(1, 3)), draw(st.integers(1, 3))
            src = names[-1] if names else "input"
            specs += [{"type": "pwconv", "filters": f1, "name": f"{name}a", "inputs": [src]},
                      {"type": "conv", "k": 3, "padding": 1, "filters": f2, "name": f"{name}b", "inputs": [src]},
                      {"type": "concat", "inputs": [f"{name}a", f"{name}b"], "name": name}]
            shapes += [(f1, *prev[1:]), (f2, *prev[1:]), (f1 + f2, *prev[1:])]
            names += [f"{name}a", f"{name}b", name]
            continue
        if kind == "pool" and prev[1] >= 2:
            specs.append({"type": "maxpool", "k": [2, 1], "stride": [1, 1], "name": name})
            shapes.append((prev[0], prev[1] - 1, prev[2]))
            names.append(name)
            continue
        kh, kw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
        f = draw(st.integers(1, 4))
        specs.append({"type": "conv", "k": [kh, kw], "filters": f, "padding": "same", "name": name,
                      "relu": draw(st.booleans()), "stride": [1, draw(st.integers(1, 2))] if kw > 1 else 1})
        shapes.append((f, prev[1], (prev[2] + kw - 1 - kw) // specs[-1]["stride"][1] + 1 if kw > 1 else prev[2]))
        names.append(name)
    specs.append({"type": "fc", "units": 3})  # every layer is used: each feeds the next, an add or a concat
    net = parse_network(specs, list(net_in))
    assert net.shapes[:-1] == shapes
    return net


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_fram_placement_never_aliases_and_respects_lifetimes(net):
    geoms = geometry(net)
    fram = fram_layout(geoms, [1] * len(geoms))  # raises if a layer's output aliases an input it reads
    life = tensor_lifetimes(geoms)
    sizes = tensor_sizes(geoms)
    out_t = geoms[-1].dst[0]
    inner = [t for t in sizes if t not in (0, out_t)]
    a0, an = fram.regions["act"]
    for t in inner:  # every intermediate tensor inside the activation region
        o, nb = fram.regions[f"t{t}"]
        assert nb == 2 * sizes[t] and a0 <= o and o + nb <= a0 + an
    for i, t in enumerate(inner):  # two tensors alive at once never share a byte
        for u in inner[i + 1:]:
            (o1, n1), (o2, n2) = fram.regions[f"t{t}"], fram.regions[f"t{u}"]
            overlap_life = not (life[t][1] < life[u][0] or life[u][1] < life[t][0])
            if overlap_life:
                assert o1 + n1 <= o2 or o2 + n2 <= o1, (t, u)
    assert an <= sum(2 * sizes[t] + 4 for t in inner)  # reuse never costs more than no reuse


def test_planner_refuses_an_aliasing_layout_with_the_reason():
    net = parse_network([{"type": "conv", "k": 3, "filters": 2, "padding": 1, "name": "a"},
                         {"type": "conv", "k": 3, "filters": 2, "padding": 1, "name": "b"},
                         {"type": "add", "inputs": ["a", "b"]},
                         {"type": "fc", "units": 2}], [1, 4, 4])
    geoms = geometry(net)
    good = fram_layout(geoms, [1] * len(geoms))
    add = geoms[2]
    # an in-place add: its output over its first input (the bytes a re-executed unit would read again)
    regions = dict(good.regions)
    regions[tensor_region(add.dst[0], geoms)] = regions[tensor_region(add.src[0][0], geoms)]
    with pytest.raises(ValueError, match=r"layer 2 \(add\): its output .* aliases its input .* not idempotent"):
        check_aliasing(geoms, FramLayout(regions, good.total))


def test_skip_connection_keeps_its_tensor_alive():
    """A residual's first operand lives until the add: the chain's ping-pong would have overwritten it."""
    net = parse_network([{"type": "conv", "k": 3, "filters": 4, "padding": 1, "name": "x"},
                         {"type": "conv", "k": 3, "filters": 4, "padding": 1},
                         {"type": "conv", "k": 3, "filters": 4, "padding": 1},
                         {"type": "conv", "k": 3, "filters": 4, "padding": 1, "name": "y"},
                         {"type": "add", "inputs": ["x", "y"]},
                         {"type": "fc", "units": 2}], [1, 4, 4])
    geoms = geometry(net)
    life = tensor_lifetimes(geoms)
    x_t = geoms[0].dst[0]
    assert life[x_t] == (0, 4)
    fram = fram_layout(geoms, [1] * len(geoms))
    assert fram.regions["act"][1] == 3 * 2 * 64  # x, and two ping-pong tensors beside it
    offsets, size = place_tensors({1: 128, 2: 128, 3: 128}, {1: (0, 4), 2: (1, 2), 3: (2, 3)})
    assert size == 384 and len({offsets[1], offsets[2], offsets[3]}) == 3


def test_concat_producers_write_channel_slices_of_one_tensor():
    net = parse_network([{"type": "pwconv", "filters": 2, "name": "s"},
                         {"type": "pwconv", "filters": 3, "name": "e1", "inputs": ["s"]},
                         {"type": "conv", "k": [3, 1], "padding": [1, 0, 1, 0], "filters": 4, "name": "e3",
                          "inputs": ["s"]},
                         {"type": "concat", "inputs": ["e1", "e3"]},
                         {"type": "fc", "units": 2}], [1, 5, 4])
    g = geometry(net)
    assert [x.op for x in g] == ["conv", "conv", "conv", "fc"]  # concat is no layer
    assert g[1].dst[0] == g[2].dst[0] == g[3].src[0][0]
    assert (g[1].dst[1], g[2].dst[1]) == (0, 3 * 5 * 4)
    assert tensor_sizes(g)[g[3].src[0][0]] == 7 * 5 * 4 == g[3].in_shape[0]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(), st.integers(0, 2**31 - 1))
def test_functional_graph_run_is_bit_exact_under_failures(net, seed):
    qm, x = random_qmodel_for(net, seed)
    geoms = qm.geoms
    design = ExecutionDesign(2, 2, 2, 1, "reuse_O", 3)  # Tn = 1: partial sums across units
    plan = plan_network(qm, [clip_design(g, design) for g in geoms], "msp430fr5994")
    rng = np.random.default_rng(seed)
    run = FunctionalRun(plan, qm, x)
    while not run.done():
        i = run.progress()
        if rng.random() < 0.4:
            run.interrupt_unit(i, float(rng.random()), rng)
            run.reboot(rng)
        else:
            run.run_unit(i)
    assert run.output_matches_reference()


def test_ops_table_rows_name_real_kernels():
    """Every executed op has a row; its numba kernel exists, its C kernel and C op are in the runtime; the
    compiled builders' code conventions (weighted: code <= 2, tied: code >= 2) hold for every row."""
    from aidi.models import kernels
    from aidi.models import layers
    from aidi.models.ops import BY_CODE, OPS

    runtime = Path(__file__).resolve().parents[1] / "models" / "emit" / "runtime"
    c_src = "".join(p.read_text() for p in runtime.glob("*.[ch]"))
    assert set(layers.OPS) == set(OPS)
    for name, t in OPS.items():
        assert BY_CODE[t.code] == name
        assert callable(getattr(kernels, t.kernel))
        assert f"{t.c_kernel}(" in c_src or f"define {t.c_kernel} " in c_src, t.c_kernel
        assert f"{t.c_op} =" in c_src
        assert t.weighted == (t.code <= 2) and t.tied == (t.code >= 2)


def test_torch_module_equals_folded_forward_on_a_graph():
    """The float module (what training and accuracy use) and the folded float forward (what calibration uses)
    agree on a graph with BN, relu6, a residual add, a concat, asymmetric padding and per-axis strides."""
    import torch

    from aidi.models.net import build_module, fold, folded_forward

    net = parse_network([
        {"type": "conv", "k": [3, 2], "filters": 4, "padding": [1, 0, 1, 1], "stride": [1, 2], "name": "a"},
        {"type": "bn"},
        {"type": "relu"},
        {"type": "dwconv", "k": [1, 3], "padding": "same", "relu6": True, "name": "d"},
        {"type": "add", "inputs": ["L2", "d"], "relu": True, "name": "r"},
        {"type": "pwconv", "filters": 2, "name": "e1"},
        {"type": "maxpool", "k": [2, 1], "stride": [1, 1], "padding": [1, 0, 0, 0], "name": "e2", "inputs": ["r"]},
        {"type": "concat", "inputs": ["e1", "e2"]},
        {"type": "avgpool", "k": 2, "padding": [0, 1, 1, 0]},
        {"type": "fc", "units": 3},
    ], [2, 6, 7])
    module = build_module(net, seed=0)
    gen = torch.Generator().manual_seed(1)
    bn = module.layers[1]
    bn.running_mean.copy_(torch.randn(4, generator=gen))
    bn.running_var.copy_(torch.rand(4, generator=gen) + 0.5)
    module.eval()
    x = np.random.default_rng(0).normal(0, 2, (5, 2, 6, 7)).astype(np.float32)
    out = folded_forward(fold(module), x)[-1]
    ref = module(torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_concat_with_a_pool_branch_takes_the_pools_format():
    """Inception-style: a maxpool branch keeps its input's format, so the conv branch sharing its concat
    writes in that format too; the functional run stays bit-exact."""
    net = parse_network([{"type": "conv", "k": 3, "filters": 3, "padding": 1, "relu": True, "name": "x"},
                         {"type": "maxpool", "k": 3, "stride": 1, "padding": 1, "name": "p"},
                         {"type": "conv", "k": [1, 3], "filters": 2, "padding": "same", "name": "c",
                          "inputs": ["x"]},
                         {"type": "concat", "inputs": ["c", "p"]},
                         {"type": "fc", "units": 2}], [1, 5, 5])
    rng = np.random.default_rng(3)
    folded = [FoldedLayer(g, rng.normal(0, 0.5, g.weight_shape), rng.normal(0, 0.1, g.out_shape[0]))
              if g.weighted else FoldedLayer(g, None, None) for g in geometry(net)]
    folded[2] = FoldedLayer(folded[2].geom, folded[2].w * 40, folded[2].b)  # the conv branch's range: 40x larger
    calib = rng.uniform(-1, 1, (8, 1, 5, 5))
    natural = _concat_formats(folded, folded_forward(folded, calib))[folded[1].geom.dst[0]]
    qm = quantize_folded(folded, calib, net.input_shape, net)
    x = qm.quantize_input(calib[0])
    pool, conv = qm.layers[1], qm.layers[2]
    assert natural < pool.s_out == pool.s_in == conv.s_out  # pinned to the pool's, not the larger range's
    plan = plan_network(qm, [clip_design(g, ExecutionDesign(2, 2, 1, 1, "reuse_I", 2)) for g in qm.geoms],
                        "msp430fr5994")
    run = FunctionalRun(plan, qm, x)
    run.run_to_completion()
    assert run.output_matches_reference()
