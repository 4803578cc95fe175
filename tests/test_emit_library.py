"""The emitted C as a library (issue 15, item 23): ``aidi_infer(const int16_t *input, int16_t *output)``,
resumable across power failures; the sample input lives only in the host harness and the simulator build.

An application of our own links only the library sources (runtime, kernels, the network) and calls
``aidi_infer`` on inputs that are not the sample: one inference after another (the progress record's epoch
wraps), and a second inference cut after every single FRAM write and resumed by calling again.
"""

import subprocess

import numpy as np
import pytest

from aidi.models.emit import build, emit_project
from aidi.models.emit.emitter import LIBRARY_FILES
from aidi.models.emit.examples import tiny_program
from aidi.models.q15 import reference_forward

APP = r"""
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include "aidi_runtime.h"

/* the platform hooks an application on the host provides */
static jmp_buf power;
static unsigned long writes, fail_at;
void aidi_host_nvm_wrote(void) { ++writes; if (fail_at && writes == fail_at) longjmp(power, 1); }
void aidi_host_unit(uint32_t g) { (void)g; }
void aidi_platform_init(void) {}
void aidi_layer_mark(uint16_t layer) { (void)layer; }
void aidi_done(void) {}
uint16_t aidi_vcc_mv(void) { return 65535u; }
void aidi_vcc_wait_mv(uint16_t mv) { (void)mv; }

static const int16_t inputs[2][AIDI_INPUT_LEN] = { { %(x0)s }, { %(x1)s } };
static int16_t out[AIDI_OUTPUT_LEN];

static void print(void)
{
    int i;
    for (i = 0; i < AIDI_OUTPUT_LEN; ++i) printf("%%s%%d", i ? " " : "", out[i]);
    printf("\n");
}

/* aidi_infer on input k, power failing at the fail-th FRAM write (0: never); calls again after it */
static int infer(int k, unsigned long fail)
{
    volatile int calls = 0;
    writes = 0;
    fail_at = fail;
    if (setjmp(power)) {
        size_t n, b;
        int s;
        unsigned char *p;
        for (s = 0; (p = aidi_sram_state(s, &n)) != 0; ++s)
            for (b = 0; b < n; ++b) p[b] = (unsigned char)(0xA5 ^ (b * 7u)); /* SRAM junk */
        fail_at = 0;
    }
    ++calls;
    aidi_infer(inputs[k], out);
    fail_at = 0;
    return calls;
}

int main(void)
{
    static unsigned char image[8][4096];
    unsigned long clean_writes, p;
    int j, bad = 0, resumed = 0;
    uint16_t r;
    for (j = 0; j < 6; ++j) { /* x0 x1 x0 x1 x0 x1: more inferences than the 2-bit epoch counts */
        infer(j %% 2, 0);
        print();
    }
    clean_writes = writes; /* one inference (on x1) from the delivered state */
    for (r = 0; r < aidi_n_nvm_regions; ++r) memcpy(image[r], aidi_nvm_regions[r].ptr, aidi_nvm_regions[r].bytes);
    infer(0, 0);
    print(); /* x0 once more: its output, as the reference */
    {
        int16_t want[AIDI_OUTPUT_LEN];
        memcpy(want, out, sizeof want);
        for (p = 1; p <= clean_writes + 1; ++p) { /* x0 cut after write p, resumed by calling again */
            for (r = 0; r < aidi_n_nvm_regions; ++r) memcpy(aidi_nvm_regions[r].ptr, image[r], aidi_nvm_regions[r].bytes);
            memset(out, 0, sizeof out);
            resumed += infer(0, p) > 1;
            bad += memcmp(out, want, sizeof want) != 0;
        }
    }
    printf("cut %%lu resumed %%d differ %%d\n", clean_writes + 1, resumed, bad);
    return bad != 0;
}
"""


def _ints(x) -> str:
    return ", ".join("INT16_MIN" if v == -32768 else str(int(v)) for v in np.asarray(x).reshape(-1))


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    prog = tiny_program(0)
    return prog, emit_project(prog, tmp_path_factory.mktemp("lib"))


def test_the_sample_input_is_not_in_the_library(tiny):
    prog, proj = tiny
    src = proj.root / "src"
    assert "aidi_model.c" in LIBRARY_FILES and "aidi_sample.c" not in LIBRARY_FILES
    assert "aidi_app.c" not in LIBRARY_FILES and "host_main.c" not in LIBRARY_FILES
    sample = (src / "aidi_sample.c").read_text()
    assert f"{_ints(prog.x_q[0, 0, :6])}" in sample  # the sample's first values, in its own file
    for name in LIBRARY_FILES:
        text = (src / name).read_text()
        assert "aidi_sample_input[" not in text or text.count("aidi_sample_input[") == text.count(
            "extern const int16_t aidi_sample_input["), name
        assert _ints(prog.x_q.reshape(-1)[:12]) not in text, name
    makefile = (proj.root / "Makefile").read_text()
    assert "SRC_SAMPLE := src/aidi_app.c src/aidi_sample.c" in makefile
    assert "HW_SRC := $(SRC_CORE) src/platform_msp430.c" in makefile  # the hardware library: no sample
    header = (src / "aidi_model.h").read_text()
    assert f"#define AIDI_INPUT_LEN {prog.x_q.size}" in header


@pytest.mark.toolchain("host")
def test_an_application_of_our_own_links_the_library(tiny, tmp_path):
    prog, proj = tiny
    rng = np.random.default_rng(9)
    xs = [rng.integers(-8192, 8193, size=prog.x_q.shape).astype(np.int16) for _ in range(2)]
    want = [np.asarray(reference_forward(prog.qmodel, x)[-1], np.int16).reshape(-1) for x in xs]
    assert not np.array_equal(want[0], want[1])
    app = tmp_path / "app.c"
    app.write_text(APP % {"x0": _ints(xs[0]), "x1": _ints(xs[1])})
    src = proj.root / "src"
    lib = [str(src / f) for f in ("aidi_runtime.c", "aidi_kernels_cpu.c", "aidi_model.c")]
    exe = tmp_path / "app"
    subprocess.run([build.tool("gcc"), "-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2",
                    "-DAIDI_TARGET_HOST", f"-I{src}", "-o", str(exe), str(app), *lib], check=True, capture_output=True)
    r = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    outs = [np.array([int(v) for v in line.split()], np.int16) for line in lines[:7]]
    for j, o in enumerate(outs):
        assert np.array_equal(o, want[j % 2]), j
    cut, resumed, differ = (int(v) for v in lines[7].split()[1::2])
    assert differ == 0 and cut > 100 and resumed == cut - 1  # the last cut point is past the delivery
