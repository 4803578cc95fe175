"""Weight sharing: extracted subnets equal the supernet, training is deterministic, KD and fine-tuning work."""

import math
import statistics

import numpy as np
import pytest
import torch

from aidi.models.data import load_dataset
from aidi.models.nas import supernet as S
from aidi.models.nas.space import Stage, digits_space


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("AIDI_CACHE_DIR", str(tmp_path_factory.mktemp("nas-cache")))
    yield
    mp.undo()


@pytest.fixture(scope="module")
def data():
    return S.split_validation(load_dataset("digits", 0), 0)


@pytest.fixture(scope="module")
def trained(cache, data):
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
def test_training_is_deterministic_and_cached(cache, data, trained):
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


@pytest.mark.slow
def test_kd_ablation_reports_both(cache, data):
    cfg = S.SupernetConfig.quick(full_epochs=2, width_epochs=1, ft_epochs=1)
    r = S.kd_ablation(digits_space(), data, 0, cfg, n_archs=2)
    assert r["alpha"] == cfg.alpha > 0 and len(r["archs"]) == 2
    for label in ("kd", "no_kd"):
        for key, n_images in (("inherited_val_acc", len(data.x_val)), ("finetuned_test_acc", len(data.x_test))):
            accs = r[label][key]
            assert len(accs) == 2
            # each an accuracy over whole images: a count / n_images in [0, 1]
            assert all(0.0 <= a <= 1.0 and round(a * n_images) == pytest.approx(a * n_images, abs=1e-9) for a in accs)
    # the gains from the per-architecture accuracies, not from the reported means
    assert r["kd_gain_inherited"] == pytest.approx(statistics.fmean(r["kd"]["inherited_val_acc"])
                                                   - statistics.fmean(r["no_kd"]["inherited_val_acc"]), abs=1e-12)
    assert r["kd_gain_finetuned"] == pytest.approx(statistics.fmean(r["kd"]["finetuned_test_acc"])
                                                   - statistics.fmean(r["no_kd"]["finetuned_test_acc"]), abs=1e-12)
    # the two arms really differ (alpha reached the training): same seed, different inherited weights
    assert r["kd"]["inherited_val_acc"] != r["no_kd"]["inherited_val_acc"] or \
        r["kd"]["finetuned_test_acc"] != r["no_kd"]["finetuned_test_acc"]
