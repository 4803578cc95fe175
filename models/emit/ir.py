"""The emission IR: a frozen description of one quantised network and how it runs.

The IR is what the C emitter consumes.  It is deliberately close to
:class:`aidi.models.layers.LayerGeom` (same field names: ``op``, ``in_shape``,
``out_shape``, ``kh``, ``kw``, ``stride``, ``pad``, ``relu``) plus the Q15
parameters (int16 ``weight``, int32 ``bias``, right shift ``shift``) and the
execution design (:class:`ExecDesign`, same fields as
``aidi.models.tiling.ExecutionDesign``), so converting a quantised model is a
field-by-field copy (:func:`aidi.models.emit.convert.ir_from_qmodel`).

Q15 semantics (implemented by :mod:`.reference`, the numba kernels and the C
runtime, bit for bit):

* tensors are int16, CHW, batch 1;
* weighted layers (``conv``, ``pwconv``, ``fc``, ``dwconv``): an int32
  accumulator starts at the bias and adds each term ``(int32)x * (int32)w``
  with a *saturating* 32-bit add, in the canonical order input channel
  ascending, then kernel row, then kernel column; the output is
  ``sat16(rshift_round(acc, shift))``, then ``max(y, 0)`` with a fused ReLU;
  ``rshift_round(a, k) = a if k == 0 else ((a >> (k-1)) + 1) >> 1``
  (arithmetic shifts);
* ``fc`` is a 1x1 conv over the flattened CHW input ``(C*H*W, 1, 1)``,
  weights ``[M, C*H*W]``; ``pwconv`` is a 1x1 conv;
* ``maxpool`` is an int16 max; ``avgpool`` and ``gap`` sum in int32 and divide
  with ``floor((sum + kk // 2) / kk)`` (floor division), ``kk`` = window size;
* ``relu`` is ``max(x, 0)``.

Tiling (iNAS notation): a tile computes ``Tm`` output channels x ``Tr`` rows x
``Tc`` columns from ``Tn`` input channels; tiles are enumerated by the loop
order (:data:`LOOP_NESTS`); ``S`` consecutive tiles form one *unit* (a
hyper-tile) followed by one commit of the progress record.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, Mapping

import numpy as np

Shape = tuple[int, int, int]

#: every layer kind the IR accepts
KINDS = ("conv", "dwconv", "pwconv", "fc", "maxpool", "avgpool", "gap", "relu")
#: kinds with int16 weights, an int32 bias and a shift (accumulating kinds)
WEIGHTED = frozenset({"conv", "dwconv", "pwconv", "fc"})
#: kinds whose input channel is the output channel (no input-channel tiling, Tn = Tm)
CHANNEL_TIED = frozenset({"dwconv", "maxpool", "avgpool", "gap", "relu"})
LOOP_ORDERS = ("reuse_I", "reuse_W", "reuse_O")
#: tile loop nests, outermost first, over the tile coordinates r (rows), c (columns),
#: m (output channels), n (input channels)
LOOP_NESTS: dict[str, tuple[str, str, str, str]] = {
    "reuse_O": ("m", "r", "c", "n"),  # output stationary: n innermost, the output block stays in SRAM
    "reuse_I": ("r", "c", "n", "m"),  # input stationary: one input tile serves all output channels
    "reuse_W": ("m", "n", "r", "c"),  # weight stationary: one weight tile serves all positions
}
INT16_MIN, INT16_MAX = -(1 << 15), (1 << 15) - 1
INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


@dataclass(frozen=True)
class ExecDesign:
    """Execution design of one layer (iNAS): tile sizes, loop order, hyper-tile size.

    ``Tr``/``Tc`` tile the output rows/columns, ``Tm`` the output channels and
    ``Tn`` the input channels; ``S`` tiles are executed per commit.  Sizes
    larger than the layer are clipped when the layer is planned.
    """

    Tr: int = 1
    Tc: int = 1
    Tm: int = 1
    Tn: int = 1
    loop_order: str = "reuse_O"
    S: int = 1

    def __post_init__(self):
        for name in ("Tr", "Tc", "Tm", "Tn", "S"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"execution design: {name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))
        if self.loop_order not in LOOP_ORDERS:
            raise ValueError(f"execution design: loop_order must be one of {', '.join(LOOP_ORDERS)}, got {self.loop_order!r}")

    @classmethod
    def from_any(cls, d: Any) -> "ExecDesign":
        """From an ExecDesign, anything with attributes Tr, Tc, Tm, Tn, loop_order, S
        (e.g. ``aidi.models.tiling.ExecutionDesign``), a mapping with those keys, or None
        (the default: one output element per tile, one tile per commit)."""
        if d is None:
            return cls()
        if isinstance(d, cls):
            return d
        names = [f.name for f in fields(cls)]
        if isinstance(d, Mapping):
            unknown = sorted(set(d) - set(names))
            if unknown:
                raise ValueError(f"execution design: unknown key {unknown[0]!r} (allowed: {', '.join(names)})")
            return cls(**dict(d))
        try:
            return cls(**{n: getattr(d, n) for n in names})
        except AttributeError as e:
            raise ValueError(f"execution design: {type(d).__name__} lacks {e.name!r}") from None


@dataclass(frozen=True)
class Budgets:
    """Memory budgets the emitted firmware is checked against (bytes).

    ``fram_bytes`` defaults to the FRAM below 64 KB (0x4000-0xFF7F), all that the
    16-bit (small memory model) simulator build can address; ``sram_bytes`` is
    the budget for the tile buffers (the stack is reported separately).
    """

    fram_bytes: int = 0xFF80 - 0x4000
    sram_bytes: int = 4096


def _as_int_array(a: Any, lo: int, hi: int, what: str, dtype) -> np.ndarray:
    arr = np.asarray(a)
    if arr.dtype.kind not in "iu":
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{what}: expected integers, got dtype {arr.dtype}")
    if arr.size and (arr.min() < lo or arr.max() > hi):
        raise ValueError(f"{what}: values must lie in [{lo}, {hi}], got [{arr.min()}, {arr.max()}]")
    out = np.ascontiguousarray(arr, dtype=dtype).copy()
    out.setflags(write=False)
    return out


def _conv_out(h: int, w: int, kh: int, kw: int, stride: int, pad: int, what: str) -> tuple[int, int]:
    if h + 2 * pad < kh or w + 2 * pad < kw:
        raise ValueError(f"{what}: kernel {kh}x{kw} larger than padded input {h + 2 * pad}x{w + 2 * pad}")
    return (h + 2 * pad - kh) // stride + 1, (w + 2 * pad - kw) // stride + 1


@dataclass(frozen=True, eq=False)
class LayerIR:
    """One layer for emission.

    Attributes:
        op: one of :data:`KINDS`.
        in_shape: ``(C, H, W)`` of the input (``fc`` also accepts ``(C*H*W, 1, 1)``).
        kh, kw: kernel or pooling window (conv/dwconv: taken from ``weight``; gap: the
            whole input; pwconv/fc/relu: 1).
        stride, pad: stride and zero padding (padding only for conv/dwconv/pwconv).
        weight: int16; conv/pwconv ``[M, N, kh, kw]`` (pwconv also ``[M, N]``), dwconv
            ``[C, 1, kh, kw]`` (or ``[C, kh, kw]``), fc ``[M, C*H*W]``.
        bias: int32 ``[M]`` (zeros when omitted).
        shift: right shift with rounding applied to the accumulator (0..31).
        relu: fused ReLU on the output.
        design: the execution design.
        name: a label used in comments and reports.
        out_shape: derived; if given it must match.
    """

    op: str
    in_shape: Shape
    kh: int = 1
    kw: int = 1
    stride: int = 1
    pad: int = 0
    relu: bool = False
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    shift: int = 0
    design: ExecDesign = field(default_factory=ExecDesign)
    name: str = ""
    out_shape: Shape | None = None

    def __post_init__(self):
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731
        what = f"layer {self.name or self.op}"
        if self.op not in KINDS:
            raise ValueError(f"{what}: unknown op {self.op!r} (one of {', '.join(KINDS)})")
        shape = tuple(int(v) for v in self.in_shape)
        if len(shape) != 3 or min(shape) < 1:
            raise ValueError(f"{what}: in_shape must be (C, H, W) of positive integers, got {self.in_shape!r}")
        set_("in_shape", shape)
        set_("design", ExecDesign.from_any(self.design))
        for k in ("kh", "kw", "stride"):
            if int(getattr(self, k)) < 1:
                raise ValueError(f"{what}: {k} must be >= 1")
            set_(k, int(getattr(self, k)))
        set_("pad", int(self.pad))
        set_("relu", bool(self.relu))
        set_("shift", int(self.shift))
        if self.pad < 0:
            raise ValueError(f"{what}: pad must be >= 0")
        c, h, w = shape
        op = self.op
        if op in WEIGHTED:
            if self.weight is None:
                raise ValueError(f"{what}: weight is required")
            wt = _as_int_array(self.weight, INT16_MIN, INT16_MAX, f"{what} weight", np.int16)
            if op == "fc":
                n = c * h * w
                if wt.ndim == 4 and wt.shape[2:] == (1, 1):
                    wt = wt.reshape(wt.shape[0], wt.shape[1])
                if wt.ndim != 2 or wt.shape[1] != n:
                    raise ValueError(f"{what}: fc weight must be [M, {n}], got {list(wt.shape)}")
                wt = wt.reshape(wt.shape[0], n, 1, 1)
            elif op == "pwconv":
                if wt.ndim == 2:
                    wt = wt.reshape(wt.shape[0], wt.shape[1], 1, 1)
                if wt.ndim != 4 or wt.shape[1] != c or wt.shape[2:] != (1, 1):
                    raise ValueError(f"{what}: pwconv weight must be [M, {c}] or [M, {c}, 1, 1], got {list(wt.shape)}")
            elif op == "dwconv":
                if wt.ndim == 3:
                    wt = wt.reshape(wt.shape[0], 1, wt.shape[1], wt.shape[2])
                if wt.ndim != 4 or wt.shape[0] != c or wt.shape[1] != 1:
                    raise ValueError(f"{what}: dwconv weight must be [{c}, 1, kh, kw], got {list(wt.shape)}")
            else:
                if wt.ndim != 4 or wt.shape[1] != c:
                    raise ValueError(f"{what}: conv weight must be [M, {c}, kh, kw], got {list(wt.shape)}")
            if wt.shape[0] < 1:
                raise ValueError(f"{what}: weight has no output channels")
            wt.setflags(write=False)
            set_("weight", wt)
            if op in ("conv", "dwconv"):
                set_("kh", wt.shape[2])
                set_("kw", wt.shape[3])
            else:
                set_("kh", 1)
                set_("kw", 1)
            m = wt.shape[0]
            b = np.zeros(m, np.int32) if self.bias is None else self.bias
            b = _as_int_array(b, INT32_MIN, INT32_MAX, f"{what} bias", np.int32).reshape(-1)
            if b.shape != (m,):
                raise ValueError(f"{what}: bias must have {m} entries, got {b.size}")
            set_("bias", b)
            if not 0 <= self.shift <= 31:
                raise ValueError(f"{what}: shift must lie in [0, 31], got {self.shift}")
            if op in ("fc", "pwconv") and self.pad:
                raise ValueError(f"{what}: {op} takes no padding")
            if op == "fc" and self.stride != 1:
                raise ValueError(f"{what}: fc takes no stride")
        else:
            if self.weight is not None or self.bias is not None:
                raise ValueError(f"{what}: {op} takes no weight or bias")
            if self.shift:
                raise ValueError(f"{what}: {op} takes no shift")
            if self.pad:
                raise ValueError(f"{what}: {op} takes no padding")
            if op == "gap":
                set_("kh", h)
                set_("kw", w)
                set_("stride", 1)
            elif op == "relu":
                set_("kh", 1)
                set_("kw", 1)
                set_("stride", 1)
            if op in ("avgpool", "gap") and self.kh * self.kw > 65535:
                raise ValueError(f"{what}: pooling window larger than 65535 elements")
        # output shape
        if op == "fc":
            out = (self.weight.shape[0], 1, 1)
        else:
            ho, wo = _conv_out(h, w, self.kh, self.kw, self.stride, self.pad, what)
            mo = self.weight.shape[0] if op in ("conv", "pwconv") else c
            out = (mo, ho, wo)
        if self.out_shape is not None and tuple(int(v) for v in self.out_shape) != out:
            raise ValueError(f"{what}: out_shape {tuple(self.out_shape)} does not match the computed {out}")
        set_("out_shape", out)

    # ---- views used by the reference and the emitter
    @property
    def weighted(self) -> bool:
        return self.op in WEIGHTED

    @property
    def channel_tied(self) -> bool:
        return self.op in CHANNEL_TIED

    @property
    def kernel_in_shape(self) -> Shape:
        """Input shape as the kernels see it (fc: ``(C*H*W, 1, 1)``)."""
        if self.op == "fc":
            c, h, w = self.in_shape
            return (c * h * w, 1, 1)
        return self.in_shape

    def with_design(self, design: Any) -> "LayerIR":
        return replace(self, design=ExecDesign.from_any(design), out_shape=None)


@dataclass(frozen=True, eq=False)
class NetworkIR:
    """A network for emission: input sample, layers, budgets."""

    input: np.ndarray
    layers: tuple[LayerIR, ...]
    budgets: Budgets = field(default_factory=Budgets)
    name: str = "aidi_net"

    def __post_init__(self):
        x = _as_int_array(self.input, INT16_MIN, INT16_MAX, "network input", np.int16)
        if x.ndim != 3:
            raise ValueError(f"network input must be [C, H, W], got shape {list(x.shape)}")
        object.__setattr__(self, "input", x)
        layers = tuple(self.layers)
        if not layers:
            raise ValueError("network: at least one layer is required")
        shape = tuple(x.shape)
        for i, layer in enumerate(layers):
            if not isinstance(layer, LayerIR):
                raise ValueError(f"network layer {i}: expected LayerIR, got {type(layer).__name__}")
            ok = layer.in_shape == shape or (layer.op == "fc" and layer.kernel_in_shape[0] == int(np.prod(shape)))
            if not ok:
                raise ValueError(f"network layer {i} ({layer.op}): in_shape {layer.in_shape} does not match "
                                 f"the previous output {shape}")
            shape = layer.out_shape
        object.__setattr__(self, "layers", layers)
        if not self.name.isidentifier():
            raise ValueError(f"network name must be a C identifier, got {self.name!r}")

    @property
    def input_shape(self) -> Shape:
        return tuple(self.input.shape)  # type: ignore[return-value]

    @property
    def output_shape(self) -> Shape:
        return self.layers[-1].out_shape  # type: ignore[return-value]

    @property
    def output_len(self) -> int:
        return int(np.prod(self.output_shape))


# --------------------------------------------------------------------------- planning
@dataclass(frozen=True)
class LayerPlan:
    """How one layer is executed: effective tile sizes, counts and buffer sizes.

    Everything the C runtime needs about a layer's schedule is computed here once,
    so Python (cost reports, tests) and C agree by construction.
    """

    in_c: int  # kernel view (fc: C*H*W, 1, 1)
    in_h: int
    in_w: int
    out_c: int
    out_h: int
    out_w: int
    tr: int  # effective tile sizes (clipped to the layer)
    tc: int
    tm: int
    tn: int  # input channels per tile (channel-tied kinds: = tm)
    nr: int  # tile counts
    nc: int
    nm: int
    nn: int
    order: tuple[str, str, str, str]
    S: int
    n_tiles: int
    n_units: int
    stride_n: int  # distance in the tile sequence between consecutive input-channel tiles of one block
    tri: int  # input tile rows / columns
    tci: int
    in_buf: int  # SRAM elements (int16) of the input tile
    w_stride: int  # int16 elements per output channel in the weight tile (even, for LEA)
    w_buf: int  # SRAM elements (int16) of the weight tile
    acc_buf: int  # SRAM elements (int32) of the accumulator tile
    psum_elems: int  # int32 elements per partial-sum slot in FRAM (0 without input-channel tiling)
    macs: int

    @property
    def sram_bytes(self) -> int:
        return 2 * self.in_buf + 2 * self.w_buf + 4 * self.acc_buf


def plan_layer(layer: LayerIR) -> LayerPlan:
    """Clip the design to the layer and derive tile counts, strides and buffer sizes."""
    d = layer.design
    in_c, in_h, in_w = layer.kernel_in_shape
    out_c, out_h, out_w = layer.out_shape
    tr, tc, tm = min(d.Tr, out_h), min(d.Tc, out_w), min(d.Tm, out_c)
    if layer.channel_tied:
        tn, nn = tm, 1
    else:
        tn = min(d.Tn, in_c)
        nn = -(-in_c // tn)
    nr, nc, nm = -(-out_h // tr), -(-out_w // tc), -(-out_c // tm)
    counts = {"r": nr, "c": nc, "m": nm, "n": nn}
    order = LOOP_NESTS[d.loop_order]
    n_tiles = nr * nc * nm * nn
    S = min(d.S, n_tiles)
    n_units = -(-n_tiles // S)
    stride_n = 1
    for dim in order[order.index("n") + 1:]:
        stride_n *= counts[dim]
    tri = (tr - 1) * layer.stride + layer.kh
    tci = (tc - 1) * layer.stride + layer.kw
    weighted = layer.weighted
    if weighted:
        per_m = layer.kh * layer.kw * (1 if layer.op == "dwconv" else tn)
        w_stride = per_m + (per_m & 1)
    else:
        w_stride = 0
    window = layer.kh * layer.kw * (1 if layer.channel_tied else in_c)
    return LayerPlan(
        in_c=in_c, in_h=in_h, in_w=in_w, out_c=out_c, out_h=out_h, out_w=out_w,
        tr=tr, tc=tc, tm=tm, tn=tn, nr=nr, nc=nc, nm=nm, nn=nn, order=order, S=S,
        n_tiles=n_tiles, n_units=n_units, stride_n=stride_n, tri=tri, tci=tci,
        in_buf=tn * tri * tci, w_stride=w_stride, w_buf=tm * w_stride,
        acc_buf=tm * tr * tc if weighted else 0,
        psum_elems=out_c * out_h * out_w if (weighted and nn > 1) else 0,
        macs=out_c * out_h * out_w * window,
    )


def plan_network(ir: NetworkIR) -> list[LayerPlan]:
    return [plan_layer(layer) for layer in ir.layers]


def memory_estimate(ir: NetworkIR) -> dict[str, int]:
    """Data bytes the runtime allocates (code excluded): FRAM and SRAM tile buffers."""
    plans = plan_network(ir)
    acts = [int(np.prod(layer.out_shape)) for layer in ir.layers]
    inner = acts[:-1]
    act_buf = max(inner) if inner else 0
    weights = sum(2 * layer.weight.size + 4 * layer.bias.size for layer in ir.layers if layer.weighted)
    psum = max(p.psum_elems for p in plans)
    sram = (2 * max(p.in_buf for p in plans) + 2 * max(p.w_buf for p in plans)
            + 4 * max(p.acc_buf for p in plans))
    return {
        "fram_weights": weights,
        "fram_input": 2 * ir.input.size,
        "fram_activations": 2 * act_buf * min(2, len(inner)) + 2 * acts[-1],
        "fram_psum": 2 * 4 * psum,
        "fram_progress": 16,
        "sram_buffers": sram,
    }


def block_version(t: int, ni: int, stride: int, u: int, S: int) -> int:
    """k = number of units before unit ``u`` that touched the output block of tile ``t``.

    ``ni`` is the tile's input-channel index, ``stride`` (``LayerPlan.stride_n``) the
    distance between the block's consecutive input-channel tiles, ``S`` the tiles per
    unit.  The block's committed partial sum lives in FRAM slot ``k % 2`` and unit
    ``u`` writes slot ``(k + 1) % 2``.  Mirrors ``aidi_block_version`` in the C runtime.
    """
    if ni == 0:
        return 0
    if stride >= S:
        return ni
    return u - (t - ni * stride) // S
