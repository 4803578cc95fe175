"""Weight sharing: extracted subnets equal the supernet, training is deterministic, KD and fine-tuning work."""

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


@pytest.mark.slow
def test_kd_ablation_reports_both(cache, data):
    cfg = S.SupernetConfig.quick(full_epochs=2, width_epochs=1, ft_epochs=1)
    r = S.kd_ablation(digits_space(), data, 0, cfg, n_archs=2)
    assert set(r) >= {"kd", "no_kd", "kd_gain_inherited", "kd_gain_finetuned"}
    assert r["kd_gain_inherited"] == pytest.approx(r["kd"]["inherited_val_acc_mean"] - r["no_kd"]["inherited_val_acc_mean"])
