"""The board around the chip: quiescent loads in both engines, tensors placed in an external SPI FRAM (its costs from
the datasheet arithmetic), the published-hardware comparison's structure, and the scenario keys."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.costs import cost_tables
from aidi.models.costs.fast import fast_tables
from aidi.models.schedule.plan import geoms_of
from aidi.scenarios import loader
from aidi.sim import des, oracle
from aidi.sim.platform import BOARDS, MSP430FR5994
from aidi.sim.workload import NonProgressError, Workload, energy_balance_error
from tests.test_models_costs import _normalised
from tests.test_models_schedule import layer_and_design
from tests.test_sim_engines import assert_agree, logu, scenarios

runner = CliRunner()

# --------------------------------------------------------------------------- the datasheet arithmetic, by hand
MCLK = 16e6
SCK = 16e6 / 4  # Stateful-CNN's eUSCI_A3: SMCLK / UCA3BRW 4
CYC_PER_BYTE = 8 * MCLK / SCK
READ_CMD, WRITE_CMD = 4, 5  # READ + 3 address bytes; WREN, WRITE + 3 address bytes (CY15B104Q)
READ_SETUP, WRITE_SETUP = 424 - READ_CMD * 32, 422.23 - WRITE_CMD * 32  # iNAS's fitted offsets minus the commands
I_ACTIVE = 0.3e-3 + 2.2e-3 * (SCK - 1e6) / 39e6  # 300 uA at 1 MHz .. 2.5 mA at 40 MHz
I_STANDBY = 100e-6
V = 3.0
E_CYCLE = 118e-6 * 16 * V / MCLK  # the MCU's energy per cycle (SLASE54D 118 uA/MHz)


def transfer(n_words: int, write: bool) -> np.ndarray:
    """[cycles, J] of one SPI transfer of n words, from the constants above."""
    bus = ((WRITE_CMD if write else READ_CMD) + 2 * n_words) * CYC_PER_BYTE
    cycles = bus + (WRITE_SETUP if write else READ_SETUP)
    return np.array([cycles, cycles * E_CYCLE + bus / MCLK * (I_ACTIVE - I_STANDBY) * V])


EXTERNAL = MSP430FR5994.with_board(BOARDS["msp-exp430fr5994"], activations="spi-fram", weights="spi-fram")


def test_spi_placement_adds_the_datasheet_transfers_to_a_conv_layer():
    """MNIST LeNet's first conv (8@5x5 same on 1x28x28) in tiles of 2 rows x 28 columns x 8 channels: each input tile
    is one read of its valid rows (whole rows: one block), each output tile 8 writes of 2 x 28 words (one per
    channel), the weights one read of 8 x 25 words and the bias one of 16."""
    g = geoms_of([{"type": "conv", "k": 5, "filters": 8, "padding": "same", "relu": True}], (1, 28, 28))[0]
    for backend in ("lea", "cpu"):
        on = cost_tables(g, 2, 28, 8, 1, MSP430FR5994, backend)
        ext = cost_tables(g, 2, 28, 8, 1, EXTERNAL, backend)
        for r in range(14):
            y0 = 2 * r - 2
            rows = min(y0 + 1 + 5, 28) - max(y0, 0)
            np.testing.assert_allclose(ext.load_input[0, r, 0] - on.load_input[0, r, 0], transfer(rows * 28, False),
                                       rtol=1e-12)
            np.testing.assert_allclose(ext.out_write[0, r, 0] - on.out_write[0, r, 0], 8 * transfer(2 * 28, True),
                                       rtol=1e-12)
        np.testing.assert_allclose(ext.load_weights[0, 0] - on.load_weights[0, 0], transfer(8 * 25, False), rtol=1e-12)
        np.testing.assert_allclose(ext.load_bias[0] - on.load_bias[0], transfer(16, False), rtol=1e-12)
        for name in ("compute_per_elem", "commit", "psum_read", "psum_write", "tile_by_input"):
            np.testing.assert_array_equal(getattr(ext, name), getattr(on, name), err_msg=name)
    # one Q15 word is 16 SCK at 4 MHz: 64 MCLK cycles, iNAS's fitted DMA slope on the same kind of board
    assert transfer(1001, False)[0] - transfer(1000, False)[0] == pytest.approx(64.0)


@settings(max_examples=150, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]), st.sampled_from(PLACE := [("fram", "spi-fram"),
                                                                                        ("spi-fram", "fram"),
                                                                                        ("spi-fram", "spi-fram")]))
def test_compiled_tables_equal_the_numpy_tables_with_spi_placement(gd, backend, place):
    g, d = _normalised(gd)
    if d is None:
        return
    p = MSP430FR5994.with_board(None, weights=place[0], activations=place[1])
    ref = cost_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, backend)
    got = fast_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, backend)
    base = cost_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, MSP430FR5994, backend)
    for name, a, b in zip(ref._fields, ref, got):
        if name == "software":
            continue
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=0, err_msg=name)
    # placement only adds, and only to the tensors it moves
    for name in ("load_input", "out_write", "psum_read", "psum_write", "load_weights", "load_bias"):
        extra = np.asarray(getattr(ref, name)) - np.asarray(getattr(base, name))
        assert (extra >= 0).all(), name
        moved = place[1] if name in ("load_input", "out_write", "psum_read", "psum_write") else place[0]
        if moved == "fram":
            assert not extra.any(), name


# --------------------------------------------------------------------------- the board in both engines
def _run_both(work, power, seg, sim):
    """The des result (both engines agreeing), or None when both raise the same NonProgressError."""
    try:
        a = des.simulate(work, power, seg, sim)[0]
    except NonProgressError as exc:
        with pytest.raises(NonProgressError) as info:
            oracle.simulate(work, power, seg, sim)
        assert str(info.value) == str(exc)
        return None
    b = oracle.simulate(work, power, seg, sim)
    assert_agree(a, b)
    return a


@settings(max_examples=50, deadline=None)
@given(scenarios(), logu(-9, -5))
def test_board_sleep_current_is_the_leakage_it_adds_reported_as_board(case, i_board):
    """A board sleep current B runs exactly as a leakage of B (the same trajectory); B's part of the drain is consumed
    under by_category.board instead of leaked; both engines agree and the balance closes to 1e-9."""
    work, power, seg, sim = case
    boarded = replace(power, leakage_A=power.leakage_A + i_board, board_sleep_A=i_board)
    leaky = replace(power, leakage_A=power.leakage_A + i_board)
    a, b = _run_both(work, boarded, seg, sim), _run_both(work, leaky, seg, sim)
    if a is None or b is None:
        assert a is None and b is None
        return
    for k in ("latency_s", "v_final", "sim_time_s", "power_cycles", "units_executed", "units_lost"):
        assert a[k] == b[k], k
    share = i_board / (power.leakage_A + i_board)
    ea, eb = a["energy_J"], b["energy_J"]
    assert energy_balance_error(a) < 1e-9
    assert sum(ea["by_category"].values()) == pytest.approx(ea["consumed"], rel=1e-9, abs=1e-15)
    assert ea["by_category"]["board"] == pytest.approx(eb["leaked"] * share, rel=1e-12, abs=1e-18)
    assert ea["leaked"] == pytest.approx(eb["leaked"] * (1 - share), rel=1e-9, abs=1e-15)
    assert ea["consumed"] == pytest.approx(eb["consumed"] + eb["leaked"] * share, rel=1e-12, abs=1e-18)
    assert ea["by_category"]["converter_loss"] == pytest.approx(eb["by_category"]["converter_loss"], rel=1e-9,
                                                                abs=1e-12 * ea["consumed"] + 1e-18)


@settings(max_examples=50, deadline=None)
@given(scenarios(), st.floats(0.01, 0.5))
def test_board_active_draw_is_part_of_each_unit(case, frac):
    """A unit's board column is board_W x its duration; the run equals the same units with that energy booked as
    compute (same trajectory, energy moved from compute to board)."""
    work, power, seg, sim = case
    d = work.durations_s
    w = frac * float((work.energy_J.sum(axis=1) / d).min())
    base = work.energy_J[:, :3].copy()
    base[:, 0] -= w * d  # the board takes w out of each unit's draw ...
    if (base[:, 0] < 0).any():
        return
    boarded = Workload(work.names, work.layers, d, base, work.boot_s, work.boot_J, work.sleep_W, board_W=w)
    np.testing.assert_allclose(boarded.energy_J[:, 3], w * d, rtol=1e-15)
    a, b = _run_both(boarded, power, seg, sim), _run_both(work, power, seg, sim)  # ... so the total is unchanged
    if a is None or b is None:
        return
    for k in ("latency_s", "v_final", "power_cycles", "units_executed"):
        assert a[k] == pytest.approx(b[k], rel=1e-9) if isinstance(a[k], float) else a[k] == b[k], k
    ca, cb = a["energy_J"]["by_category"], b["energy_J"]["by_category"]
    assert ca["board"] + ca["compute"] == pytest.approx(cb["compute"], rel=1e-9, abs=1e-15)
    assert ca["board"] == pytest.approx(w * d.sum() * a["inferences_completed"], rel=1e-9, abs=1e-15) or \
        a["inferences_completed"] < sim.inferences
    assert energy_balance_error(a) < 1e-9


# --------------------------------------------------------------------------- scenario keys and the comparison
def _scenario(tmp_path, extra: str) -> str:
    text = (loader.SHIPPED_DIR / "stateful-cnn-kws.toml").read_text()
    path = tmp_path / "s.toml"
    path.write_text(text.replace('board = "msp-exp430fr5994"', extra))
    return str(path)


def test_board_keys_make_the_platform_and_the_power(tmp_path):
    sc = loader.load(_scenario(tmp_path, 'board = "msp-exp430fr5994"\nboard_active_A = 2e-4\nboard_sleep_A = 3e-6'))
    p = sc.device.make_platform()
    assert (p.weights, p.activations) == ("fram", "spi-fram")
    assert p.board_active_W == pytest.approx((2e-4 + I_STANDBY) * V)  # the SPI FRAM's standby comes with it
    assert (sc.power.board_sleep_A, sc.power.leakage_A) == (3e-6, 3e-6)
    on = loader.load(_scenario(tmp_path, 'board = "none"')).with_values(**{"device.activations": "fram"})
    assert on.device.make_platform().board_active_W == 0.0 and on.power.leakage_A == 0.0


@pytest.mark.parametrize("extra, message", [
    ('board = "launchpad"', "device.board: unknown board preset 'launchpad'"),
    ('activations = "spi"', "device.activations: unknown placement 'spi' (known: fram, spi-fram)"),
    ('board_sleep_A = -1e-6', "device.board_sleep_A: must be >= 0"),
])
def test_bad_board_keys_are_one_line_exit_2(tmp_path, extra, message):
    path = _scenario(tmp_path, extra)
    if extra.startswith("activations"):  # one activations key, the bad one
        text = open(path).read().replace('activations = "spi-fram"\n', "")
        open(path, "w").write(text)
    r = runner.invoke(app, ["check", path])
    assert r.exit_code == 2
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and message in lines[0], r.output


def test_external_fram_on_the_inas_platform_is_refused(tmp_path):
    path = _scenario(tmp_path, 'board = "none"')
    text = open(path).read().replace('platform = "msp430fr5994"', 'platform = "msp430fr5994-extfram"')
    open(path, "w").write(text)
    r = runner.invoke(app, ["run", path, "--engine", "oracle"])
    assert r.exit_code == 2 and "device.activations: platform msp430fr5994-extfram has no external SPI FRAM" in r.output


@pytest.mark.slow
def test_published_comparison_breakdown():
    """`aidi published --json`: both networks, the components sum to the prediction, the SPI share is at least
    the datasheet time of every activation written once and read once, and placing the activations externally
    costs more than the same designs on-chip."""
    r = runner.invoke(app, ["published", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [row["scenario"] for row in out["rows"]] == ["stateful-cnn-mnist", "stateful-cnn-kws"]
    assert [row["measured_s"] for row in out["rows"]] == [2.179, 0.655]
    for row in out["rows"]:
        c = row["components_s"]
        assert set(c) == {"compute", "data_movement", "preservation", "other", "board"}
        assert sum(c.values()) == pytest.approx(row["predicted_s"], rel=1e-12)
        assert c["board"] == 0.0 and row["energy_J"]["board"] > 0
        assert row["ratio"] == pytest.approx(row["predicted_s"] / row["measured_s"])
        assert row["within_tolerance"] == (abs(row["ratio"] - 1) <= out["tolerance"])
        sc = loader.load(row["scenario"])
        geoms = geoms_of(list(sc.model.layers), sc.model.input)
        words = sum(math.prod(g.out_shape) + math.prod(g.in_shape) for g in geoms)
        assert row["spi_s"] >= words * 2 * 8 / SCK
        assert 0 < row["spi_s"] < c["data_movement"]
        # the board's energy: the SPI FRAM's standby (and the LaunchPad's 0 A) over the units' time
        unit_s = c["compute"] + c["data_movement"] + c["preservation"]
        assert row["energy_J"]["board"] == pytest.approx(I_STANDBY * V * unit_s, rel=1e-9)


def test_check_bound_holds_with_a_board(tmp_path):
    """`aidi check` on an intermittent scenario with a board: its bound covers the simulated latency, and a board
    that draws more (active and sleep) makes both longer than without one."""
    base = (loader.SHIPPED_DIR / "weak-source.toml").read_text()
    out = {}
    for name, extra in (("none", ""), ("board", "board_active_A = 1e-4\nboard_sleep_A = 2e-6\n")):
        path = tmp_path / f"{name}.toml"
        path.write_text(base + "\n[device]\n" + extra)
        r = runner.invoke(app, ["check", str(path), "--json"])
        assert r.exit_code in (0, 1), r.output
        out[name] = json.loads(r.stdout)
    for res in out.values():
        assert res["latency_bound_s"] is not None, res["latency_bound"]
        assert res["latency_bound_s"] >= res["harvester"]["latency_s"] * (1 - 1e-12)
    assert out["board"]["latency_bound_s"] > out["none"]["latency_bound_s"]
    assert out["board"]["harvester"]["latency_s"] > out["none"]["harvester"]["latency_s"]
