"""Layer specifications: parsing, validation, shape inference and folding.

A scenario's ``[model]`` table lists layers as dicts, e.g.::

    input = [1, 8, 8]
    layers = [
      {type = "conv", k = 3, filters = 8, stride = 1, padding = 0, relu = true},
      {type = "maxpool", k = 2},
      {type = "fc", units = 10},
    ]

Layer types and their keys (defaults in brackets):

==========  ===================================================================
conv        k, filters, stride [1], padding [0], relu [false], relu6 [false], bias [true]
dwconv      depthwise (one kh x kw filter per channel, multiplier 1):
            k, stride [1], padding [0], relu [false], relu6 [false], bias [true]
pwconv      pointwise 1x1 conv: filters, stride [1], relu [false], bias [true]
fc          fully connected over the flattened CHW input: units, relu [false], bias [true]
maxpool     k, stride [k], padding [0] (zeros: equal to -inf padding on inputs >= 0, e.g. after a ReLU)
avgpool     k, stride [k], padding [0] (zeros counted in the window, ONNX count_include_pad=1)
gap         global average pool: [C, H, W] -> [C, 1, 1]
relu        standalone ReLU
bn          batch norm (eps [1e-5]); must directly follow conv/dwconv/pwconv/fc
add         element-wise sum of two tensors of equal shape: inputs = [a, b], relu [false], relu6 [false]
concat      along channels (H and W must match): inputs = [a, b, ...]
==========  ===================================================================

Kernels ``k = 3`` (square) or ``k = [kh, kw]``; strides ``stride = 1`` or
``[sh, sw]``; padding ``0 | "valid" | "same" | [top, left, bottom, right]``
(``"same"``: ``k - 1`` zeros per axis, the odd one at the end, ONNX
SAME_UPPER at stride 1).  A 1-D convolution on ``[C, 1, L]`` is a conv with
``k = [1, kl]``.  ``relu6 = true`` clamps to [0, 6] in real units (ONNX
``Clip(0, 6)``).

The graph form (/work/shared/DESIGN.md): every layer may carry
``name = "b1"`` (default ``"L<index>"``, unique, ``"input"`` is the network
input) and ``inputs = ["b1", "b3"]`` (default: the previous layer, or the
network input for layer 0); only ``add`` and ``concat`` take more than one.
Inputs must name earlier layers (the list is in execution order), every
layer but the last must be used, and the last layer is the output.  A
chain without names or inputs is exactly today's format.

Shapes are ``(C, H, W)`` (channels, rows, columns), batch 1.

Ordering convention for ``relu = true`` on a weighted layer followed by ``bn``:
the layer computes conv -> bn -> relu (the flag belongs to the block), so BN
is always foldable into the weighted layer before export.

:func:`geometry` turns a :class:`Network` into the list of *executed* layers
(:class:`LayerGeom`): BN folded into the preceding weighted layer, standalone
ReLUs fused into the preceding layer's output step, ``pwconv`` as a 1x1
``conv``, ``fc`` as a 1x1 conv over the flattened input ``(C*H*W, 1, 1)``,
``gap`` as an ``avgpool`` with a full window, and ``concat`` as no layer at
all: its producers write into channel slices of one tensor.  Tensors are
numbered (0 = the network input); every executed layer reads ``src`` and
writes ``dst``, views ``(tensor, element offset)`` into them (a channel slice
of a CHW tensor is a contiguous range).  Those are the layers the Q15 model,
the tiler and the C emitter see; their traits are in :mod:`aidi.models.ops`.

Bad specs raise :class:`ValueError` with a one-line message naming the layer
index, the type and the key.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, ClassVar, Mapping, Sequence

Shape = tuple[int, int, int]

#: bounds of a network description (beyond any MSP430's 256 KB FRAM, well within a host's memory):
#: every integer key (k, filters, units, stride, padding, input dims) at most MAX_INT, at most
#: MAX_ELEMENTS weights per layer and values per layer output / input.
MAX_INT = 65535
MAX_ELEMENTS = 2**22


class _Kind:
    """Value kinds of spec keys (used for validation only)."""

    POS_INT = "a positive integer"
    NONNEG_INT = "a non-negative integer"
    BOOL = "true or false"
    KERNEL = "a positive integer or [kh, kw]"
    STRIDE = "a positive integer or [sh, sw]"
    PADDING = 'a non-negative integer, "valid", "same" or [top, left, bottom, right]'
    POS_FLOAT = "a positive number"
    NAME = "a non-empty string"
    INPUTS = "a list of layer names"


def _key(kind: str, default: Any = MISSING):
    return field(default=default, metadata={"kind": kind})


def _graph_key(kind: str, default: Any):
    return field(default=default, kw_only=True, metadata={"kind": kind})


#: keys left out of :meth:`LayerSpec.to_dict` at their defaults (a chain's dicts, and so its cache keys,
#: stay what they were before the graph form)
_OMIT_AT_DEFAULT = ("name", "inputs", "relu6")


@dataclass(frozen=True)
class LayerSpec:
    """Base class of layer specs.  ``type`` is the scenario's ``type`` string.

    ``name`` ("" = ``L<index>``) and ``inputs`` (() = the previous layer) are the graph form's keys.
    """

    type: ClassVar[str] = ""
    weighted: ClassVar[bool] = False
    #: input tensors the layer takes: (least, most)
    arity: ClassVar[tuple[int, int]] = (1, 1)
    name: str = _graph_key(_Kind.NAME, "")
    inputs: tuple[str, ...] = _graph_key(_Kind.INPUTS, ())

    def to_dict(self) -> dict:
        """The spec as a scenario dict (``type`` first, all keys explicit but the graph keys at defaults)."""
        d = {"type": self.type}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in _OMIT_AT_DEFAULT and v == f.default:
                continue
            d[f.name] = list(v) if isinstance(v, tuple) else v
        return d

    def out_shape(self, shape: Shape, index: int) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def out_shape_of(self, shapes: Sequence[Shape], index: int) -> Shape:
        """Output shape from the input shapes (one per input)."""
        return self.out_shape(shapes[0], index)

    def _err(self, index: int, msg: str) -> ValueError:
        return ValueError(f"layer {index} ({self.type}): {msg}")


def pair_of(v) -> tuple[int, int]:
    """``(kh, kw)`` / ``(sh, sw)`` of a square int or a pair."""
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def pads_of(padding, kh: int, kw: int) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of a parsed padding (int, or 4-tuple)."""
    if isinstance(padding, int):
        return (padding,) * 4
    return tuple(int(p) for p in padding)  # type: ignore[return-value]


def _conv_out(spec, shape: Shape, index: int, k, stride, padding) -> tuple[int, int]:
    c, h, w = shape
    kh, kw = pair_of(k)
    sh, sw = pair_of(stride)
    pt, pl, pb, pr = pads_of(padding, kh, kw)
    hp, wp = h + pt + pb, w + pl + pr
    if hp < kh or wp < kw:
        raise spec._err(index, f"kernel {kh}x{kw} (rows x columns) larger than padded input {hp}x{wp} "
                               f"(input shape {list(shape)}; kernels may be rectangular: k = [kh, kw])")
    return (hp - kh) // sh + 1, (wp - kw) // sw + 1


@dataclass(frozen=True)
class Conv(LayerSpec):
    """Standard 2-D convolution, ``filters`` output channels, ``kh`` x ``kw`` kernel (``k`` int or pair)."""

    type: ClassVar[str] = "conv"
    weighted: ClassVar[bool] = True
    k: int | tuple[int, int] = _key(_Kind.KERNEL)
    filters: int = _key(_Kind.POS_INT)
    stride: int | tuple[int, int] = _key(_Kind.STRIDE, 1)
    padding: int | tuple[int, int, int, int] = _key(_Kind.PADDING, 0)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)
    relu6: bool = _key(_Kind.BOOL, False)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, self.padding)
        return (self.filters, ho, wo)


@dataclass(frozen=True)
class DWConv(LayerSpec):
    """Depthwise convolution: one ``kh`` x ``kw`` filter per input channel (multiplier 1)."""

    type: ClassVar[str] = "dwconv"
    weighted: ClassVar[bool] = True
    k: int | tuple[int, int] = _key(_Kind.KERNEL)
    stride: int | tuple[int, int] = _key(_Kind.STRIDE, 1)
    padding: int | tuple[int, int, int, int] = _key(_Kind.PADDING, 0)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)
    relu6: bool = _key(_Kind.BOOL, False)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, self.padding)
        return (shape[0], ho, wo)


@dataclass(frozen=True)
class PWConv(LayerSpec):
    """Pointwise (1x1) convolution."""

    type: ClassVar[str] = "pwconv"
    weighted: ClassVar[bool] = True
    filters: int = _key(_Kind.POS_INT)
    stride: int | tuple[int, int] = _key(_Kind.STRIDE, 1)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)
    relu6: bool = _key(_Kind.BOOL, False)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, 1, self.stride, 0)
        return (self.filters, ho, wo)


@dataclass(frozen=True)
class FC(LayerSpec):
    """Fully connected layer over the flattened CHW input; output ``(units, 1, 1)``."""

    type: ClassVar[str] = "fc"
    weighted: ClassVar[bool] = True
    units: int = _key(_Kind.POS_INT)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)
    relu6: bool = _key(_Kind.BOOL, False)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        return (self.units, 1, 1)


@dataclass(frozen=True)
class MaxPool(LayerSpec):
    """Max pooling, ``kh`` x ``kw`` window, zero padding, floor output size."""

    type: ClassVar[str] = "maxpool"
    k: int | tuple[int, int] = _key(_Kind.KERNEL)
    stride: int | tuple[int, int] = _key(_Kind.STRIDE, 0)  # absent -> k
    relu: bool = _key(_Kind.BOOL, False)
    padding: int | tuple[int, int, int, int] = _key(_Kind.PADDING, 0)
    relu6: bool = _key(_Kind.BOOL, False)

    def __post_init__(self):
        if self.stride == 0:
            object.__setattr__(self, "stride", self.k)

    def to_dict(self) -> dict:
        d = super().to_dict()
        if d.get("padding") == 0:  # the key pools gained with the graph form: chains keep their dicts
            del d["padding"]
        return d

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, self.padding)
        return (shape[0], ho, wo)


@dataclass(frozen=True)
class AvgPool(MaxPool):
    """Average pooling, ``kh`` x ``kw`` window, zero padding counted in the window, floor output size."""

    type: ClassVar[str] = "avgpool"


@dataclass(frozen=True)
class GAP(LayerSpec):
    """Global average pooling ``(C, H, W) -> (C, 1, 1)``."""

    type: ClassVar[str] = "gap"
    relu: bool = _key(_Kind.BOOL, False)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        return (shape[0], 1, 1)


@dataclass(frozen=True)
class ReLU(LayerSpec):
    """Standalone ReLU (fused into the preceding layer on export)."""

    type: ClassVar[str] = "relu"

    def out_shape(self, shape: Shape, index: int) -> Shape:
        return shape


@dataclass(frozen=True)
class BN(LayerSpec):
    """Batch normalisation, folded into the preceding weighted layer on export."""

    type: ClassVar[str] = "bn"
    eps: float = _key(_Kind.POS_FLOAT, 1e-5)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        return shape


@dataclass(frozen=True)
class Add(LayerSpec):
    """Element-wise sum of two tensors of equal shape (residual connection), optional fused ReLU / ReLU6."""

    type: ClassVar[str] = "add"
    arity: ClassVar[tuple[int, int]] = (2, 2)
    relu: bool = _key(_Kind.BOOL, False)
    relu6: bool = _key(_Kind.BOOL, False)

    def out_shape_of(self, shapes: Sequence[Shape], index: int) -> Shape:
        if shapes[0] != shapes[1]:
            raise self._err(index, f"inputs of different shapes {list(shapes[0])} and {list(shapes[1])}")
        return shapes[0]


@dataclass(frozen=True)
class Concat(LayerSpec):
    """Concatenation along channels (H and W must match); executed as no layer (see :func:`geometry`)."""

    type: ClassVar[str] = "concat"
    arity: ClassVar[tuple[int, int]] = (2, MAX_INT)

    def out_shape_of(self, shapes: Sequence[Shape], index: int) -> Shape:
        hw = {s[1:] for s in shapes}
        if len(hw) != 1:
            raise self._err(index, f"inputs of different H x W {[list(s) for s in shapes]} (concat is along channels)")
        return (sum(s[0] for s in shapes), shapes[0][1], shapes[0][2])


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.type: cls for cls in (Conv, DWConv, PWConv, FC, MaxPool, AvgPool, GAP, ReLU, BN, Add, Concat)
}


def _coerce(index: int, type_: str, key: str, kind: str, value: Any, spec_k: Any) -> Any:
    given = value

    def bad() -> ValueError:
        return ValueError(f"layer {index} ({type_}): key '{key}' must be {kind}, got {given!r}")

    def one_int(v, least: int) -> int:
        if isinstance(v, bool):
            raise bad()
        if isinstance(v, float) and v.is_integer():
            v = int(v)
        if not isinstance(v, int) or v > MAX_INT or v < least:
            raise ValueError(f"layer {index} ({type_}): key '{key}' must be {kind} at most {MAX_INT}, got {given!r}")
        return v

    def ints(n: int, least: int):
        if isinstance(value, (list, tuple)):
            if len(value) != n:
                raise bad()
            return tuple(one_int(v, least) for v in value)
        return one_int(value, least)

    if kind == _Kind.BOOL:
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind == _Kind.POS_FLOAT:
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                or not math.isfinite(value)):
            raise bad()
        return float(value)
    if kind == _Kind.NAME:
        if not isinstance(value, str) or not value:
            raise bad()
        return value
    if kind == _Kind.INPUTS:
        if isinstance(value, str) or not isinstance(value, (list, tuple)) or not value \
                or not all(isinstance(v, str) and v for v in value):
            raise bad()
        return tuple(value)
    if kind in (_Kind.KERNEL, _Kind.STRIDE):
        return ints(2, 1)
    if kind == _Kind.PADDING and isinstance(value, str):
        if value == "valid":
            return 0
        if value == "same":
            kh, kw = pair_of(spec_k) if isinstance(spec_k, (int, list, tuple)) and not isinstance(spec_k, bool) \
                else (None, None)
            if kh is None:
                raise ValueError(f"layer {index} ({type_}): padding 'same' needs a kernel k, got k={spec_k!r}")
            if kh % 2 and kw % 2 and kh == kw:
                return (kh - 1) // 2  # symmetric: today's form
            return ((kh - 1) // 2, (kw - 1) // 2, kh - 1 - (kh - 1) // 2, kw - 1 - (kw - 1) // 2)
        raise bad()
    if kind == _Kind.PADDING:
        return ints(4, 0)
    return one_int(value, 1 if kind == _Kind.POS_INT else 0)


def parse_layer(d: Mapping[str, Any], index: int) -> LayerSpec:
    """Parse one layer dict into its frozen spec. Raises ValueError naming index and key."""
    if isinstance(d, LayerSpec):
        return d
    if not isinstance(d, Mapping):
        raise ValueError(f"layer {index}: expected a table like {{type = \"conv\", ...}}, got {type(d).__name__}")
    if "type" not in d:
        raise ValueError(f"layer {index}: missing key 'type' (one of {', '.join(LAYER_TYPES)})")
    t = d["type"]
    if t not in LAYER_TYPES:
        raise ValueError(f"layer {index}: unknown type {t!r} (one of {', '.join(LAYER_TYPES)})")
    cls = LAYER_TYPES[t]
    flds = {f.name: f for f in fields(cls)}
    unknown = sorted(set(d) - set(flds) - {"type"})
    if unknown:
        raise ValueError(
            f"layer {index} ({t}): unknown key '{unknown[0]}' (allowed: {', '.join(sorted(flds)) or 'none'})"
        )
    kwargs = {}
    for name, f in flds.items():
        if name in d:
            kwargs[name] = _coerce(index, t, name, f.metadata["kind"], d[name], d.get("k"))
        elif f.default is MISSING:
            raise ValueError(f"layer {index} ({t}): missing key '{name}'")
    for key in ("k", "stride"):  # [3, 3] is 3: one spelling per architecture
        v = kwargs.get(key)
        if isinstance(v, tuple) and v[0] == v[1]:
            kwargs[key] = v[0]
    if isinstance(kwargs.get("padding"), tuple) and len(set(kwargs["padding"])) == 1:
        kwargs["padding"] = kwargs["padding"][0]
    spec = cls(**kwargs)
    if "padding" in flds:
        kh, kw = pair_of(spec.k)
        pads = pads_of(spec.padding, kh, kw)
        for p, kk, axis in zip(pads, (kh, kw, kh, kw), ("top", "left", "bottom", "right")):
            if p and p >= kk:
                raise ValueError(f"layer {index} ({t}): key 'padding' ({axis} {p}) must be smaller than the "
                                 f"kernel's {kk}")
    if getattr(spec, "relu6", False) and getattr(spec, "relu", False):
        raise ValueError(f"layer {index} ({t}): relu and relu6 both set (relu6 already clamps at 0)")
    n_in = len(spec.inputs)
    lo, hi = cls.arity
    if n_in and not lo <= n_in <= hi or (not n_in and lo > 1):
        want = f"{lo}" if lo == hi else f"at least {lo}"
        raise ValueError(f"layer {index} ({t}): key 'inputs' must name {want} layer{'s' * (lo > 1)}, got "
                         f"{list(spec.inputs) or 'none'}")
    return spec


INPUT_NAME = "input"


@dataclass(frozen=True)
class Network:
    """A parsed, shape-checked network: input shape and layer specs (a chain, or a graph by names)."""

    input_shape: Shape
    layers: tuple[LayerSpec, ...]

    @property
    def names(self) -> list[str]:
        """Each layer's name (``L<index>`` unless named)."""
        return [s.name or f"L{i}" for i, s in enumerate(self.layers)]

    @property
    def inputs(self) -> list[tuple[int, ...]]:
        """Each layer's input layers by index (-1: the network input); ValueError on a bad reference."""
        seen: dict[str, int] = {}
        out = []
        for i, (s, name) in enumerate(zip(self.layers, self.names)):
            if name == INPUT_NAME or name in seen:
                why = "is reserved for the network input" if name == INPUT_NAME else f"is taken by layer {seen[name]}"
                raise ValueError(f"layer {i} ({s.type}): key 'name' {name!r} {why}")
            if s.inputs:
                refs = []
                for ref in s.inputs:
                    if ref != INPUT_NAME and ref not in seen:
                        later = ref in self.names
                        raise ValueError(f"layer {i} ({s.type}): key 'inputs' names {ref!r}, "
                                         + ("a later layer (list layers in execution order)" if later
                                            else f"which is no layer (known: {', '.join([INPUT_NAME, *seen])})"))
                    refs.append(-1 if ref == INPUT_NAME else seen[ref])
                out.append(tuple(refs))
            else:
                out.append((i - 1,))
            seen[name] = i
        return out

    @property
    def shapes(self) -> list[Shape]:
        """Output shape of every layer (same length as :attr:`layers`)."""
        out: list[Shape] = []
        for i, (layer, ins) in enumerate(zip(self.layers, self.inputs)):
            out.append(layer.out_shape_of([self.input_shape if j < 0 else out[j] for j in ins], i))
        return out

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1] if self.layers else self.input_shape

    @property
    def is_chain(self) -> bool:
        """Every layer reads the previous one (today's format)."""
        return all(ins == (i - 1,) for i, ins in enumerate(self.inputs))

    def to_dicts(self) -> list[dict]:
        return [layer.to_dict() for layer in self.layers]

    def key(self) -> str:
        """A stable hex id of the architecture (input shape and layers)."""
        blob = json.dumps({"input": list(self.input_shape), "layers": self.to_dicts()}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _parse_shape(input_shape: Sequence[int]) -> Shape:
    try:
        shape = tuple(input_shape)
    except TypeError:
        raise ValueError(f"model input must be [C, H, W], got {input_shape!r}") from None
    if len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in shape):
        raise ValueError(f"model input must be [C, H, W] of positive integers, got {list(shape)!r}")
    if max(shape) > MAX_INT or math.prod(shape) > MAX_ELEMENTS:
        raise ValueError(f"model input {list(shape)!r} is too large (each of C, H, W at most {MAX_INT}, "
                         f"C*H*W at most {MAX_ELEMENTS})")
    return shape  # type: ignore[return-value]


def parse_network(layers: Sequence[Mapping[str, Any] | LayerSpec] | Network, input_shape: Sequence[int] | None = None) -> Network:
    """Parse and validate a layer list against an input shape ``[C, H, W]``.

    Checks: known types and keys, value kinds, kernels that fit, names and inputs
    (unique, earlier layers, every layer used), BN placement (directly after a
    weighted layer), ReLU not first, concat placement, at least one layer.
    Raises ValueError with the offending layer index and key.
    """
    if isinstance(layers, Network):
        return layers
    if input_shape is None:
        raise ValueError("model input shape [C, H, W] is required")
    shape = _parse_shape(input_shape)
    if isinstance(layers, (str, bytes)) or not isinstance(layers, Sequence):
        raise ValueError(f"model layers must be a list of tables, got {type(layers).__name__}")
    if len(layers) == 0:
        raise ValueError("model layers: at least one layer is required")
    specs = tuple(parse_layer(d, i) for i, d in enumerate(layers))
    net = Network(shape, specs)
    ins = net.inputs
    for i, s in enumerate(specs):
        if isinstance(s, BN) and (ins[i][0] != i - 1 or ins[i][0] < 0 or not specs[ins[i][0]].weighted):
            prev = specs[ins[i][0]].type if ins[i][0] >= 0 else "the input"
            raise ValueError(f"layer {i} (bn): bn must directly follow conv/dwconv/pwconv/fc, not {prev}")
        if isinstance(s, ReLU) and ins[i][0] < 0:
            raise ValueError(f"layer {i} (relu): relu must follow another layer")
    net.shapes  # shape inference raises on bad kernels
    for g in geometry(net):
        for what, n in (("weights", math.prod(g.weight_shape)), ("output values", math.prod(g.out_shape))):
            if n > MAX_ELEMENTS:
                i = g.spec_indices[0]
                raise ValueError(f"layer {i} ({net.layers[i].type}): {n} {what}, more than {MAX_ELEMENTS} (far beyond "
                                 "the device's memory)")
    return net


# --------------------------------------------------------------------------- geometry
#: executed operations (after folding); their traits are the rows of :data:`aidi.models.ops.OPS`
OPS = ("conv", "dwconv", "fc", "maxpool", "avgpool", "add")

#: a view into a tensor: (tensor id, element offset); tensor 0 is the network input
View = tuple[int, int]


@dataclass(frozen=True)
class LayerGeom:
    """Geometry of one executed layer (BN folded, ReLU fused): a node of the tensor graph.

    Attributes:
        index: position among executed layers (execution order).
        op: one of :data:`OPS` (traits: :data:`aidi.models.ops.OPS`).  ``fc`` is a 1x1 conv over
            ``in_shape = (C*H*W, 1, 1)``.
        name: the spec type it came from (``conv``, ``pwconv``, ``gap``, ...).
        in_shape / out_shape: ``(C, H, W)`` (an ``add``'s two inputs both have ``in_shape``).
        kh, kw: kernel (or pooling window) rows and columns.
        stride, pad: stride along rows and top zero padding (``stride_w`` and ``pads`` give the rest).
        relu: fused ReLU on the output.
        bias: the layer has a bias term (always true when a BN was folded in).
        bn: spec index of a folded BN, or -1.
        spec_indices: indices of the specs merged into this layer.
        stride_w: stride along columns (0 in the constructor: ``stride``).
        pads: ``(top, left, bottom, right)`` zero padding (() in the constructor: ``pad`` on every side).
        relu6: fused clamp to [0, 6] real units.
        src: the input views ``((tensor, element offset), ...)``, one per input (() : the chain default,
            tensor ``index`` read by layer ``index``).
        dst: the output view ``(tensor, element offset)`` (() : tensor ``index + 1``).
    """

    index: int
    op: str
    name: str
    in_shape: Shape
    out_shape: Shape
    kh: int
    kw: int
    stride: int
    pad: int
    relu: bool
    bias: bool
    bn: int = -1
    spec_indices: tuple[int, ...] = ()
    stride_w: int = 0
    pads: tuple[int, int, int, int] = ()  # type: ignore[assignment]
    relu6: bool = False
    src: tuple[View, ...] = ()
    dst: View = ()  # type: ignore[assignment]

    def __post_init__(self):
        if not self.stride_w:
            object.__setattr__(self, "stride_w", self.stride)
        if not self.pads:
            object.__setattr__(self, "pads", (self.pad,) * 4)
        if not self.src:
            object.__setattr__(self, "src", ((self.index, 0),))
        if not self.dst:
            object.__setattr__(self, "dst", (self.index + 1, 0))

    @property
    def traits(self):
        """The op's row of :data:`aidi.models.ops.OPS`."""
        from .ops import traits

        return traits(self.op)

    @property
    def sh(self) -> int:
        return self.stride

    @property
    def sw(self) -> int:
        return self.stride_w

    @property
    def weighted(self) -> bool:
        return self.traits.weighted

    @property
    def channel_tied(self) -> bool:
        """Input channels follow output channels (depthwise, pooling, add): no Tn loop."""
        return self.traits.tied

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(M, N, kh, kw)`` for conv/fc, ``(C, 1, kh, kw)`` for dwconv, zeros for the unweighted."""
        if not self.weighted:
            return (0, 0, 0, 0)
        return (self.out_shape[0], 1 if self.channel_tied else self.in_shape[0], self.kh, self.kw)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (or window elements for pools, inputs summed for add) of the layer."""
        m, ho, wo = self.out_shape
        n = 1 if self.channel_tied else self.in_shape[0]
        return m * ho * wo * n * self.kh * self.kw * len(self.src)

    def describe(self) -> str:
        return f"layer {self.index} ({self.name})"


def tensor_sizes(geoms: Sequence[LayerGeom]) -> dict[int, int]:
    """Elements of every tensor the layers read or write (tensor 0: the network input)."""
    out: dict[int, int] = {}
    for g in geoms:
        n_in = math.prod(g.in_shape)
        for t, off in g.src:
            out[t] = max(out.get(t, 0), off + n_in)
        t, off = g.dst
        out[t] = max(out.get(t, 0), off + math.prod(g.out_shape))
    return out


def _consumers(ins: list[tuple[int, ...]]) -> dict[int, list[int]]:
    cons: dict[int, list[int]] = {}
    for i, refs in enumerate(ins):
        for j in refs:
            cons.setdefault(j, []).append(i)
    return cons


def geometry(net: Network) -> list[LayerGeom]:
    """Executed layers of a network: BN folded, ReLUs fused, pwconv/fc/gap normalised, concats as shared tensors.

    Raises ValueError (naming the layer) for a graph the executed form cannot hold: a bn/relu whose
    input also feeds another layer, a concat of the network input or of another concat, a layer placed
    into two concats, a concat as the last layer, a layer whose output is never used.
    """
    specs, ins, shapes = net.layers, net.inputs, net.shapes
    cons = _consumers(ins)
    last = len(specs) - 1
    for i, s in enumerate(specs[:-1]):
        if i not in cons:
            raise ValueError(f"layer {i} ({s.type}): its output is never used (the last layer is the output)")
    if isinstance(specs[last], Concat):
        raise ValueError(f"layer {last} (concat): the last layer must compute (concat a layer before it)")
    exec_of: dict[int, int] = {}  # spec -> executed layer holding its output
    out: list[dict] = []
    for i, s in enumerate(specs):
        src_i = ins[i]
        if isinstance(s, (BN, ReLU)):
            j = src_i[0]
            if len(cons[j]) > 1 or j not in exec_of or isinstance(specs[j], Concat):
                raise ValueError(f"layer {i} ({s.type}): its input {net.names[j]!r} feeds other layers too (or is a "
                                 f"concat); a {s.type} is fused into the one layer it follows")
            g = out[exec_of[j]]
            if isinstance(s, BN):
                g["bn"] = i
                g["bias"] = True
            else:
                g["relu"] = True
            g["spec_indices"] += (i,)
            exec_of[i] = exec_of[j]
            continue
        if isinstance(s, Concat):
            continue
        shape = net.input_shape if src_i[0] < 0 else shapes[src_i[0]]
        g = dict(op=s.type, name=s.type, in_shape=shape, out_shape=shapes[i], kh=1, kw=1, stride=1, pad=0,
                 relu=bool(getattr(s, "relu", False)), bias=bool(getattr(s, "bias", False)), bn=-1,
                 spec_indices=(i,), stride_w=1, pads=(0, 0, 0, 0), relu6=bool(getattr(s, "relu6", False)),
                 inputs=src_i)
        if isinstance(s, (Conv, DWConv, MaxPool)):  # and AvgPool
            kh, kw = pair_of(s.k)
            sh, sw = pair_of(s.stride)
            g.update(kh=kh, kw=kw, stride=sh, stride_w=sw, pads=pads_of(s.padding, kh, kw))
        elif isinstance(s, PWConv):
            sh, sw = pair_of(s.stride)
            g.update(op="conv", stride=sh, stride_w=sw)
        elif isinstance(s, FC):
            g.update(in_shape=(shape[0] * shape[1] * shape[2], 1, 1))
        elif isinstance(s, GAP):
            g.update(op="avgpool", kh=shape[1], kw=shape[2], stride=1, stride_w=1)
        g["pad"] = g["pads"][0]
        exec_of[i] = len(out)
        out.append(g)
    # tensors: 0 the input; a concat's producers share its tensor, each at its channel offset
    place: dict[int, View] = {}  # executed layer -> its output view
    concat_tensor: dict[int, int] = {}  # concat spec -> tensor
    n_tensors = 1
    for i, s in enumerate(specs):
        if not isinstance(s, Concat):
            continue
        concat_tensor[i] = t = n_tensors
        n_tensors += 1
        off = 0
        for j in ins[i]:
            if j < 0 or isinstance(specs[j], Concat):
                what = "the network input" if j < 0 else f"concat {net.names[j]!r}"
                raise ValueError(f"layer {i} (concat): cannot concatenate {what} (its producers write into the "
                                 "concat's tensor; put a layer in between)")
            e = exec_of[j]
            if e in place:
                raise ValueError(f"layer {i} (concat): {net.names[j]!r} is already placed in another concat "
                                 "(or twice in this one)")
            place[e] = (t, off)
            c, h, w = shapes[j]
            off += c * h * w
    for e in range(len(out)):
        if e not in place:
            place[e] = (n_tensors, 0)
            n_tensors += 1

    def view(j: int) -> View:
        if j < 0:
            return (0, 0)
        if isinstance(specs[j], Concat):
            return (concat_tensor[j], 0)
        return place[exec_of[j]]

    geoms = []
    for e, g in enumerate(out):
        refs = g.pop("inputs")
        geoms.append(LayerGeom(index=e, src=tuple(view(j) for j in refs), dst=place[e], **g))
    return geoms


#: the bundled default architecture for the 8x8 ``digits`` data set
DEFAULT_INPUT: Shape = (1, 8, 8)
DEFAULT_LAYERS: tuple[dict, ...] = (
    {"type": "conv", "k": 3, "filters": 8, "relu": True},
    {"type": "conv", "k": 3, "filters": 16, "relu": True},
    {"type": "maxpool", "k": 2},
    {"type": "fc", "units": 10},
)


def default_network() -> Network:
    """The bundled default: conv 3x3x8 relu, conv 3x3x16 relu, maxpool 2, fc 10 on [1, 8, 8]."""
    return parse_network(list(DEFAULT_LAYERS), DEFAULT_INPUT)
