"""An MCUNet / Once-for-All search space: stages of inverted-residual (MBConv) blocks.

A member (:class:`MbArch`) is, in order:

* an optional input *resolution* step: a ``f x f`` average pool of stride ``f``
  on the native image (``f = 1``: none), so the data set, the sample input and
  the firmware's input stay the same and the network sees a ``H/f x W/f`` image
  (MCUNet's elastic resolution, realised on the device);
* a stem: a ``stem_k x stem_k`` conv, ``stem`` filters, stride ``stem_stride``,
  "same" padding, batch norm and ReLU6;
* stages of inverted-residual blocks (Sandler et al., CVPR 2018; OFA's
  ``MBConvLayer``).  Block ``b`` of stage ``i`` with input channels ``c``, kernel
  ``k``, expand ratio ``e`` and the stage's width ``w``:

  - 1x1 expand: ``pwconv`` to ``c * e`` channels, BN, ReLU6 (left out when
    ``e = 1``, as OFA does);
  - ``k x k`` depthwise: ``dwconv``, stride = the stage's stride for its first
    block and 1 after, padding ``k // 2`` on every side ("same" at stride 1,
    ``ceil(H / 2)`` outputs at stride 2), BN, ReLU6;
  - 1x1 project: ``pwconv`` to ``w`` channels, BN, no activation;
  - a residual ``add`` of the block's input when the stride is 1 and
    ``c == w`` (the shapes match);

* a head: global average pooling and a fully connected layer with
  ``n_classes`` units.

Every conv is bias-free and followed by BN (folded into it before Q15, so the
device runs conv + bias + ReLU6).  The elastic choices (OFA / MCUNet) are per
block: kernel in :data:`KERNELS` (3, 5, 7) and expand ratio in
:data:`EXPANDS` (1, 3, 4, 6); per stage: depth and width; per network: the
resolution factor.  The skeleton (stem, stage strides, choices) is the
:class:`MbSpace`; :func:`mbconv_space` gives the default one of a data set's
input shape.

The space offers the interfaces of :class:`aidi.models.nas.space.SearchSpace`
(``sample``, ``mutate``, ``crossover`` with an explicit
``numpy.random.Generator``, never rejection sampling; ``decisions`` /
``encode`` / ``decode`` for the RL controller; ``largest``, ``smallest``,
``contains``, ``size``, ``id``), so the controllers run on it unchanged.
Every combination of choices is a valid network ("same" padding keeps every
map at least 1 x 1), and the constructor parses the extremes to prove it.

The decision sequence: ``res``, then per stage ``s<i>.depth``, ``s<i>.width``
and, per block slot ``b`` up to the largest depth, ``s<i>.b<b>.k``,
``s<i>.b<b>.expand``.  Slots beyond a member's depth do not exist in it:
:meth:`MbSpace.encode` writes 0 there, :meth:`MbSpace.decode` ignores them, and
:meth:`MbSpace.mutate` only changes decisions the member has (a deeper stage
draws its new blocks from the generator), so a mutation always changes the
member.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np

from ..layers import parse_network
from .codes import change_codes, cross_codes

#: depthwise kernel sizes of OFA's MobileNetV3 space and MCUNet (Cai et al., ICLR 2020; Lin et al., NeurIPS 2020)
KERNELS = (3, 5, 7)
#: expand ratios: OFA's {3, 4, 6} plus MCUNet's 1 (no expansion conv)
EXPANDS = (1, 3, 4, 6)
BN = {"type": "bn", "eps": 1e-5}
SPACE_TAG = "mbconv"


@dataclass(frozen=True, order=True)
class Block:
    """One inverted-residual block's choices: depthwise kernel size and expand ratio."""

    k: int
    expand: int


@dataclass(frozen=True)
class MbStage:
    """One stage of a member: its width (output channels of every block), stride and blocks (depth = len)."""

    width: int
    stride: int
    blocks: tuple[Block, ...]

    @property
    def depth(self) -> int:
        return len(self.blocks)


@dataclass(frozen=True)
class MbArch:
    """A frozen MBConv member.  ``id`` is a stable 16-hex-digit hash of everything that defines the network;
    ``input_shape`` is the native image's ``(C, H, W)`` (``resolution`` = the pooling factor applied to it)."""

    input_shape: tuple[int, int, int]
    stem: int
    stages: tuple[MbStage, ...]
    resolution: int = 1
    stem_k: int = 3
    stem_stride: int = 1
    n_classes: int = 10

    @property
    def id(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_dict(self) -> dict:
        return {"space": SPACE_TAG, "input": list(self.input_shape), "resolution": self.resolution,
                "stem": self.stem, "stem_k": self.stem_k, "stem_stride": self.stem_stride,
                "stages": [{"width": s.width, "stride": s.stride, "blocks": [[b.k, b.expand] for b in s.blocks]}
                           for s in self.stages], "n_classes": self.n_classes}

    @classmethod
    def from_dict(cls, d: dict) -> "MbArch":
        return cls(tuple(int(v) for v in d["input"]), int(d["stem"]),
                   tuple(MbStage(int(s["width"]), int(s["stride"]), tuple(Block(int(k), int(e)) for k, e in s["blocks"]))
                         for s in d["stages"]),
                   int(d.get("resolution", 1)), int(d.get("stem_k", 3)), int(d.get("stem_stride", 1)),
                   int(d.get("n_classes", 10)))

    def to_layers(self) -> list[dict]:
        """The scenario ``[model] layers`` list in the graph form (named residual adds)."""
        out: list[dict] = []
        if self.resolution > 1:
            out.append({"type": "avgpool", "k": self.resolution, "stride": self.resolution, "relu": False})
        out.append({"type": "conv", "k": self.stem_k, "filters": self.stem, "stride": self.stem_stride,
                    "padding": self.stem_k // 2, "relu6": True, "bias": False})
        out.append({**BN, "name": "stem"})
        prev, c = "stem", self.stem
        for i, s in enumerate(self.stages):
            for b, blk in enumerate(s.blocks):
                stride = s.stride if b == 0 else 1
                name = f"s{i}b{b}"
                residual = stride == 1 and c == s.width
                if blk.expand > 1:
                    out.append({"type": "pwconv", "filters": c * blk.expand, "stride": 1, "relu6": True, "bias": False})
                    out.append(dict(BN))
                out.append({"type": "dwconv", "k": blk.k, "stride": stride, "padding": blk.k // 2, "relu6": True,
                            "bias": False})
                out.append(dict(BN))
                out.append({"type": "pwconv", "filters": s.width, "stride": 1, "relu": False, "bias": False})
                out.append({**BN, "name": f"{name}p" if residual else name})
                if residual:
                    out.append({"type": "add", "inputs": [prev, f"{name}p"], "relu": False, "name": name})
                prev, c = name, s.width
        out.append({"type": "gap", "relu": False})
        out.append({"type": "fc", "units": self.n_classes, "relu": False, "bias": True})
        return out

    def describe(self) -> str:
        """Short human form, e.g. ``stem8 | w16 k3e1,k5e6 | w24/2 k7e4`` (``/2``: the stage's stride;
        ``in/2``: the resolution factor)."""
        parts = ([f"in/{self.resolution}"] if self.resolution > 1 else []) + [f"stem{self.stem}"]
        for s in self.stages:
            parts.append(f"w{s.width}" + (f"/{s.stride}" if s.stride > 1 else "") + " "
                         + ",".join(f"k{b.k}e{b.expand}" for b in s.blocks))
        return " | ".join(parts)

    def residual_blocks(self) -> int:
        """How many blocks carry a residual add."""
        return sum(d["type"] == "add" for d in self.to_layers())

    def macs(self) -> int:
        from ..layers import geometry

        return sum(g.macs for g in geometry(parse_network(self.to_layers(), self.input_shape)))


@dataclass(frozen=True)
class MbStageSpace:
    """One stage's skeleton (stride) and choices (each a non-empty sorted tuple)."""

    stride: int
    widths: tuple[int, ...]
    depths: tuple[int, ...] = (1, 2)
    kernels: tuple[int, ...] = KERNELS
    expands: tuple[int, ...] = EXPANDS


@dataclass(frozen=True)
class MbSpace:
    """Inverted-residual stages over a fixed skeleton (input, stem, strides, head).

    Raises ValueError at construction for empty, non-positive or unsorted choices, an even kernel,
    a stride other than 1 or 2, or a resolution factor larger than the input.
    """

    name: str
    input_shape: tuple[int, int, int]
    stages: tuple[MbStageSpace, ...]
    stem: int = 8
    stem_k: int = 3
    stem_stride: int = 1
    resolutions: tuple[int, ...] = (1,)
    n_classes: int = 10
    _decisions: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self):
        def bad(msg: str) -> ValueError:
            return ValueError(f"search space {self.name}: {msg}")

        if not self.stages:
            raise bad("at least one stage is required")
        if self.stem < 1 or self.stem_k < 1 or self.stem_k % 2 == 0 or self.stem_stride not in (1, 2):
            raise bad("the stem needs positive filters, an odd kernel and stride 1 or 2")
        if not self.resolutions or min(self.resolutions) < 1 \
                or max(self.resolutions) > min(self.input_shape[1:]):
            raise bad(f"resolution factors must be between 1 and the input's {min(self.input_shape[1:])}")
        for i, st in enumerate(self.stages):
            for what, opts in (("width", st.widths), ("depth", st.depths), ("kernel", st.kernels),
                               ("expand", st.expands)):
                if not opts or min(opts) < 1 or tuple(sorted(set(opts))) != tuple(opts):
                    raise bad(f"stage {i}: {what} choices must be positive, distinct and sorted, got {list(opts)}")
            if any(k % 2 == 0 for k in st.kernels):
                raise bad(f"stage {i}: kernels must be odd ('same' padding), got {list(st.kernels)}")
            if st.stride not in (1, 2):
                raise bad(f"stage {i}: stride must be 1 or 2, got {st.stride}")
        dec: list[tuple[str, tuple]] = [("res", tuple(self.resolutions))]
        for i, st in enumerate(self.stages):
            dec += [(f"s{i}.depth", tuple(st.depths)), (f"s{i}.width", tuple(st.widths))]
            for b in range(max(st.depths)):
                dec += [(f"s{i}.b{b}.k", tuple(st.kernels)), (f"s{i}.b{b}.expand", tuple(st.expands))]
        object.__setattr__(self, "_decisions", tuple(dec))
        for a in (self.largest(), self.smallest()):  # the extremes parse: so does every member
            parse_network(a.to_layers(), self.input_shape)

    # ------------------------------------------------------------------ members
    def make(self, stages: Sequence[MbStage], resolution: int = 1) -> MbArch:
        return MbArch(tuple(self.input_shape), self.stem, tuple(stages), int(resolution), self.stem_k,
                      self.stem_stride, self.n_classes)

    def largest(self, kind: str | None = None) -> MbArch:
        """Every choice at its largest and the native resolution (``kind`` is accepted for the chain space's
        signature: this space has one block kind)."""
        return self.make([MbStage(max(st.widths), st.stride, (Block(max(st.kernels), max(st.expands)),)
                                  * max(st.depths)) for st in self.stages], min(self.resolutions))

    def smallest(self) -> MbArch:
        """Every choice at its smallest and the coarsest resolution."""
        return self.make([MbStage(min(st.widths), st.stride, (Block(min(st.kernels), min(st.expands)),)
                                  * min(st.depths)) for st in self.stages], max(self.resolutions))

    def contains(self, arch) -> bool:
        if not isinstance(arch, MbArch) or tuple(arch.input_shape) != tuple(self.input_shape) \
                or (arch.stem, arch.stem_k, arch.stem_stride, arch.n_classes) \
                != (self.stem, self.stem_k, self.stem_stride, self.n_classes) \
                or arch.resolution not in self.resolutions or len(arch.stages) != len(self.stages):
            return False
        return all(s.stride == st.stride and s.width in st.widths and s.depth in st.depths
                   and all(b.k in st.kernels and b.expand in st.expands for b in s.blocks)
                   for s, st in zip(arch.stages, self.stages))

    def size(self) -> int:
        """Number of distinct members (blocks beyond a stage's depth do not exist)."""
        n = len(self.resolutions)
        for st in self.stages:
            per_block = len(st.kernels) * len(st.expands)
            n *= len(st.widths) * sum(per_block ** d for d in st.depths)
        return n

    @property
    def id(self) -> str:
        blob = {"name": self.name, "input": list(self.input_shape), "stem": [self.stem, self.stem_k, self.stem_stride],
                "resolutions": list(self.resolutions), "n_classes": self.n_classes,
                "stages": [{"stride": st.stride, "widths": list(st.widths), "depths": list(st.depths),
                            "kernels": list(st.kernels), "expands": list(st.expands)} for st in self.stages]}
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]

    # ------------------------------------------------------------------ operations
    def sample(self, rng: np.random.Generator) -> MbArch:
        """Uniform over every decision (depth first, then the blocks it keeps)."""
        return self.decode([int(rng.integers(len(opts))) for _, opts in self._decisions])

    def _active(self, codes: Sequence[int]) -> list[int]:
        """Indices of the decisions a member with ``codes`` has (block slots within each stage's depth)."""
        out, i = [0], 1
        for st in self.stages:
            depth = st.depths[codes[i]]
            out += [i, i + 1] + list(range(i + 2, i + 2 + 2 * depth))
            i += 2 + 2 * max(st.depths)
        return out

    def _filled(self, arch: MbArch, fill: Sequence[int]) -> list[int]:
        """``encode(arch)`` with the slots beyond each stage's depth taken from ``fill``."""
        codes = self.encode(arch)
        active = set(self._active(codes))
        return [c if i in active else int(f) for i, (c, f) in enumerate(zip(codes, fill))]

    def mutate(self, arch: MbArch, rng: np.random.Generator, n_changes: int = 1) -> MbArch:
        """Change ``n_changes`` decisions the member has (each to a different option; decisions with one option
        are skipped); blocks a deeper stage gains are drawn uniformly.  Always a different member unless
        nothing can change."""
        fresh = [int(rng.integers(len(opts))) for _, opts in self._decisions]
        codes = self._filled(arch, fresh)
        movable = [i for i in self._active(codes) if len(self._decisions[i][1]) > 1]
        return self.decode(change_codes(codes, movable, self._decisions, rng, n_changes)) if movable else arch

    def crossover(self, a: MbArch, b: MbArch, rng: np.random.Generator) -> MbArch:
        """Uniform crossover: each decision from ``a`` or ``b`` with probability 1/2; a block slot only one
        parent has comes from that parent."""
        ca = self._filled(a, self.encode(b))
        return self.decode(cross_codes(ca, self._filled(b, ca), rng))

    # ------------------------------------------------------------------ sequence view (RL controller)
    def decisions(self) -> tuple[tuple[str, tuple], ...]:
        """``(name, options)`` for each categorical decision, in controller order."""
        return self._decisions

    def encode(self, arch: MbArch) -> list[int]:
        if not self.contains(arch):
            raise ValueError(f"architecture {arch.describe()} is not in search space {self.name}")
        out = [self.resolutions.index(arch.resolution)]
        for s, st in zip(arch.stages, self.stages):
            out += [st.depths.index(s.depth), st.widths.index(s.width)]
            for b in range(max(st.depths)):
                blk = s.blocks[b] if b < s.depth else None
                out += [st.kernels.index(blk.k), st.expands.index(blk.expand)] if blk else [0, 0]
        return out

    def decode(self, codes: Sequence[int]) -> MbArch:
        if len(codes) != len(self._decisions):
            raise ValueError(f"expected {len(self._decisions)} decisions, got {len(codes)}")
        stages, i = [], 1
        for st in self.stages:
            depth, width = st.depths[codes[i]], st.widths[codes[i + 1]]
            blocks = tuple(Block(st.kernels[codes[i + 2 + 2 * b]], st.expands[codes[i + 3 + 2 * b]])
                           for b in range(depth))
            stages.append(MbStage(width, st.stride, blocks))
            i += 2 + 2 * max(st.depths)
        return self.make(stages, self.resolutions[codes[0]])

    def with_input(self, input_shape: Sequence[int], n_classes: int | None = None) -> "MbSpace":
        return replace(self, input_shape=tuple(int(v) for v in input_shape),
                       n_classes=self.n_classes if n_classes is None else int(n_classes))

    def arch_from_dict(self, d: dict) -> MbArch:
        return MbArch.from_dict(d)


def mbconv_space(input_shape: Sequence[int], n_classes: int = 10) -> MbSpace:
    """The default MBConv space of an input ``(C, H, W)``.

    Small maps (H, W <= 12, e.g. the 8x8 digits): stem 3x3 x 8 at stride 1, two stages (stride 1,
    widths {8, 12, 16}; stride 2, widths {16, 24, 32}), depth {1, 2}, native resolution only.
    Larger inputs (28x28 MNIST / Fashion-MNIST, 32x32 CIFAR-10, 64x64 Tiny ImageNet): MCUNet's
    layout scaled to an MCU with 8 KB of SRAM: stem 3x3 at stride 2 (8 filters, 16 for colour), then
    stages of stride 1, 2, 2 (and a fourth of stride 2 from 32x32 up) with widths {8, 12, 16},
    {16, 24, 32}, {24, 32, 48}, {32, 48, 64}, depth {1, 2} in the first stage and {1, 2, 3} after,
    and resolution factors {1, 2} (a 2x2 average pool of the native image).
    """
    c, h, w = (int(v) for v in input_shape)
    if min(h, w) <= 12:
        return MbSpace("mbconv", (c, h, w), (MbStageSpace(1, (8, 12, 16)), MbStageSpace(2, (16, 24, 32))),
                       stem=8, stem_stride=1, resolutions=(1,), n_classes=n_classes)
    stages = [MbStageSpace(1, (8, 12, 16)), MbStageSpace(2, (16, 24, 32), (1, 2, 3)),
              MbStageSpace(2, (24, 32, 48), (1, 2, 3))]
    if min(h, w) >= 32:
        stages.append(MbStageSpace(2, (32, 48, 64), (1, 2, 3)))
    return MbSpace("mbconv", (c, h, w), tuple(stages), stem=8 if c == 1 else 16, stem_stride=2, resolutions=(1, 2),
                   n_classes=n_classes)
