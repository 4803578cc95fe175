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


def naive_conv(x, w, acc, stride):
    """Scalar, independent reference of the canonical-order saturating accumulation."""
    acc = acc.astype(np.int64).copy()
    tm, tn, kh, kw = w.shape
    for m in range(tm):
        for r in range(acc.shape[1]):
            for c in range(acc.shape[2]):
                a = int(acc[m, r, c])
                for n in range(tn):
                    for i in range(kh):
                        for j in range(kw):
                            a = min(max(a + int(x[n, r * stride + i, c * stride + j]) * int(w[m, n, i, j]), -(2**31)),
                                    2**31 - 1)
                acc[m, r, c] = a
    return acc.astype(np.int32)


@st.composite
def conv_case(draw, depthwise=False):
    tm, tn = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    tr, tc = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw, s = draw(st.integers(1, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    tri, tci = (tr - 1) * s + kh, (tc - 1) * s + kw
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
    ref = q15.conv_accumulate(x, w, acc, s)
    assert np.array_equal(ref, naive_conv(x, w, acc, s))
    a = with_junk(acc)
    K.conv_tile(with_junk(x), with_junk(w), a, tm, tn, tr, tc, kh, kw, s, tri, tci)
    assert np.array_equal(a[:acc.size].reshape(acc.shape), ref)
    assert (a[acc.size:] == -12345).all()


@SETTINGS
@given(conv_case(depthwise=True))
def test_dw_tile_matches_reference(case):
    x, w, acc, s, tri, tci = case
    tm, _, kh, kw = w.shape
    tr, tc = acc.shape[1:]
    ref = q15.dw_accumulate(x, w, acc, s)
    # depthwise = per-channel conv
    for m in range(tm):
        assert np.array_equal(ref[m:m + 1], naive_conv(x[m:m + 1], w[m:m + 1], acc[m:m + 1], s))
    a = with_junk(acc)
    K.dw_tile(with_junk(x), with_junk(w), a, tm, tr, tc, kh, kw, s, tri, tci)
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
@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3), st.integers(1, 3),
       st.integers(1, 3), st.booleans(), st.booleans(), st.data())
def test_pool_tile_matches_reference(tm, tr, tc, kh, kw, s, is_max, relu, data):
    tri, tci = (tr - 1) * s + kh, (tc - 1) * s + kw
    x = data.draw(arr16((tm, tri, tci)))
    ref = q15.pool_reference(x, kh, kw, s, is_max, relu)
    assert ref.shape == (tm, tr, tc)
    out = np.full(tm * tr * tc + 3, 777, np.int16)
    K.pool_tile(with_junk(x), out, tm, tr, tc, kh, kw, s, tri, tci, is_max, relu)
    assert np.array_equal(out[:-3].reshape(tm, tr, tc), ref)
    assert (out[-3:] == 777).all()


def test_avgpool_floor_division_of_negative_sums():
    x = np.array([[[-3, -4], [0, 0]]], np.int16)  # sum -7, kk 4: floor((-7 + 2) / 4) = -2
    out = np.zeros(1, np.int16)
    K.pool_tile(x.ravel(), out, 1, 1, 1, 2, 2, 1, 2, 2, False, False)
    assert out[0] == -2 == q15.pool_reference(x, 2, 2, 1, False)[0, 0, 0]


@SETTINGS
@given(arr32((17,)), st.integers(0, 31), st.booleans())
def test_requantize_matches_reference(acc, k, relu):
    out = np.zeros(20, np.int16)
    K.requantize(acc, out, acc.size, k, relu)
    ref = q15.requantize_reference(acc, k, relu)
    assert np.array_equal(out[:17], ref)
    # rshift_round is round-half-up of acc / 2^k
    exact = np.floor(acc.astype(np.float64) / 2.0**k + 0.5)
    assert np.array_equal(q15.rshift_round(acc, k), exact.astype(np.int64))


def test_rshift_round_edges():
    a = np.array([2**31 - 1, -(2**31), 3, -3, 2, -2, 1, -1], np.int32)
    assert list(q15.rshift_round(a, 1)) == [2**30, -(2**30), 2, -1, 1, -1, 1, 0]
    assert list(q15.rshift_round(a, 0)) == list(a)
    out = np.zeros(8, np.int16)
    K.requantize(a, out, 8, 1, False)
    assert list(out) == [32767, -32768, 2, -1, 1, -1, 1, 0]


@SETTINGS
@given(st.integers(1, 4), st.integers(1, 3), st.integers(1, 3), st.data())
def test_fill_bias(tm, tr, tc, data):
    b = data.draw(arr32((tm,)))
    acc = np.zeros(tm * tr * tc + 2, np.int32)
    K.fill_bias(acc, b, tm, tr, tc)
    assert np.array_equal(acc[:-2].reshape(tm, tr, tc), np.broadcast_to(b[:, None, None], (tm, tr, tc)))
    assert (acc[-2:] == 0).all()
