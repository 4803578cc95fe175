"""Q15 fixed-point model and its exact integer reference (TI DSPLib convention).

This module *defines* the integer semantics shared by the numba kernels
(:mod:`aidi.models.kernels`), the functional intermittent execution
(:mod:`aidi.models.functional`) and the emitted C runtime (models/emit).  All
three must agree with :func:`reference_forward` bit for bit.

Number format
-------------
Tensors are int16, CHW layout, batch 1.  A tensor with ``s`` fractional bits
represents ``x_q * 2**-s`` (Q15 is ``s = 15``; ``s`` is a per-tensor power of
two and may differ from 15).

* ``q(x, s) = sat16(floor(x * 2**s + 0.5))`` (round half up), computed in
  float64; ``sat16`` clamps to [-32768, 32767], ``sat32`` to
  [-2**31, 2**31 - 1].
* ``frac_bits(m)`` = the largest ``s`` in [:data:`S_MIN`, :data:`S_MAX`] with
  ``m * 2**s <= 32767`` (``S_MAX`` when ``m == 0``).

Shifts of a weighted layer (conv, dwconv, pwconv, fc), chosen from calibration
data (the training split, through the float model with BN folded):

* ``s_in``  = fractional bits of its input (= ``s_out`` of the previous layer;
  for the first layer ``frac_bits(max |x|)`` over the calibration inputs);
* ``s_w``   = ``frac_bits(max |w|)`` over the layer's weights, lowered where
  the calibrated output or the bias, ``A = max(max |y|, max |b|)``, would
  saturate the accumulator: ``A * 2**(s_in + s_w) <= 2**31 - 1``;
* ``s_out`` = ``frac_bits(max |y|)`` over the calibration outputs ``y`` of the
  layer (after the fused ReLU), then clamped into
  ``[s_in + s_w - 31, s_in + s_w]`` so that the shift ``k = s_in + s_w - s_out``
  lies in ``[0, 31]``.
* ``w_q = q(w, s_w)`` (int16), ``b_q = sat32(floor(b * 2**(s_in + s_w) + 0.5))``
  (int32; zero when the layer has no bias).

Weighted layer, one output element::

    acc = b_q[m]                                   # int32
    for n ascending, kh ascending, kw ascending:   # canonical order
        acc = sat32(acc + int32(x[n, r*s+kh-p, c*s+kw-p]) * int32(w[m, n, kh, kw]))
    y = sat16(rshift_round(acc, k))
    if relu: y = max(y, 0)

Zero padding contributes terms ``x = 0`` (``sat32(acc + 0) == acc``, so they
may equally be skipped).  ``rshift_round(a, k) = a`` if ``k == 0`` else
``((a >> (k - 1)) + 1) >> 1`` with arithmetic (floor) shifts, evaluated in
int64 so that ``a = 2**31 - 1, k = 1`` does not overflow (in C: cast to
int64_t first, or use ``(a >> k) + ((a >> (k - 1)) & 1)``, which is equal).
Depthwise conv: ``n`` ranges over the single channel ``m`` (``w[m, 0, kh, kw]``).
``fc`` is a conv with 1x1 kernel over the flattened CHW input ``(C*H*W, 1, 1)``,
so its canonical order is the flattened index ascending.

Tiling over input channels in ascending order keeps the canonical order, so an
int32 partial sum stored to FRAM between units and reloaded is bit-exact.

Pooling (no weights, ``s_out = s_in``, int16 in and out):

* maxpool: ``max`` over the window;
* avgpool and gap: ``sum`` in int32 (exact: windows < 65536), then
  ``floor((sum + kk // 2) / kk)`` with floor division, ``kk`` = window size
  (for gap ``H * W``); the result is within int16.
* an optional fused ReLU: ``max(y, 0)``.

Zero padding (any ``(top, left, bottom, right)``) and per-axis strides ``(sh, sw)``
apply to conv, dwconv and both pools alike (a maxpool's zero padding equals
ONNX's -inf padding on inputs >= 0).

Activation clamps (every op): ``relu`` is ``max(y, 0)``; ``relu6`` also clamps
at ``act_hi = q(6.0, s_out)`` (6.0 in real units).

Residual ``add`` of ``a`` (``s_a`` fractional bits) and ``b`` (``s_b``), with
``S = max(s_a, s_b)``, ``S - min(s_a, s_b) <= 15`` (so the aligned int16 terms
stay below 2**30 and their sum fits int32 exactly)::

    acc = (a << (S - s_a)) + (b << (S - s_b))      # int32, exact
    y = sat16(rshift_round(acc, k)),  k = S - s_out in [0, 31]

with ``s_out = frac_bits(max |y|)`` over the calibration outputs, clamped into
``[S - 31, S]``.  ``concat`` computes nothing: its producers share one output
format (``s_out = frac_bits(max |y|)`` over all of them, clamped into each
weighted producer's shift range; with a pool among them, the pool's, which is
its input's).

Public API::

    q(x, s) -> int16 array;  frac_bits(max_abs) -> int;  rshift_round(a, k);  sat16(a);  sat32(a)
    quantize(trained, calib_x=None) -> QModel
    quantize_folded(folded, calib_x, input_shape) -> QModel
    reference_forward(qmodel, x_q) -> list[np.ndarray]     # int16 per executed layer
    forward_batch(qmodel, xb_q) -> list[np.ndarray]        # (B, C, H, W) per layer
    q15_accuracy(qmodel, x_float, y) -> float
    conv_accumulate / dw_accumulate / fc_accumulate / pool_reference / requantize_reference
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .layers import LayerGeom, Network

INT16_MIN, INT16_MAX = -32768, 32767
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
#: range of fractional bits considered for activations and weights
S_MIN, S_MAX = -16, 30
#: largest right shift of an accumulator
K_MAX = 31


def sat16(a) -> np.ndarray:
    """Clamp to int16 range and cast."""
    return np.clip(np.asarray(a, dtype=np.int64), INT16_MIN, INT16_MAX).astype(np.int16)


def sat32(a) -> np.ndarray:
    """Clamp to int32 range and cast."""
    return np.clip(np.asarray(a, dtype=np.int64), INT32_MIN, INT32_MAX).astype(np.int32)


def q(x, s: int) -> np.ndarray:
    """``sat16(floor(x * 2**s + 0.5))`` in float64."""
    v = np.floor(np.ldexp(np.asarray(x, dtype=np.float64), s) + 0.5)
    return np.clip(v, INT16_MIN, INT16_MAX).astype(np.int16)


def q32(x, s: int) -> np.ndarray:
    """``sat32(floor(x * 2**s + 0.5))`` in float64 (biases)."""
    v = np.floor(np.ldexp(np.asarray(x, dtype=np.float64), s) + 0.5)
    return np.clip(v, INT32_MIN, INT32_MAX).astype(np.int32)


def frac_bits(max_abs: float, lo: int = S_MIN, hi: int = S_MAX) -> int:
    """Largest ``s`` in ``[lo, hi]`` with ``max_abs * 2**s <= 32767`` (``lo`` if none)."""
    m = float(max_abs)
    if not np.isfinite(m):
        raise ValueError(f"cannot choose a Q format for a non-finite range {max_abs!r}")
    for s in range(hi, lo - 1, -1):
        if m * 2.0**s <= INT16_MAX:
            return s
    return lo


def rshift_round(a, k: int) -> np.ndarray:
    """Round-half-up arithmetic right shift, in int64: ``((a >> (k-1)) + 1) >> 1`` (``a`` if k == 0)."""
    a = np.asarray(a, dtype=np.int64)
    if k == 0:
        return a
    return ((a >> (k - 1)) + 1) >> 1


def requantize_reference(acc, k: int, relu: bool) -> np.ndarray:
    """int32 accumulators -> int16 outputs: ``sat16(rshift_round(acc, k))``, optional ReLU."""
    y = sat16(rshift_round(acc, k))
    return np.maximum(y, 0).astype(np.int16) if relu else y


# --------------------------------------------------------------------------- reference accumulations
def _acc_add(acc: np.ndarray, prod: np.ndarray) -> np.ndarray:
    return np.clip(acc + prod, INT32_MIN, INT32_MAX)


def conv_accumulate(x, w, acc, stride: int, stride_w: int | None = None) -> np.ndarray:
    """Saturating conv accumulation in canonical order, no padding (pad ``x`` beforehand).

    Args:
        x: int16 ``(..., N, Hi, Wi)``.
        w: int16 ``(M, N, kh, kw)``.
        acc: int32 ``(..., M, Ho, Wo)`` initial accumulators (bias or partial sums).
        stride, stride_w: strides along rows and columns (``stride_w`` None: ``stride``).
    Returns the new int32 accumulators (same shape as ``acc``).
    """
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    a = np.asarray(acc, dtype=np.int64).copy()
    ho, wo = a.shape[-2:]
    n_, kh_, kw_ = w.shape[1:]
    sh, sw = stride, stride if stride_w is None else stride_w
    for n in range(n_):
        for i in range(kh_):
            for j in range(kw_):
                patch = x[..., n, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
                a = _acc_add(a, patch[..., None, :, :] * w[:, n, i, j][:, None, None])
    return a.astype(np.int32)


def dw_accumulate(x, w, acc, stride: int, stride_w: int | None = None) -> np.ndarray:
    """Depthwise variant of :func:`conv_accumulate`: ``x (..., C, Hi, Wi)``, ``w (C, 1, kh, kw)``."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    a = np.asarray(acc, dtype=np.int64).copy()
    ho, wo = a.shape[-2:]
    sh, sw = stride, stride if stride_w is None else stride_w
    for i in range(w.shape[2]):
        for j in range(w.shape[3]):
            patch = x[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            a = _acc_add(a, patch * w[:, 0, i, j][:, None, None])
    return a.astype(np.int32)


def fc_accumulate(x, w, acc) -> np.ndarray:
    """``x (..., N)``, ``w (M, N)``, ``acc (..., M)``: saturating, n ascending."""
    x = np.asarray(x, dtype=np.int64)
    w = np.asarray(w, dtype=np.int64)
    a = np.asarray(acc, dtype=np.int64).copy()
    for n in range(w.shape[1]):
        a = _acc_add(a, x[..., n, None] * w[:, n])
    return a.astype(np.int32)


def pool_reference(x, kh: int, kw: int, stride, is_max: bool, relu: bool = False) -> np.ndarray:
    """Max or average pool of int16 ``x (..., C, H, W)`` (pad beforehand), floor output size;
    ``stride`` an int or ``(sh, sw)``."""
    x = np.asarray(x, dtype=np.int64)
    sh, sw = (stride, stride) if isinstance(stride, (int, np.integer)) else stride
    ho = (x.shape[-2] - kh) // sh + 1
    wo = (x.shape[-1] - kw) // sw + 1
    wins = [x[..., i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            for i in range(kh) for j in range(kw)]
    if is_max:
        y = np.max(np.stack(wins), axis=0)
    else:
        kk = kh * kw
        y = np.floor_divide(np.sum(np.stack(wins), axis=0) + kk // 2, kk)
    if relu:
        y = np.maximum(y, 0)
    return y.astype(np.int16)


# --------------------------------------------------------------------------- the Q model
@dataclass(frozen=True)
class QLayer:
    """One executed layer in fixed point.

    Attributes:
        geom: its geometry (see :class:`aidi.models.layers.LayerGeom`).
        w: int16 weights ``geom.weight_shape`` (None for pools).
        b: int32 biases ``(M,)`` (None for pools; zeros without a bias).
        s_in, s_w, s_out: fractional bits of input, weights and output.
        shift: ``k = s_in + s_w - s_out`` in [0, 31] (0 for pools; ``S - s_out`` for add).
        s_in2: fractional bits of an add's second input (= ``s_in`` otherwise).
        act_hi: the upper clamp of the output (``q(6.0, s_out)`` with relu6, else 32767).
    """

    geom: LayerGeom
    w: np.ndarray | None
    b: np.ndarray | None
    s_in: int
    s_w: int
    s_out: int
    shift: int
    s_in2: int | None = None
    act_hi: int = INT16_MAX

    @property
    def align(self) -> tuple[int, int]:
        """An add's left shifts of its two inputs ``(S - s_a, S - s_b)`` (0, 0 otherwise)."""
        if self.s_in2 is None:
            return (0, 0)
        big = max(self.s_in, self.s_in2)
        return big - self.s_in, big - self.s_in2


def act_hi_of(relu6: bool, s_out: int) -> int:
    """The relu6 clamp in Q format: ``q(6.0, s_out)`` (round half up, at most 32767); 32767 without relu6."""
    return int(q(6.0, s_out)) if relu6 else INT16_MAX


@dataclass(frozen=True)
class QModel:
    """A quantized network: executed layers, input format and calibration facts."""

    layers: tuple[QLayer, ...]
    input_shape: tuple[int, int, int]
    s_input: int
    net: Network | None = None
    float_accuracy: float | None = None
    calib_max: tuple[float, ...] = field(default=(), compare=False)

    @property
    def geoms(self) -> list[LayerGeom]:
        return [ql.geom for ql in self.layers]

    @property
    def output_shape(self) -> tuple[int, int, int]:
        return self.layers[-1].geom.out_shape

    @property
    def s_output(self) -> int:
        return self.layers[-1].s_out

    def quantize_input(self, x) -> np.ndarray:
        """Float input ``(C, H, W)`` or ``(B, C, H, W)`` -> int16 with ``s_input`` fractional bits."""
        return q(x, self.s_input)

    def dequantize_output(self, y) -> np.ndarray:
        return np.ldexp(np.asarray(y, dtype=np.float64), -self.s_output)


def _concat_formats(folded: Sequence, outs: list[np.ndarray]) -> dict[int, int]:
    """Fractional bits shared by the producers of each concat tensor: frac_bits of their largest |y|."""
    members: dict[int, list[int]] = {}
    for i, fl in enumerate(folded):
        members.setdefault(fl.geom.dst[0], []).append(i)
    return {t: frac_bits(max(float(np.abs(outs[i]).max()) if outs[i].size else 0.0 for i in idx))
            for t, idx in members.items() if len(idx) > 1}


class _PoolFormat(Exception):
    """A pool writing into a concat has its input's format, not the concat's (internal: the retry pins it)."""

    def __init__(self, tensor: int, s: int, layer: str):
        super().__init__(tensor, s, layer)
        self.tensor, self.s, self.layer = tensor, s, layer


def _quantize_layers(folded: Sequence, outs: list[np.ndarray], s_input: int, shared: dict[int, int]):
    s_tensor = {folded[0].geom.src[0][0]: s_input}  # fractional bits of each tensor
    layers, maxes = [], []
    for fl, y in zip(folded, outs):
        g = fl.geom
        s_ins = [s_tensor[t] for t, _ in g.src]
        s_in = s_ins[0]
        ymax = float(np.abs(y).max()) if y.size else 0.0
        maxes.append(ymax)
        want = shared.get(g.dst[0])
        if g.weighted:
            s_w = frac_bits(np.abs(fl.w).max())
            # the accumulator holds y and b with s_in + s_w fractional bits: keep the calibrated range in int32
            a_max = max(ymax, float(np.abs(fl.b).max()) if g.bias and fl.b.size else 0.0)
            if a_max > 0 and a_max * 2.0 ** (s_in + s_w) > INT32_MAX:
                s_w = max(S_MIN, int(np.floor(np.log2(INT32_MAX / a_max))) - s_in)
            s_out = frac_bits(ymax) if want is None else want
            s_out = min(max(s_out, s_in + s_w - K_MAX), s_in + s_w)
            w_q = q(fl.w, s_w)
            b_q = q32(fl.b, s_in + s_w) if g.bias else np.zeros(g.out_shape[0], np.int32)
            ql = QLayer(g, w_q, b_q, s_in, s_w, s_out, s_in + s_w - s_out, None, act_hi_of(g.relu6, s_out))
        elif len(s_ins) == 2:  # add
            big, small = max(s_ins), min(s_ins)
            if big - small > 15:
                raise ValueError(f"{g.describe()}: inputs with {s_ins[0]} and {s_ins[1]} fractional bits differ by "
                                 "more than 15 (their aligned sum would overflow int32)")
            s_out = frac_bits(ymax) if want is None else want
            s_out = min(max(s_out, big - K_MAX), big)
            ql = QLayer(g, None, None, s_ins[0], 0, s_out, big - s_out, s_ins[1], act_hi_of(g.relu6, s_out))
        else:
            s_out = s_in
            ql = QLayer(g, None, None, s_in, 0, s_out, 0, None, act_hi_of(g.relu6, s_out))
            if want is not None and s_out != want:
                raise _PoolFormat(g.dst[0], s_out, g.describe())
        if want is not None and s_out != want:
            raise ValueError(f"{g.describe()}: writes into a concat whose format has {want} fractional bits, but "
                             f"its shift range only reaches {s_out}")
        s_tensor[g.dst[0]] = s_out
        layers.append(ql)
    return layers, maxes


def quantize_folded(folded: Sequence, calib_x: np.ndarray, input_shape, net: Network | None = None,
                    float_accuracy: float | None = None) -> QModel:
    """Quantize folded float layers (:func:`aidi.models.net.fold`) with shifts from ``calib_x`` (B, C, H, W).

    A concat whose producers include a pool takes the pool's format (a pool keeps its input's).
    Raises ValueError naming the layer when a concat's producers cannot share one format (two pools of
    different formats, a conv whose shift range cannot reach it) or an add's inputs differ by more than
    15 fractional bits."""
    from .net import folded_forward

    calib_x = np.asarray(calib_x, dtype=np.float64)
    outs = folded_forward(folded, calib_x)
    s_input = frac_bits(np.abs(calib_x).max() if calib_x.size else 0.0)
    shared = _concat_formats(folded, outs)
    pinned: dict[int, str] = {}  # concat tensor -> the pool that fixed its format
    while True:
        try:
            layers, maxes = _quantize_layers(folded, outs, s_input, shared)
            break
        except _PoolFormat as e:
            if e.tensor in pinned:
                raise ValueError(f"{e.layer}: writes into a concat whose format {pinned[e.tensor]} fixed at "
                                 f"{shared[e.tensor]} fractional bits, but keeps its input's {e.s} (pools keep "
                                 "their input's format; put a conv before the concat)") from None
            shared[e.tensor] = e.s
            pinned[e.tensor] = e.layer
    return QModel(tuple(layers), tuple(input_shape), s_input, net, float_accuracy, tuple(maxes))


def quantize(trained, calib_x: np.ndarray | None = None, max_calib: int = 4096) -> QModel:
    """Quantize a :class:`aidi.models.net.TrainedModel`; calibration = its training split."""
    from .net import fold

    if calib_x is None:
        calib_x = trained.dataset.x_train[:max_calib]
    return quantize_folded(fold(trained), calib_x, trained.net.input_shape, trained.net, trained.float_accuracy)


def _pad(x: np.ndarray, pads) -> np.ndarray:
    pt, pl, pb, pr = pads
    if not any(pads):
        return x
    return np.pad(x, [(0, 0)] * (x.ndim - 2) + [(pt, pb), (pl, pr)])


def add_reference(a, b, align: tuple[int, int], k: int) -> np.ndarray:
    """int32 accumulators of a residual add: ``(a << align[0]) + (b << align[1])`` (exact, see above),
    then the output step is :func:`requantize_reference` with shift ``k``."""
    acc = np.left_shift(np.asarray(a, np.int64), align[0]) + np.left_shift(np.asarray(b, np.int64), align[1])
    return acc


def _clamp(y: np.ndarray, ql: "QLayer") -> np.ndarray:
    return np.minimum(y, ql.act_hi).astype(np.int16) if ql.act_hi < INT16_MAX else y


def forward_batch(qmodel: QModel, xb: np.ndarray) -> list[np.ndarray]:
    """Exact integer forward of a batch ``(B, C, H, W)`` int16; int16 output per executed layer.

    Tensors are flat ``(B, elements)`` int16 arrays, read and written through each layer's views."""
    from .layers import tensor_sizes
    from .ops import ADD, DWCONV, MAXPOOL

    x = np.asarray(xb, dtype=np.int16)
    b = x.shape[0]
    tensors = {t: np.zeros((b, n), np.int16) for t, n in tensor_sizes(qmodel.geoms).items()}
    tensors[qmodel.layers[0].geom.src[0][0]][:] = x.reshape(b, -1)  # tensor 0 (a sub-model: its input)
    outs = []
    for ql in qmodel.layers:
        g = ql.geom
        code = g.traits.code
        n_in = int(np.prod(g.in_shape))
        xs = [tensors[t][:, o:o + n_in].reshape(b, *g.in_shape) for t, o in g.src]
        if code == ADD:
            y = requantize_reference(add_reference(xs[0], xs[1], ql.align, ql.shift), ql.shift, g.relu)
        elif g.weighted:
            acc0 = np.broadcast_to(ql.b[None, :, None, None], (b, *g.out_shape)).astype(np.int32)
            xp = _pad(xs[0], g.pads)
            acc = (dw_accumulate if code == DWCONV else conv_accumulate)(xp, ql.w, acc0, g.sh, g.sw)
            y = requantize_reference(acc, ql.shift, g.relu or g.relu6)
        else:
            y = pool_reference(_pad(xs[0], g.pads), g.kh, g.kw, (g.sh, g.sw), code == MAXPOOL, g.relu or g.relu6)
        y = _clamp(y, ql)
        to, oo = g.dst
        tensors[to][:, oo:oo + y[0].size] = y.reshape(b, -1)
        outs.append(y)
    return outs


def reference_forward(qmodel: QModel, x_q: np.ndarray) -> list[np.ndarray]:
    """Exact integer forward of one input ``(C, H, W)`` int16; int16 ``(C, H, W)`` per executed layer."""
    x_q = np.asarray(x_q)
    if x_q.shape != tuple(qmodel.input_shape):
        raise ValueError(f"input shape {list(x_q.shape)} != model input {list(qmodel.input_shape)}")
    return [o[0] for o in forward_batch(qmodel, x_q[None])]


def q15_accuracy(qmodel: QModel, x: np.ndarray, y: np.ndarray, batch: int = 512) -> float:
    """Top-1 accuracy (fraction) of the integer model on float inputs ``x (B, C, H, W)``."""
    correct = 0
    for k in range(0, len(x), batch):
        out = forward_batch(qmodel, qmodel.quantize_input(x[k:k + batch]))[-1]
        correct += int((out.reshape(out.shape[0], -1).argmax(1) == y[k:k + batch]).sum())
    return correct / max(1, len(x))
