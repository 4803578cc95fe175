"""Functional intermittent execution over simulated FRAM and SRAM.

:class:`FunctionalRun` executes a tiled network (:class:`aidi.models.schedule.NetPlan`)
unit by unit with the numba Q15 kernels, on two byte arrays:

* ``fram`` (non-volatile): progress record, input, weights and biases,
  the activation tensors (placed by lifetime; a concat's producers write
  channel slices of one tensor), double-buffered int32 partial sums (layout
  ``plan.fram``);
* ``sram`` (volatile, ``plan.sram_budget`` bytes): each layer's tile buffers at
  the offsets the tiler reported (``LayerPlan.sram``).  Kernels really read
  their operands from these buffers, so after a brown-out (SRAM filled with
  junk) anything a unit did not reload is garbage and shows up in the output.

The simulator's executor drives it::

    run = FunctionalRun(plan, qmodel, x_q)       # or FunctionalRun.from_graph(graph, qmodel, x_q)
    while run.progress() < run.n_units:
        i = run.progress()
        if brown_out_during_unit:
            run.interrupt_unit(i, fraction, rng)  # part of unit i ran; no commit; SRAM junk
            run.reboot(rng)                       # power-up: SRAM junk again
        else:
            run.run_unit(i)                       # all tiles, FRAM writes, commit i + 1
    run.output(); run.output_matches_reference()

Failure model of :meth:`FunctionalRun.interrupt_unit`: the failure strikes
after ``fraction`` of the unit's cycles (the tiler's per-tile cycle counts:
loads and compute, then the tile's write-back DMA, then the unit's commit
last).  Tiles that finished before it have their FRAM writes landed; if it
strikes during a tile's write-back, the first elements (C order of the
written box, proportional to the elapsed share of that DMA) have landed; the
commit never lands.  Then SRAM is filled with junk from ``rng``.
"""

from __future__ import annotations

import numpy as np

from ..sim.taskgraph import TaskGraph
from . import kernels as K
from .ops import ADD, DWCONV, FC, MAXPOOL
from .q15 import QModel, reference_forward
from .schedule.design import F_INIT_BIAS, F_INIT_PSUM, F_LOAD_B, F_LOAD_IN, F_LOAD_W, F_WRITE_OUT, F_WRITE_PSUM
from .schedule.memory import align
from .schedule.plan import LayerPlan, NetPlan


class FunctionalRun:
    """One inference of a tiled Q15 network on simulated FRAM/SRAM.

    Args:
        plan: the tiled network (from :func:`aidi.models.schedule.plan_network`).
        qmodel: the quantized model whose executed layers match ``plan.geoms``.
        x_q: int16 input ``(C, H, W)`` with ``qmodel.s_input`` fractional bits.

    Attributes:
        fram, sram: uint8 arrays (non-volatile / volatile memory).
        sram_hwm: per layer, the highest SRAM byte offset (exclusive) any tile
            buffer access reached (instrumentation for footprint tests).
    """

    def __init__(self, plan: NetPlan, qmodel: QModel, x_q: np.ndarray):
        if [ql.geom for ql in qmodel.layers] != list(plan.geoms):
            raise ValueError("functional run: the Q15 model's layers do not match the tiled network")
        self.plan = plan
        self.qmodel = qmodel
        self.fram = np.zeros(plan.fram.total, np.uint8)
        self.sram = np.zeros(plan.sram_budget, np.uint8)
        self.sram_hwm = np.zeros(len(plan.layers), np.int64)
        self._ref: np.ndarray | None = None
        for ql in qmodel.layers:
            if ql.w is not None:
                self._fram(f"w{ql.geom.index}", np.int16)[:] = ql.w.ravel()
                self._fram(f"b{ql.geom.index}", np.int32)[:] = ql.b.ravel()
        self.reset(x_q)

    @classmethod
    def from_graph(cls, graph: TaskGraph, qmodel: QModel, x_q: np.ndarray) -> "FunctionalRun":
        """Build from a task graph made by ``NetPlan.task_graph()``."""
        if not graph.units or not hasattr(graph.units[0].payload, "plan"):
            raise ValueError("functional run: the task graph carries no tiling plan (build it with NetPlan.task_graph())")
        return cls(graph.units[0].payload.plan, qmodel, x_q)

    # -- memory helpers ---------------------------------------------------------
    def _fram(self, region: str, dtype) -> np.ndarray:
        off, n = self.plan.fram.regions[region]
        return self.fram[off:off + n].view(dtype)

    def _sbuf(self, lp: LayerPlan, name: str, n_elems: int, dtype, extra: int = 0) -> np.ndarray:
        """A flat view of ``n_elems`` of a layer's SRAM buffer (at byte ``extra`` inside it)."""
        off, size = lp.sram[name]
        nbytes = int(n_elems) * np.dtype(dtype).itemsize
        if extra + nbytes > size:
            raise RuntimeError(f"{lp.geom.describe()}: SRAM access {extra}+{nbytes} B outside buffer {name} ({size} B)")
        start = off + extra
        li = lp.geom.index
        if start + nbytes > self.sram_hwm[li]:
            self.sram_hwm[li] = start + nbytes
        return self.sram[start:start + nbytes].view(dtype)

    # -- public state -----------------------------------------------------------
    @property
    def n_units(self) -> int:
        return len(self.plan.units)

    def progress(self) -> int:
        """Committed progress read from FRAM: the index of the next unit to run."""
        return int(self._fram("progress", np.uint32)[0])

    def done(self) -> bool:
        return self.progress() >= self.n_units

    def reset(self, x_q: np.ndarray | None = None) -> None:
        """Start a new inference: optionally write a new input, set progress to 0."""
        if x_q is not None:
            x_q = np.asarray(x_q)
            if x_q.shape != tuple(self.qmodel.input_shape) or x_q.dtype != np.int16:
                raise ValueError(f"functional run: input must be int16 {list(self.qmodel.input_shape)}, "
                                 f"got {x_q.dtype} {list(x_q.shape)}")
            self._fram("input", np.int16)[:] = x_q.ravel()
            self.x_q = x_q.copy()
            self._ref = None
        self._fram("progress", np.uint32)[0] = 0

    def output(self) -> np.ndarray:
        """int16 output of the last layer as held in FRAM, shape ``(C, H, W)``."""
        return self.layer_output(len(self.plan.layers) - 1)

    def layer_output(self, layer: int) -> np.ndarray:
        """int16 contents of a layer's FRAM output view (valid until a later layer reuses its tensor's bytes)."""
        lp = self.plan.layers[layer]
        n = int(np.prod(lp.geom.out_shape))
        o = lp.out_offset
        return self._fram(lp.fram_out, np.int16)[o:o + n].reshape(lp.geom.out_shape).copy()

    def reference(self) -> np.ndarray:
        """The continuous-power reference output (:func:`aidi.models.q15.reference_forward`)."""
        if self._ref is None:
            self._ref = reference_forward(self.qmodel, self.x_q)[-1]
        return self._ref

    def output_matches_reference(self) -> bool:
        return bool(self.done() and np.array_equal(self.output(), self.reference()))

    # -- execution ----------------------------------------------------------------
    def _locate(self, i: int) -> tuple[LayerPlan, int]:
        if not 0 <= i < self.n_units:
            raise ValueError(f"functional run: unit {i} out of range [0, {self.n_units})")
        p = self.progress()
        if i != p:
            raise ValueError(f"functional run: unit {i} requested but committed progress is {p}")
        layer, k = self.plan.units[i]
        return self.plan.layers[layer], k

    def run_unit(self, i: int) -> None:
        """Execute unit ``i`` (its tiles, their FRAM writes) and commit progress ``i + 1``."""
        lp, k = self._locate(i)
        for t in lp.unit_tiles(k):
            self._tile(lp, t)
        self._fram("progress", np.uint32)[0] = i + 1

    def interrupt_unit(self, i: int, fraction: float, rng: np.random.Generator) -> None:
        """A brown-out after ``fraction`` (in [0, 1)) of unit ``i``'s cycles: partial writes, no commit, SRAM junk."""
        if not 0.0 <= fraction < 1.0:
            raise ValueError(f"functional run: interrupt fraction must be in [0, 1), got {fraction!r}")
        lp, k = self._locate(i)
        elapsed = fraction * lp.unit_cycles(k)
        tl = lp.tiles
        for t in lp.unit_tiles(k):
            if tl["t_end"][t] <= elapsed:
                self._tile(lp, t)
                continue
            ws, te = tl["w_start"][t], tl["t_end"][t]
            if elapsed > ws:
                mi, _, ri, ci = tl["idx"][t]
                n = int(lp.tables.out_elems[mi, ri, ci])
                self._tile(lp, t, limit=int(n * (elapsed - ws) / (te - ws)))
            break
        self.poison_sram(rng)

    def reboot(self, rng: np.random.Generator) -> None:
        """Power-up after a brown-out: SRAM holds junk."""
        self.poison_sram(rng)

    def poison_sram(self, rng: np.random.Generator) -> None:
        self.sram[:] = rng.integers(0, 256, self.sram.size, dtype=np.uint8)

    def run_to_completion(self) -> np.ndarray:
        """Run the remaining units without failures; returns :meth:`output`."""
        for i in range(self.progress(), self.n_units):
            self.run_unit(i)
        return self.output()

    def _write_box(self, region: str, dtype, shape, m0, tm, r0, tr, c0, tc, src: np.ndarray, limit,
                   offset: int = 0) -> None:
        n = int(np.prod(shape))
        dst = self._fram(region, dtype)[offset:offset + n].reshape(shape)
        if limit is None:
            dst[m0:m0 + tm, r0:r0 + tr, c0:c0 + tc] = src.reshape(tm, tr, tc)
            return
        ii = np.indices((tm, tr, tc)).reshape(3, -1) + np.array([[m0], [r0], [c0]])
        flat = np.ravel_multi_index(tuple(ii), shape)[:limit]
        dst.reshape(-1)[flat] = src[:limit]

    def _load_input(self, lp: LayerPlan, xb: np.ndarray, region: str, offset: int, n0, tn, r0, c0, tri, tci):
        """Copy one zero-padded input tile of channels [n0, n0+tn) from FRAM into the SRAM view ``xb``."""
        g = lp.geom
        C, H, W = g.in_shape
        x3 = xb.reshape(tn, tri, tci)
        y0, x0 = r0 * g.sh - g.pads[0], c0 * g.sw - g.pads[1]
        ya, yb, xa, xe = max(y0, 0), min(y0 + tri, H), max(x0, 0), min(x0 + tci, W)
        if ya > y0 or yb < y0 + tri or xa > x0 or xe < x0 + tci:
            x3[...] = 0
        src = self._fram(region, np.int16)[offset:offset + C * H * W].reshape(C, H, W)
        x3[:, ya - y0:yb - y0, xa - x0:xe - x0] = src[n0:n0 + tn, ya:yb, xa:xe]

    def _tile(self, lp: LayerPlan, t: int, limit: int | None = None) -> None:
        """Execute tile ``t`` of a layer; ``limit`` = elements of its write-back that land (None: all)."""
        g, tab, tl = lp.geom, lp.tables, lp.tiles
        ql = self.qmodel.layers[g.index]
        code = g.traits.code
        fl = int(tl["flags"][t])
        mi, ni, ri, ci = (int(v) for v in tl["idx"][t])
        m0, tm = int(tab.m0[mi]), int(tab.tm[mi])
        r0, tr = int(tab.r0[ri]), int(tab.tr[ri])
        c0, tc = int(tab.c0[ci]), int(tab.tc[ci])
        n0, tn = (m0, tm) if g.channel_tied else (int(tab.n0[ni]), int(tab.tn[ni]))
        M, Ho, Wo = g.out_shape
        sh, sw, kh, kw = g.sh, g.sw, g.kh, g.kw
        tri, tci = (tr - 1) * sh + kh, (tc - 1) * sw + kw
        ne = tm * tr * tc
        n_x = tn * tri * tci
        views = lp.fram_src or ((lp.fram_in, 0),)
        # input tiles (an add has two, one after the other in the input buffer): channels [n0, n0+tn)
        xbuf = self._sbuf(lp, "input", len(views) * n_x, np.int16)
        if fl & F_LOAD_IN:
            for k, (region, off) in enumerate(views):
                self._load_input(lp, xbuf[k * n_x:(k + 1) * n_x], region, off, n0, tn, r0, c0, tri, tci)
        xb = xbuf[:n_x]
        # the emitted runtime's layout (lp.sram without "output"/"bias") moves outputs and biases between
        # FRAM and its accumulators directly; the iNAS-style layout stages them in SRAM
        staged = "output" in lp.sram
        out16 = self._sbuf(lp, "output", ne, np.int16) if staged else np.empty(ne, np.int16)
        relu = g.relu or g.relu6
        if code == ADD:
            acc = np.empty(ne, np.int32)  # the sums go straight to the output step (no SRAM accumulators)
            la, lb = ql.align
            K.add_tile(xb, xbuf[n_x:], acc, ne, la, lb)
            K.requantize(acc, out16, ne, ql.shift, relu, ql.act_hi)
            self._write_box(lp.fram_out, np.int16, g.out_shape, m0, tm, r0, tr, c0, tc, out16, limit, lp.out_offset)
            return
        if not g.weighted:
            K.pool_tile(xb, out16, tm, tr, tc, kh, kw, sh, sw, tri, tci, code == MAXPOOL, relu, ql.act_hi)
            self._write_box(lp.fram_out, np.int16, g.out_shape, m0, tm, r0, tr, c0, tc, out16, limit, lp.out_offset)
            return
        # weights and bias
        wn = tm * kh * kw if g.channel_tied else tm * tn * kh * kw
        wb = self._sbuf(lp, "weights", wn, np.int16)
        if fl & F_LOAD_W:
            w4 = self._fram(f"w{g.index}", np.int16).reshape(ql.w.shape)
            wb[:] = (w4[m0:m0 + tm, 0] if g.channel_tied else w4[m0:m0 + tm, n0:n0 + tn]).ravel()
        slot = int(tl["slot"][t])
        stride_b = align(4 * lp.design.Tm * lp.design.Tr * lp.design.Tc)
        acc = self._sbuf(lp, "acc", ne, np.int32, extra=slot * stride_b)
        if fl & F_INIT_BIAS:
            if staged:
                bb = self._sbuf(lp, "bias", tm, np.int32)
                if fl & F_LOAD_B:
                    bb[:] = self._fram(f"b{g.index}", np.int32)[m0:m0 + tm]
            else:
                bb = self._fram(f"b{g.index}", np.int32)[m0:m0 + tm].copy()
            K.fill_bias(acc, bb, tm, tr, tc)
        elif fl & F_INIT_PSUM:
            n = M * Ho * Wo
            ps = self._fram(f"psum{int(tl['rd'][t])}", np.int32)[:n].reshape(M, Ho, Wo)
            acc.reshape(tm, tr, tc)[...] = ps[m0:m0 + tm, r0:r0 + tr, c0:c0 + tc]
        if code == DWCONV:
            K.dw_tile(xb, wb, acc, tm, tr, tc, kh, kw, sh, sw, tri, tci)
        elif code == FC:
            K.fc_tile(xb, wb, acc, tm, tn)
        else:
            K.conv_tile(xb, wb, acc, tm, tn, tr, tc, kh, kw, sh, sw, tri, tci)
        if fl & F_WRITE_OUT:
            K.requantize(acc, out16, ne, ql.shift, relu, ql.act_hi)
            self._write_box(lp.fram_out, np.int16, g.out_shape, m0, tm, r0, tr, c0, tc, out16, limit, lp.out_offset)
        elif fl & F_WRITE_PSUM:
            self._write_box(f"psum{int(tl['wr'][t])}", np.int32, g.out_shape, m0, tm, r0, tr, c0, tc, acc, limit)
