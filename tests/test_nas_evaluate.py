"""NAS objectives: the cache, the constraints, the reward, the search loop with each controller."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.analysis import pipeline
from aidi.models.hardware import HardwareEvaluator
from aidi.models.nas import (CONTROLLERS, Evaluator, ProxyAccuracy, make_controller, pareto_front, reward,
                             run_search)
from aidi.models.nas.controllers import one_standard_error_pick, standard_error
from aidi.models.nas.space import Stage, digits_space

SC = pipeline.load_scenario("lab-1mF")
SP = digits_space()
HW = HardwareEvaluator(SC)


def test_cache_returns_identical_objectives():
    ev = Evaluator(HW, ProxyAccuracy(), requirement_s=1.0)
    a = SP.sample(np.random.default_rng(0))
    first = ev.evaluate(a)
    again = ev.evaluate(a)
    assert again == first
    assert ev.cache.hits == 1 and len(ev.cache) == 1
    again["accuracy"] = -1  # callers cannot corrupt the cache
    assert ev.evaluate(a) == first
    # a batch with duplicates computes each arch once
    b = SP.sample(np.random.default_rng(1))
    out = ev.evaluate_many([b, a, b])
    assert out[0] == out[2] and out[1] == first and len(ev.cache) == 2
    # another requirement or scenario is another key
    other = Evaluator(HardwareEvaluator(SC.with_values(**{"power.capacitor_F": 2e-3})), ProxyAccuracy(), 1.0,
                      cache=ev.cache)
    assert other.key(a) != ev.key(a)
    assert Evaluator(HardwareEvaluator(SC, "continuous"), ProxyAccuracy(), 1.0).key(a) != ev.key(a)


def test_objectives_and_constraints():
    a = SP.make([Stage("conv", 3, 8, 1), Stage("conv", 3, 16, 1)])
    o = Evaluator(HW, ProxyAccuracy(), requirement_s=100.0).evaluate(a)
    for k in ("accuracy", "latency_s", "continuous_latency_s", "sram_bytes", "feasible", "reasons"):
        assert k in o
    assert o["feasible"] and o["reasons"] == []
    assert o["sram_bytes"] <= SC.device.sram_budget_bytes
    assert o["max_unit_energy_J"] <= o["e_budget_J"]
    assert o["latency_s"] > o["continuous_latency_s"] > 0  # recharging comes on top of computing
    assert len(o["designs"]) == 4  # conv, maxpool, conv, fc (BN folded)
    # the same candidate against a requirement it misses
    tight = Evaluator(HW, ProxyAccuracy(), requirement_s=o["latency_s"] / 2).evaluate(a)
    assert not tight["feasible"] and "exceeds the requirement" in tight["reasons"][0]
    assert tight["hw_feasible"]
    # an SRAM budget nothing fits
    small = HardwareEvaluator(SC.with_values(**{"device.sram_budget_bytes": 300}))(a)
    assert not small["hw_feasible"] and "no execution design fits" in small["reasons"][0]
    # continuous mode (HW-NAS view): compute-only latency
    cont = HardwareEvaluator(SC, "continuous")(a)
    assert cont["latency_s"] == cont["continuous_latency_s"] and cont["intermittent_latency_s"] is None


@settings(max_examples=60, deadline=None)
@given(acc=st.floats(0, 1), lat=st.floats(1e-3, 1e3), dl=st.floats(0, 1e3), req=st.floats(1e-3, 1e3))
def test_reward_never_grows_with_latency(acc, lat, dl, req):
    o = {"accuracy": acc, "hw_feasible": True, "requirement_s": req}
    r1 = reward({**o, "latency_s": lat})
    r2 = reward({**o, "latency_s": lat + dl})
    assert r2 <= r1 <= acc
    assert reward({**o, "latency_s": lat, "hw_feasible": False}) < reward({**o, "latency_s": lat})


@pytest.mark.slow
@pytest.mark.parametrize("name", CONTROLLERS)
def test_each_controller_searches_reproducibly(name):
    def go():
        ev = Evaluator(HW, ProxyAccuracy(), requirement_s=1.0)
        return run_search(make_controller(name, SP, 3, 12), ev, 12, batch=4)

    r = go()
    assert r.evaluations == 12 and len(r.history) == 12
    assert [o["arch_id"] for o in r.history] == [o["arch_id"] for o in go().history]
    front = pareto_front(r.history)
    assert front and all(o["feasible"] and o["latency_s"] <= 1.0 for o in front)
    lat = [o["latency_s"] for o in front]
    acc = [o["accuracy"] for o in front]
    assert lat == sorted(lat) and acc == sorted(acc)
    best = r.best_feasible()
    assert best["feasible"] and best["accuracy"] == max(o["accuracy"] for o in r.feasible())


@pytest.mark.slow
def test_evolution_and_rl_improve_on_their_start():
    for name in ("evolution", "rl"):
        ev = Evaluator(HW, ProxyAccuracy(), requirement_s=2.0)
        r = run_search(make_controller(name, SP, 0, 48), ev, 48, batch=4)
        rw = [o["reward"] for o in r.history]
        assert np.mean(rw[-16:]) > np.mean(rw[:16]), name


# --------------------------------------------------------------------------- the final pick (one-standard-error rule)
finalist = st.fixed_dictionaries({"accuracy": st.floats(0, 1), "latency_s": st.floats(1e-3, 1e3)})


@settings(max_examples=200, deadline=None)
@given(fs=st.lists(finalist, min_size=1, max_size=8), n=st.integers(1, 100_000))
def test_the_pick_is_never_dominated_and_is_the_fastest_within_one_standard_error(fs, n):
    pick = one_standard_error_pick(fs, n)
    best = max(f["accuracy"] for f in fs)
    floor = best - standard_error(best, n)
    assert pick in fs and pick["accuracy"] >= floor
    for f in fs:  # no other finalist is at least as good on both counts and better on one
        assert not (f["accuracy"] >= pick["accuracy"] and f["latency_s"] <= pick["latency_s"]
                    and (f["accuracy"] > pick["accuracy"] or f["latency_s"] < pick["latency_s"]))
        if f["accuracy"] >= floor:
            assert f["latency_s"] >= pick["latency_s"]


def test_the_pick_trades_an_indistinguishable_accuracy_for_latency():
    fs = [{"accuracy": 0.976, "latency_s": 0.60}, {"accuracy": 0.970, "latency_s": 0.37},
          {"accuracy": 0.900, "latency_s": 0.30}]
    # 287 validation images: SE 0.0090, so 0.970 is within it of 0.976 and 0.900 is not
    assert standard_error(0.976, 287) == pytest.approx((0.976 * 0.024 / 287) ** 0.5)
    assert one_standard_error_pick(fs, 287) is fs[1]
    assert one_standard_error_pick(fs, 100_000) is fs[0]  # SE 0.0005: the most accurate
    assert one_standard_error_pick([], 287) is None and standard_error(0.5, 0) == float("inf")


# --------------------------------------------------------------------------- refining the pick along the latency axis
def test_neighbours_change_exactly_one_decision_and_cover_every_option():
    from aidi.models.nas.controllers import neighbours
    from aidi.models.nas.mbconv import mbconv_space

    a = SP.sample(np.random.default_rng(3))
    nb = neighbours(SP, a)
    ca = SP.encode(a)
    assert len(nb) == sum(len(opts) - 1 for _, opts in SP.decisions()) == len({b.id for b in nb})
    for b in nb:
        assert sum(x != y for x, y in zip(ca, SP.encode(b))) == 1
    mb = mbconv_space((1, 28, 28), 10)
    m = mb.smallest()
    nbm = neighbours(mb, m)
    assert nbm and m.id not in {b.id for b in nbm} and len({b.id for b in nbm}) == len(nbm)
    assert all(mb.contains(b) for b in nbm)


def _entry(aid, val, lat, acc=0.5, feasible=True):
    return {"obj": {"arch_id": aid, "latency_s": lat, "accuracy": acc, "feasible": feasible}, "val_accuracy": val}


def test_refine_pick_walks_to_a_faster_neighbour_within_one_standard_error():
    from aidi.models.nas.controllers import refine_pick

    # val accuracies a trained neighbour would reach; n_val 300: SE(0.95) = 0.0126
    truth = {"b": 0.945, "c": 0.80, "d": 0.944, "e": 0.90}
    graph = {  # each member's neighbours: (id, search accuracy, latency)
        "a": [("b", 0.6, 0.8), ("c", 0.7, 0.7), ("x", 0.9, 1.1), ("i", 0.99, 0.5)],
        "b": [("d", 0.5, 0.6), ("e", 0.4, 0.65), ("a", 0.9, 1.0)],
        "d": [],
    }
    trained = []

    def faster(obj):
        out = []
        for aid, acc, lat in graph.get(obj["arch_id"], []):
            out.append({"arch_id": aid, "accuracy": acc, "latency_s": lat, "feasible": aid != "i"})
        return out

    def train(objs):
        trained.append([o["arch_id"] for o in objs])
        return [{"obj": o, "val_accuracy": truth[o["arch_id"]]} for o in objs]

    pool = [_entry("a", 0.95, 1.0), _entry("z", 0.70, 0.4)]
    i, out = refine_pick(pool, 300, faster, train, k=2, rounds=3)
    # round 1: c and b (the two most accurate faster feasible ones; x is slower, i infeasible), b is within
    # the error and faster than a; round 2 from b: d and e; d (0.944, 0.6 s) is within the error of 0.95
    assert trained == [["c", "b"], ["d", "e"]]
    assert out[i]["obj"]["arch_id"] == "d" and out[i]["refined"] == 2
    assert [e.get("refined", 0) for e in out] == [0, 0, 1, 1, 2, 2]
    # the pick keeps its guarantee: nothing trained is both at least as accurate and faster
    assert not any(e["val_accuracy"] >= out[i]["val_accuracy"] and e["obj"]["latency_s"] < out[i]["obj"]["latency_s"]
                   for e in out)


def test_refine_pick_stops_when_the_pick_stays_or_nothing_is_faster():
    from aidi.models.nas.controllers import refine_pick

    calls = []

    def train(objs):
        calls.append(len(objs))
        return [{"obj": o, "val_accuracy": 0.5} for o in objs]  # far below the pick: the pick stays

    def faster(obj):
        return [{"arch_id": f"n{j}", "accuracy": 0.9, "latency_s": 0.1 * j, "feasible": True} for j in range(1, 5)]

    i, out = refine_pick([_entry("a", 0.95, 1.0)], 300, faster, train, k=3, rounds=4)
    assert out[i]["obj"]["arch_id"] == "a" and calls == [3]  # one round: the pick stayed
    i, out = refine_pick([_entry("a", 0.95, 1.0)], 300, lambda o: [], train)
    assert i == 0 and len(out) == 1
    asked = []  # a budget that a round would overrun: no round starts, and it is asked with the pick
    i, out = refine_pick([_entry("a", 0.95, 1.0)], 300, faster, train, may_start=lambda o: asked.append(o) and False)
    assert out[i]["obj"]["arch_id"] == "a" and len(out) == 1 and calls == [3] and asked == [out[0]["obj"]]
    assert refine_pick([], 300, faster, train) == (-1, [])
