"""The emitter renders a Q15 model and its plan: what it writes is read off the plan, never re-planned."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aidi.models.emit import Budgets, Program, emit_project, memory_estimate
from aidi.models.emit.examples import TINY_SPECS, random_program, tiny_program
from aidi.models.functional import FunctionalRun
from aidi.models.schedule import PROGRESS_BYTES, ExecutionDesign, block_version
from aidi.models.schedule.design import F_INIT_PSUM, F_WRITE_PSUM, LOOP_NESTS


def test_program_checks_that_model_plan_and_input_belong_together():
    prog = tiny_program(0)
    other = random_program([{"type": "conv", "k": 3, "filters": 2}], (1, 5, 5), np.random.default_rng(0))
    with pytest.raises(ValueError, match="layers are not the plan's"):
        Program(prog.qmodel, other.plan, prog.x_q)
    with pytest.raises(ValueError, match=r"input shape \[1, 5, 5\]"):
        Program(prog.qmodel, prog.plan, other.x_q)
    with pytest.raises(ValueError, match="int16"):
        Program(prog.qmodel, prog.plan, prog.x_q.astype(np.int32) + 40000)
    with pytest.raises(ValueError, match="C identifier"):
        Program(prog.qmodel, prog.plan, prog.x_q, name="not-an-identifier")


@pytest.mark.parametrize("seed", [0, 1])
def test_expected_output_is_what_the_tiled_kernels_compute(tmp_path, seed):
    """The manifest's expected output (the numpy Q15 reference) against an independent implementation:
    the numba tile kernels executing the same plan over simulated FRAM/SRAM."""
    prog = tiny_program(seed, extreme=bool(seed))
    proj = emit_project(prog, tmp_path / "c")
    tiled = FunctionalRun(prog.plan, prog.qmodel, prog.x_q).run_to_completion().reshape(-1)
    assert proj.manifest["expected_output"] == tiled.tolist()
    assert len(tiled) == prog.output_len == 7


def test_manifest_and_tables_are_read_off_the_plan(tmp_path):
    prog = tiny_program(0)
    proj = emit_project(prog, tmp_path / "c")
    m = proj.manifest
    assert m["backend"] == "portable"  # a CPU plan emits the portable kernels it was costed for
    assert m["total_units"] == sum(lp.n_units for lp in prog.layers)
    assert [layer["name"] for layer in m["layers"]] == prog.layer_names
    base = 0
    for layer, lp in zip(m["layers"], prog.layers):
        g, d = lp.geom, lp.design
        assert layer["design"] == d.to_dict()
        assert (layer["tiles"], layer["units"], layer["unit_base"]) == (lp.n_tiles, lp.n_units, base)
        p = layer["plan"]
        assert (p["nm"], p["nn"], p["nr"], p["nc"]) == lp.grid
        assert (p["tr"], p["tc"], p["tm"], p["tn"], p["S"]) == (d.Tr, d.Tc, d.Tm, d.Tn, d.S)
        assert p["order"] == list(LOOP_NESTS[d.loop_order])
        # the input tile the C runtime allocates is the one the simulator's SRAM plan holds
        assert 2 * p["in_buf"] == lp.sram["input"][1]
        base += lp.n_units
    model_c = (tmp_path / "c" / "src" / "aidi_model.c").read_text()
    assert f"sizeof aidi_progress == {PROGRESS_BYTES}" in model_c
    assert json.loads((tmp_path / "c" / "aidi_manifest.json").read_text())["memory_estimate"]["fram_progress"] == 16
    mem = memory_estimate(prog)
    assert mem["fram_psum"] > 0 and mem["sram_bytes"] == prog.plan.sram_bytes == \
        mem["sram_arena"] + mem["sram_state"] + mem["sram_stack"]
    readme = (tmp_path / "c" / "README.md").read_text()
    assert "make msp430" in readme and "DSPLIB_ROOT" in readme and str(mem["fram_weights"]) in readme
    for rel in ("Makefile", "src/aidi_model.c", "src/aidi_runtime.c", "ld/msp430fr5994_sim.ld", "tools/aidi_elfsize.py"):
        assert (tmp_path / "c" / rel).is_file(), rel
    with pytest.raises(ValueError, match="backend"):
        emit_project(prog, tmp_path / "d", backend="gpu")


def test_lea_plan_emits_lea_kernels(tmp_path):
    prog = tiny_program(0, backend="lea")
    assert emit_project(prog, tmp_path / "c").manifest["backend"] == "lea"
    assert emit_project(prog, tmp_path / "p", backend="portable").manifest["backend"] == "portable"
    with pytest.raises(ValueError, match="backend lea: the plan runs no layer on the LEA"):
        emit_project(tiny_program(0), tmp_path / "x", backend="lea")


@settings(max_examples=60, deadline=None)
@given(nr=st.integers(1, 4), nc=st.integers(1, 3), nm=st.integers(1, 4), nn=st.integers(1, 5),
       order=st.sampled_from(sorted(LOOP_NESTS)), S=st.integers(1, 12))
def test_block_version_of_the_c_runtime_matches_the_walk(nr, nc, nm, nn, order, S):
    """``aidi_block_version`` (mirrored by schedule.block_version) equals the brute-force count of earlier
    units, and the partial-sum slots the walk assigned are the ones ``weighted_tile`` reads and writes."""
    prog = random_program([{"type": "pwconv", "filters": nm}], (nn, nr, nc), np.random.default_rng(0),
                          [ExecutionDesign(1, 1, 1, 1, order, S)])
    lp = prog.layers[0]
    assert lp.grid == (nm, nn, nr, nc)
    touched: dict = {}
    for t in range(lp.n_tiles):
        mi, ni, ri, ci = (int(v) for v in lp.tiles["idx"][t])
        u = t // lp.design.S
        seen = touched.setdefault((mi, ri, ci), [])
        k = block_version(t, ni, lp.n_stride, u, lp.design.S)
        assert k == len({v for v in seen if v < u})
        assert ni == len(seen)  # n tiles of a block in ascending order
        fl = int(lp.tiles["flags"][t])
        if fl & F_INIT_PSUM:  # weighted_tile's rslot: committed on the block's first touch in the unit
            first_touch = t < u * lp.design.S + lp.n_stride
            assert lp.tiles["rd"][t] == (k if first_touch else k + 1) % 2
        if fl & F_WRITE_PSUM:
            assert lp.tiles["wr"][t] == (k + 1) % 2
        seen.append(u)


@pytest.mark.parametrize("seed", [0, 1])
def test_plans_cover_every_output_once_per_input_tile(seed):
    prog = tiny_program(seed)
    for lp in prog.layers:
        seen = np.zeros(lp.geom.out_shape, np.int64)
        t = lp.tables
        for mi, ni, ri, ci in lp.tiles["idx"]:
            seen[t.m0[mi]:t.m0[mi] + t.tm[mi], t.r0[ri]:t.r0[ri] + t.tr[ri], t.c0[ci]:t.c0[ci] + t.tc[ci]] += 1
        assert np.all(seen == lp.grid[1])
        assert lp.n_units == -(-lp.n_tiles // lp.design.S)


def test_random_program_builder_covers_every_kind():
    prog = tiny_program(3)
    assert {lp.geom.name for lp in prog.layers} == {s["type"] for s in TINY_SPECS} - {"relu"}
    assert prog.layers[4].geom.relu  # the standalone relu fused into the conv before it
    ex = tiny_program(3, extreme=True)
    assert any(int(np.abs(ql.b.astype(np.int64)).max()) > 2**30 for ql in ex.qmodel.layers if ql.geom.weighted)
    with pytest.raises(ValueError, match="designs"):
        random_program(TINY_SPECS, (3, 9, 9), np.random.default_rng(0), designs=[None])
    assert Budgets().fram_bytes == 0xBF80
