"""The NAS search space: a small CNN family, per-stage choices, frozen architectures.

A network is a stack of *stages*; each stage picks, independently:

* ``kind``: ``"conv"`` (a standard k x k convolution) or ``"sep"``
  (depthwise-separable: a k x k ``dwconv`` then a 1x1 ``pwconv``),
* ``k``: the kernel size,
* ``filters``: output channels of every block of the stage,
* ``depth``: how many blocks the stage repeats.

Every conv / dwconv / pwconv is followed by batch norm and ReLU (BN is folded
into the layer before Q15 export, so the device runs conv + bias + ReLU).  A 2x2 max-pool follows the stages listed in
``pool_after``; the head is global average pooling and a fully connected layer
with ``n_classes`` units (as iNAS's CIFAR-10 space), or (``head="flatten"``,
same padding only) a fully connected layer over the flattened feature map.  Padding is ``"same"`` or
``"valid"`` for the whole space.

Spaces (:func:`space_for`):

``digits``  1x8x8, 2 stages, same padding, max-pool after stage 0;
            k in {1, 3, 5}, filters {4, 8, 12, 16} then {8, 16, 24, 32},
            depth {1, 2}, kind {conv, sep}; FC over the flattened 4x4 map
            (global pooling loses too much of an 8x8 digit).
``inas``    iNAS's CIFAR-10 space: 3x32x32, 5 single-conv stages, valid
            padding, stride 1, K in {1, 3, 5, 7}, filters in {4, 8, 16, 24}.
``tinyimagenet``  the iNAS space on 3x64x64 with 200 classes and a max-pool
            after stage 0.
``fashion-mnist`` / ``mnist``  the iNAS space on 1x28x28 with K in {1, 3, 5}:
            five valid 7x7 convolutions would need 31x31 inputs, so K = 7 goes
            (the largest member ends on an 8x8 map).

``--space mbconv`` (:func:`search_space`) replaces these chains with an MCUNet /
Once-for-All space of inverted-residual stages (:mod:`aidi.models.nas.mbconv`);
:func:`arch_from_dict` reads a member of either back from its dict.

Operations follow the Archai style: ``sample(rng)``, ``mutate(arch, rng)`` and
``crossover(a, b, rng)`` take an explicit ``numpy.random.Generator`` and never
rejection-sample: the space's constructor checks that its largest member fits
the input, so every combination of choices is a valid network.  An
:class:`Arch` is frozen; its :attr:`Arch.id` is a stable hash used as a cache
key, and :meth:`Arch.to_layers` gives the scenario ``[model] layers`` list.
The RL controller sees the space as a fixed sequence of categorical decisions
(:meth:`SearchSpace.decisions`, :meth:`SearchSpace.encode`, :meth:`SearchSpace.decode`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..layers import parse_network
from .codes import change_codes, cross_codes

KINDS = ("conv", "sep")
BN = {"type": "bn", "eps": 1e-5}
FIELDS = ("kind", "k", "filters", "depth")


@dataclass(frozen=True, order=True)
class Stage:
    """One stage's choices: block kind, kernel size, output channels, number of blocks."""

    kind: str
    k: int
    filters: int
    depth: int

    def to_dict(self) -> dict:
        return {"kind": self.kind, "k": self.k, "filters": self.filters, "depth": self.depth}


@dataclass(frozen=True)
class Arch:
    """A frozen architecture: input shape, stage choices and the fixed skeleton of its space.

    ``id`` is a stable 16-hex-digit hash of everything that defines the network.
    """

    input_shape: tuple[int, int, int]
    stages: tuple[Stage, ...]
    pool_after: tuple[int, ...] = ()
    padding: str = "same"
    n_classes: int = 10
    head: str = "gap"

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"input": list(self.input_shape), "stages": [s.to_dict() for s in self.stages],
                "pool_after": list(self.pool_after), "padding": self.padding, "n_classes": self.n_classes,
                "head": self.head}

    @classmethod
    def from_dict(cls, d: dict) -> "Arch":
        return cls(tuple(int(v) for v in d["input"]), tuple(Stage(**s) for s in d["stages"]),
                   tuple(int(v) for v in d.get("pool_after", ())), str(d.get("padding", "same")),
                   int(d.get("n_classes", 10)), str(d.get("head", "gap")))

    def blocks(self) -> list[tuple[int, int, Stage]]:
        """``(stage index, block index, stage)`` for every block, in order."""
        return [(i, b, s) for i, s in enumerate(self.stages) for b in range(s.depth)]

    def to_layers(self) -> list[dict]:
        """The scenario ``[model] layers`` list (dicts with every key explicit)."""
        pad = self.padding
        out: list[dict] = []
        for i, s in enumerate(self.stages):
            p = s.k // 2 if pad == "same" else 0
            for _ in range(s.depth):
                if s.kind == "conv":
                    out.append({"type": "conv", "k": s.k, "filters": s.filters, "stride": 1, "padding": p,
                                "relu": True, "bias": False})
                    out.append(dict(BN))
                else:
                    out.append({"type": "dwconv", "k": s.k, "stride": 1, "padding": p, "relu": True, "bias": False})
                    out.append(dict(BN))
                    out.append({"type": "pwconv", "filters": s.filters, "stride": 1, "relu": True, "bias": False})
                    out.append(dict(BN))
            if i in self.pool_after:
                out.append({"type": "maxpool", "k": 2, "stride": 2, "relu": False})
        if self.head == "gap":
            out.append({"type": "gap", "relu": False})
        out.append({"type": "fc", "units": self.n_classes, "relu": False, "bias": True})
        return out

    def describe(self) -> str:
        """Short human form, e.g. ``conv3x8*2 | sep5x16``."""
        return " | ".join(f"{s.kind}{s.k}x{s.filters}" + (f"*{s.depth}" if s.depth > 1 else "") for s in self.stages)

    def macs(self) -> int:
        from ..layers import geometry

        return sum(g.macs for g in geometry(parse_network(self.to_layers(), self.input_shape)))


@dataclass(frozen=True)
class StageSpace:
    """Choices of one stage (each a non-empty sorted tuple)."""

    kinds: tuple[str, ...] = KINDS
    kernels: tuple[int, ...] = (1, 3, 5)
    filters: tuple[int, ...] = (4, 8, 12, 16)
    depths: tuple[int, ...] = (1, 2)

    def options(self, name: str) -> tuple:
        return {"kind": self.kinds, "k": self.kernels, "filters": self.filters, "depth": self.depths}[name]


@dataclass(frozen=True)
class SearchSpace:
    """Per-stage choices over a fixed skeleton (input, pools, padding, head).

    Raises ValueError at construction if some member would not fit the input
    (so sampling never needs rejection).
    """

    name: str
    input_shape: tuple[int, int, int]
    stages: tuple[StageSpace, ...]
    pool_after: tuple[int, ...] = ()
    padding: str = "same"
    n_classes: int = 10
    head: str = "gap"
    _decisions: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        if self.padding not in ("same", "valid"):
            raise ValueError(f"search space {self.name}: padding must be 'same' or 'valid', got {self.padding!r}")
        if self.head not in ("gap", "flatten"):
            raise ValueError(f"search space {self.name}: head must be 'gap' or 'flatten', got {self.head!r}")
        if self.head == "flatten" and self.padding != "same":
            raise ValueError(f"search space {self.name}: a flatten head needs 'same' padding (fixed feature map)")
        if not self.stages:
            raise ValueError(f"search space {self.name}: at least one stage is required")
        for i, st in enumerate(self.stages):
            for f in FIELDS:
                opts = st.options(f)
                if not opts:
                    raise ValueError(f"search space {self.name}: stage {i} has no {f} choices")
            if not set(st.kinds) <= set(KINDS):
                raise ValueError(f"search space {self.name}: stage {i}: kinds must be among {KINDS}")
            if self.padding == "same" and any(k % 2 == 0 for k in st.kernels):
                raise ValueError(f"search space {self.name}: stage {i}: 'same' padding needs odd kernels")
            if min(st.kernels) < 1 or min(st.filters) < 1 or min(st.depths) < 1:
                raise ValueError(f"search space {self.name}: stage {i}: choices must be positive")
        object.__setattr__(self, "_decisions", tuple((f"s{i}.{f}", tuple(st.options(f)))
                                                     for i, st in enumerate(self.stages) for f in FIELDS))
        # the member with the largest kernels and depths shrinks the feature map most: it must fit
        parse_network(self.largest().to_layers(), self.input_shape)

    # ------------------------------------------------------------------ members
    def make(self, stages: Sequence[Stage]) -> Arch:
        return Arch(tuple(self.input_shape), tuple(stages), tuple(self.pool_after), self.padding, self.n_classes,
                    self.head)

    def largest(self, kind: str | None = None) -> Arch:
        """Largest kernels, widths and depths (``kind`` given: that kind wherever the stage allows it)."""
        return self.make([Stage(kind if kind in st.kinds else st.kinds[0], max(st.kernels), max(st.filters),
                                max(st.depths)) for st in self.stages])

    def smallest(self) -> Arch:
        return self.make([Stage(st.kinds[-1], min(st.kernels), min(st.filters), min(st.depths))
                          for st in self.stages])

    def contains(self, arch: Arch) -> bool:
        if (tuple(arch.input_shape) != tuple(self.input_shape) or tuple(arch.pool_after) != tuple(self.pool_after)
                or arch.padding != self.padding or arch.n_classes != self.n_classes or arch.head != self.head
                or len(arch.stages) != len(self.stages)):
            return False
        return all(s.kind in st.kinds and s.k in st.kernels and s.filters in st.filters and s.depth in st.depths
                   for s, st in zip(arch.stages, self.stages))

    def size(self) -> int:
        n = 1
        for _, opts in self._decisions:
            n *= len(opts)
        return n

    @property
    def id(self) -> str:
        blob = {"name": self.name, "input": list(self.input_shape), "pool_after": list(self.pool_after),
                "padding": self.padding, "n_classes": self.n_classes, "head": self.head,
                "stages": [{f: list(st.options(f)) for f in FIELDS} for st in self.stages]}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ operations
    def sample(self, rng: np.random.Generator) -> Arch:
        """Uniform over every choice of every stage."""
        return self.decode([int(rng.integers(len(opts))) for _, opts in self._decisions])

    def mutate(self, arch: Arch, rng: np.random.Generator, n_changes: int = 1) -> Arch:
        """Change ``n_changes`` decisions (each to a different option); decisions with one option are skipped."""
        codes = self.encode(arch)
        movable = [i for i, (_, opts) in enumerate(self._decisions) if len(opts) > 1]
        return self.decode(change_codes(codes, movable, self._decisions, rng, n_changes)) if movable else arch

    def crossover(self, a: Arch, b: Arch, rng: np.random.Generator) -> Arch:
        """Uniform crossover: each decision from ``a`` or ``b`` with probability 1/2."""
        return self.decode(cross_codes(self.encode(a), self.encode(b), rng))

    # ------------------------------------------------------------------ sequence view (RL controller)
    def decisions(self) -> tuple[tuple[str, tuple], ...]:
        """``(name, options)`` for each categorical decision, in controller order."""
        return self._decisions

    def encode(self, arch: Arch) -> list[int]:
        if not self.contains(arch):
            raise ValueError(f"architecture {arch.describe()} is not in search space {self.name}")
        out = []
        for s, st in zip(arch.stages, self.stages):
            out += [st.kinds.index(s.kind), st.kernels.index(s.k), st.filters.index(s.filters),
                    st.depths.index(s.depth)]
        return out

    def decode(self, codes: Sequence[int]) -> Arch:
        if len(codes) != len(self._decisions):
            raise ValueError(f"expected {len(self._decisions)} decisions, got {len(codes)}")
        stages = []
        for i, st in enumerate(self.stages):
            c = codes[4 * i:4 * i + 4]
            stages.append(Stage(st.kinds[c[0]], st.kernels[c[1]], st.filters[c[2]], st.depths[c[3]]))
        return self.make(stages)

    def with_input(self, input_shape: Sequence[int], n_classes: int | None = None) -> "SearchSpace":
        return replace(self, input_shape=tuple(int(v) for v in input_shape),
                       n_classes=self.n_classes if n_classes is None else int(n_classes))


def digits_space() -> SearchSpace:
    return SearchSpace("digits", (1, 8, 8), (
        StageSpace(KINDS, (1, 3, 5), (4, 8, 12, 16), (1, 2)),
        StageSpace(KINDS, (1, 3, 5), (8, 16, 24, 32), (1, 2)),
    ), pool_after=(0,), padding="same", n_classes=10, head="flatten")


def inas_space(input_shape=(3, 32, 32), n_classes: int = 10, pool_after=(), kernels=(1, 3, 5, 7)) -> SearchSpace:
    """iNAS's CIFAR-10 space: 5 conv layers, valid padding, K in {1,3,5,7}, filters in {4,8,16,24}, GAP + FC."""
    st = StageSpace(("conv",), tuple(kernels), (4, 8, 16, 24), (1,))
    return SearchSpace("inas", tuple(int(v) for v in input_shape), (st,) * 5, pool_after=tuple(pool_after),
                       padding="valid", n_classes=n_classes)


SPACES = ("digits", "inas", "tinyimagenet", "fashion-mnist", "mnist")
#: ``--space``: ``inas`` = the data set's chain space (:func:`space_for`), ``mbconv`` = inverted-residual
#: stages (:func:`aidi.models.nas.mbconv.mbconv_space`)
SPACE_KINDS = ("inas", "mbconv")


def space_for(dataset: str, input_shape=None, n_classes: int | None = None) -> SearchSpace:
    """The default space of a data set (``digits``, ``cifar10`` -> ``inas``, ``tinyimagenet``), or a space by name."""
    if dataset == "digits":
        sp = digits_space()
    elif dataset in ("cifar10", "inas"):
        sp = inas_space()
    elif dataset == "tinyimagenet":
        sp = inas_space((3, 64, 64), 200, pool_after=(0,))
        sp = replace(sp, name="tinyimagenet")
    elif dataset in ("fashion-mnist", "mnist"):
        sp = replace(inas_space((1, 28, 28), 10, kernels=(1, 3, 5)), name=dataset)
    else:
        raise ValueError(f"unknown search space / dataset {dataset!r} "
                         "(one of digits, cifar10, tinyimagenet, fashion-mnist, mnist)")
    if input_shape is not None or n_classes is not None:
        sp = sp.with_input(input_shape or sp.input_shape, n_classes)
    return sp


def search_space(kind: str, dataset: str, input_shape=None, n_classes: int | None = None):
    """The search space of ``--space kind`` for a data set: ``"inas"`` gives :func:`space_for` (the data set's
    chain space), ``"mbconv"`` :func:`aidi.models.nas.mbconv.mbconv_space` of the data set's input shape.
    Raises ValueError for an unknown kind or data set."""
    if kind not in SPACE_KINDS:
        raise ValueError(f"unknown search space kind {kind!r} (one of {', '.join(SPACE_KINDS)})")
    chain = space_for(dataset, input_shape, n_classes)
    if kind == "inas":
        return chain
    from .mbconv import mbconv_space

    return mbconv_space(chain.input_shape, chain.n_classes)


def arch_from_dict(d: dict):
    """The architecture a ``to_dict()`` describes: an :class:`~aidi.models.nas.mbconv.MbArch` when the dict
    says ``space = "mbconv"``, else an :class:`Arch`."""
    if d.get("space") == "mbconv":
        from .mbconv import MbArch

        return MbArch.from_dict(d)
    return Arch.from_dict(d)
