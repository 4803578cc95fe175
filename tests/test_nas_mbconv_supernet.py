"""The MBConv supernet (--space mbconv): members are slices of the largest network with the shapes their
choices say, OFA's sorting keeps the full network's function, kernels go through the transformation matrices,
the sandwich opens one dimension per phase, an extracted member equals the supernet's forward and runs
bit-exact in C, training is seeded and cached, and `aidi nas --space mbconv` (also --compare) uses it."""

import json
import tomllib
from dataclasses import replace

import numpy as np
import pytest
import torch
from aidi.analysis.nas_run import dumps_toml
from aidi.models.data import load_dataset
from aidi.models.layers import parse_network
from aidi.models.nas import supernet as S
from aidi.models.nas.mbconv import Block, MbArch, MbSpace, MbStage, MbStageSpace, mbconv_space
from aidi.models.nas.mbconv_supernet import (MB_PHASES, OPENED, MbSupernet, MbSupernetConfig, config_for_space,
                                             extract_member, train_for_space, train_mb_supernet)
from aidi.models.nas.space import digits_space
from tests.test_nas_mbconv import _json, _scenario

SPACE = mbconv_space((1, 8, 8))
#: a member with three residual adds, an expand-1 block and every kernel size
RESIDUAL = MbArch((1, 8, 8), 8, (MbStage(8, 1, (Block(3, 1), Block(5, 6))), MbStage(16, 2, (Block(7, 3), Block(3, 4)))))
#: one epoch per phase on two batches: every phase and both sortings run, in seconds
TINY = MbSupernetConfig.quick(full_epochs=1, kernel_epochs=1, depth_epochs=1, expand_epochs=1, width_epochs=1)


@pytest.fixture(scope="module")
def data():
    d = S.split_validation(load_dataset("digits", 0), 0)
    return replace(d, x_train=d.x_train[:128], y_train=d.y_train[:128])


@pytest.fixture(scope="module")
def trained(private_cache, data):
    return train_mb_supernet(SPACE, data, 0, TINY)


def _fresh(space=SPACE, seed=0):
    with S._det(seed):
        return MbSupernet(space)


def _out(sn, arch, x, xc):
    with torch.no_grad():
        return sn(x, arch), sn(x, arch, sn.calibrate(arch, xc))


# --------------------------------------------------------------------------- members are slices
def test_depth_expand_and_kernel_members_have_the_shapes_their_choices_say():
    sn = _fresh()
    a = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(5, 4),)), MbStage(24, 2, (Block(3, 1), Block(7, 6)))))
    ops = sn.weighted_ops(a)
    want = [(8, 1, 3, 3),                                     # stem
            (32, 8, 1, 1), (32, 1, 5, 5), (12, 32, 1, 1),     # s0b0: c 8, e 4, k 5, w 12
            (12, 1, 3, 3), (24, 12, 1, 1),                    # s1b0: e 1 (no expand conv), k 3
            (144, 24, 1, 1), (144, 1, 7, 7), (24, 144, 1, 1)]  # s1b1: c 24, e 6, k 7
    assert [tuple(op["w"].shape) for op in ops[:-1]] == want
    assert [op["groups"] for op in ops[:-1]] == [1, 1, 32, 1, 12, 1, 1, 144, 1]
    assert [op["stride"] for op in ops[:-1]] == [1, 1, 1, 1, 2, 1, 1, 1, 1]
    assert tuple(ops[-1]["w"].shape) == (10, 24)
    # elastic depth: the first blocks of each stage, so a shallower member's ops are a prefix per stage
    shallow = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(5, 4),)), MbStage(24, 2, (Block(3, 1),))))
    assert all(torch.equal(p["w"], q["w"]) for p, q in zip(sn.weighted_ops(shallow)[:6], ops[:6]))
    # the extracted module's graph is the member's, layer for layer
    m = S.extract(sn, a, np.random.default_rng(0).uniform(0, 1, (32, 1, 8, 8)).astype(np.float32))
    convs = [mod for mod in m.layers if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    assert [tuple(c.weight.shape) for c in convs] == want + [(10, 24)]
    assert m.net.to_dicts() == parse_network(a.to_layers(), a.input_shape).to_dicts()
    with pytest.raises(ValueError, match="not in search space"):
        S.extract(sn, replace(a, stem=4), np.zeros((4, 1, 8, 8), np.float32))


def test_expand_one_has_its_own_path_and_ratios_share_the_expanded_weights():
    sn = _fresh()
    e1 = MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(7, 1),)), MbStage(32, 2, (Block(7, 6),))))
    e3 = MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(7, 3),)), MbStage(32, 2, (Block(7, 6),))))
    e6 = SPACE.largest()
    dw1, dw3, dw6 = (sn.weighted_ops(a)[1 if a is e1 else 2]["w"] for a in (e1, e3, e6))
    assert torch.equal(dw3, dw6[:24])                       # ratio 3 = the first 24 of ratio 6's hidden channels
    assert dw1.data_ptr() == sn.p["s0b0_dw1_w"].data_ptr()  # ratio 1: the separate path
    assert not torch.equal(dw1, dw6[:8])


def test_kernels_go_through_the_transformation_matrices(data):
    sn = _fresh()
    w = sn.p["s0b0_dw_w"].detach()
    small = MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(3, 6),) * 2), MbStage(32, 2, (Block(5, 6),) * 2)))
    # identity matrices at first: the plain centre crops
    assert torch.equal(sn.weighted_ops(small)[2]["w"].detach(), w[..., 2:5, 2:5])
    xb, yb = torch.from_numpy(data.x_train[:32]), torch.from_numpy(data.y_train[:32])
    opt = torch.optim.Adam(sn.parameters(), lr=1e-2)
    S.sandwich_step(sn, xb, yb, sn.sandwich("full", np.random.default_rng(0), 2), 0.0, 4.0)
    assert all(p.grad is None or not p.grad.any() for p in sn.ktrans.values())  # the full phase: largest kernels
    S.sandwich_step(sn, xb, yb, [SPACE.largest(), small], 0.0, 4.0)
    opt.step()
    for key in ("s0b0_dw_7to5", "s0b0_dw_5to3", "s1b0_dw_7to5"):
        assert sn.ktrans[key].grad is not None and sn.ktrans[key].grad.abs().sum() > 0, key
    assert sn.ktrans["s1b0_dw_5to3"].grad is None or not sn.ktrans["s1b0_dw_5to3"].grad.any()  # k 5 stops at 5
    w = sn.p["s0b0_dw_w"].detach()
    m75, m53 = sn.ktrans["s0b0_dw_7to5"].detach(), sn.ktrans["s0b0_dw_5to3"].detach()
    k5 = (w[..., 1:6, 1:6].reshape(-1, 25) @ m75.T).reshape(-1, 1, 5, 5)
    k3 = (k5[..., 1:4, 1:4].reshape(-1, 9) @ m53.T).reshape(-1, 1, 3, 3)
    got = sn.weighted_ops(small)[2]["w"].detach()
    assert torch.allclose(got, k3, atol=1e-6) and not torch.allclose(got, w[..., 2:5, 2:5], atol=1e-4)


# --------------------------------------------------------------------------- OFA's sorting
def test_hidden_sorting_changes_the_order_and_keeps_the_full_networks_function(data):
    sn = _fresh()
    x, xc = torch.from_numpy(data.x_val[:48]), data.x_train[:128]
    full = [SPACE.largest(), MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(3, 6), Block(5, 1))),
                                                   MbStage(32, 2, (Block(7, 6),))))]
    narrow = MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(7, 3),) * 2), MbStage(32, 2, (Block(7, 4),) * 2)))
    before = [_out(sn, a, x, xc) for a in full + [narrow]]
    exp0, pj0 = sn.p["s1b0_exp_w"].detach().clone(), sn.p["s1b0_pj_w"].detach().clone()
    perms = sn.sort_hidden()
    assert len(perms) == 4
    for p in perms:
        assert sorted(p.tolist()) == list(range(len(p))) and not torch.equal(p, torch.arange(len(p)))
    imp = sn.p["s1b0_pj_w"].detach().abs().sum((0, 2, 3))
    assert torch.all(imp[:-1] >= imp[1:])                               # the most important hidden channels first
    assert torch.equal(sn.p["s1b0_exp_w"], exp0[perms[2]]) and torch.equal(sn.p["s1b0_pj_w"], pj0[:, perms[2]])
    after = [_out(sn, a, x, xc) for a in full + [narrow]]
    for (b1, b2), (a1, a2) in zip(before[:2], after[:2]):
        assert torch.allclose(a1, b1, atol=1e-5, rtol=1e-4) and torch.allclose(a2, b2, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(after[2][1], before[2][1], atol=1e-3)  # fewer hidden channels: now the important ones


def test_stage_sorting_keeps_full_width_members_and_skips_tied_stages(data):
    sn = _fresh()
    x, xc = torch.from_numpy(data.x_val[:48]), data.x_train[:128]
    full = [SPACE.largest(), MbArch((1, 8, 8), 8, (MbStage(16, 1, (Block(3, 1), Block(5, 1))),
                                                   MbStage(32, 2, (Block(7, 1), Block(3, 4)))))]
    narrow = MbArch((1, 8, 8), 8, (MbStage(12, 1, (Block(7, 6),) * 2), MbStage(24, 2, (Block(7, 6),) * 2)))
    before = [_out(sn, a, x, xc)[1] for a in full + [narrow]]
    fc = sn.fc_w.detach().clone()
    perms = sn.sort_stages()
    assert [len(p) for p in perms] == [16, 32] and all(not torch.equal(p, torch.arange(len(p))) for p in perms)
    assert torch.equal(sn.fc_w, fc[:, perms[1]])
    # the last stage's importance: its second block's expand / ratio-1 depthwise weights and the head's columns
    imp = (sn.p["s1b1_exp_w"].abs().sum((0, 2, 3)) + sn.p["s1b1_dw1_w"].abs().sum((1, 2, 3))
           + sn.fc_w.abs().sum(0)).detach()
    assert torch.all(imp[:-1] >= imp[1:])
    after = [_out(sn, a, x, xc)[1] for a in full + [narrow]]
    for b, a in zip(before[:2], after[:2]):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(after[2], before[2], atol=1e-3)
    # a stride-1 stage whose first block adds the stem's 16 channels at full width cannot be sorted alone
    tied = MbSpace("tied", (1, 8, 8), (MbStageSpace(1, (8, 16)), MbStageSpace(2, (16, 24))), stem=16)
    tied_perms = _fresh(tied).sort_stages()
    assert tied_perms[0] is None and tied_perms[1] is not None


# --------------------------------------------------------------------------- the sandwich and training
def test_each_phase_opens_one_more_dimension():
    sn = _fresh(mbconv_space((1, 28, 28)))
    sp = sn.space
    assert sn.sandwich("full", np.random.default_rng(0), 3) == [sp.largest()]
    for phase in MB_PHASES[1:]:
        got = sn.sandwich(phase, np.random.default_rng(5), 6)
        assert got == sn.sandwich(phase, np.random.default_rng(5), 6) and len(got) == 8
        assert got[0] == sp.largest() and all(sp.contains(a) for a in got)
        opened = set(OPENED[phase])
        small = got[1]
        assert small.resolution == (max(sp.resolutions) if "res" in opened else 1)
        for s, st in zip(small.stages, sp.stages):
            assert s.depth == (min(st.depths) if "depth" in opened else max(st.depths))
            assert s.width == (min(st.widths) if "width" in opened else max(st.widths))
            assert {b.k for b in s.blocks} == {min(st.kernels)}
            assert {b.expand for b in s.blocks} == {min(st.expands) if "expand" in opened else max(st.expands)}
        rand = got[2:]
        for dim, values in (("depth", {a.stages[1].depth for a in rand}),
                            ("width", {s.width for a in rand for s in a.stages[1:2]}),
                            ("expand", {b.expand for a in rand for s in a.stages for b in s.blocks})):
            assert (len(values) > 1) == (dim in opened), (phase, dim)
    with pytest.raises(ValueError, match="phase"):
        sn.sandwich("width-first", np.random.default_rng(0), 1)


@pytest.mark.slow
def test_training_is_seeded_cached_and_sorts_before_expand_and_width(private_cache, data, trained):
    hist = trained.meta["history"]
    assert list(hist) == list(MB_PHASES) and not trained.meta["cached"]
    assert all(m > 0 for m in hist["expand"]["hidden_channels_moved_per_block"])
    assert all(m > 0 for m in hist["width"]["channels_moved_per_stage"])
    again = train_mb_supernet(SPACE, data, 0, TINY)
    assert again.meta["cached"] and "supernet-mbconv-" in again.meta["cache_path"]
    fresh = train_mb_supernet(SPACE, data, 0, TINY, use_cache=False)
    for k, v in trained.state_dict().items():
        assert torch.equal(v, again.state_dict()[k]) and torch.equal(v, fresh.state_dict()[k]), k
    other = train_mb_supernet(SPACE, data, 1, TINY, use_cache=False)
    assert not torch.equal(other.fc_b, trained.fc_b)
    # the cache file is keyed by the format version: a bumped version is another file, retrained
    bumped = train_mb_supernet(SPACE, data, 0, replace(TINY, version=TINY.version + 1))
    assert not bumped.meta["cached"] and bumped.meta["cache_path"] != trained.meta["cache_path"]
    # a corrupt file is retrained, not trusted
    with open(again.meta["cache_path"], "wb") as f:
        f.write(b"not a torch file")
    assert not train_mb_supernet(SPACE, data, 0, TINY).meta["cached"]


def test_dispatch_by_space(data):
    assert isinstance(config_for_space(SPACE, quick=True), MbSupernetConfig)
    assert type(config_for_space(digits_space())) is S.SupernetConfig
    with pytest.raises(ValueError, match="mbconv search space"):
        MbSupernet(digits_space())
    with pytest.raises(ValueError, match="expects input"):
        train_for_space(mbconv_space((1, 28, 28)), data, 0, TINY, use_cache=False)


# --------------------------------------------------------------------------- extraction, Q15 and C
@pytest.mark.slow
def test_an_extracted_residual_member_equals_the_supernets_forward(trained, data):
    assert RESIDUAL.residual_blocks() == 3 and SPACE.contains(RESIDUAL)
    xc = S.calibration_images(data)
    x = torch.from_numpy(data.x_val[:64])
    for a in [RESIDUAL, SPACE.largest(), SPACE.smallest()] + [SPACE.sample(np.random.default_rng(i)) for i in range(4)]:
        m = S.extract(trained, a, xc)
        with torch.no_grad():
            ref = trained(x, a, trained.calibrate(a, xc))
            got = m(x).flatten(1)
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5), a.describe()
        assert S.supernet_accuracy(trained, a, data.x_val, data.y_val, xc) == pytest.approx(
            S.module_accuracy(m, data.x_val, data.y_val))
    tm = extract_member(trained, RESIDUAL, data)
    assert tm.net.to_dicts() == tm.module.net.to_dicts() and tm.dataset.n_classes == 10


@pytest.mark.slow
@pytest.mark.toolchain("host")
def test_the_q15_plan_of_an_extracted_member_runs_bit_exact_in_host_c(trained, data, tmp_path):
    """The residual member with its inherited weights: saved, loaded by a scenario, run under power failures
    (the functional plan matches the Q15 reference) and emitted as C whose host build prints that output."""
    from aidi.models import net as mnet
    from aidi.models.emit import build as mk

    tm = extract_member(trained, RESIDUAL, data)
    mnet.save_model(tm, tmp_path / "member.pt")
    path = _scenario(tmp_path, RESIDUAL, 0)
    doc = tomllib.loads(path.read_text())
    doc["model"].pop("weights")
    doc["model"]["file"] = "member.pt"
    path.write_text(dumps_toml(doc))
    run = _json(["run", str(path), "--engine", "des", "--functional"])
    assert run["completed"] and run["output_matches_reference"] and run["power_cycles"] > 1
    emitted = _json(["emit-c", str(path), "--out", str(tmp_path / "c")])
    assert emitted["expected_output"] == run["output"] and emitted["matches_reference"]
    mk.make(emitted["out"], "host")
    assert [int(v) for v in mk.run_host(emitted["out"]).output] == run["output"]
    # the weights the device runs are the supernet's: the same member with random weights computes another output
    (tmp_path / "random").mkdir()
    rand = _json(["run", str(_scenario(tmp_path / "random", RESIDUAL, 0)), "--engine", "des", "--functional"])
    assert rand["output"] != run["output"]


# --------------------------------------------------------------------------- the command
@pytest.mark.slow
def test_aidi_nas_compare_space_mbconv_runs_every_method_on_the_space(tmp_path, monkeypatch):
    from tests.test_nas_data import write_idx

    from aidi.analysis import nas_run

    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    write_idx(tmp_path / "fashion-mnist", n_train=60, n_test=20)
    s = nas_run.run_compare("lab-1mF-brownout", budget=2, seed=0, dataset="fashion-mnist", data_dir=tmp_path,
                            out=tmp_path / "out", quick=True, requirements=[20.0], search_budget_s=6.0,
                            space="mbconv", controller="random")
    rows = {r["method"]: r for r in s["rows"]}
    assert set(rows) == {"ours", "inas", "hwnas"}
    sp = mbconv_space((1, 28, 28))
    for r in rows.values():
        if r.get("arch_spec") is not None:
            assert sp.contains(MbArch.from_dict(r["arch_spec"])), r["method"]
            assert any(d["type"] == "dwconv" for d in r["layers"])
            # judged by SimPy: a deployment that cannot progress (e.g. pinned iNAS designs) misses, with the reason
            assert r["meets"] <= r["des_completed"] and (r["des_completed"] or r["des_note"])
    for m in ("ours", "hwnas"):
        assert rows[m]["supernet_s"] == s["supernet_charged_s"] > 0
