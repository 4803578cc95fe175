"""Tiling: coverage of every output exactly once, schedule invariants, costs, SRAM checks, auto design."""

import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from aidi.models.layers import LayerGeom, default_network, geometry, parse_network
from aidi.models.design_search import auto_design, design_network, divisors, resolve_designs, s_candidates
from aidi.models.schedule import (LOOP_ORDERS, PRESERVATIONS, RUNTIME_STATE_BYTES, STACK_BYTES, ExecutionDesign,
                                  evaluate_design, plan_layer, plan_network)
from aidi.models.schedule.design import (F_INIT_BIAS, F_INIT_PSUM, F_LOAD_IN, F_LOAD_W, F_WRITE_OUT,
                                         F_WRITE_PSUM)
from aidi.sim.platform import MSP430FR5994, MSP430FR5994_EXTFRAM
from aidi.sim.taskgraph import UNIT_CATEGORIES, TaskGraph

P = MSP430FR5994


@st.composite
def layer_geom(draw):
    """Any executed layer: rectangular kernels, per-axis strides, asymmetric zero padding, residual adds."""
    op = draw(st.sampled_from(["conv", "dwconv", "fc", "maxpool", "avgpool", "add"]))
    c = draw(st.integers(1, 6))
    if op == "fc":
        m = draw(st.integers(1, 7))
        return LayerGeom(0, "fc", "fc", (c * draw(st.integers(1, 4)), 1, 1), (m, 1, 1), 1, 1, 1, 0,
                         draw(st.booleans()), True)
    if op == "add":
        h, w = draw(st.integers(1, 9)), draw(st.integers(1, 9))
        return LayerGeom(0, "add", "add", (c, h, w), (c, h, w), 1, 1, 1, 0, draw(st.booleans()), False,
                         src=((0, 0), (1, 0)), dst=(2, 0))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    pads = tuple(draw(st.integers(0, k - 1)) for k in (kh, kw, kh, kw))
    h, w = draw(st.integers(max(1, kh - pads[0] - pads[2]), 9)), draw(st.integers(max(1, kw - pads[1] - pads[3]), 9))
    ho, wo = (h + pads[0] + pads[2] - kh) // sh + 1, (w + pads[1] + pads[3] - kw) // sw + 1
    m = draw(st.integers(1, 6)) if op == "conv" else c
    return LayerGeom(0, op, op, (c, h, w), (m, ho, wo), kh, kw, sh, pads[0], draw(st.booleans()),
                     op in ("conv", "dwconv"), stride_w=sw, pads=pads)


@st.composite
def design_for(draw, g: LayerGeom, order=None):
    m, ho, wo = g.out_shape
    return ExecutionDesign(draw(st.integers(1, ho)), draw(st.integers(1, wo)), draw(st.integers(1, m)),
                           draw(st.integers(1, g.in_shape[0])), order or draw(st.sampled_from(LOOP_ORDERS)),
                           draw(st.integers(1, 9)), draw(st.sampled_from(PRESERVATIONS)))


@st.composite
def layer_and_design(draw):
    g = draw(layer_geom())
    return g, draw(design_for(g))


@settings(max_examples=150, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]))
def test_schedule_covers_every_output_exactly_once(gd, backend):
    g, d = gd
    try:
        lp = plan_layer(g, d, P, 8192, backend)
    except ValueError as e:
        assert "SRAM" in str(e) or "LEA" in str(e)
        assume(False)
    tab, tl = lp.tables, lp.tiles
    M, Ho, Wo = g.out_shape
    mt, nt, rt, ct = lp.grid
    assert lp.n_tiles == mt * nt * rt * ct
    assert lp.n_units == math.ceil(lp.n_tiles / lp.design.S)
    final = np.zeros(g.out_shape, np.int64)
    visits = {}  # output tile -> list of n-tile indices in schedule order
    for t in range(lp.n_tiles):
        mi, ni, ri, ci = tl["idx"][t]
        visits.setdefault((mi, ri, ci), []).append(ni)
        if tl["flags"][t] & F_WRITE_OUT:
            m0, r0, c0 = tab.m0[mi], tab.r0[ri], tab.c0[ci]
            final[m0:m0 + tab.tm[mi], r0:r0 + tab.tr[ri], c0:c0 + tab.tc[ci]] += 1
    assert (final == 1).all()
    # every (output tile, input-channel tile) pair exactly once, input channels ascending
    assert len(visits) == mt * rt * ct
    assert all(v == list(range(nt)) for v in visits.values())
    # input-channel tiles cover [0, N) exactly (tied ops: the output channels themselves)
    if not g.channel_tied:
        cover = np.zeros(g.in_shape[0], int)
        for n0, tn in zip(tab.n0, tab.tn):
            cover[n0:n0 + tn] += 1
        assert (cover == 1).all()


@pytest.mark.parametrize("platform", [P, MSP430FR5994_EXTFRAM], ids=["runtime-spills", "inas-slots"])
@settings(max_examples=120, deadline=None)
@given(gd=layer_and_design())
def test_units_are_idempotent_by_construction(platform, gd):
    """Both accumulator protocols (the emitted runtime's spills on the FR5994 preset, iNAS-style slots on
    the iNAS preset): a unit trusts nothing in SRAM, a block's first touch in a unit reads the committed
    partial sums, a later touch the ones this unit wrote, and a unit never overwrites the committed ones."""
    g, d = gd
    try:
        lp = plan_layer(g, d, platform, 8192, "cpu")
    except ValueError:
        assume(False)
    tl = lp.tiles
    committed = {}
    for k in range(lp.n_units):
        tiles = list(lp.unit_tiles(k))
        f0 = tl["flags"][tiles[0]]
        assert f0 & F_LOAD_IN and (f0 & F_LOAD_W or not g.weighted)  # nothing trusted from SRAM
        wrote, live = {}, None  # versions this unit wrote; the block whose accumulators are in SRAM
        for t in tiles:
            fl = tl["flags"][t]
            o = tuple(tl["idx"][t][[0, 2, 3]])
            ni = tl["idx"][t][1]
            if not g.weighted:
                continue
            assert bool(fl & F_INIT_BIAS) == (ni == 0 and live != o)
            if fl & F_INIT_PSUM:
                assert ni > 0
                assert tl["rd"][t] == wrote.get(o, committed.get(o)), "reads the latest version"
            elif ni > 0 and platform is P:
                assert live == o  # no pass: the block's sums are still in SRAM from the adjacent tile
            live = o
            if fl & F_WRITE_PSUM:
                assert tl["wr"][t] != committed.get(o, -1)  # never overwrites what a re-execution reads
                wrote[o] = tl["wr"][t]
            if fl & (F_WRITE_PSUM | F_WRITE_OUT) and platform is P:
                live = None  # written back: the next touch re-initialises
        committed.update(wrote)


@settings(max_examples=60, deadline=None)
@given(layer_geom(), st.data())
def test_compute_cost_independent_of_schedule(g, data):
    d = data.draw(design_for(g))
    costs = [evaluate_design(g, replace(d, loop_order=o, S=s, preservation="hypertile"), P, 8192, "lea")
             for o in LOOP_ORDERS for s in (1, 3)]
    comp = [c.by_category["compute"] for c in costs]
    assert np.allclose(comp, comp[0], rtol=1e-12)
    sw = P.cpu_sw  # the on-chip preset is costed as the emitted runtime under every backend
    for c in costs:
        assert c.cycles > 0 and c.energy_J > 0 and c.max_unit_energy_J <= c.energy_J * (1 + 1e-12)
        # preservation: the runtime's unit (scheduler + progress commit) per unit, and aidi_block_version's
        # division per tile of n tile > 0 when the block's n tiles are fewer than S tiles apart
        (M, Ho, Wo), dd = g.out_shape, c.design
        mt, rt, ct = -(-M // dd.Tm), -(-Ho // dd.Tr), -(-Wo // dd.Tc)
        nt = 1 if g.channel_tied else -(-g.in_shape[0] // dd.Tn)
        stride_n = {"reuse_O": 1, "reuse_I": mt, "reuse_W": rt * ct}[dd.loop_order]  # nests m r c n / r c n m / m n r c
        vdiv = (nt - 1) * mt * rt * ct if g.weighted and stride_n < dd.S else 0
        assert c.by_category["preservation"] == pytest.approx(
            (c.n_units * sw.unit + vdiv * sw.version_div) * P.energy_per_cycle_J, rel=1e-12, abs=0)
    # one unit for the whole layer moves no more data than one unit per tile
    one = evaluate_design(g, replace(d, preservation="layer"), P, 8192, "lea")
    per_tile = evaluate_design(g, replace(d, preservation="tile"), P, 8192, "lea")
    assert one.by_category["data_movement"] <= per_tile.by_category["data_movement"] * (1 + 1e-12)


def conv_geom():
    return geometry(parse_network([{"type": "conv", "k": 3, "filters": 8, "padding": 1}], [6, 8, 8]))[0]


def test_loop_orders_reuse_what_they_say():
    g = conv_geom()  # grid Mt=4, Nt=3, Rt=2, Ct=2 for the design below
    base = ExecutionDesign(4, 4, 2, 2, "reuse_O", 1, "layer")

    def count(order, flag):
        lp = plan_layer(g, replace(base, loop_order=order), P, 8192, "lea")
        return int((lp.tiles["flags"] & flag != 0).sum())

    assert count("reuse_I", F_LOAD_IN) == 3 * 2 * 2  # each input tile once
    assert count("reuse_W", F_LOAD_W) == 4 * 3  # each weight tile once
    assert count("reuse_O", F_WRITE_PSUM) == 0 and count("reuse_O", F_INIT_PSUM) == 0
    assert count("reuse_O", F_LOAD_IN) == 4 * 3 * 2 * 2
    # reuse_I with one unit: iNAS-style slots keep all outputs of an input tile live (Mt slots); the
    # emitted runtime spills them to FRAM between touches and holds one accumulator block
    lp = plan_layer(g, replace(base, loop_order="reuse_I"), MSP430FR5994_EXTFRAM, 8192, "lea")
    assert lp.slots == 4 and lp.sram["acc"][1] == 4 * (2 * 4 * 4 * 4)
    lp = plan_layer(g, replace(base, loop_order="reuse_I"), P, 8192, "lea")
    assert lp.slots == 1 and lp.sram["acc"][1] == 4 * (2 * 4 * 4)
    assert int((lp.tiles["flags"] & F_WRITE_PSUM != 0).sum()) == 4 * 2 * 2 * 2  # every touch but the last n


def test_sram_buffers_and_footprint():
    """One layout on every preset: the emitted runtime's arena rows (one accumulator block, on a LEA layer the
    LEA's Q31 result, sum|w| per output channel and one im2col vector (3*9 = 27 words, padded to 28), the
    weight tile with the same even stride, the input tile), plus its fixed state and the stack."""
    g = conv_geom()
    d = ExecutionDesign(2, 4, 4, 3, "reuse_O", 1)
    tri, tci = 2 - 1 + 3, 4 - 1 + 3
    rows = {"acc": (0, 128), "lea_mac": (128, 4), "lea_wabs": (132, 16), "lea_vec": (148, 56),
            "weights": (204, 2 * 4 * 28), "input": (428, 2 * 3 * tri * tci)}
    for platform in (P, MSP430FR5994_EXTFRAM):
        lp = plan_layer(g, d, platform, 4096, "lea")
        assert lp.sram == rows
        assert lp.sram_bytes == 572 + RUNTIME_STATE_BYTES + STACK_BYTES
        spans = sorted(lp.sram.values())
        assert all(o % 4 == 0 for o, _ in spans)
        assert all(a[0] + a[1] <= b[0] for a, b in zip(spans, spans[1:]))  # no overlap
    cpu = plan_layer(g, d, P, 4096, "cpu")
    assert cpu.sram == {"acc": (0, 128), "weights": (128, 224), "input": (352, 144)}
    pool = plan_layer(geometry(parse_network([{"type": "maxpool", "k": 2}], [3, 8, 8]))[0],
                      ExecutionDesign(2, 2, 3, 3), P, 4096)
    assert pool.sram == {"input": (0, 2 * 3 * 4 * 4)}


def test_network_sram_is_the_largest_layer_and_lea_arena_fits_lea_ram():
    """The network's one SRAM figure is its largest layer's; a plan with a LEA layer keeps every layer's
    arena rows (a CPU pool's too) within the LEA RAM, since its one arena sits there."""
    specs = [{"type": "conv", "k": 3, "filters": 4, "padding": 1}, {"type": "maxpool", "k": 2}]
    geoms = geometry(parse_network(specs, [4, 32, 32]))
    small = [ExecutionDesign(2, 2, 4, 4), ExecutionDesign(2, 2, 4, 4)]
    plan = plan_network(geoms, small, P, 8192, backend="lea")
    assert plan.sram_bytes == max(lp.sram_bytes for lp in plan.layers) == plan.task_graph().max_sram_bytes()
    assert plan.sram.arena_bytes + RUNTIME_STATE_BYTES + STACK_BYTES == plan.sram_bytes and plan.sram.lea
    big_pool = [small[0], ExecutionDesign(16, 16, 4, 4)]  # 4 x 32 x 32 input tile: 8192 B
    with pytest.raises(ValueError, match="SRAM footprint 8492 B exceeds budget 8192 B"):
        plan_network(geoms, big_pool, P, 8192, backend="cpu")
    half_pool = [small[0], ExecutionDesign(8, 16, 4, 4)]  # 4096 B: over LEA RAM, fine without a LEA layer
    assert plan_network(geoms, half_pool, P, 8192, backend="cpu").sram.arena_bytes == 4096
    with pytest.raises(ValueError, match=r"layer 1 \(maxpool\): SRAM arena 4096 B .* exceeds LEA RAM 3784 B"):
        plan_network(geoms, half_pool, P, 8192, backend="lea")


def test_sram_budget_error_names_buffer():
    g = conv_geom()
    with pytest.raises(ValueError) as e:
        plan_layer(g, ExecutionDesign(8, 8, 8, 6, "reuse_O", 1), P, 2048, "lea")
    msg = str(e.value)
    assert msg.startswith("layer 0 (conv): SRAM footprint") and "exceeds budget 2048 B" in msg
    assert "acc 2048 B (1 slot)" in msg and "largest: acc" in msg and "\n" not in msg
    with pytest.raises(ValueError, match="exceeds the msp430fr5994 SRAM"):
        plan_layer(g, ExecutionDesign(1, 1, 1, 1), P, 10000)


def test_design_validation():
    with pytest.raises(ValueError, match="Tr must be a positive integer"):
        ExecutionDesign(0, 1, 1, 1)
    with pytest.raises(ValueError, match="loop_order must be one of"):
        ExecutionDesign(1, 1, 1, 1, "reuse_X")
    with pytest.raises(ValueError, match="preservation must be one of"):
        ExecutionDesign(1, 1, 1, 1, "reuse_O", 1, "unit")
    with pytest.raises(ValueError, match="backend must be one of"):
        ExecutionDesign(1, 1, 1, 1, backend="gpu")
    g = conv_geom()
    with pytest.raises(ValueError, match=r"layer 0 \(conv\): Tm=9 exceeds output channels 8"):
        plan_layer(g, ExecutionDesign(1, 1, 9, 1), P, 4096)
    with pytest.raises(ValueError, match="Tn=7 exceeds input channels 6"):
        plan_layer(g, ExecutionDesign(1, 1, 1, 7), P, 4096)
    lp = plan_layer(geometry(default_network())[2], ExecutionDesign(1, 1, 4, 99, S=50), P, 4096)
    assert lp.design.Tn == 4 and lp.design.S == lp.n_tiles == 16  # tied Tn; S clipped


def brute_force(g, budget, e_cycle, backend, platform=P):

    best = None
    m, ho, wo = g.out_shape
    tns = [None] if g.channel_tied else divisors(g.in_shape[0])
    for tr in divisors(ho):
        for tc in divisors(wo):
            for tm in divisors(m):
                for tn in tns:
                    for order in LOOP_ORDERS:
                        d0 = ExecutionDesign(tr, tc, tm, tn or tm, order, 1)
                        nt = evaluate_design(g, d0, platform, budget, backend).n_tiles
                        for s in s_candidates(nt):
                            c = evaluate_design(g, replace(d0, S=s), platform, budget, backend)
                            if c.sram_reason is None and c.max_unit_energy_J <= e_cycle:
                                if best is None or c.cycles < best.cycles:
                                    best = c
    return best


@pytest.mark.parametrize("layer, shape", [
    ({"type": "conv", "k": 3, "filters": 4}, [3, 6, 6]),
    ({"type": "dwconv", "k": 3, "padding": 1}, [4, 4, 4]),
    ({"type": "fc", "units": 6}, [8, 2, 2]),
    ({"type": "maxpool", "k": 2}, [4, 6, 4]),
])
@pytest.mark.parametrize("e_cycle", [5e-6, 1e-3])
def test_auto_design_is_feasible_and_optimal(layer, shape, e_cycle):
    g = geometry(parse_network([layer], shape))[0]
    budget = 1024
    d, cost = auto_design(g, MSP430FR5994_EXTFRAM, budget, e_cycle, backend="lea", return_cost=True)
    assert cost.sram_reason is None and cost.sram_bytes <= budget and cost.max_unit_energy_J <= e_cycle
    best = brute_force(g, budget, e_cycle, "lea", MSP430FR5994_EXTFRAM)
    assert cost.cycles <= best.cycles * (1 + 1e-9)


def test_auto_design_errors_and_backend_auto():
    g = conv_geom()
    with pytest.raises(ValueError) as e:
        auto_design(g, P, 4096, 1e-9)
    assert e.value.args[0].startswith("layer 0 (conv): no execution design fits") and "E_cycle" in e.value.args[0]
    with pytest.raises(ValueError, match="per-cycle energy budget must be positive"):
        auto_design(g, P, 4096, 0.0)
    with pytest.raises(ValueError, match="no execution design fits"):
        auto_design(g, P, 300, 1.0)  # stack alone leaves 44 B
    lea = auto_design(g, P, 4096, 1e-3, backend="lea", return_cost=True)[1]
    cpu = auto_design(g, P, 4096, 1e-3, backend="cpu", return_cost=True)[1]
    both = auto_design(g, P, 4096, 1e-3, backend="auto", return_cost=True)[1]
    assert both.cycles == min(lea.cycles, cpu.cycles)
    assert both.design.backend in ("lea", "cpu")
    pinned = auto_design(g, P, 4096, 1e-3, tile=(4, 4, 2, 3), loop_order="reuse_W", S=2)
    assert (pinned.Tr, pinned.Tc, pinned.Tm, pinned.Tn, pinned.loop_order, pinned.S) == (4, 4, 2, 3, "reuse_W", 2)


def test_task_graph_matches_layer_costs():
    net = default_network()
    designs = [ExecutionDesign(3, 2, 4, 1, "reuse_I", 3), ExecutionDesign(2, 4, 8, 3, "reuse_W", 4),
               ExecutionDesign(1, 2, 16, 1, "reuse_O", 2, "tile"), ExecutionDesign(1, 1, 5, 16, "reuse_O", 2)]
    tg = plan_network(net, designs, P, 4096, backend="cpu").task_graph()
    assert isinstance(tg, TaskGraph) and tg.layer_names == ["conv0", "conv1", "maxpool2", "fc3"]
    assert tg.mclk_hz == P.mclk_hz
    plan = tg.units[0].payload.plan
    total = 0.0
    for i, (g, d) in enumerate(zip(geometry(net), designs)):
        c = evaluate_design(g, d, P, 4096, "cpu")
        units = [u for u in tg.units if u.layer == i]
        assert len(units) == c.n_units
        assert sum(u.cycles for u in units) == pytest.approx(c.cycles)
        for cat in UNIT_CATEGORIES:
            assert sum(u.energy_J[cat] for u in units) == pytest.approx(c.by_category[cat])
        assert all(u.sram_bytes == c.sram_bytes for u in units)
        total += c.energy_J
    assert tg.total_energy_J() == pytest.approx(total)
    assert all(u.cycles > 0 and u.tiles >= 1 for u in tg.units)
    for u in tg.units:
        for r in u.fram_reads + u.fram_writes:
            assert 0 <= r.start and r.start + r.length <= plan.fram.total and r.length > 0
        assert plan.fram.range("progress") in u.fram_writes
    # same graph from dict specs and from a Network
    tg2 = plan_network(net.to_dicts(), designs, P, 4096, backend="cpu", input_shape=net.input_shape).task_graph()
    assert [u.cycles for u in tg2.units] == [u.cycles for u in tg.units]


def test_plan_network_errors():
    net = default_network()
    with pytest.raises(ValueError, match="designs: 1 given for 4 executed layers"):
        plan_network(net, [ExecutionDesign(1, 1, 1, 1)], P, 4096)
    with pytest.raises(ValueError, match="give one ExecutionDesign per executed layer"):
        plan_network(net, None, P, 4096)
    with pytest.raises(ValueError, match=r"layer 1 \(conv\): no execution design given"):
        plan_network(net, {0: ExecutionDesign(6, 6, 8, 1)}, P, 4096)
    plan = design_network(net, P, 4096, designs={0: ExecutionDesign(6, 6, 8, 1)}, e_cycle_J=1e-3)
    assert plan.layers[0].design.Tr == 6 and len(plan.units) == sum(lp.n_units for lp in plan.layers)
    assert plan.fram.regions["psum0"][1] == 0 or any(lp.grid[1] > 1 for lp in plan.layers)


def test_resolve_designs_from_scenario_values():
    net = default_network()
    ds = resolve_designs(net, tile=[2, 2, 2, 1], loop_order="reuse_W", hyper_tile=3, platform=P, sram_budget=4096)
    assert ds[0] == ExecutionDesign(2, 2, 2, 1, "reuse_W", 3)
    assert ds[2].Tn == 2  # tied op
    ds = resolve_designs(net, tile=[{"Tr": 6, "Tc": 6, "Tm": 8, "Tn": 1}, "auto", "auto", "auto"],
                         loop_order=["reuse_O", "auto", "reuse_I", "auto"], platform=P, sram_budget=4096,
                         e_cycle_J=1e-3)
    assert (ds[0].Tr, ds[0].Tm, ds[0].loop_order) == (6, 8, "reuse_O") and ds[2].loop_order == "reuse_I"
    with pytest.raises(ValueError, match="execution.loop_order: 2 values given for 4 executed layers"):
        resolve_designs(net, loop_order=["reuse_O", "reuse_I"], e_cycle_J=1e-3)
    with pytest.raises(ValueError, match="execution.tile"):
        resolve_designs(net, tile=[1, 2], e_cycle_J=1e-3)
    # the recharge term (energy / harvested power) steers auto designs towards low energy
    slow_source = resolve_designs(net, platform=P, sram_budget=4096, e_cycle_J=1e-3, harvest_power_W=1e-6,
                                  backend="auto")
    fast = resolve_designs(net, platform=P, sram_budget=4096, e_cycle_J=1e-3, backend="auto")
    e = [sum(evaluate_design(g, d, P, 4096).energy_J for g, d in zip(geometry(net), ds)) for ds in (slow_source, fast)]
    assert e[0] <= e[1] * (1 + 1e-12)
    plan = design_network(net, P, 4096, e_cycle_J=1e-3, backend="auto", harvest_power_W=1e-6)
    assert [lp.design for lp in plan.layers] == [replace(d, S=d.S) for d in slow_source]


# --------------------------------------------------------------------------- closed-form totals (issue 13)
@settings(max_examples=400, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]), st.sampled_from(["fr5994", "extfram"]))
def test_closed_form_totals_equal_the_walk(gd, backend, pname):
    """The correctness anchor of the optimizer: per design, the closed-form totals (runs, blocks, unit
    boundaries) equal the walk's summed unit costs to 1e-9, and the compiled batch/walk entry points agree."""
    from aidi.models.costs import cost_tables, runtime_model
    from aidi.models.costs.fast import geom_vector, platform_vector
    from aidi.models.schedule.closed import design_totals, exact_totals, walk_design
    from aidi.models.schedule.design import ORDER_AXES
    from aidi.models.schedule.memory import align
    from aidi.models.schedule.design import normalize_design
    from aidi.models.schedule.walk import walk

    g, d = gd
    p = MSP430FR5994 if pname == "fr5994" else MSP430FR5994_EXTFRAM
    try:
        d = normalize_design(g, d)
    except ValueError:
        return
    b = backend if g.weighted else "cpu"
    tab = cost_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, b)
    w = walk(tab, d, g)
    ref = w.unit_cost.sum(axis=0)
    np.testing.assert_allclose(design_totals(tab, d, g), ref, rtol=1e-9, atol=0)
    axes = np.array([ORDER_AXES[o] for o in LOOP_ORDERS], np.int64)
    gv, pv = geom_vector(g), platform_vector(p)
    batch = exact_totals(gv, pv, np.array([[d.Tr, d.Tc, d.Tm, d.Tn]]), np.array([b == "lea"]), np.array([d.S]),
                         runtime_model(p), axes)
    np.testing.assert_allclose(batch[0, LOOP_ORDERS.index(d.loop_order)], ref, rtol=1e-9, atol=0)
    status, uc, max_e, slots, extent = walk_design(gv, pv, d.Tr, d.Tc, d.Tm, d.Tn, b == "lea", runtime_model(p),
                                                   np.array(ORDER_AXES[d.loop_order], np.int64), d.S, np.inf,
                                                   align(4 * d.Tm * d.Tr * d.Tc))
    np.testing.assert_allclose(uc, w.unit_cost, rtol=1e-12, atol=0)
    assert (status, slots, extent) == (w.status, w.max_slots, w.acc_extent) and max_e == pytest.approx(w.max_unit_energy)
