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


def test_no_network_is_simulated_twice_in_one_search(monkeypatch):
    """The optimizer's memo: every network the oracle simulates in one search is new, and they are what
    ``evaluations`` counts."""
    from aidi.models.design_search import optimize_designs
    from aidi.sim import oracle

    seen = []
    population = oracle.Population

    def recording(works):
        seen.extend((w.durations_s.tobytes(), w.energy_J.tobytes()) for w in works)
        return population(works)

    monkeypatch.setattr(oracle, "Population", recording)
    platform, ctx, nets = _bench_setup()
    opt = optimize_designs(nets[0], platform, 4096, ctx, alternatives=5)
    assert opt.evaluations == len(seen) == len(set(seen)) > len(nets[0])


@pytest.mark.parametrize("net", [0, 5, 11])
def test_walk_ranked_is_exact_totals_then_walk_design(net):
    """One compiled call of the ranking's stages two and three gives the totals' surrogate and the walks of the
    separate reference calls, bit for bit, walked in the surrogate's (stable) order."""
    from aidi.models import design_search as ds
    from aidi.models.costs import runtime_model
    from aidi.models.costs.fast import geom_vector, platform_vector
    from aidi.models.schedule.closed import exact_totals, walk_design
    from aidi.models.schedule.design import ORDER_AXES
    from aidi.models.schedule.memory import align
    from aidi.models.schedule.rank import surrogate_params, surrogate_s, walk_ranked

    platform, ctx, nets = _bench_setup()
    g = nets[net][1 + net % 4]
    gv, pv, sw = geom_vector(g), platform_vector(platform), runtime_model(platform)
    rng = np.random.default_rng(net)
    tiles = np.ascontiguousarray(ds._tile_grid(g)[rng.choice(len(ds._tile_grid(g)), 8, replace=False)])
    lea = rng.random(8) < 0.5
    n_tiles = [int(np.prod(np.ceil(np.array([g.out_shape[0] / tm, g.in_shape[0] / tn, g.out_shape[1] / tr,
                                                g.out_shape[2] / tc])))) for tr, tc, tm, tn in tiles.tolist()]
    svals = np.array([min(int(rng.choice([1, 2, 4])), n) for n in n_tiles], np.int64)
    units = np.array([-(-n // s_) for n, s_ in zip(n_tiles, svals)], np.float64)
    orders = np.array(list(ORDER_AXES.values()), np.int64)
    sp = surrogate_params(platform, ctx.e_unit_J, 1e-3, True)
    sur, kept, off, costs, n_atom, n_sram, n_tried = walk_ranked(gv, pv, tiles, lea, svals, units, sw, orders, sp,
                                                                 np.inf, 1 << 30, 1 << 30, -1)
    tot = exact_totals(gv, pv, tiles, lea, svals, sw, orders)
    want = [surrogate_s(t[:, 0].sum(), t[:, 1].sum(), u, sp) for t, u in zip(tot.reshape(-1, 3, 2),
                                                                             np.repeat(units, len(orders)))]
    assert sur.tolist() == want
    assert kept.tolist() == np.argsort(want, kind="stable").tolist() and (n_atom, n_sram, n_tried) == (0, 0, 24)
    for q, flat in enumerate(kept.tolist()):
        i, o = divmod(flat, len(orders))
        tr, tc, tm, tn = tiles[i].tolist()
        _, uc, _, _, _ = walk_design(gv, pv, tr, tc, tm, tn, bool(lea[i]), sw, orders[o], int(svals[i]), np.inf,
                                     align(4 * tm * tr * tc))
        assert np.array_equal(costs[off[q]:off[q + 1]], uc)


@pytest.mark.parametrize("shape,channels,tied", [((16, 30, 30), 3, False), ((8, 1, 1), 8, True), ((10, 1, 1), 8, False),
                                                 ((24, 12, 18), 24, True)])
def test_tile_grid_is_every_divisor_tile_in_loop_order(shape, channels, tied):
    from aidi.models.design_search import _tile_grid_cached, divisors

    m, ho, wo = shape
    want = [(tr, tc, tm, tm if tied else tn) for tm in divisors(m) for tn in ([0] if tied else divisors(channels))
            for tr in divisors(ho) for tc in divisors(wo)]
    assert _tile_grid_cached.__wrapped__(shape, channels, tied).tolist() == [list(t) for t in want]


def test_bench_explore_row_times_the_explore_search():
    from aidi.analysis.bench import bench_explore, explore_setup
    from aidi.models.design_search import optimize_designs

    row = bench_explore(quick=True)
    platform, ctx, nets = explore_setup(2)
    evals = [optimize_designs(g, platform, 4096, ctx, alternatives=5).evaluations for g in nets[1:]]
    assert row["networks"] == 2 and row["evaluations_median"] == np.median(evals)
    assert 0 < row["explore_cpu_s_median"] and 0 < row["explore_s_median"] <= row["explore_s_max"]


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    record()
