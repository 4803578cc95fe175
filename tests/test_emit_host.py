"""Emitted C on the host: -Werror builds, bit-exact outputs, power-failure injection.

Needs make and gcc: the ``toolchain`` marker (tests/conftest.py) skips when they are missing,
or fails under AIDI_REQUIRE_TOOLCHAIN=1.
"""

import re
import shutil

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from aidi.models.emit import emit_project
from aidi.models.emit import build
from aidi.models.emit.examples import random_program, tiny_program
from aidi.models.layers import geometry, parse_network
from aidi.models.schedule import ExecutionDesign

pytestmark = pytest.mark.toolchain("host")

STRICT = "-std=c99 -Wall -Wextra -Werror -pedantic"


def _expected(ir) -> np.ndarray:
    return ir.reference_output()


def _runs(stderr: str) -> tuple[int, int]:
    m = re.search(r"(\d+) runs with power failures, \d+ boots, (\d+) outputs differ", stderr)
    assert m, stderr
    return int(m.group(1)), int(m.group(2))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    ir = tiny_program(0)
    proj = emit_project(ir, tmp_path_factory.mktemp("tiny"))
    proc = build.make(proj.root, "host")
    return ir, proj, proc


def test_host_build_is_strict_c99_and_matches_reference(tiny):
    ir, proj, proc = tiny
    assert STRICT in proc.stdout  # the flags the build really used
    r = build.run_host(proj.root, "--check")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(r.output, _expected(ir))


def test_exhaustive_failure_injection(tiny):
    """A power failure after every single FRAM word write of a clean run, one run each."""
    _, proj, _ = tiny
    r = build.run_host(proj.root, "--check", "--exhaustive", "--stats")
    assert r.returncode == 0, r.stderr
    writes = int(re.search(r"clean run (\d+) FRAM word writes", r.stderr).group(1))
    runs, bad = _runs(r.stderr)
    assert runs == writes + 1 and bad == 0 and writes > 1000


def test_random_and_periodic_failures(tiny):
    _, proj, _ = tiny
    r = build.run_host(proj.root, "--check", "--random", "300", "--seed", "7")
    assert r.returncode == 0 and _runs(r.stderr) == (300, 0), r.stderr
    r = build.run_host(proj.root, "--check", "--every", "400")  # many failures in one inference
    assert r.returncode == 0, r.stderr
    r = build.run_host(proj.root, "--fail-at", "5,17,300,1,2,900")
    assert r.returncode == 0 and _runs(r.stderr) == (1, 0), r.stderr
    # a power cycle too short for the biggest unit: reported, not an endless loop
    r = build.run_host(proj.root, "--every", "20")
    assert r.returncode == 2 and "no progress" in r.stderr


def test_failures_inside_one_large_unit_are_not_a_stall(tmp_path):
    """A hyper-tile of ~1000 FRAM writes (the conv's four tiles in one unit): a finite list of failures that all
    land inside it delays the run but cannot stall it (the list runs out, then a boot completes); only a schedule
    that fails every boot before the unit's end (--every) is a true stall."""
    specs = [{"type": "conv", "k": 3, "filters": 4, "padding": 1, "relu": True}, {"type": "gap"}]
    big = ExecutionDesign(Tr=4, Tc=16, Tm=4, Tn=2, loop_order="reuse_O", S=4)
    ir = random_program(specs, (2, 16, 16), np.random.default_rng(0), [big, None])
    assert ir.plan.layers[0].n_units == 1
    proj = emit_project(ir, tmp_path / "big")
    build.make(proj.root, "host")
    r = build.run_host(proj.root, "--every", "500")  # the unit needs more than 500 writes: no boot commits it
    assert r.returncode == 2 and "no progress" in r.stderr
    r = build.run_host(proj.root, "--check", "--fail-at", "300,300,300,300")  # four boots lose the same work
    assert r.returncode == 0 and re.search(r"1 runs with power failures, 5 boots, 0 outputs differ", r.stderr), \
        r.stderr
    r = build.run_host(proj.root, "--check", "--random", "60", "--seed", "3")
    assert r.returncode == 0 and _runs(r.stderr) == (60, 0), r.stderr
    assert np.array_equal(r.output, _expected(ir))


def test_file_backed_nvm_one_power_cycle_per_process(tiny, tmp_path):
    """NVM in a file: each process is one power cycle (dies after N writes), the next resumes."""
    ir, proj, _ = tiny
    nvm = tmp_path / "fram.bin"
    rng = np.random.default_rng(3)
    for cycle in range(200):
        r = build.run_host(proj.root, "--nvm", str(nvm), "--fail-at", str(int(rng.integers(150, 400))), "--check")
        if r.returncode != 3:
            break
    assert r.returncode == 0, r.stderr
    assert cycle > 3 and np.array_equal(r.output, _expected(ir))


def test_harness_catches_a_non_idempotent_runtime(tiny, tmp_path):
    """Mutant: partial sums updated in place (one slot). Clean runs stay right, failures expose it."""
    _, proj, _ = tiny
    root = tmp_path / "mutant"
    shutil.copytree(proj.root / "src", root / "src")
    shutil.copy(proj.root / "Makefile", root / "Makefile")
    src = (root / "src" / "aidi_runtime.c").read_text()
    src2 = src.replace("const uint16_t wslot = (uint16_t)((k + 1) & 1u);", "const uint16_t wslot = 0; (void)k;")
    src2 = src2.replace("(uint16_t)((t < first + L->stride_n ? k : k + 1) & 1u);", "0;")
    assert src2.count("wslot = 0") == 1 and src2 != src
    (root / "src" / "aidi_runtime.c").write_text(src2)
    build.make(root, "host")
    clean = build.run_host(root, "--check")
    assert clean.returncode == 0, clean.stderr  # without failures the mutant is right
    r = build.run_host(root, "--exhaustive")
    assert r.returncode == 1 and _runs(r.stderr)[1] > 0


def test_extreme_values_saturate_identically(tmp_path):
    """Full-range inputs and weights, biases near the int32 limits, random shifts."""
    for seed in (1, 2):
        ir = tiny_program(seed, extreme=True)
        proj = emit_project(ir, tmp_path / f"x{seed}")
        build.make(proj.root, "host")
        r = build.run_host(proj.root, "--check", "--random", "100")
        assert r.returncode == 0, r.stderr
        assert np.array_equal(r.output, _expected(ir))


def test_lea_backend_exact_and_used(tmp_path):
    """BACKEND=lea: emulated DSPLib msp_mac_q15 where provably exact, CPU otherwise (on the layers the plan
    runs on the LEA, whose arena rows hold its buffers)."""
    for extreme in (False, True):
        ir = tiny_program(4, extreme=extreme, backend="lea")
        proj = emit_project(ir, tmp_path / f"lea{extreme}")
        assert proj.manifest["backend"] == "lea"
        proc = build.make(proj.root, "host")
        assert "-DAIDI_BACKEND_LEA" in proc.stdout
        r = build.run_host(proj.root, "--check", "--stats", "--exhaustive")
        assert r.returncode == 0, r.stderr
        calls, fallbacks, sats = map(int, re.search(
            r"calls (\d+), CPU fallbacks (\d+), emulated saturations (\d+)", r.stderr).groups())
        assert sats == 0 and calls > 0
        if extreme:
            assert fallbacks > 0  # saturating cases go to the CPU
        else:
            assert fallbacks == 0
        assert np.array_equal(r.output, _expected(ir))


def test_sanitizers_and_clang_host(tiny, tmp_path):
    """ASan + UBSan (no overflow, no out-of-bounds, no bad shifts) and clang -pedantic -Werror."""
    _, proj, _ = tiny
    root = tmp_path / "san"
    shutil.copytree(proj.root, root, ignore=shutil.ignore_patterns("build"))
    flags = STRICT + " -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer"
    for backend in ("portable", "lea"):
        build.make(root, "host", variables={"HOST_CFLAGS": flags, "BACKEND": backend})
        r = build.run_host(root, "--check", "--random", "40")
        assert r.returncode == 0, r.stderr
    clang = build.tool("clang")
    if clang:
        build.make(root, "host", variables={"HOST_CC": clang, "HOST_CFLAGS": STRICT + " -O2"})
        assert build.run_host(root, "--check").returncode == 0


KIND_SPECS = st.sampled_from([
    {"type": "conv", "k": 3, "filters": 3, "padding": 1},
    {"type": "conv", "k": 2, "filters": 4, "stride": 2},
    {"type": "dwconv", "k": 3, "padding": 1},
    {"type": "pwconv", "filters": 5, "relu": True},
    {"type": "maxpool", "k": 2, "stride": 1},
    {"type": "avgpool", "k": 2, "stride": 1},
    {"type": "relu"},
])
DESIGNS = st.builds(ExecutionDesign, Tr=st.integers(1, 4), Tc=st.integers(1, 4), Tm=st.integers(1, 4),
                    Tn=st.integers(1, 4), loop_order=st.sampled_from(["reuse_I", "reuse_W", "reuse_O"]),
                    S=st.integers(1, 6))


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.lists(KIND_SPECS, min_size=1, max_size=3), head=st.sampled_from(["fc", "gap"]),
       designs=st.lists(DESIGNS, min_size=4, max_size=4), seed=st.integers(0, 2**16), extreme=st.booleans())
def test_random_networks_and_designs(tmp_path_factory, body, head, designs, seed, extreme):
    """Random architectures x execution designs: bit-exact, and exact under exhaustive failures."""
    specs = list(body) + [{"type": "fc", "units": 3} if head == "fc" else {"type": "gap"}]
    try:
        n = len(geometry(parse_network(specs, [2, 6, 6])))  # standalone relus fuse into the layer before
    except ValueError as exc:  # e.g. three stride-2 convs shrink 6x6 below the next kernel; a leading relu
        assume("larger than padded input" not in str(exc) and "must follow another layer" not in str(exc))
        raise
    ir = random_program(specs, (2, 6, 6), np.random.default_rng(seed), designs[:n], extreme=extreme)
    proj = emit_project(ir, tmp_path_factory.mktemp("rnd"))
    build.make(proj.root, "host")
    r = build.run_host(proj.root, "--check", "--exhaustive")
    assert r.returncode == 0, r.stderr
    assert np.array_equal(r.output, _expected(ir))
