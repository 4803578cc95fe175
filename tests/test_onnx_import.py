"""ONNX and PyTorch import (issue 20 item 3): graphs written by torch.onnx.export and, the way TensorFlow
exporters write them, by onnx.helper; each imported, checked, run functionally under power failures, emitted,
and compared with onnxruntime's float run (the reference nobody here wrote)."""

from __future__ import annotations

import json
import math
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import aidi
from aidi.analysis import pipeline
from aidi.analysis.cli import app
from aidi.models import onnx_import as oi
from tests.conftest import gate_toolchain

onnx = pytest.importorskip("onnx")
torch = pytest.importorskip("torch")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from torch import nn  # noqa: E402

runner = CliRunner()
#: opset and IR version of the graphs written here (onnx 1.23 writes IR 14 by default, onnxruntime 1.31 reads <= 13)
OPSET, IR = [helper.make_opsetid("", 13)], 8

#: a harvesting supply that browns the MCU out mid-unit under greedy dispatch: 47 uF charged by 3 mW
FAILING_POWER = """
name = "failing-power"
[device]
platform = "msp430fr5994"
sram_budget_bytes = 4096
[power]
capacitor_F = 4.7e-5
v_on = 3.0
v_off = 2.0
v_max = 3.3
[harvester]
kind = "constant"
power_W = 3e-3
"""


# --------------------------------------------------------------------------- models built here
def lenet() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 64),
                         nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU6(), nn.Linear(32, 10),
                         nn.LogSoftmax(1))


def har_cnn() -> nn.Module:
    """iNAS's HAR setting: 1-D convolutions over 9 sensor channels x 128 samples."""
    return nn.Sequential(nn.Conv1d(9, 16, 5, padding=2), nn.BatchNorm1d(16), nn.ReLU(), nn.MaxPool1d(2),
                         nn.Conv1d(16, 16, 5, stride=2), nn.ReLU(), nn.AdaptiveAvgPool1d(1), nn.Flatten(),
                         nn.Linear(16, 6), nn.Softmax(1))


def kws_cnn() -> nn.Module:
    """A keyword-spotting CNN on 49 MFCC frames x 10 coefficients with 10x4 kernels."""
    return nn.Sequential(nn.Conv2d(1, 8, (10, 4), stride=(2, 1), padding=(4, 1)), nn.BatchNorm2d(8), nn.ReLU(),
                         nn.Conv2d(8, 8, (10, 4)), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 15 * 6, 12))


class Fire(nn.Module):
    def __init__(self, c: int, squeeze: int, expand: int):
        super().__init__()
        self.squeeze = nn.Sequential(nn.Conv2d(c, squeeze, 1), nn.ReLU())
        self.e1 = nn.Sequential(nn.Conv2d(squeeze, expand, 1), nn.ReLU())
        self.e3 = nn.Sequential(nn.Conv2d(squeeze, expand, 3, padding=1), nn.ReLU())

    def forward(self, x):
        s = self.squeeze(x)
        return torch.cat([self.e1(s), self.e3(s)], 1)


def squeezenet() -> nn.Module:
    """SqueezeNet-style fire modules (concatenated expand branches) on CIFAR-10's 3x32x32."""
    return nn.Sequential(nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         Fire(16, 8, 8), Fire(16, 8, 8), nn.Conv2d(16, 10, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten())


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expand: int):
        super().__init__()
        h = c_in * expand
        self.skip = stride == 1 and c_in == c_out
        self.body = nn.Sequential(nn.Conv2d(c_in, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, h, 3, stride, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                                  nn.Conv2d(h, c_out, 1, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        return x + self.body(x) if self.skip else self.body(x)


def mobilenetv2() -> nn.Module:
    """MobileNetV2-style inverted residual blocks (depthwise 3x3, ReLU6, residual add) on 3x32x32."""
    return nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU6(),
                         InvertedResidual(8, 8, 1, 3), InvertedResidual(8, 12, 2, 3), InvertedResidual(12, 12, 1, 3),
                         nn.Conv2d(12, 16, 1), nn.ReLU6(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 10))


def randomize_bn(module: nn.Module, seed: int) -> nn.Module:
    """BN statistics and affine terms away from the identity, so that folding them is tested."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = m.num_features
                m.running_mean.copy_(torch.rand(n, generator=g) - 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.rand(n, generator=g) - 0.5)
    return module.eval()


def torch_model(make, seed: int = 0):
    torch.manual_seed(seed)
    return randomize_bn(make(), seed)


TORCH_MODELS = {  # name: (module factory, input shape with batch)
    "lenet": (lenet, (1, 1, 28, 28)),
    "har": (har_cnn, (1, 9, 128)),
    "kws": (kws_cnn, (1, 1, 49, 10)),
    "squeezenet": (squeezenet, (1, 3, 32, 32)),
    "mobilenetv2": (mobilenetv2, (1, 3, 32, 32)),
}


def _init(name: str, value: np.ndarray):
    return numpy_helper.from_array(np.asarray(value, np.float32), name)


def tf_lenet(seed: int = 0) -> bytes:
    """A LeNet written the way tf2onnx writes a Keras model: NHWC input and its Transpose, Conv without bias and
    a bias Add, a Transpose back to NHWC before a Reshape with a constant shape, MatMul + Add, Dropout, Softmax."""
    r = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_nchw"], perm=[0, 3, 1, 2], name="input_transpose"),
        helper.make_node("Conv", ["x_nchw", "w1"], ["c1"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Add", ["c1", "b1"], ["c1b"], name="conv1_bias"),
        helper.make_node("Relu", ["c1b"], ["r1"], name="relu1"),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2], name="pool1"),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], kernel_shape=[3, 3], name="conv2"),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("Transpose", ["r2"], ["r2_nhwc"], perm=[0, 2, 3, 1], name="to_nhwc"),
        helper.make_node("Reshape", ["r2_nhwc", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w3"], ["m3"], name="dense1"),
        helper.make_node("Add", ["m3", "b3"], ["d3"], name="dense1_bias"),
        helper.make_node("Relu", ["d3"], ["r3"], name="relu3"),
        helper.make_node("Dropout", ["r3"], ["dr3"], name="dropout"),
        helper.make_node("MatMul", ["dr3", "w4"], ["m4"], name="dense2"),
        helper.make_node("Add", ["m4", "b4"], ["logits"], name="dense2_bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    inits = [_init("w1", r.normal(0, 0.4, (6, 1, 3, 3))), _init("b1", r.normal(0, 0.1, (1, 6, 1, 1))),
             _init("w2", r.normal(0, 0.2, (8, 6, 3, 3))), _init("b2", r.normal(0, 0.1, 8)),
             numpy_helper.from_array(np.array([1, -1], np.int64), "flat_shape"),
             _init("w3", r.normal(0, 0.1, (4 * 4 * 8, 24))), _init("b3", r.normal(0, 0.1, 24)),
             _init("w4", r.normal(0, 0.2, (24, 10))), _init("b4", r.normal(0, 0.1, 10))]
    graph = helper.make_graph(nodes, "tf_lenet", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 12, 12, 1])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR).SerializeToString()


def tf_har(seed: int = 0) -> bytes:
    """A 1-D CNN the way tf2onnx writes Keras' Conv1D: input [N, 128, 9] (steps, channels), a Transpose to
    channels first, Unsqueeze to a 2-D conv over [1, 5] and Squeeze back (the 1-D pattern), a MaxPool inside
    another Unsqueeze/Squeeze pair, a Reshape with a constant shape, MatMul + Add, a final Softmax."""
    r = np.random.default_rng(seed)
    nodes = [
        helper.make_node("Transpose", ["x"], ["x_cl"], perm=[0, 2, 1], name="to_channels_first"),
        helper.make_node("Unsqueeze", ["x_cl", "ax2"], ["x4"], name="conv1d/ExpandDims"),
        helper.make_node("Conv", ["x4", "w1"], ["c1"], kernel_shape=[1, 5], strides=[1, 2], name="conv1d/Conv2D"),
        helper.make_node("Squeeze", ["c1", "ax2"], ["c1s"], name="conv1d/Squeeze"),
        helper.make_node("Add", ["c1s", "b1"], ["c1b"], name="conv1d/BiasAdd"),
        helper.make_node("Relu", ["c1b"], ["r1"], name="relu1"),
        helper.make_node("Unsqueeze", ["r1", "ax2"], ["r14"], name="pool/ExpandDims"),
        helper.make_node("MaxPool", ["r14"], ["p1"], kernel_shape=[1, 2], strides=[1, 2], name="pool/MaxPool"),
        helper.make_node("Squeeze", ["p1", "ax2"], ["p1s"], name="pool/Squeeze"),
        helper.make_node("Reshape", ["p1s", "flat_shape"], ["flat"], name="flatten"),
        helper.make_node("MatMul", ["flat", "w2"], ["m2"], name="dense"),
        helper.make_node("Add", ["m2", "b2"], ["logits"], name="dense_bias"),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1, name="softmax"),
    ]
    inits = [numpy_helper.from_array(np.array([2], np.int64), "ax2"),
             _init("w1", r.normal(0, 0.3, (8, 9, 1, 5))), _init("b1", r.normal(0, 0.1, (8, 1))),
             numpy_helper.from_array(np.array([1, 8 * 31], np.int64), "flat_shape"),
             _init("w2", r.normal(0, 0.1, (8 * 31, 6))), _init("b2", r.normal(0, 0.1, 6))]
    graph = helper.make_graph(nodes, "tf_har", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128, 9])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [1, 6])], inits)
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR).SerializeToString()


def calibration(shape, n: int = 24, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (n, *shape[1:])).astype(np.float32)


def export(name: str) -> tuple[bytes, tuple]:
    make, shape = TORCH_MODELS[name]
    from aidi.analysis.importer import torch_to_onnx

    return torch_to_onnx(torch_model(make), torch.zeros(shape)), shape


# --------------------------------------------------------------------------- import: structure and float exactness
def test_lenet_from_torch_maps_every_node(tmp_path):
    blob, shape = export("lenet")
    imp = oi.import_model(blob)
    assert imp.input_shape == (1, 28, 28)
    assert [d["type"] for d in imp.layers] == ["conv", "maxpool", "conv", "maxpool", "fc", "fc", "fc"]
    assert imp.layers[0]["relu"] and imp.layers[5].get("relu6") and not imp.layers[6].get("relu")
    rows = {r.op: r for r in imp.mapping}
    assert "folded into L0" in rows["BatchNormalization"].note
    assert rows["LogSoftmax"].layer is None and "dropped" in rows["LogSoftmax"].note
    assert all(r.layer is not None or r.note for r in imp.mapping)  # every node says what became of it
    x = calibration(shape)
    ref = oi.onnx_forward(imp, blob, x)
    assert np.abs(oi.float_forward(imp, x) - ref).max() < 1e-5 * max(1.0, np.abs(ref).max())


def test_tf_style_graphs_import_exactly():
    """NHWC Transpose, bias Add after Conv, Transpose + constant Reshape before MatMul + Add, Dropout, Softmax;
    Squeeze/Unsqueeze around a [1, k] conv and pool: aidi's float model equals onnxruntime's."""
    for blob, shape, types in ((tf_lenet(), (1, 12, 12, 1), ["conv", "maxpool", "conv", "fc", "fc"]),
                               (tf_har(), (1, 128, 9), ["conv", "maxpool", "fc"])):
        imp = oi.import_model(blob)
        assert [d["type"] for d in imp.layers] == types
        assert imp.model_input_shape == shape
        x = calibration(shape)
        ref = oi.onnx_forward(imp, blob, x)
        assert np.abs(oi.float_forward(imp, x) - ref).max() < 1e-5
    har = oi.import_model(tf_har())
    assert har.input_shape == (9, 1, 128) and har.layers[0]["k"] == [1, 5] and har.layers[0]["stride"] == [1, 2]
    notes = {r.node: r.note for r in har.mapping}
    assert "folded into L0" in notes["conv1d/BiasAdd"] and notes["conv1d/ExpandDims"].startswith("view")


@pytest.mark.parametrize("name", ["har", "kws", "squeezenet", "mobilenetv2"])
def test_graph_networks_import_exactly(name):
    blob, shape = export(name)
    imp = oi.import_model(blob)
    types = [d["type"] for d in imp.layers]
    if name == "har":
        assert imp.input_shape == (9, 1, 128) and imp.layers[0]["k"] == [1, 5]
    if name == "kws":
        assert imp.layers[0]["k"] == [10, 4] and imp.layers[0]["stride"] == [2, 1] and imp.layers[0]["padding"] == [4, 1, 4, 1]
    if name == "squeezenet":
        assert types.count("concat") == 2 and all(len(d["inputs"]) == 2 for d in imp.layers if d["type"] == "concat")
    if name == "mobilenetv2":
        assert types.count("add") == 2 and types.count("dwconv") == 3
        assert sum(bool(d.get("relu6")) for d in imp.layers) == 8
    x = calibration(shape)
    ref = oi.onnx_forward(imp, blob, x)
    assert np.abs(oi.float_forward(imp, x) - ref).max() < 1e-5 * max(1.0, np.abs(ref).max())


# --------------------------------------------------------------------------- errors
def unsupported_graph() -> bytes:
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], kernel_shape=[3, 3], name="conv"),
             helper.make_node("Sigmoid", ["c"], ["s"], name="gate"),
             helper.make_node("Flatten", ["s"], ["y"], name="flat")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 6, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
                              [_init("w", np.ones((1, 1, 3, 3)))])
    return helper.make_model(graph, opset_imports=OPSET, ir_version=IR).SerializeToString()


def test_unsupported_op_is_one_line_exit_2(tmp_path):
    path = tmp_path / "gated.onnx"
    path.write_bytes(unsupported_graph())
    r = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    err = r.output.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "node 'gate' (Sigmoid): unsupported op" in err and "Conv" in err and "Concat" in err
    assert not (tmp_path / "out" / "scenario.toml").exists()


@pytest.mark.parametrize("mutate, message", [
    (lambda n: n.attribute.append(helper.make_attribute("dilations", [2, 2])), "dilations [2, 2]"),
    (lambda n: n.attribute.append(helper.make_attribute("group", 2)), "group=2"),
])
def test_conv_it_cannot_run_names_the_node(mutate, message):
    w = np.ones((4, 2, 3, 3)) if "group" in message else np.ones((4, 4, 3, 3))
    node = helper.make_node("Conv", ["x", "w"], ["y"], kernel_shape=[3, 3], name="the_conv")
    mutate(node)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 9, 9])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [_init("w", w)])
    with pytest.raises(oi.OnnxImportError, match=r"node 'the_conv' \(Conv\): .*" + re.escape(message)):
        oi.import_model(helper.make_model(graph, opset_imports=OPSET, ir_version=IR))


def test_bad_files_and_inputs_are_one_line_errors(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all \x00\xff")
    for args, text in (([str(tmp_path / "missing.onnx")], "file not found"), ([str(bad)], "not an ONNX model")):
        r = runner.invoke(app, ["import", *args, "--out", str(tmp_path / "o")])
        assert r.exit_code == 2 and text in r.output and len(r.output.strip().splitlines()) == 1
    good = tmp_path / "tf.onnx"
    good.write_bytes(tf_lenet())
    np.save(tmp_path / "wrong.npy", np.zeros((4, 1, 12, 12), np.float32))  # NCHW given to an NHWC model
    r = runner.invoke(app, ["import", str(good), "--calibration", str(tmp_path / "wrong.npy"), "--out",
                            str(tmp_path / "o2")])
    assert r.exit_code == 2 and "--calibration: shape [4, 1, 12, 12] is not the model's input [12, 12, 1]" in r.output


#: [power] and [harvester] of a scenario given as a dict
POWER_DOC = {"power": {"capacitor_F": 1e-3, "v_on": 3.0, "v_off": 2.0}, "harvester": {"kind": "constant", "power_W": 1e-3}}


def test_loader_validates_the_onnx_keys(tmp_path):
    (tmp_path / "m.onnx").write_bytes(tf_lenet())
    (tmp_path / "empty.onnx").write_bytes(b"")
    cases = [({"onnx": "m.onnx", "input": [1, 12, 12]}, "model.layers: missing: with model.onnx give both"),
             ({"onnx": "m.onnx", "layers": [{"type": "fc", "units": 2}]}, "model.input: missing"),
             ({"onnx": "empty.onnx"}, "model.onnx: empty file"),
             ({"onnx": "m.onnx", "input": [1, 12, 12], "layers": [{"type": "fc", "units": 2}], "weights": "random"},
              "model.weights: not with model.onnx"),
             ({"onnx": "nope.onnx"}, "model.onnx: file not found"),
             ({"calibration": "c.npy"}, "model.calibration: only with model.onnx")]
    for model, message in cases:
        with pytest.raises(aidi.UserError, match=message):
            aidi.load({**POWER_DOC, "model": model}, base_dir=tmp_path)


def test_loader_names_an_unreadable_onnx_file(tmp_path, monkeypatch):
    """A file that exists but cannot be opened (permissions) is refused by the loader naming the key."""
    from pathlib import Path

    (tmp_path / "m.onnx").write_bytes(tf_lenet())
    real = Path.open

    def refuse(self, *args, **kwargs):
        if self.name == "m.onnx":
            raise PermissionError(13, "Permission denied")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(aidi.UserError, match=r"^<dict>: model.onnx: cannot read .*m.onnx \(Permission denied\)$"):
        aidi.load({**POWER_DOC, "model": {"onnx": "m.onnx"}}, base_dir=tmp_path)


def test_scenario_layers_must_be_what_the_graph_imports_as(tmp_path):
    res = aidi.import_onnx(tf_lenet(), tmp_path / "imp")
    doc = res.scenario.document()
    doc["model"]["layers"][3]["units"] = 25
    sc = aidi.load(doc, base_dir=tmp_path / "imp")
    with pytest.raises(aidi.UserError, match=r"model.layers: layer 3 is .*'units': 25.*imports it as"):
        aidi.run(sc, engine="des", functional=True)


# --------------------------------------------------------------------------- property: geometry and views
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pads=st.lists(st.integers(0, 3), min_size=4, max_size=4), auto=st.sampled_from(["NOTSET", "SAME_UPPER",
                                                                                      "SAME_LOWER", "VALID"]),
       op=st.sampled_from(["Conv", "DWConv", "MaxPool", "AveragePool"]), seed=st.integers(0, 2**16))
def test_any_kernel_stride_and_padding_imports_exactly(kh, kw, sh, sw, pads, auto, op, seed):
    """A conv, depthwise conv or pool of any kh x kw, per-axis strides, asymmetric pads or auto_pad: aidi's float
    model of the import equals onnxruntime's output."""
    pads = [min(p, k - 1) for p, k in zip(pads, (kh, kw, kh, kw))]  # aidi (and ONNX for pools) pads < kernel
    assume(not auto.startswith("SAME") or (sh <= kh and sw <= kw))  # else onnxruntime's SAME pads go negative
    c, h, w = 3, 9, 11
    r = np.random.default_rng(seed)
    at = {"kernel_shape": [kh, kw], "strides": [sh, sw]}
    at.update({"pads": pads} if auto == "NOTSET" else {"auto_pad": auto})
    inits, ins = [], ["x"]
    if op in ("Conv", "DWConv"):
        filters, group = (4, 1) if op == "Conv" else (c, c)
        inits = [_init("w", r.normal(0, 0.5, (filters, c // group, kh, kw))), _init("b", r.normal(0, 0.1, filters))]
        ins += ["w", "b"]
        node = helper.make_node("Conv", ins, ["y"], group=group, **at)
    else:
        if op == "AveragePool":
            at["count_include_pad"] = 1
        node = helper.make_node(op, ins, ["y"], **at)
    graph = helper.make_graph([node, helper.make_node("Relu", ["y"], ["z"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, h, w])],
                              [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=IR)
    try:
        imp = oi.import_model(model)
    except oi.OnnxImportError as exc:  # SAME padding as large as the kernel: aidi refuses, never guesses
        assert "padding" in str(exc) or "larger" in str(exc)
        return
    x = r.uniform(0, 1, (3, c, h, w)).astype(np.float32)
    ref = oi.onnx_forward(imp, model, x)
    assert np.abs(oi.float_forward(imp, x) - ref).max() < 1e-5


@settings(max_examples=25, deadline=None)
@given(perm=st.permutations([1, 2, 3]), flatten=st.booleans(), seed=st.integers(0, 2**16))
def test_any_transpose_before_an_fc_permutes_its_weights(perm, flatten, seed):
    """Transpose(perm) then Flatten or a constant Reshape before Gemm: the fc's weight columns follow the view."""
    r = np.random.default_rng(seed)
    shape = [1, 3, 4, 5]
    inits = [_init("w", r.normal(0, 0.3, (7, 60))), _init("b", r.normal(0, 0.1, 7)),
             numpy_helper.from_array(np.array([1, 60], np.int64), "s")]
    nodes = [helper.make_node("Transpose", ["x"], ["t"], perm=[0, *perm]),
             helper.make_node("Flatten", ["t"], ["f"]) if flatten else helper.make_node("Reshape", ["t", "s"], ["f"]),
             helper.make_node("Gemm", ["f", "w", "b"], ["y"], transB=1)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=OPSET, ir_version=IR)
    imp = oi.import_model(model)
    x = r.uniform(-1, 1, (4, *shape[1:]))
    ref = oi.onnx_forward(imp, model, x)
    assert np.abs(oi.float_forward(imp, x) - ref).max() < 1e-5


# --------------------------------------------------------------------------- the pipeline on imported models
#: bounds on agreement with onnxruntime over the calibration inputs (random weights, inputs uniform in [-1, 1])
TOP1_BOUND = 0.9
#: largest |Q15 - float| output as a fraction of the largest |float| output
ERROR_BOUND = 0.05


def import_and_run(tmp_path, blob: bytes, shape, name: str, emit: bool = True) -> dict:
    """Import with calibration data under a supply that fails mid-unit (greedy dispatch); check, run
    --functional under failures, emit-c host build with failure injection; returns the numbers."""
    power = tmp_path / "failing-power.toml"
    power.write_text(FAILING_POWER)
    x = calibration(shape)
    t0 = time.perf_counter()
    res = aidi.import_onnx(blob, tmp_path / name, calibration=x, sample_input=x[0], power=str(power))
    sc = res.scenario.replace({"execution.dispatch": "greedy"})
    (tmp_path / name / "scenario.toml").write_text(sc.to_toml())
    chk = aidi.check(sc)
    plan_s = time.perf_counter() - t0
    a = res.agreement
    assert a["inputs"] == len(x) and a["reference"].startswith("onnxruntime")
    assert a["import_max_abs_error"] < 1e-5 * max(1.0, a["max_abs_output"])
    assert a["top1_agreement"] >= TOP1_BOUND, a
    assert a["max_abs_error"] <= ERROR_BOUND * a["max_abs_output"], a
    assert chk.sram_max_bytes <= chk.sram_budget_bytes
    run = aidi.run(sc, engine="des", functional=True)
    j = run.json
    assert j["completed"] and j["output_matches_reference"], j.get("reason")
    assert j["units_reexecuted"] > 0  # power failed mid-unit, and the output is still exact
    assert j["onnx_agreement"] == a
    out = {"agreement": a, "import_plan_s": plan_s, "latency_s": j["latency_s"], "power_cycles": j["power_cycles"]}
    if emit:
        from aidi.models.emit import build as mk

        gate_toolchain("host")  # skips without gcc/make; fails under AIDI_REQUIRE_TOOLCHAIN=1 (CI)
        r = runner.invoke(app, ["emit-c", str(tmp_path / name / "scenario.toml"), "--out", str(tmp_path / "c"),
                                "--json"])
        assert r.exit_code == 0, r.output
        e = json.loads(r.output)
        assert e["matches_reference"] and e["expected_output"] == j["output"]
        mk.make(tmp_path / "c", "host")
        # two power failures (at the 5th and the 300th FRAM write of their boots), then the exact output
        h = mk.run_host(tmp_path / "c", "--check", "--fail-at", "5,300")
        assert h.returncode == 0, h.stderr
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet", "har", "kws", "squeezenet", "mobilenetv2"])
def test_torch_model_through_the_pipeline(tmp_path, name):
    blob, shape = export(name)
    import_and_run(tmp_path, blob, shape, name)


@pytest.mark.slow
@pytest.mark.parametrize("make, shape", [(tf_lenet, (1, 12, 12, 1)), (tf_har, (1, 128, 9))])
def test_tf_style_model_through_the_pipeline(tmp_path, make, shape):
    import_and_run(tmp_path, make(), shape, make.__name__)


@pytest.mark.slow
def test_from_torch_and_the_default_exporter(tmp_path):
    """aidi.from_torch with the TorchScript exporter and with torch's dynamo-based default: the same layers."""
    make, shape = TORCH_MODELS["mobilenetv2"]
    m = torch_model(make)
    x = torch.rand(shape)
    a = aidi.from_torch(m, x, tmp_path / "ts")
    b = aidi.from_torch(m, x, tmp_path / "dynamo", dynamo=True)
    assert a.scenario.model.layers == b.scenario.model.layers
    assert np.array_equal(np.load(a.scenario.model.sample_input), x.numpy())
    for r in (a, b):
        assert r.agreement["import_max_abs_error"] < 1e-5
        assert "assumed inputs uniform in [-1, 1]" in r.notes[0]


def test_cli_import_prints_mapping_and_agreement(tmp_path):
    path = tmp_path / "tf.onnx"
    path.write_bytes(tf_lenet())
    r = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    j = json.loads(r.output)
    assert set(j["agreement"]) >= {"top1_agreement", "max_abs_error", "inputs"}
    assert [m["node"] for m in j["mapping"]][:2] == ["input_transpose", "conv1"]
    assert "no calibration inputs: aidi assumed inputs uniform in [-1, 1]" in j["notes"][0]
    r = runner.invoke(app, ["import", str(path), "--out", str(tmp_path / "o2")])
    assert r.exit_code == 0 and "top-1 agreement" in r.output and "dense1_bias" in r.output
    assert math.isfinite(j["import_s"])


def test_mlp_on_a_flat_input_and_activations_a_layer_cannot_take():
    """Stateful-CNN's KWS DNN_S (FC 250-144-144-144-12) on a [1, 250] input becomes fcs on (250, 1, 1); a ReLU6
    after a gap (which has no relu6) is refused naming the node."""
    from aidi.analysis.importer import torch_to_onnx

    torch.manual_seed(0)
    dnn = nn.Sequential(nn.Linear(250, 144), nn.ReLU(), nn.Linear(144, 144), nn.ReLU(), nn.Linear(144, 144),
                        nn.ReLU(), nn.Linear(144, 12)).eval()
    om = oi.load_onnx_model(torch_to_onnx(dnn, torch.zeros(1, 250)), calibration=calibration((1, 250), n=16))
    assert om.imported.input_shape == (250, 1, 1) and [d["units"] for d in om.imported.layers] == [144, 144, 144, 12]
    assert om.agreement["top1_agreement"] >= TOP1_BOUND
    assert om.agreement["max_abs_error"] <= ERROR_BOUND * om.agreement["max_abs_output"]
    bad = nn.Sequential(nn.Conv2d(1, 4, 3), nn.AdaptiveAvgPool2d(1), nn.ReLU6(), nn.Flatten()).eval()
    with pytest.raises(oi.OnnxImportError, match=r"\(Clip\): follows a gap, which takes no fused relu6"):
        oi.import_model(torch_to_onnx(bad, torch.zeros(1, 1, 8, 8)))


def test_scenario_text_names_the_files_absolutely(tmp_path):
    """An imported scenario's TOML text (Scenario.to_toml) loads from anywhere: its ONNX and .npy paths are absolute."""
    x = calibration((1, 12, 12, 1), n=4)
    res = aidi.import_onnx(tf_lenet(), tmp_path / "imp", calibration=x, sample_input=x[:1])
    again = aidi.loads(res.scenario.to_toml())
    for key in ("onnx", "sample_input", "calibration"):
        assert getattr(again.model, key) == getattr(res.scenario.model, key) == tmp_path / "imp" / {
            "onnx": "model.onnx", "sample_input": "sample_input.npy", "calibration": "calibration.npy"}[key]
    assert np.array_equal(np.load(again.model.calibration), x)


@pytest.mark.slow
@pytest.mark.toolchain("host", "msp430-sim")
@pytest.mark.parametrize("make, shape", [(tf_har, (1, 128, 9))])
def test_imported_model_on_mspdebug(tmp_path, make, shape):
    """emit-c --build: the host build and the MSP430 firmware on mspdebug's simulator compute the imported
    model's Q15 output (the one the functional run computes)."""
    x = calibration(shape, n=8)
    res = aidi.import_onnx(make(), tmp_path / "imp", calibration=x, sample_input=x[0])
    run = aidi.run(res.scenario, engine="des", functional=True)
    r = runner.invoke(app, ["emit-c", str(res.path), "--out", str(tmp_path / "c"), "--build", "--json"])
    assert r.exit_code == 0, r.output
    e = json.loads(r.output)
    assert e["host"]["matches_reference"] and e["msp430"]["matches_reference"]
    assert e["msp430"]["output"] == run.json["output"]


def test_an_older_opset_keeps_its_attributes_meaning():
    """Opset 10: Unsqueeze/Squeeze axes and Clip's min/max as attributes, Softmax over the coerced 2-D input."""
    r = np.random.default_rng(0)
    nodes = [helper.make_node("Unsqueeze", ["x"], ["x4"], axes=[2]),
             helper.make_node("Conv", ["x4", "w", "b"], ["c"], kernel_shape=[1, 3]),
             helper.make_node("Clip", ["c"], ["r"], min=0.0, max=6.0),
             helper.make_node("Squeeze", ["r"], ["s"], axes=[2]),
             helper.make_node("Flatten", ["s"], ["f"]),
             helper.make_node("Gemm", ["f", "w2", "b2"], ["y"], transB=1),
             helper.make_node("Softmax", ["y"], ["p"])]
    graph = helper.make_graph(nodes, "opset10", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10])],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, [1, 5])],
                              [_init("w", r.normal(0, 0.5, (4, 3, 1, 3))), _init("b", r.normal(0, 0.1, 4)),
                               _init("w2", r.normal(0, 0.3, (5, 32))), _init("b2", r.normal(0, 0.1, 5))])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)], ir_version=5)
    imp = oi.import_model(model)
    assert imp.input_shape == (3, 1, 10) and imp.layers[0]["relu6"] and imp.layers[0]["k"] == [1, 3]
    x = r.uniform(-2, 2, (8, 3, 10))
    assert np.abs(oi.float_forward(imp, x) - oi.onnx_forward(imp, model, x)).max() < 1e-5


def test_an_activation_with_no_layer_to_fuse_into_is_refused():
    w = _init("w", np.ones((2, 1, 1, 1)))
    nodes = [helper.make_node("Conv", ["x", "w"], ["a"], kernel_shape=[1, 1]),
             helper.make_node("Conv", ["x", "w"], ["b"], kernel_shape=[1, 1]),
             helper.make_node("Concat", ["a", "b"], ["c"], axis=1),
             helper.make_node("Relu", ["c"], ["y"], name="after_concat")]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    with pytest.raises(oi.OnnxImportError, match=r"'after_concat' \(Relu\): follows a concat; .* takes none"):
        oi.import_model(helper.make_model(graph, opset_imports=OPSET, ir_version=IR))


def test_bad_npy_files_in_a_scenario_are_one_line_errors(tmp_path):
    """A scenario's sample_input / calibration: two inputs as the sample, the wrong layout, not an array."""
    res = aidi.import_onnx(tf_lenet(), tmp_path / "imp", calibration=calibration((1, 12, 12, 1), n=4))
    folder = tmp_path / "imp"
    np.save(folder / "two.npy", calibration((1, 12, 12, 1), n=2))
    np.save(folder / "nchw.npy", np.zeros((3, 1, 12, 12), np.float32))
    (folder / "text.npy").write_text("1, 2, 3")
    for key, file, message in (("sample_input", "two.npy", "model.sample_input: 2 inputs; give one"),
                               ("calibration", "nchw.npy", "model.calibration: shape [3, 1, 12, 12] is not the "
                                                           "model's input [12, 12, 1]"),
                               ("calibration", "text.npy", "model.calibration: cannot read text.npy as a .npy")):
        sc = res.scenario.replace({f"model.{key}": str(folder / file)})
        with pytest.raises(aidi.UserError) as err:
            pipeline.load_model(sc)  # where aidi run --functional, check and emit-c load the weights
        assert message in str(err.value) and len(str(err.value).splitlines()) == 1


def test_weights_kept_as_external_data_are_embedded_in_the_copy(tmp_path):
    """A model saved with its weights in a separate file (ONNX external data): aidi import's model.onnx holds them."""
    src = tmp_path / "src"
    src.mkdir()
    onnx.save_model(onnx.load_from_string(tf_lenet()), str(src / "m.onnx"), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="m.weights", size_threshold=0)
    assert (src / "m.weights").stat().st_size > 4 * (6 * 9 + 8 * 6 * 9)
    r = runner.invoke(app, ["import", str(src / "m.onnx"), "--out", str(tmp_path / "o"), "--json"])
    assert r.exit_code == 0, r.output
    (src / "m.weights").unlink()
    res = aidi.load(tmp_path / "o" / "scenario.toml")
    assert pipeline.load_model(res)[0].agreement["import_max_abs_error"] < 1e-5


# --------------------------------------------------------------------------- a scenario that names only the ONNX file
def small_cnn() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(4, 6, (3, 2)), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 2 * 3, 5), nn.Softmax(1))


ONNX_ONLY = """name = "onnx-only"
[power]
capacitor_F = 1e-3
v_on = 3.0
v_off = 2.0
[harvester]
kind = "thevenin"
v_source = 3.3
r_ohm = 3000
[model]
onnx = "{onnx}"
"""


def onnx_only_scenario(folder, onnx_bytes: bytes, extra: str = "") -> "Path":
    """``folder/s.toml``: a hand-written scenario whose [model] names only the ONNX file (plus ``extra`` lines)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "m.onnx").write_bytes(onnx_bytes)
    path = folder / "s.toml"
    path.write_text(ONNX_ONLY.format(onnx="m.onnx") + extra)
    return path


@pytest.fixture(scope="module")
def onnx_only(tmp_path_factory):
    """An onnx-only scenario of a small CNN exported by torch.onnx, with a sample input and calibration inputs."""
    from aidi.analysis.importer import torch_to_onnx

    folder = tmp_path_factory.mktemp("onnx_only")
    blob = torch_to_onnx(torch_model(small_cnn), torch.zeros(1, 1, 8, 8))
    x = calibration((1, 1, 8, 8), n=12)
    np.save(folder / "x.npy", x[0])
    np.save(folder / "cal.npy", x)
    return onnx_only_scenario(folder, blob, 'sample_input = "x.npy"\ncalibration = "cal.npy"\n'), blob, x


def cli_json(*args) -> dict:
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_onnx_only_scenario_through_every_command(onnx_only, tmp_path):
    """[model] onnx (+ sample_input, calibration) without input and layers: run (both engines, --functional),
    check, explore, sweep and emit-c work on the graph the file imports as, with the output an `aidi import`
    scenario of the same files gives."""
    path, blob, x = onnx_only
    sc = aidi.load(path)
    assert sc.model.graph_from_onnx and sc.model.layers == () and sc.model.input == ()
    layers, shape = pipeline.graph_spec(sc)
    imp = oi.import_model(blob)
    assert layers == tuple(imp.layers) and shape == (1, 8, 8)
    assert [g.describe() for g in pipeline.model_geometry(sc)][:2] == ["layer 0 (conv)", "layer 1 (maxpool)"]
    cost = {engine: cli_json("run", str(path), "--engine", engine) for engine in ("oracle", "des")}
    for j in cost.values():
        assert j["completed"] and set(j["designs"]) == {f"{d['type']}{i}" for i, d in enumerate(imp.layers)}
    assert cost["oracle"]["latency_s"] == pytest.approx(cost["des"]["latency_s"], rel=1e-9)
    fun = cli_json("run", str(path), "--functional")
    assert fun["completed"] and fun["output_matches_reference"] and len(fun["output"]) == 5
    assert fun["onnx_agreement"]["inputs"] == len(x) and fun["onnx_agreement"]["top1_agreement"] >= TOP1_BOUND
    chk = cli_json("check", str(path))
    assert chk["schedulable"] and chk["sram_max_bytes"] <= chk["sram_budget_bytes"]
    exp = cli_json("explore", str(path), "--top", "2")
    assert [lay["layer"] for lay in exp["layers"]][0] == "layer 0 (conv)" and exp["latency_s"] > 0
    sw = cli_json("sweep", str(path), "--set", "power.capacitor_F=1e-3,2e-3")
    assert sw["points"] == 2 and all(row["completed"] for row in sw["rows"])
    emitted = cli_json("emit-c", str(path), "--out", str(tmp_path / "c"))
    assert emitted["matches_reference"] and emitted["expected_output"] == fun["output"]
    # the same files through `aidi import` (input and layers written out): the same output
    res = aidi.import_onnx(blob, tmp_path / "imp", calibration=x, sample_input=x[0])
    assert res.scenario.model.layers and not res.scenario.model.graph_from_onnx
    assert aidi.run(res.scenario, engine="des", functional=True).json["output"] == fun["output"]


def test_onnx_only_graph_is_imported_once_per_file_version(onnx_only, tmp_path):
    """A sweep's variants share one import of the graph; a changed file (size or mtime) is imported again."""
    import os

    path, blob, _ = onnx_only
    folder = tmp_path / "copy"
    p = onnx_only_scenario(folder, blob)
    sc = aidi.load(p)
    before = pipeline._imported.cache_info().misses
    pipeline.model_geometry(sc)
    for cap in (1e-3, 2e-3, 3e-3):
        pipeline.model_geometry(sc.replace({"power.capacitor_F": cap}))
    assert pipeline._imported.cache_info().misses == before + 1
    st_ = (folder / "m.onnx").stat()
    os.utime(folder / "m.onnx", ns=(st_.st_atime_ns, st_.st_mtime_ns + 10**9))
    pipeline.model_geometry(sc)
    assert pipeline._imported.cache_info().misses == before + 2


def test_onnx_only_cost_run_imports_no_torch(onnx_only):
    """Cost-only runs (either engine), a check and a sweep of an onnx-only scenario read the graph with onnx
    alone: no torch, no onnxruntime."""
    import subprocess
    import sys

    path, _, _ = onnx_only
    commands = [["run", "--engine", "oracle"], ["run", "--no-functional"], ["check"],
                ["sweep", "--set", "power.capacitor_F=1e-3,2e-3"]]
    code = ("import json, sys\n"
            "from typer.testing import CliRunner\n"
            "from aidi.analysis.cli import app\n"
            "codes = [CliRunner().invoke(app, [c[0], sys.argv[1], *c[1:], '--json']).exit_code\n"
            "         for c in json.loads(sys.argv[2])]\n"
            "print(json.dumps({'codes': codes, 'heavy': sorted(m for m in ('torch', 'onnxruntime') "
            "if m in sys.modules)}))\n")
    r = subprocess.run([sys.executable, "-c", code, str(path), json.dumps(commands)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1]) == {"codes": [0] * len(commands), "heavy": []}


@pytest.mark.parametrize("content, message", [
    (None, "model.onnx: file not found"),
    (b"not a protobuf at all \x00\xff", "model.onnx: m.onnx: not an ONNX model"),
    (unsupported_graph(), "model.onnx: m.onnx: node 'gate' (Sigmoid): unsupported op"),
])
def test_onnx_only_bad_file_is_one_line_exit_2_in_every_command(tmp_path, content, message):
    """A missing, corrupt or unmappable ONNX file named by an onnx-only scenario: every command exits 2 with one
    line naming the scenario file and model.onnx."""
    path = onnx_only_scenario(tmp_path / "s", content or b"x")
    if content is None:
        (tmp_path / "s" / "m.onnx").unlink()
    for args in (["run", "--engine", "oracle"], ["run", "--functional"], ["check"], ["explore"],
                 ["sweep", "--set", "power.capacitor_F=1e-3,2e-3"], ["emit-c", "--out", str(tmp_path / "c")]):
        r = runner.invoke(app, [args[0], str(path), *args[1:]])
        err = r.output.strip()
        assert r.exit_code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, (args, r.output)
        assert "s.toml: " + message in err, (args, err)
