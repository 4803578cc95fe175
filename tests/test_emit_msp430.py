"""Emitted C on the MSP430: clang-14/ld.lld-14 build, size report, and mspdebug's simulator
(continuous runs, random power failures, cycles per layer, compiler helpers).

Needs make, clang(-14), ld.lld(-14) and mspdebug: the ``toolchain`` marker (tests/conftest.py)
skips when they are missing, or fails under AIDI_REQUIRE_TOOLCHAIN=1.
"""

import struct
import subprocess

import numpy as np
import pytest

from aidi.models.emit import emit_project
from aidi.models.emit import build, mspsim
from aidi.models.emit.elfsize import format_report, memory_report, sections, symbols
from aidi.models.emit.examples import default_program, tiny_program
from aidi.models.schedule import RUNTIME_STATE_BYTES, STACK_BYTES

pytestmark = pytest.mark.toolchain("msp430-sim")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ir = tiny_program(0)
    proj = emit_project(ir, tmp_path_factory.mktemp("tiny430"))
    proc = build.make(proj.root, "msp430-sim")
    return ir, proj, proc


def _expected(ir):
    return ir.reference_output()


def test_firmware_layout_and_size_report(tiny):
    ir, proj, proc = tiny
    elf = str(proj.sim_elf)
    assert "--target=msp430" in proc.stdout and "-Werror" in proc.stdout
    syms = symbols(elf)
    secs = {s.name: s for s in sections(elf)}
    # reset vector at 0xFFFE -> _start; aidi_output in FRAM; no initialised SRAM data
    vec = secs[".resetvec"]
    assert vec.addr == 0xFFFE and vec.size == 2
    with open(elf, "rb") as f:
        data = f.read()
    shoff, = struct.unpack_from("<I", data, 0x20)
    idx = [s.name for s in sections(elf)].index(".resetvec")
    off = struct.unpack_from("<IIIIIIIIII", data, shoff + idx * 40)[4]
    assert struct.unpack_from("<H", data, off)[0] == syms["_start"][0]
    assert 0x4000 <= syms["aidi_output"][0] < 0xFF80 and syms["aidi_output"][1] == 2 * ir.output_len
    assert ".data" not in secs or secs[".data"].size == 0
    # _start sets SP (mov #imm, r1 = 0x4031) before anything can be pushed
    start = syms["_start"][0] - secs[".text"].addr + struct.unpack_from("<IIIIIIIIII", data, shoff + [
        s.name for s in sections(elf)].index(".text") * 40)[4]
    assert struct.unpack_from("<HH", data, start) == (0x4031, 0x3C00)
    rep = memory_report(elf, ir.budgets.fram_bytes, ir.budgets.sram_bytes)
    assert rep["fits"] and rep["fram_bytes"] > rep["fram_sections"][".persistent"] > 0
    # the SRAM the firmware takes is the plan's figure: .bss (arena + runtime state) + the stack reserve
    assert rep["sram_bytes"] == ir.plan.sram_bytes <= ir.budgets.sram_bytes
    assert rep["stack_reserve_bytes"] == STACK_BYTES
    assert rep["sram_data_bytes"] == ir.plan.sram.arena_bytes + RUNTIME_STATE_BYTES
    assert "FRAM" in format_report(rep) and "FRAM" in proc.stdout  # make msp430-sim prints it
    ok = build.make(proj.root, "size")
    assert "ok" in ok.stdout
    with pytest.raises(build.BuildError):  # over budget: make size fails
        build.make(proj.root, "size", variables={"FRAM_BUDGET": "1000"})


@pytest.mark.toolchain("sim")
def test_continuous_run_matches_reference(tiny):
    ir, proj, _ = tiny
    r = mspsim.run_firmware(proj.sim_elf, ir.output_len, hwmult=False)
    assert np.array_equal(r.output, _expected(ir)) and r.boots == 1 and r.cycles > r.instructions


@pytest.mark.toolchain("sim")
def test_random_power_failures_on_the_simulator(tiny):
    """Power fails at random instruction counts; SRAM and registers are junk at every boot."""
    ir, proj, _ = tiny
    clean = mspsim.run_firmware(proj.sim_elf, ir.output_len)
    rng = np.random.default_rng(11)
    for trial in range(3):
        # power cycles shorter than a clean run, so the inference spans several of them
        fails = mspsim.random_failure_schedule(rng, 4, clean.instructions // 2)
        r = mspsim.run_firmware(proj.sim_elf, ir.output_len, failures=fails, rng=rng)
        assert r.boots == 5 and r.instructions > clean.instructions
        assert np.array_equal(r.output, _expected(ir)), (trial, fails)
    # failures in the very first instructions (before/while SP is set) and right after done
    r = mspsim.run_firmware(proj.sim_elf, ir.output_len, failures=[1, 2, 3, clean.instructions + 50], rng=rng)
    assert np.array_equal(r.output, _expected(ir))


@pytest.mark.toolchain("sim")
def test_cycles_per_layer(tiny):
    ir, proj, _ = tiny
    lc = mspsim.measure_layer_cycles(proj.sim_elf, len(ir.layers), ir.output_len)
    assert np.array_equal(lc.output, _expected(ir))
    assert len(lc.layer_cycles) == len(ir.layers) and min(lc.layer_cycles) > 0
    assert lc.boot_cycles + sum(lc.layer_cycles) < lc.total_cycles  # + the final marker and aidi_done call
    # after the last marker: the output's copy to the caller's buffer, the delivery commit, aidi_done
    assert lc.total_cycles - lc.boot_cycles - sum(lc.layer_cycles) < 100 + 10 * ir.output_len
    assert 0 < lc.stack_peak_bytes <= STACK_BYTES  # the plan's (and the linker script's) stack reserve


@pytest.mark.toolchain("sim")
def test_hwmult_and_lea_emulation_builds(tmp_path):
    """SIM_HWMULT=1 (mspdebug's MPY peripheral) and BACKEND=lea (emulated DSPLib) on the MSP430."""
    ir = default_program(0)
    proj = emit_project(ir, tmp_path / "d")
    build.make(proj.root, "msp430-sim", variables={"SIM_HWMULT": "1", "BACKEND": "lea"})
    fast = mspsim.run_firmware(proj.sim_elf, ir.output_len, hwmult=True)
    assert np.array_equal(fast.output, _expected(ir))
    build.make(proj.root, "msp430-sim")
    slow = mspsim.run_firmware(proj.sim_elf, ir.output_len, hwmult=False)
    assert np.array_equal(slow.output, _expected(ir)) and slow.cycles > fast.cycles


@pytest.mark.toolchain("sim")
def test_sim_run_target(tiny):
    ir, proj, _ = tiny
    out = build.make(proj.root, "sim-run").stdout
    vals = mspsim._md_bytes(out)
    assert np.array_equal(np.frombuffer(vals, "<i2"), _expected(ir))


def test_hardware_target_explains_missing_toolchain(tiny):
    _, proj, _ = tiny
    if build.tool("make") is None:
        pytest.skip("make missing")
    if subprocess.run(["sh", "-c", "command -v msp430-elf-gcc"], capture_output=True).returncode == 0:
        pytest.skip("msp430-elf-gcc is installed: the hardware build is not a failure here")
    with pytest.raises(build.BuildError) as e:
        build.make(proj.root, "msp430")
    assert "msp430-elf-gcc not found" in str(e.value) and "MSP430-GCC" in str(e.value)


# --------------------------------------------------------------------------- compiler helpers
HELPER_TEST = r"""
#include "aidi_runtime.h"
#define N {n}
#define P __attribute__((section(".persistent")))
P volatile int16_t a16[N] = {{ {a16} }};
P volatile int16_t b16[N] = {{ {b16} }};
P volatile int16_t s16[N] = {{ {s16} }};
P volatile int32_t a32[N] = {{ {a32} }};
P volatile int32_t b32[N] = {{ {b32} }};
P volatile int16_t r16[8][N] = {{ {{0}} }};
P volatile int32_t r32[8][N] = {{ {{0}} }};

void aidi_boot(void)
{{
    uint16_t i;
    for (i = 0; i < N; ++i) {{
        int16_t a = a16[i], b = b16[i], s = s16[i];
        int32_t c = a32[i], d = b32[i];
        r16[0][i] = (int16_t)(uint16_t)((uint16_t)a * (uint16_t)b);
        r16[1][i] = (int16_t)(a / b);
        r16[2][i] = (int16_t)(a % b);
        r16[3][i] = (int16_t)((uint16_t)a / (uint16_t)b);
        r16[4][i] = (int16_t)((uint16_t)a % (uint16_t)b);
        r16[5][i] = (int16_t)((uint16_t)a << (s & 15));
        r16[6][i] = (int16_t)(a >> (s & 15));
        r16[7][i] = (int16_t)((uint16_t)a >> (s & 15));
        r32[0][i] = (int32_t)((uint32_t)c * (uint32_t)d);
        r32[1][i] = c / d;
        r32[2][i] = c % d;
        r32[3][i] = (int32_t)((uint32_t)c / (uint32_t)d);
        r32[4][i] = (int32_t)((uint32_t)c % (uint32_t)d);
        r32[5][i] = (int32_t)((uint32_t)c << s);
        r32[6][i] = c >> s;
        r32[7][i] = aidi_mul16(a, b);
    }}
    aidi_done();
}}
"""


def _cdiv(a, b):
    q = abs(a) // abs(b)
    return q if (a < 0) == (b < 0) else -q


def _wrap(v, bits):
    v &= (1 << bits) - 1
    return v - (1 << bits) if v >> (bits - 1) else v


@pytest.mark.toolchain("sim")
@pytest.mark.parametrize("hwmult", [False, True])
def test_compiler_helpers_on_the_simulator(tiny, tmp_path, hwmult):
    """__mspabi_* (mul, div, rem, shifts) and aidi_mul16 against C semantics, on mspdebug."""
    _, proj, _ = tiny
    rng = np.random.default_rng(5)
    n = 48
    e16 = [-32768, 32767, -1, 1, 0, -32767, 12345, -2]
    a16 = e16 + rng.integers(-32768, 32768, n - len(e16)).tolist()
    b16 = [v if v != 0 else 3 for v in [1, -1, 7, -32768, 5, 32767, -3, 2] + rng.integers(-32768, 32768, n - 8).tolist()]
    b16 = [b if not (a == -32768 and b == -1) else 1 for a, b in zip(a16, b16)]  # no int16 overflow in a / b
    s16 = rng.integers(0, 32, n).tolist()
    e32 = [-(2**31), 2**31 - 1, -1, 1, 0, 65536, -65537, 123456789]
    a32 = e32 + rng.integers(-(2**31), 2**31, n - len(e32)).tolist()
    b32 = [v if v != 0 else 9 for v in [3, -7, 2**31 - 1, -(2**31), 65535, -1, 1, 40000]
           + [int(v) >> int(k) for v, k in zip(rng.integers(-(2**31), 2**31, n - 8), rng.integers(0, 31, n - 8))]]
    b32 = [b if not (a == -(2**31) and b == -1) else 1 for a, b in zip(a32, b32)]
    lit32 = lambda v: "INT32_MIN" if v == -(2**31) else f"{v}L"  # noqa: E731
    lit16 = lambda v: "INT16_MIN" if v == -32768 else str(v)  # noqa: E731
    root = tmp_path / "helpers"
    (root / "src").mkdir(parents=True)
    for f in ("aidi_platform.h", "aidi_runtime.h", "aidi_model.h", "aidi_mspabi.c", "platform_msp430.c"):
        (root / "src" / f).write_bytes((proj.root / "src" / f).read_bytes())
    (root / "src" / "helpers.c").write_text(HELPER_TEST.format(
        n=n, a16=", ".join(map(lit16, a16)), b16=", ".join(map(lit16, b16)), s16=", ".join(map(str, s16)),
        a32=", ".join(map(lit32, a32)), b32=", ".join(map(lit32, b32))))
    ld = proj.root / "ld" / "msp430fr5994_sim.ld"
    flags = ["--target=msp430", "-std=c99", "-O2", "-ffreestanding", "-fno-builtin", "-ffunction-sections",
             "-DAIDI_TARGET_MSP430_SIM", "-Wall", "-Wextra", "-Werror", f"-I{root / 'src'}"]
    if hwmult:
        flags.append("-DAIDI_SIM_HWMULT")
    objs = []
    for c in ("helpers.c", "aidi_mspabi.c", "platform_msp430.c"):
        o = root / (c + ".o")
        subprocess.run([build.tool("clang"), *flags, "-c", str(root / "src" / c), "-o", str(o)], check=True)
        objs.append(str(o))
    elf = root / "helpers.elf"
    subprocess.run([build.tool("lld"), "-T", str(ld), "--gc-sections", "-o", str(elf), *objs], check=True)
    out = mspsim.run_mspdebug([f"prog {elf}", "simio add hwmult mpy", "setbreak aidi_done", "run",
                               f"md r16 {2 * 8 * n}", f"md r32 {4 * 8 * n}"], timeout=60)
    raw = mspsim._md_bytes(out)
    r16 = np.frombuffer(raw[: 16 * n], "<i2").reshape(8, n)
    r32 = np.frombuffer(raw[16 * n:], "<i4").reshape(8, n)
    u16 = lambda v: v & 0xFFFF  # noqa: E731
    u32 = lambda v: v & 0xFFFFFFFF  # noqa: E731
    for i in range(n):
        a, b, s, c, d = a16[i], b16[i], s16[i], a32[i], b32[i]
        want16 = [_wrap(a * b, 16), _cdiv(a, b), a - _cdiv(a, b) * b, _wrap(u16(a) // u16(b), 16),
                  _wrap(u16(a) % u16(b), 16), _wrap(u16(a) << (s & 15), 16), a >> (s & 15), _wrap(u16(a) >> (s & 15), 16)]
        want32 = [_wrap(c * d, 32), _cdiv(c, d), c - _cdiv(c, d) * d, _wrap(u32(c) // u32(d), 32),
                  _wrap(u32(c) % u32(d), 32), _wrap(u32(c) << s, 32), c >> s, a * b]
        assert r16[:, i].tolist() == want16, (i, a, b, s)
        assert r32[:, i].tolist() == want32, (i, c, d, s)


STUB_MSP430_H = """
#define PM5CTL0 (*(volatile unsigned int *)0x0130u)
#define LOCKLPM5 (0x0001u)
#define LPM4_bits (0x00F0u)
#define __bis_SR_register(x) __asm__ volatile("bis %0, r2" : : "ri"((unsigned int)(x)))
"""
STUB_DSPLIB_H = """
#include <stdint.h>
typedef int16_t _q15;
typedef int32_t _iq31;
typedef enum { MSP_SUCCESS = 0 } msp_status;
typedef struct { uint16_t length; } msp_mac_q15_params;
msp_status msp_mac_q15(const msp_mac_q15_params *params, const _q15 *srcA, const _q15 *srcB, _iq31 *result);
"""


def test_hardware_sources_compile_against_ti_style_headers(tiny, tmp_path):
    """The AIDI_TARGET_MSP430_HW paths (main, LPM4 idle, GPIO unlock, DSPLib/LEA kernel with
    .leaRAM buffers) compile warning-free; stub headers stand in for msp430.h and DSPLib.h."""
    proj = emit_project(tiny_program(0, backend="lea"), tmp_path / "lea")  # the plan puts the arena in LEA RAM
    (tmp_path / "msp430.h").write_text(STUB_MSP430_H)
    (tmp_path / "DSPLib.h").write_text(STUB_DSPLIB_H)
    flags = ["--target=msp430", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffreestanding",
             "-DAIDI_TARGET_MSP430_HW", "-DAIDI_BACKEND_LEA", "-DAIDI_HAVE_DSPLIB",
             f"-I{tmp_path}", f"-I{proj.root / 'src'}"]
    for src in ("aidi_runtime.c", "aidi_kernels_cpu.c", "aidi_kernels_lea.c", "aidi_dsplib_emu.c",
                "aidi_model.c", "platform_msp430.c"):
        obj = tmp_path / (src + ".o")
        subprocess.run([build.tool("clang"), *flags, "-c", str(proj.root / "src" / src), "-o", str(obj)],
                       check=True, capture_output=True)
    lea = [s for s in sections(str(tmp_path / "aidi_runtime.c.o")) if s.name == ".leaRAM"]
    assert lea and lea[0].size == proj.manifest["sram"]["arena_bytes"]  # the arena goes to LEA RAM on hardware


@pytest.mark.toolchain("sim")
def test_quantized_model_end_to_end(tmp_path):
    """QModel + plan -> C: host and simulator firmware give q15.reference_forward's output."""
    pytest.importorskip("torch")
    from aidi.models import q15
    from aidi.models.emit import Program
    from aidi.models.net import random_model
    from aidi.models.schedule import ExecutionDesign as ED
    from aidi.models.schedule import plan_network

    specs = [{"type": "conv", "k": 3, "filters": 4, "relu": True}, {"type": "bn"},
             {"type": "maxpool", "k": 2}, {"type": "fc", "units": 5}]
    tm = random_model(specs, [1, 8, 8], seed=1)
    qm = q15.quantize(tm)
    x = qm.quantize_input(tm.dataset.x_test[0])
    designs = [ED(3, 2, 2, 1, "reuse_W", 4), ED(1, 3, 4, 1, "reuse_O", 2), ED(1, 1, 5, 16, "reuse_O", 2)]
    ir = Program(qm, plan_network(qm, designs, "msp430fr5994", backend="cpu"), x, name="digits")
    want = q15.reference_forward(qm, x)[-1].reshape(-1)
    proj = emit_project(ir, tmp_path / "q")
    build.make(proj.root, "host", "msp430-sim")
    assert np.array_equal(build.run_host(proj.root, "--check").output, want)
    run = mspsim.run_firmware(proj.sim_elf, ir.output_len, failures=[30000, 50000, 20000])
    assert np.array_equal(run.output, want)
