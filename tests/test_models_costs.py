"""Unit costs of one small conv layer derived by hand, against ``plan_layer(...).unit_cost``.

The layer: a 3x4x4 input, 3 filters of 3x3, stride 1, no padding, ReLU, bias
-> a 3x2x2 output.  Design Tr=1, Tc=2, Tm=2, Tn=2, S=2: tiles m (2, 1)
output channels, n (2, 1) input channels, r (1, 1) rows, one c tile of 2
columns: 8 tiles, 4 units of 2 tiles, so input-channel tiling (uneven, with an
odd LEA vector length) and hyper-tiles appear.

Everything below is written out from the platform table (``sim/platform.py``),
not taken from the cost-table functions: the primitives as ``[cycles, J]``, the
events of each unit per loop order (traced by hand through the loop nests of
``models/schedule/design.py``), and what each event costs.  Dropping or double
counting any term (a gather, the max|x| scan, sum|w|, the guard, a load, a
partial-sum pass) changes a unit's cycles by at least 12 cycles.

Which model applies (``models/costs/__init__.py``): on ``msp430fr5994-extfram``
(no ``cpu_sw``, iNAS's platform) the iNAS-style LEA/DMA tables; on
``msp430fr5994`` the emitted runtime's costs (CPU tile copies behind its fetch
cache, accumulator passes and spills, per-tile overheads, unit commit) under
both backends, with the LEA kernel's compute for ``backend="lea"`` and the
portable kernel's for ``backend="cpu"``; pools take the runtime's pool kernel
under every backend.
"""

import numpy as np
import pytest

from aidi.models.layers import LayerGeom
from aidi.models.schedule import ExecutionDesign, plan_layer
from aidi.sim.platform import MSP430FR5994, MSP430FR5994_EXTFRAM

GEOM = LayerGeom(0, "conv", "conv", (3, 4, 4), (3, 2, 2), 3, 3, 1, 0, True, True)
E_CYC = 118e-6 * 16 * 3.0 / 16e6  # J per MCLK cycle: 118 uA/MHz at 3.0 V (both presets)


def _cyc(cycles):
    return np.array([cycles, cycles * E_CYC])


#: the primitives of each preset, [cycles, J], written out from sim/platform.py's table
PRIMS = {
    "msp430fr5994": {
        "dma_read": lambda n: _cyc(3.0 * n + 30.0), "dma_write": lambda n: _cyc(3.0 * n + 30.0),
        "lea_mac": lambda n: _cyc(1.5 * n + 616.0),
        "add": _cyc(12.0), "mul": _cyc(44.0), "div": _cyc(160.0), "max": _cyc(14.0),
        "abs": _cyc(12.0), "copy": _cyc(12.0),
    },
    "msp430fr5994-extfram": {
        "dma_read": lambda n: np.array([64.0 * n + 424.0, 2.7e-8 * n + 2.0e-7]),
        "dma_write": lambda n: np.array([64.0008 * n + 422.23, 2.6815e-8 * n + 1.9336e-7]),
        "lea_mac": lambda n: np.array([1.5 * n + 616.0, 5.273e-10 * n + 2.044e-7]),
        "add": np.array([12.0, 3.936e-9]), "mul": np.array([44.0, 19.25e-9]), "div": np.array([160.0, 43.7e-9]),
        "max": np.array([14.0, 4.23e-9]), "abs": _cyc(12.0), "copy": _cyc(12.0),
    },
}
PLATFORMS = {"msp430fr5994": MSP430FR5994, "msp430fr5994-extfram": MSP430FR5994_EXTFRAM}

TM = (2, 1)  # output channels of m tile 0, 1
TN = (2, 1)  # input channels of n tile 0, 1
ELEMS = (2, 2)  # output elements of a tile per output channel: Tr * Tc = 1 * 2

#: events of each unit (2 tiles each), per loop order; tile = (m, n, r)
#: nests (outer -> inner): reuse_O m, r, c, n; reuse_I r, c, n, m; reuse_W m, n, r, c
UNITS = {
    "reuse_O": [
        # (m0, n0, r0): loads all, bias init; (m0, n1, r0): same block, adjacent: no spill, outputs
        [("in", 0), ("w", 0, 0), ("bias", 0), ("init", 0), ("tile", 0, 0),
         ("in", 1), ("w", 0, 1), ("tile", 0, 1), ("out", 0)],
        [("in", 0), ("w", 0, 0), ("bias", 0), ("init", 0), ("tile", 0, 0),
         ("in", 1), ("w", 0, 1), ("tile", 0, 1), ("out", 0)],  # r1: same costs
        [("in", 0), ("w", 1, 0), ("bias", 1), ("init", 1), ("tile", 1, 0),
         ("in", 1), ("w", 1, 1), ("tile", 1, 1), ("out", 1)],
        [("in", 0), ("w", 1, 0), ("bias", 1), ("init", 1), ("tile", 1, 0),
         ("in", 1), ("w", 1, 1), ("tile", 1, 1), ("out", 1)],
    ],
    "reuse_I": [
        # (m0, n0, r0), (m1, n0, r0): one input tile, both write partial sums (n1 is in the next unit)
        [("in", 0), ("w", 0, 0), ("bias", 0), ("init", 0), ("tile", 0, 0), ("psum_wr", 0),
         ("w", 1, 0), ("bias", 1), ("init", 1), ("tile", 1, 0), ("psum_wr", 1)],
        # (m0, n1, r0), (m1, n1, r0): partial sums read, outputs written
        [("in", 1), ("w", 0, 1), ("psum_rd", 0), ("tile", 0, 1), ("out", 0),
         ("w", 1, 1), ("psum_rd", 1), ("tile", 1, 1), ("out", 1)],
        [("in", 0), ("w", 0, 0), ("bias", 0), ("init", 0), ("tile", 0, 0), ("psum_wr", 0),
         ("w", 1, 0), ("bias", 1), ("init", 1), ("tile", 1, 0), ("psum_wr", 1)],
        [("in", 1), ("w", 0, 1), ("psum_rd", 0), ("tile", 0, 1), ("out", 0),
         ("w", 1, 1), ("psum_rd", 1), ("tile", 1, 1), ("out", 1)],
    ],
    "reuse_W": [
        # (m0, n0, r0), (m0, n0, r1): one weight tile and bias, two input tiles, two bias inits
        [("in", 0), ("w", 0, 0), ("bias", 0), ("init", 0), ("tile", 0, 0), ("psum_wr", 0),
         ("in", 0), ("init", 0), ("tile", 0, 0), ("psum_wr", 0)],
        # (m0, n1, r0), (m0, n1, r1)
        [("in", 1), ("w", 0, 1), ("psum_rd", 0), ("tile", 0, 1), ("out", 0),
         ("in", 1), ("psum_rd", 0), ("tile", 0, 1), ("out", 0)],
        [("in", 0), ("w", 1, 0), ("bias", 1), ("init", 1), ("tile", 1, 0), ("psum_wr", 1),
         ("in", 0), ("init", 1), ("tile", 1, 0), ("psum_wr", 1)],
        [("in", 1), ("w", 1, 1), ("psum_rd", 1), ("tile", 1, 1), ("out", 1),
         ("in", 1), ("psum_rd", 1), ("tile", 1, 1), ("out", 1)],
    ],
}


def event_cost(ev, q) -> tuple[int, np.ndarray]:
    """(category, [cycles, J]) of one event: 0 compute, 1 data movement."""
    kind, *a = ev
    if kind == "in":  # tn channels x 3 rows x 4 columns: full-width rows, one DMA block of 12 words per channel
        return 1, TN[a[0]] * q["dma_read"](12) + 7 * q["add"] + 5 * q["mul"]
    if kind == "w":  # one block of tn*9 words per output channel (tn < 3 input channels)
        return 1, TM[a[0]] * q["dma_read"](9 * TN[a[1]]) + 8 * q["add"] + 9 * q["mul"]
    if kind == "bias":  # int32 biases: 2 words per output channel, one block
        return 1, q["dma_read"](2 * TM[a[0]])
    out_blocks = TM[a[0]] if kind != "init" else 0  # one block per output channel: 1 row x 2 columns
    if kind == "psum_rd":  # int32: 4 words per block
        return 1, out_blocks * q["dma_read"](4) + 7 * q["add"] + 4 * q["mul"]
    if kind == "psum_wr":
        return 1, out_blocks * q["dma_write"](4) + 7 * q["add"] + 4 * q["mul"]
    if kind == "out":  # int16 outputs: 2 words per block, + the output step (2 ADD, 2 MAX + 1 MAX for ReLU)
        return 1, out_blocks * q["dma_write"](2) + 7 * q["add"] + 4 * q["mul"]
    if kind == "init":  # one ADD per accumulator
        return 0, TM[a[0]] * ELEMS[0] * q["add"]
    assert kind == "tile"
    m, n = a
    ln = TN[n] * 9  # the LEA vector: n_cnt * kh * kw = 18 or 9 ...
    ln_e = ln + ln % 2  # ... rounded up to even: 18 or 10
    elems = TM[m] * 2
    per_elem = q["lea_mac"](ln_e) + 3 * q["max"] + q["add"]  # msp_mac_q15, exactness guard, acc + mac/2
    gather = 2 * ln_e * q["copy"]  # one im2col gather per output position (2 per tile), shared over m
    scan = TN[n] * 3 * 4 * (q["abs"] + q["max"]) + q["div"]  # max|x| over the 3x4 input tile, limit division
    wsum = TM[m] * ln * (q["abs"] + q["add"])  # sum|w| per output channel
    return 0, elems * per_elem + gather + scan + wsum


def hand_units(order: str, q) -> np.ndarray:
    out = np.zeros((4, 3, 2))
    for u, events in enumerate(UNITS[order]):
        for ev in events:
            k, c = event_cost(ev, q)
            out[u, k] += c
            if ev[0] == "out":  # the output step is compute
                out[u, 0] += TM[ev[1]] * ELEMS[0] * (2 * q["add"] + 3 * q["max"])
        out[u, 2] = q["dma_write"](2)  # the progress commit: 2 words
    return out


@pytest.mark.parametrize("order", ["reuse_I", "reuse_W", "reuse_O"])
def test_lea_dma_unit_costs_by_hand(order):
    """iNAS-style LEA/DMA costs on iNAS's platform (external FRAM, no ``cpu_sw``)."""
    platform = "msp430fr5994-extfram"
    d = ExecutionDesign(Tr=1, Tc=2, Tm=2, Tn=2, loop_order=order, S=2)
    lp = plan_layer(GEOM, d, PLATFORMS[platform], backend="lea")
    assert lp.backend == "lea" and not lp.tables.software
    want = hand_units(order, PRIMS[platform])
    np.testing.assert_allclose(lp.unit_cost[..., 0], want[..., 0], rtol=1e-12)
    np.testing.assert_allclose(lp.unit_cost[..., 1], want[..., 1], rtol=1e-12)


def test_lea_tile_compute_spelled_out():
    """One tile (m0, n0, r0), as plain numbers (the LEA kernel's primitives have the same cycles on both
    presets): 4 elements x (1.5*18 + 616 + 3*14 + 12) + 2 gathers x 18 x 12 + 2*3*4 x (12 + 14) + 160
    + 2 x 18 x (12 + 12) = 2788 + 432 + 784 + 864 = 4868."""
    for q in PRIMS.values():
        assert event_cost(("tile", 0, 0), q)[1][0] == pytest.approx(4868.0)
    d = ExecutionDesign(Tr=1, Tc=2, Tm=2, Tn=2, loop_order="reuse_O", S=1)
    lp = plan_layer(GEOM, d, MSP430FR5994_EXTFRAM, backend="lea")
    # unit 0 = tile (m0, n0, r0) alone: compute 4868 + 4 bias inits x 12
    assert lp.unit_cost[0, 0, 0] == pytest.approx(4868.0 + 48.0)


def _bits(i: int) -> int:
    return i.bit_length()


#: events of each unit (2 tiles each) in the emitted runtime (aidi_runtime.c), per loop order; tile = (m, n, r).
#: fetch_input / fetch_weights skip a tile still in SRAM (key (n, r) / (m, n), kept across units of one boot);
#: weighted_tile runs an accumulator pass (bias at n = 0, else partial sums) unless the previous tile of the
#: unit was the same block's previous n tile (stride of n = 1), and a write-back pass (outputs at the last n,
#: else partial sums) unless the next tile is the block's next n tile; "vdiv" is aidi_block_version's division
#: (n > 0 and stride of n < S).  Strides of n: reuse_O 1, reuse_I Mt = 2, reuse_W Rt*Ct = 2 (= S: no vdiv).
RUNTIME_UNITS = {
    "reuse_O": [  # nest m, r, c, n: units (m, r); every tile changes both fetch keys
        [("in", 0, r), ("w", m, 0), ("bias", m), ("tile", m, 0, r),
         ("in", 1, r), ("w", m, 1), ("vdiv",), ("tile", m, 1, r), ("out", m)]
        for m, r in [(0, 0), (0, 1), (1, 0), (1, 1)]
    ],
    "reuse_I": [  # nest r, c, n, m: units (r, n), one input tile each (the m1 tile hits the cache)
        [("in", n, r)] + [ev for m in (0, 1) for ev in (
            [("w", m, 0), ("bias", m), ("tile", m, 0, r), ("psum_wr", m)] if n == 0 else
            [("w", m, 1), ("psum_rd", m), ("tile", m, 1, r), ("out", m)])]
        for r, n in [(0, 0), (0, 1), (1, 0), (1, 1)]
    ],
    "reuse_W": [  # nest m, n, r, c: units (m, n), one weight tile each (the r1 tile hits the cache)
        [("w", m, n)] + [ev for r in (0, 1) for ev in (
            [("in", 0, r), ("bias", m), ("tile", m, 0, r), ("psum_wr", m)] if n == 0 else
            [("in", 1, r), ("psum_rd", m), ("tile", m, 1, r), ("out", m)])]
        for m, n in [(0, 0), (0, 1), (1, 0), (1, 1)]
    ],
}


def runtime_event_cycles(ev, sw, q, kernel: str) -> tuple[int, float]:
    """(category, cycles) of one runtime event: 0 compute, 1 data movement, 2 preservation.

    ``kernel``: "lea" (aidi_conv_tile_lea, costed from the LEA/CPU primitives ``q``) or "cpu"
    (aidi_conv_tile_cpu, the fitted ``cpu_sw`` kernel constants)."""
    kind, *a = ev
    if kind == "in":  # fetch_input: tn channels x 3 rows (r..r+2) x 4 words, no padding; row address bits
        n, r = a
        row_bits = sum(_bits(2 * y) for y in (r, r + 1, r + 2))
        return 1, sw.in_fetch + TN[n] * (3 * (sw.in_row + 4 * sw.in_word) + row_bits * sw.in_row_bit)
    if kind == "w":  # fetch_weights: per output channel its tn*9 words
        m, n = a
        return 1, TM[m] * (sw.w_filter + 9 * TN[n] * sw.w_word)
    if kind in ("bias", "out"):  # one pass over the block's tm channels x 2 elements (the per-element part is compute)
        return 1, sw.io_channel * TM[a[0]]
    if kind in ("psum_rd", "psum_wr"):  # int32 partial sums of the block: tm channels x 2 elements
        return 1, sw.psum_event + sw.io_channel * TM[a[0]] + sw.psum_word * TM[a[0]] * 2
    if kind == "vdiv":
        return 2, sw.version_div
    assert kind == "tile"
    m, n, r = a
    # runtime per tile: geometry/fetch calls/version/kernel call, fetch_input's address set-up (two multiplies
    # by stride = 1: 2 x 1 bit, in_h = 4: 3 bits, in_h*in_w = 16: 5 bits), the bits of m, m0 = 2m, r, r0 = r, n
    cyc = sw.tile_weighted + sw.fetch_bit * (2 * 1 + 3 + 5) + sw.tile_bit * (
        _bits(m) + _bits(2 * m) + 2 * _bits(r) + _bits(n))
    if kernel == "lea":  # the LEA kernel's calls (event_cost's hand formula), no CPU kernel loops
        cyc += event_cost(("tile", m, n), q)[1][0]
    else:  # the portable kernel: per accumulator its loops and MACs, per (output channel, output row) tile_row
        cyc += TM[m] * 2 * (sw.acc_elem + TN[n] * (sw.acc_channel + 3 * (sw.kernel_row + 3 * sw.mac)))
        cyc += sw.tile_row * TM[m] * 1
    return 0, cyc


def runtime_units(order: str, kernel: str) -> np.ndarray:
    """(4, 3) cycles per unit and category of the layer on the on-chip preset's runtime."""
    sw, q = MSP430FR5994.cpu_sw, PRIMS["msp430fr5994"]
    want = np.zeros((4, 3))
    for u, events in enumerate(RUNTIME_UNITS[order]):
        for ev in events:
            k, cyc = runtime_event_cycles(ev, sw, q, kernel)
            want[u, k] += cyc
            if ev[0] == "bias":  # acc_init per accumulator set from the bias
                want[u, 0] += TM[ev[1]] * 2 * sw.acc_init
            if ev[0] == "out":  # output per accumulator finalised and stored
                want[u, 0] += TM[ev[1]] * 2 * sw.output
        want[u, 2] += sw.unit  # scheduler, run_unit, the progress commit
    want[0, 0] += sw.layer_start
    return want


@pytest.mark.parametrize("order", ["reuse_I", "reuse_W", "reuse_O"])
def test_onchip_lea_runtime_unit_costs_by_hand(order):
    """``backend="lea"`` on the on-chip preset: the emitted runtime's data movement, passes, overheads and
    commit (its fetch cache and spills included) around the LEA kernel's compute.  Both kernels share every
    runtime term, so the difference to ``backend="cpu"`` is exactly the kernel terms."""
    d = ExecutionDesign(Tr=1, Tc=2, Tm=2, Tn=2, loop_order=order, S=2)
    lp = plan_layer(GEOM, d, MSP430FR5994, backend="lea")
    assert lp.backend == "lea" and lp.tables.software
    want = runtime_units(order, "lea")
    np.testing.assert_allclose(lp.unit_cost[..., 0], want, rtol=1e-12)
    np.testing.assert_allclose(lp.unit_cost[..., 1], want * E_CYC, rtol=1e-12)
    cpu = plan_layer(GEOM, d, MSP430FR5994, backend="cpu")
    np.testing.assert_allclose(cpu.unit_cost[..., 0], runtime_units(order, "cpu"), rtol=1e-12)
    np.testing.assert_allclose(cpu.unit_cost[..., 1:, 0], lp.unit_cost[..., 1:, 0], rtol=1e-12)


POOL = LayerGeom(1, "maxpool", "maxpool", (2, 4, 4), (2, 2, 2), 2, 2, 2, 0, False, False)


@pytest.mark.parametrize("backend", ["lea", "cpu"])
def test_onchip_pool_runs_the_runtime_pool_kernel_under_every_backend(backend):
    """A 2x2/2 maxpool over 2x4x4, one tile (Tr=Tc=Tm=2), S=1, on the on-chip preset: the portable pool
    kernel whatever the plan's backend.  Compute: 8 outputs x (pool_out + 4 max_tap), tile_pool,
    fetch_input's set-up bits (two multiplies by stride = 2: 2 x 2 bits, in_h = 4: 3, in_h*in_w = 16: 5; tile
    indices all 0),
    tile_row per (channel, row) = 2*2, layer_start.  Data: one input fetch of 2 channels x 4 rows x 4 words,
    row address bits 2y for y = 0..3: 0 + 2 + 3 + 3.  The pool stores its outputs itself (in pool_out)."""
    sw = MSP430FR5994.cpu_sw
    d = ExecutionDesign(Tr=2, Tc=2, Tm=2, Tn=2, loop_order="reuse_O", S=1)
    lp = plan_layer(POOL, d, MSP430FR5994, backend=backend)
    assert lp.backend == "cpu" and lp.tables.software
    cp = 8 * (sw.pool_out + 4 * sw.max_tap) + sw.tile_pool + sw.fetch_bit * (2 * 2 + 3 + 5) + sw.tile_row * 4
    cp += sw.layer_start
    dm = sw.in_fetch + 2 * (4 * (sw.in_row + 4 * sw.in_word) + 8 * sw.in_row_bit)
    want = np.array([[cp, dm, sw.unit]])
    np.testing.assert_allclose(lp.unit_cost[..., 0], want, rtol=1e-12)
    np.testing.assert_allclose(lp.unit_cost[..., 1], want * E_CYC, rtol=1e-12)
    # iNAS's platform keeps its iNAS-style pool costs
    assert not plan_layer(POOL, d, MSP430FR5994_EXTFRAM, backend=backend).tables.software


def test_portable_c_unit_costs_by_hand():
    """The same layer on the portable-C runtime (``backend="cpu"``, on-chip preset), reuse_O, S=2.

    Per unit the (m, r) block's two n tiles; every tile refetches its input and
    weights (the (n, r) and (m, n) keys change from tile to tile), the n1 tile
    pays the partial-sum version division (stride of n = 1 < S).  Constants are
    the platform's fitted ``cpu_sw`` fields, by name (a refit changes them, not
    this count); ``*_bit`` terms count the bits of the index multiplies.
    """
    sw = MSP430FR5994.cpu_sw
    d = ExecutionDesign(Tr=1, Tc=2, Tm=2, Tn=2, loop_order="reuse_O", S=2)
    lp = plan_layer(GEOM, d, MSP430FR5994, backend="cpu")
    assert lp.backend == "cpu"
    def bits(i: int) -> int:
        return i.bit_length()

    fetch_bits = 2 * 1 + 3 + 5  # 2*stride (2 bits), in_h = 4 (3 bits), in_h*in_w = 16 (5 bits)
    want = np.zeros((4, 3))
    for u, (m, r) in enumerate([(0, 0), (0, 1), (1, 0), (1, 1)]):
        tm, m0 = TM[m], 2 * m
        row_bits = sum(bits(2 * y) for y in (r, r + 1, r + 2))  # the address multiplies of rows r..r+2
        cp = dm = pv = 0.0
        for n in (0, 1):
            tn = TN[n]
            cp += tm * 2 * (sw.acc_elem + tn * (sw.acc_channel + 3 * (sw.kernel_row + 3 * sw.mac)))
            cp += sw.tile_weighted + sw.fetch_bit * fetch_bits + sw.tile_row * tm * 1
            cp += sw.tile_bit * (bits(m) + bits(m0) + bits(r) + bits(r) + bits(n))  # m, m0, r, r0 = r, n (c = 0)
            dm += sw.in_fetch + tn * (3 * (sw.in_row + 4 * sw.in_word) + row_bits * sw.in_row_bit)
            dm += tm * (sw.w_filter + 9 * tn * sw.w_word)
        cp += tm * 2 * sw.acc_init + tm * 2 * sw.output  # bias pass (n0), outputs (n1)
        dm += sw.io_channel * tm * 2  # the bias pass and the output pass, per output channel
        pv += sw.version_div + sw.unit  # n1's partial-sum version, the unit's commit
        if u == 0:
            cp += sw.layer_start
        want[u] = cp, dm, pv
    np.testing.assert_allclose(lp.unit_cost[..., 0], want, rtol=1e-12)
    np.testing.assert_allclose(lp.unit_cost[..., 1], want * E_CYC, rtol=1e-12)


# --------------------------------------------------------------------------- compiled tables (costs.fast)
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from aidi.models.costs import cost_tables, lower_bound, runtime_model  # noqa: E402
from aidi.models.costs.fast import fast_tables, geom_vector, lower_bound_closed, platform_vector, sram_fits  # noqa: E402
from aidi.models.schedule.design import normalize_design  # noqa: E402
from aidi.models.schedule.memory import check_sram, layer_sram_buffers  # noqa: E402
from tests.test_models_schedule import layer_and_design  # noqa: E402

FAST_PLATFORMS = {"fr5994": MSP430FR5994, "extfram": MSP430FR5994_EXTFRAM}


def _normalised(gd):
    g, d = gd
    try:
        return g, normalize_design(g, d)
    except ValueError:
        return g, None


@settings(max_examples=300, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]), st.sampled_from(sorted(FAST_PLATFORMS)))
def test_compiled_tables_equal_the_numpy_tables(gd, backend, pname):
    g, d = _normalised(gd)
    if d is None:
        return
    p = FAST_PLATFORMS[pname]
    ref = cost_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, backend)
    got = fast_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, backend)
    for name, a, b in zip(ref._fields, ref, got):
        if name == "software":
            assert bool(a) == bool(b)
            continue
        assert np.shape(a) == np.shape(b), name
        np.testing.assert_allclose(b, a, rtol=1e-12, atol=0, err_msg=name)


@settings(max_examples=300, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]), st.sampled_from(sorted(FAST_PLATFORMS)),
       st.integers(300, 8192))
def test_closed_form_lower_bound_and_sram_scan(gd, backend, pname, budget):
    """The per-axis (interior/edge tile class) lower bound equals the table sums; the compiled SRAM verdict is
    check_sram's with one accumulator block."""
    g, d = _normalised(gd)
    if d is None:
        return
    p = FAST_PLATFORMS[pname]
    b = backend if g.weighted else "cpu"
    tab = cost_tables(g, d.Tr, d.Tc, d.Tm, d.Tn, p, b)
    lb, commit = lower_bound_closed(geom_vector(g), platform_vector(p), d.Tr, d.Tc, d.Tm, d.Tn, b == "lea",
                                    runtime_model(p))
    np.testing.assert_allclose(lb, lower_bound(g, tab), rtol=1e-12, atol=0)
    np.testing.assert_allclose(commit, tab.commit, rtol=1e-12, atol=0)
    bufs = layer_sram_buffers(g, d, 4 * d.Tm * d.Tr * d.Tc, b)
    for lea_arena in (False, True):  # the arena in LEA RAM: a LEA layer, or any layer of a plan that may use it
        cap = p.lea_ram_bytes if b == "lea" or lea_arena else budget
        fits = sram_fits(geom_vector(g), d.Tr, d.Tc, d.Tm, d.Tn, b == "lea", 4 * d.Tm * d.Tr * d.Tc, budget, cap)
        assert fits == (check_sram(g, bufs, budget, p, b, 1, lea_arena) is None)


@settings(max_examples=100, deadline=None)
@given(layer_and_design(), st.sampled_from(["lea", "cpu"]), st.sampled_from(sorted(FAST_PLATFORMS)))
def test_lower_bound_scratch_reused_over_a_layers_tiles(gd, backend, pname):
    """rank_space reuses one scratch over every tile of a layer: a bound computed on a scratch dirtied by the
    layer's smallest tiles (every axis split finest, the most rows written) equals the bound on a fresh one."""
    from aidi.models.costs.fast import lb_scratch, lower_bound_into

    g, d = _normalised(gd)
    if d is None:
        return
    p = FAST_PLATFORMS[pname]
    lea = g.weighted and backend == "lea"
    gv, pv, sw = geom_vector(g), platform_vector(p), runtime_model(p)
    iw, fw = lb_scratch(gv)
    iw[:] = -7
    fw[:] = np.nan
    lower_bound_into(gv, pv, 1, 1, 1, 1, lea, sw, iw, fw)  # the finest tiles: every scratch row in use
    got = lower_bound_into(gv, pv, d.Tr, d.Tc, d.Tm, d.Tn, lea, sw, iw, fw)
    lb, commit = lower_bound_closed(gv, pv, d.Tr, d.Tc, d.Tm, d.Tn, lea, sw)
    assert got == (lb[0], lb[1], commit[0], commit[1])
