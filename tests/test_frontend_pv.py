"""A pv harvester behind a power front end gives its own input voltage (issue 23 item 1): the cell's operating point
from pvlib's single-diode model under the preset's MPPT, checked against pvlib's I-V curve computed here."""

from __future__ import annotations

import numpy as np
import pvlib
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.scenarios import loader
from aidi.sim import frontend as fr
from aidi.sim import harvesters as hv
from tests.test_frontend import scenario as frontend_scenario

runner = CliRunner()


def curve_point(ghi: float, setpoint: float | None, power: bool = False):
    """One cell's operating voltage (V) at ``ghi`` W/m^2, 25 C, from the module's I-V curve sampled on a fine grid
    (pvlib's i_from_v): the voltage of the largest V * I, or ``setpoint`` times the voltage where I falls to 0;
    with ``power``, ``(voltage, V * I there / the curve's largest V * I)``."""
    m = pvlib.pvsystem.retrieve_sam("CECMod")[hv.PV_MODULE]
    il, io, rs, rsh, nnsvth = pvlib.pvsystem.calcparams_desoto(ghi, 25.0, m["alpha_sc"], m["a_ref"], m["I_L_ref"],
                                                              m["I_o_ref"], m["R_sh_ref"], m["R_s"])
    v = np.linspace(0.0, 1.2 * m["V_oc_ref"], 200_001)
    i = pvlib.pvsystem.i_from_v(v, il, io, rs, rsh, nnsvth)
    k = int(np.argmax(v * i)) if setpoint is None else int(np.argmin(np.abs(v - setpoint * v[np.argmax(i <= 0.0)])))
    v_cell = float(v[k]) / float(m["N_s"])
    return (v_cell, float(v[k] * i[k] / np.max(v * i))) if power else v_cell


@settings(max_examples=25, deadline=None)
@given(st.floats(5.0, 1100.0), st.sampled_from([None, 0.76, 0.5]))
def test_cell_voltage_is_the_single_diode_operating_point(ghi, setpoint):
    step = 1.2 * 59.4 / 200_000 / 96  # the grid's step per cell (V)
    v_cell, fraction = hv.pv_operating_point([ghi], setpoint)
    want_v, want_f = curve_point(ghi, setpoint, power=True)
    assert v_cell[0] == pytest.approx(want_v, abs=2 * step) == hv.pv_cell_voltage([ghi], setpoint)[0]
    assert fraction[0] == pytest.approx(want_f, abs=1e-4)  # V * I at the MPPT's point over the curve's maximum
    assert (fraction[0] == 1.0) if setpoint is None else (0.0 < fraction[0] < 1.0)
    assert hv.pv_cell_voltage([0.0], setpoint)[0] == 0.0 and hv.pv_operating_point([0.0], setpoint)[1][0] == 0.0


def scenario(tmp_path, power: str):
    return frontend_scenario(tmp_path, power, 'kind = "pv"\narea_cm2 = 5.0\nhours = 48', name="pv.toml")


def test_pv_behind_the_bq25570_reads_the_input_lut_at_the_cells_voltage(tmp_path):
    """Each segment enters the storage as the preset's input power at (V_cell, P / V_cell), V_cell the cell's
    voltage under the preset's MPPT (BQ25570: 0.76 V_oc, its mppt_bq_solar harvester)."""
    fe = fr.preset("BQ25570")
    assert fe.mppt_setpoint == pytest.approx(0.76)
    seg = loader.load(scenario(tmp_path, 'frontend = "BQ25570"')).harvester.segments()
    plain = loader.load(scenario(tmp_path, "capacitor_F = 1e-4\nv_on = 3.0\nv_off = 2.5")).harvester.segments()
    # the harvester's own power is the pv model's (at its maximum-power point) times what the cell gives at 0.76 V_oc
    lit0 = plain.seg_p > 0
    np.testing.assert_array_equal(seg.raw_p[~lit0], 0.0)
    ghi0 = plain.seg_p[lit0] / (5e-4 * 0.15)
    np.testing.assert_allclose(seg.raw_p[lit0], plain.seg_p[lit0] * hv.pv_operating_point(ghi0, 0.76)[1], rtol=1e-12)
    assert np.all(seg.raw_p[lit0] < plain.seg_p[lit0])
    lit = np.flatnonzero(seg.raw_p > 0)
    assert len(lit) > 100 and np.all(seg.seg_p[seg.raw_p == 0] == 0)
    for k in lit[:: max(len(lit) // 12, 1)]:
        ghi = plain.seg_p[k] / (5e-4 * 0.15)
        v = curve_point(ghi, 0.76)
        expected = float(fe.input_power(v, seg.raw_p[k] / v))
        assert seg.seg_p[k] == pytest.approx(expected, rel=2e-3)  # the LUT bin, to the grid's voltage step
        assert 0.0 < seg.seg_p[k] < seg.raw_p[k]


def test_pv_takes_no_v_input(tmp_path):
    r = runner.invoke(app, ["run", str(scenario(tmp_path, 'frontend = "BQ25570"\nv_input_V = 0.5')), "--json"])
    msg = (r.stderr or r.output).strip()
    assert r.exit_code == 2 and "\n" not in msg and "power.v_input_V" in msg and "pv" in msg, msg
    r = runner.invoke(app, ["run", str(scenario(tmp_path, 'frontend = "BQ25570"')), "--json", "--no-functional"])
    assert r.exit_code == 0, r.output
