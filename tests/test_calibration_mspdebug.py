"""The simulator's portable-C (``backend="cpu"``) cycle model against mspdebug, on networks it was not fitted on.

``Platform.cpu_sw`` of the msp430fr5994 preset was fitted on the default digits
network and ``calibration_network(0..79)``.  Here fresh seeds of the same
generator (random kinds, shapes, tile sizes, loop orders and S) and one larger
network (3x16x16 input, 5x5 conv, about 10x the calibration set's biggest
layer) are emitted, built with clang-14/ld.lld-14 (SIM_HWMULT=1) and run on
mspdebug's simulator; every layer's simulated cycles must lie within 10 % of
mspdebug's MCLK count.  mspdebug 0.22 counts classic MSP430 cycles (not CPUX),
miscounts some constant-generator forms and has no FRAM wait states, LEA, DMA
or MPY32: this checks the model against that simulator, not against silicon.

Skipped when make, clang-14, ld.lld-14 or mspdebug are missing, unless
AIDI_REQUIRE_TOOLCHAIN=1 (then it fails): the ``toolchain`` marker, tests/conftest.py.
"""

import numpy as np
import pytest

from aidi.analysis.emit import MSPDEBUG_CAVEATS, calibration_network, program_cpu_cycles, program_cycle_table
from aidi.models.emit.examples import random_program
from aidi.models.schedule import ExecutionDesign as ExecDesign

TOLERANCE = 0.10
#: seeds never used in the fit (that used 0..79)
HELD_OUT_SEEDS = (2000, 2001, 2002, 2003, 2004, 2005)


def larger_network():
    """A network larger than any in the calibration set (input 3x16x16, ~17 M cycles on mspdebug)."""
    specs = [{"type": "conv", "k": 5, "filters": 8, "padding": 2, "relu": True}, {"type": "maxpool", "k": 2},
             {"type": "dwconv", "k": 3, "padding": 1, "relu": True}, {"type": "pwconv", "filters": 12, "relu": True},
             {"type": "avgpool", "k": 2}, {"type": "fc", "units": 10}]
    designs = [ExecDesign(Tr=4, Tc=8, Tm=4, Tn=3, loop_order="reuse_O", S=4),
               ExecDesign(Tr=4, Tc=8, Tm=4, Tn=1, loop_order="reuse_I", S=2),
               ExecDesign(Tr=8, Tc=4, Tm=2, Tn=1, loop_order="reuse_W", S=3),
               ExecDesign(Tr=2, Tc=8, Tm=6, Tn=4, loop_order="reuse_I", S=4),
               ExecDesign(Tr=4, Tc=4, Tm=12, Tn=1, loop_order="reuse_O", S=1),
               ExecDesign(Tr=1, Tc=1, Tm=5, Tn=96, loop_order="reuse_W", S=1)]
    return random_program(specs, (3, 16, 16), np.random.default_rng(7), designs, name="aidi_larger")


NETWORKS = [(f"cal{s}", lambda s=s: calibration_network(s)) for s in HELD_OUT_SEEDS] + [("larger", larger_network)]


@pytest.mark.toolchain("sim")
@pytest.mark.parametrize("name,make", NETWORKS, ids=[n for n, _ in NETWORKS])
def test_simulated_cpu_cycles_within_10_percent_of_mspdebug(name, make, tmp_path):
    ir = make()
    table = program_cycle_table(ir, tmp_path / name)  # raises if the firmware's output differs from the reference
    assert [r["layer"] for r in table] == ir.layer_names
    bad = [f"{r['layer']}: simulated {r['simulated_cycles']:.0f} vs mspdebug {r['mspdebug_cycles']} "
           f"({r['error']:+.1%})" for r in table if abs(r["error"]) > TOLERANCE]
    assert not bad, f"{name}: layers off by more than {TOLERANCE:.0%} ({MSPDEBUG_CAVEATS}): " + "; ".join(bad)


def test_held_out_networks_differ_from_the_calibration_set():
    """The held-out seeds give networks the fit never saw (not a copy of one of its 80)."""
    def key(prog):
        return tuple((lp.geom.name, lp.geom.in_shape, lp.design) for lp in prog.layers)

    fitted = {key(calibration_network(s)) for s in range(80)}
    for s in HELD_OUT_SEEDS:
        prog = calibration_network(s)
        assert key(prog) not in fitted
        assert all(c > 0 for c in program_cpu_cycles(prog))
