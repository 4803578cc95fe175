"""A network whose firmware does not fit the mspdebug target's memory map (issue 15, item 13):
`aidi emit-c --build` says which section overflows, by how much, and which target would take it, in one
line with exit status 2 -- before compiling when the arrays alone cannot fit, from ld.lld's report when
the code tips it over."""

import numpy as np
import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.emit import memory_estimate
from aidi.models.emit.examples import random_program
from aidi.models.emit.fit import (HW_FRAM_BYTES, MAX_OBJECT_BYTES, SIM_FRAM_BYTES, FitError, check_sim_fit,
                                  link_overflow)
from aidi.models.schedule import STACK_BYTES, ExecutionDesign

runner = CliRunner()


def _fc(units: list[int]):
    specs = [{"type": "fc", "units": u} for u in units]
    designs = [ExecutionDesign(1, 1, 1, 1, "reuse_O", 1) for _ in units]
    return random_program(specs, (1, 8, 8), np.random.default_rng(0), designs)


def test_an_array_beyond_a_16_bit_object():
    prog = _fc([600, 4])  # 64 x 600 int16 weights = 76800 B in one array
    with pytest.raises(FitError) as e:
        check_sim_fit(prog, memory_estimate(prog))
    msg = str(e.value)
    assert "\n" not in msg and ".rodata array aidi_w0 is 76800 B" in msg
    assert f"by {76800 - MAX_OBJECT_BYTES} B" in msg and "make msp430 HW_MODEL=" in msg


def test_rodata_overflows_fram_below_64k():
    prog = _fc([250, 60])  # 32000 + 30000 B of weights, each array small enough
    mem = memory_estimate(prog)
    with pytest.raises(FitError) as e:
        check_sim_fit(prog, mem)
    msg = str(e.value)
    need = mem["fram_weights"] + mem["fram_input"]
    assert f"section .rodata (weights and biases {mem['fram_weights']} B, sample input 128 B)" in msg
    assert f"overflows FRAM 0x4000-0xFF7F ({SIM_FRAM_BYTES} B) by at least {need - SIM_FRAM_BYTES} B" in msg
    assert "the hardware library build takes it" in msg


def test_beyond_the_fr5994_no_target_takes_it():
    """(The planner already refuses FRAM data beyond the platform's; the fit check says so on its own too.)"""
    prog = _fc([10])
    mem = dict(memory_estimate(prog), fram_weights=HW_FRAM_BYTES)
    with pytest.raises(FitError, match=rf"no MSP430FR5994 target takes it \(its FRAM is {HW_FRAM_BYTES} B\)"):
        check_sim_fit(prog, mem)


def test_small_networks_fit_and_lld_reports_are_read():
    prog = _fc([10])
    mem = memory_estimate(prog)
    check_sim_fit(prog, mem)  # no error
    assert link_overflow("ld.lld: error: undefined symbol: foo", prog, mem) is None
    with pytest.raises(FitError, match=r"section \.persistent overflows region FRAM by 1234 B \(ld\.lld\); the "
                                       r"hardware library build takes it"):
        link_overflow("ld.lld: error: section '.persistent' will not fit in region 'FRAM': overflowed by 1234 bytes",
                      prog, mem)
    with pytest.raises(FitError, match=rf"section \.bss leaves less than the {STACK_BYTES} B stack reserve"):
        link_overflow(f"ld.lld: error: aidi: SRAM buffers leave less than {STACK_BYTES} bytes of stack", prog, mem)


SCENARIO = """
name = "too-big"
[power]
capacitor_F = 1e-3
v_on = 3.0
v_off = 2.0
v_max = 3.3
[harvester]
kind = "constant"
power_W = 5e-3
[model]
input = [1, 8, 8]
layers = [{type = "fc", units = 250}, {type = "fc", units = 30}]
weights = "random"
"""


@pytest.mark.slow
@pytest.mark.toolchain("msp430-sim")
def test_emit_c_build_one_line_when_the_link_overflows(tmp_path):
    """Arrays that fit (47 KB), code that does not: ld.lld's overflow, as one line, exit 2."""
    (tmp_path / "too-big.toml").write_text(SCENARIO)
    r = runner.invoke(app, ["emit-c", str(tmp_path / "too-big.toml"), "--out", str(tmp_path / "c"), "--build"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert "Traceback" not in r.output and len(err.splitlines()) == 1, err
    assert "too-big.toml: the firmware does not fit mspdebug's MSP430FR5994 memory map" in err
    assert "overflows region FRAM by" in err and "the hardware library build takes it" in err


@pytest.mark.toolchain("msp430-sim")
def test_emit_c_build_one_line_when_an_array_cannot_fit(tmp_path, monkeypatch):
    """The pre-compile check through the CLI (the host part is skipped: make host is not what is tested)."""
    from aidi.models.emit import build as mk

    real = mk.make
    monkeypatch.setattr(mk, "make", lambda root, *t, **kw: None if t == ("host",) else real(root, *t, **kw))
    monkeypatch.setattr(mk, "run_host", lambda root, *a, **kw: mk.HostRun(0, None, "", ""))
    (tmp_path / "huge.toml").write_text(SCENARIO.replace('units = 250}, {type = "fc", units = 30}',
                                                         'units = 600}, {type = "fc", units = 4}'))
    r = runner.invoke(app, ["emit-c", str(tmp_path / "huge.toml"), "--out", str(tmp_path / "c"), "--build"])
    assert r.exit_code == 2, r.output
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in r.output, err
    assert ".rodata array aidi_w0 is 76800 B" in err and "the hardware library build takes it" in err
