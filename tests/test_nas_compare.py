"""The comparison's baselines do what they claim (issue 14 items 2-3).

iNAS-style: an LSTM controller trained by REINFORCE on iNAS's reward, latency and designs from iNAS's
cost model and explorer (analysis/inas.py), children trained only when they meet the requirement, the
winner deployed with those designs; every method within its wall-clock budget plus one evaluation.
The experiment itself (minutes to hours) is `make bench-nas` and the README, not a test.
"""

from __future__ import annotations

import json
import math
import time

import numpy as np
import pytest
import torch

from aidi.analysis import nas_run, pipeline
from aidi.analysis.inas import explore_network, inas_network
from aidi.models.nas import space_for
from aidi.models.nas.baselines import (INAS_EPOCHS, InasController, InasReward, inas_subspace, run_inas_search,
                                       scratch_epochs)
from aidi.models.nas.controllers import RLController
from aidi.sim.platform import MSP430FR5994_EXTFRAM
from tests.test_nas_data import write_idx

SPACE = space_for("fashion-mnist")


def spec_of(arch) -> list[int]:
    return [v for s in arch.stages for v in (s.k, s.filters)]


# --------------------------------------------------------------------------- the controller
@pytest.mark.parametrize("make", [lambda: InasController(SPACE, seed=3), lambda: RLController(SPACE, seed=3)],
                         ids=["inas", "rl"])
def test_controller_is_an_lstm_trained_by_reinforce_toward_rewarded_choices(make):
    """Toy reward: +0.1 when the first stage's kernel is option 2 (k = 5), else -0.1."""
    ctl = make()
    assert any(isinstance(m, torch.nn.LSTMCell) for m in ctl.policy.modules())
    names = [n for n, _ in SPACE.decisions()]
    d = names.index("s0.k")

    def p_k5():
        with torch.no_grad():
            h = torch.zeros(1, ctl.policy.hidden)
            h, _ = ctl.policy.cell(ctl.policy.start, (h, torch.zeros_like(h)))
            return float(torch.softmax(ctl.policy.heads[d](h), 1)[0, 2])

    before = p_k5()
    for _ in range(60):
        archs = ctl.ask(1)
        rewards = [0.1 if a.stages[0].k == 5 else -0.1 for a in archs]
        objs = [{"accuracy": 0.5 + r, "hw_feasible": True, "feasible": True} for r in rewards]
        ctl.tell(archs, objs, rewards)
    assert p_k5() > max(0.9, before + 0.4)
    assert ctl.updates == 60


def test_inas_controller_explores_and_replaces_a_third_repeat():
    ctl = InasController(SPACE, seed=0, exploration=0.0)
    a, b, c = (ctl.ask(1)[0] for _ in range(3))  # no training: the greedy choice repeats
    assert a == b and ctl.repeats == 0 and c != a  # the third time it is a random one
    explorer = InasController(SPACE, seed=0, exploration=1.0)
    assert len({explorer.ask(1)[0].id for _ in range(10)}) == 10  # every proposal random


def test_inas_controller_needs_the_rewards():
    ctl = InasController(SPACE)
    with pytest.raises(ValueError, match="needs the rewards"):
        ctl.tell(ctl.ask(1), [{"accuracy": 0.5}])


def test_inas_reward_as_inas_computes_it():
    r = InasReward()
    assert r.infeasible() == -0.1 and r.missed(30.0, 10.0) == -0.1
    assert r.trained(0.8, 5.0, 10.0) == 0.1  # 0.8 - 0 + 0.05, clipped
    assert r.moving_acc == pytest.approx(0.8)  # bias-corrected first update: (0.2 * 0.8) / 0.2
    assert r.trained(0.7, 5.0, 10.0) == pytest.approx(0.7 - 0.8 + 0.05)
    assert r.moving_acc == pytest.approx(0.8 * 0.8 + 0.2 * 0.7)
    r.repeated()
    assert r.moving_acc == pytest.approx(1.2 * 0.78)


def test_inas_space_has_plain_convolutions_only():
    digits = space_for("digits")
    sub = inas_subspace(digits)
    assert all(st.kinds == ("conv",) for st in sub.stages) and sub.input_shape == digits.input_shape
    assert inas_subspace(SPACE) is SPACE


def test_scratch_epochs_follow_the_budget():
    assert scratch_epochs(1e6, 1.0) == INAS_EPOCHS  # iNAS's 25 when the budget allows
    assert scratch_epochs(80.0, 2.0) == 5  # 8 children of 2 s epochs in 80 s
    assert scratch_epochs(1.0, 2.0) == 1 and scratch_epochs(10.0, math.inf) == INAS_EPOCHS


# --------------------------------------------------------------------------- the search loop
def test_inas_search_trains_only_children_that_meet_the_requirement_and_keeps_the_budget():
    calls = []

    def hardware(arch):
        lat = arch.macs() / 1e6
        return {"latency_s": lat, "hw_feasible": True, "reasons": [], "designs": []}

    def train(arch):
        time.sleep(0.02)
        calls.append(arch.id)
        return f"module {arch.id}", 1.0 - 1.0 / (1.0 + arch.macs() / 1e5)

    budget = 0.5
    s = run_inas_search(InasController(SPACE, seed=1, exploration=1.0), hardware, train, 2.0, budget)
    h = s.result.history
    trained = [o for o in h if o["trained"]]
    assert [o["arch_id"] for o in trained] == calls and s.trained == len(calls) > 0
    assert all(o["latency_s"] <= 2.0 for o in trained) and all(o["accuracy"] == 0 for o in h if not o["trained"])
    assert all(o["reward"] == -0.1 for o in h if not o["trained"])
    assert s.best == max(trained, key=lambda o: o["accuracy"]) and s.best_module == f"module {s.best['arch_id']}"
    assert budget <= s.result.wall_s <= budget + max(o["trial_s"] for o in h)  # within the budget + one trial
    one = run_inas_search(InasController(SPACE), hardware, train, 2.0, 0.0)
    assert one.result.evaluations == 1  # the first trial always runs


# --------------------------------------------------------------------------- iNAS's hardware view
def test_inas_hardware_takes_the_designs_inas_explorer_picks():
    sc = pipeline.load_scenario("lab-1mF-brownout")
    hw = nas_run.InasHardware(sc)
    assert (hw.supply.capacitor_F, hw.supply.r_ohm, hw.supply.v_sup) == (1e-3, 150.0, 3.0)
    assert hw.supply.margin == 0.55 and hw.supply.sram_bytes == 2048
    arch = SPACE.sample(np.random.default_rng(4))
    got = hw(arch)
    ref = explore_network(inas_network(spec_of(arch), (1, 28, 28)), hw.supply, MSP430FR5994_EXTFRAM)
    assert got["latency_s"] == pytest.approx(ref["latency_s"], rel=1e-12)
    want = [r["design"].to_dict() for r in ref["layers"]]
    assert got["designs"][:5] == want[:5] and got["designs"][6] == want[6]  # the convs and the FC
    assert got["designs"][5] is None  # the GAP: iNAS tiles its input map, ours its channels
    dep = nas_run.pinned_deployment(sc, arch, got["designs"])
    keys = ("Tr", "Tc", "Tm", "Tn", "loop_order", "S")
    for mine, theirs in zip(dep["designs"], got["designs"]):
        if theirs is not None:
            assert {k: mine[k] for k in keys} == {k: theirs[k] for k in keys}


def test_inas_supply_of_a_trace_is_its_thevenin_equivalent():
    sc = pipeline.load_scenario("rf-intermittent")
    s = nas_run.inas_supply(sc)
    p = sc.power
    v_mid = 0.5 * (p.v_on + p.v_off)
    watts = sc.harvester.segments().typical_power(p.v_off, p.v_on) * p.converter_efficiency
    assert s.v_sup == p.v_max and (s.v_sup - v_mid) * v_mid / s.r_ohm == pytest.approx(watts, rel=1e-12)


# --------------------------------------------------------------------------- the comparison
def test_compare_finalists_span_the_front_from_its_fastest_to_its_most_accurate():
    def obj(i, acc, lat, feasible=True):
        return {"arch_id": f"a{i}", "accuracy": acc, "latency_s": lat, "feasible": feasible}

    hist = [obj(i, 0.5 + 0.04 * i, 1.0 + i) for i in range(9)]  # a front of 9, slower is more accurate
    hist += [obj(20, 0.99, 0.5, feasible=False), obj(21, 0.4, 5.0)]  # infeasible; dominated
    fin = nas_run.compare_finalists(hist)
    assert len(fin) == nas_run.MAX_FINALISTS and fin[0]["arch_id"] == "a0" and fin[-1]["arch_id"] == "a8"
    assert [f["latency_s"] for f in fin] == sorted(f["latency_s"] for f in fin)
    assert all(f["feasible"] and f["arch_id"] != "a21" for f in fin)
    assert nas_run.compare_finalists(hist[:2]) == hist[:2] and nas_run.compare_finalists([]) == []


@pytest.mark.slow
def test_compare_on_tiny_idx_data_keeps_equal_budgets_and_deploys_inas_designs(tmp_path):
    write_idx(tmp_path / "fashion-mnist", n_train=60, n_test=20)
    budget_s = 6.0
    s = nas_run.run_compare("lab-1mF-brownout", budget=2, seed=0, dataset="fashion-mnist", data_dir=tmp_path,
                            out=tmp_path / "out", quick=True, requirements=[20.0], search_budget_s=budget_s)
    assert json.loads((tmp_path / "out" / "compare.json").read_text())["rows"] == json.loads(json.dumps(s["rows"]))
    assert (tmp_path / "out" / "compare.html").exists()
    rows = {r["method"]: r for r in s["rows"]}
    assert set(rows) == {"ours", "inas", "hwnas"} and s["search_budget_s"] == budget_s
    for r in rows.values():
        assert r["budget_s"] == budget_s and r["requirement_s"] == 20.0
        for k in ("search_s", "evaluations", "test_accuracy", "latency_s", "meets", "arch"):
            assert k in r
        if r["meets"]:
            assert r["des_meets_requirement"] and r["latency_s"] <= 20.0
    inas = rows["inas"]
    assert inas["controller"] == "inas-rl" and inas["supernet_s"] == 0.0
    assert inas["search_s"] <= budget_s + max(5.0, inas["child_train_s"])  # the last trial may overrun
    for m in ("ours", "hwnas"):
        assert rows[m]["supernet_s"] == s["supernet_charged_s"] > 0
        fin = rows[m].get("finalists") or []
        if rows[m]["arch"] is not None:  # the pick is a finalist trained from scratch, not dominated by another
            assert rows[m]["arch"] in [f["arch"] for f in fin] and rows[m]["epochs"] == nas_run.COMPARE_FINAL_EPOCHS[True]
            pick = next(f for f in fin if f["arch"] == rows[m]["arch"])
            assert pick["val_accuracy"] == rows[m]["val_accuracy"]
            assert not any(f["val_accuracy"] >= pick["val_accuracy"] and f["latency_s"] <= pick["latency_s"]
                           and f is not pick for f in fin)
        assert rows[m]["search_s"] == pytest.approx(rows[m]["supernet_s"] + rows[m]["search_loop_s"]
                                                    + rows[m]["final_train_s"])
    if inas["arch"] is not None:  # the deployed scenario runs iNAS's designs
        from aidi.models.nas import Arch

        got = nas_run.InasHardware(pipeline.load_scenario("lab-1mF-brownout"))(
            Arch.from_dict({"input": [1, 28, 28], "stages": [dict(kind="conv", k=L["k"], filters=L["filters"], depth=1)
                                                               for L in inas["layers"] if L["type"] == "conv"],
                            "padding": "valid"}))
        texts = [None if d is None else nas_run._design_text(d) for d in got["designs"]]
        assert inas["inas_designs"] == texts
        sc = pipeline.load_scenario(inas["scenario"])
        assert sc.execution.tile[0] == [got["designs"][0][k] for k in ("Tr", "Tc", "Tm", "Tn")]
