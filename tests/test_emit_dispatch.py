"""Energy-aware dispatch in the emitted C runtime (issue 12, item 2).

* The start thresholds the emitter writes are the engines' own (same function, same Workload), in mV
  rounded up.
* On the host, a simulated capacitor fed by a constant source: energy_aware loses no unit whenever the
  source gives at least the modelled power (a property over the power), greedy under the same source does
  lose units; outputs stay bit-exact either way.
* Correctness never depends on the thresholds: with failures injected anyway (after every FRAM write, at
  random write counts; on mspdebug at random instruction counts) the outputs stay bit-exact.
* On mspdebug the supply voltage is the FRAM word ``aidi_sim_vcc_mv`` that the harness writes: below a
  unit's threshold the firmware waits before committing anything, and completes once it is raised.
"""

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aidi.models.emit import Program, build, emit_project, mspsim
from aidi.models.emit.dispatch import (Dispatch, boot_known_mv2, millivolts2_up, millivolts_up, units_on_boot_seed,
                                      workload)
from aidi.models.emit.examples import tiny_program
from aidi.sim.config import PowerConfig
from aidi.sim.dispatch import check_thresholds, known_drops
from aidi.sim.workload import NonProgressError

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
#: a capacitor under which the tiny network's units all have thresholds below V_on
ROOMY = PowerConfig(capacitor_F=1e-4, v_on=3.0, v_off=2.0, v_max=3.3, leakage_A=1e-6, converter_efficiency=0.9)


def _aware(prog, power=ROOMY, margin=0.05) -> Program:
    return Program(prog.qmodel, prog.plan, prog.x_q, name=prog.name, dispatch=Dispatch("energy_aware", power, margin))


def _capacitor(stderr: str) -> dict:
    stats = build.capacitor_stats(stderr)
    assert stats, stderr
    return {"boots": stats["boots"], "started": stats["units_started"], "lost": stats["units_lost"],
            "waits": stats["threshold_waits"], "wait_s": stats["wait_s"], "t_s": stats["time_s"],
            "measures": stats["measurements"]}


@pytest.fixture(scope="module")
def weak():
    """The shipped weak-source scenario (1 mW into 100 uF, V_on 2.8 V, V_off 2.0 V): greedy loses units there."""
    from aidi.analysis import pipeline

    return pipeline.build(pipeline.load_scenario(SCENARIOS / "weak-source.toml"))


def test_dispatch_is_validated():
    with pytest.raises(ValueError, match="dispatch must be one of greedy, energy_aware"):
        Dispatch("sometimes")
    with pytest.raises(ValueError, match="energy_aware needs the power configuration"):
        Dispatch("energy_aware")
    with pytest.raises(ValueError, match="margin"):
        Dispatch("greedy", ROOMY, float("nan"))
    assert millivolts_up(np.array([2.8, 2.0000001, 2.0])).tolist() == [2800, 2001, 2000]
    assert millivolts2_up(np.array([0.1, 1e-7, 1e-6, 0.0])).tolist() == [100000, 1, 1, 0]
    with pytest.raises(ValueError, match="voltage drops"):
        millivolts2_up(np.array([-1e-3]))


def test_thresholds_are_the_engines_rounded_up(weak, tmp_path):
    """The table holds the engines' V_start (check_thresholds on the very Workload the engines run) in mV,
    never below it and less than 1 mV above."""
    sc = weak.scenario
    prog = Program(weak.qmodel, weak.plan, weak.x_q, dispatch=Dispatch("energy_aware", sc.power, 0.05))
    work = workload(weak.plan)
    assert np.array_equal(work.energy_J, weak.work.energy_J) and np.array_equal(work.durations_s, weak.work.durations_s)
    v = check_thresholds(weak.work, sc.power, 0.05)
    proj = emit_project(prog, tmp_path / "c")
    mv = np.array(proj.manifest["dispatch"]["v_start_mv"], dtype=np.float64)
    assert len(mv) == proj.manifest["total_units"] == len(weak.work)
    assert np.all(mv / 1000.0 >= v) and np.all(mv - v * 1000.0 < 1.0)
    model_c = (tmp_path / "c" / "src" / "aidi_model.c").read_text()
    table = re.search(r"aidi_v_start_mv\[AIDI_TOTAL_UNITS\] = \{(.*?)\};", model_c, re.S).group(1)
    assert [int(x) for x in re.findall(r"(\d+)u", table)] == mv.astype(int).tolist()
    assert "#define AIDI_DISPATCH_ENERGY_AWARE 1" in (tmp_path / "c" / "src" / "aidi_model.h").read_text()
    assert proj.manifest["memory_estimate"]["fram_v_start"] == 2 * len(mv)
    assert proj.manifest["memory_estimate"]["fram_v_drop"] == 4 * len(mv)
    # the voltage drops: the engines' 2 E_need / C in mV^2, never below it and less than 1 mV^2 above
    drop = np.array(proj.manifest["dispatch"]["v_drop_mv2"], dtype=np.float64)
    ref = known_drops(weak.work.energy_J, weak.work.durations_s, weak.work.dispatch_costs,
                      sc.power.converter_efficiency, sc.power.capacitor_F, sc.power.v_max, sc.power.leakage_A, 0.05)
    assert np.all(drop / 1e6 >= ref) and np.all(drop - ref * 1e6 < 1.0) and np.all(mv**2 >= v**2 * 1e6)
    table = re.search(r"aidi_v_drop_mv2\[AIDI_TOTAL_UNITS\] = \{(.*?)\};", model_c, re.S).group(1)
    assert [int(x) for x in re.findall(r"(\d+)u", table)] == drop.astype(int).tolist()


def test_a_unit_that_can_never_start_is_the_engines_error(tmp_path):
    tiny = tiny_program(0)
    tight = PowerConfig(capacitor_F=1e-7, v_on=2.05, v_off=2.0, v_max=3.3)
    with pytest.raises(NonProgressError, match=r"needs V_start = .* under dispatch = energy_aware .* can never be"):
        emit_project(_aware(tiny, tight), tmp_path / "a")
    # greedy with the same power: no table, and an energy_aware build of it stops at the preprocessor
    proj = emit_project(Program(tiny.qmodel, tiny.plan, tiny.x_q, dispatch=Dispatch("greedy", tight)), tmp_path / "g")
    assert proj.manifest["dispatch"]["v_start_mv"] is None
    assert "#define AIDI_HAVE_V_START 0" in (tmp_path / "g" / "src" / "aidi_model.h").read_text()


# --------------------------------------------------------------------------- host: simulated capacitor
@pytest.fixture(scope="module")
def weak_host(weak, tmp_path_factory):
    """The weak-source project built twice: energy_aware and greedy."""
    sc = weak.scenario
    prog = Program(weak.qmodel, weak.plan, weak.x_q, dispatch=Dispatch("energy_aware", sc.power, 0.05))
    out = {}
    for policy in ("energy_aware", "greedy"):
        proj = emit_project(prog, tmp_path_factory.mktemp(policy))
        build.make(proj.root, "host", variables={"DISPATCH": policy})
        out[policy] = proj
    return prog, out


@pytest.mark.toolchain("host")
def test_greedy_loses_units_where_energy_aware_loses_none(weak, weak_host):
    prog, projs = weak_host
    p_model = weak.scenario.harvester.power_W  # the modelled source power (1 mW)
    aware = build.run_host(projs["energy_aware"].root, "--capacitor", repr(p_model), "--check")
    assert aware.returncode == 0, aware.stderr
    a = _capacitor(aware.stderr)
    assert a["lost"] == 0 and a["started"] == len(weak.work) and a["waits"] > 0
    assert a["waits"] <= a["measures"] <= a["started"]
    greedy = build.run_host(projs["greedy"].root, "--capacitor", repr(p_model), "--check")
    assert greedy.returncode == 0, greedy.stderr  # re-executed units, same output
    g = _capacitor(greedy.stderr)
    assert g["lost"] > 0 and g["started"] == len(weak.work) + g["lost"] and g["boots"] > 1
    assert np.array_equal(aware.output, prog.reference_output()) and np.array_equal(greedy.output, aware.output)


@pytest.mark.toolchain("host")
def test_host_capacitor_agrees_with_the_engines(tmp_path):
    """weak-source planned for energy_aware: the harness's boots, lost units, waits and time against the oracle
    on the same plan, under both policies (the harness starts at V_on; the engines first charge from 0 V)."""
    from dataclasses import replace

    from aidi.analysis import pipeline
    from aidi.sim import oracle

    text = (SCENARIOS / "weak-source.toml").read_text().replace("[model]", '[execution]\ndispatch = "energy_aware"\n\n[model]')
    (tmp_path / "ws.toml").write_text(text)
    b = pipeline.build(pipeline.load_scenario(tmp_path / "ws.toml"))
    sc = b.scenario
    proj = emit_project(Program(b.qmodel, b.plan, b.x_q, dispatch=Dispatch.of_scenario(sc)), tmp_path / "c")
    first_charge_s = 0.5 * sc.power.capacitor_F * sc.power.v_on ** 2 / sc.harvester.power_W
    for policy in ("energy_aware", "greedy"):
        build.make(proj.root, "host", variables={"DISPATCH": policy})
        c = _capacitor(build.run_host(proj.root, "--capacitor", repr(sc.harvester.power_W), "--check").stderr)
        sim = oracle.simulate(b.work, sc.power, b.segments, replace(sc.sim, dispatch=policy))
        assert (c["boots"], c["lost"], c["waits"], c["measures"]) == (
            sim["power_cycles"], sim["units_reexecuted"], sim["threshold_waits"], sim["measurements"]), (policy, c, sim)
        assert c["t_s"] + first_charge_s == pytest.approx(sim["latency_s"], rel=1e-4), policy
        assert c["wait_s"] == pytest.approx(sim["wait_s"], rel=1e-4, abs=1e-9), policy


@pytest.mark.toolchain("host")
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(factor=st.floats(1.0, 1000.0))
def test_energy_aware_loses_no_unit_at_or_above_the_modelled_power(weak, weak_host, factor):
    _, projs = weak_host
    p = weak.scenario.harvester.power_W * factor
    r = build.run_host(projs["energy_aware"].root, "--capacitor", repr(p), "--check")
    assert r.returncode == 0, r.stderr
    assert _capacitor(r.stderr)["lost"] == 0


@pytest.mark.toolchain("host")
def test_capacitor_option_needs_a_power_model(tmp_path):
    proj = emit_project(tiny_program(0), tmp_path / "c")  # no Dispatch power: no model
    build.make(proj.root, "host")
    r = build.run_host(proj.root, "--capacitor", "1e-3")
    assert r.returncode == 2 and "no power model" in r.stderr


@pytest.fixture(scope="module")
def tiny_aware(tmp_path_factory):
    prog = _aware(tiny_program(0))
    return prog, emit_project(prog, tmp_path_factory.mktemp("tiny_aware"))


@pytest.mark.toolchain("host")
def test_failures_injected_anyway_stay_bit_exact(tiny_aware):
    """energy_aware build; power cut after every FRAM write of a clean run, and at random write counts."""
    prog, proj = tiny_aware
    proc = build.make(proj.root, "host")
    assert "-DAIDI_DISPATCH_ENERGY_AWARE=1" in proc.stdout
    r = build.run_host(proj.root, "--check", "--exhaustive", "--random", "200", "--seed", "3", "--stats")
    assert r.returncode == 0, r.stderr
    runs, bad = map(int, re.search(r"(\d+) runs with power failures, \d+ boots, (\d+) outputs differ",
                                   r.stderr).groups())
    writes = int(re.search(r"clean run (\d+) FRAM word writes", r.stderr).group(1))
    assert runs == writes + 1 + 200 and bad == 0
    assert np.array_equal(r.output, prog.reference_output())
    # and the capacitor model with the tiny network: waits, nothing lost, same output
    r = build.run_host(proj.root, "--capacitor", "2e-4", "--check")
    assert r.returncode == 0 and _capacitor(r.stderr)["lost"] == 0 and _capacitor(r.stderr)["waits"] > 0, r.stderr


@pytest.mark.toolchain("host")
@pytest.mark.parametrize("p_src", [2e-4, 1e-2])
def test_host_measures_only_when_it_must_as_the_engines(tiny_aware, p_src):
    """The tiny network (83 units) on the host's capacitor: as many voltage reads and threshold waits as the
    oracle's ``measurements`` and ``threshold_waits`` on the same plan; under a source stronger than the MCU a
    few reads carry all the units (the runtime's known bound on V^2 in mV^2 against the engines' in V)."""
    from dataclasses import replace

    from aidi.sim import harvesters as hv
    from aidi.sim import oracle
    from aidi.sim.config import SimConfig

    prog, proj = tiny_aware
    build.make(proj.root, "host")
    c = _capacitor(build.run_host(proj.root, "--capacitor", repr(p_src), "--check").stderr)
    work = workload(prog.plan)
    sim = oracle.simulate(work, replace(ROOMY, v_initial=ROOMY.v_on), hv.constant(p_src),
                          SimConfig(dispatch="energy_aware"))
    assert (c["boots"], c["lost"], c["waits"], c["measures"]) == (
        sim["power_cycles"], sim["units_lost"], sim["threshold_waits"], sim["measurements"])
    assert c["started"] == len(work) and c["lost"] == 0
    if p_src > 1e-3:
        assert c["waits"] == 0 and 0 < c["measures"] <= len(work) // 10


# --------------------------------------------------------------------------- mspdebug
@pytest.fixture(scope="module")
def tiny_aware_sim(tiny_aware):
    prog, proj = tiny_aware
    build.make(proj.root, "msp430-sim")
    return prog, proj


@pytest.mark.toolchain("sim")
def test_simulator_waits_below_the_threshold_then_completes(tiny_aware_sim):
    prog, proj = tiny_aware_sim
    mv = proj.manifest["dispatch"]["v_start_mv"]
    r = mspsim.probe_dispatch_wait(proj.sim_elf, prog.output_len, low_mv=min(mv) - 1, high_mv=max(mv))
    # the boot's known bound (aidi_v_boot_mv2) carries the first k units unmeasured: it waits before unit k
    k = units_on_boot_seed(mv, proj.manifest["dispatch"]["v_drop_mv2"], boot_known_mv2(workload(prog.plan), ROOMY, 0.05))
    assert 0 < k < len(mv)
    assert r.threshold_mv == mv[k]
    words = np.frombuffer(r.progress, dtype="<u2").reshape(2, 4)
    valid = [int(w[0]) | (int(w[1]) & 0x3FFF) << 16 for w in words
             if w[2] == (~w[0] & 0xFFFF) and w[3] == (~w[1] & 0xFFFF)]
    assert max(valid) == k  # units 0..k-1 committed, nothing of unit k
    assert np.array_equal(r.output, prog.reference_output())


def test_the_boot_seed_is_the_engines_rounded_down(tiny_aware, tmp_path):
    """aidi_v_boot_mv2 = V_on^2 - 2 E_boot_need / C in mV^2 rounded down (workload.boot_known for a source that
    never draws), in the emitted const; only the boot path (aidi_infer_at_boot, the sample application's) uses it;
    the units it carries are those the oracle starts unmeasured after the first boot under a strong source."""
    import math
    from dataclasses import replace

    from aidi.sim import harvesters as hv
    from aidi.sim import oracle
    from aidi.sim.config import SimConfig
    from aidi.sim.dispatch import boot_known

    prog, proj = tiny_aware
    work = workload(prog.plan)
    seed = boot_known(work.boot_J, work.boot_s, ROOMY.converter_efficiency, ROOMY.capacitor_F, ROOMY.v_on,
                      ROOMY.v_max, ROOMY.leakage_A, 0.05, math.inf)
    x = boot_known_mv2(work, ROOMY, 0.05)
    assert x / 1e6 <= seed**2 and seed**2 * 1e6 - x < 1.0 + 1e-6 * x * 1e-6
    src = proj.root / "src"
    assert re.search(r"const uint32_t aidi_v_boot_mv2 = (\d+)u;", (src / "aidi_model.c").read_text()).group(1) == str(x)
    assert "aidi_infer_at_boot(aidi_sample_input" in (src / "aidi_app.c").read_text()
    assert "aidi_v_boot_mv2" not in re.search(r"void aidi_infer\(.*?\n}", (src / "aidi_runtime.c").read_text(),
                                              re.S).group(0)
    tight = PowerConfig(capacitor_F=1e-7, v_on=2.05, v_off=2.0, v_max=3.3)  # the boot alone drains it
    assert boot_known_mv2(work, tight, 0.05) == 0
    # the oracle: a source stronger than the MCU, V_initial = V_on; the first measurement is before unit k
    mv, drop = proj.manifest["dispatch"]["v_start_mv"], proj.manifest["dispatch"]["v_drop_mv2"]
    k = units_on_boot_seed(mv, drop, x)
    sim = oracle.simulate(work, replace(ROOMY, v_initial=ROOMY.v_on), hv.constant(1e-2), SimConfig(dispatch="energy_aware"))
    assert sim["measurements"] > 0

    def first(m):  # the first m units alone
        return oracle.simulate(replace(work, names=work.names[:m], layers=work.layers[:m],
                                       durations_s=work.durations_s[:m], energy_J=work.energy_J[:m]),
                               replace(ROOMY, v_initial=ROOMY.v_on), hv.constant(1e-2),
                               SimConfig(dispatch="energy_aware"))["measurements"]
    assert (first(k), first(k + 1)) == (0, 1)


@pytest.mark.toolchain("sim")
def test_simulator_failures_at_random_instructions_stay_bit_exact(tiny_aware_sim):
    prog, proj = tiny_aware_sim
    clean = mspsim.run_firmware(proj.sim_elf, prog.output_len, vcc_mv=3300)
    assert np.array_equal(clean.output, prog.reference_output())
    rng = np.random.default_rng(5)
    for _ in range(2):
        fails = mspsim.random_failure_schedule(rng, 4, clean.instructions // 2)
        r = mspsim.run_firmware(proj.sim_elf, prog.output_len, failures=fails, rng=rng, vcc_mv=3300)
        assert np.array_equal(r.output, prog.reference_output()), fails


@pytest.mark.toolchain("msp430-sim")
def test_hardware_dispatch_compiles_against_ti_style_headers(tiny_aware, tmp_path):
    """The FR5994 paths (ADC12_B read, COMP_E + LPM3 wait, its interrupt vector) of an energy_aware library
    compile warning-free with the stub msp430.h of the hardware compile-check; no main, no sample input."""
    from aidi.models.emit.elfsize import sections, symbols

    from tests.test_emit_msp430 import STUB_MSP430_H

    _, proj = tiny_aware
    (tmp_path / "msp430.h").write_text(STUB_MSP430_H)
    flags = ["--target=msp430", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffreestanding",
             "-DAIDI_TARGET_MSP430_HW", f"-I{tmp_path}", f"-I{proj.root / 'src'}"]
    objs = {}
    for src in ("aidi_runtime.c", "aidi_kernels_cpu.c", "aidi_model.c", "platform_msp430.c"):
        objs[src] = tmp_path / (src + ".o")
        subprocess.run([build.tool("clang"), *flags, "-c", str(proj.root / "src" / src), "-o", str(objs[src])],
                       check=True, capture_output=True)
    plat = {s.name: s for s in sections(str(objs["platform_msp430.c"]))}
    assert plat["__interrupt_vector_52"].size == 2 and ".lowtext" in plat  # COMP_E (0xFFF8) -> its handler
    syms = set()
    for o in objs.values():
        syms |= set(symbols(str(o)))
    assert {"aidi_infer", "aidi_vcc_mv", "aidi_vcc_wait_mv", "aidi_v_start_mv", "aidi_comp_e_isr"} <= syms
    assert not {"main", "aidi_sample_input", "aidi_boot"} & syms
