"""Float network: training determinism, cache, random weights, weight files, BN folding, Q15 accuracy."""

import numpy as np
import pytest
import torch

from aidi.models.cache import cache_dir
from aidi.models.data import load_dataset
from aidi.models.layers import DEFAULT_INPUT, DEFAULT_LAYERS, parse_network
from aidi.models.net import build_module, fold, folded_forward, load_model, load_or_train, random_model, save_model
from aidi.models.q15 import q15_accuracy, quantize

SMALL = [{"type": "conv", "k": 3, "filters": 4, "relu": True}, {"type": "gap"}, {"type": "fc", "units": 10}]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_cache_dir_env(cache):
    assert cache_dir() == cache


def test_digits_split():
    a, b = load_dataset("digits", 0), load_dataset("digits", 0)
    assert np.array_equal(a.x_test, b.x_test) and a.x_train.shape == (1437, 1, 8, 8)
    assert 0.0 <= a.x_train.min() and a.x_train.max() < 1.0
    assert not np.array_equal(load_dataset("digits", 1).y_test, a.y_test)
    with pytest.raises(ValueError, match="dataset 'digits' has input shape"):
        load_dataset("digits", 0, (3, 8, 8))
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("nosuch", 0)


def test_training_is_deterministic_and_cached(cache):
    t1 = load_or_train(SMALL, DEFAULT_INPUT, seed=3, epochs=2)
    files = list((cache / "models").glob("*.pt"))
    assert len(files) == 1 and t1.cache_path == files[0]
    t2 = load_or_train(SMALL, DEFAULT_INPUT, seed=3, epochs=2, use_cache=False)
    for k, v in t1.module.state_dict().items():
        assert torch.equal(v, t2.module.state_dict()[k]), k
    t3 = load_or_train(SMALL, DEFAULT_INPUT, seed=3, epochs=2)  # from cache
    assert t3.train_seconds == 0.0 and t3.float_accuracy == t1.float_accuracy
    assert load_or_train(SMALL, DEFAULT_INPUT, seed=4, epochs=2).cache_path != t1.cache_path
    assert not list(cache.glob("models/*.tmp"))


def test_corrupt_cache_is_retrained(cache):
    t1 = load_or_train(SMALL, DEFAULT_INPUT, seed=0, epochs=1)
    t1.cache_path.write_bytes(b"garbage")
    t2 = load_or_train(SMALL, DEFAULT_INPUT, seed=0, epochs=1)
    assert t2.train_seconds > 0 and t2.float_accuracy == t1.float_accuracy


@pytest.mark.slow
def test_default_model_trains_well_and_quantizes(cache):
    threads = torch.get_num_threads()
    tm = load_or_train(list(DEFAULT_LAYERS), DEFAULT_INPUT, seed=0)
    assert torch.get_num_threads() == threads  # restored after training
    assert tm.float_accuracy > 0.9
    qm = quantize(tm)
    acc = q15_accuracy(qm, tm.dataset.x_test, tm.dataset.y_test)
    assert acc > tm.float_accuracy - 0.03
    assert qm.float_accuracy == tm.float_accuracy


def test_training_leaves_global_rng_alone(cache):
    torch.manual_seed(123)
    expect = torch.rand(3)
    torch.manual_seed(123)
    load_or_train(SMALL, DEFAULT_INPUT, seed=0, epochs=1, use_cache=False)
    assert torch.equal(torch.rand(3), expect)


def test_random_weights_seeded():
    a, b = random_model(SMALL, DEFAULT_INPUT, seed=1), random_model(SMALL, DEFAULT_INPUT, seed=1)
    assert a.weights == "random" and a.epochs == 0 and a.dataset.name == "digits"
    for k, v in a.module.state_dict().items():
        assert torch.equal(v, b.module.state_dict()[k])
    c = random_model([{"type": "conv", "k": 3, "filters": 2}, {"type": "gap"}], [3, 12, 10], seed=0)
    assert c.dataset.name == "synthetic" and c.dataset.x_train.shape[1:] == (3, 12, 10)


def test_load_model_dispatch(tmp_path, cache):
    r = load_model(SMALL, DEFAULT_INPUT, "random", seed=2)
    assert r.weights == "random"
    save_model(r, tmp_path / "w.pt")
    back = load_model(SMALL, DEFAULT_INPUT, "w.pt", base_dir=tmp_path)
    for k, v in r.module.state_dict().items():
        assert torch.equal(v, back.module.state_dict()[k])
    with pytest.raises(ValueError, match="file not found"):
        load_model(SMALL, DEFAULT_INPUT, "nope.pt", base_dir=tmp_path)
    with pytest.raises(ValueError, match="different architecture"):
        load_model(list(DEFAULT_LAYERS), DEFAULT_INPUT, str(tmp_path / "w.pt"))
    (tmp_path / "bad.pt").write_text("x")
    with pytest.raises(ValueError, match="cannot read"):
        load_model(SMALL, DEFAULT_INPUT, str(tmp_path / "bad.pt"))


BN_NET = [
    {"type": "conv", "k": 3, "filters": 5, "padding": 1, "relu": True}, {"type": "bn"},
    {"type": "dwconv", "k": 3, "stride": 2}, {"type": "bn"}, {"type": "relu"},
    {"type": "pwconv", "filters": 4, "bias": False}, {"type": "bn"},
    {"type": "avgpool", "k": 2, "stride": 1},
    {"type": "fc", "units": 6}, {"type": "bn"}, {"type": "relu"},
]


def test_bn_folding_matches_module():
    net = parse_network(BN_NET, [2, 9, 8])
    module = build_module(net, seed=0)
    gen = torch.Generator().manual_seed(0)
    for m in module.layers:  # non-trivial BN statistics and affine parameters
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))
    module.eval()
    x = np.random.default_rng(0).random((4, 2, 9, 8)).astype(np.float32)
    folded = fold(module)
    assert len(folded) == 5 and all(f.geom.bias for f in folded if f.w is not None)
    out = folded_forward(folded, x)[-1]
    ref = module(torch.from_numpy(x)).detach().numpy()
    assert out.shape == ref.shape == (4, 6, 1, 1)
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert (out >= 0).all()  # fc -> bn -> relu


def test_prepare_model_end_to_end(cache):
    from aidi.models.functional import FunctionalRun
    from aidi.models.prepare import prepare_model
    from aidi.models.design_search import design_network

    pm = prepare_model(SMALL, DEFAULT_INPUT, weights="random", seed=1, sample_index=2)
    assert pm.x_q.dtype == np.int16 and pm.x_q.shape == DEFAULT_INPUT and 0 <= pm.label < 10
    assert np.array_equal(pm.x_q, pm.qmodel.quantize_input(pm.trained.dataset.x_test[2]))
    assert 0.0 <= pm.q15_accuracy <= 1.0 and pm.net.key() == parse_network(SMALL, DEFAULT_INPUT).key()
    tg = design_network(pm.qmodel, "msp430fr5994", 2048, e_cycle_J=20e-6, backend="auto").task_graph()
    run = FunctionalRun.from_graph(tg, pm.qmodel, pm.x_q)
    run.run_to_completion()
    assert run.output_matches_reference()
    with pytest.raises(ValueError, match="sample index"):
        prepare_model(SMALL, DEFAULT_INPUT, weights="random", sample_index=10**6)
