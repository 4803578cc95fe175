"""Weight sharing: extracted subnets equal the supernet, training is deterministic, KD and fine-tuning work."""

import math

import numpy as np
import pytest
import torch

from aidi.models.data import load_dataset
from aidi.models.nas import supernet as S
from aidi.models.nas.space import Stage, digits_space


@pytest.fixture(scope="module")
def data():
    return S.split_validation(load_dataset("digits", 0), 0)


@pytest.fixture(scope="module")
def trained(private_cache, data):
    return S.train_supernet(digits_space(), data, 0, S.SupernetConfig.quick())


def test_split_is_disjoint_stratified_and_seeded(data):
    assert len(data.x_train) + len(data.x_val) == 1437
    assert set(np.unique(data.y_val)) == set(range(10))
    again = S.split_validation(load_dataset("digits", 0), 0)
    assert np.array_equal(again.y_val, data.y_val)


@pytest.mark.slow
def test_extracted_subnet_equals_the_supernet(trained, data):
    sp = digits_space()
    rng = np.random.default_rng(0)
    archs = [sp.largest(), sp.smallest(), sp.largest("sep"),
             sp.make([Stage("sep", 3, 8, 2), Stage("conv", 5, 24, 1)])] + [sp.sample(rng) for _ in range(6)]
    xc = S.calibration_images(data)
    x = torch.from_numpy(data.x_val[:64])
    for a in archs:
        m = S.extract(trained, a, xc)
        with torch.no_grad():
            ref = trained(x, a, trained.calibrate(a, xc))
            got = m(x).flatten(1)
        assert torch.allclose(got, ref, atol=1e-5, rtol=1e-5), a.describe()
        assert (got.argmax(1) == ref.argmax(1)).all()
        # the inherited accuracy read off the supernet is the standalone module's
        assert S.supernet_accuracy(trained, a, data.x_val, data.y_val, xc) == pytest.approx(
            S.module_accuracy(m, data.x_val, data.y_val))


@pytest.mark.slow
def test_training_is_deterministic_and_cached(private_cache, data, trained):
    again = S.train_supernet(digits_space(), data, 0, S.SupernetConfig.quick())
    assert again.meta["cached"]
    fresh = S.train_supernet(digits_space(), data, 0, S.SupernetConfig.quick(), use_cache=False)
    for k, v in trained.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
    other = S.train_supernet(digits_space(), data, 1, S.SupernetConfig.quick(), use_cache=False)
    assert not torch.equal(other.fc_b, trained.fc_b)


@pytest.mark.slow
def test_supernet_learns(trained, data):
    xc = S.calibration_images(data)
    assert S.supernet_accuracy(trained, digits_space().largest("conv"), data.x_val, data.y_val, xc) > 0.6


def test_kd_loss():
    s = torch.tensor([[2.0, 0.0, -1.0]])
    y = torch.tensor([0])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert S.kd_loss(s, None, y, 0.5, 4.0) == ce
    assert S.kd_loss(s, s.clone(), y, 0.5, 4.0) == pytest.approx(0.5 * ce.item(), abs=1e-6)  # KL(p||p) = 0
    assert S.kd_loss(s, -s, y, 1.0, 2.0) > 0


@pytest.mark.slow
def test_finetune_and_scratch(trained, data):
    a = digits_space().make([Stage("conv", 3, 8, 1), Stage("conv", 3, 16, 1)])
    xc = S.calibration_images(data)
    teacher, _ = S.teacher_of(trained, xc)
    inherited = S.extract(trained, a, xc)
    tuned = S.finetune(inherited, data, 0, teacher, epochs=2)
    assert tuned is not inherited
    assert S.module_accuracy(tuned, data.x_val, data.y_val) >= S.module_accuracy(inherited, data.x_val, data.y_val) - 0.05
    m1 = S.train_from_scratch(a, data, 0, epochs=1)
    m2 = S.train_from_scratch(a, data, 0, epochs=1)
    assert all(torch.equal(p, q) for p, q in zip(m1.parameters(), m2.parameters()))


def test_kd_loss_equals_a_hand_computed_kl():
    # T = 2: teacher [2 ln 3, 0] softens to (3/4, 1/4), a zero student to (1/2, 1/2)
    T = 2.0
    s = torch.zeros(1, 2, dtype=torch.float64)
    t = torch.tensor([[T * math.log(3.0), 0.0]], dtype=torch.float64)
    y = torch.tensor([1])
    kl = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert S.kd_loss(s, t, y, 1.0, T).item() == pytest.approx(T * T * kl, rel=1e-12)
    assert S.kd_loss(s, t, y, 0.25, T).item() == pytest.approx(0.25 * T * T * kl + 0.75 * math.log(2.0), rel=1e-12)
    # batchmean: a batch of this row and a matching (zero-KL) row halves the KD term
    s2, t2, y2 = torch.cat([s, s]), torch.cat([t, s]), torch.tensor([1, 1])
    assert S.kd_loss(s2, t2, y2, 1.0, T).item() == pytest.approx(T * T * kl / 2, rel=1e-12)


def test_kd_loss_at_high_temperature_matches_logits():
    # Hinton et al. (2015): as T grows, T^2 KL -> sum((d - mean d)^2) / (2 n), d = teacher - student logits
    s = torch.tensor([[1.0, -2.0, 0.5, 3.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 1.0, -1.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([0])
    # d = (-1, 3, -1.5, -1), mean -0.125: squares 0.765625 + 9.765625 + 1.890625 + 0.765625 = 13.1875
    limit = 13.1875 / 8
    assert S.kd_loss(s, t, y, 1.0, 1000.0).item() == pytest.approx(limit, rel=1e-2)
    assert S.kd_loss(s, t, y, 1.0, 1.0).item() != pytest.approx(limit, rel=0.1)  # a limit, not an identity
    # shifting all student logits by a constant changes nothing (softmax is shift invariant)
    assert S.kd_loss(s + 5.0, t, y, 1.0, 3.0).item() == pytest.approx(S.kd_loss(s, t, y, 1.0, 3.0).item(), rel=1e-12)


@pytest.mark.parametrize("alpha", [1.0, 0.0])
def test_kd_pulls_the_student_to_the_teacher_and_ce_to_the_labels(alpha):
    # free student logits on a fixed batch whose labels all disagree with the teacher's argmax
    gen = torch.Generator().manual_seed(0)
    t = 3.0 * torch.randn(16, 5, generator=gen)
    y = (t.argmax(1) + 1) % 5
    s = torch.zeros(16, 5, requires_grad=True)
    opt = torch.optim.Adam([s], lr=0.1)
    losses = []
    for _ in range(300):
        opt.zero_grad()
        loss = S.kd_loss(s, t, y, alpha, 2.0)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.05 * losses[0]
    if alpha == 1.0:  # distillation alone: the student's soft targets become the teacher's
        assert torch.equal(s.argmax(1), t.argmax(1))
        assert torch.allclose(torch.softmax(s / 2.0, 1), torch.softmax(t / 2.0, 1), atol=1e-2)
    else:
        assert torch.equal(s.argmax(1), y)


# --------------------------------------------------------------------------- OFA / BigNAS ingredients
def _fresh(space=None, seed=0):
    with S._det(seed):
        return S.Supernet(space or digits_space())


def _importance(sn, i):
    """Recomputed from scratch: the L1 norm of the weights reading stage i's channels (see sort_channels)."""
    sp = sn.space
    cons = [sn.index[(i, b)] for b in range(1, max(sp.stages[i].depths))]
    if i + 1 < len(sp.stages):
        cons.append(sn.index[(i + 1, 0)])
    imp = sum(sn.conv_w[j].abs().sum((0, 2, 3)) + sn.dw_w[j].abs().sum((1, 2, 3)) + sn.pw_w[j].abs().sum((0, 2, 3))
              for j in cons)
    if i + 1 == len(sp.stages):
        imp = imp + sn.fc_w.abs().sum((0, 2, 3))
    return imp.detach()


def test_sorting_orders_channels_and_keeps_every_full_width_member(data):
    sp = digits_space()
    sn = _fresh(sp)
    x = torch.from_numpy(data.x_val[:48])
    full = [sp.largest("conv"), sp.largest("sep"), sp.make([Stage("sep", 3, 16, 1), Stage("conv", 1, 32, 2)])]
    narrow = sp.make([Stage("conv", 3, 8, 1), Stage("conv", 3, 16, 1)])
    xc = data.x_train[:256]
    with torch.no_grad():
        before = [sn(x, a) for a in full] + [sn(x, a, sn.calibrate(a, xc)) for a in full]
        narrow_before = sn(x, narrow, sn.calibrate(narrow, xc))
    conv0, fc = sn.conv_w[0].detach().clone(), sn.fc_w.detach().clone()
    assert not all(torch.equal(imp, imp.sort(descending=True).values) for imp in (_importance(sn, 0), _importance(sn, 1)))
    perms = sn.sort_channels()
    for i, p in enumerate(perms):
        assert sorted(p.tolist()) == list(range(max(sp.stages[i].filters)))  # a permutation ...
        assert not torch.equal(p, torch.arange(len(p)))                       # ... that moved channels
        imp = _importance(sn, i)
        assert torch.all(imp[:-1] >= imp[1:]), i                               # most important first
    assert torch.equal(sn.conv_w[0], conv0[perms[0]])                          # producer rows follow
    assert torch.equal(sn.fc_w, fc[:, perms[1]])                               # the head's columns too
    with torch.no_grad():
        after = [sn(x, a) for a in full] + [sn(x, a, sn.calibrate(a, xc)) for a in full]
        narrow_after = sn(x, narrow, sn.calibrate(narrow, xc))
    for b, a in zip(before, after):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
    assert not torch.allclose(narrow_after, narrow_before, atol=1e-3)  # a narrow member now keeps other channels


def _step(sn, archs, xb, yb, alpha=0.5):
    opt = torch.optim.Adam(sn.parameters(), lr=1e-2)
    opt.zero_grad()
    losses = S.sandwich_step(sn, xb, yb, archs, alpha, 4.0)
    opt.step()
    return losses


def test_kernel_transform_is_learned_and_not_the_plain_crop(data):
    sp = digits_space()
    sn = _fresh(sp)
    j = sn.index[(1, 0)]
    w = sn.conv_w[j].detach()
    crop3 = w[..., 1:4, 1:4]
    # identity matrices at first: the 3x3 kernel is the centre crop, the 1x1 the centre of that
    assert torch.equal(sn.kernel("conv", j, sn.conv_w[j], 3).detach(), crop3)
    assert torch.equal(sn.kernel("conv", j, sn.conv_w[j], 1).detach(), w[..., 2:3, 2:3])
    assert torch.equal(sn.kernel("conv", j, sn.conv_w[j], 5), sn.conv_w[j])
    xb, yb = torch.from_numpy(data.x_train[:32]), torch.from_numpy(data.y_train[:32])
    # the full phase uses only the largest kernels: no gradient reaches the matrices
    _step(sn, S.sandwich(sp, "full", np.random.default_rng(0), 2), xb, yb)
    assert all(p.grad is None or not p.grad.any() for p in sn.ktrans.values())
    small = sp.make([Stage("conv", 1, 16, 2), Stage("conv", 3, 32, 2)])
    _step(sn, [sp.largest("conv"), small], xb, yb)
    for key in (f"conv{j}_5to3", f"conv{sn.index[(0, 0)]}_3to1"):
        assert sn.ktrans[key].grad is not None and sn.ktrans[key].grad.abs().sum() > 0, key
        assert not torch.equal(sn.ktrans[key].detach(), torch.eye(sn.ktrans[key].shape[0]))
    k3 = sn.kernel("conv", j, sn.conv_w[j], 3).detach()
    m = sn.ktrans[f"conv{j}_5to3"].detach()
    crop3 = sn.conv_w[j].detach()[..., 1:4, 1:4]
    assert not torch.allclose(k3, crop3)
    assert torch.allclose(k3, (crop3.reshape(-1, 9) @ m.T).reshape(crop3.shape))  # the crop times its matrix
    # the standalone module carries the transformed kernel
    conv = [mod for mod in S.extract(sn, small, data.x_train[:64]).layers if isinstance(mod, torch.nn.Conv2d)]
    assert torch.equal(conv[2].weight, sn.kernel("conv", j, sn.conv_w[j][:, :16], 3).detach())


def test_sandwich_samples_largest_smallest_and_random_as_stated():
    sp = digits_space()
    for phase, opened in (("kernel", {"k"}), ("depth", {"k", "depth"}), ("width", {"k", "depth", "filters"})):
        got = S.sandwich(sp, phase, np.random.default_rng(3), 6)
        assert len(got) == 8 and got[0] == sp.largest("conv")
        assert got == S.sandwich(sp, phase, np.random.default_rng(3), 6)   # deterministic in the seed
        assert got != S.sandwich(sp, phase, np.random.default_rng(4), 6)
        for s, st in zip(got[1].stages, sp.stages):                         # the smallest over opened choices
            assert s.k == min(st.kernels)
            assert s.depth == (min(st.depths) if "depth" in opened else max(st.depths))
            assert s.filters == (min(st.filters) if "filters" in opened else max(st.filters))
        for a in got[2:]:                                                   # random: closed choices at their max
            assert sp.contains(a)
            for s, st in zip(a.stages, sp.stages):
                assert "depth" in opened or s.depth == max(st.depths)
                assert "filters" in opened or s.filters == max(st.filters)
        # the random members do draw the opened choices
        assert len({s.k for a in got[2:] for s in a.stages}) > 1
    full = S.sandwich(sp, "full", np.random.default_rng(0), 6)
    assert len(full) == 1 and all(s.k == 5 and s.filters == max(st.filters) and s.depth == 2
                                  for s, st in zip(full[0].stages, sp.stages))
    with pytest.raises(ValueError, match="phase"):
        S.sandwich(sp, "shrink", np.random.default_rng(0), 1)


@pytest.mark.parametrize("alpha", [0.5, 0.0])
def test_sandwich_step_accumulates_ce_on_the_largest_and_kd_from_it(data, alpha):
    sp = digits_space()
    archs = S.sandwich(sp, "width", np.random.default_rng(1), 2)
    xb, yb = torch.from_numpy(data.x_train[:24]), torch.from_numpy(data.y_train[:24])
    sn, ref = _fresh(sp), _fresh(sp)
    losses = S.sandwich_step(sn, xb, yb, archs, alpha, 4.0)
    # by hand: CE on the largest; the others against its detached logits; one summed backward
    t = ref(xb, archs[0])
    want = [torch.nn.functional.cross_entropy(t, yb)]
    want += [S.kd_loss(ref(xb, a), t.detach() if alpha > 0 else None, yb, alpha, 4.0) for a in archs[1:]]
    sum(want).backward()
    assert losses == pytest.approx([w.item() for w in want], rel=1e-6)
    if alpha > 0:  # the KD term is there: plain CE of the smaller members differs
        assert losses[1] != pytest.approx(torch.nn.functional.cross_entropy(ref(xb, archs[1]), yb).item(), rel=1e-3)
    for (name, p), q in zip(sn.named_parameters(), ref.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert torch.allclose(p.grad, q.grad, atol=1e-6, rtol=1e-4), name


def test_device_choice(monkeypatch):
    assert S.resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert S.resolve_device("auto") == torch.device("cpu")
    with pytest.raises(ValueError, match="no CUDA device"):
        S.resolve_device("cuda")
    with pytest.raises(ValueError, match="auto, cpu or cuda"):
        S.resolve_device("tpu")


@pytest.mark.slow
def test_training_sorts_channels_before_the_width_phase(private_cache, data):
    cfg = S.SupernetConfig.quick(full_epochs=1, kernel_epochs=0, depth_epochs=0, width_epochs=1)
    sn = S.train_supernet(digits_space(), data, 0, cfg, use_cache=False)
    moved = sn.meta["history"]["width"]["channels_moved_per_stage"]
    assert len(moved) == 2 and all(m > 0 for m in moved)


