"""Numba Q15 tile kernels against the numpy references of aidi.models.q15 (hypothesis, saturation included)."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from aidi.models import kernels as K
from aidi.models import q15

I16 = st.one_of(st.integers(-32768, 32767), st.sampled_from([-32768, -32767, 32767, 0, 1, -1]))
I32 = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([-(2**31), 2**31 - 1, 0, 2**30]))
SETTINGS = settings(max_examples=60, deadline=None)


def arr16(shape):
    # either arbitrary values or all-extreme values (forces int32 saturation of the accumulators)
    return st.one_of(hnp.arrays(np.int16, shape, elements=I16),
                     hnp.arrays(np.int16, shape, elements=st.sampled_from([-32768, 32767])))


def arr32(shape):
    return hnp.arrays(np.int32, shape, elements=I32)


def with_junk(a, junk=5):
    """Flat copy of ``a`` followed by junk: kernels must only use the dense prefix."""
    flat = np.concatenate([a.ravel(), np.full(junk, -12345, a.dtype)])
    return flat


def naive_conv(x, w, acc, stride, stride_w=None):
    """Scalar, independent reference of the canonical-order saturating accumulation (strides per axis)."""
    sw = stride if stride_w is None else stride_w
    acc = acc.astype(np.int64).copy()
    tm, tn, kh, kw = w.shape
    for m in range(tm):
        for r in range(acc.shape[1]):
            for c in range(acc.shape[2]):
                a = int(acc[m, r, c])
                for n in range(tn):
                    for i in range(kh):
                        for j in range(kw):
                            a = min(max(a + int(x[n, r * stride + i, c * sw + j]) * int(w[m, n, i, j]), -(2**31)),
                                    2**31 - 1)
                acc[m, r, c] = a
    return acc.astype(np.int32)


@st.composite
def conv_case(draw, depthwise=False):
    tm, tn = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    tr, tc = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))  # rectangular kernels (10x4, 1x5, ...)
    s = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))  # per-axis strides
    tri, tci = (tr - 1) * s[0] + kh, (tc - 1) * s[1] + kw
    if depthwise:
        tn = tm
    x = draw(arr16((tn, tri, tci)))
    w = draw(arr16((tm, 1 if depthwise else tn, kh, kw)))
    acc = draw(arr32((tm, tr, tc)))
    return x, w, acc, s, tri, tci


@SETTINGS
@given(conv_case())
def test_conv_tile_matches_reference(case):
    x, w, acc, s, tri, tci = case
    tm, tn, kh, kw = w.shape
    tr, tc = acc.shape[1:]
    ref = q15.conv_accumulate(x, w, acc, *s)
    assert np.array_equal(ref, naive_conv(x, w, acc, *s))
    a = with_junk(acc)
    K.conv_tile(with_junk(x), with_junk(w), a, tm, tn, tr, tc, kh, kw, *s, tri, tci)
    assert np.array_equal(a[:acc.size].reshape(acc.shape), ref)
    assert (a[acc.size:] == -12345).all()


@SETTINGS
@given(conv_case(depthwise=True))
def test_dw_tile_matches_reference(case):
    x, w, acc, s, tri, tci = case
    tm, _, kh, kw = w.shape
    tr, tc = acc.shape[1:]
    ref = q15.dw_accumulate(x, w, acc, *s)
    # depthwise = per-channel conv
    for m in range(tm):
        assert np.array_equal(ref[m:m + 1], naive_conv(x[m:m + 1], w[m:m + 1], acc[m:m + 1], *s))
    a = with_junk(acc)
    K.dw_tile(with_junk(x), with_junk(w), a, tm, tr, tc, kh, kw, *s, tri, tci)
    assert np.array_equal(a[:acc.size].reshape(acc.shape), ref)


@SETTINGS
@given(st.integers(1, 5), st.integers(1, 40), st.data())
def test_fc_tile_matches_reference(tm, tn, data):
    x = data.draw(arr16((tn,)))
    w = data.draw(arr16((tm, tn)))
    acc = data.draw(arr32((tm,)))
    ref = q15.fc_accumulate(x, w, acc)
    assert np.array_equal(ref, naive_conv(x.reshape(tn, 1, 1), w.reshape(tm, tn, 1, 1), acc.reshape(tm, 1, 1), 1).ravel())
    a = with_junk(acc)
    K.fc_tile(with_junk(x), with_junk(w), a, tm, tn)
    assert np.array_equal(a[:tm], ref)


def test_saturation_is_per_term_not_at_the_end():
    # +max, +max, then -max: saturating per term gives INT32_MAX - 2^30 != exact sum
    x = np.array([32767, 32767, 32767], np.int16)
    w = np.array([[32767, 32767, -32767]], np.int16)
    acc = np.array([2**31 - 2**29], np.int32)
    K.fc_tile(x, w.ravel(), acc, 1, 3)
    assert acc[0] == 2**31 - 1 - 32767 * 32767
    assert acc[0] == q15.fc_accumulate(x, w, np.array([2**31 - 2**29], np.int32))[0]


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 3), st.integers(1, 3), st.booleans(), st.booleans(), st.sampled_from([32767, 0, 96, -5]),
       st.data())
def test_pool_tile_matches_reference(tm, tr, tc, kh, kw, sh, sw, is_max, relu, hi, data):
    tri, tci = (tr - 1) * sh + kh, (tc - 1) * sw + kw
    x = data.draw(arr16((tm, tri, tci)))
    ref = np.minimum(q15.pool_reference(x, kh, kw, (sh, sw), is_max, relu), hi)
    assert ref.shape == (tm, tr, tc)
    out = np.full(tm * tr * tc + 3, 777, np.int16)
    K.pool_tile(with_junk(x), out, tm, tr, tc, kh, kw, sh, sw, tri, tci, is_max, relu, hi)
    assert np.array_equal(out[:-3].reshape(tm, tr, tc), ref)
    assert (out[-3:] == 777).all()


def test_avgpool_floor_division_of_negative_sums():
    x = np.array([[[-3, -4], [0, 0]]], np.int16)  # sum -7, kk 4: floor((-7 + 2) / 4) = -2
    out = np.zeros(1, np.int16)
    K.pool_tile(x.ravel(), out, 1, 1, 1, 2, 2, 1, 1, 2, 2, False, False, 32767)
    assert out[0] == -2 == q15.pool_reference(x, 2, 2, 1, False)[0, 0, 0]


@SETTINGS
@given(arr32((17,)), st.integers(0, 31), st.booleans(), st.integers(-10, 25))
def test_requantize_matches_reference(acc, k, relu, s_out):
    hi = q15.act_hi_of(True, s_out)  # the relu6 clamp: 6.0 in Q(s_out), at most 32767
    assert hi == min(int(np.floor(6 * 2.0**s_out + 0.5)), 32767)
    out = np.zeros(20, np.int16)
    K.requantize(acc, out, acc.size, k, relu, 32767)
    ref = q15.requantize_reference(acc, k, relu)
    out6 = np.zeros(17, np.int16)
    K.requantize(acc, out6, acc.size, k, True, hi)
    assert np.array_equal(out6, np.clip(q15.requantize_reference(acc, k, True), 0, hi))
    assert np.array_equal(out[:17], ref)
    # rshift_round is round-half-up of acc / 2^k
    exact = np.floor(acc.astype(np.float64) / 2.0**k + 0.5)
    assert np.array_equal(q15.rshift_round(acc, k), exact.astype(np.int64))


def test_rshift_round_edges():
    a = np.array([2**31 - 1, -(2**31), 3, -3, 2, -2, 1, -1], np.int32)
    assert list(q15.rshift_round(a, 1)) == [2**30, -(2**30), 2, -1, 1, -1, 1, 0]
    assert list(q15.rshift_round(a, 0)) == list(a)
    out = np.zeros(8, np.int16)
    K.requantize(a, out, 8, 1, False, 32767)
    assert list(out) == [32767, -32768, 2, -1, 1, -1, 1, 0]


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_fill_bias(tm, tr, tc, data):
    b = data.draw(arr32((tm,)))
    acc = np.zeros(tm * tr * tc + 2, np.int32)
    K.fill_bias(acc, b, tm, tr, tc)
    assert np.array_equal(acc[:-2].reshape(tm, tr, tc), np.broadcast_to(b[:, None, None], (tm, tr, tc)))
    assert (acc[-2:] == 0).all()


@SETTINGS
@given(st.integers(1, 30), st.integers(0, 15), st.integers(0, 31), st.booleans(), st.data())
def test_add_tile_matches_reference(n, la, k, relu, data):
    a, b = data.draw(arr16((n,))), data.draw(arr16((n,)))
    lb = data.draw(st.integers(0, 15))
    acc = np.full(n + 2, -12345, np.int32)
    K.add_tile(a, b, acc, n, la, lb)
    exact = a.astype(np.int64) * 2**la + b.astype(np.int64) * 2**lb  # |.| < 2^31: exact in int32
    assert np.array_equal(acc[:n], exact) and (acc[n:] == -12345).all()
    assert np.array_equal(q15.add_reference(a, b, (la, lb), k), exact)
    out = np.zeros(n, np.int16)
    K.requantize(acc, out, n, k, relu, 32767)
    assert np.array_equal(out, q15.requantize_reference(exact, k, relu))


@SETTINGS
@given(st.integers(1, 3), st.integers(1, 3), st.integers(2, 7), st.integers(2, 7), st.integers(1, 4), st.integers(1, 4),
       st.integers(1, 3), st.integers(1, 3), st.data())
def test_padded_rect_conv_equals_torch(c, m, h, w, kh, kw, sh, sw, data):
    """conv_accumulate over an asymmetrically padded input = torch's conv2d (small integers: exact in float64)."""
    import torch
    from torch.nn import functional as F

    pads = tuple(data.draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))  # top, left, bottom, right
    if h + pads[0] + pads[2] < kh or w + pads[1] + pads[3] < kw:
        return
    x = data.draw(hnp.arrays(np.int16, (1, c, h, w), elements=st.integers(-50, 50)))
    wt = data.draw(hnp.arrays(np.int16, (m, c, kh, kw), elements=st.integers(-50, 50)))
    xp = np.pad(x, ((0, 0), (0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho, wo = (xp.shape[2] - kh) // sh + 1, (xp.shape[3] - kw) // sw + 1
    got = q15.conv_accumulate(xp, wt, np.zeros((1, m, ho, wo), np.int32), sh, sw)
    want = F.conv2d(F.pad(torch.from_numpy(x.astype(np.float64)), (pads[1], pads[3], pads[0], pads[2])),
                    torch.from_numpy(wt.astype(np.float64)), stride=(sh, sw)).numpy()
    assert np.array_equal(got, want.astype(np.int64))
