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
conv        k, filters, stride [1], padding [0 | "valid" | "same"], relu [false], bias [true]
dwconv      depthwise (one k x k filter per channel, multiplier 1):
            k, stride [1], padding [0], relu [false], bias [true]
pwconv      pointwise 1x1 conv: filters, stride [1], relu [false], bias [true]
fc          fully connected over the flattened CHW input: units, relu [false], bias [true]
maxpool     k, stride [k]; no padding; floor output size
avgpool     k, stride [k]; no padding
gap         global average pool: [C, H, W] -> [C, 1, 1]
relu        standalone ReLU
bn          batch norm (eps [1e-5]); must directly follow conv/dwconv/pwconv/fc
==========  ===================================================================

Shapes are ``(C, H, W)`` (channels, rows, columns), batch 1.

Ordering convention for ``relu = true`` on a weighted layer followed by ``bn``:
the layer computes conv -> bn -> relu (the flag belongs to the block), so BN
is always foldable into the weighted layer before export.

:func:`geometry` turns a :class:`Network` into the list of *executed* layers
(:class:`LayerGeom`): BN folded into the preceding weighted layer, standalone
ReLUs fused into the preceding layer's output step, ``pwconv`` as a 1x1
``conv``, ``fc`` as a 1x1 conv over the flattened input ``(C*H*W, 1, 1)`` and
``gap`` as an ``avgpool`` with a full window.  Those are the layers the Q15
model, the tiler and the C emitter see.

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
    PADDING = 'a non-negative integer, "valid" or "same"'
    POS_FLOAT = "a positive number"


def _key(kind: str, default: Any = MISSING):
    return field(default=default, metadata={"kind": kind})


@dataclass(frozen=True)
class LayerSpec:
    """Base class of layer specs.  ``type`` is the scenario's ``type`` string."""

    type: ClassVar[str] = ""
    weighted: ClassVar[bool] = False

    def to_dict(self) -> dict:
        """The spec as a scenario dict (``type`` first, all keys explicit)."""
        return {"type": self.type, **asdict(self)}

    def out_shape(self, shape: Shape, index: int) -> Shape:  # pragma: no cover - abstract
        raise NotImplementedError

    def _err(self, index: int, msg: str) -> ValueError:
        return ValueError(f"layer {index} ({self.type}): {msg}")


def _conv_out(spec, shape: Shape, index: int, k: int, stride: int, pad: int) -> tuple[int, int]:
    c, h, w = shape
    if h + 2 * pad < k or w + 2 * pad < k:
        raise spec._err(index, f"kernel {k} larger than padded input {h + 2 * pad}x{w + 2 * pad} (input shape {list(shape)})")
    return (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1


@dataclass(frozen=True)
class Conv(LayerSpec):
    """Standard 2-D convolution, ``filters`` output channels, square ``k`` x ``k`` kernel."""

    type: ClassVar[str] = "conv"
    weighted: ClassVar[bool] = True
    k: int = _key(_Kind.POS_INT)
    filters: int = _key(_Kind.POS_INT)
    stride: int = _key(_Kind.POS_INT, 1)
    padding: int = _key(_Kind.PADDING, 0)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, self.padding)
        return (self.filters, ho, wo)


@dataclass(frozen=True)
class DWConv(LayerSpec):
    """Depthwise convolution: one ``k`` x ``k`` filter per input channel (multiplier 1)."""

    type: ClassVar[str] = "dwconv"
    weighted: ClassVar[bool] = True
    k: int = _key(_Kind.POS_INT)
    stride: int = _key(_Kind.POS_INT, 1)
    padding: int = _key(_Kind.PADDING, 0)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, self.padding)
        return (shape[0], ho, wo)


@dataclass(frozen=True)
class PWConv(LayerSpec):
    """Pointwise (1x1) convolution."""

    type: ClassVar[str] = "pwconv"
    weighted: ClassVar[bool] = True
    filters: int = _key(_Kind.POS_INT)
    stride: int = _key(_Kind.POS_INT, 1)
    relu: bool = _key(_Kind.BOOL, False)
    bias: bool = _key(_Kind.BOOL, True)

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

    def out_shape(self, shape: Shape, index: int) -> Shape:
        return (self.units, 1, 1)


@dataclass(frozen=True)
class MaxPool(LayerSpec):
    """Max pooling, ``k`` x ``k`` window, no padding, floor output size."""

    type: ClassVar[str] = "maxpool"
    k: int = _key(_Kind.POS_INT)
    stride: int = _key(_Kind.POS_INT, 0)  # absent -> k
    relu: bool = _key(_Kind.BOOL, False)

    def __post_init__(self):
        if self.stride == 0:
            object.__setattr__(self, "stride", self.k)

    def out_shape(self, shape: Shape, index: int) -> Shape:
        ho, wo = _conv_out(self, shape, index, self.k, self.stride, 0)
        return (shape[0], ho, wo)


@dataclass(frozen=True)
class AvgPool(MaxPool):
    """Average pooling, ``k`` x ``k`` window, no padding, floor output size."""

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


LAYER_TYPES: dict[str, type[LayerSpec]] = {
    cls.type: cls for cls in (Conv, DWConv, PWConv, FC, MaxPool, AvgPool, GAP, ReLU, BN)
}


def _coerce(index: int, type_: str, key: str, kind: str, value: Any, spec_k: Any) -> Any:
    given = value

    def bad() -> ValueError:
        return ValueError(f"layer {index} ({type_}): key '{key}' must be {kind}, got {given!r}")

    if kind == _Kind.BOOL:
        if not isinstance(value, bool):
            raise bad()
        return value
    if kind == _Kind.POS_FLOAT:
        if (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0
                or not math.isfinite(value)):
            raise bad()
        return float(value)
    if kind == _Kind.PADDING and isinstance(value, str):
        if value == "valid":
            return 0
        if value == "same":
            if not isinstance(spec_k, int) or spec_k % 2 == 0:
                raise ValueError(f"layer {index} ({type_}): padding 'same' needs an odd k, got k={spec_k!r}")
            return (spec_k - 1) // 2
        raise bad()
    # integers (accept integral floats, as TOML/JSON writers sometimes produce them), at most MAX_INT
    def bad_int() -> ValueError:
        return ValueError(f"layer {index} ({type_}): key '{key}' must be {kind} at most {MAX_INT}, got {given!r}")

    if isinstance(value, bool):
        raise bad_int()
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if (not isinstance(value, int) or value > MAX_INT or (kind == _Kind.POS_INT and value < 1)
            or (kind in (_Kind.NONNEG_INT, _Kind.PADDING) and value < 0)):
        raise bad_int()
    return value


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
    spec = cls(**kwargs)
    pad = getattr(spec, "padding", 0)
    if pad and pad >= spec.k:
        raise ValueError(f"layer {index} ({t}): key 'padding' must be smaller than k={spec.k}, got {pad}")
    return spec


@dataclass(frozen=True)
class Network:
    """A parsed, shape-checked network: input shape and layer specs."""

    input_shape: Shape
    layers: tuple[LayerSpec, ...]

    @property
    def shapes(self) -> list[Shape]:
        """Output shape of every layer (same length as :attr:`layers`)."""
        out, s = [], self.input_shape
        for i, layer in enumerate(self.layers):
            s = layer.out_shape(s, i)
            out.append(s)
        return out

    @property
    def output_shape(self) -> Shape:
        return self.shapes[-1] if self.layers else self.input_shape

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

    Checks: known types and keys, value kinds, kernels that fit, BN placement
    (directly after a weighted layer), ReLU not first, at least one layer.
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
    for i, s in enumerate(specs):
        if isinstance(s, BN) and (i == 0 or not specs[i - 1].weighted):
            prev = specs[i - 1].type if i else "the input"
            raise ValueError(f"layer {i} (bn): bn must directly follow conv/dwconv/pwconv/fc, not {prev}")
        if isinstance(s, ReLU) and i == 0:
            raise ValueError("layer 0 (relu): relu must follow another layer")
    net = Network(shape, specs)
    net.shapes  # shape inference raises on bad kernels
    for g in geometry(net):
        for what, n in (("weights", math.prod(g.weight_shape)), ("output values", math.prod(g.out_shape))):
            if n > MAX_ELEMENTS:
                i = g.spec_indices[0]
                raise ValueError(f"layer {i} ({net.layers[i].type}): {n} {what}, more than {MAX_ELEMENTS} (far beyond "
                                 "the device's memory)")
    return net


# --------------------------------------------------------------------------- geometry
#: executed operations (after folding); the tiler, the Q15 model and the C emitter use these
OPS = ("conv", "dwconv", "fc", "maxpool", "avgpool")


@dataclass(frozen=True)
class LayerGeom:
    """Geometry of one executed layer (BN folded, ReLU fused).

    Attributes:
        index: position among executed layers.
        op: one of :data:`OPS`.  ``fc`` is a 1x1 conv over ``in_shape = (C*H*W, 1, 1)``.
        name: the spec type it came from (``conv``, ``pwconv``, ``gap``, ...).
        in_shape / out_shape: ``(C, H, W)``.
        kh, kw: kernel (or pooling window) size.
        stride, pad: stride and zero padding (same on both axes).
        relu: fused ReLU on the output.
        bias: the layer has a bias term (always true when a BN was folded in).
        bn: spec index of a folded BN, or -1.
        spec_indices: indices of the specs merged into this layer.
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

    @property
    def weighted(self) -> bool:
        return self.op in ("conv", "dwconv", "fc")

    @property
    def channel_tied(self) -> bool:
        """Input channels follow output channels (depthwise and pooling): no Tn loop."""
        return self.op in ("dwconv", "maxpool", "avgpool")

    @property
    def weight_shape(self) -> tuple[int, int, int, int]:
        """``(M, N, kh, kw)`` for conv/fc, ``(C, 1, kh, kw)`` for dwconv, zeros for pools."""
        if self.op in ("conv", "fc"):
            return (self.out_shape[0], self.in_shape[0], self.kh, self.kw)
        if self.op == "dwconv":
            return (self.out_shape[0], 1, self.kh, self.kw)
        return (0, 0, 0, 0)

    @property
    def macs(self) -> int:
        """Multiply-accumulates (or window elements for pools) of the layer."""
        m, ho, wo = self.out_shape
        n = 1 if self.channel_tied else self.in_shape[0]
        return m * ho * wo * n * self.kh * self.kw

    def describe(self) -> str:
        return f"layer {self.index} ({self.name})"


def geometry(net: Network) -> list[LayerGeom]:
    """Executed layers of a network: BN folded, ReLUs fused, pwconv/fc/gap normalised."""
    out: list[dict] = []
    shape = net.input_shape
    for i, s in enumerate(net.layers):
        oshape = s.out_shape(shape, i)
        if isinstance(s, BN):
            out[-1]["bn"] = i
            out[-1]["bias"] = True
            out[-1]["spec_indices"] += (i,)
        elif isinstance(s, ReLU):
            out[-1]["relu"] = True
            out[-1]["spec_indices"] += (i,)
        else:
            g = dict(op=s.type, name=s.type, in_shape=shape, out_shape=oshape, kh=1, kw=1, stride=1, pad=0,
                     relu=bool(getattr(s, "relu", False)), bias=bool(getattr(s, "bias", False)), bn=-1,
                     spec_indices=(i,))
            if isinstance(s, (Conv, DWConv)):
                g.update(kh=s.k, kw=s.k, stride=s.stride, pad=s.padding)
            elif isinstance(s, PWConv):
                g.update(op="conv", stride=s.stride)
            elif isinstance(s, FC):
                g.update(in_shape=(shape[0] * shape[1] * shape[2], 1, 1))
            elif isinstance(s, MaxPool):  # and AvgPool
                g.update(kh=s.k, kw=s.k, stride=s.stride)
            elif isinstance(s, GAP):
                g.update(op="avgpool", kh=shape[1], kw=shape[2], stride=1)
            out.append(g)
        shape = oshape
    return [LayerGeom(index=j, **g) for j, g in enumerate(out)]


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
