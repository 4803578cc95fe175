"""The latency optimizer's choices against the ones it made before it was made fast (issue 21, item 3).

``explore_choices.json`` next to this file holds, per case, the designs (``"Tr_Tc_Tm_Tn_order_S/backend"`` per
executed layer) and the oracle latency (s) of one inference that :func:`aidi.models.design_search.optimize_designs`
chose at commit 21613ba, before the optimizer's speed-ups; it was written on that commit by :func:`record`
(``python tests/test_explore_choices.py --record``, with the same networks and setup written out inline).  The cases: the 16 iNAS CIFAR-10 networks
of ``aidi bench``'s explore row (:func:`aidi.analysis.bench.explore_setup`, after the warm-up one) on
iNAS's platform and supply, and every shipped scenario.  Today's optimizer must choose the same designs, or
designs the oracle finds faster (never slower).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

FIXTURE = Path(__file__).with_name("explore_choices.json")
SCENARIOS = ("continuous", "lab-1mF", "lab-1mF-brownout", "rf-intermittent", "solar-tmy3", "weak-source")
N_NETWORKS = 16


def _bench_setup():
    from aidi.analysis.bench import explore_setup

    platform, ctx, nets = explore_setup(N_NETWORKS)
    return platform, ctx, nets[1:]


def _names(designs) -> list[str]:
    from aidi.analysis.explore import design_name

    return [f"{design_name(d)}/{d.backend}" for d in designs]


def _choose_network(i: int):
    from aidi.models.design_search import optimize_designs

    platform, ctx, nets = _bench_setup()
    return optimize_designs(nets[i], platform, 4096, ctx, alternatives=0)


def _choose_scenario(name: str):
    from aidi.analysis import pipeline
    from aidi.models import hardware
    from aidi.scenarios import loader

    sc = loader.load(name)
    return hardware.optimize(sc, list(pipeline.model_geometry(sc)), alternatives=0)


def _cases():
    return [(f"net{i}", lambda i=i: _choose_network(i)) for i in range(N_NETWORKS)] + \
        [(name, lambda name=name: _choose_scenario(name)) for name in SCENARIOS]


def record() -> None:
    """Write the fixture from the optimizer of the checked-out commit (run on the commit before a change)."""
    out = {}
    for key, choose in _cases():
        opt = choose()
        out[key] = {"designs": _names(opt.designs), "latency_s": opt.latency_s}
    FIXTURE.write_text(json.dumps(out, indent=1) + "\n")


@pytest.mark.parametrize("key", [k for k, _ in _cases()])
def test_same_designs_or_faster_by_the_oracle(key):
    old = json.loads(FIXTURE.read_text())[key]
    opt = dict(_cases())[key]()
    assert np.isfinite(opt.latency_s)
    if _names(opt.designs) == old["designs"]:
        assert opt.latency_s == pytest.approx(old["latency_s"], rel=1e-12)
    else:  # a different choice only when the oracle finds it strictly faster
        assert opt.latency_s < old["latency_s"] * (1 - 1e-12)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    record()
