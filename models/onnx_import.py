"""ONNX (and PyTorch through ``torch.onnx``) -> aidi's graph form + float weights -> Q15.

An ONNX graph becomes the ``[model]`` of a scenario in the graph form of
``shared/DESIGN.md`` (layer dicts with ``inputs`` where a layer does not read the
previous one) and float64 weights per layer name, with a mapping that says what
became of every ONNX node.  The graph is read with the ``onnx`` package
(``onnx.load``, ``onnx.shape_inference``, ``onnx.numpy_helper``), and every
reshaping node and constant sub-graph is evaluated by ``onnx.reference`` (the ONNX
project's own operator semantics), never by hand-parsing protobuf.

How it reads a graph
--------------------
Each ONNX tensor is either a constant (an initializer, a ``Constant`` node, or a
sub-graph of constants, ``Shape`` of an activation included) or an *activation*:
a view of one aidi tensor (a layer's CHW output, or the network input).  A view
is an integer array of the ONNX tensor's shape whose entries are flat CHW indices
into the aidi tensor; ``Transpose``, ``Reshape``, ``Flatten``, ``Squeeze``,
``Unsqueeze``, ``Identity`` and ``Dropout`` are run by ``onnx.reference`` on that
index array.  So TensorFlow's NHWC input ``Transpose``, a ``Reshape`` with a
constant shape before an FC, and the ``Squeeze``/``Unsqueeze`` pair around a 2-D
conv (the 1-D pattern) need no special case: a conv or pool needs its input to
be the identity view ``[1, C, H, W]`` (or ``[1, C, L]``, read as ``(C, 1, L)``),
an FC any flat ``[1, K]`` view (its weight columns are permuted into CHW order),
and the network input's own layout is whatever view its first consumer reads
(:attr:`Imported.input_index`).

Folded (no layer of their own), each only when the tensor it changes has no
other reader: ``BatchNormalization`` and a per-channel ``Add``/``Sub``/``Mul``/
``Div`` by a constant into the conv/dwconv/fc before it (``w*s``, ``b*s + t``;
elsewhere they become a 1x1 depthwise conv), ``MatMul`` + ``Add`` as a Gemm,
``Relu`` and ``Clip(0, 6)`` into the layer before them (``relu`` / ``relu6``), a
final ``Softmax`` or ``LogSoftmax`` dropped (monotonic: the argmax is
unchanged).  Layers: ``Conv`` (group 1 -> conv, group = C -> dwconv, 1-D or
2-D), ``Gemm`` / ``MatMul`` -> fc, ``MaxPool`` / ``AveragePool`` (1-D or 2-D),
``GlobalAveragePool`` / ``ReduceMean`` over H, W -> gap, ``Add`` of two
activations -> add (residual), ``Concat`` -> concat.

Public API::

    read_model(source) -> onnx.ModelProto                    # a path, bytes or a ModelProto
    import_model(source) -> Imported                          # the graph form, weights, mapping
    Imported.to_chw(x) -> (N, C, H, W)                        # model-layout inputs -> aidi's
    folded_layers(imported) -> (Network, [FoldedLayer]);  float_forward(imported, x_model) -> (N, outputs)
    quantize(imported, calib_chw) -> QModel                   # aidi.models.q15.quantize_folded
    calibration_inputs(imported, calib, sample, seed) -> (x_model, note)
    agreement(imported, qmodel, model, x_model) -> dict       # onnxruntime's float run vs the Q15 reference
    load_onnx_model(source, layers, input_shape, sample, calibration, seed) -> OnnxModel   # a scenario's source

Errors: :class:`OnnxImportError` (a ValueError) with one line naming the file,
the node, its op type and, for an op aidi cannot map, the supported list.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

#: op types the importer maps (layers, folds and views); anything else is an error naming the node
LAYER_OPS = ("Conv", "Gemm", "MatMul", "MaxPool", "AveragePool", "GlobalAveragePool", "ReduceMean", "Add",
             "Concat")
FOLDED_OPS = ("BatchNormalization", "Add", "Sub", "Mul", "Div", "Relu", "Clip", "Softmax", "LogSoftmax")
VIEW_OPS = ("Transpose", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity", "Dropout")
CONST_OPS = ("Constant", "Shape", "Size")
SUPPORTED = tuple(sorted(set(LAYER_OPS + FOLDED_OPS + VIEW_OPS + CONST_OPS)))

#: calibration when none is given: this many inputs uniform in [-1, 1] (the range aidi then assumes)
ASSUMED_CALIBRATION_N = 64
ASSUMED_RANGE = (-1.0, 1.0)
#: inputs on which aidi's float model of the import is compared with onnxruntime (a check of the import itself)
IMPORT_CHECK_N = 16


class OnnxImportError(ValueError):
    """An ONNX model aidi cannot import; the message is one line naming the file and the node."""


@dataclass(frozen=True)
class MappingRow:
    """What became of one ONNX node: ``layer`` (an aidi layer name, or None when it is no layer) and a note."""

    node: str
    op: str
    layer: str | None
    note: str = ""

    def to_dict(self) -> dict:
        return {"node": self.node, "op": self.op, "layer": self.layer, "note": self.note}


@dataclass(frozen=True)
class Imported:
    """An ONNX model as aidi's graph form.

    Attributes:
        source: the file (or ``"<bytes>"``) it came from.
        input_shape: the network input ``(C, H, W)`` aidi runs.
        layers: layer dicts in the graph form (``inputs`` only where a layer does not read the previous one;
            layer ``i`` is named ``L<i>``, the default).
        weights: layer name -> ``{"weight": float64 array, "bias": float64 (M,)}`` for conv ``[F, C, kh, kw]``,
            dwconv ``[C, 1, kh, kw]``, fc ``[units, C*H*W]`` (CHW-flattened input order).
        mapping: one :class:`MappingRow` per ONNX node, in graph order.
        input_name, model_input_shape: the ONNX input and its shape (batch axis of 1 included).
        input_index: int64 ``(C*H*W,)``: the aidi input is ``x.ravel()[input_index]`` of one model-layout input.
        reference_output: the ONNX tensor the aidi output equals (the graph output, or what a dropped
            Softmax read).
        output_index: int64: ``reference_output.ravel() == aidi_output.ravel()[output_index]``.
        opset: the default-domain opset.
        input_scale, input_shift: float64 per model-layout input element: the model's own per-channel
            preprocessing of its input (``x * scale + shift``, e.g. a Sub/Div before the first conv), which aidi
            applies before quantizing an input (ones and zeros when it has none).
    """

    source: str
    input_shape: tuple[int, int, int]
    layers: tuple[dict, ...]
    weights: dict[str, dict[str, np.ndarray]] = field(repr=False)
    mapping: tuple[MappingRow, ...]
    input_name: str
    model_input_shape: tuple[int, ...]
    input_index: np.ndarray = field(repr=False)
    reference_output: str
    output_index: np.ndarray = field(repr=False)
    opset: int
    input_scale: np.ndarray = field(default=None, repr=False)
    input_shift: np.ndarray = field(default=None, repr=False)

    def model_layout(self, x, what: str = "input") -> np.ndarray:
        """``x`` as ``(N, *model_input_shape[1:])`` float64: one input with or without the leading batch axis
        of 1, or N inputs stacked on a leading axis.  ValueError naming ``what`` for any other shape."""
        x = np.asarray(x, dtype=np.float64)
        one = tuple(self.model_input_shape[1:])
        if x.shape == one:
            x = x[None]
        if x.ndim != len(one) + 1 or tuple(x.shape[1:]) != one or x.shape[0] < 1:
            raise ValueError(f"{what}: shape {list(x.shape)} is not the model's input {list(one)} (with or "
                             f"without a leading batch axis)")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"{what}: holds NaN or infinite values")
        return x

    def to_chw(self, x, what: str = "input") -> np.ndarray:
        """Model-layout inputs (see :meth:`model_layout`) -> aidi's ``(N, C, H, W)`` float64."""
        x = self.model_layout(x, what)
        flat = x.reshape(len(x), -1) * self.input_scale + self.input_shift
        return flat[:, self.input_index].reshape(len(x), *self.input_shape)

    def mapping_dicts(self) -> list[dict]:
        return [r.to_dict() for r in self.mapping]


# --------------------------------------------------------------------------- reading
def read_model(source) -> "Any":
    """An ``onnx.ModelProto`` from a path, bytes or a ModelProto; OnnxImportError for a missing or bad file."""
    import onnx

    if isinstance(source, onnx.ModelProto):
        return source
    if isinstance(source, (bytes, bytearray)):
        try:
            return onnx.load_from_string(bytes(source))
        except Exception as exc:  # protobuf's DecodeError and friends
            raise OnnxImportError(f"<bytes>: not an ONNX model ({_first_line(exc)})") from None
    path = Path(source)
    if not path.is_file():
        raise OnnxImportError(f"{path}: file not found")
    try:
        return onnx.load(str(path))
    except Exception as exc:
        raise OnnxImportError(f"{path.name}: not an ONNX model ({_first_line(exc)})") from None


def _first_line(exc: BaseException) -> str:
    s = str(exc).strip()
    return s.splitlines()[0] if s else type(exc).__name__


@dataclass
class _Act:
    """An activation: a view (``idx``, flat indices into tensor ``base``) of an aidi tensor.

    ``base`` is a layer name or ``"input"`` (then ``idx`` indexes the model-layout input); ``fusable``: the
    chain from ``base``'s producer to here has one reader at each step, so the producer may be changed.
    """

    base: str
    idx: np.ndarray
    fusable: bool = True


@dataclass
class _Const:
    value: np.ndarray


def _fixed_batch(model):
    """A copy of ``model`` whose input's leading (batch) dimension is 1 when it is symbolic."""
    import onnx

    m = onnx.ModelProto()
    m.CopyFrom(model)
    inits = {i.name for i in m.graph.initializer}
    for inp in m.graph.input:
        if inp.name in inits:
            continue
        dims = inp.type.tensor_type.shape.dim
        if len(dims) and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
    return m


class _Importer:
    def __init__(self, model, where: str):
        import onnx
        from onnx import numpy_helper, shape_inference

        self.where = where
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
        model = _fixed_batch(model)
        try:
            model = shape_inference.infer_shapes(model, data_prop=True)
        except Exception as exc:  # an inconsistent graph
            raise OnnxImportError(f"{where}: ONNX shape inference fails ({_first_line(exc)})") from None
        g = model.graph
        self.graph = g
        self.values: dict[str, _Act | _Const] = {}
        for init in g.initializer:
            self.values[init.name] = _Const(numpy_helper.to_array(init))
        inputs = [i for i in g.input if i.name not in self.values]
        if len(inputs) != 1:
            raise OnnxImportError(f"{where}: the graph has {len(inputs)} inputs ({', '.join(i.name for i in inputs)}); "
                                  "aidi runs a network with one input")
        if len(g.output) != 1:
            raise OnnxImportError(f"{where}: the graph has {len(g.output)} outputs; aidi runs a network with one output")
        inp = inputs[0]
        dims = inp.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else -1 for d in dims)
        if not shape or any(d < 1 for d in shape) or shape[0] != 1:
            raise OnnxImportError(f"{where}: input {inp.name!r} has shape {list(shape)}; aidi needs fixed dimensions "
                                  "with a batch of 1 (-1: symbolic)")
        elem = inp.type.tensor_type.elem_type
        if elem not in (onnx.TensorProto.FLOAT, onnx.TensorProto.DOUBLE, onnx.TensorProto.FLOAT16):
            raise OnnxImportError(f"{where}: input {inp.name!r} is {onnx.TensorProto.DataType.Name(elem)}; aidi "
                                  "imports float models (quantized ONNX graphs are not read)")
        self.input_name = inp.name
        self.model_input_shape = shape
        self.values[inp.name] = _Act("input", np.arange(math.prod(shape), dtype=np.int64).reshape(shape))
        self.inferred = {}
        for vi in list(g.value_info) + list(g.output):
            d = vi.type.tensor_type.shape.dim
            if all(x.HasField("dim_value") for x in d):
                self.inferred[vi.name] = tuple(x.dim_value for x in d)
        self.readers = Counter(n for node in g.node for n in node.input if n)
        for o in g.output:
            self.readers[o.name] += 1
        self.output_name = g.output[0].name
        self.layers: list[dict] = []
        self.shapes: dict[str, tuple[int, int, int]] = {}
        self.weights: dict[str, dict[str, np.ndarray]] = {}
        self.rows: list[MappingRow] = []
        self.input_index: np.ndarray | None = None
        self.in_scale = np.ones(math.prod(shape))
        self.in_shift = np.zeros(math.prod(shape))
        self.input_inv: np.ndarray | None = None
        self.reference_output = self.output_name

    # ------------------------------------------------------------------ helpers
    def fail(self, node, msg: str) -> OnnxImportError:
        return OnnxImportError(f"{self.where}: node {node.name or '(unnamed)'!r} ({node.op_type}): {msg}")

    def attrs(self, node) -> dict:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def const(self, node, name: str, what: str) -> np.ndarray:
        v = self.values.get(name)
        if not isinstance(v, _Const):
            raise self.fail(node, f"{what} must be a constant (an initializer), not computed at run time")
        return v.value

    def act(self, node, name: str) -> _Act:
        v = self.values.get(name)
        if not isinstance(v, _Act):
            raise self.fail(node, f"input {name!r} is not an activation")
        return v

    def row(self, node, layer: str | None, note: str = "") -> None:
        self.rows.append(MappingRow(node.name or f"({node.op_type})", node.op_type, layer, note))

    def evaluate(self, node, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        """``node`` run by onnx.reference on ``feeds`` (the ONNX project's operator semantics)."""
        from onnx import helper
        from onnx.reference import ReferenceEvaluator

        # a one-node model with the graph's opset, so that an older opset's attributes keep their meaning
        graph = helper.make_graph([node], "node", [helper.make_empty_tensor_value_info(n) for n in feeds],
                                  [helper.make_empty_tensor_value_info(o) for o in node.output if o])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)])
        try:
            return ReferenceEvaluator(model).run(None, feeds)
        except Exception as exc:
            raise self.fail(node, f"cannot evaluate ({_first_line(exc)})") from None

    def resolve(self, node, a: _Act, flat: bool = False) -> tuple[str, tuple[int, int, int], np.ndarray]:
        """``(tensor, (C, H, W), idx)`` with ``idx`` indexing the aidi tensor (the network input's layout is
        fixed by its first consumer: the view it reads, as CHW, or as ``(K, 1, 1)`` for an fc)."""
        if a.base != "input":
            return a.base, self.shapes[a.base], a.idx
        if self.input_index is None:
            shape = self.chw_of(node, a.idx.shape) if not flat else (int(a.idx.size), 1, 1)
            self.input_index = a.idx.ravel().copy()
            self.input_inv = np.argsort(self.input_index)
            self.shapes["input"] = shape
        return "input", self.shapes["input"], self.input_inv[a.idx]

    def chw_of(self, node, shape) -> tuple[int, int, int]:
        if len(shape) == 4 and shape[0] == 1:
            return (int(shape[1]), int(shape[2]), int(shape[3]))
        if len(shape) == 3 and shape[0] == 1:
            return (int(shape[1]), 1, int(shape[2]))
        raise self.fail(node, f"input of shape {list(shape)}: expected [1, C, H, W] or [1, C, L]")

    def canonical(self, node, a: _Act) -> tuple[str, tuple[int, int, int], int]:
        """(tensor, (C, H, W), rank) of an activation a conv or pool reads: the identity view of its tensor."""
        shape = a.idx.shape
        chw = self.chw_of(node, shape)
        name, base_shape, idx = self.resolve(node, a)
        if base_shape != chw or not np.array_equal(idx.ravel(), np.arange(idx.size)):
            raise self.fail(node, f"reads {name!r} {list(base_shape)} through a reshape or transpose ({list(shape)}); "
                                  "a conv or pool needs it as [1, C, H, W] (or [1, C, L])")
        return name, chw, len(shape)

    def add_layer(self, node, spec: dict, inputs: list[str], out_chw, onnx_shape, weight=None, bias=None,
                  note: str = "") -> _Act:
        name = f"L{len(self.layers)}"
        self.layers.append({**spec, "inputs": list(inputs)})
        self.shapes[name] = tuple(int(v) for v in out_chw)
        if weight is not None:
            self.weights[name] = {"weight": np.asarray(weight, np.float64),
                                  "bias": np.zeros(len(weight)) if bias is None else np.asarray(bias, np.float64)}
        self.row(node, name, note)
        return _Act(name, np.arange(math.prod(out_chw), dtype=np.int64).reshape(onnx_shape))

    def check_shape(self, node, shape) -> None:
        got = self.inferred.get(node.output[0])
        if got is not None and tuple(got) != tuple(shape):
            raise self.fail(node, f"ONNX gives output {list(got)}, aidi's floor rule {list(shape)} (ceil_mode or "
                                  "dilations aidi does not run)")

    def only_reader(self, a: _Act, tensor: str) -> bool:
        return a.fusable and self.readers[tensor] == 1

    # ------------------------------------------------------------------ the walk
    def run(self) -> Imported:
        handlers = {"Conv": self.conv, "Gemm": self.gemm, "MatMul": self.matmul, "MaxPool": self.pool,
                    "AveragePool": self.pool, "GlobalAveragePool": self.gap, "ReduceMean": self.gap,
                    "BatchNormalization": self.batchnorm, "Add": self.arith, "Sub": self.arith,
                    "Mul": self.arith, "Div": self.arith, "Relu": self.relu, "Clip": self.relu,
                    "Concat": self.concat, "Softmax": self.softmax, "LogSoftmax": self.softmax,
                    "Shape": self.shape, "Size": self.shape}
        for node in self.graph.node:
            if node.domain not in ("", "ai.onnx"):
                raise self.fail(node, f"op of domain {node.domain!r}; aidi maps the default ONNX domain "
                                      f"({', '.join(SUPPORTED)})")
            ins = [self.values.get(n) if n else None for n in node.input]
            if any(n and n not in self.values for n in node.input):
                missing = next(n for n in node.input if n and n not in self.values)
                raise self.fail(node, f"reads {missing!r}, which no earlier node writes (graph not in topological order)")
            if all(isinstance(v, _Const) or v is None for v in ins) and node.op_type not in ("Shape", "Size"):
                outs = self.evaluate(node, {n: v.value for n, v in zip(node.input, ins) if n})
                for o, v in zip(node.output, outs):
                    self.values[o] = _Const(np.asarray(v))
                self.row(node, None, "constant")
                continue
            if node.op_type in VIEW_OPS:
                self.view(node)
            elif node.op_type in handlers:
                handlers[node.op_type](node)
            else:
                raise self.fail(node, f"unsupported op (aidi maps: {', '.join(SUPPORTED)})")
        return self.finish()

    def finish(self) -> Imported:
        out = self.values.get(self.output_name)
        if not isinstance(out, _Act) or out.base == "input":
            raise OnnxImportError(f"{self.where}: the output {self.output_name!r} is computed by no layer aidi runs")
        last = f"L{len(self.layers) - 1}"
        if out.base != last:
            raise OnnxImportError(f"{self.where}: the output {self.output_name!r} is layer {out.base}, not the last "
                                  f"layer {last} (a branch leads nowhere)")
        layers = []
        for i, d in enumerate(self.layers):
            d = dict(d)
            default = ["input"] if i == 0 else [f"L{i - 1}"]
            if d["inputs"] == default:
                del d["inputs"]
            layers.append(d)
        return Imported(self.where, self.shapes["input"], tuple(layers), self.weights, tuple(self.rows),
                        self.input_name, self.model_input_shape, self.input_index, self.reference_output,
                        out.idx.ravel().copy(), self.opset, self.in_scale, self.in_shift)

    # ------------------------------------------------------------------ views and constants
    def view(self, node) -> None:
        a = self.act(node, node.input[0])
        if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1] and self.readers[node.output[1]]:
            raise self.fail(node, "its mask output is read; aidi runs inference only")
        feeds = {node.input[0]: a.idx}
        for n in node.input[1:]:
            if n:
                feeds[n] = self.const(node, n, f"input {n!r}")
        out = self.evaluate(node, feeds)[0]
        if node.op_type in ("Identity", "Dropout"):
            out = a.idx
        self.values[node.output[0]] = _Act(a.base, np.asarray(out, np.int64),
                                           a.fusable and self.readers[node.input[0]] == 1)
        self.row(node, None, f"view of {a.base}" + (" (inference: identity)" if node.op_type == "Dropout" else ""))

    def shape(self, node) -> None:
        a = self.act(node, node.input[0])
        if node.op_type == "Size":
            v = np.array(a.idx.size, np.int64)
        else:
            at = self.attrs(node)
            v = np.array(a.idx.shape, np.int64)[at.get("start", 0):at.get("end", None)]
        self.values[node.output[0]] = _Const(v)
        self.row(node, None, "constant (static shape)")

    # ------------------------------------------------------------------ layers
    def _spatial(self, node, rank: int, kernel, at: dict, in_hw) -> tuple[list, list, list]:
        """(k [kh, kw], stride [sh, sw], pads [t, l, b, r]) of a conv or pool in aidi's 2-D terms."""
        nd = rank - 2
        if any(d != 1 for d in at.get("dilations", [1] * nd)):
            raise self.fail(node, f"dilations {list(at['dilations'])} (aidi runs dilation 1)")
        kernel = [int(v) for v in kernel]
        strides = [int(v) for v in at.get("strides", [1] * nd)]
        pads = [int(v) for v in at.get("pads", [0] * (2 * nd))]
        auto = at.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            pads = [0] * (2 * nd)
            for ax in range(nd):
                n, s, k = in_hw[-nd + ax], strides[ax], kernel[ax]
                total = max((math.ceil(n / s) - 1) * s + k - n, 0)
                lo = total // 2 if auto == "SAME_UPPER" else total - total // 2
                pads[ax], pads[nd + ax] = lo, total - lo
        elif auto == "VALID":
            pads = [0] * (2 * nd)
        if nd == 1:
            return [1, kernel[0]], [1, strides[0]], [0, pads[0], 0, pads[1]]
        return kernel, strides, [pads[0], pads[1], pads[2], pads[3]]

    @staticmethod
    def _form(v: list[int]):
        """Graph-form spelling: one int when every entry is equal, else the list."""
        return int(v[0]) if len(set(v)) == 1 else [int(x) for x in v]

    def _out_hw(self, chw, k, s, p) -> tuple[int, int]:
        (_, h, w), (kh, kw), (sh, sw), (pt, pl, pb, pr) = chw, k, s, p
        return (h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1

    def _onnx_shape(self, c: int, h: int, w: int, rank: int) -> tuple[int, ...]:
        return (1, c, h, w) if rank == 4 else (1, c, w)

    def conv(self, node) -> None:
        at = self.attrs(node)
        a = self.act(node, node.input[0])
        name, chw, rank = self.canonical(node, a)
        w = self.const(node, node.input[1], "the weight")
        b = self.const(node, node.input[2], "the bias") if len(node.input) > 2 and node.input[2] else None
        if w.ndim != rank:
            raise self.fail(node, f"weight of rank {w.ndim} on an input of rank {rank}")
        w = w.astype(np.float64).reshape(w.shape[0], w.shape[1], 1, w.shape[2]) if rank == 3 else w.astype(np.float64)
        group = int(at.get("group", 1))
        k, s, p = self._spatial(node, rank, w.shape[-2:] if rank == 4 else w.shape[-1:], at, chw[1:])
        ho, wo = self._out_hw(chw, k, s, p)
        spec: dict[str, Any] = {"k": self._form(k), "stride": self._form(s), "padding": self._form(p)}
        if group == 1:
            spec = {"type": "conv", **spec, "filters": int(w.shape[0])}
            out_c = int(w.shape[0])
        elif group == chw[0] and w.shape[0] == chw[0] and w.shape[1] == 1:
            spec = {"type": "dwconv", **spec}
            out_c = chw[0]
        else:
            raise self.fail(node, f"group={group} on {chw[0]} channels with {w.shape[0]} filters (aidi runs group=1 "
                                  "or depthwise group=C with one filter per channel)")
        spec["bias"] = b is not None
        shape = self._onnx_shape(out_c, ho, wo, rank)
        self.check_shape(node, shape)
        self.values[node.output[0]] = self.add_layer(node, spec, [name], (out_c, ho, wo), shape, w, b)

    def _fc(self, node, a: _Act, w_units_k: np.ndarray, bias, note: str = "") -> None:
        if a.idx.ndim != 2 or a.idx.shape[0] != 1:
            raise self.fail(node, f"input of shape {list(a.idx.shape)}; an fc reads [1, K] (Flatten or Reshape first)")
        name, chw, idx = self.resolve(node, a, flat=True)
        k = math.prod(chw)
        if w_units_k.shape[1] != k:
            raise self.fail(node, f"weight for {w_units_k.shape[1]} inputs on {k}")
        w = np.empty_like(w_units_k, dtype=np.float64)
        w[:, idx.ravel()] = w_units_k  # ONNX input position j reads CHW element idx[j]
        units = int(w.shape[0])
        spec = {"type": "fc", "units": units, "bias": bias is not None}
        self.values[node.output[0]] = self.add_layer(node, spec, [name], (units, 1, 1), (1, units), w, bias, note)

    def gemm(self, node) -> None:
        at = self.attrs(node)
        if at.get("transA", 0):
            raise self.fail(node, "transA=1 (aidi reads the activation as A [1, K])")
        a = self.act(node, node.input[0])
        bmat = self.const(node, node.input[1], "B").astype(np.float64)
        w = float(at.get("alpha", 1.0)) * (bmat if at.get("transB", 0) else bmat.T)
        bias = None
        if len(node.input) > 2 and node.input[2]:
            c = self.const(node, node.input[2], "C").astype(np.float64) * float(at.get("beta", 1.0))
            try:
                bias = np.broadcast_to(c, (1, w.shape[0]))[0].copy()
            except ValueError:
                raise self.fail(node, f"C of shape {list(c.shape)} is not a bias of {w.shape[0]} units") from None
        self._fc(node, a, w, bias)

    def matmul(self, node) -> None:
        a = self.act(node, node.input[0])
        w = self.const(node, node.input[1], "the second operand").astype(np.float64)
        if w.ndim != 2:
            raise self.fail(node, f"weight of rank {w.ndim}; an fc is [1, K] @ [K, units]")
        self._fc(node, a, w.T, None, "fc (a following bias Add is folded in: MatMul + Add as Gemm)")

    def pool(self, node) -> None:
        at = self.attrs(node)
        if len(node.output) > 1 and node.output[1] and self.readers[node.output[1]]:
            raise self.fail(node, "its indices output is read")
        a = self.act(node, node.input[0])
        name, chw, rank = self.canonical(node, a)
        k, s, p = self._spatial(node, rank, at["kernel_shape"], at, chw[1:])
        is_max = node.op_type == "MaxPool"
        note = ""
        if any(p):
            if is_max:
                note = "zero padding (ONNX pads with -inf: equal on inputs >= 0, e.g. after a ReLU)"
            elif not at.get("count_include_pad", 0):
                raise self.fail(node, "padding with count_include_pad=0; aidi's avgpool counts the padding zeros "
                                      "(count_include_pad=1)")
        ho, wo = self._out_hw(chw, k, s, p)
        shape = self._onnx_shape(chw[0], ho, wo, rank)
        self.check_shape(node, shape)
        spec = {"type": "maxpool" if is_max else "avgpool", "k": self._form(k), "stride": self._form(s)}
        if any(p):
            spec["padding"] = self._form(p)
        self.values[node.output[0]] = self.add_layer(node, spec, [name], (chw[0], ho, wo), shape, note=note)

    def gap(self, node) -> None:
        a = self.act(node, node.input[0])
        name, chw, rank = self.canonical(node, a)
        keep = True
        if node.op_type == "ReduceMean":
            at = self.attrs(node)
            axes = at.get("axes")
            if axes is None and len(node.input) > 1 and node.input[1]:
                axes = self.const(node, node.input[1], "axes").tolist()
            axes = sorted(int(x) % rank for x in (axes or []))
            if axes != list(range(2, rank)):
                raise self.fail(node, f"over axes {axes}; aidi maps a mean over the spatial axes "
                                      f"{list(range(2, rank))} (global average pooling)")
            keep = bool(at.get("keepdims", 1))
        shape = (1, chw[0]) + ((1,) * (rank - 2) if keep else ())
        self.values[node.output[0]] = self.add_layer(node, {"type": "gap"}, [name], (chw[0], 1, 1), shape)

    def concat(self, node) -> None:
        axis = int(self.attrs(node).get("axis", 1))
        acts = [self.act(node, n) for n in node.input]
        parts, names, off = [], [], 0
        hw = None
        for a in acts:
            name, chw, idx = self.resolve(node, a)
            if hw is not None and chw[1:] != hw:
                raise self.fail(node, f"inputs of H x W {list(hw)} and {list(chw[1:])}; aidi concatenates along "
                                      "channels")
            hw = chw[1:]
            parts.append(idx + off * hw[0] * hw[1])
            names.append(name)
            off += chw[0]
        try:
            idx = np.concatenate(parts, axis=axis)
        except ValueError as exc:
            raise self.fail(node, _first_line(exc)) from None
        out = self.add_layer(node, {"type": "concat"}, names, (off, *hw), (1, off, *hw))
        self.values[node.output[0]] = _Act(out.base, idx)

    # ------------------------------------------------------------------ folds
    def _per_channel(self, node, a: _Act, value: np.ndarray) -> np.ndarray | None:
        """``value`` (broadcast onto ``a``'s ONNX shape) as one number per channel of ``a``'s tensor, or None if it
        differs within a channel."""
        try:
            full = np.broadcast_to(np.asarray(value, np.float64), a.idx.shape)
        except ValueError:
            raise self.fail(node, f"constant of shape {list(np.shape(value))} does not broadcast onto "
                                  f"{list(a.idx.shape)}") from None
        if np.broadcast_shapes(np.shape(value), a.idx.shape) != a.idx.shape:
            raise self.fail(node, f"constant of shape {list(np.shape(value))} broadcasts the activation "
                                  f"{list(a.idx.shape)} to a larger shape")
        _, (c, h, w), idx = self.resolve(node, a)
        chan = idx.ravel() // (h * w)
        per = np.zeros(c)
        per[chan] = full.ravel()
        return per if np.array_equal(per[chan], full.ravel()) else None

    def affine(self, node, a: _Act, scale, shift, what: str) -> None:
        """``y = x * scale + shift`` per channel: folded into the conv/dwconv/fc producing ``x`` when only this node
        reads it and it has no activation yet, else a 1x1 depthwise conv; on the network input, part of how aidi
        prepares an input (the model's own preprocessing)."""
        if a.base == "input":
            return self.input_affine(node, a, scale, shift, what)
        s = self._per_channel(node, a, scale)
        t = self._per_channel(node, a, shift)
        if s is None or t is None:
            raise self.fail(node, f"{what} by a constant that is not one value per channel")
        prod = self.layers[int(a.base[1:])] if a.base != "input" else None
        if (prod is not None and prod["type"] in ("conv", "dwconv", "fc") and self.only_reader(a, node.input[0])
                and not prod.get("relu") and not prod.get("relu6")):
            wb = self.weights[a.base]
            wb["weight"] = wb["weight"] * s.reshape(-1, *([1] * (wb["weight"].ndim - 1)))
            wb["bias"] = wb["bias"] * s + t
            prod["bias"] = prod["bias"] or bool(np.any(t != 0))
            self.values[node.output[0]] = _Act(a.base, a.idx, True)
            self.row(node, a.base, f"{what} folded into {a.base}'s weights and bias")
            return
        name, chw, rank = self.canonical(node, a)
        w = s.reshape(-1, 1, 1, 1)
        self.values[node.output[0]] = self.add_layer(
            node, {"type": "dwconv", "k": 1, "bias": True}, [name], chw, a.idx.shape, w, t,
            f"{what} as a 1x1 depthwise conv (no conv/fc before it to fold into)")

    def input_affine(self, node, a: _Act, scale, shift, what: str) -> None:
        if not self.only_reader(a, node.input[0]):
            raise self.fail(node, f"{what} on the network input, which another node also reads")
        try:
            s, t = (np.broadcast_to(np.asarray(v, np.float64), a.idx.shape) for v in (scale, shift))
        except ValueError:
            raise self.fail(node, f"constant does not broadcast onto the input {list(a.idx.shape)}") from None
        pos = a.idx.ravel()
        self.in_shift[pos] = self.in_shift[pos] * s.ravel() + t.ravel()
        self.in_scale[pos] = self.in_scale[pos] * s.ravel()
        self.values[node.output[0]] = _Act("input", a.idx, True)
        self.row(node, None, f"{what} on the input: applied as aidi prepares an input, before quantization")

    def batchnorm(self, node) -> None:
        a = self.act(node, node.input[0])
        if len([o for o in node.output[1:] if o and self.readers[o]]):
            raise self.fail(node, "training outputs (running mean/var) are read; aidi imports inference graphs")
        gamma, beta, mean, var = (self.const(node, n, k).astype(np.float64)
                                  for n, k in zip(node.input[1:5], ("scale", "B", "mean", "var")))
        eps = float(self.attrs(node).get("epsilon", 1e-5))
        s = gamma / np.sqrt(var + eps)
        shp = (1, -1) + (1,) * (a.idx.ndim - 2)
        self.affine(node, a, s.reshape(shp), (beta - mean * s).reshape(shp), "BatchNormalization")

    def arith(self, node) -> None:
        x, y = (self.values[n] for n in node.input)
        if isinstance(x, _Act) and isinstance(y, _Act):
            if node.op_type != "Add":
                raise self.fail(node, f"{node.op_type} of two activations (aidi runs Add: a residual add)")
            (na, sa, ia), (nb, sb, ib) = self.resolve(node, x), self.resolve(node, y)
            if sa != sb or not np.array_equal(ia, ib):
                raise self.fail(node, f"adds {na} {list(sa)} and {nb} {list(sb)} in different shapes or layouts")
            out = self.add_layer(node, {"type": "add"}, [na, nb], sa, (1, *sa))
            self.values[node.output[0]] = _Act(out.base, ia)
            return
        if isinstance(y, _Act) and node.op_type in ("Add", "Mul"):
            x, y = y, x
        if not isinstance(x, _Act):
            raise self.fail(node, f"{node.op_type} with the constant first (aidi folds x {node.op_type} constant)")
        c = y.value.astype(np.float64)
        one, zero = np.ones_like(c), np.zeros_like(c)
        if node.op_type in ("Div",) and np.any(c == 0):
            raise self.fail(node, "division by zero")
        scale, shift = {"Add": (one, c), "Sub": (one, -c), "Mul": (c, zero), "Div": (1.0 / np.where(c == 0, 1, c), zero)}[
            node.op_type]
        what = "bias Add" if node.op_type == "Add" else node.op_type
        self.affine(node, x, scale, shift, what)

    def relu(self, node) -> None:
        a = self.act(node, node.input[0])
        kind = "relu"
        if node.op_type == "Clip":
            at = self.attrs(node)
            lo = at.get("min") if self.opset < 11 else None
            hi = at.get("max") if self.opset < 11 else None
            if len(node.input) > 1 and node.input[1]:
                lo = float(self.const(node, node.input[1], "min"))
            if len(node.input) > 2 and node.input[2]:
                hi = float(self.const(node, node.input[2], "max"))
            if lo == 0 and hi == 6:
                kind = "relu6"
            elif not (lo == 0 and (hi is None or hi >= 3.4e38)):
                raise self.fail(node, f"Clip({lo}, {hi}); aidi maps Clip(0, 6) as ReLU6 and Clip(0, inf) as ReLU")
        prod = self.layers[int(a.base[1:])] if a.base != "input" else None
        if prod is None or not _activations(prod["type"]):
            raise self.fail(node, f"follows {'the network input' if prod is None else 'a ' + prod['type']}; aidi "
                                  "fuses an activation into the layer before it, and this one takes none")
        if not self.only_reader(a, node.input[0]):
            raise self.fail(node, f"its input ({a.base}) is also read by another node before the activation; aidi "
                                  "fuses the activation into the layer")
        if kind not in _activations(prod["type"]):
            raise self.fail(node, f"follows a {prod['type']}, which takes no fused {kind}")
        if prod.get("relu") or prod.get("relu6"):
            if kind == "relu":  # relu after relu or relu6 changes nothing
                self.values[node.output[0]] = _Act(a.base, a.idx, True)
                self.row(node, a.base, "a second activation: no effect")
                return
            if prod.get("relu"):
                prod.pop("relu")
        prod[kind] = True
        self.values[node.output[0]] = _Act(a.base, a.idx, True)
        self.row(node, a.base, f"{kind} fused into {a.base}")

    def softmax(self, node) -> None:
        a = self.act(node, node.input[0])
        if node.output[0] != self.output_name or self.readers[node.output[0]] != 1:
            raise self.fail(node, "not the graph's final op; aidi drops a final Softmax/LogSoftmax only")
        axis = int(self.attrs(node).get("axis", -1 if self.opset >= 13 else 1)) % a.idx.ndim
        others = [d for i, d in enumerate(a.idx.shape) if i != axis]
        if self.opset < 13:  # coerced to 2-D from `axis` on
            others = list(a.idx.shape[:axis])
        if math.prod(others) != 1:
            raise self.fail(node, f"over axis {axis} of {list(a.idx.shape)}: more than one distribution, so the "
                                  "argmax of the whole output would change")
        self.values[node.output[0]] = a
        self.reference_output = node.input[0]
        self.row(node, None, "dropped: monotonic, the argmax is unchanged (aidi's output is its input)")


def _activations(layer_type: str) -> set[str]:
    """The activation keys (``relu``, ``relu6``) a layer type's spec has (:data:`aidi.models.layers.LAYER_TYPES`)."""
    from dataclasses import fields

    from .layers import LAYER_TYPES

    return {f.name for f in fields(LAYER_TYPES[layer_type])} & {"relu", "relu6"}


def import_model(source) -> Imported:
    """Import an ONNX model (a path, bytes or an ``onnx.ModelProto``) into aidi's graph form.

    Raises :class:`OnnxImportError` (one line naming the file and node) for a missing or bad file, an op aidi
    cannot map (with the supported list), or a graph whose shapes aidi cannot run.
    """
    where = "<bytes>" if isinstance(source, (bytes, bytearray)) else (
        str(source) if not hasattr(source, "graph") else (source.graph.name or "<model>"))
    model = read_model(source)
    if isinstance(source, (str, Path)):
        where = Path(source).name
    return _Importer(model, where).run()


# --------------------------------------------------------------------------- Q15 and agreement
def folded_layers(imported: Imported) -> tuple[Any, list]:
    """``(Network, [FoldedLayer])``: the parsed graph form and its executed layers with the float weights
    (:class:`aidi.models.net.FoldedLayer`).  ValueError for layers aidi cannot parse."""
    from .layers import geometry, parse_network
    from .net import FoldedLayer

    net = parse_network(list(imported.layers), list(imported.input_shape))
    names = net.names
    folded = []
    for g in geometry(net):
        if g.weighted:
            wb = imported.weights[names[g.spec_indices[0]]]
            folded.append(FoldedLayer(g, wb["weight"].reshape(g.weight_shape), wb["bias"]))
        else:
            folded.append(FoldedLayer(g, None, None))
    return net, folded


def float_forward(imported: Imported, x_model: np.ndarray) -> np.ndarray:
    """aidi's float64 forward of the imported layers (:func:`aidi.models.net.folded_forward`) on model-layout
    inputs, ``(N, outputs)`` in the reference output's order: what the import alone changed."""
    from .net import folded_forward

    _, folded = folded_layers(imported)
    y = folded_forward(folded, imported.to_chw(x_model))[-1]
    return y.reshape(len(y), -1)[:, imported.output_index]


def quantize(imported: Imported, calib_chw: np.ndarray):
    """The Q15 model (:func:`aidi.models.q15.quantize_folded`) of ``imported`` with shifts chosen on ``calib_chw``
    ``(N, C, H, W)`` (aidi's layout, :meth:`Imported.to_chw`).  ValueError for layers aidi cannot parse."""
    from .q15 import quantize_folded

    net, folded = folded_layers(imported)
    return quantize_folded(folded, calib_chw, imported.input_shape, net=net)


def calibration_inputs(imported: Imported, calibration=None, sample=None, seed: int = 0) -> tuple[np.ndarray, str]:
    """``(x_model, note)``: the calibration inputs in the model's layout, and a sentence saying where they came
    from.  Without ``calibration``: :data:`ASSUMED_CALIBRATION_N` inputs uniform in :data:`ASSUMED_RANGE`
    (seeded), plus ``sample`` when given; the note says which range aidi assumed."""
    if calibration is not None:
        x = imported.model_layout(calibration, "calibration")
        return x, f"Q15 scales chosen on {len(x)} calibration inputs (range {x.min():.4g} .. {x.max():.4g})"
    rng = np.random.default_rng(seed)
    lo, hi = ASSUMED_RANGE
    x = rng.uniform(lo, hi, (ASSUMED_CALIBRATION_N, *imported.model_input_shape[1:]))
    note = (f"no calibration inputs: aidi assumed inputs uniform in [{lo:g}, {hi:g}] ({ASSUMED_CALIBRATION_N} "
            f"random inputs, seed {seed}) to choose the Q15 scales")
    if sample is not None:
        x = np.concatenate([imported.model_layout(sample, "sample_input"), x])
        note += ", plus the sample input"
    return x, note


def _reference_model(imported: Imported, model):
    """``model`` with :attr:`Imported.reference_output` as its only output (what aidi's last layer equals)."""
    import onnx
    from onnx import helper

    m = onnx.ModelProto()
    m.CopyFrom(model)
    if imported.reference_output != m.graph.output[0].name:
        del m.graph.output[:]
        elem = model.graph.output[0].type.tensor_type.elem_type  # a dropped Softmax keeps its input's type
        m.graph.output.append(helper.make_tensor_value_info(imported.reference_output, elem, None))
    return m


def onnx_forward(imported: Imported, model, x_model: np.ndarray) -> np.ndarray:
    """onnxruntime's float output (``(N, ...)``, the reference output) for model-layout inputs ``x_model``, fed in
    the model input's own element type (float32, float64 or float16)."""
    import onnxruntime as ort
    from onnx import helper

    m = read_model(model)
    inp = next(i for i in m.graph.input if i.name == imported.input_name)
    dtype = helper.tensor_dtype_to_np_dtype(inp.type.tensor_type.elem_type)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 4  # errors are raised, not logged
    try:
        sess = ort.InferenceSession(_reference_model(imported, m).SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime's own refusal (an IR version it does not read, an op it lacks)
        raise OnnxImportError(f"{imported.source}: onnxruntime {ort.__version__} cannot load the model, so aidi has "
                              f"no float reference for it ({_first_line(exc)})") from None
    try:
        outs = [sess.run(None, {imported.input_name: x[None].astype(dtype)})[0] for x in x_model]
    except Exception as exc:
        raise OnnxImportError(f"{imported.source}: onnxruntime {ort.__version__} cannot run the model, so aidi has "
                              f"no float reference for it ({_first_line(exc)})") from None
    return np.stack([np.asarray(o, np.float64).reshape(-1) for o in outs])


def agreement(imported: Imported, qmodel, model, x_model: np.ndarray) -> dict:
    """How the Q15 reference agrees with onnxruntime's float run on model-layout inputs ``x_model``.

    Returns ``{"inputs": N, "top1_agreement": fraction of inputs whose argmax is the same, "max_abs_error":
    the largest |Q15 - float| over every input and output (real units of :attr:`Imported.reference_output`),
    "max_abs_output": the largest |float output| (for scale), "import_max_abs_error": the same for aidi's
    float64 model of the imported layers on the first :data:`IMPORT_CHECK_N` inputs (:func:`float_forward`:
    what folding and mapping changed, before any quantization), "reference": "onnxruntime <version>"}``.
    """
    return _compare(imported, qmodel, x_model, onnx_forward(imported, model, x_model))


def _compare(imported: Imported, qmodel, x_model: np.ndarray, ref: np.ndarray) -> dict:
    import onnxruntime as ort

    from .q15 import forward_batch

    out = forward_batch(qmodel, qmodel.quantize_input(imported.to_chw(x_model)))[-1]
    q = qmodel.dequantize_output(out.reshape(len(out), -1))[:, imported.output_index]
    return {"inputs": int(len(x_model)),
            "top1_agreement": float(np.mean(q.argmax(1) == ref.argmax(1))),
            "max_abs_error": float(np.abs(q - ref).max()),
            "max_abs_output": float(np.abs(ref).max()),
            "import_max_abs_error": float(np.abs(float_forward(imported, x_model[:IMPORT_CHECK_N])
                                                 - ref[:IMPORT_CHECK_N]).max()),
            "reference": f"onnxruntime {ort.__version__}"}


# --------------------------------------------------------------------------- a scenario's ONNX source
@dataclass
class OnnxModel:
    """What a scenario's ``[model] onnx`` gives the pipeline (in place of a trained model).

    Attributes:
        imported: the graph form (:class:`Imported`).
        qmodel: its Q15 model, scales chosen on the calibration inputs.
        dataset: ``x_train`` the calibration inputs and ``x_test`` the sample input (``(N, C, H, W)``, aidi's
            layout); labels are onnxruntime's top-1 classes (the reference's, not ground truth).
        agreement: :func:`agreement` on the calibration inputs.
        notes: sentences for the user (the ranges aidi assumed without calibration, where the sample came from).
        float_accuracy: NaN (no labelled data comes with an ONNX model).
    """

    imported: Imported
    qmodel: Any
    dataset: Any
    agreement: dict
    notes: tuple[str, ...]
    float_accuracy: float = float("nan")
    weights: str = "onnx"


def _load_npy(path, key: str) -> np.ndarray:
    try:
        x = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"{key}: file not found: {path}") from None
    except Exception as exc:
        raise ValueError(f"{key}: cannot read {Path(path).name} as a .npy array ({_first_line(exc)})") from None
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{key}: {Path(path).name} holds {x.dtype}, not real numbers")
    return x


def load_onnx_model(source, layers=None, input_shape=None, sample=None, calibration=None, seed: int = 0,
                    imported: Imported | None = None) -> OnnxModel:
    """Import ``source`` (an ONNX file, bytes or ModelProto) and quantize it for the pipeline.

    ``layers`` / ``input_shape``: the scenario's ``[model]`` layers, which must be what the graph imports as
    (``aidi import`` writes them), or None (the graph's own); ``sample`` / ``calibration``: arrays or ``.npy``
    paths in the model's layout (one input, with or without the batch axis; N inputs stacked).  Without a
    sample: the first calibration input.  ``imported``: :func:`import_model` of ``source`` when the caller has
    it already (a cache's).  ValueError (one line naming the key) for a graph that differs from ``layers``, a
    bad file or shape.
    """
    from .data import Dataset
    from .layers import parse_network

    imported = imported if imported is not None else import_model(source)
    if layers is not None:
        mine = parse_network(list(imported.layers), list(imported.input_shape))
        theirs = parse_network(list(layers), list(input_shape))
        if mine.input_shape != theirs.input_shape:
            raise ValueError(f"model.input: {list(theirs.input_shape)}, but {imported.source} imports with input "
                             f"{list(mine.input_shape)} (`aidi import` writes both)")
        a, b = mine.to_dicts(), theirs.to_dicts()
        diff = next((i for i in range(max(len(a), len(b))) if i >= len(a) or i >= len(b) or a[i] != b[i]), None)
        if diff is not None:
            got = a[diff] if diff < len(a) else "no layer"
            raise ValueError(f"model.layers: layer {diff} is {b[diff] if diff < len(b) else 'missing'}, but "
                             f"{imported.source} imports it as {got} (`aidi import` writes the layers)")
    if isinstance(sample, (str, Path)):
        sample = _load_npy(sample, "model.sample_input")
    if isinstance(calibration, (str, Path)):
        calibration = _load_npy(calibration, "model.calibration")
    if calibration is not None:
        calibration = imported.model_layout(calibration, "model.calibration")
    if sample is not None:
        sample = imported.model_layout(sample, "model.sample_input")
        if len(sample) != 1:
            raise ValueError(f"model.sample_input: {len(sample)} inputs; give one (the calibration takes many)")
    x_cal, note = calibration_inputs(imported, calibration, sample, seed)
    notes = [note]
    if sample is None:
        sample = x_cal[:1]
        notes.append("no sample input: the functional run and the firmware use the first calibration input")
    model = read_model(source)
    ref = onnx_forward(imported, model, np.concatenate([sample, x_cal]))
    x_chw = imported.to_chw(x_cal)
    qm = quantize(imported, x_chw)
    agree = _compare(imported, qm, x_cal, ref[1:])
    labels = ref.argmax(1).astype(np.int64)
    data = Dataset("onnx", x_chw.astype(np.float32), labels[1:], imported.to_chw(sample).astype(np.float32),
                   labels[:1], int(ref.shape[1]))
    return OnnxModel(imported, qm, data, agree, tuple(notes))
