"""Weight sharing: a Once-for-All supernet over a :class:`~aidi.models.nas.space.SearchSpace`.

The supernet holds, per stage and block, the weights of the largest choice of
each block kind: a standard conv ``(F_max, C_max, K_max, K_max)`` and a
depthwise-separable pair (dw ``(C_max, 1, K_max, K_max)``, pw ``(F_max, C_max, 1, 1)``),
each followed by batch norm (shared affine parameters), plus the FC head
(``(n_classes, F_max)`` after global pooling, ``(n_classes, F_max, H, W)`` over a
flattened map).  A subnet uses

* elastic kernel size: the centre ``k x k`` of the ``K_max`` kernel, transformed (below),
* elastic width: the first ``filters`` output channels (and the first input
  channels its predecessor produced),
* elastic depth: the first ``depth`` blocks of each stage,

so its accuracy is read off the shared weights in milliseconds, after OFA's
BN recalibration (the member's BN statistics computed on
:data:`CALIB_SAMPLES` training images; without BN, or without recalibration,
members with small kernels or widths lose their activation scale and read
near chance).  :func:`extract` copies those slices and statistics into a
standalone :class:`~aidi.models.net.AidiNet` whose outputs equal the
supernet's for that architecture (BN is folded into the conv before Q15).

Three Once-for-All / BigNAS ingredients (Cai et al., ICLR 2020, code
``ofa/imagenet_classification/elastic_nn``; Yu et al., ECCV 2020):

* **Kernel transformation matrices.**  A ``k x k`` kernel is not the plain
  centre crop of the ``K_max`` kernel: going down the stage's kernel sizes
  ``K_max > ... > k`` one step at a time, the centre ``k' x k'`` crop of the
  previous kernel is multiplied by a learned ``(k'^2, k'^2)`` matrix, one per
  layer (conv and dwconv) and step, shared by every channel, initialised to
  the identity (OFA's ``DynamicSeparableConv2d.get_active_filter``).  They
  get gradients once kernels are elastic (phase ``kernel`` on), so a small
  kernel can differ from the centre of the large one that trains the large
  members.  ``Supernet.kernel(...)`` gives a layer's effective kernel.
* **Channel importance sorting** before the width phase
  (:meth:`Supernet.sort_channels`, OFA's ``re_organize_middle_weights``): a
  stage's output channels are sorted by decreasing L1 norm of the weights that
  read them (every block or head that can consume the stage's output, as
  OFA's code measures a channel by the next layer's weights: with BN after
  the producer, the producer's own filter norm says nothing of the channel's
  scale), and the producers (conv / pwconv filters, their BN affine
  parameters) and consumers (input channels, the dwconv's channels and BN)
  are permuted to match, so the width phase's "first ``filters`` channels"
  are the important ones.  A permutation of channels leaves every full-width
  member's function unchanged.
* **The sandwich rule with in-place distillation** (:func:`sandwich`,
  :func:`sandwich_step`): every step of the shrinking phases trains the
  largest member opened so far (cross-entropy), the smallest and
  ``random_subnets`` random ones (``alpha * KD + (1 - alpha) * CE`` against the
  largest's logits of the same step, detached), gradients accumulated over
  the members before one optimiser step.

Training is progressive shrinking as in Once-for-All, in short phases:
``full`` (the largest kernels, depths and widths, the block kind sampled per
stage), then ``kernel`` (elastic kernel), ``depth`` (+ elastic depth) and
``width`` (+ elastic width; channels sorted first).  Fine-tuning a finalist
uses KD from the teacher (:func:`teacher_of`, the largest all-conv member)
with ``KD = T^2 * KL(softmax(t / T) || softmax(s / T))``.  ``alpha = 0``
turns KD off everywhere (:func:`kd_ablation` compares both).

Everything is deterministic given the seed (``torch.random.fork_rng``, fixed
thread count, seeded generators) and cached under ``cache_dir()/nas``
(atomic writes), never in the repository.

Public API::

    SupernetConfig(...)                               # epochs per phase, lr, KD alpha / temperature, ...
    Supernet(space)                                   # nn.Module; forward(x, arch, stats); calibrate(arch, x)
    train_supernet(space, data, seed, config, device=) -> Supernet   # cached
    sandwich(space, phase, rng, n_random) -> [largest, smallest, random...]
    sandwich_step(supernet, x, y, archs, alpha, temperature) -> per-member losses
    resolve_device("auto" | "cpu" | "cuda") -> torch.device
    calibration_images(data) -> np.ndarray
    extract(supernet, arch, x_calib) -> AidiNet
    supernet_accuracy(supernet, arch, x, y, x_calib) -> float
    teacher_of(supernet, x_calib) -> (AidiNet, Arch)
    finetune(module, data, seed, teacher=None, epochs=, alpha=, temperature=) -> AidiNet
    train_from_scratch(arch, data, seed, epochs) -> AidiNet      # no KD, no sharing (iNAS-style)
    split_validation(data, seed) -> NasData
    kd_ablation(space, data, seeds, ...) -> dict
"""

from __future__ import annotations

import copy
import hashlib
import json
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..cache import cache_dir
from ..data import Dataset
from ..layers import parse_network
from ..net import AidiNet, _atomic_save, _deterministic, accuracy
from .space import Arch, SearchSpace, Stage

PHASES = ("full", "kernel", "depth", "width")
#: intra-op threads while training: these nets are tiny, and on a 2-core machine two
#: threads were measured 50x slower per step than one (thread hand-off dominates)
THREADS = 1


def _det(seed: int):
    return _deterministic(seed, THREADS)


@dataclass(frozen=True)
class SupernetConfig:
    """Training settings (epochs per progressive-shrinking phase, optimiser, KD).

    ``alpha``: weight of the KD term (0 = plain cross-entropy, the default: on Fashion-MNIST and digits
    ``aidi nas-ablation kd`` measured KD 0.9 and 0.1 points below no KD with inherited weights, 1.2 and
    2.5 after fine-tuning, 2 seeds; see the README's NAS section); ``temperature``:
    KD softmax temperature; ``random_subnets``: random members per batch in the
    shrinking phases, besides the largest and the smallest (the sandwich rule);
    ``ft_epochs`` / ``ft_lr``: fine-tuning of finalists.
    """

    full_epochs: int = 30
    kernel_epochs: int = 10
    depth_epochs: int = 10
    width_epochs: int = 40
    batch: int = 64
    lr: float = 3e-3
    shrink_lr: float = 3e-3
    random_subnets: int = 2
    #: KD off by default: ``aidi nas-ablation kd`` measured no gain (README, "Searching networks")
    alpha: float = 0.0
    temperature: float = 4.0
    ft_epochs: int = 10
    ft_lr: float = 2e-3
    version: int = 3  # 3: kernel transformation matrices, channel sorting, sandwich with in-place KD

    def key(self) -> dict:
        d = asdict(self)
        d.pop("ft_epochs")
        d.pop("ft_lr")
        return d

    @classmethod
    def quick(cls, **kw) -> "SupernetConfig":
        """Tiny epochs (tests, --quick)."""
        base = dict(full_epochs=4, kernel_epochs=1, depth_epochs=1, width_epochs=2, ft_epochs=2)
        base.update(kw)
        return cls(**base)


@dataclass(frozen=True)
class NasData:
    """Train / validation (search) / test (final report) splits of a data set."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(int(v) for v in self.x_train.shape[1:])  # type: ignore[return-value]

    def fingerprint(self) -> str:
        h = hashlib.sha256()
        for a in (self.x_train, self.y_train, self.x_val, self.y_val):
            h.update(str(a.shape).encode())
            h.update(np.ascontiguousarray(a[: min(len(a), 256)]).tobytes())
        return f"{self.name}-{h.hexdigest()[:12]}"

    def as_dataset(self) -> Dataset:
        """The original train (train + val) / test split as a :class:`~aidi.models.data.Dataset`."""
        return Dataset(self.name, np.concatenate([self.x_train, self.x_val]),
                       np.concatenate([self.y_train, self.y_val]), self.x_test, self.y_test, self.n_classes)


def split_validation(data: Dataset, seed: int, fraction: float = 0.2) -> NasData:
    """Hold out ``fraction`` of the training split (per class, shuffled by ``seed``) for the search."""
    rng = np.random.default_rng(seed)
    val = np.zeros(len(data.y_train), dtype=bool)
    for c in np.unique(data.y_train):
        idx = np.nonzero(data.y_train == c)[0]
        idx = idx[rng.permutation(len(idx))]
        val[idx[: int(round(fraction * len(idx)))]] = True
    return NasData(data.name, np.ascontiguousarray(data.x_train[~val]), data.y_train[~val],
                   np.ascontiguousarray(data.x_train[val]), data.y_train[val], data.x_test, data.y_test,
                   data.n_classes)


# --------------------------------------------------------------------------- the supernet
def _crop(w: torch.Tensor, k: int) -> torch.Tensor:
    o = (w.shape[-1] - k) // 2
    return w[..., o:o + k, o:o + k]


def transform_kernel(w: torch.Tensor, k: int, sizes: Sequence[int],
                     matrix: Callable[[int, int], torch.Tensor]) -> torch.Tensor:
    """The ``k x k`` kernel from ``K_max`` weights ``w`` ``(out, in, K_max, K_max)``: centre crops down ``sizes``
    (the layer's kernel sizes, descending, ``sizes[0] = K_max``), each crop ``src -> dst`` times the learned
    ``(dst^2, dst^2)`` matrix ``matrix(src, dst)`` shared by every channel (OFA's ``get_active_filter``).
    Shape ``(out, in, k, k)``."""
    for src, dst in zip(sizes, sizes[1:]):
        if src <= k:
            break
        c = _crop(w, dst)
        w = F.linear(c.reshape(-1, dst * dst), matrix(src, dst)).reshape(c.shape)
    return w


BN_EPS = 1e-5


def member_bn(x: torch.Tensor, op: dict, stats: tuple[torch.Tensor, torch.Tensor] | None,
              collect: list | None) -> torch.Tensor:
    """A member's batch norm with the shared affine ``op["gamma"], op["beta"]``: with ``stats`` = ``(mean, var)``
    (eval), else batch statistics (training), appending the batch's ``(mean, biased var)`` to ``collect``."""
    if stats is not None:
        return F.batch_norm(x, stats[0], stats[1], op["gamma"], op["beta"], False, 0.0, BN_EPS)
    if collect is not None:
        with torch.no_grad():
            collect.append((x.mean(dim=(0, 2, 3)), x.var(dim=(0, 2, 3), unbiased=False)))
    return F.batch_norm(x, None, None, op["gamma"], op["beta"], True, 0.0, BN_EPS)
#: training images used to recalibrate a member's BN statistics before reading its accuracy
CALIB_SAMPLES = 1024


class SharedWeights(nn.Module):
    """What every supernet offers (:class:`Supernet`, :class:`aidi.models.nas.mbconv_supernet.MbSupernet`):
    ``forward(x, arch, stats, collect)``, :meth:`weighted_ops` (the member's weighted layers in the order of
    ``arch.to_layers()``), ``fc_w`` (the head's weight; its device is the supernet's), ``PHASES`` (the
    progressive-shrinking phases), :meth:`sandwich` and :meth:`before_phase` (used by the training loop)."""

    PHASES: tuple[str, ...] = ()

    def weighted_ops(self, arch) -> list[dict]:
        """Each weighted layer of ``arch`` in order: ``{"w", "gamma", "beta"}`` (each followed by BN), then the
        head ``{"w", "b"}``."""
        raise NotImplementedError

    def sandwich(self, phase: str, rng: np.random.Generator, n_random: int) -> list:
        """The members one training step of ``phase`` trains (the first one with cross-entropy)."""
        raise NotImplementedError

    def before_phase(self, phase: str) -> dict | None:
        """Called before ``phase`` trains (OFA's channel sorting); what it returns goes into the phase's history."""
        return None

    def calibrate(self, arch, x_calib: np.ndarray) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """BN statistics of ``arch`` over ``x_calib`` (one batch)."""
        stats: list = []
        with torch.no_grad(), _det(0):
            self.forward(torch.from_numpy(np.ascontiguousarray(x_calib, dtype=np.float32)).to(self.fc_w.device), arch,
                         collect=stats)
        return stats


class Supernet(SharedWeights):
    """Shared weights of every member of ``space``; ``forward(x, arch, stats)`` runs one member.

    Every conv / dwconv / pwconv is followed by batch norm (then ReLU).  BN
    affine parameters are shared (first channels), but each member has its own
    statistics: training uses batch statistics, and :meth:`calibrate` computes
    a member's statistics on training images (OFA's BN recalibration), which
    :func:`extract` stores as the standalone module's running statistics.
    """

    PHASES = PHASES

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        cin = space.input_shape[0]
        self.conv_w, self.dw_w, self.pw_w = nn.ParameterList(), nn.ParameterList(), nn.ParameterList()
        self.conv_g, self.conv_bt = nn.ParameterList(), nn.ParameterList()
        self.dw_g, self.dw_bt = nn.ParameterList(), nn.ParameterList()
        self.pw_g, self.pw_bt = nn.ParameterList(), nn.ParameterList()
        self.index: dict[tuple[int, int], int] = {}
        for i, st in enumerate(space.stages):
            fmax, kmax = max(st.filters), max(st.kernels)
            for b in range(max(st.depths)):
                c = cin if b == 0 else fmax
                self.index[(i, b)] = len(self.conv_w)
                # torch's default init of the largest layers (kaiming-uniform, a = sqrt(5))
                self.conv_w.append(nn.Conv2d(c, fmax, kmax, bias=False).weight)
                self.dw_w.append(nn.Conv2d(c, c, kmax, groups=c, bias=False).weight)
                self.pw_w.append(nn.Conv2d(c, fmax, 1, bias=False).weight)
                for g, bt, n in ((self.conv_g, self.conv_bt, fmax), (self.dw_g, self.dw_bt, c),
                                 (self.pw_g, self.pw_bt, fmax)):
                    g.append(nn.Parameter(torch.ones(n)))
                    bt.append(nn.Parameter(torch.zeros(n)))
            cin = fmax
        # kernel transformation matrices (OFA): "<kind><j>_<src>to<dst>" -> (dst^2, dst^2), identity at first
        self.ktrans = nn.ParameterDict()
        self.kernel_sizes = {j: tuple(sorted(space.stages[i].kernels, reverse=True)) for (i, _), j in self.index.items()}
        for (i, b), j in self.index.items():
            ks = sorted(space.stages[i].kernels)
            for kind in ("conv", "dw"):
                for src, dst in zip(ks[1:], ks[:-1]):
                    self.ktrans[f"{kind}{j}_{src}to{dst}"] = nn.Parameter(torch.eye(dst * dst))
        if space.head == "flatten":
            _, h, w = parse_network(space.largest().to_layers(), space.input_shape).shapes[-2]
            fc = nn.Linear(cin * h * w, space.n_classes)
            self.fc_w = nn.Parameter(fc.weight.detach().reshape(space.n_classes, cin, h, w).clone())
        else:
            fc = nn.Linear(cin, space.n_classes)
            self.fc_w = fc.weight
        self.fc_b = fc.bias

    def kernel(self, kind: str, j: int, w: torch.Tensor, k: int) -> torch.Tensor:
        """The ``k x k`` kernel of layer ``j`` (``kind`` "conv" or "dw") from its ``K_max`` weights ``w``
        ``(out, in, K_max, K_max)`` (any channel slice): centre crops down the stage's kernel sizes, each
        times its transformation matrix (OFA's ``get_active_filter``).  Shape ``(out, in, k, k)``."""
        return transform_kernel(w, k, self.kernel_sizes[j], lambda src, dst: self.ktrans[f"{kind}{j}_{src}to{dst}"])

    @torch.no_grad()
    def sort_channels(self) -> list[torch.Tensor]:
        """Sort each stage's output channels by importance, in place (OFA's ``re_organize_middle_weights``).

        Importance of channel ``c`` of stage ``i``: the L1 norm of every weight that reads it (the input
        slices of the stage's later blocks and of the next stage's first block, conv and separable, or the
        head's columns).  Producers (conv / pwconv filters and their BN gamma, beta) and consumers (input
        channels; a dwconv's filters and BN, which follow its input) are permuted alike, so every member
        of full width computes the same function.  Returns each stage's permutation (new -> old channel).
        """
        perms = []
        n_st = len(self.space.stages)
        for i, st in enumerate(self.space.stages):
            prod = [self.index[(i, b)] for b in range(max(st.depths))]
            cons = prod[1:] + ([self.index[(i + 1, 0)]] if i + 1 < n_st else [])
            imp = torch.zeros(max(st.filters), device=self.fc_w.device)
            for j in cons:
                imp += self.conv_w[j].abs().sum(dim=(0, 2, 3)) + self.dw_w[j].abs().sum(dim=(1, 2, 3)) \
                    + self.pw_w[j].abs().sum(dim=(0, 2, 3))
            if i + 1 == n_st:
                imp += self.fc_w.abs().sum(dim=tuple(d for d in range(self.fc_w.dim()) if d != 1))
            perm = torch.argsort(-imp, stable=True)
            for j in prod:
                for p in (self.conv_w[j], self.conv_g[j], self.conv_bt[j], self.pw_w[j], self.pw_g[j], self.pw_bt[j]):
                    p.copy_(p[perm])
            for j in cons:
                for p in (self.conv_w[j], self.pw_w[j]):
                    p.copy_(p[:, perm])
                for p in (self.dw_w[j], self.dw_g[j], self.dw_bt[j]):
                    p.copy_(p[perm])
            if i + 1 == n_st:
                self.fc_w.copy_(self.fc_w[:, perm])
            perms.append(perm)
        return perms

    def head_weight(self, cin: int) -> torch.Tensor:
        """FC weight of a member whose last stage has ``cin`` channels, ``(n_classes, in_features)``."""
        return self.fc_w[:, :cin].reshape(self.fc_w.shape[0], -1)

    def ops(self, arch: Arch) -> list[dict]:
        """The member's weighted ops in order: ``{"w", "gamma", "beta", "pad", "groups"}`` views, and pools."""
        out: list[dict] = []
        cin = self.space.input_shape[0]
        same = arch.padding == "same"
        for i, s in enumerate(arch.stages):
            pad = s.k // 2 if same else 0
            for b in range(s.depth):
                j = self.index[(i, b)]
                if s.kind == "conv":
                    out.append({"w": self.kernel("conv", j, self.conv_w[j][: s.filters, :cin], s.k),
                                "gamma": self.conv_g[j][: s.filters],
                                "beta": self.conv_bt[j][: s.filters], "pad": pad, "groups": 1})
                else:
                    out.append({"w": self.kernel("dw", j, self.dw_w[j][:cin], s.k), "gamma": self.dw_g[j][:cin],
                                "beta": self.dw_bt[j][:cin], "pad": pad, "groups": cin})
                    out.append({"w": self.pw_w[j][: s.filters, :cin], "gamma": self.pw_g[j][: s.filters],
                                "beta": self.pw_bt[j][: s.filters], "pad": 0, "groups": 1})
                cin = s.filters
            if i in arch.pool_after:
                out.append({"pool": 2})
        out.append({"head": arch.head, "w": self.head_weight(cin), "b": self.fc_b})
        return out

    def forward(self, x: torch.Tensor, arch: Arch, stats: Sequence[tuple[torch.Tensor, torch.Tensor]] | None = None,
                collect: list | None = None) -> torch.Tensor:
        """Logits ``(B, n_classes)`` of ``arch``.

        ``stats``: per-BN ``(mean, var)`` (eval with those statistics); None: batch statistics.
        ``collect``: a list that receives each BN's batch ``(mean, biased var)``.
        """
        k = 0
        for op in self.ops(arch):
            if "pool" in op:
                x = F.max_pool2d(x, op["pool"], op["pool"])
            elif "head" in op:
                x = x.mean(dim=(2, 3)) if op["head"] == "gap" else x.flatten(1)
                return F.linear(x, op["w"], op["b"])
            else:
                x = F.conv2d(x, op["w"], None, 1, op["pad"], groups=op["groups"])
                x = member_bn(x, op, None if stats is None else stats[k], collect)
                k += 1
                x = F.relu(x)
        raise AssertionError("unreachable: ops() ends with the head")

    def weighted_ops(self, arch: Arch) -> list[dict]:
        return [op for op in self.ops(arch) if "pool" not in op]

    def sandwich(self, phase: str, rng: np.random.Generator, n_random: int) -> list[Arch]:
        return sandwich(self.space, phase, rng, n_random)

    def before_phase(self, phase: str) -> dict | None:
        if phase != "width":  # OFA sorts channels by importance before the width phase
            return None
        perms = self.sort_channels()
        return {"channels_moved_per_stage": [int((p != torch.arange(len(p), device=p.device)).sum()) for p in perms]}


def calibration_images(data: "NasData") -> np.ndarray:
    return data.x_train[:CALIB_SAMPLES]


def extract(supernet: SharedWeights, arch, x_calib: np.ndarray) -> AidiNet:
    """A standalone :class:`AidiNet` of ``arch`` (any supernet's member; ``module.net`` is its graph, a
    :class:`~aidi.models.layers.Network`) with the supernet's (copied) weights and BN statistics recalibrated
    on ``x_calib``; its outputs equal ``supernet(x, arch, supernet.calibrate(arch, x_calib))``.
    Raises ValueError for a member outside the supernet's space."""
    if not supernet.space.contains(arch):
        raise ValueError(f"architecture {arch.describe()} is not in search space {supernet.space.name}")
    stats = supernet.calibrate(arch, x_calib)
    module = AidiNet(parse_network(arch.to_layers(), arch.input_shape))
    weighted = [m for m in module.layers if isinstance(m, (nn.Conv2d, nn.Linear))]
    bns = [m for m in module.layers if isinstance(m, nn.BatchNorm2d)]
    ops = supernet.weighted_ops(arch)
    assert len(weighted) == len(ops) and len(bns) == len(ops) - 1
    with torch.no_grad():
        for op, m, bn, (mu, var) in zip(ops[:-1], weighted[:-1], bns, stats):
            m.weight.copy_(op["w"])
            bn.weight.copy_(op["gamma"])
            bn.bias.copy_(op["beta"])
            bn.running_mean.copy_(mu)
            bn.running_var.copy_(var)
        weighted[-1].weight.copy_(ops[-1]["w"])
        weighted[-1].bias.copy_(ops[-1]["b"])
    module.eval()
    return module


def supernet_accuracy(supernet: SharedWeights, arch, x: np.ndarray, y: np.ndarray, x_calib: np.ndarray,
                      batch: int = 1024) -> float:
    """Top-1 accuracy (fraction) of ``arch`` with inherited weights (BN recalibrated on ``x_calib``)."""
    supernet.eval()
    stats = supernet.calibrate(arch, x_calib)
    correct = 0
    with torch.no_grad(), _det(0):
        for k in range(0, len(x), batch):
            xb = torch.from_numpy(np.ascontiguousarray(x[k:k + batch], dtype=np.float32)).to(supernet.fc_w.device)
            correct += int((supernet(xb, arch, stats).argmax(1).cpu().numpy() == y[k:k + batch]).sum())
    return correct / max(1, len(x))


# --------------------------------------------------------------------------- training
def kd_loss(student: torch.Tensor, teacher: torch.Tensor | None, y: torch.Tensor, alpha: float,
            temperature: float) -> torch.Tensor:
    """``alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)`` (plain CE without a teacher)."""
    ce = F.cross_entropy(student, y)
    if teacher is None or alpha <= 0:
        return ce
    t = temperature
    kd = F.kl_div(F.log_softmax(student / t, 1), F.log_softmax(teacher / t, 1), reduction="batchmean",
                  log_target=True) * (t * t)
    return alpha * kd + (1.0 - alpha) * ce


def _phase_sampler(space: SearchSpace, phase: str) -> Callable[[np.random.Generator, str], Arch]:
    """Members a phase trains: ``which`` = "random" (uniform over the elastic dimensions opened so
    far), "max" or "min" (the largest / smallest of them; the block kind stays random)."""
    elastic = {"k": phase != "full", "depth": phase in ("depth", "width"), "filters": phase == "width"}

    def pick(opts, name, which, rng):
        if not elastic[name] or which == "max":
            return max(opts)
        return min(opts) if which == "min" else opts[int(rng.integers(len(opts)))]

    def sample(rng: np.random.Generator, which: str = "random") -> Arch:
        stages = []
        for st in space.stages:
            kind = st.kinds[int(rng.integers(len(st.kinds)))]
            stages.append(Stage(kind, pick(st.kernels, "k", which, rng), pick(st.filters, "filters", which, rng),
                                pick(st.depths, "depth", which, rng)))
        return space.make(stages)

    return sample


def decision_sampler(space, opened: Sequence[str], smaller_first: Sequence[str] = ()
                     ) -> Callable[[np.random.Generator, str], object]:
    """A phase sampler over any space's ``decisions()`` (``(name, options)``; a decision's *dimension* is its
    name's last dotted part, e.g. ``s1.b0.k`` -> ``k``): ``sample(rng, which)`` decodes one member whose
    decisions of an ``opened`` dimension are drawn uniformly (``which = "random"``) or set to the option of the
    smallest network (``"min"``) or the largest (``"max"``), and whose other decisions take the largest
    network's option.  The largest network's option is the last (options sorted ascending), the first for a
    dimension in ``smaller_first`` (e.g. a resolution *factor*).  One ``rng`` draw per decision of an opened
    dimension when ``which = "random"`` (slots a member lacks included), none otherwise: deterministic in ``rng``."""
    opened, smaller_first = set(opened), set(smaller_first)
    dims = [(name.rsplit(".", 1)[-1], len(opts)) for name, opts in space.decisions()]

    def sample(rng: np.random.Generator, which: str = "random"):
        codes = []
        for dim, n in dims:
            big, small = (0, n - 1) if dim in smaller_first else (n - 1, 0)
            if dim not in opened or which == "max":
                codes.append(big)
            elif which == "min":
                codes.append(small)
            else:
                codes.append(int(rng.integers(n)))
        return space.decode(codes)

    return sample


def sandwich(space: SearchSpace, phase: str, rng: np.random.Generator, n_random: int) -> list[Arch]:
    """The members one training step of ``phase`` trains, in order (the sandwich rule of BigNAS / OFA).

    ``full``: one member, every dimension at its largest, the block kind drawn per stage.  The shrinking
    phases: ``[largest, smallest, n_random random]`` over the dimensions opened so far (``kernel``: k;
    ``depth``: + depth; ``width``: + filters): the largest is ``space.largest("conv")`` (the KD source,
    trained with cross-entropy), the smallest takes the smallest opened choices (the rest at their
    largest; block kind drawn), the random ones draw every opened choice uniformly.  Deterministic in
    ``rng``.  Raises ValueError for an unknown phase.
    """
    if phase not in PHASES:
        raise ValueError(f"unknown training phase {phase!r} (one of {', '.join(PHASES)})")
    sample = _phase_sampler(space, phase)
    if phase == "full":
        return [sample(rng, "max")]
    return [space.largest("conv"), sample(rng, "min")] + [sample(rng, "random") for _ in range(n_random)]


def sandwich_step(sn: Supernet, xb: torch.Tensor, yb: torch.Tensor, archs: Sequence[Arch], alpha: float,
                  temperature: float) -> list[float]:
    """Accumulate the gradients of one sandwich step (no optimiser step, no ``zero_grad``).

    ``archs[0]`` is trained with cross-entropy; every later member with :func:`kd_loss` against
    ``archs[0]``'s logits on the same batch, detached (BigNAS's in-place distillation; plain CE when
    ``alpha`` is 0).  Returns each member's loss.
    """
    losses, t_logits = [], None
    for n, a in enumerate(archs):
        out = sn(xb, a)
        loss = kd_loss(out, t_logits, yb, alpha, temperature)
        if n == 0 and alpha > 0:
            t_logits = out.detach()
        loss.backward()
        losses.append(float(loss.item()))
    return losses


def _batches(n: int, batch: int, gen: torch.Generator):
    perm = torch.randperm(n, generator=gen)
    for k in range(0, n, batch):
        yield perm[k:k + batch]


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"cpu"``, ``"cuda"`` (ValueError when torch has no CUDA device) or ``"auto"`` (CUDA if present)."""
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this torch ({torch.__version__}) sees no CUDA device "
                         "(install a CUDA build of torch, or use --device cpu)")
    if name != "cpu" and not name.startswith("cuda"):
        raise ValueError(f"--device: expected auto, cpu or cuda, got {name!r}")
    return torch.device(name)


def _train_supernet(sn: SharedWeights, data: NasData, seed: int, cfg,
                    log: Callable[[str], None] | None,
                    progress: Callable[[int, int], None] | None = None,
                    device: torch.device = torch.device("cpu")) -> dict:
    x = torch.from_numpy(data.x_train).to(device)
    y = torch.from_numpy(data.y_train).to(device)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    history = {}
    per_epoch = (len(x) + cfg.batch - 1) // cfg.batch
    total_steps = sum(max(0, getattr(cfg, f"{ph}_epochs")) for ph in sn.PHASES) * per_epoch
    step = 0
    if progress:
        progress(0, total_steps)
    for phase in sn.PHASES:
        epochs = getattr(cfg, f"{phase}_epochs")
        if epochs <= 0:
            continue
        sorted_info = sn.before_phase(phase)
        lr = cfg.lr if phase == "full" else cfg.shrink_lr
        opt = torch.optim.Adam(sn.parameters(), lr=lr)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, epochs * per_epoch))
        sn.train()
        t0 = time.perf_counter()
        for _ in range(epochs):
            for idx in _batches(len(x), cfg.batch, gen):
                opt.zero_grad()
                sandwich_step(sn, x[idx], y[idx], sn.sandwich(phase, rng, cfg.random_subnets), cfg.alpha,
                              cfg.temperature)
                opt.step()
                sched.step()
                step += 1
                if progress:
                    progress(step, total_steps)
        sn.eval()
        acc_max = supernet_accuracy(sn, sn.space.largest("conv"), data.x_val, data.y_val, calibration_images(data))
        history[phase] = {"epochs": epochs, "seconds": time.perf_counter() - t0, "val_acc_largest": acc_max}
        history[phase].update(sorted_info or {})
        if log:
            log(f"supernet phase {phase}: {epochs} epochs, {history[phase]['seconds']:.1f} s, "
                f"largest subnet val acc {acc_max:.3f}")
    return history


def _supernet_path(space, data: NasData, seed: int, cfg, device: torch.device) -> Path:
    key = {"space": space.id, "data": data.fingerprint(), "seed": seed, "cfg": cfg.key(),
           "torch": torch.__version__.split("+")[0]}
    if device.type != "cpu":  # CUDA kernels round differently: their supernet is another file
        key["device"] = device.type
    blob = json.dumps(key, sort_keys=True)
    return cache_dir() / "nas" / f"supernet-{space.name}-{hashlib.sha256(blob.encode()).hexdigest()[:20]}.pt"


def train_supernet(space: SearchSpace, data: NasData, seed: int = 0, config: SupernetConfig | None = None,
                   use_cache: bool = True, log: Callable[[str], None] | None = None,
                   progress: Callable[[int, int], None] | None = None, device: str = "cpu") -> Supernet:
    """Train (or load from ``cache_dir()/nas``) the supernet of ``space`` on ``data``'s training split.

    ``progress(batches_done, batches_total)`` is called as training goes (not when loaded).
    ``device``: see :func:`resolve_device`; training runs there, the returned supernet is on the CPU
    (bit-for-bit deterministic on the CPU only).

    ``supernet.meta`` holds the phase history, ``train_seconds`` (0 when loaded) and the cache path.
    """
    return train_shared(Supernet, space, data, seed, config or SupernetConfig(), use_cache, log, progress, device)


def train_shared(net_class: type, space, data: NasData, seed: int, cfg, use_cache: bool = True,
                 log: Callable[[str], None] | None = None, progress: Callable[[int, int], None] | None = None,
                 device: str = "cpu"):
    """:func:`train_supernet` for any :class:`SharedWeights` class ``net_class(space)`` and its config ``cfg``
    (``<phase>_epochs`` per ``net_class.PHASES``, ``batch``, ``lr``, ``shrink_lr``, ``random_subnets``, ``alpha``,
    ``temperature``, ``key()``); cached under ``cache_dir()/nas`` by space, data, seed, config and torch version.
    Raises ValueError when the data's input shape is not the space's."""
    if tuple(data.input_shape) != tuple(space.input_shape):
        raise ValueError(f"search space {space.name} expects input {list(space.input_shape)}, "
                         f"data set {data.name} has {list(data.input_shape)}")
    dev = resolve_device(device)
    path = _supernet_path(space, data, seed, cfg, dev)
    with _det(seed):
        sn = net_class(space)
    if use_cache and path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            sn.load_state_dict(blob["state_dict"])
            sn.eval()
            sn.meta = {**json.loads(blob["meta"]), "train_seconds": 0.0, "cache_path": str(path), "cached": True}
            return sn
        except Exception:  # stale or corrupt: retrain
            with _det(seed):
                sn = net_class(space)
    t0 = time.perf_counter()
    with _det(seed):
        history = _train_supernet(sn.to(dev), data, seed, cfg, log, progress, dev)
    sn.to("cpu")
    dt = time.perf_counter() - t0
    meta = {"history": history, "train_seconds_when_built": dt, "seed": seed, "config": asdict(cfg)}
    if use_cache:
        _atomic_save({"state_dict": sn.state_dict(), "meta": json.dumps(meta)}, path)
    sn.meta = {**meta, "train_seconds": dt, "cache_path": str(path) if use_cache else None, "cached": False}
    return sn


def teacher_of(supernet: SharedWeights, x_calib: np.ndarray) -> tuple[AidiNet, Arch]:
    """The teacher used for KD: the supernet's largest (all-conv) member as a standalone module."""
    arch = supernet.space.largest("conv")
    return extract(supernet, arch, x_calib), arch


def _fit(module: nn.Module, data: NasData, seed: int, epochs: int, lr: float, batch: int,
         teacher: nn.Module | None, alpha: float, temperature: float, device: str = "cpu") -> None:
    dev = resolve_device(device)
    x = torch.from_numpy(data.x_train).to(dev)
    y = torch.from_numpy(data.y_train).to(dev)
    module.to(dev)
    if teacher is not None:
        teacher.to(dev)
    with _det(seed):
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(module.parameters(), lr=lr)
        steps = epochs * ((len(x) + batch - 1) // batch)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        if teacher is not None:
            teacher.eval()
        for _ in range(epochs):
            module.train()
            for idx in _batches(len(x), batch, gen):
                t_logits = None
                if teacher is not None and alpha > 0:
                    with torch.no_grad():
                        t_logits = teacher(x[idx]).flatten(1)
                opt.zero_grad()
                kd_loss(module(x[idx]).flatten(1), t_logits, y[idx], alpha, temperature).backward()
                opt.step()
                sched.step()
        module.eval()
    module.to("cpu")
    if teacher is not None:
        teacher.to("cpu")


def finetune(module: AidiNet, data: NasData, seed: int = 0, teacher: nn.Module | None = None,
             epochs: int = 10, alpha: float = 0.5, temperature: float = 4.0, lr: float = 2e-3,
             batch: int = 64, device: str = "cpu") -> AidiNet:
    """Fine-tune a copy of ``module`` (inherited weights) with KD from ``teacher`` (None or alpha 0: CE only);
    on ``device`` (:func:`resolve_device`), returned on the CPU."""
    m = copy.deepcopy(module)
    _fit(m, data, seed, epochs, lr, batch, teacher, alpha, temperature, device)
    return m


def train_from_scratch(arch: Arch, data: NasData, seed: int = 0, epochs: int = 3, lr: float = 3e-3,
                       batch: int = 64, device: str = "cpu") -> AidiNet:
    """iNAS-style child training: fresh weights, cross-entropy only, a few epochs (returned on the CPU)."""
    with _det(seed):
        module = AidiNet(parse_network(arch.to_layers(), arch.input_shape))
    _fit(module, data, seed, epochs, lr, batch, None, 0.0, 1.0, device)
    return module


def module_accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    return accuracy(module, x, y)


# --------------------------------------------------------------------------- KD ablation
#: seed of the ablation's fixed sample of members (the same members for every training seed)
ABLATION_ARCH_SEED = 7919


def _mean_std(v) -> dict:
    v = np.asarray(v, dtype=float)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0}


def kd_ablation(space: SearchSpace, data: NasData, seeds: Sequence[int] = (0,), config: SupernetConfig | None = None,
                n_archs: int = 8, finetune_epochs: int | None = None, log: Callable[[str], None] | None = None,
                device: str = "cpu", progress: Callable[[int, int], None] | None = None) -> dict:
    """What KD adds: per seed, a supernet trained with ``config.alpha`` ("kd") and one with ``alpha = 0``
    ("no_kd"), read on one fixed sample of ``n_archs`` members (drawn with :data:`ABLATION_ARCH_SEED`).

    Per seed, arm and member: the test accuracy (fraction) with inherited weights (BN recalibrated), and
    after ``finetune_epochs`` (default ``config.ft_epochs``) of fine-tuning: KD from that supernet's
    teacher in the "kd" arm, cross-entropy in the "no_kd" arm.  Returns ``rows`` (one dict per seed, arm,
    member), per arm the mean and sample std over seeds of the member-averaged accuracies, and the paired
    gains ``kd - no_kd`` (mean, std over seeds).  ``progress(done, total)`` counts supernets trained and
    members fine-tuned.  Raises ValueError when ``config.alpha`` is 0 (nothing to compare) or no seed.
    """
    cfg = config or SupernetConfig()
    if cfg.alpha <= 0:
        raise ValueError("alpha: the KD arm needs alpha > 0")
    if not seeds or n_archs < 1:
        raise ValueError("the ablation needs at least one seed and one member")
    rng = np.random.default_rng(ABLATION_ARCH_SEED)
    archs = [space.sample(rng) for _ in range(n_archs)]
    ft_epochs = cfg.ft_epochs if finetune_epochs is None else finetune_epochs
    arms = (("kd", cfg), ("no_kd", replace(cfg, alpha=0.0)))
    total, done = len(seeds) * len(arms) * (1 + n_archs), 0
    rows: list[dict] = []
    seconds = {label: 0.0 for label, _ in arms}
    for seed in seeds:
        for label, c in arms:
            t0 = time.perf_counter()
            sn = train_supernet(space, data, seed, c, log=log, device=device)
            seconds[label] += sn.meta["train_seconds"]
            done += 1
            if progress:
                progress(done, total)
            xc = calibration_images(data)
            teacher = teacher_of(sn, xc)[0] if c.alpha > 0 else None
            for a in archs:
                inherited = supernet_accuracy(sn, a, data.x_test, data.y_test, xc)
                tuned = finetune(extract(sn, a, xc), data, seed, teacher, ft_epochs, c.alpha, c.temperature, c.ft_lr,
                                 device=device)
                rows.append({"seed": int(seed), "arm": label, "arch_id": a.id, "arch": a.describe(),
                             "inherited_test_acc": inherited,
                             "finetuned_test_acc": module_accuracy(tuned, data.x_test, data.y_test)})
                done += 1
                if progress:
                    progress(done, total)
            if log:
                log(f"kd ablation: seed {seed}, {label}: {time.perf_counter() - t0:.1f} s")

    def per_seed(label: str, key: str) -> list[float]:
        return [float(np.mean([r[key] for r in rows if r["seed"] == s and r["arm"] == label])) for s in seeds]

    out = {"alpha": cfg.alpha, "temperature": cfg.temperature, "seeds": [int(s) for s in seeds],
           "finetune_epochs": ft_epochs, "config": asdict(cfg), "device": str(resolve_device(device)),
           "archs": [{"id": a.id, "arch": a.describe(), "macs": a.macs()} for a in archs], "rows": rows}
    for key, short in (("inherited_test_acc", "inherited"), ("finetuned_test_acc", "finetuned")):
        kd, no = per_seed("kd", key), per_seed("no_kd", key)
        out.setdefault("kd", {})[short] = _mean_std(kd)
        out.setdefault("no_kd", {})[short] = _mean_std(no)
        out[f"kd_gain_{short}"] = _mean_std(np.subtract(kd, no))
    for label, _ in arms:
        out[label]["supernet_train_seconds"] = seconds[label]
    return out
