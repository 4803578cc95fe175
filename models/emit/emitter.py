"""Write the C project of a :class:`~.ir.NetworkIR`: templates + the static runtime.

Layout of the emitted folder::

    Makefile             host / check / msp430-sim / size / sim-run / msp430 targets
    README.md            how to build and flash, memory use, the layer schedule
    aidi_manifest.json   machine-readable summary (layers, units, expected output, budgets)
    src/                 generated aidi_model.{h,c}, aidi_expected.c + runtime/*.{c,h}
    ld/                  msp430fr5994_sim.ld (simulator memory map)
    tools/               aidi_elfsize.py (memory report, standard library only)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .ir import LayerIR, LayerPlan, NetworkIR, memory_estimate, plan_layer
from .reference import reference_forward

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
RUNTIME = HERE / "runtime"
BACKENDS = ("portable", "lea")
#: LEA RAM usable for data on the FR5994 (0x2C00-0x3AC7; TI reserves the rest for the LEA stack)
LEA_RAM_BYTES = 0xEC8

_C_OP = {"conv": "AIDI_OP_CONV", "pwconv": "AIDI_OP_CONV", "fc": "AIDI_OP_CONV", "dwconv": "AIDI_OP_DWCONV",
         "maxpool": "AIDI_OP_MAXPOOL", "avgpool": "AIDI_OP_AVGPOOL", "gap": "AIDI_OP_AVGPOOL",
         "relu": "AIDI_OP_RELU"}
_C_DIM = {"r": "AIDI_DIM_R", "c": "AIDI_DIM_C", "m": "AIDI_DIM_M", "n": "AIDI_DIM_N"}
_RUNTIME_FILES = ("aidi_platform.h", "aidi_q15.h", "aidi_runtime.h", "aidi_runtime.c", "aidi_kernels.h",
                  "aidi_kernels_cpu.c", "aidi_kernels_lea.c", "aidi_dsplib.h", "aidi_dsplib_emu.c",
                  "host_main.c", "platform_msp430.c", "aidi_mspabi.c")


@dataclass(frozen=True)
class EmittedProject:
    """Where the project was written and what it contains."""

    root: Path
    manifest: dict

    @property
    def sim_elf(self) -> Path:
        return self.root / "build" / "firmware-sim.elf"

    @property
    def host_bin(self) -> Path:
        return self.root / "build" / "aidi-host"

    @property
    def expected(self) -> np.ndarray:
        return np.asarray(self.manifest["expected_output"], np.int16)


def _c_ints(values: np.ndarray, *, per_line: int = 12, int32: bool = False) -> str:
    def lit(v: int) -> str:
        if int32:
            return "INT32_MIN" if v == -(1 << 31) else f"{v}L"
        return "INT16_MIN" if v == -(1 << 15) else str(v)

    flat = [lit(int(v)) for v in np.asarray(values).reshape(-1)]
    rows = [", ".join(flat[i: i + per_line]) for i in range(0, len(flat), per_line)]
    return ",\n".join("    " + r for r in rows)


def _check_limits(ir: NetworkIR, plans: list[LayerPlan]) -> None:
    for i, (layer, p) in enumerate(zip(ir.layers, plans)):
        what = f"layer {i} ({layer.name or layer.op})"
        dims = (p.in_c, p.in_h, p.in_w, p.out_c, p.out_h, p.out_w)
        if max(dims) > 65535:
            raise ValueError(f"{what}: dimensions above 65535 are not supported by the C runtime")
        if max(layer.kh, layer.kw, layer.stride, layer.pad) > 255:
            raise ValueError(f"{what}: kernel, stride and padding must be below 256")
        if p.S > 65535:
            raise ValueError(f"{what}: S above 65535 tiles is not supported")
    if sum(p.n_units for p in plans) >= 1 << 32:
        raise ValueError("network: more than 2^32 units")


def _layer_context(i: int, layer: LayerIR, plan: LayerPlan, unit_base: int, src: str, dst: str) -> dict:
    ctx = dict(
        index=i, name=layer.name or f"L{i}_{layer.op}", op=layer.op, weighted=layer.weighted,
        in_shape=layer.in_shape, out_shape=layer.out_shape, design=layer.design, plan=plan,
        relu=layer.relu, shift=layer.shift, stride=layer.stride, pad=layer.pad, kh=layer.kh, kw=layer.kw,
        c_op=_C_OP[layer.op], c_nest=", ".join(_C_DIM[d] for d in plan.order), unit_base=unit_base,
        src=src, dst=dst,
    )
    if layer.weighted:
        ctx.update(weight_len=layer.weight.size, bias_len=layer.bias.size,
                   weight_c=_c_ints(layer.weight), bias_c=_c_ints(layer.bias, per_line=6, int32=True))
    return ctx


def emit_project(ir: NetworkIR, out_dir: str | Path, *, backend: str = "portable") -> EmittedProject:
    """Write the C project for ``ir`` into ``out_dir`` (created; existing files are replaced).

    ``backend`` is the default of the Makefile's ``BACKEND`` (``portable``: CPU
    kernels; ``lea``: DSPLib msp_mac_q15 where exact, emulated on the host).
    The simulator build always works with either; real LEA needs ``make msp430``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    root = Path(out_dir)
    plans = [plan_layer(layer) for layer in ir.layers]
    _check_limits(ir, plans)
    expected = reference_forward(ir)[-1].reshape(-1)

    # activation buffers: layer i writes act[i % 2] (ping-pong), the last one aidi_output
    n = len(ir.layers)
    act_buffers = ["aidi_act_a", "aidi_act_b"][: min(2, n - 1)]
    layers, base = [], 0
    for i, (layer, plan) in enumerate(zip(ir.layers, plans)):
        src = "aidi_input" if i == 0 else act_buffers[(i - 1) % 2]
        dst = "aidi_output" if i == n - 1 else act_buffers[i % 2]
        layers.append(_layer_context(i, layer, plan, base, src, dst))
        base += plan.n_units
    total_units = base

    even = lambda v: max(2, v + (v & 1))  # noqa: E731
    sizes = dict(
        in_buf=max(1, max(p.in_buf for p in plans)),
        w_buf=even(max(p.w_buf for p in plans)),
        acc_buf=max(1, max(p.acc_buf for p in plans)),
        vec_buf=even(max(p.w_stride for p in plans)),
        tm_max=max(1, max(p.tm for p in plans)),
        act_len=max([1] + [int(np.prod(layer.out_shape)) for layer in ir.layers[:-1]]),
        psum_len=max(1, max(p.psum_elems for p in plans)),
    )
    mem = memory_estimate(ir)
    sram_lea = 4 * (sizes["acc_buf"] + 1 + sizes["tm_max"]) + 2 * (sizes["vec_buf"] + sizes["w_buf"] + sizes["in_buf"])
    manifest = {
        "name": ir.name,
        "backend": backend,
        "input_shape": list(ir.input_shape),
        "output_shape": list(ir.output_shape),
        "output_len": ir.output_len,
        "n_layers": n,
        "total_units": total_units,
        "expected_output": [int(v) for v in expected],
        "budgets": asdict(ir.budgets),
        "memory_estimate": mem,
        "lea_ram_bytes_needed": sram_lea,
        "layers": [
            {
                "name": c["name"], "op": c["op"], "in_shape": list(c["in_shape"]), "out_shape": list(c["out_shape"]),
                "design": asdict(c["design"]), "tiles": c["plan"].n_tiles, "units": c["plan"].n_units,
                "unit_base": c["unit_base"], "macs": c["plan"].macs, "sram_bytes": c["plan"].sram_bytes,
                "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(c["plan"]).items()},
            }
            for c in layers
        ],
    }
    ctx = dict(
        name=ir.name, layers=layers, total_units=total_units, output_len=ir.output_len, sizes=sizes,
        input_shape=ir.input_shape, input_len=ir.input.size, input_c=_c_ints(ir.input),
        act_buffers=act_buffers, expected_c=_c_ints(expected), backend=backend, budgets=ir.budgets,
        memory=mem, manifest=manifest, lea_ram_bytes=LEA_RAM_BYTES, sram_lea=sram_lea,
    )
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "ld").mkdir(exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    outputs = {
        "src/aidi_model.h": "aidi_model.h.j2",
        "src/aidi_model.c": "aidi_model.c.j2",
        "src/aidi_expected.c": "aidi_expected.c.j2",
        "Makefile": "Makefile.j2",
        "README.md": "README.md.j2",
    }
    for rel, tpl in outputs.items():
        (root / rel).write_text(env.get_template(tpl).render(**ctx))
    for name in _RUNTIME_FILES:
        shutil.copyfile(RUNTIME / name, root / "src" / name)
    shutil.copyfile(RUNTIME / "msp430fr5994_sim.ld", root / "ld" / "msp430fr5994_sim.ld")
    shutil.copyfile(HERE / "elfsize.py", root / "tools" / "aidi_elfsize.py")
    (root / "aidi_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return EmittedProject(root=root, manifest=manifest)
