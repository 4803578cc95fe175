"""Q15 quantization rules and the integer reference forward."""

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidi.models import q15
from aidi.models.layers import geometry, parse_network
from aidi.models.net import fold, folded_forward, random_model

NET = [
    {"type": "conv", "k": 3, "filters": 5, "padding": 1, "relu": True}, {"type": "bn"},
    {"type": "dwconv", "k": 3, "stride": 2, "relu": True},
    {"type": "maxpool", "k": 2, "stride": 1},
    {"type": "pwconv", "filters": 4},
    {"type": "avgpool", "k": 2, "stride": 1},
    {"type": "gap"},
    {"type": "fc", "units": 3},
]


def test_q_rounds_half_up_and_saturates():
    assert list(q15.q([0.5, -0.5, 1.5, -1.5, 0.49], 0)) == [1, 0, 2, -1, 0]
    assert list(q15.q([1.0, -1.0, 0.999969482421875], 15)) == [32767, -32768, 32767]
    assert q15.q(np.array([1e9, -1e9]), 3).tolist() == [32767, -32768]
    assert q15.q32(np.array([1e12]), 0)[0] == 2**31 - 1


@given(st.floats(1e-6, 1e6))
def test_frac_bits_is_largest_in_range(m):
    s = q15.frac_bits(m)
    assert m * 2.0**s <= 32767 or s == q15.S_MIN
    assert s == q15.S_MAX or m * 2.0 ** (s + 1) > 32767


def test_frac_bits_edges():
    assert q15.frac_bits(0.0) == q15.S_MAX
    assert q15.frac_bits(1.0) == 14
    assert q15.frac_bits(32767 / 32768) == 15
    with pytest.raises(ValueError):
        q15.frac_bits(float("nan"))


@pytest.fixture(scope="module")
def model():
    tm = random_model(NET, [2, 9, 8], seed=0)
    return tm, q15.quantize(tm)


def test_shift_rules(model):
    tm, qm = model
    s_prev = qm.s_input
    for ql, fl in zip(qm.layers, fold(tm)):
        g = ql.geom
        assert ql.s_in == s_prev
        if g.weighted:
            assert ql.w.dtype == np.int16 and ql.b.dtype == np.int32 and ql.w.shape == g.weight_shape
            assert 0 <= ql.shift <= 31 and ql.shift == ql.s_in + ql.s_w - ql.s_out
            assert np.abs(fl.w).max() * 2.0**ql.s_w <= 32767 < np.abs(fl.w).max() * 2.0 ** (ql.s_w + 1)
            assert np.array_equal(ql.w, q15.q(fl.w, ql.s_w))
            assert np.array_equal(ql.b, q15.q32(fl.b, ql.s_in + ql.s_w))
        else:
            assert ql.w is None and ql.s_out == ql.s_in and ql.shift == 0
        s_prev = ql.s_out


def test_reference_tracks_float(model):
    tm, qm = model
    x = tm.dataset.x_test[:16]
    fl = folded_forward(fold(tm), x)
    qo = q15.forward_batch(qm, qm.quantize_input(x))
    for ql, f, o in zip(qm.layers, fl, qo):
        assert o.dtype == np.int16 and o.shape == f.shape
        err = np.abs(np.ldexp(o.astype(np.float64), -ql.s_out) - f).max()
        assert err < 0.05 * max(1e-3, np.abs(f).max()) + 2.0 ** -ql.s_out * 8, (ql.geom.name, err)


def test_reference_forward_single_equals_batch(model):
    tm, qm = model
    x = qm.quantize_input(tm.dataset.x_test[:3])
    batch = q15.forward_batch(qm, x)
    for i in range(3):
        single = q15.reference_forward(qm, x[i])
        assert all(np.array_equal(s, b[i]) for s, b in zip(single, batch))
    with pytest.raises(ValueError, match="input shape"):
        q15.reference_forward(qm, x[0, :1])


def test_accuracy_and_output_helpers(model):
    tm, qm = model
    x, labels = tm.dataset.x_test[:40], tm.dataset.y_test[:40]
    # top-1 over single-image forwards, against the batched helper (batches of 7 cut it unevenly)
    hits = sum(int(np.argmax(q15.reference_forward(qm, qm.quantize_input(xi))[-1]) == yi) for xi, yi in zip(x, labels))
    assert q15.q15_accuracy(qm, x, labels, batch=7) == hits / 40
    assert qm.output_shape == (3, 1, 1)
    # hand values: Q0.15 output -> 0.5, -1, 2^-15; Q3.12 (s = 12) -> 4, -8, 2^-12
    last = qm.layers[-1]
    for s_out, want in ((15, [0.5, -1.0, 2.0**-15]), (12, [4.0, -8.0, 2.0**-12])):
        m = replace(qm, layers=qm.layers[:-1] + (replace(last, s_out=s_out),))
        assert m.dequantize_output(np.array([16384, -32768, 1], np.int16)).tolist() == want


def _one_layer_qmodel(spec: dict, input_shape, w, b) -> q15.QModel:
    """A QModel of one executed layer with all formats 0 (shift 0): outputs are the raw integer sums."""
    (geom,) = geometry(parse_network([spec], list(input_shape)))
    layer = q15.QLayer(geom, np.asarray(w, np.int16), np.asarray(b, np.int32), 0, 0, 0, 0)
    return q15.QModel((layer,), tuple(input_shape), 0)


def test_conv_zero_padding_hand_computed():
    # 3x3 input 1..9, 3x3 all-ones kernel, padding 1: each output is the sum of the in-image neighbours
    x = np.arange(1, 10, dtype=np.int16).reshape(1, 3, 3)
    qm = _one_layer_qmodel({"type": "conv", "k": 3, "filters": 1, "padding": 1}, (1, 3, 3),
                           np.ones((1, 1, 3, 3)), [100])
    want = np.array([[12, 21, 16], [27, 45, 33], [24, 39, 28]]) + 100
    assert q15.reference_forward(qm, x)[-1].tolist() == [want.tolist()]


def test_conv_accumulate_saturates_on_padded_input_by_hand():
    # all products <= 0: saturating order does not matter; padded zeros add nothing
    x = np.pad(np.arange(1, 10, dtype=np.int16).reshape(1, 1, 3, 3), ((0, 0), (0, 0), (1, 1), (1, 1)))
    acc0 = np.full((1, 1, 3, 3), -(2**31) + 30, np.int32)
    out = q15.conv_accumulate(x, -np.ones((1, 1, 3, 3), np.int16), acc0, 1)
    # acc0 minus the neighbour sums 12 21 16 / 27 45 33 / 24 39 28; sums over 30 clamp to INT32_MIN
    want = -(2**31) + np.array([[18, 9, 14], [3, 0, 0], [6, 0, 2]])
    assert out[0, 0].tolist() == want.tolist()


@pytest.mark.parametrize("op", ["conv", "dwconv"])
@pytest.mark.parametrize("stride", [1, 2])
def test_padded_conv_equals_torch_float64(op, stride):
    # small integers: every sum stays inside int16, so the Q15 forward (formats 0, shift 0)
    # must equal torch's float64 convolution exactly, padding included
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    c, h, wd, m = 3, 7, 6, 4
    if op == "conv":
        spec = {"type": "conv", "k": 3, "filters": m, "padding": 2, "stride": stride}
        w = rng.integers(-20, 21, (m, c, 3, 3))
        groups = 1
    else:
        spec = {"type": "dwconv", "k": 3, "padding": 2, "stride": stride}
        w = rng.integers(-20, 21, (c, 1, 3, 3))
        groups, m = c, c
    b = rng.integers(-500, 501, m)
    x = rng.integers(-20, 21, (2, c, h, wd))
    qm = _one_layer_qmodel(spec, (c, h, wd), w, b)
    got = q15.forward_batch(qm, x.astype(np.int16))[-1]
    want = torch.nn.functional.conv2d(torch.tensor(x, dtype=torch.float64), torch.tensor(w, dtype=torch.float64),
                                      torch.tensor(b, dtype=torch.float64), stride=stride, padding=2,
                                      groups=groups).numpy()
    assert np.abs(want).max() < 2**15 - 1  # no saturation anywhere
    assert got.shape == want.shape and np.array_equal(got.astype(np.int64), want.astype(np.int64))


def test_shapes_come_from_geometry():
    net = parse_network(NET, [2, 9, 8])
    tm = random_model(net, seed=1)
    qm = q15.quantize(tm)
    assert [ql.geom.out_shape for ql in qm.layers] == [(5, 9, 8), (5, 4, 3), (5, 3, 2), (4, 3, 2), (4, 2, 1),
                                                      (4, 1, 1), (3, 1, 1)]
