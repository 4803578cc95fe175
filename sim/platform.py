"""Platform presets: the MSP430FR5994 and its primitive costs.

Every constant carries its source. Costs are returned as :class:`Cost` records
(MCLK cycles and energy in joules at the MCU's supply pins, i.e. before the
converter).  Two presets:

``msp430fr5994``
    on-chip FRAM at 16 MHz (1 FRAM wait state), costs derived from the
    datasheet's active current (SLASE54D) at a nominal 3.0 V supply.
``msp430fr5994-extfram``
    iNAS's platform (external SPI FRAM): the linear micro-benchmark fits from
    iNAS's CostModel (EMCLab-Sinica/Intermittent-aware-NAS).

Software (CPU) kernel costs of the on-chip preset (:class:`SoftwareCosts`,
``Platform.cpu_sw``) describe what the emitted portable-C runtime does, operation
by operation, and are fitted to mspdebug cycle counts of that firmware (see
:func:`aidi.models.cost_calibration.fit_software_costs` and ``tests/test_calibration_mspdebug.py``).

A board's own constants live in a platform file (:func:`load_platform_file`: a base preset plus the
constants measured on the board, which ``aidi calibrate`` fits from the microbench's counts and an
EnergyTrace recording); a scenario names it as ``[device] platform = "my-board.toml"``.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path


@dataclass(frozen=True)
class Cost:
    """MCLK cycles and energy (J) of one primitive operation."""

    cycles: float
    energy_J: float

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.cycles + other.cycles, self.energy_J + other.energy_J)

    def __mul__(self, k: float) -> "Cost":
        return Cost(self.cycles * k, self.energy_J * k)

    __rmul__ = __mul__


ZERO = Cost(0.0, 0.0)


@dataclass(frozen=True)
class Linear:
    """A linear fit ``slope * n + offset`` (cycles or joules)."""

    slope: float
    offset: float

    def __call__(self, n: float) -> float:
        return self.slope * n + self.offset


@dataclass(frozen=True)
class SoftwareCosts:
    """MCLK cycles of the emitted C runtime and its portable kernels, operation by operation.

    Each field is the cost of one occurrence of what its comment names, as the
    runtime (models/emit/runtime/aidi_runtime.c, aidi_kernels_cpu.c) executes
    it: the CPU copies tiles between FRAM and SRAM word by word (no DMA), walks
    the tile loops, and computes with ``aidi_sat_add32(acc, aidi_mul16(x, w))``.
    :mod:`aidi.models.costs.software` counts the occurrences (module docstring);
    energy is cycles times the platform's energy per cycle (on-chip FRAM).
    The runtime's fields apply under every backend; the conv kernel's
    (``acc_elem``, ``acc_channel``, ``kernel_row``, ``mac``, and ``tile_row`` of
    conv tiles) only to ``backend="cpu"``: the LEA kernel is costed from the
    platform's LEA and CPU primitives instead.

    Index arithmetic (``co * tile``, ``y * in_w``, ...) is a 16-bit multiply that
    the simulator build lowers to the shift-and-add ``__mspabi_mpyi``, one loop
    iteration per bit of the multiplier: the ``*_bit`` fields charge those bits.
    """

    layer_start: float     # per layer: tile_decode (32-bit divisions), layer marker
    unit: float            # per unit: scheduler loop, run_unit set-up, progress commit (4 FRAM words)
    tile_weighted: float   # per tile of a conv/dwconv/fc layer: geometry, fetch calls, version, kernel call
    tile_pool: float       # per tile of a pooling layer
    tile_bit: float        # per bit of the tile coordinates (m, n, r, c indices, m0, r0) of a tile
    fetch_bit: float       # per tile, per bit of stride (twice), in_h and in_h*in_w (fetch_input's address set-up)
    in_fetch: float        # per input tile copied FRAM -> SRAM
    in_row: float          # per input row copied (per channel)
    in_row_bit: float      # per bit of 2*y of each copied row (its address multiply)
    in_pad_row: float      # per zero-padding row written
    in_word: float         # per word of a copied row (bounds check, copy)
    in_pad_word: float     # per word of a zero-padding row
    w_filter: float        # per output channel of a weight tile copied FRAM -> SRAM
    w_word: float          # per weight word copied
    acc_init: float        # per accumulator initialised from the bias
    output: float          # per output: round-shift, saturate, ReLU, FRAM store
    io_channel: float      # per output channel of an accumulator init or write-back pass
    psum_event: float      # per partial-sum read or write-back pass (half of a round trip)
    psum_word: float       # per int32 partial sum read from or written to FRAM
    version_div: float     # per tile whose partial-sum version needs the 32-bit division
    acc_elem: float        # conv kernel: per accumulator per tile
    acc_channel: float     # conv kernel: per accumulator per input channel
    kernel_row: float      # conv kernel: per accumulator per input channel per kernel row
    mac: float             # conv kernel: one saturating Q15 MAC (aidi_mul16 on the MPY, sat_add32)
    tile_row: float        # conv and pool kernels: per (output channel, output row) of a tile
    pool_out: float        # pool kernel: per output (window set-up, FRAM store)
    avg_div: float         # avgpool/gap: the int32 floor division per output
    max_tap: float         # maxpool: per window element (int32 compare)
    avg_tap: float         # avgpool: per window element (int32 add)


@dataclass(frozen=True)
class Board:
    """What the board around the MCU draws besides the MCU itself (quiescent and peripheral loads).

    active_A: extra current (A) at the MCU's supply voltage while the MCU runs units: added to each
    unit's draw (energy category ``board``, through the converter like the MCU's own power);
    sleep_A: current (A) the board draws from the storage capacitor at all times (on, off, charging),
    a constant-current drain like ``[power] leakage_A`` but reported under ``board``.
    """

    name: str
    active_A: float = 0.0
    sleep_A: float = 0.0
    sources: dict = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class SpiFram:
    """An external SPI FRAM on one eUSCI in SPI master mode, its data moved by DMA: the cost of one transfer.

    A transfer of ``n`` Q15 words shifts ``cmd + 2 n`` bytes at ``spi_hz`` (8 SCK per byte), plus the
    software around it (chip select, DMA channel set-up, busy polling) of ``*_setup_cycles`` MCLK cycles.
    The CPU waits for the DMA, so the MCU stays active (its energy per cycle) for the whole transfer; the
    FRAM draws ``active_A`` while bytes shift and ``standby_A`` (CS high) the rest of the time the MCU is on
    (added to the board's active current whenever a tensor is placed in it).
    """

    name: str
    spi_hz: float  # SCK
    read_cmd_bytes: int  # READ opcode + address bytes
    write_cmd_bytes: int  # WREN (its own chip-select cycle) + WRITE opcode + address bytes
    read_setup_cycles: float  # MCLK cycles of the software around a read
    write_setup_cycles: float
    active_A: float  # supply current while clocked at spi_hz
    standby_A: float  # supply current, chip select high
    v: float  # supply voltage (V): the MCU's rail
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    def bus_cycles(self, n_bytes: float, mclk_hz: float) -> float:
        """MCLK cycles of ``n_bytes`` shifted at ``spi_hz`` (8 SCK per byte)."""
        return n_bytes * 8.0 * mclk_hz / self.spi_hz


#: where a tensor may live: the MCU's own FRAM or the external SPI FRAM
PLACEMENTS = ("fram", "spi-fram")


@dataclass(frozen=True)
class Platform:
    """Device constants and primitive cost fits.

    Energy of a primitive is either given by a fit (``*_energy``) or, when the
    fit is ``None``, derived as ``cycles * energy_per_cycle_J``.
    """

    name: str
    mclk_hz: float
    sram_bytes: int
    lea_ram_bytes: int
    fram_bytes: int
    v_nominal: float
    active_power_W: float  # MCU active at mclk_hz
    sleep_power_W: float  # LPM3 with VLO, waiting between inferences
    boot_s: float  # power-up to main(), plus resume from FRAM
    boot_energy_J: float
    # primitive fits, cycles
    dma_read_cycles: Linear  # FRAM -> SRAM, n Q15 words
    dma_write_cycles: Linear  # SRAM -> FRAM, n Q15 words
    lea_mac_cycles: Linear  # msp_mac_q15 of length n
    cpu_mac_cycles: float  # one software Q15 MAC (load, multiply, accumulate)
    cpu_add_cycles: float
    cpu_mul_cycles: float
    cpu_div_cycles: float
    cpu_max_cycles: float
    cpu_abs_cycles: float  # |x| of one Q15 word (no load or loop)
    cpu_copy_cycles: float  # one SRAM word copied by a CPU loop (load, store, pointer and loop updates)
    commit_words: int  # words written to commit a progress record
    # optional energy fits (J); None -> cycles * energy_per_cycle
    dma_read_energy: Linear | None = None
    dma_write_energy: Linear | None = None
    lea_mac_energy: Linear | None = None
    cpu_add_energy: float | None = None
    cpu_mul_energy: float | None = None
    cpu_div_energy: float | None = None
    cpu_max_energy: float | None = None
    #: the emitted C runtime's costs: its data movement, passes, per-tile and unit
    #: overheads and pools under every backend, the portable conv kernel under
    #: backend="cpu" (aidi.models.costs.software); None: iNAS-style tables
    #: (cpu_mac_cycles per MAC, DMA data movement) for every layer
    cpu_sw: SoftwareCosts | None = None
    #: energy-aware dispatch (``[execution] dispatch = "energy_aware"``): one supply-voltage measurement
    #: before a unit, the LPM3 wait for the comparator's interrupt, and the wake-up from it
    measure_s: float = 0.0  # ADC12_B reading of AVCC/2 (reference settling, sampling, conversion)
    measure_energy_J: float = 0.0
    wait_power_W: float = 0.0  # LPM3 with COMP_E watching VCC through its reference ladder
    wake_s: float = 0.0  # LPM3 -> active, at active_power_W
    #: the board around the MCU (:class:`Board`; ``[device] board``) and the external SPI FRAM it may carry
    board: Board | None = None
    spi_fram: SpiFram | None = None
    #: where weights and activations (layer inputs, outputs, partial sums) live: "fram" (on-chip) or
    #: "spi-fram" (``spi_fram``); the progress record stays on-chip
    weights: str = "fram"
    activations: str = "fram"
    sources: dict = field(default_factory=dict, compare=False, hash=False)

    @property
    def energy_per_cycle_J(self) -> float:
        return self.active_power_W / self.mclk_hz

    @property
    def external(self) -> bool:
        """Is any tensor placed in the external SPI FRAM?"""
        return "spi-fram" in (self.weights, self.activations)

    @property
    def board_active_W(self) -> float:
        """What the board draws besides the MCU while units run (W at ``v_nominal``): the board's active
        current, plus the SPI FRAM's standby current when a tensor is placed there."""
        amps = self.board.active_A if self.board is not None else 0.0
        if self.external:
            amps += self.spi_fram.standby_A
        return amps * self.v_nominal

    def with_board(self, board: Board | None = None, *, weights: str = "fram", activations: str = "fram") -> "Platform":
        """The same device on ``board`` with tensors placed as given ("fram" | "spi-fram"); ValueError for an
        unknown placement, or "spi-fram" on a platform without an external FRAM model.  A board that draws
        nothing is no board (None): with every tensor on-chip the result equals this platform."""
        for what, where in (("weights", weights), ("activations", activations)):
            if where not in PLACEMENTS:
                raise ValueError(f"{what}: unknown placement {where!r} (known: {', '.join(PLACEMENTS)})")
            if where == "spi-fram" and self.spi_fram is None:
                raise ValueError(f"{what}: platform {self.name} has no external SPI FRAM model (its data "
                                 "movement already is iNAS's external-FRAM fit); use platform msp430fr5994")
        if board is not None and board.active_A == 0.0 and board.sleep_A == 0.0:
            board = None
        return replace(self, board=board, weights=weights, activations=activations)

    def spi_transfer(self, n_words: int, write: bool) -> Cost:
        """One SPI FRAM transfer of ``n_words`` Q15 words (:class:`SpiFram`); n <= 0 is free."""
        f = self.spi_fram
        if n_words <= 0:
            return ZERO
        cmd = f.write_cmd_bytes if write else f.read_cmd_bytes
        bus = f.bus_cycles(cmd + 2 * n_words, self.mclk_hz)
        cycles = bus + (f.write_setup_cycles if write else f.read_setup_cycles)
        return Cost(cycles, cycles * self.energy_per_cycle_J + bus / self.mclk_hz * (f.active_A - f.standby_A) * f.v)

    def with_mclk(self, mclk_hz: float) -> "Platform":
        """Same device at another MCLK (power scales with frequency, 118 uA/MHz)."""
        scale = mclk_hz / self.mclk_hz
        return replace(self, mclk_hz=mclk_hz, active_power_W=self.active_power_W * scale)

    # -- primitives -------------------------------------------------------------
    def _cost(self, cycles: float, energy: float | None) -> Cost:
        return Cost(cycles, cycles * self.energy_per_cycle_J if energy is None else energy)

    def dma_read(self, n_words: int) -> Cost:
        if n_words <= 0:
            return ZERO
        e = self.dma_read_energy(n_words) if self.dma_read_energy else None
        return self._cost(self.dma_read_cycles(n_words), e)

    def dma_write(self, n_words: int) -> Cost:
        if n_words <= 0:
            return ZERO
        e = self.dma_write_energy(n_words) if self.dma_write_energy else None
        return self._cost(self.dma_write_cycles(n_words), e)

    def lea_mac(self, n: int) -> Cost:
        """One LEA vector MAC (msp_mac_q15) of length n."""
        e = self.lea_mac_energy(n) if self.lea_mac_energy else None
        return self._cost(self.lea_mac_cycles(n), e)

    def cpu_mac(self, n: int = 1) -> Cost:
        return self._cost(self.cpu_mac_cycles * n, None)

    def cpu_add(self, n: int = 1) -> Cost:
        e = None if self.cpu_add_energy is None else self.cpu_add_energy * n
        return self._cost(self.cpu_add_cycles * n, e)

    def cpu_mul(self, n: int = 1) -> Cost:
        e = None if self.cpu_mul_energy is None else self.cpu_mul_energy * n
        return self._cost(self.cpu_mul_cycles * n, e)

    def cpu_div(self, n: int = 1) -> Cost:
        e = None if self.cpu_div_energy is None else self.cpu_div_energy * n
        return self._cost(self.cpu_div_cycles * n, e)

    def cpu_max(self, n: int = 1) -> Cost:
        e = None if self.cpu_max_energy is None else self.cpu_max_energy * n
        return self._cost(self.cpu_max_cycles * n, e)

    def cpu_abs(self, n: int = 1) -> Cost:
        """``n`` absolute values of Q15 words (energy: cycles x energy per cycle)."""
        return self._cost(self.cpu_abs_cycles * n, None)

    def cpu_copy(self, n_words: int = 1) -> Cost:
        """``n_words`` SRAM words copied one by one by the CPU (energy: cycles x energy per cycle)."""
        return self._cost(self.cpu_copy_cycles * n_words, None)

    def commit(self) -> Cost:
        """Write one progress record (index + version) to FRAM."""
        return self.dma_write(self.commit_words)

    def reboot(self) -> Cost:
        return Cost(self.boot_s * self.mclk_hz, self.boot_energy_J)

    def seconds(self, cycles: float) -> float:
        return cycles / self.mclk_hz


#: provenance and caveats of Platform.cpu_sw (the portable-C path's costs)
_SW_SOURCE = (
    "fit to mspdebug 0.22 counts of the emitted portable C, SIM_HWMULT=1, 2026-11-23: active-set "
    "non-negative least squares (numpy) of per-layer MCLK cycles, relative error, over the default digits "
    "network and aidi.analysis.emit.calibration_network(0..79) (244 layers: conv, dwconv, pwconv, fc, "
    "maxpool, avgpool, gap; random tile sizes, loop orders and S); in-sample max |error| 3.9 %, rms 1.2 %, "
    "held out (calibration_network(1000..1059), 171 layers) max 5.3 %, rms 1.6 %; refit with "
    "aidi.analysis.emit.calibration_set + aidi.models.cost_calibration.fit_software_costs. "
    "Built with clang-14 -O2 --target=msp430. "
    "Caveats: mspdebug 0.22 counts with the classic MSP430 instruction timings, not the FR5994's "
    "MSP430X/CPUX ones, and miscounts some constant-generator forms (#4/#8 via R2, #-1/#2 via R3) that cost "
    "fewer cycles on silicon; it has no FRAM wait states (1 per FRAM access beyond the cache at 16 MHz on "
    "the device), no LEA, no DMA and no MPY32 (SIM_HWMULT=1 uses its classic MPY at 0x0130 for the Q15 "
    "products; index multiplies stay in the software __mspabi_mpyi, hence the *_bit terms, which the "
    "FR5994's MPY32 would make constant); so these are cycles of the classic-MSP430 simulator, not of the "
    "silicon at 16 MHz")

#: provenance of the LEA kernel's CPU primitives (Platform.cpu_abs_cycles, cpu_copy_cycles)
_ABS_SOURCE = (
    "counted: clang-14 -O2 --target=msp430 compiles aidi_kernels_lea.c's |x| to the branchless sign-mask "
    "form (mov, swpb, sxt, 7 x rra, add, xor): 12 single-cycle register instructions, classic MSP430 "
    "cycle table; the load and the loop are charged by the primitive it is paired with (MAX or ADD)")
_COPY_SOURCE = (
    "inferred: mov x(Rs),x(Rd) 6 cycles (MSP430 format I, indexed to indexed) + ~6 cycles of pointer "
    "increments and loop test; the gather's address arithmetic (i * tci, a software __mspabi_mpyi in "
    "the clang simulator build) is not included")

# MSP430FR5994 datasheet SLASE54D: 118 uA/MHz active (FRAM, 0% cache hit), 16 MHz max,
# supply 1.8-3.6 V; at 3.0 V that is 118e-6 * 16 * 3.0 = 5.664 mW at 16 MHz.
_V_NOM = 3.0
_P_ACTIVE_16MHZ = 118e-6 * 16 * _V_NOM

# Energy-aware dispatch costs, from the TI datasheets' tables (typical values at 3.0 V, 25 C unless
# "max" is said), checked against TI's online copies of SLASE54D (MSP430FR5994) on 2026-11-30:
# * Voltage measurement: the ADC12_B on its internal AVCC/2 channel (ADC12BATMAP) against the 1.2 V
#   REF_A reference: reference settling (t_SETTLE 40 us, taken as the max; the REF_A table of SLASE54D was
#   not at hand) + sampling 16 ADC12CLK + conversion 14 ADC12CLK (12 bit) on MODOSC (4.8 MHz typ)
#   = 46.25 us, while the CPU stays active at 16 MHz (118 uA/MHz = 1.888 mA), the ADC draws
#   I(ADC12_B) single-ended 145 uA (SLASE54D "12-bit ADC, power supply and input range conditions") and
#   the reference with its ADC buffer draws I_REF+_ADC_BUF 247 uA (REF_A table of SLASEF5B, MSP430FR604x,
#   the same REF_A module with REFOUT = 0, ADC12PWRMD = 0).
_MEASURE_S = 40e-6 + (16 + 14) / 4.8e6
_MEASURE_J = _MEASURE_S * (118e-6 * 16 + 145e-6 + 247e-6) * _V_NOM
# * Threshold wait: LPM3 (0.7 uA typ, SLASE54D "Operating modes" table) with COMP_E in its slow power
#   mode (CEPWRMD = 10) comparing the supply (through the board's divider on a CEx pin; its current
#   depends on the resistors and is not included) with the shared 1.2 V reference on the comparator's
#   resistor ladder: I_AVCC_COMP_REF (comparator + ladder + REF, CEREFACC = 1, low-power accuracy) 16 uA
#   typ, 19 uA max (SLASE54D "Comparator_E"; max taken).  The ladder tap is set from V_start; the
#   comparator interrupt (CEIFG) wakes the CPU.  0.7 + 19 = 19.7 uA.
_WAIT_W = (0.7e-6 + 19e-6) * _V_NOM
# * Wake-up from LPM3 to active: t_WAKE-UP LPM3 = 9.6 us + 2.5 / f_DCO max (SLASE54D "Wake-up times from
#   low-power modes and reset"; 6.6 us + 2.0 / f_DCO typ), at f_DCO = 16 MHz, at active power.
_WAKE_S = 9.6e-6 + 2.5 / 16e6
_DISPATCH_SOURCES = {
    "measure_s": "SLASE54D: ADC12_B 16 sample + 14 conversion ADC12CLK at MODOSC 4.8 MHz typ (AVCC/2 via "
                 "ADC12BATMAP) + REF_A t_SETTLE 40 us (max) = 46.25 us",
    "measure_energy_J": "SLASE54D: active 118 uA/MHz at 16 MHz + I(ADC12_B) single-ended 145 uA; SLASEF5B "
                        "REF_A: I_REF+_ADC_BUF 247 uA; at 3.0 V, over measure_s",
    "wait_power_W": "SLASE54D: LPM3 0.7 uA typ (operating modes) + COMP_E I_AVCC_COMP_REF (CEPWRMD = 10, "
                    "CEREFACC = 1) 19 uA max, at 3.0 V; the board's supply divider is not included",
    "wake_s": "SLASE54D: t_WAKE-UP LPM3 9.6 us + 2.5/f_DCO max at f_DCO = 16 MHz, at active power",
}

# The external SPI FRAM of the published Stateful-CNN setup (EMCLab-Sinica/Stateful-CNN, tools/ext_fram/extfram.c):
# a Cypress/Infineon CY15B104Q (4 Mbit, 512K x 8) on eUSCI_A3 in 3-pin SPI master mode, clocked from SMCLK with
# UCA3BRW = 4, its data moved by DMA channels 3 (TX) and 4 (RX).  Constants and their sources:
_SPI_HZ = 16e6 / 4  # SMCLK (16 MHz, = MCLK) / UCBRW 4; the eUSCI's bit clock is BRCLK / UCBRW, BRCLK <= 16 MHz
_CY15_ACTIVE_A = 0.3e-3 + (2.5e-3 - 0.3e-3) * (_SPI_HZ - 1e6) / (40e6 - 1e6)
CY15B104Q = SpiFram(
    name="CY15B104Q",
    spi_hz=_SPI_HZ,
    read_cmd_bytes=4,
    write_cmd_bytes=5,
    read_setup_cycles=424.0 - 4 * 32.0,
    write_setup_cycles=422.23 - 5 * 32.0,
    active_A=_CY15_ACTIVE_A,
    standby_A=100e-6,
    v=_V_NOM,
    sources={
        "spi_hz": "Stateful-CNN tools/ext_fram/extfram.c: eUSCI_A3 SPI master from SMCLK, UCA3BRW = 4 -> 4 MHz at "
                  "16 MHz (MSP430FR5994 eUSCI: bit clock = BRCLK / UCBRW, BRCLK = SMCLK <= 16 MHz; the CY15B104Q "
                  "takes up to 40 MHz); 16 bits per Q15 word at 4 MHz = 64 MCLK cycles, iNAS CostModel's fitted DMA "
                  "slope on the same kind of board",
        "read_cmd_bytes": "CY15B104Q datasheet (Cypress 001-84452): READ opcode 03h + 3 address bytes; "
                          "extfram.c SPI_READ sends the same before the DMA",
        "write_cmd_bytes": "CY15B104Q datasheet: WREN 06h (its own chip-select cycle) + WRITE 02h + 3 address "
                           "bytes; extfram.c SPI_WRITE2",
        "read_setup_cycles": "inferred: iNAS CostModel's DMA NVM->VM offset 424 cycles minus the 4 command bytes "
                             "at 4 MHz (128 cycles): chip select, DMA set-up, polling",
        "write_setup_cycles": "inferred: iNAS CostModel's DMA VM->NVM offset 422.23 cycles minus the 5 command "
                              "bytes at 4 MHz (160 cycles)",
        "active_A": "inferred: CY15B104Q datasheet 300 uA active at 1 MHz, interpolated linearly in SCK to 2.5 mA "
                    "at 40 MHz (the same generation's CY15B256Q datasheet; the CY15B104Q's own 40 MHz figure was "
                    "not at hand) -> 0.469 mA at 4 MHz",
        "standby_A": "CY15B104Q datasheet: 100 uA typ standby (chip select high; the firmware never sends SLEEP)",
        "v": "the MCU's 3.0 V rail (SLASE54D nominal), shared with the FRAM",
    },
)

#: board presets (``[device] board``): what the board draws besides the MCU (:class:`Board`)
BOARDS = {b.name: b for b in (
    Board("none", sources={"*": "the MCU alone: no board load (aidi's model before boards)"}),
    Board("msp-exp430fr5994", 0.0, 0.0, sources={
        "active_A": "MSP-EXP430FR5994 LaunchPad (TI SLAU678 schematic) with the eZ-FET isolated (J101 jumpers "
                    "open, so its LDO, LEDs and debugger are off the target rail), user LEDs off, no microSD card: "
                    "nothing on the target side draws a quiescent current besides the MCU (inferred, 0 A); an "
                    "external FRAM's standby current is added by the placement (Platform.board_active_W)",
        "sleep_A": "as active_A: 0 A with the MCU off (inferred)"}),
)}

MSP430FR5994 = Platform(
    name="msp430fr5994",
    mclk_hz=16e6,
    sram_bytes=8192,
    lea_ram_bytes=3784,
    fram_bytes=256 * 1024,
    v_nominal=_V_NOM,
    active_power_W=_P_ACTIVE_16MHZ,
    sleep_power_W=0.5e-6 * _V_NOM,
    boot_s=0.5e-3,
    boot_energy_J=0.5e-3 * _P_ACTIVE_16MHZ,
    measure_s=_MEASURE_S,
    measure_energy_J=_MEASURE_J,
    wait_power_W=_WAIT_W,
    wake_s=_WAKE_S,
    spi_fram=CY15B104Q,
    # DMA block transfer: 2 MCLK per word plus one FRAM wait state per FRAM access
    # (NWAITS_1 at 16 MHz) and ~30 cycles of channel set-up (inferred).
    dma_read_cycles=Linear(3.0, 30.0),
    dma_write_cycles=Linear(3.0, 30.0),
    # iNAS micro-benchmark fit of msp_mac_q15 (includes the DSPLib call overhead).
    lea_mac_cycles=Linear(1.5, 616.0),
    # one software Q15 MAC of the emitted portable C (= cpu_sw.mac; the whole portable-C
    # path is costed by cpu_sw below, this field only serves the cpu_sw=None formula)
    cpu_mac_cycles=64.61,
    cpu_add_cycles=12.0,
    cpu_mul_cycles=44.0,
    cpu_div_cycles=160.0,
    cpu_max_cycles=14.0,
    cpu_abs_cycles=12.0,
    cpu_copy_cycles=12.0,
    commit_words=2,
    # the emitted portable-C runtime (backend="cpu"), fitted to mspdebug (see _SW_SOURCE)
    cpu_sw=SoftwareCosts(
        layer_start=2651.99, unit=796.63, tile_weighted=1139.29, tile_pool=933.16, tile_bit=33.36,
        fetch_bit=53.08, in_fetch=111.41, in_row=85.66, in_row_bit=13.96, in_pad_row=39.61, in_word=35.44,
        in_pad_word=10.98, w_filter=24.71, w_word=21.1, acc_init=31.0, output=294.65, io_channel=106.39,
        psum_event=139.62, psum_word=32.64, version_div=1064.42, acc_elem=75.08, acc_channel=28.66,
        kernel_row=54.42, mac=64.61, tile_row=87.85, pool_out=124.81, avg_div=901.82, max_tap=49.44,
        avg_tap=30.97),
    sources={
        "mclk_hz": "SLASE54D: 16 MHz max, FRAM 8 MHz -> 1 wait state (FRCTL0 NWAITS_1)",
        "sram_bytes": "SLASE54D: 8 KB SRAM 0x1C00-0x3BFF",
        "lea_ram_bytes": "SLASE54D/TI linker scripts: upper 4 KB shared with LEA, last 0x138 B LEA stack -> 3784 B",
        "active_power_W": "SLASE54D: 118 uA/MHz active at 3.0 V",
        "sleep_power_W": "SLASE54D: LPM3 (VLO) 0.5 uA",
        "boot_s": "SLASE54D: BOR/power-up 0.5 ms typ",
        **_DISPATCH_SOURCES,
        "dma_*": "2 MCLK per DMA word + 1 FRAM wait state, 30-cycle set-up (inferred)",
        "spi_fram": "CY15B104Q on eUSCI_A3 at 4 MHz, the published Stateful-CNN board (CY15B104Q.sources); used "
                    "for the tensors [device] weights / activations place in \"spi-fram\"",
        "lea_mac_cycles": "iNAS CostModel: msp_mac_q15 1.5*n + 616 cycles",
        "cpu_*": "iNAS CostModel: ADD 12, MUL 44, DIV 160, MAX 14 cycles",
        "cpu_abs_cycles": _ABS_SOURCE,
        "cpu_copy_cycles": _COPY_SOURCE,
        "cpu_mac_cycles": "= cpu_sw.mac (" + _SW_SOURCE + ")",
        "cpu_sw": _SW_SOURCE,
        **{f"cpu_sw.{f.name}": _SW_SOURCE for f in fields(SoftwareCosts) if f.name != "acc_init"},
        "cpu_sw.acc_init": "counted on the disassembly of the bias pass (15 instructions, classic MSP430 cycle "
                           "table); it always occurs as often as cpu_sw.output, which the fit absorbs the rest "
                           "into (" + _SW_SOURCE + ")",
    },
)

MSP430FR5994_EXTFRAM = Platform(
    name="msp430fr5994-extfram",
    mclk_hz=16e6,
    sram_bytes=8192,
    lea_ram_bytes=3784,
    fram_bytes=512 * 1024,
    v_nominal=_V_NOM,
    active_power_W=_P_ACTIVE_16MHZ,
    sleep_power_W=0.5e-6 * _V_NOM,
    boot_s=70e-3,
    boot_energy_J=77.88e-6,
    measure_s=_MEASURE_S,
    measure_energy_J=_MEASURE_J,
    wait_power_W=_WAIT_W,
    wake_s=_WAKE_S,
    dma_read_cycles=Linear(64.0, 424.0),
    dma_write_cycles=Linear(64.0008, 422.23),
    lea_mac_cycles=Linear(1.5, 616.0),
    cpu_mac_cycles=44.0 + 12.0,
    cpu_add_cycles=12.0,
    cpu_mul_cycles=44.0,
    cpu_div_cycles=160.0,
    cpu_max_cycles=14.0,
    cpu_abs_cycles=12.0,
    cpu_copy_cycles=12.0,
    commit_words=2,
    dma_read_energy=Linear(2.7e-8, 2.0e-7),
    dma_write_energy=Linear(2.6815e-8, 1.9336e-7),
    lea_mac_energy=Linear(5.273e-10, 2.044e-7),
    cpu_add_energy=3.936e-9,
    cpu_mul_energy=19.25e-9,
    cpu_div_energy=43.7e-9,
    cpu_max_energy=4.23e-9,
    sources={
        "dma_*": "iNAS CostModel: NVM->VM 64n+424 cyc, 2.7e-8n+2.0e-7 J; VM->NVM 64.0008n+422.23 cyc, 2.6815e-8n+1.9336e-7 J",
        "lea_mac_*": "iNAS CostModel: 1.5n+616 cyc, 5.273e-10n+2.044e-7 J",
        "cpu_*": "iNAS CostModel: ADD 12 cyc 3.936 nJ, MUL 44 cyc 19.25 nJ, DIV 160 cyc 43.7 nJ, MAX 14 cyc 4.23 nJ",
        "cpu_abs_cycles": _ABS_SOURCE + "; energy cycles x energy per cycle (no iNAS fit)",
        "cpu_copy_cycles": _COPY_SOURCE + "; energy cycles x energy per cycle (no iNAS fit)",
        "boot": "iNAS CostModel: reboot 70 ms, 77.88 uJ (= 1/2 * 330 uF * (2.99^2 - 2.91^2))",
        **_DISPATCH_SOURCES,
    },
)

PLATFORMS = {p.name: p for p in (MSP430FR5994, MSP430FR5994_EXTFRAM)}


def get_platform(name: "str | Platform", mclk_hz: float | None = None) -> Platform:
    """Return a preset (or ``name`` itself when it is a :class:`Platform`, e.g. one read by
    :func:`load_platform_file`), optionally at another MCLK. Raises KeyError for an unknown name."""
    p = name if isinstance(name, Platform) else PLATFORMS[name]
    if mclk_hz is not None and mclk_hz != p.mclk_hz:
        p = p.with_mclk(mclk_hz)
    return p

# -- platform files ------------------------------------------------------------------------------------------------
#: the version of the platform file format :func:`load_platform_file` reads (``format = 1``)
PLATFORM_FILE_FORMAT = 1
_FILE_KEYS = {"format", "base", "sources"}
#: Platform fields a platform file does not set: the board and where tensors live are the scenario's
#: (``[device] board``, ``weights``, ``activations``); the SPI FRAM is the base preset's
_NOT_IN_FILES = {"sources", "board", "spi_fram", "weights", "activations"}


class PlatformFileError(ValueError):
    """A platform TOML file that cannot be used; the message is one line naming the file and the key."""


def _file_value(where: str, key: str, kind: str, v):
    """``v`` checked against a Platform field's annotation ``kind`` ("float", "int", "str", "Linear", ...)."""
    def num(x, k):
        if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x) or x < 0:
            raise PlatformFileError(f"{where}: {k}: expected a finite number >= 0, got {x!r}")
        return float(x)

    base = kind.replace(" | None", "")
    if base == "Linear":
        if not isinstance(v, dict) or set(v) != {"slope", "offset"}:
            raise PlatformFileError(f"{where}: {key}: expected a table {{ slope = ..., offset = ... }}, got {v!r}")
        return Linear(num(v["slope"], f"{key}.slope"), num(v["offset"], f"{key}.offset"))
    if base == "SoftwareCosts":
        names = {f.name for f in fields(SoftwareCosts)}
        if not isinstance(v, dict):
            raise PlatformFileError(f"{where}: {key}: expected a table of {', '.join(sorted(names))}")
        bad = sorted(set(v) - names) or sorted(names - set(v))
        if bad:
            raise PlatformFileError(f"{where}: {key}.{bad[0]}: {'unknown' if bad[0] in v else 'missing'} key")
        return SoftwareCosts(**{k: num(x, f"{key}.{k}") for k, x in v.items()})
    if base == "str":
        if not isinstance(v, str) or not v:
            raise PlatformFileError(f"{where}: {key}: expected a non-empty string, got {v!r}")
        return v
    if base == "int":
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise PlatformFileError(f"{where}: {key}: expected an integer >= 1, got {v!r}")
        return v
    return num(v, key)


def load_platform_file(path: "str | Path") -> Platform:
    """A :class:`Platform` from a TOML file (``aidi calibrate`` writes them; a scenario names one with
    ``[device] platform = "my-board.toml"``).

    Keys (top level): ``format = 1``; ``base``, the preset every other constant comes from (a name of
    :data:`PLATFORMS`, default ``msp430fr5994``); any field of :class:`Platform` (units as documented
    there: Hz, W, s, J, cycles), a :class:`Linear` as ``{ slope = ..., offset = ... }``, ``cpu_sw`` as a table
    of every :class:`SoftwareCosts` field; and a ``[sources]`` table of strings (key -> where its value comes
    from), added to the base's.  Raises :class:`PlatformFileError` (one line: file and key) for a missing or
    unreadable file, invalid TOML, an unknown key or base, or a value of the wrong kind (negative, not finite).
    """
    from .textfile import decode

    path = Path(path)
    where = str(path)
    try:
        text, _ = decode(path.read_bytes(), path, PlatformFileError)
        raw = tomllib.loads(text)
    except FileNotFoundError:
        raise PlatformFileError(f"{where}: platform file not found") from None
    except OSError as exc:
        raise PlatformFileError(f"{where}: cannot read ({exc.strerror or exc.__class__.__name__})") from None
    except tomllib.TOMLDecodeError as exc:
        raise PlatformFileError(f"{where}: not valid TOML ({exc})") from None
    kinds = {f.name: str(f.type) for f in fields(Platform) if f.name not in _NOT_IN_FILES}
    for key in raw:
        if key not in kinds and key not in _FILE_KEYS:
            import difflib
            close = difflib.get_close_matches(key, [*kinds, *_FILE_KEYS], n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise PlatformFileError(f"{where}: {key}: unknown key{hint}")
    if raw.get("format", PLATFORM_FILE_FORMAT) != PLATFORM_FILE_FORMAT:
        raise PlatformFileError(f"{where}: format: this aidi reads format {PLATFORM_FILE_FORMAT}, got "
                                f"{raw['format']!r}")
    base = raw.get("base", "msp430fr5994")
    if base not in PLATFORMS:
        raise PlatformFileError(f"{where}: base: unknown platform {base!r} (known: {', '.join(PLATFORMS)})")
    sources = raw.get("sources", {})
    if not isinstance(sources, dict) or not all(isinstance(v, str) for v in sources.values()):
        raise PlatformFileError(f"{where}: sources: expected a table of strings")
    values = {k: _file_value(where, k, kinds[k], v) for k, v in raw.items() if k in kinds}
    if values.get("mclk_hz", 1.0) <= 0:
        raise PlatformFileError(f"{where}: mclk_hz: must be > 0")
    p = PLATFORMS[base]
    return replace(p, **{"name": path.stem, **values}, sources={**p.sources, **sources})


#: the execution backend every command uses (``aidi run``, ``check``, ``emit-c``, the NAS) unless the
#: scenario's ``[execution] backend`` says otherwise: the FR5994's Low-Energy Accelerator ("lea"),
#: with "cpu" (the portable-C kernels) and "auto" (the faster per layer) as alternatives
DEFAULT_BACKEND = "lea"
