"""The MCUNet/OFA-style search space (--space mbconv): operations stay inside the space, members are the
inverted-residual networks the docstring describes, the plan constrains them, the controllers search them,
their torch forward equals the folded float forward, their C is bit-exact, and `aidi nas --space mbconv`
runs end to end."""

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.analysis.nas_run import dumps_toml
from aidi.models.hardware import HardwareEvaluator
from aidi.models.layers import geometry, parse_network
from aidi.models.nas import Evaluator, ProxyAccuracy, ScratchAccuracy, make_controller, run_search, split_validation
from aidi.models.nas.mbconv import Block, MbArch, MbSpace, MbStage, MbStageSpace, mbconv_space
from aidi.models.nas.space import Arch, arch_from_dict, search_space
from aidi.models.net import build_module, fold, folded_forward
from aidi.analysis.pipeline import load_scenario

ROOT = Path(__file__).resolve().parents[1]
LAB = ROOT / "scenarios" / "lab-1mF.toml"
SPACES = {"digits": mbconv_space((1, 8, 8)), "fashion": mbconv_space((1, 28, 28), 10),
          "cifar": mbconv_space((3, 32, 32))}
seeds = st.integers(0, 2**32 - 1)
runner = CliRunner()


def _active_blocks(arch):
    return {(i, b): blk for i, s in enumerate(arch.stages) for b, blk in enumerate(s.blocks)}


# --------------------------------------------------------------------------- the space's operations
@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=40, deadline=None)
@given(seed=seeds)
def test_sample_mutate_crossover_stay_inside(name, seed):
    sp = SPACES[name]
    rng = np.random.default_rng(seed)
    a, b = sp.sample(rng), sp.sample(rng)
    m, c = sp.mutate(a, rng), sp.crossover(a, b, rng)
    for x in (a, b, m, c):
        assert sp.contains(x)
        assert sp.decode(sp.encode(x)) == x
        assert arch_from_dict(json.loads(json.dumps(x.to_dict()))) == x
    assert m != a and m.id != a.id  # a mutation only changes decisions the member has
    # exactly one thing changed: the resolution, one stage's width or depth (a prefix of blocks kept), or one block
    diffs = [a.resolution != m.resolution] + [(sa.width != sm.width) + (sa.depth != sm.depth)
                                              for sa, sm in zip(a.stages, m.stages)]
    blocks_a, blocks_m = _active_blocks(a), _active_blocks(m)
    changed_blocks = [k for k in blocks_a.keys() & blocks_m.keys() if blocks_a[k] != blocks_m[k]]
    assert sum(diffs) + len(changed_blocks) == 1
    # each block decision of the child comes from a parent that has that block slot
    ba, bb = _active_blocks(a), _active_blocks(b)
    for key, blk in _active_blocks(c).items():
        parents = [p[key] for p in (ba, bb) if key in p]
        assert blk.k in [q.k for q in parents] and blk.expand in [q.expand for q in parents]
    assert c.resolution in (a.resolution, b.resolution)
    assert all(sc.width in (sa.width, sb.width) and sc.depth in (sa.depth, sb.depth)
               for sa, sb, sc in zip(a.stages, b.stages, c.stages))


def test_sampling_is_seeded_and_the_decisions_name_every_choice():
    sp = SPACES["fashion"]
    assert [sp.sample(np.random.default_rng(3)) for _ in range(2)] == [sp.sample(np.random.default_rng(3))] * 2
    names = [n for n, _ in sp.decisions()]
    assert names[0] == "res" and names[1:3] == ["s0.depth", "s0.width"]
    assert dict(sp.decisions())["s1.b2.k"] == (3, 5, 7) and dict(sp.decisions())["s1.b2.expand"] == (1, 3, 4, 6)
    assert len(names) == 1 + sum(2 + 2 * max(st.depths) for st in sp.stages)


def test_size_counts_distinct_members():
    """size() = the number of distinct networks: every decision vector decoded, ids counted."""
    sp = MbSpace("tiny", (1, 8, 8), (MbStageSpace(1, (4, 8), (1, 2), (3, 5), (1, 3)),), stem=4,
                 resolutions=(1, 2))
    ids = {sp.decode(list(codes)).id for codes in itertools.product(*(range(len(o)) for _, o in sp.decisions()))}
    assert len(ids) == sp.size() == 2 * 2 * (4 + 16)


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=25, deadline=None)
@given(seed=seeds)
def test_every_member_is_an_inverted_residual_network(name, seed):
    sp = SPACES[name]
    a = sp.sample(np.random.default_rng(seed))
    net = parse_network(a.to_layers(), a.input_shape)
    assert net.output_shape == (sp.n_classes, 1, 1)
    shapes, specs = net.shapes, net.layers
    assert specs[0].type == ("avgpool" if a.resolution > 1 else "conv")
    assert {s.type for s in specs} <= {"avgpool", "conv", "pwconv", "dwconv", "bn", "add", "gap", "fc"}
    # one depthwise conv per block, with the block's kernel and the stage's stride on its first block
    dws = [s for s in specs if s.type == "dwconv"]
    blocks = [(blk, s.stride if b == 0 else 1) for s in a.stages for b, blk in enumerate(s.blocks)]
    assert [(d.k, d.stride) for d in dws] == [(blk.k, stride) for blk, stride in blocks]
    assert all(d.relu6 for d in dws)
    # an expansion conv exactly where the ratio is > 1; the projection is linear
    assert sum(s.type == "pwconv" and s.relu6 for s in specs) == sum(blk.expand > 1 for blk, _ in blocks)
    ends = [i for i, s in enumerate(specs) if s.type == "bn" and re.fullmatch(r"s\d+b\d+p?", s.name)]
    assert len(ends) == len(blocks)
    assert all(specs[i - 1].type == "pwconv" and not specs[i - 1].relu and not specs[i - 1].relu6 for i in ends)
    # a residual add exactly where the stride is 1 and the shapes match, adding the block's input
    ins = net.inputs
    adds = [i for i, s in enumerate(specs) if s.type == "add"]
    expected, c = 0, a.stem
    for s in a.stages:
        for b in range(s.depth):
            expected += (s.stride if b == 0 else 1) == 1 and c == s.width
            c = s.width
    assert len(adds) == expected == a.residual_blocks()
    for i in adds:
        j, k = ins[i]
        assert shapes[j] == shapes[k] and specs[k].type == "bn"
        assert specs[j].type in ("bn", "add")  # the previous block's (or the stem's) output
    assert all(g.op in ("conv", "dwconv", "avgpool", "add", "fc") for g in geometry(net))


def test_resolution_is_an_average_pool_on_the_native_image():
    sp = SPACES["fashion"]
    small = sp.smallest()
    assert small.resolution == 2 and small.to_layers()[0] == {"type": "avgpool", "k": 2, "stride": 2, "relu": False}
    net = parse_network(small.to_layers(), small.input_shape)
    assert net.shapes[0] == (1, 14, 14) and small.input_shape == (1, 28, 28)
    assert sp.largest().resolution == 1 and sp.largest().macs() > 50 * small.macs()


def test_id_is_stable_and_content_based():
    a = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(5, 3), Block(3, 1))), MbStage(16, 2, (Block(3, 6),))))
    assert a.id == MbArch.from_dict(a.to_dict()).id
    assert a.id == "8e432f706a474114"  # a hash of the content: changing it invalidates every cache
    b = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(5, 3), Block(3, 1))), MbStage(16, 2, (Block(3, 4),))))
    assert b.id != a.id and SPACES["digits"].contains(a)
    assert a.describe() == "stem8 | w12 k5e3,k3e1 | w16/2 k3e6"
    chain = search_space("inas", "digits").largest()
    assert isinstance(arch_from_dict(chain.to_dict()), Arch) and not SPACES["digits"].contains(chain)


def test_the_space_refuses_bad_skeletons():
    with pytest.raises(ValueError, match="odd"):
        MbSpace("even", (1, 8, 8), (MbStageSpace(1, (8,), kernels=(3, 4)),))
    with pytest.raises(ValueError, match="stride"):
        MbSpace("s3", (1, 8, 8), (MbStageSpace(3, (8,)),))
    with pytest.raises(ValueError, match="resolution"):
        MbSpace("res", (1, 8, 8), (MbStageSpace(1, (8,)),), resolutions=(1, 16))
    with pytest.raises(ValueError, match="sorted"):
        MbSpace("unsorted", (1, 8, 8), (MbStageSpace(1, (16, 8)),))
    with pytest.raises(ValueError, match="unknown search space kind"):
        search_space("resnet", "digits")
    assert search_space("mbconv", "cifar10").input_shape == (3, 32, 32)


# --------------------------------------------------------------------------- float model
def test_residual_member_torch_forward_equals_folded_forward():
    """A member with residual adds, expansion and every kernel: the torch module (training, accuracy) and the
    folded float forward (BN folded, what Q15 calibration uses) agree, with non-trivial BN statistics."""
    a = MbArch((1, 8, 8), 8, (MbStage(8, 1, (Block(3, 1), Block(5, 6))), MbStage(16, 2, (Block(7, 3), Block(3, 4)))))
    assert a.residual_blocks() == 3
    module = build_module(parse_network(a.to_layers(), a.input_shape), seed=0)
    gen = torch.Generator().manual_seed(1)
    for m in module.layers:
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
    module.eval()
    x = np.random.default_rng(0).uniform(0, 1, (6, 1, 8, 8)).astype(np.float32)
    ref = module(torch.from_numpy(x)).detach().numpy()
    out = folded_forward(fold(module), x)[-1]
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)


def test_a_member_trains_from_scratch_through_the_accuracy_source(tmp_path, monkeypatch):
    """ScratchAccuracy (the iNAS-style evaluator path) trains an mbconv member: above chance after 3 epochs."""
    from aidi.models.data import load_dataset

    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path))
    data = split_validation(load_dataset("digits", 0), 0)
    a = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(7, 4), Block(5, 4))), MbStage(32, 2, (Block(3, 6),))))
    acc = ScratchAccuracy(data, epochs=3, seed=0)(a)
    assert acc > 0.5  # ten classes: chance is 0.1


# --------------------------------------------------------------------------- hardware and search
def test_the_plan_constrains_members_as_today():
    sc = load_scenario(LAB)
    sp = SPACES["digits"]
    hw = HardwareEvaluator(sc)
    small, large = hw(sp.smallest()), hw(sp.largest())
    for o in (small, large):
        assert o["hw_feasible"], o["reasons"]
        assert o["sram_bytes"] <= sc.device.sram_budget_bytes
        assert o["max_unit_energy_J"] <= o["e_budget_J"]
    assert large["latency_s"] > small["latency_s"]
    tight = HardwareEvaluator(sc.with_values(**{"device.sram_budget_bytes": 512}))(sp.largest())
    assert not tight["hw_feasible"] and any("SRAM budget 512 B" in r for r in tight["reasons"])
    # FRAM capacity: the Tiny ImageNet space's largest member holds more than the FR5994's 256 KB
    huge = hw(mbconv_space((3, 64, 64)).largest())
    assert not huge["hw_feasible"] and any("FRAM" in r for r in huge["reasons"])


@pytest.mark.parametrize("controller", ["random", "evolution", "rl"])
def test_controllers_search_the_space_unchanged(controller):
    sp = SPACES["digits"]
    ev = Evaluator(HardwareEvaluator(load_scenario(LAB)), ProxyAccuracy(), requirement_s=1.5)
    res = run_search(make_controller(controller, sp, seed=0, budget=12), ev, 12, batch=4)
    assert res.evaluations == 12
    assert all(sp.contains(MbArch.from_dict(o["arch"])) for o in res.history)
    assert res.feasible() and all(o["latency_s"] <= 1.5 for o in res.feasible())
    again = run_search(make_controller(controller, sp, seed=0, budget=12),
                       Evaluator(HardwareEvaluator(load_scenario(LAB)), ProxyAccuracy(), requirement_s=1.5), 12, 4)
    assert [o["arch_id"] for o in again.history] == [o["arch_id"] for o in res.history]


# --------------------------------------------------------------------------- C and the command
def _scenario(tmp_path: Path, arch, weights_seed: int) -> Path:
    doc = {"name": f"mb-{arch.id}", "description": arch.describe(),
           "device": {"platform": "msp430fr5994", "sram_budget_bytes": 4096},
           "power": {"capacitor_F": 47e-6, "v_on": 2.8, "v_off": 2.0, "v_max": 3.3},
           "harvester": {"kind": "thevenin", "v_source": 3.0, "r_ohm": 3000.0},
           "model": {"input": list(arch.input_shape), "weights": "random", "seed": weights_seed,
                     "layers": arch.to_layers()},
           "execution": {"dispatch": "greedy"}, "sim": {"inferences": 1, "until_s": 3600.0}}
    path = tmp_path / f"{arch.id}.toml"
    path.write_text(dumps_toml(doc))
    return path


def _json(args):
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


@pytest.mark.slow
@pytest.mark.toolchain("host")
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_seeded_members_emit_bit_exact_c(tmp_path, seed):
    """A seeded member (random weights) of the digits and Fashion-MNIST spaces: `aidi run --functional`
    under power failures matches the Q15 reference, and the host build of the `aidi emit-c` project prints
    that output.  The project is built with `make host` directly: `emit-c --build` also refuses a member whose
    data exceeds the simulator build's 48 KB of FRAM (small memory model), which the hardware's 256 KB take."""
    from aidi.models.emit import build as mk

    sp = SPACES["digits" if seed < 2 else "fashion"]
    arch = sp.sample(np.random.default_rng(seed))
    path = _scenario(tmp_path, arch, seed)
    run = _json(["run", str(path), "--engine", "des", "--functional"])
    assert run["completed"] and run["output_matches_reference"]
    assert run["power_cycles"] > 1
    emitted = _json(["emit-c", str(path), "--out", str(tmp_path / "c")])
    assert emitted["expected_output"] == run["output"] and emitted["matches_reference"]
    mk.make(emitted["out"], "host")
    assert [int(v) for v in mk.run_host(emitted["out"]).output] == run["output"], arch.describe()


@pytest.mark.slow
@pytest.mark.toolchain("host")
def test_aidi_nas_space_mbconv_end_to_end(tmp_path, monkeypatch):
    """`aidi nas --space mbconv` at tiny settings: candidates are mbconv members read off the MBConv supernet
    (progressive shrinking, every phase), the chosen one (fine-tuned) is written as a scenario that `aidi run`
    loads, and it meets the requirement under SimPy."""
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "nas"
    res = _json(["nas", str(LAB), "--space", "mbconv", "--budget", "4", "--quick", "--controller", "random",
                 "--out", str(out)])
    assert res["search_space"] == "mbconv" and res["space_size"] == SPACES["digits"].size()
    assert res["search"]["evaluations"] == 4 and res["search"]["accuracy_source"].startswith("supernet:")
    assert "supernet-mbconv-" in res["search"]["accuracy_source"]
    assert list(res["supernet"]["history"]) == ["full", "kernel", "depth", "expand", "width"]
    chosen = res["chosen"]
    assert chosen is not None and chosen["des_meets_requirement"]
    layers = chosen["layers"]
    assert any(d["type"] == "dwconv" for d in layers) and layers[-1]["type"] == "fc"
    run = _json(["run", str(out / "scenario.toml"), "--engine", "oracle"])
    assert run["completed"] and run["latency_s"] <= res["requirement_s"]
    # the chosen member's trained weights (BN folded) through the C runtime: the host build is bit-exact with the
    # Q15 reference (a functional SimPy run equals that reference: test_seeded_members_emit_bit_exact_c)
    emitted = _json(["emit-c", str(out / "scenario.toml"), "--out", str(tmp_path / "c-chosen"), "--build"])
    assert emitted["matches_reference"] and emitted["host"]["output"] == emitted["expected_output"]


def test_api_refuses_an_unknown_space_before_any_work(tmp_path):
    import aidi

    with pytest.raises(aidi.UserError, match=r"space: expected one of inas, mbconv, got 'resnet'"):
        aidi.nas("lab-1mF", out=tmp_path / "out", space="resnet")
    assert not (tmp_path / "out").exists()
    bad = runner.invoke(app, ["nas", str(LAB), "--space", "resnet"])
    assert bad.exit_code == 2 and "resnet" in bad.output
