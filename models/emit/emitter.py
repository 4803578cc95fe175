"""Write the C project of a :class:`~.program.Program` (Q15 model + plan): templates + the static runtime.

The emitter renders; it plans nothing.  Every count and size in the generated
tables comes from the plan (:mod:`aidi.models.schedule`), which the simulator
costs and the functional run executes.

Layout of the emitted folder::

    Makefile             host / check / msp430-sim / size / sim-run / msp430 targets
    README.md            how to build and use the library, memory use, the layer schedule
    aidi_manifest.json   machine-readable summary (layers, units, expected output, budgets, dispatch)
    src/                 generated aidi_model.{h,c} (the network: library), aidi_sample.c (the
                         sample input: host harness and simulator build only), aidi_expected.c
                         (host only) + runtime/*.{c,h}
    ld/                  msp430fr5994_sim.ld (simulator memory map; its stack reserve is the plan's)
    tools/               aidi_elfsize.py (memory report, standard library only)
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from ..schedule import PROGRESS_BYTES, LayerPlan
from ..schedule.design import LOOP_NESTS
from ..schedule.memory import ARENA_ROWS, arena_extent
from .dispatch import dispatch_context
from .program import Program

HERE = Path(__file__).resolve().parent
TEMPLATES = HERE / "templates"
RUNTIME = HERE / "runtime"
BACKENDS = ("portable", "lea")

#: emitted kernels per plan backend
KERNELS = {"cpu": "portable", "lea": "lea"}
_C_DIM = {"r": "AIDI_DIM_R", "c": "AIDI_DIM_C", "m": "AIDI_DIM_M", "n": "AIDI_DIM_N"}
_RUNTIME_FILES = ("aidi_platform.h", "aidi_q15.h", "aidi_runtime.h", "aidi_runtime.c", "aidi_kernels.h",
                  "aidi_kernels_cpu.c", "aidi_kernels_lea.c", "aidi_dsplib.h", "aidi_dsplib_emu.c",
                  "host_main.c", "platform_msp430.c", "aidi_mspabi.c", "aidi_app.c")
#: the microbench firmware's source (``emit_project(..., microbench=True)``)
MICROBENCH_FILE = "aidi_microbench.c"
#: the emitted library (what an application links; no sample input): runtime, kernels, the network
LIBRARY_FILES = ("aidi_platform.h", "aidi_q15.h", "aidi_runtime.h", "aidi_model.h", "aidi_runtime.c",
                 "aidi_kernels.h", "aidi_kernels_cpu.c", "aidi_kernels_lea.c", "aidi_dsplib.h", "aidi_model.c",
                 "platform_msp430.c")
#: total units the progress record can count (30 bits; its top two bits are the epoch)
MAX_UNITS = 1 << 30


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


def _check_limits(prog: Program) -> None:
    for name, lp in zip(prog.layer_names, prog.layers):
        g = lp.geom
        what = f"layer {g.index} ({name})"
        if max(g.in_shape + g.out_shape) > 65535:
            raise ValueError(f"{what}: dimensions above 65535 are not supported by the C runtime")
        if max(g.kh, g.kw, g.sh, g.sw, *g.pads) > 255:
            raise ValueError(f"{what}: kernel, stride and padding must be below 256")
        if lp.design.S > 65535:
            raise ValueError(f"{what}: S above 65535 tiles is not supported")
    if sum(lp.n_units for lp in prog.layers) + 1 >= MAX_UNITS:
        raise ValueError("network: 2^30 units or more (the progress record counts 30 bits)")


def _plan_context(lp: LayerPlan) -> dict:
    """The layer's schedule as the C tables need it, read off the plan (no planning here)."""
    g, d, rt = lp.geom, lp.design, lp.runtime
    mt, nt, rtiles, ct = lp.grid
    return dict(in_c=g.in_shape[0], in_h=g.in_shape[1], in_w=g.in_shape[2], out_c=g.out_shape[0],
                out_h=g.out_shape[1], out_w=g.out_shape[2], tr=d.Tr, tc=d.Tc, tm=d.Tm, tn=d.Tn, nr=rtiles, nc=ct,
                nm=mt, nn=nt, order=LOOP_NESTS[d.loop_order], S=d.S, n_tiles=lp.n_tiles, n_units=lp.n_units,
                stride_n=lp.n_stride, **rt._asdict(), sram_bytes=lp.sram_bytes)


def _arena_rows(lp: LayerPlan) -> list[dict]:
    """The layer's arena rows (the plan's ``lp.sram``) as C members: type, name, element count spanning up to
    the next row's offset (or the layer's aligned end), so that the C struct puts every row where the plan
    does."""
    rows = [r for r in ARENA_ROWS if r.name in lp.sram]
    ends = [lp.sram[r.name][0] for r in rows[1:]] + [arena_extent(lp.sram)]
    out = []
    for r, end in zip(rows, ends):
        off, nbytes = lp.sram[r.name]
        out.append(dict(name=r.name, c_type=r.c_type, c_name=r.c_name, offset=off, bytes=nbytes,
                        count=(end - off) // (2 if r.c_type == "int16_t" else 4)))
    return out


def _c_view(region: str, elem_offset: int, fram) -> str | None:
    """The C pointer of a tensor view: None for the network input (aidi_infer's), ``aidi_output + k`` or
    ``aidi_act + k`` (the tensor's place in the FRAM activation region, plus the view's offset)."""
    if region == "input":
        return None
    if region == "output":
        return f"aidi_output + {elem_offset}"
    return f"aidi_act + {(fram.regions[region][0] - fram.regions['act'][0]) // 2 + elem_offset}"


def _layer_context(i: int, name: str, lp: LayerPlan, ql, unit_base: int, fram) -> dict:
    g = lp.geom
    srcs = [_c_view(r, off, fram) for r, off in lp.fram_src or ((lp.fram_in, 0),)]
    la, lb = ql.align
    ctx = dict(
        index=i, name=name, op=g.op, weighted=g.weighted, in_shape=g.in_shape, out_shape=g.out_shape,
        design=lp.design, plan=_plan_context(lp), relu=bool(g.relu or g.relu6), shift=ql.shift, stride_h=g.sh,
        stride_w=g.sw, pad_t=g.pads[0], pad_l=g.pads[1], kh=g.kh, kw=g.kw, act_max=ql.act_hi, align_a=la,
        align_b=lb, c_op=g.traits.c_op, c_nest=", ".join(_C_DIM[a] for a in LOOP_NESTS[lp.design.loop_order]),
        unit_base=unit_base, src=srcs[0], src2=srcs[1] if len(srcs) > 1 else None,
        dst=_c_view(lp.fram_out, lp.out_offset, fram), arena=_arena_rows(lp), arena_bytes=arena_extent(lp.sram),
    )
    if g.weighted:
        ctx.update(weight_len=ql.w.size, bias_len=ql.b.size, weight_c=_c_ints(ql.w), bias_c=_c_ints(ql.b, per_line=6, int32=True))
    return ctx


def memory_estimate(prog: Program) -> dict[str, int]:
    """Data bytes the runtime allocates (code excluded): FRAM regions, and SRAM as the plan lays it out
    (:attr:`aidi.models.schedule.NetPlan.sram`): ``sram_arena`` (the arena), ``sram_state`` (the
    runtime's fixed state), ``sram_stack`` (the stack reserve) and their sum ``sram_bytes``, the plan's one
    SRAM figure.

    ``fram_input`` is the sample input, which only the host harness and the simulator build embed."""
    rts = [lp.runtime for lp in prog.layers]
    fram = prog.plan.fram.regions
    sram = prog.plan.sram
    weights = sum(2 * ql.w.size + 4 * ql.b.size for ql in prog.qmodel.layers if ql.geom.weighted)
    return {
        "fram_weights": weights,
        "fram_input": 2 * prog.x_q.size,
        "fram_activations": fram["act"][1] + fram["output"][1],  # tensors placed by lifetime, and the output
        "fram_psum": 2 * 4 * max(r.psum_elems for r in rts),
        "fram_progress": PROGRESS_BYTES,
        "sram_arena": sram.arena_bytes,
        "sram_state": sram.state_bytes,
        "sram_stack": sram.stack_bytes,
        "sram_bytes": sram.total_bytes,
    }


def emit_project(prog: Program, out_dir: str | Path, *, backend: str | None = None,
                 microbench: bool = False) -> EmittedProject:
    """Write the C project of ``prog`` into ``out_dir`` (created; existing files are replaced).

    ``backend``: the kernels the Makefile builds by default (``portable``: CPU
    kernels; ``lea``: DSPLib msp_mac_q15 where exact, emulated on the host, on
    the layers the plan runs on the LEA, whose arena rows hold the LEA's
    buffers; the others keep the CPU kernel).  None (the default) takes the
    plan's: ``lea`` when a layer of the plan runs on the LEA, else
    ``portable`` -- the firmware the simulator costs.  The SRAM the project
    allocates is the plan's (:attr:`aidi.models.schedule.NetPlan.sram`): one
    arena laid out per layer from the plan's rows, the runtime's state and
    the stack reserve.  The
    simulator build works with either; real LEA needs ``make msp430``.
    Under ``prog.dispatch`` with a power configuration the project carries each unit's start threshold
    (:mod:`.dispatch`) and the host harness's power model.
    ``microbench``: also ``src/aidi_microbench.c``, the firmware that times the cost model's primitives
    (``make microbench-sim``, ``make microbench-run``; :mod:`.microbench`).
    Raises ValueError for an unknown backend, ``lea`` for a plan with no LEA layer, a network beyond the
    runtime's limits, and
    :class:`aidi.sim.workload.NonProgressError` (a ValueError) when an energy_aware unit's threshold
    exceeds V_on.
    """
    if backend is None:
        backend = "lea" if any(lp.backend == "lea" for lp in prog.layers) else "portable"
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "lea" and not prog.plan.sram.lea:
        raise ValueError("backend lea: the plan runs no layer on the LEA, so no layer has LEA buffers in its "
                         "SRAM arena (plan it with execution.backend = \"lea\" or \"auto\")")
    root = Path(out_dir)
    _check_limits(prog)
    expected = prog.reference_output()

    # activations: every intermediate tensor at its place in aidi_act (the plan's lifetimes), the last
    # layer's in aidi_output; the network input is aidi_infer's
    n = len(prog.layers)
    act_buffers = ["aidi_act"] if prog.plan.fram.regions["act"][1] else []
    layers, base = [], 0
    for i, (name, lp, ql) in enumerate(zip(prog.layer_names, prog.layers, prog.qmodel.layers)):
        layers.append(_layer_context(i, name, lp, ql, base, prog.plan.fram))
        base += lp.n_units
    total_units = base
    plans = [c["plan"] for c in layers]

    sizes = dict(
        act_len=max(1, prog.plan.fram.regions["act"][1] // 2),
        psum_len=max(1, max(p["psum_elems"] for p in plans)),
        progress_bytes=PROGRESS_BYTES,
    )
    fram = {k: n for k, (_, n) in prog.plan.fram.regions.items()}  # the simulator's FRAM layout, asserted in C
    mem = memory_estimate(prog)
    dispatch = dispatch_context(prog.plan, prog.dispatch, total_units)
    if dispatch["v_start_mv"] is not None and prog.dispatch.policy == "energy_aware":
        mem["fram_v_start"] = 2 * total_units
        mem["fram_v_drop"] = 4 * total_units
    manifest = {
        "name": prog.name,
        "backend": backend,
        "input_shape": list(prog.qmodel.input_shape),
        "output_shape": list(prog.output_shape),
        "output_len": prog.output_len,
        "n_layers": n,
        "total_units": total_units,
        "input_len": int(prog.x_q.size),
        "expected_output": [int(v) for v in expected],
        "dispatch": {"policy": prog.dispatch.policy, "margin": prog.dispatch.margin,
                     "v_start_mv": dispatch["v_start_mv"], "v_drop_mv2": dispatch["v_drop_mv2"],
                     "host_power_model": dispatch["host"] is not None},
        "budgets": asdict(prog.budgets),
        "memory_estimate": mem,
        "sram": {"arena_bytes": prog.plan.sram.arena_bytes, "state_bytes": prog.plan.sram.state_bytes,
                 "stack_bytes": prog.plan.sram.stack_bytes, "total_bytes": prog.plan.sram.total_bytes,
                 "arena_in_lea_ram": prog.plan.sram.lea},
        "layers": [
            {
                "name": c["name"], "op": c["op"], "in_shape": list(c["in_shape"]), "out_shape": list(c["out_shape"]),
                "design": c["design"].to_dict(), "tiles": c["plan"]["n_tiles"], "units": c["plan"]["n_units"],
                "unit_base": c["unit_base"], "macs": c["plan"]["macs"], "sram_bytes": c["plan"]["sram_bytes"],
                "plan": {k: (list(v) if isinstance(v, tuple) else v) for k, v in c["plan"].items()},
            }
            for c in layers
        ],
    }
    ctx = dict(
        name=prog.name, layers=layers, total_units=total_units, output_len=prog.output_len, sizes=sizes,
        input_shape=prog.qmodel.input_shape, input_len=prog.x_q.size, input_c=_c_ints(prog.x_q),
        act_buffers=act_buffers, expected_c=_c_ints(expected), backend=backend, budgets=prog.budgets,
        memory=mem, manifest=manifest, fram=fram, lea_ram_bytes=prog.plan.platform.lea_ram_bytes, sram=prog.plan.sram,
        dispatch=dispatch, library_files=LIBRARY_FILES,
    )
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), undefined=StrictUndefined,
                      keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    (root / "src").mkdir(parents=True, exist_ok=True)
    (root / "ld").mkdir(exist_ok=True)
    (root / "tools").mkdir(exist_ok=True)
    outputs = {
        "src/aidi_model.h": "aidi_model.h.j2",
        "src/aidi_model.c": "aidi_model.c.j2",
        "src/aidi_sample.c": "aidi_sample.c.j2",
        "src/aidi_expected.c": "aidi_expected.c.j2",
        "Makefile": "Makefile.j2",
        "README.md": "README.md.j2",
        "ld/msp430fr5994_sim.ld": "msp430fr5994_sim.ld.j2",
    }
    for rel, tpl in outputs.items():
        (root / rel).write_text(env.get_template(tpl).render(**ctx))
    for name in _RUNTIME_FILES + ((MICROBENCH_FILE,) if microbench else ()):
        shutil.copyfile(RUNTIME / name, root / "src" / name)
    shutil.copyfile(HERE / "elfsize.py", root / "tools" / "aidi_elfsize.py")
    (root / "aidi_manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    return EmittedProject(root=root, manifest=manifest)
