"""Weight sharing for ``--space mbconv``: a Once-for-All supernet of inverted-residual stages.

The supernet holds the weights of the largest network of an
:class:`~aidi.models.nas.mbconv.MbSpace` (Cai et al., "Once-for-All", ICLR 2020,
code ``ofa/imagenet_classification/elastic_nn/modules/dynamic_layers.py``,
``DynamicMBConvLayer``), per block slot ``b < max depth`` of stage ``i`` with
``C`` the largest input channels (the stem's, or the previous stage's largest
width), ``W`` the stage's largest width, ``E`` its largest expand ratio and
``K`` its largest kernel:

* expand ``(C*E, C, 1, 1)``, depthwise ``(C*E, 1, K, K)``, project
  ``(W, C*E, 1, 1)``, each with a BN's affine parameters (when some ratio > 1);
* for expand ratio 1, a *separate* path: depthwise ``(C, 1, K, K)`` and project
  ``(W, C, 1, 1)`` with their BN (when 1 is a choice);
* the stem (not elastic) and the head ``(n_classes, W_last)`` after global pooling.

A member (stage widths ``w``, blocks ``(k, e)``, depths, resolution) runs on
slices: a block with ``c`` input channels takes the first ``c*e`` hidden
channels of its expand / depthwise / project weights and the first ``w``
outputs, the centre ``k x k`` of the depthwise kernel through the kernel
transformation matrices (``K -> ... -> k`` one step at a time, one learned
``(k'^2, k'^2)`` matrix per layer and step, identity at first, OFA's
``get_active_filter``; :func:`aidi.models.nas.supernet.transform_kernel`), the
first ``depth`` blocks of each stage, and the ``f x f`` average pool of its
resolution factor (no weights).  BN statistics are the member's own (batch
statistics while training, recalibrated on training images when read, OFA's
BN recalibration).  Activations are ReLU6 as in the member's graph.

Why a separate expand-1 path.  OFA's own space has no expand ratio 1 (its
``{3, 4, 6}`` all share one expand conv); MCUNet's ratio-1 block has no expand
conv, so its depthwise conv reads the block *input*, not expanded channels.
Sharing the first ``c`` hidden depthwise filters with it would (a) apply filters
trained on ReLU6-expanded activations to un-activated inputs of another
distribution, and (b) break OFA's channel sorting: sorting permutes the hidden
channels, which changes which filter reads input channel ``j`` and so the
function of every ratio-1 member, full-size ones included.  The separate path
costs ``C*K^2 + W*C`` weights per slot (small next to the ``C*E`` hidden
ones) and keeps sorting function-preserving.

Progressive shrinking (:data:`MB_PHASES`, OFA's order): ``full`` (the largest
network), ``kernel`` (+ elastic kernel and resolution), ``depth``, ``expand``
and ``width``, each opening one more dimension, with the sandwich rule and
in-place KD (:func:`aidi.models.nas.supernet.sandwich_step`; the largest,
the smallest over the opened dimensions and ``random_subnets`` random members
per step, drawn by the generic :func:`aidi.models.nas.supernet.decision_sampler`
over the space's decisions).  Before ``expand``, OFA's channel sorting of the
hidden channels (:meth:`MbSupernet.sort_hidden`, ``re_organize_middle_weights``):
by the L1 norm of the project conv's input weights, the expand conv's outputs
(+ BN) and the depthwise filters (+ BN) permuted alike.  Before ``width``, the
stages' output channels (:meth:`MbSupernet.sort_stages`) by the L1 norm of the
weights that read them.  Both keep the function of every member at full size.

Public::

    MbSupernetConfig(...)             # epochs of MB_PHASES, optimiser, KD, fine-tuning (cache format: version)
    MbSupernet(space)                 # forward(x, arch, stats), calibrate, sort_hidden, sort_stages, sandwich
    train_mb_supernet(space, data, seed, config, device=) -> MbSupernet   # cached under cache_dir()/nas
    extract_member(supernet, arch, data) -> TrainedModel  # graph + inherited weights, for q15.quantize / emit-c
    config_for_space(space, quick), train_for_space(space, data, ...)     # the chain or the mbconv supernet

:func:`aidi.models.nas.supernet.extract`, :func:`~aidi.models.nas.supernet.supernet_accuracy`,
:func:`~aidi.models.nas.supernet.teacher_of` and :class:`~aidi.models.nas.SupernetAccuracy` take an
:class:`MbSupernet` as they take the chain's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .mbconv import MbArch, MbSpace
from .supernet import (NasData, SharedWeights, SupernetConfig, calibration_images, decision_sampler, extract,
                       member_bn, train_shared, train_supernet, transform_kernel)

MB_PHASES = ("full", "kernel", "depth", "expand", "width")
#: the decision dimensions (:meth:`MbSpace.decisions` names' last part) each phase samples; the rest at their largest
OPENED = {"full": (), "kernel": ("res", "k"), "depth": ("res", "k", "depth"),
          "expand": ("res", "k", "depth", "expand"), "width": ("res", "k", "depth", "expand", "width")}


@dataclass(frozen=True)
class MbSupernetConfig(SupernetConfig):
    """:class:`~aidi.models.nas.supernet.SupernetConfig` with the epochs of :data:`MB_PHASES` (``expand_epochs``
    added).  Defaults: 20 epochs of the largest network, then 5 per shrinking phase (OFA trains the full network
    longest; shorter here because every shrinking step trains ``2 + random_subnets`` members).  ``version``: the
    format of this supernet's cache files (bump it when the weights' layout or the training changes)."""

    full_epochs: int = 20
    kernel_epochs: int = 5
    depth_epochs: int = 5
    width_epochs: int = 5
    version: int = 1
    expand_epochs: int = 5

    @classmethod
    def quick(cls, **kw) -> "MbSupernetConfig":
        """Tiny epochs (tests, --quick)."""
        base = dict(full_epochs=4, kernel_epochs=1, depth_epochs=1, expand_epochs=1, width_epochs=1, ft_epochs=2)
        base.update(kw)
        return cls(**base)


@dataclass(frozen=True)
class _Slot:
    """Block slot ``b`` of stage ``i``: its largest input / hidden / output channels and its kernel sizes."""

    name: str
    stage: int
    cin: int
    hidden: int  # 0: no expand conv (every ratio is 1)
    width: int
    kernels: tuple[int, ...]  # descending
    one: bool  # expand ratio 1 is a choice: the separate path exists


class MbSupernet(SharedWeights):
    """Shared weights of every member of an :class:`MbSpace` (see the module docstring);
    ``forward(x, arch, stats, collect)`` gives the logits ``(B, n_classes)`` of ``arch``.

    Parameters live in ``p`` (``<slot>_<layer>_{w,g,b}``: weight, BN gamma, BN beta; layers ``exp``, ``dw``,
    ``pj`` and the ratio-1 path ``dw1``, ``pj1``; ``stem_*``) and ``ktrans`` (``<slot>_<dw|dw1>_<src>to<dst>``),
    the head in ``fc_w``, ``fc_b``.  Initialisation: torch's default for each largest layer.
    """

    PHASES = MB_PHASES

    def __init__(self, space: MbSpace):
        super().__init__()
        if not isinstance(space, MbSpace):
            raise ValueError(f"MbSupernet needs an mbconv search space, got {type(space).__name__}")
        self.space = space
        self.p = nn.ParameterDict()
        self.ktrans = nn.ParameterDict()
        self._conv("stem", space.stem, space.input_shape[0], space.stem_k)
        self.slots: list[list[_Slot]] = []
        cin = space.stem
        for i, st in enumerate(space.stages):
            row = []
            for b in range(max(st.depths)):
                c = cin if b == 0 else max(st.widths)
                ks = tuple(sorted(st.kernels, reverse=True))
                emax = max(st.expands)
                slot = _Slot(f"s{i}b{b}", i, c, c * emax if emax > 1 else 0, max(st.widths), ks, 1 in st.expands)
                if slot.hidden:
                    self._conv(f"{slot.name}_exp", slot.hidden, c, 1)
                    self._conv(f"{slot.name}_dw", slot.hidden, 1, ks[0], groups=slot.hidden)
                    self._conv(f"{slot.name}_pj", slot.width, slot.hidden, 1)
                if slot.one:
                    self._conv(f"{slot.name}_dw1", c, 1, ks[0], groups=c)
                    self._conv(f"{slot.name}_pj1", slot.width, c, 1)
                for layer in ("dw", "dw1") if slot.hidden and slot.one else ("dw",) if slot.hidden else ("dw1",):
                    for src, dst in zip(ks, ks[1:]):
                        self.ktrans[f"{slot.name}_{layer}_{src}to{dst}"] = nn.Parameter(torch.eye(dst * dst))
                row.append(slot)
            self.slots.append(row)
            cin = max(st.widths)
        fc = nn.Linear(cin, space.n_classes)
        self.fc_w, self.fc_b = fc.weight, fc.bias
        self._samplers = {ph: decision_sampler(space, OPENED[ph], ("res",)) for ph in MB_PHASES}

    def _conv(self, name: str, cout: int, cin: int, k: int, groups: int = 1) -> None:
        self.p[f"{name}_w"] = nn.Conv2d(cin * groups, cout, k, groups=groups, bias=False).weight
        self.p[f"{name}_g"] = nn.Parameter(torch.ones(cout))
        self.p[f"{name}_b"] = nn.Parameter(torch.zeros(cout))

    # ------------------------------------------------------------------ members
    def _op(self, name: str, cout: int, cin: int, k: int | None = None, stride: int = 1, groups: int = 1,
            act: bool = True, sizes: tuple[int, ...] = ()) -> dict:
        w = self.p[f"{name}_w"][:cout, :cin]
        if k is not None and sizes:
            w = transform_kernel(w, k, sizes, lambda src, dst: self.ktrans[f"{name}_{src}to{dst}"])
        return {"w": w, "gamma": self.p[f"{name}_g"][:cout], "beta": self.p[f"{name}_b"][:cout], "stride": stride,
                "pad": w.shape[-1] // 2, "groups": groups, "act": act}

    def ops(self, arch: MbArch) -> list[dict]:
        """The member's layers in the order of ``arch.to_layers()``: conv ops (``w`` sliced and transformed,
        ``gamma``, ``beta``, ``stride``, ``pad``, ``groups``, ``act`` = ReLU6 after BN), ``{"pool": f}``,
        ``{"save"}`` / ``{"add"}`` around a residual block, and the head ``{"head", "w", "b"}``."""
        sp = self.space
        out: list[dict] = [{"pool": arch.resolution}] if arch.resolution > 1 else []
        out.append(self._op("stem", sp.stem, sp.input_shape[0], stride=sp.stem_stride))
        c = sp.stem
        for i, s in enumerate(arch.stages):
            for b, blk in enumerate(s.blocks):
                slot = self.slots[i][b]
                stride = s.stride if b == 0 else 1
                residual = stride == 1 and c == s.width
                if residual:
                    out.append({"save": True})
                if blk.expand > 1:
                    h, dw, pj = c * blk.expand, f"{slot.name}_dw", f"{slot.name}_pj"
                    out.append(self._op(f"{slot.name}_exp", h, c))
                else:
                    h, dw, pj = c, f"{slot.name}_dw1", f"{slot.name}_pj1"
                out.append(self._op(dw, h, 1, blk.k, stride, groups=h, sizes=slot.kernels))
                out.append(self._op(pj, s.width, h, act=False))
                if residual:
                    out.append({"add": True})
                c = s.width
        out.append({"head": True, "w": self.fc_w[:, :c], "b": self.fc_b})
        return out

    def weighted_ops(self, arch: MbArch) -> list[dict]:
        return [op for op in self.ops(arch) if not ({"pool", "save", "add"} & op.keys())]

    def forward(self, x: torch.Tensor, arch: MbArch, stats=None, collect: list | None = None) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of ``arch`` on images ``x`` ``(B, C, H, W)`` (the native resolution).

        ``stats``: per-BN ``(mean, var)`` (eval with those statistics); None: batch statistics.
        ``collect``: a list that receives each BN's batch ``(mean, biased var)``."""
        k, saved = 0, None
        for op in self.ops(arch):
            if "pool" in op:
                x = F.avg_pool2d(x, op["pool"], op["pool"])
            elif "save" in op:
                saved = x
            elif "add" in op:
                x = x + saved
            elif "head" in op:
                return F.linear(x.mean(dim=(2, 3)), op["w"], op["b"])
            else:
                x = F.conv2d(x, op["w"], None, op["stride"], op["pad"], groups=op["groups"])
                x = member_bn(x, op, None if stats is None else stats[k], collect)
                k += 1
                if op["act"]:
                    x = torch.clamp(x, 0.0, 6.0)
        raise AssertionError("unreachable: ops() ends with the head")

    # ------------------------------------------------------------------ training
    def sandwich(self, phase: str, rng: np.random.Generator, n_random: int) -> list[MbArch]:
        """``full``: the largest network alone; a shrinking phase: ``[largest, smallest, n_random random]`` over
        the dimensions it opens (:data:`OPENED`).  Deterministic in ``rng``; ValueError for an unknown phase."""
        if phase not in MB_PHASES:
            raise ValueError(f"unknown training phase {phase!r} (one of {', '.join(MB_PHASES)})")
        if phase == "full":
            return [self.space.largest()]
        sample = self._samplers[phase]
        return [self.space.largest(), sample(rng, "min")] + [sample(rng, "random") for _ in range(n_random)]

    def before_phase(self, phase: str) -> dict | None:
        if phase == "expand":
            return {"hidden_channels_moved_per_block": [_moved(p) for p in self.sort_hidden()]}
        if phase == "width":
            return {"channels_moved_per_stage": [None if p is None else _moved(p) for p in self.sort_stages()]}
        return None

    @torch.no_grad()
    def sort_hidden(self) -> list[torch.Tensor]:
        """Sort every block slot's hidden (expanded) channels by importance, in place (OFA's
        ``re_organize_middle_weights``): the L1 norm of the project conv's weights reading each channel,
        largest first; the expand conv's filters and BN and the depthwise filters and BN follow.  Every
        member whose blocks use all hidden channels computes the same function.  Returns each slot's
        permutation (new -> old channel), slots in order, those without an expand conv left out."""
        perms = []
        for slot in (s for row in self.slots for s in row if s.hidden):
            n = slot.name
            perm = torch.argsort(-self.p[f"{n}_pj_w"].abs().sum(dim=(0, 2, 3)), stable=True)
            for key in (f"{n}_exp_w", f"{n}_exp_g", f"{n}_exp_b", f"{n}_dw_w", f"{n}_dw_g", f"{n}_dw_b"):
                self.p[key].copy_(self.p[key][perm])
            self.p[f"{n}_pj_w"].copy_(self.p[f"{n}_pj_w"][:, perm])
            perms.append(perm)
        return perms

    def _tied(self, i: int) -> bool:
        """Stage ``i``'s first block adds its input at full size (stride 1, largest input = largest width):
        its channels are the previous stage's (or the stem's) and cannot be sorted alone."""
        return 0 <= i < len(self.slots) and self.space.stages[i].stride == 1 \
            and self.slots[i][0].cin == self.slots[i][0].width

    @torch.no_grad()
    def sort_stages(self) -> list[torch.Tensor | None]:
        """Sort each stage's output channels by importance, in place (before the width phase): the L1 norm of
        the weights that read them (the expand conv and ratio-1 depthwise filters of the stage's later blocks
        and of the next stage's first block, or the head's columns).  Producers (project convs of both paths,
        their BN) and consumers (expand conv columns, ratio-1 depthwise filters and BN, ratio-1 project
        columns, the head's columns) are permuted alike, so every member of full width computes the same
        function.  A stage tied to its neighbour by a full-size residual add (:meth:`_tied`) is left as is
        (None).  Returns each stage's permutation (new -> old channel) or None."""
        perms: list[torch.Tensor | None] = []
        for i, row in enumerate(self.slots):
            if self._tied(i) or self._tied(i + 1):
                perms.append(None)
                continue
            cons = row[1:] + (self.slots[i + 1][:1] if i + 1 < len(self.slots) else [])
            imp = torch.zeros(row[0].width, device=self.fc_w.device)
            for s in cons:
                if s.hidden:
                    imp += self.p[f"{s.name}_exp_w"].abs().sum(dim=(0, 2, 3))
                if s.one:
                    imp += self.p[f"{s.name}_dw1_w"].abs().sum(dim=(1, 2, 3))
            if i + 1 == len(self.slots):
                imp += self.fc_w.abs().sum(dim=0)
            perm = torch.argsort(-imp, stable=True)
            for s in row:
                for layer in ("pj", "pj1") if s.hidden and s.one else ("pj",) if s.hidden else ("pj1",):
                    for part in "wgb":
                        key = f"{s.name}_{layer}_{part}"
                        self.p[key].copy_(self.p[key][perm])
            for s in cons:
                if s.hidden:
                    self.p[f"{s.name}_exp_w"].copy_(self.p[f"{s.name}_exp_w"][:, perm])
                if s.one:
                    for part in "wgb":
                        key = f"{s.name}_dw1_{part}"
                        self.p[key].copy_(self.p[key][perm])
                    self.p[f"{s.name}_pj1_w"].copy_(self.p[f"{s.name}_pj1_w"][:, perm])
            if i + 1 == len(self.slots):
                self.fc_w.copy_(self.fc_w[:, perm])
            perms.append(perm)
        return perms


def _moved(perm: torch.Tensor) -> int:
    return int((perm != torch.arange(len(perm), device=perm.device)).sum())


# --------------------------------------------------------------------------- training, extraction, dispatch
def train_mb_supernet(space: MbSpace, data: NasData, seed: int = 0, config: MbSupernetConfig | None = None,
                      use_cache: bool = True, log: Callable[[str], None] | None = None,
                      progress: Callable[[int, int], None] | None = None, device: str = "cpu") -> MbSupernet:
    """Train (or load from ``cache_dir()/nas``, keyed by space, data, seed, config incl. ``version``, torch) the
    supernet of ``space`` on ``data``'s training split by progressive shrinking (:data:`MB_PHASES`); as
    :func:`aidi.models.nas.supernet.train_supernet` (``meta``, ``progress``, ``device``, returned on the CPU).
    Raises ValueError when the data's input shape is not the space's."""
    return train_shared(MbSupernet, space, data, seed, config or MbSupernetConfig(), use_cache, log, progress, device)


def extract_member(supernet: MbSupernet, arch: MbArch, data: NasData, seed: int = 0):
    """``arch`` with its inherited weights as a :class:`aidi.models.net.TrainedModel`: its graph
    (``.net``, a :class:`~aidi.models.layers.Network` of ``arch.to_layers()``) and module (``.module``,
    :func:`~aidi.models.nas.supernet.extract`, BN recalibrated on :func:`calibration_images`), with ``data``'s
    train / test split, ready for :func:`aidi.models.q15.quantize` and the plan / emit path."""
    from ..net import TrainedModel

    module = extract(supernet, arch, calibration_images(data))
    return TrainedModel(module.net, module, data.as_dataset(), seed, 0, f"supernet:{arch.id}", float("nan"))


def config_for_space(space, quick: bool = False) -> SupernetConfig:
    """The default supernet config of ``space``: :class:`MbSupernetConfig` for an :class:`MbSpace`, else
    :class:`~aidi.models.nas.supernet.SupernetConfig` (``quick``: their tiny settings)."""
    cls = MbSupernetConfig if isinstance(space, MbSpace) else SupernetConfig
    return cls.quick() if quick else cls()


def train_for_space(space, data: NasData, seed: int = 0, config: SupernetConfig | None = None, **kw):
    """:func:`train_mb_supernet` for an :class:`MbSpace`, :func:`aidi.models.nas.supernet.train_supernet` for a
    chain space (same keywords)."""
    train = train_mb_supernet if isinstance(space, MbSpace) else train_supernet
    return train(space, data, seed, config or config_for_space(space), **kw)
