"""iNAS's cost model and explorer for whole networks, reproduced, side by side with our oracle.

iNAS (Mendis et al., "Intermittent-aware neural architecture search", EMCLab-Sinica/
Intermittent-aware-NAS: ``iNAS/CostModel/{conv_tiled,pool_tiled,cnn,common,capacitor,
plat_energy_costs,microbench_measurements}.py``, ``iNAS/IEExplorer/explore_intpow.py``,
``iNAS/NASBase/plat_perf.py``) estimates a network on an MSP430FR5994 with external SPI
FRAM, powered by V_sup through R_ehm into a capacitor C.  Everything below is our own
code for the same formulas; the device constants come from the one platform table
(:data:`aidi.sim.platform.MSP430FR5994_EXTFRAM`, iNAS's micro-benchmark fits rounded
to four significant digits).

Network (``plat_perf.get_network``)
    conv layers (valid padding, stride 1), then a global average pool (``gap``) over
    the last map, then FC(n_classes) as a 1x1 conv over the pooled vector.

Layer (:class:`InasLayer`) and design (:class:`aidi.models.schedule.ExecutionDesign`)
    conv / fc: tiles of ``Tr x Tc`` output pixels, ``Tm`` output and ``Tn`` input
    channels, ``Tri = Tr + K - 1`` input rows; ``S`` tiles per power cycle.  gap:
    tiles of ``Tr x Tc`` *input* pixels by ``Tm`` channels, ``Tn = 1``, loop order
    reuse_O; ``S`` tiles per cycle.

One power cycle (``est_cost_*_powcycle_intpow``), as (cycles, J) terms:

==================  =====================================================================
reboot              70 ms, 77.88 uJ
input fetch         ``Tri*Tci`` DMA reads of ``Tn`` words (gap: ``Tm`` words), each with
                    the input addressing overhead; once per cycle for reuse_I, else S times
weight fetch        ``K*K*Tm`` DMA reads of ``Tn`` words + overhead; once for reuse_W, else S
partial-sum fetch   ``Tr*Tc`` DMA reads of ``Tm`` words + overhead (x S for reuse_I/W), only
                    in cycles after the first input-channel tile (gap: one read of ``Tm``
                    words, every cycle)
index fetch         one DMA read of 4 words (the progress indices)
compute             ``S*K*K*Tr*Tc*Tm`` LEA vector MACs of length ``Tn``, each with one add and
                    the partial-sum + accumulate addressing overhead (gap: ``S*Tr*Tc*Tm``
                    CPU max-compares + overhead, as iNAS costs its pools)
output backup       reuse_I: ``Tr*Tc`` writes of ``S*Tm`` words; reuse_W: ``S*Tr*Tc`` writes of
                    ``Tm``; reuse_O: ``Tr*Tc`` writes of ``Tm`` (gap: one write of ``Tm``),
                    each + overhead
index backup        one DMA write of 4 words
==================  =====================================================================

Hence two per-cycle energies: ``E_pc_max`` (with the partial-sum fetch) and
``E_pc_min`` (without; ``E_pc_max = E_pc_min`` when no cycle has n > 0).  With
``n_pc = tiles / S`` cycles of which ``n_pc0`` hold the first input-channel tile
(``R/Tr * C/Tc * M/Tm`` for reuse_O, that ``/ S`` for reuse_I and reuse_W):

* energy buffer  ``E_av = C (V_on^2 - V_off^2) / 2 * margin``; atomicity ``E_pc_max <= E_av``
* recharge after spending E: ``V_pce = sqrt(2 (E_av - E) / C + V_off^2)``,
  ``t_rc = -R_ehm C ln((V_on - V_sup) / (V_pce - V_sup))``
* ``L_layer = n_pc0 (L_pc_min + t_rc(E_pc_min)) + (n_pc - n_pc0) (L_pc_max + t_rc(E_pc_max))``
* SRAM ``2 (Tri Tci Tn + K K Tm Tn + Tr Tc Tm S) <= 2048 B`` (no S for reuse_O; gap:
  ``2 (Tr Tc Tm + Tm S)``)

The explorer (``explore_full_param_sweep_intpow``) sweeps, per layer, Tr / Tc / Tm over
1 and the divisors of the output rows / columns / channels, Tn over 1 and the *even*
divisors of the input channels (gap: 1 and the even divisors of rows, columns and
channels, Tn = 1, reuse_O only), the three loop orders, and S over 1 and the even
divisors of the loop the cycle batches (ceil(M/Tm) for reuse_I, ceil(R/Tr) ceil(C/Tc)
for reuse_W, ceil(N/Tn) for reuse_O, the pixel tiles for gap); it keeps the design
with the lowest ``L_layer``, ties broken by the smaller SRAM, then by sweep order.
The network latency is the sum over layers.

Two modes of one model
    ``energy_constants_as_latency=True`` is iNAS as published: six addressing-overhead
    *latencies* (partial-sum fetch for each loop order, output backup for each loop
    order) are built from the *energy* constants, so joules are added to seconds
    (``plat_energy_costs.py``, ``L_FD_O_RU*_OVHD``, ``L_BD_O_RU*_OVHD``).  The default
    (False) is our correction: those latencies are the same ADD/MUL counts times the
    ADD (12) / MUL (44) cycle counts.  Everything else is iNAS's, in both modes,
    including what we think questionable but keep because it is iNAS's model: the
    average pool costed as max-compares, latency counts that differ from the energy
    counts (weight fetch 8 ADD + 10 MUL vs 9 MUL; partial sum 7 ADD + 10 MUL vs 5 MUL),
    and a reboot in every power cycle whether or not the capacitor browns out.

Where iNAS's estimate differs from our simulator (reported by :func:`compare`):

1. iNAS takes the usable energy as E_av * margin (0.55) and assumes every cycle
   spends exactly E_pc starting at V_on; our model integrates the capacitor with
   the source still charging it while the MCU runs, so a cycle fits more work and
   recharges from wherever the voltage actually fell.
2. iNAS charges a reboot per power cycle *always* (a cycle = S tiles), while in our
   model units run back to back and the MCU reboots only when it browns out.
3. Our tiling loads a tile's input once per unit and reuses it as the loop order
   says within a unit (hyper-tile); our DMA is charged per contiguous FRAM block.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace

import numpy as np

from aidi.analysis.errors import UserError
from aidi.models.layers import MAX_INT
from aidi.models.schedule.design import ExecutionDesign, ceil_div
from aidi.sim.platform import MSP430FR5994_EXTFRAM, Cost, Platform

INAS_V_ON = 2.99
INAS_V_OFF = 2.8
INAS_V_SUP = 3.0
INAS_MARGIN = 0.55  # settings_files/eval_configs/config_inas_cifar_INT_generic.json, EAV_SAFE_MARGIN
INAS_SRAM_BYTES = 2048
INAS_WORD_BYTES = 2  # config_default.json DATA_SZ (Q15)
INAS_INDEX_WORDS = 4  # conv_tiled.est_cost_CONV_tileidx{fetch,backup}_intpow: 4 words each way
#: R_ehm calibrated per capacitor for CIFAR-10 (1, 5, 10 mF), CALIBRATION.md
INAS_R_EHM_CIFAR = {1e-3: 52.0, 5e-3: 24.0, 10e-3: 22.0}
#: iNAS's CIFAR-10 search space (config_inas_cifar_INT_generic.json)
INAS_KERNELS = (1, 3, 5, 7)
INAS_FILTERS = (4, 8, 16, 24)

#: addressing overheads as (ADD, MUL) counts: (energy counts, latency counts), from
#: iNAS/CostModel/plat_energy_costs.py (counted there from the compiled assembly).
#: fetch_I / fetch_W: per input / weight DMA transfer; fetch_O_<order>: per partial-sum
#: transfer; backup_O_<order>: per output transfer; psum + acum: per vector MAC; max: per
#: pool compare.
OVERHEAD_OPS = {
    "fetch_I": ((7, 5), (7, 5)),
    "fetch_W": ((8, 9), (8, 10)),
    "fetch_O_reuse_I": ((7, 5), (7, 5)),
    "fetch_O_reuse_W": ((7, 4), (7, 4)),
    "fetch_O_reuse_O": ((7, 4), (7, 4)),
    "backup_O_reuse_I": ((9, 8), (9, 8)),
    "backup_O_reuse_W": ((11, 9), (11, 9)),
    "backup_O_reuse_O": ((7, 5), (7, 5)),
    "psum": ((7, 5), (7, 10)),
    "acum": ((3, 3), (3, 3)),
    "max": ((2, 1), (2, 1)),
}
#: the overheads whose latency iNAS builds from energy constants (J taken as s)
LATENCY_FROM_ENERGY = frozenset(k for k in OVERHEAD_OPS if k.startswith(("fetch_O_", "backup_O_")))
KINDS = ("conv", "gap", "fc")
ORDER_CODE = {"reuse_I": "I", "reuse_W": "W", "reuse_O": "O"}


class InasError(UserError):
    """A network iNAS's model cannot describe, or a design outside its space (one-line message)."""


@dataclass(frozen=True)
class InasLayer:
    """One layer in iNAS's terms.

    conv / fc: ``N`` input channels, ``H x W`` *output* rows x columns, ``M`` output
    channels, ``K x K`` kernel, stride ``s`` (valid padding); fc is a 1x1 conv on a 1x1 map.
    gap: ``H x W`` is the *input* map it averages (iNAS tiles it), ``N = M`` channels,
    ``K = H``; the output is ``M x 1 x 1``.
    """

    N: int
    H: int
    W: int
    M: int
    K: int
    s: int = 1
    kind: str = "conv"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise InasError(f"iNAS layer kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "gap" and self.N != self.M:
            raise InasError(f"iNAS gap layer: N ({self.N}) must equal M ({self.M})")


def inas_network(spec, input_shape=(3, 32, 32), n_classes: int = 10) -> list[InasLayer]:
    """iNAS's CIFAR-10 network of ``spec`` = [K0, F0, K1, F1, ...] (``plat_perf.get_network``).

    Conv layers (valid padding, stride 1), a global average pool, FC(``n_classes``).
    Raises :class:`InasError` when the list is not (K, F) pairs or a map shrinks below 1.
    """
    spec = [int(v) for v in spec]
    if not spec or len(spec) % 2:
        raise InasError(f"--layers: expected K,F pairs (kernel, filters), got {len(spec)} numbers")
    c, h, w = (int(v) for v in input_shape)
    layers = []
    for i in range(0, len(spec), 2):
        k, f = spec[i], spec[i + 1]
        if not (1 <= k <= MAX_INT and 1 <= f <= MAX_INT):
            raise InasError(f"--layers: conv{i // 2}: kernel and filters must be integers in 1..{MAX_INT}, "
                            f"got K={k} F={f}")
        if k > h or k > w:
            raise InasError(f"--layers: conv{i // 2}: a {k}x{k} kernel does not fit its {h}x{w} input "
                            "(valid padding)")
        h, w = h - k + 1, w - k + 1
        layers.append(InasLayer(N=c, H=h, W=w, M=f, K=k))
        c = f
    layers.append(InasLayer(N=c, H=h, W=w, M=c, K=h, kind="gap"))
    layers.append(InasLayer(N=c, H=1, W=1, M=int(n_classes), K=1, kind="fc"))
    return layers


def network_from_geoms(geoms) -> list[InasLayer]:
    """iNAS's layers for our executed layers (:func:`aidi.models.layers.geometry`): conv (square kernel,
    stride s; a padded conv is costed on its output map with the same halo), the global average
    pool (``gap``) and fc.  Raises :class:`InasError` naming any other layer (iNAS's model has none)."""
    out = []
    for g in geoms:
        c, h, w = g.in_shape
        m, ho, wo = g.out_shape
        if g.op == "conv" and g.kh == g.kw:
            out.append(InasLayer(N=c, H=ho, W=wo, M=m, K=g.kh, s=g.stride))
        elif g.name == "gap" and (ho, wo) == (1, 1):
            out.append(InasLayer(N=c, H=h, W=w, M=c, K=h, kind="gap"))
        elif g.op == "fc":
            out.append(InasLayer(N=c * h * w, H=1, W=1, M=m, K=1, kind="fc"))
        else:
            raise InasError(f"layer {g.index} ({g.name}): iNAS's cost model has conv, gap and fc layers only")
    return out


def layer_names(layers) -> list[str]:
    """conv0, conv1, ..., gap, fc (as iNAS's CONV_i, GAVGPOOL_0, FC_END)."""
    names, nconv = [], 0
    for ly in layers:
        if ly.kind == "conv":
            names.append(f"conv{nconv}")
            nconv += 1
        else:
            names.append(ly.kind)
    return names


def design_string(d: ExecutionDesign) -> str:
    """iNAS's ``Tr_Tc_Tm_Tn_order_S`` (e.g. ``2_6_4_1_reuse_O_S1``)."""
    return f"{d.Tr}_{d.Tc}_{d.Tm}_{d.Tn}_{d.loop_order}_S{d.S}"


def parse_design(text: str) -> ExecutionDesign:
    """The inverse of :func:`design_string`; also accepts ``2_6_4_1_O_S1``."""
    parts = text.strip().split("_")
    try:
        if len(parts) == 7:
            tr, tc, tm, tn, a, b, s = parts
            order = f"{a}_{b}"
        elif len(parts) == 6:
            tr, tc, tm, tn, o, s = parts
            order = {v: k for k, v in ORDER_CODE.items()}[o]
        else:
            raise KeyError
        if not s.startswith("S"):
            raise KeyError
        return ExecutionDesign(int(tr), int(tc), int(tm), int(tn), order, int(s[1:]))
    except (KeyError, ValueError):
        raise InasError(f"design {text!r}: expected Tr_Tc_Tm_Tn_reuse_X_S<n> (X = I, W or O)") from None


# --------------------------------------------------------------------------- the model
def _overhead(name: str, p: Platform, energy_constants_as_latency: bool) -> Cost:
    """(cycles, J) of one addressing overhead (:data:`OVERHEAD_OPS`)."""
    (ea, em), (la, lm) = OVERHEAD_OPS[name]
    energy = p.cpu_add(ea).energy_J + p.cpu_mul(em).energy_J
    if energy_constants_as_latency and name in LATENCY_FROM_ENERGY:
        return Cost(energy * p.mclk_hz, energy)  # iNAS: joules used as seconds
    return Cost(p.cpu_add(la).cycles + p.cpu_mul(lm).cycles, energy)


def _dma(fit_cycles, fit_energy, words):
    return Cost(fit_cycles(words), fit_energy(words))


def _cycle_terms(layer: InasLayer, tr, tc, tm, tn, order, S, p: Platform, energy_constants_as_latency: bool):
    """Per-cycle (cycles, J) terms and the partial-sum term of S tiles; arrays broadcast.

    Returns ``(terms, psum)``: ``terms`` are spent in every power cycle, ``psum`` only in
    cycles after the first input-channel tile (``E_pc_max = sum(terms) + psum``).
    ``order`` is a scalar loop order.
    """
    def ovh(name):
        return _overhead(name, p, energy_constants_as_latency)

    def rd(words):
        return _dma(p.dma_read_cycles, p.dma_read_energy, words)

    def wr(words):
        return _dma(p.dma_write_cycles, p.dma_write_energy, words)

    k = layer.K
    if layer.kind == "gap":
        # pool_tiled: S tiles of Tr*Tc reads of Tm words, one partial read, one write per cycle
        terms = {
            "fetch": (rd(tm) + ovh("fetch_I")) * (S * tr * tc) + (rd(tm) + ovh("fetch_O_reuse_O")),
            "compute": (p.cpu_max(1) + ovh("max")) * (S * tr * tc * tm),
            "backup": wr(tm) + ovh("backup_O_reuse_O"),
        }
        psum = Cost(0.0, 0.0)
    else:
        tri = layer.s * tr + k - layer.s
        tci = layer.s * tc + k - layer.s
        n_in, n_w, n_out = tri * tci, k * k * tm, tr * tc
        fetch_in = (rd(tn) + ovh("fetch_I")) * (n_in * (1 if order == "reuse_I" else S))
        fetch_w = (rd(tn) + ovh("fetch_W")) * (n_w * (1 if order == "reuse_W" else S))
        psum = (rd(tm) + ovh(f"fetch_O_{order}")) * (n_out * (1 if order == "reuse_O" else S))
        if order == "reuse_I":
            backup = (wr(S * tm) + ovh("backup_O_reuse_I")) * n_out
        elif order == "reuse_W":
            backup = (wr(tm) + ovh("backup_O_reuse_W")) * (S * n_out)
        else:
            backup = (wr(tm) + ovh("backup_O_reuse_O")) * n_out
        mac = Cost(p.lea_mac_cycles(tn), p.lea_mac_energy(tn)) + p.cpu_add(1) + ovh("psum") + ovh("acum")
        terms = {"fetch": fetch_in + fetch_w, "compute": mac * (S * k * k * n_out * tm), "backup": backup}
    terms["reboot"] = p.reboot()
    terms["index_fetch"] = rd(INAS_INDEX_WORDS)
    terms["index_backup"] = wr(INAS_INDEX_WORDS)
    return terms, psum


def _cycle_counts(layer: InasLayer, tr, tc, tm, tn, order, S):
    """(n_pc, n_pc0): power cycles and those holding a first input-channel tile (``common._num_pow_cycles``)."""
    if layer.kind == "gap":
        npc = ceil_div(layer.H, tr) * ceil_div(layer.W, tc) * ceil_div(layer.M, tm) / S
        return npc, npc
    rcm = ceil_div(layer.H, tr) * ceil_div(layer.W, tc) * ceil_div(layer.M, tm)
    npc = rcm * ceil_div(layer.N, tn) / S
    n0 = rcm if order == "reuse_O" else rcm / S
    return npc, n0


def _sram_words(layer: InasLayer, tr, tc, tm, tn, order, S):
    if layer.kind == "gap":
        return tr * tc * tm + tm * S
    tri = layer.s * tr + layer.K - layer.s
    tci = layer.s * tc + layer.K - layer.s
    return tri * tci * tn + layer.K * layer.K * tm * tn + tr * tc * tm * (1 if order == "reuse_O" else S)


def sram_bytes(layer: InasLayer, d: ExecutionDesign) -> int:
    """iNAS's SRAM need of a design (``common._vm_buff_size`` x 2 bytes)."""
    return INAS_WORD_BYTES * int(_sram_words(layer, d.Tr, d.Tc, d.Tm, d.Tn, d.loop_order, d.S))


def e_available(capacitor_F: float, v_on: float = INAS_V_ON, v_off: float = INAS_V_OFF,
                margin: float = INAS_MARGIN) -> float:
    """iNAS's usable energy per power cycle E_av (J) (``cnn.pass_constraint_atomicity``)."""
    return 0.5 * capacitor_F * (v_on**2 - v_off**2) * margin


def recharge_s(e_pc, capacitor_F: float, r_ohm: float, v_on: float = INAS_V_ON, v_off: float = INAS_V_OFF,
               v_sup: float = INAS_V_SUP, margin: float = INAS_MARGIN):
    """Recharge time (s) after a cycle that spent ``e_pc`` J (``capacitor.cal_cap_recharge_time_custom``).

    NaN where ``e_pc`` exceeds E_av (the cycle cannot run).
    """
    e_av = e_available(capacitor_F, v_on, v_off, margin)
    with np.errstate(invalid="ignore"):
        v_pce = np.sqrt(2.0 * (e_av - np.asarray(e_pc, dtype=float)) / capacitor_F + v_off**2)
        return -r_ohm * capacitor_F * np.log((v_on - v_sup) / (v_pce - v_sup))


@dataclass(frozen=True)
class Supply:
    """iNAS's supply and buffer: capacitor (F), R_ehm (ohm), V_on / V_off / V_sup (V), margin, SRAM (B)."""

    capacitor_F: float
    r_ohm: float
    v_on: float = INAS_V_ON
    v_off: float = INAS_V_OFF
    v_sup: float = INAS_V_SUP
    margin: float = INAS_MARGIN
    sram_bytes: int = INAS_SRAM_BYTES

    def __post_init__(self):
        if not (self.capacitor_F > 0 and self.r_ohm > 0 and math.isfinite(self.capacitor_F)
                and math.isfinite(self.r_ohm)):
            raise InasError(f"supply: capacitor_F and r_ohm must be positive, got {self.capacitor_F}, {self.r_ohm}")
        if not self.v_off < self.v_on < self.v_sup:
            raise InasError(f"supply: need V_off < V_on < V_sup, got {self.v_off}, {self.v_on}, {self.v_sup}")

    @property
    def e_av_J(self) -> float:
        return e_available(self.capacitor_F, self.v_on, self.v_off, self.margin)

    def recharge_s(self, e_pc):
        return recharge_s(e_pc, self.capacitor_F, self.r_ohm, self.v_on, self.v_off, self.v_sup, self.margin)


def _evaluate(layer: InasLayer, tr, tc, tm, tn, order, S, supply: Supply, p: Platform,
              energy_constants_as_latency: bool) -> dict:
    """Vectorised estimate of candidates of one loop order (arrays broadcast)."""
    terms, psum = _cycle_terms(layer, tr, tc, tm, tn, order, S, p, energy_constants_as_latency)
    base = sum(terms.values(), Cost(0.0, 0.0))
    npc, n0 = _cycle_counts(layer, tr, tc, tm, tn, order, S)
    ngt0 = npc - n0
    has_max = np.asarray(ngt0) > 0
    e_min, c_min = base.energy_J, base.cycles
    e_max = np.where(has_max, e_min + psum.energy_J, e_min)
    c_max = np.where(has_max, c_min + psum.cycles, c_min)
    l_min, l_max = c_min / p.mclk_hz, c_max / p.mclk_hz
    t_min, t_max = supply.recharge_s(e_min), supply.recharge_s(e_max)
    words = _sram_words(layer, tr, tc, tm, tn, order, S)
    ok = (e_max <= supply.e_av_J) & (words * INAS_WORD_BYTES <= supply.sram_bytes)
    with np.errstate(invalid="ignore"):
        lat = np.where(ok, n0 * (l_min + t_min) + ngt0 * (l_max + t_max), np.inf)
    return {"latency_s": lat, "feasible": ok, "E_pc_max_J": e_max, "E_pc_min_J": e_min, "L_pc_max_s": l_max,
            "L_pc_min_s": l_min, "t_rc_max_s": t_max, "t_rc_min_s": t_min, "power_cycles": npc,
            "power_cycles_first_n": n0, "energy_J": n0 * e_min + ngt0 * e_max, "sram_bytes": words * INAS_WORD_BYTES,
            "terms_J": {k: v.energy_J for k, v in terms.items()} | {"psum_fetch": psum.energy_J},
            "terms_s": {k: v.cycles / p.mclk_hz for k, v in terms.items()} | {"psum_fetch": psum.cycles / p.mclk_hz}}


def layer_estimate(layer: InasLayer, d: ExecutionDesign, capacitor_F: float, r_ohm: float, v_on: float = INAS_V_ON,
                   v_off: float = INAS_V_OFF, v_sup: float = INAS_V_SUP, margin: float = INAS_MARGIN,
                   p: Platform = MSP430FR5994_EXTFRAM, energy_constants_as_latency: bool = False,
                   sram_limit: int = INAS_SRAM_BYTES) -> dict:
    """iNAS's estimate of one layer under one design (``explore_intpow.get_le2e_fixed_params_intpow``).

    Returns a dict: ``latency_s`` (inf when infeasible), ``feasible``, ``E_av_J``,
    ``E_pc_max_J`` / ``E_pc_min_J`` (J per cycle with / without the partial-sum fetch),
    ``L_pc_max_s`` / ``L_pc_min_s``, ``t_rc_max_s`` / ``t_rc_min_s`` (recharge, s; NaN
    when E_pc > E_av), ``power_cycles`` (n_pc), ``power_cycles_first_n`` (n_pc0),
    ``energy_J`` (whole layer), ``sram_bytes``, ``tiles`` and the per-cycle terms
    ``terms_J`` / ``terms_s``.  Raises :class:`InasError` for a gap design other than
    ``Tn = 1``, reuse_O.
    """
    supply = Supply(capacitor_F, r_ohm, v_on, v_off, v_sup, margin, sram_limit)
    return _layer_estimate(layer, d, supply, p, energy_constants_as_latency)


def _layer_estimate(layer, d, supply, p, energy_constants_as_latency):
    if layer.kind == "gap" and (d.Tn != 1 or d.loop_order != "reuse_O"):
        raise InasError(f"gap layer: iNAS's design has Tn = 1 and reuse_O, got {design_string(d)}")
    r = _evaluate(layer, d.Tr, d.Tc, d.Tm, d.Tn, d.loop_order, d.S, supply, p, energy_constants_as_latency)
    out = {k: ({kk: float(vv) for kk, vv in v.items()} if isinstance(v, dict) else float(v)) for k, v in r.items()}
    out.update(feasible=bool(r["feasible"]), sram_bytes=int(r["sram_bytes"]), E_av_J=supply.e_av_J,
               tiles=int(round(out["power_cycles"] * d.S)))
    return out


def power_cycle(layer: InasLayer, d: ExecutionDesign, p: Platform = MSP430FR5994_EXTFRAM,
                energy_constants_as_latency: bool = False) -> dict:
    """One power cycle's terms (J and s) for ``d``: reboot, fetch, psum_fetch, index_fetch, compute,
    backup, index_backup, and the totals ``E_pc_max_J`` / ``E_pc_min_J`` / ``L_pc_max_s`` / ``L_pc_min_s``
    (max includes the partial-sum fetch)."""
    terms, psum = _cycle_terms(layer, d.Tr, d.Tc, d.Tm, d.Tn, d.loop_order, d.S, p, energy_constants_as_latency)
    e = {k: float(v.energy_J) for k, v in terms.items()} | {"psum_fetch": float(psum.energy_J)}
    lat = {k: float(v.cycles) / p.mclk_hz for k, v in terms.items()} | {"psum_fetch": float(psum.cycles) / p.mclk_hz}
    e_min = sum(v for k, v in e.items() if k != "psum_fetch")
    l_min = sum(v for k, v in lat.items() if k != "psum_fetch")
    return {"energy_J": e, "latency_s": lat, "E_pc_min_J": e_min, "E_pc_max_J": e_min + e["psum_fetch"],
            "L_pc_min_s": l_min, "L_pc_max_s": l_min + lat["psum_fetch"]}


# --------------------------------------------------------------------------- the explorer
def _divisors(n: int, even_only: bool) -> list[int]:
    """1 and the divisors of n from 2 (only the even ones when ``even_only``) (``common.filter_legal_*``)."""
    return [1] + [v for v in range(2, n + 1, 2 if even_only else 1) if n % v == 0]


def design_space(layer: InasLayer):
    """iNAS's candidate designs of a layer, in its sweep order: yields ``(Tr, Tc, Tm, Tn, order, S)``."""
    if layer.kind == "gap":
        trs, tcs, tms, tns = (_divisors(layer.H, True), _divisors(layer.W, True), _divisors(layer.M, True), [1])
        orders = ("reuse_O",)
    else:
        trs, tcs, tms, tns = (_divisors(layer.H, False), _divisors(layer.W, False), _divisors(layer.M, False),
                              _divisors(layer.N, True))
        orders = ("reuse_I", "reuse_W", "reuse_O")
    for tr in trs:
        for tc in tcs:
            for tm in tms:
                for tn in tns:
                    for order in orders:
                        if layer.kind == "gap":
                            iters = ceil_div(layer.H, tr) * ceil_div(layer.W, tc)
                        elif order == "reuse_I":
                            iters = ceil_div(layer.M, tm)
                        elif order == "reuse_W":
                            iters = ceil_div(layer.H, tr) * ceil_div(layer.W, tc)
                        else:
                            iters = ceil_div(layer.N, tn)
                        for S in _divisors(iters, True):
                            yield tr, tc, tm, tn, order, S


def explore_layer(layer: InasLayer, supply: Supply, p: Platform = MSP430FR5994_EXTFRAM,
                  energy_constants_as_latency: bool = False) -> dict | None:
    """iNAS's explorer on one layer: the feasible design of lowest latency (ties: smaller SRAM,
    then sweep order), as :func:`layer_estimate`'s dict plus ``design`` and ``candidates``;
    None when no design is feasible."""
    cand = list(design_space(layer))
    best = None
    for order in ("reuse_I", "reuse_W", "reuse_O"):
        idx = [i for i, c in enumerate(cand) if c[4] == order]
        if not idx:
            continue
        a = np.array([cand[i][:4] + (cand[i][5],) for i in idx], dtype=np.int64)
        tr, tc, tm, tn, S = a.T
        r = _evaluate(layer, tr, tc, tm, tn, order, S, supply, p, energy_constants_as_latency)
        lat, sram = np.broadcast_to(r["latency_s"], tr.shape), np.broadcast_to(r["sram_bytes"], tr.shape)
        j = int(np.lexsort((np.array(idx), sram, lat))[0])
        if math.isfinite(lat[j]):
            key = (float(lat[j]), int(sram[j]), idx[j])
            if best is None or key < best[0]:
                best = (key, idx[j])
    if best is None:
        return None
    tr, tc, tm, tn, order, S = cand[best[1]]
    d = ExecutionDesign(int(tr), int(tc), int(tm), int(tn), order, int(S))
    out = _layer_estimate(layer, d, supply, p, energy_constants_as_latency)
    out["design"] = d
    out["candidates"] = len(cand)
    return out


def network_estimate(layers, designs, supply: Supply, p: Platform = MSP430FR5994_EXTFRAM,
                     energy_constants_as_latency: bool = False) -> dict:
    """iNAS's whole-network estimate under fixed designs (one per layer).

    Returns ``{"latency_s", "energy_J", "power_cycles", "feasible", "layers": [per layer dict]}``.
    """
    if len(designs) != len(layers):
        raise InasError(f"{len(designs)} designs for {len(layers)} layers")
    per = []
    for name, ly, d in zip(layer_names(layers), layers, designs):
        est = _layer_estimate(ly, d, supply, p, energy_constants_as_latency)
        per.append({"name": name, "kind": ly.kind, "design": d, **est})
    return _totals(per)


def _totals(per: list[dict]) -> dict:
    feasible = all(r["feasible"] for r in per)
    return {"latency_s": sum(r["latency_s"] for r in per) if feasible else math.inf,
            "energy_J": sum(r["energy_J"] for r in per), "power_cycles": sum(r["power_cycles"] for r in per),
            "feasible": feasible, "layers": per}


def explore_network(layers, supply: Supply, p: Platform = MSP430FR5994_EXTFRAM,
                    energy_constants_as_latency: bool = False) -> dict:
    """iNAS's explorer over a network (``handler.find_best_solution``): each layer's best design.

    Returns :func:`network_estimate`'s dict plus ``explore_wall_s`` (wall-clock seconds of
    the sweep) and ``candidates``; a layer with no feasible design has ``design`` None,
    ``feasible`` False and ``latency_s`` inf, and so has the network.
    """
    t0 = time.perf_counter()
    per = []
    for name, ly in zip(layer_names(layers), layers):
        best = explore_layer(ly, supply, p, energy_constants_as_latency)
        if best is None:
            per.append({"name": name, "kind": ly.kind, "design": None, "feasible": False, "latency_s": math.inf,
                        "energy_J": 0.0, "power_cycles": 0.0, "candidates": len(list(design_space(ly)))})
        else:
            per.append({"name": name, "kind": ly.kind, **best})
    out = _totals(per)
    out["explore_wall_s"] = time.perf_counter() - t0
    out["candidates"] = sum(r["candidates"] for r in per)
    return out


def _count(v: float) -> int | float:
    """A power-cycle count as an integer when it is one (iNAS's n_pc = tiles / S is a float)."""
    return int(v) if float(v).is_integer() else float(v)


def summary(result: dict) -> dict:
    """The JSON-able view of :func:`explore_network` / :func:`network_estimate` (designs as strings)."""
    def layer(r):
        d = r["design"]
        row = {"name": r["name"], "kind": r["kind"], "design": None if d is None else design_string(d),
               "latency_s": r["latency_s"] if math.isfinite(r["latency_s"]) else None,
               "power_cycles": _count(r["power_cycles"]), "energy_J": r["energy_J"], "feasible": r["feasible"]}
        for k in ("E_pc_max_J", "E_pc_min_J", "L_pc_max_s", "L_pc_min_s", "t_rc_max_s", "t_rc_min_s",
                  "power_cycles_first_n", "sram_bytes"):
            if k in r:
                row[k] = _count(r[k]) if k == "power_cycles_first_n" else r[k]
        return row

    out = {"latency_s": result["latency_s"] if math.isfinite(result["latency_s"]) else None,
           "energy_J": result["energy_J"], "power_cycles": _count(result["power_cycles"]),
           "feasible": result["feasible"],
           "layers": [layer(r) for r in result["layers"]]}
    for k in ("explore_wall_s", "candidates"):
        if k in result:
            out[k] = result[k]
    return out


# --------------------------------------------------------------------------- next to our oracle
#: our SRAM budget next to iNAS (as ``aidi bench``'s iNAS networks): iNAS's 2048 B does not hold
#: our GAP's input map (a 30x30x4 map needs 1800 B of input plus stack)
OURS_SRAM_BYTES = 4096


def ours(spec, supply: Supply, input_shape=(3, 32, 32), n_classes: int = 10,
         p: Platform = MSP430FR5994_EXTFRAM, sram_bytes: int = OURS_SRAM_BYTES) -> dict:
    """Our optimizer's designs and our oracle's run for iNAS's network ``spec`` under the same supply.

    The same layers (convs with ReLU, GAP, FC) and platform profile, ``sram_bytes`` of
    SRAM, a Thevenin source V_sup through R_ehm into the capacitor, starting at V_on;
    designs by :func:`aidi.models.design_search.design_network` for a unit energy
    budget of our model's E_cycle.  Our GAP design tiles the *output* channels (iNAS's
    tiles the input map).  Returns ``latency_s``, ``power_cycles``, ``energy_J``
    (consumed), ``completed``, ``wall_s`` and ``layers`` (name, design string); when
    no design fits, ``completed`` False and ``error`` (one line) instead.
    """
    from aidi.models.design_search import design_network
    from aidi.models.hardware import unit_energy_budget
    from aidi.sim import harvesters, oracle
    from aidi.sim.config import PowerConfig, SimConfig
    from aidi.sim.workload import Workload

    t0 = time.perf_counter()
    inas_network(spec, input_shape, n_classes)  # the same checks and messages
    layers = [{"type": "conv", "k": int(spec[i]), "filters": int(spec[i + 1]), "relu": True}
              for i in range(0, len(spec), 2)] + [{"type": "gap"}, {"type": "fc", "units": int(n_classes)}]
    power = PowerConfig(capacitor_F=supply.capacitor_F, v_on=supply.v_on, v_off=supply.v_off, v_max=supply.v_sup,
                        v_initial=supply.v_on)
    try:
        plan = design_network(layers, p, sram_bytes, e_cycle_J=unit_energy_budget(power, p),
                              input_shape=list(input_shape))
    except ValueError as exc:  # no design fits (named layer and reason)
        return {"completed": False, "error": str(exc).splitlines()[0], "wall_s": time.perf_counter() - t0}
    work = Workload.from_graph(plan.task_graph(), p)
    r = oracle.simulate(work, power, harvesters.thevenin(supply.v_sup, supply.r_ohm), SimConfig(until_s=1e7))
    return {"latency_s": r["latency_s"], "power_cycles": r["power_cycles"], "energy_J": r["energy_J"]["consumed"],
            "completed": r["completed"], "wall_s": time.perf_counter() - t0,
            "layers": [{"name": n, "design": design_string(d)}
                       for n, d in zip(layer_names(inas_network(spec, input_shape, n_classes)), plan.designs)]}


def compare(layer: InasLayer, d: ExecutionDesign, capacitor_F: float, r_ohm: float | None = None) -> dict:
    """iNAS's estimate next to our oracle on the same conv layer, design and supply."""
    from aidi.models import schedule
    from aidi.models.layers import geometry, parse_network
    from aidi.sim import harvesters, oracle
    from aidi.sim.config import PowerConfig, SimConfig
    from aidi.sim.workload import Workload

    if layer.kind != "conv":
        raise InasError(f"compare: conv layers only, got {layer.kind}")
    r = r_ohm if r_ohm is not None else INAS_R_EHM_CIFAR.get(capacitor_F, 52.0)
    est = layer_estimate(layer, d, capacitor_F, r)
    in_h = (layer.H - 1) * layer.s + layer.K
    in_w = (layer.W - 1) * layer.s + layer.K
    net = parse_network([{"type": "conv", "k": layer.K, "filters": layer.M, "stride": layer.s}],
                        [layer.N, in_h, in_w])
    geom = geometry(net)[0]
    p = MSP430FR5994_EXTFRAM
    plan = schedule.plan_network([geom], [d], p, sram_budget=4096)
    work = Workload.from_graph(plan.task_graph(), p)
    power = PowerConfig(capacitor_F=capacitor_F, v_on=INAS_V_ON, v_off=INAS_V_OFF, v_max=INAS_V_SUP,
                        v_initial=INAS_V_ON)
    ours = oracle.simulate(work, power, harvesters.thevenin(INAS_V_SUP, r), SimConfig(until_s=1e6))
    return {
        "inas": est,
        "ours": {"latency_s": ours["latency_s"], "power_cycles": ours["power_cycles"],
                 "units": ours["units"], "energy_J": ours["energy_J"]["consumed"],
                 "max_unit_energy_J": float(np.max(work.energy_J.sum(axis=1)))},
        "latency_ratio_ours_to_inas": (ours["latency_s"] / est["latency_s"]
                                       if ours["latency_s"] and math.isfinite(est["latency_s"]) else None),
    }
