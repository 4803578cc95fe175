"""``aidi import``: an ONNX model (or a PyTorch module through ``torch.onnx``) -> a scenario folder.

    write_scenario(model, out, calibration=None, sample_input=None, power="lab-1mF") -> dict

writes ``out/scenario.toml`` (the graph form of :mod:`aidi.models.onnx_import` as ``[model]``, with
``onnx``, ``sample_input`` and ``calibration`` beside it; ``[device]``, ``[power]`` and ``[harvester]``
copied from a shipped scenario, the bench supply ``lab-1mF`` by default), ``out/model.onnx`` and the
``.npy`` files it references, then loads the scenario through the pipeline exactly as ``aidi run`` does
(import, Q15, agreement with onnxruntime) and returns the ``aidi import --json`` object.
"""

from __future__ import annotations

import io
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from aidi.scenarios import loader

from .errors import UserError

#: the shipped scenario whose [device], [power] and [harvester] an imported model gets by default
DEFAULT_POWER = "lab-1mF"
#: sections copied from that scenario
POWER_SECTIONS = ("device", "power", "harvester")


def _array(x, key: str) -> np.ndarray | None:
    """An array from an array-like or a ``.npy`` path (UserError naming ``key``)."""
    if x is None:
        return None
    if isinstance(x, (str, Path)):
        from aidi.models.onnx_import import _load_npy

        try:
            return _load_npy(Path(x), key)
        except ValueError as exc:
            raise UserError(str(exc)) from None
    if hasattr(x, "detach"):  # a torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _onnx_bytes(model) -> tuple[bytes, str]:
    """(the model's bytes, its name) from a path, bytes or an ``onnx.ModelProto``."""
    if isinstance(model, (bytes, bytearray)):
        return bytes(model), "model"
    if hasattr(model, "SerializeToString"):
        return model.SerializeToString(), model.graph.name or "model"
    from aidi.models.onnx_import import OnnxImportError, read_model

    p = Path(model)
    try:  # loaded, so that weights kept as external data beside the file are embedded in the copy
        return read_model(p).SerializeToString(), p.stem
    except OnnxImportError as exc:
        raise UserError(str(exc)) from None


def torch_to_onnx(module, example_input, dynamo: bool = False, opset: int | None = None) -> bytes:
    """``module`` (eval mode) exported by ``torch.onnx.export`` on ``example_input`` (a tensor or array with its
    batch axis of 1), as ONNX bytes.  ``dynamo=False`` (default): the TorchScript exporter that ships with torch
    (0.2 s for a small CNN); ``True``: torch's ``torch.export``-based default exporter (needs onnxscript; ~8 s).
    UserError with the exporter's first line when the module cannot be exported."""
    import torch

    x = example_input if isinstance(example_input, torch.Tensor) else torch.as_tensor(np.asarray(example_input),
                                                                                      dtype=torch.float32)
    was_training = module.training
    module.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            if dynamo:
                prog = torch.onnx.export(module, (x,), dynamo=True, opset_version=opset, verbose=False)
                return prog.model_proto.SerializeToString()
            buf = io.BytesIO()
            torch.onnx.export(module, (x,), buf, dynamo=False, opset_version=opset, input_names=["input"],
                              output_names=["output"], do_constant_folding=False)
            return buf.getvalue()
    except UserError:
        raise
    except Exception as exc:  # the exporter's own errors (unsupported ops, control flow)
        msg = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"torch.onnx.export: {msg}") from None
    finally:
        module.train(was_training)


def write_scenario(model, out: Path, calibration=None, sample_input=None, power: str = DEFAULT_POWER,
                   name: str | None = None) -> dict:
    """Write the scenario folder ``out`` (already prepared, see :mod:`aidi.analysis.outdir`) and return the
    ``aidi import --json`` object: ``scenario`` (path), ``input`` [C, H, W], ``layers``, ``mapping`` (one
    ``{node, op, layer, note}`` per ONNX node), ``agreement`` (:func:`aidi.models.onnx_import.agreement` on the
    calibration inputs), ``notes``, ``import_s`` (s: import, Q15 and agreement, as ``aidi run`` loads it).

    Raises UserError (one line) for an unreadable model, an op aidi cannot map, or inputs of the wrong shape."""
    from aidi.models import onnx_import

    from . import pipeline
    from .nas_run import dumps_toml

    blob, stem = _onnx_bytes(model)
    t0 = time.perf_counter()
    try:
        imported = onnx_import.import_model(model if isinstance(model, (str, Path)) else blob)
    except onnx_import.OnnxImportError as exc:
        raise UserError(str(exc)) from None
    calib = _array(calibration, "--calibration")
    sample = _array(sample_input, "--sample-input")
    try:  # shapes checked before anything is written
        if calib is not None:
            imported.model_layout(calib, "--calibration")
        if sample is not None and len(imported.model_layout(sample, "--sample-input")) != 1:
            raise ValueError("--sample-input: give one input (the calibration takes many)")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    base = loader.load(power)
    raw = base.document() if hasattr(base, "document") else dict(base.raw)
    doc: dict[str, Any] = {"name": name or stem,
                           "description": f"imported from {stem}.onnx ({len(imported.layers)} layers) by aidi import; "
                                          f"[device], [power] and [harvester] from {base.name}"}
    for sec in POWER_SECTIONS:
        if sec in raw:
            doc[sec] = dict(raw[sec])
    if base.harvester.file is not None:
        doc["harvester"]["file"] = str(Path(base.harvester.file).resolve())
    (out / "model.onnx").write_bytes(blob)
    m: dict[str, Any] = {"input": list(imported.input_shape), "onnx": "model.onnx"}
    if sample is not None:
        np.save(out / "sample_input.npy", sample)
        m["sample_input"] = "sample_input.npy"
    if calib is not None:
        np.save(out / "calibration.npy", calib)
        m["calibration"] = "calibration.npy"
    m["seed"] = 0
    m["layers"] = [dict(d) for d in imported.layers]
    doc["model"] = m
    doc["sim"] = {"inferences": 1}
    path = out / "scenario.toml"
    path.write_text(dumps_toml(doc))
    sc = loader.load(path)
    om = pipeline.load_model(sc)[0]
    seconds = time.perf_counter() - t0
    return {"scenario": str(path), "onnx": str(out / "model.onnx"), "input": list(imported.input_shape),
            "model_input": list(imported.model_input_shape), "layers": [dict(d) for d in imported.layers],
            "mapping": imported.mapping_dicts(), "agreement": om.agreement, "notes": list(om.notes),
            "power_from": base.name, "import_s": seconds}


def agreement_line(a: dict) -> str:
    """One sentence of :func:`aidi.models.onnx_import.agreement`'s numbers."""
    return (f"Q15 vs {a['reference']} on {a['inputs']} calibration inputs: top-1 agreement {a['top1_agreement']:.1%}, "
            f"largest output error {a['max_abs_error']:.4g} (outputs up to {a['max_abs_output']:.4g})")


def print_summary(res: dict) -> None:
    """The mapping as a table, then the agreement, the notes and what to run next."""
    from rich.table import Table

    from .console import console as make_console

    console = make_console()
    t = Table(title=f"aidi import: {len(res['mapping'])} ONNX nodes -> {len(res['layers'])} layers, input "
                    f"{res['model_input']} -> [C, H, W] {res['input']}")
    for col in ("ONNX node", "op", "layer", "note"):
        t.add_column(col, no_wrap=col != "note")
    for r in res["mapping"]:
        t.add_row(*(str(v) for v in (r["node"], r["op"], r["layer"] or "-", r["note"])))
    console.print(t)
    print(agreement_line(res["agreement"]))
    for n in res["notes"]:
        print(f"note: {n}")
    print(f"wrote {res['scenario']} (power from {res['power_from']}) in {res['import_s']:.2f} s; next: "
          f"aidi check {res['scenario']}")
