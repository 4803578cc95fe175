"""Q15 quantization rules and the integer reference forward."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidi.models import q15
from aidi.models.layers import parse_network
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
    acc = q15.q15_accuracy(qm, tm.dataset.x_test, tm.dataset.y_test)
    assert 0.0 <= acc <= 1.0
    assert qm.output_shape == (3, 1, 1)
    y = q15.reference_forward(qm, qm.quantize_input(tm.dataset.x_test[0]))[-1]
    assert np.allclose(qm.dequantize_output(y), np.ldexp(y.astype(float), -qm.s_output))


def test_conv_reference_zero_padding_is_a_no_op_term():
    # a padded conv equals the unpadded conv over the zero-extended input (padding terms add 0)
    rng = np.random.default_rng(0)
    x = rng.integers(-32768, 32768, (1, 2, 4, 4)).astype(np.int16)
    w = np.full((1, 2, 3, 3), 32767, np.int16)
    acc0 = np.full((1, 1, 4, 4), 2**31 - 5, np.int32)
    out = q15.conv_accumulate(np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1))), w, acc0, 1)
    assert out.shape == (1, 1, 4, 4) and out.dtype == np.int32
    assert out.max() <= 2**31 - 1 and out.min() >= -(2**31)


def test_shapes_come_from_geometry():
    net = parse_network(NET, [2, 9, 8])
    tm = random_model(net, seed=1)
    qm = q15.quantize(tm)
    assert [ql.geom.out_shape for ql in qm.layers] == [(5, 9, 8), (5, 4, 3), (5, 3, 2), (4, 3, 2), (4, 2, 1),
                                                      (4, 1, 1), (3, 1, 1)]
