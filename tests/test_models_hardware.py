"""The composition root (models/hardware.py): E_cycle and the unit budget once, compose, the hardware evaluator."""

import pytest

from aidi.analysis import pipeline
from aidi.models import hardware
from aidi.models.nas import Evaluator, ProxyAccuracy
from aidi.models.nas.space import Stage, digits_space
from aidi.sim import oracle
from aidi.sim.config import PowerConfig
from aidi.sim.platform import get_platform

SC = pipeline.load_scenario("lab-1mF")
SP = digits_space()
ARCH = SP.make([Stage("conv", 3, 8, 1), Stage("conv", 3, 16, 1)])


def test_e_cycle_and_unit_budget_by_hand():
    p = PowerConfig(capacitor_F=1e-3, v_on=3.0, v_off=2.0, v_max=3.3, converter_efficiency=0.8)
    # C (V_on^2 - V_off^2) / 2 = 1e-3 * (9 - 4) / 2 = 2.5 mJ from the capacitor, 2.0 mJ after the converter
    assert p.e_store_J == pytest.approx(2.5e-3, rel=1e-15)
    assert p.e_cycle_J == pytest.approx(2.0e-3, rel=1e-15)
    plat = get_platform("msp430fr5994")
    assert hardware.unit_energy_budget(p, plat) == pytest.approx(2.0e-3 - plat.boot_energy_J, rel=1e-15)
    # lab-1mF: 1 mF between 2.99 V and 2.8 V, converter efficiency 1
    assert SC.power.e_cycle_J == pytest.approx(0.5e-3 * (2.99**2 - 2.8**2), rel=1e-12)


def test_design_power_has_the_harvest_term_and_rejects_a_boot_that_eats_the_cycle():
    plat = SC.device.make_platform()
    seg = SC.harvester.segments()
    e, p = hardware.design_power(SC, plat, seg)
    assert e == hardware.unit_energy_budget(SC.power, plat)
    assert p == seg.typical_power(SC.power.v_off, SC.power.v_on) * SC.power.converter_efficiency > 0
    assert hardware.design_power(SC, plat, seg, continuous=True) == (hardware.CONTINUOUS_E_CYCLE_J, None)
    tiny = SC.with_values(**{"power.capacitor_F": 1e-7})  # the smallest plausible capacitor: 55 nJ per cycle
    with pytest.raises(ValueError, match="does not even cover the boot"):
        hardware.design_power(tiny, plat, seg)


def test_evaluator_judges_on_the_designs_aidi_run_chooses():
    hw = hardware.HardwareEvaluator(SC)
    o = hw(ARCH)
    assert o["hw_feasible"] and o["reasons"] == [] and o["mode"] == "intermittent"
    composed = hardware.compose(SC, ARCH.to_layers(), input_shape=ARCH.input_shape)
    assert o["designs"] == [d.to_dict() for d in composed.designs]
    res = oracle.simulate(composed.work, SC.power, composed.segments, SC.sim)
    assert o["latency_s"] == res["latency_s"] and o["power_cycles"] == res["power_cycles"]
    assert o["sram_bytes"] == composed.graph.max_sram_bytes() <= SC.device.sram_budget_bytes
    cont = hardware.HardwareEvaluator(SC, "continuous")(ARCH)
    assert cont["latency_s"] == cont["continuous_latency_s"] and cont["intermittent_latency_s"] is None
    assert hw.key != hardware.HardwareEvaluator(SC, "continuous").key


def test_infeasible_candidate_is_data_with_its_reason():
    small = hardware.HardwareEvaluator(SC.with_values(**{"device.sram_budget_bytes": 300}))(ARCH)
    assert not small["hw_feasible"] and len(small["reasons"]) == 1
    assert "no execution design fits" in small["reasons"][0] and "layer 0 (" in small["reasons"][0]


@pytest.mark.parametrize("where", ["plan_network", "oracle"])
def test_a_bug_propagates_out_of_hardware_evaluation(monkeypatch, where):
    def bug(*a, **k):
        raise ZeroDivisionError("a bug, not an infeasible candidate")

    if where == "oracle":  # the optimizer's and the fitness's oracle calls (Population.evaluate)
        monkeypatch.setattr(oracle.Population, "evaluate", bug)
    else:
        monkeypatch.setattr(hardware, "plan_network", bug)
    with pytest.raises(ZeroDivisionError):
        hardware.HardwareEvaluator(SC)(ARCH)
    with pytest.raises(ZeroDivisionError):  # and out of the NAS's evaluator
        Evaluator(hardware.HardwareEvaluator(SC), ProxyAccuracy(), 1.0).evaluate(ARCH)


def test_nas_evaluator_is_handed_its_hardware_evaluator():
    """Once-for-All's pattern: the search sees only ``hardware(arch) -> dict`` and its key."""
    seen = []

    class Stub:
        key = "stub"
        deadline_s = 2.0

        def __call__(self, arch):
            seen.append(arch.id)
            return {"latency_s": 1.5, "hw_feasible": True, "reasons": []}

    ev = Evaluator(Stub(), ProxyAccuracy())
    o = ev.evaluate(ARCH)
    assert seen == [ARCH.id] and o["feasible"] and o["requirement_s"] == 2.0
    assert not Evaluator(Stub(), ProxyAccuracy(), requirement_s=1.0).evaluate(ARCH)["feasible"]


def test_a_generation_is_one_population_call(monkeypatch):
    """evaluate_many: each candidate's designs from the optimizer, then the fitness of all in one Population
    call; the same objectives as one call per candidate."""
    ev = hardware.HardwareEvaluator(SC)
    one = [ev(ARCH), ev(list(SC.model.layers), list(SC.model.input))]
    events = []
    real_eval, real_prepare = oracle.Population.evaluate, hardware.HardwareEvaluator._prepare

    def spy(self, *a, **k):
        events.append(("population", len(self)))
        return real_eval(self, *a, **k)

    def prepare(self, *a, **k):
        out = real_prepare(self, *a, **k)  # designs by the optimizer (its own oracle calls) and the plan
        events.append(("prepared", 0))
        return out

    monkeypatch.setattr(oracle.Population, "evaluate", spy)
    monkeypatch.setattr(hardware.HardwareEvaluator, "_prepare", prepare)
    many = ev.evaluate_many([ARCH, list(SC.model.layers)], list(SC.model.input))
    last = max(i for i, e in enumerate(events) if e[0] == "prepared")
    assert events[last + 1:] == [("population", 2)]
    for a, b in zip(one, many):
        assert a["latency_s"] == b["latency_s"] and a["designs"] == b["designs"] and b["hw_feasible"]
