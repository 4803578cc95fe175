"""The float network: torch module from layer specs, training, cache, BN folding.

Training is deterministic: it runs inside ``torch.random.fork_rng`` seeded with
``seed``, on a fixed number of intra-op threads (restored afterwards), with a
seeded shuffling generator, so the same architecture, seed and epochs give the
same weights (bit for bit on the same torch build).  Trained weights are cached
under ``$AIDI_CACHE_DIR`` (default ``~/.cache/aidi``) in ``models/``, keyed by a
hash of the architecture, data set, seed, epochs and training hyper-parameters;
files are written atomically (tmp file + rename) so parallel sweeps can share
the cache.  The cache is never inside the repository.

Public API::

    build_module(net, seed) -> AidiNet
    load_or_train(specs, input_shape, seed, dataset="digits", epochs=DEFAULT_EPOCHS) -> TrainedModel
    random_model(specs, input_shape, seed, dataset=None) -> TrainedModel
    load_model(specs, input_shape, weights, seed, ...) -> TrainedModel   # "random" | "trained:<dataset>" | path
    save_model(trained, path)
    fold(trained_or_module, net) -> list[FoldedLayer]                    # BN folded, float64
    folded_forward(folded, x) -> list[np.ndarray]                        # per executed layer
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .cache import cache_dir
from .data import Dataset, load_dataset
from .layers import (BN, FC, GAP, Add, AvgPool, Concat, Conv, DWConv, LayerGeom, MaxPool, Network, PWConv, ReLU,
                     geometry, pads_of, pair_of, parse_network, tensor_sizes)

DEFAULT_EPOCHS = 30
TRAIN_THREADS = 1  # intra-op threads while training: tiny nets gain nothing from more, and oversubscribed thread pools (parallel sweeps, pytest -n) slow down by 10x
_TRAIN_HPARAMS = {"optimizer": "adam", "lr": 1e-2, "batch": 32, "lr_decay": "cosine", "version": 1}


class AidiNet(nn.Module):
    """Torch module mirroring a :class:`~aidi.models.layers.Network`, NCHW float32.

    A weighted layer's ``relu = true`` is applied after its following BN (if any).
    ``fc`` flattens CHW and returns ``(B, units, 1, 1)`` so every layer stays 4-D.
    """

    def __init__(self, net: Network):
        super().__init__()
        self.net = net
        mods: list[nn.Module] = []
        self._pads: list[tuple[int, int, int, int] | None] = []  # F.pad order (left, right, top, bottom)
        self._inputs = net.inputs
        shapes = net.shapes
        for i, s in enumerate(net.layers):
            j = self._inputs[i][0]
            shape = net.input_shape if j < 0 else shapes[j]
            c = shape[0]
            pad = None
            if isinstance(s, (Conv, DWConv, MaxPool)):
                kh, kw = pair_of(s.k)
                pt, pl, pb, pr = pads_of(s.padding, kh, kw)
                pad = (pl, pr, pt, pb) if (pt, pl, pb, pr) != (0, 0, 0, 0) else None
            if isinstance(s, Conv):
                m = nn.Conv2d(c, s.filters, pair_of(s.k), pair_of(s.stride), 0, bias=s.bias)
            elif isinstance(s, DWConv):
                m = nn.Conv2d(c, c, pair_of(s.k), pair_of(s.stride), 0, groups=c, bias=s.bias)
            elif isinstance(s, PWConv):
                m = nn.Conv2d(c, s.filters, 1, pair_of(s.stride), 0, bias=s.bias)
            elif isinstance(s, FC):
                m = nn.Linear(c * shape[1] * shape[2], s.units, bias=s.bias)
            elif isinstance(s, AvgPool):
                m = nn.AvgPool2d(pair_of(s.k), pair_of(s.stride))
            elif isinstance(s, MaxPool):
                m = nn.MaxPool2d(pair_of(s.k), pair_of(s.stride))
            elif isinstance(s, GAP):
                m = nn.AvgPool2d((shape[1], shape[2]), 1)
            elif isinstance(s, (ReLU, Add, Concat)):
                m = nn.Identity()  # computed in forward; kept so module i is spec i
            elif isinstance(s, BN):
                m = nn.BatchNorm2d(c, eps=s.eps)
            else:  # pragma: no cover - parse_network rejects unknown types
                raise ValueError(f"layer {i}: unsupported type {s.type!r}")
            mods.append(m)
            self._pads.append(pad)
        self.layers = nn.ModuleList(mods)

    def _act_after(self, i: int) -> tuple[bool, bool]:
        """(ReLU, ReLU6) applied after spec i: a weighted layer's flags move past its BN (spec i + 1)."""
        specs = self.net.layers
        s = specs[i]
        if s.weighted and i + 1 < len(specs) and isinstance(specs[i + 1], BN):
            return False, False
        if isinstance(s, ReLU):
            return True, False
        if isinstance(s, BN):
            s = specs[i - 1]
        return bool(getattr(s, "relu", False)), bool(getattr(s, "relu6", False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outs: list[torch.Tensor] = []
        for i, (s, m) in enumerate(zip(self.net.layers, self.layers)):
            xs = [x if j < 0 else outs[j] for j in self._inputs[i]]
            t = xs[0]
            if isinstance(s, FC):
                t = m(t.flatten(1))[:, :, None, None]
            elif isinstance(s, Add):
                t = xs[0] + xs[1]
            elif isinstance(s, Concat):
                t = torch.cat(xs, dim=1)
            else:
                if self._pads[i] is not None:  # zero padding (pools too: see aidi.models.layers)
                    t = F.pad(t, self._pads[i])
                t = m(t)
            relu, relu6 = self._act_after(i)
            if relu:
                t = F.relu(t)
            if relu6:
                t = torch.clamp(t, 0.0, 6.0)
            outs.append(t)
        return outs[-1]

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward(x).flatten(1)


@dataclass
class TrainedModel:
    """A float model and the data it was trained/calibrated on.

    Attributes:
        net: the parsed network.
        module: the torch module (eval mode).
        dataset: train (calibration) and held-out test splits.
        seed, epochs: what produced the weights (epochs = 0 for random weights).
        weights: ``"random"``, ``"trained:<dataset>"`` or the path loaded.
        float_accuracy: top-1 accuracy on the held-out split (fraction in [0, 1]).
        cache_path: the cache file used, or None.
        train_seconds: wall time of training (0 when loaded from cache).
    """

    net: Network
    module: AidiNet
    dataset: Dataset
    seed: int
    epochs: int
    weights: str
    float_accuracy: float
    cache_path: Path | None = None
    train_seconds: float = 0.0


@contextlib.contextmanager
def _deterministic(seed: int, threads: int = TRAIN_THREADS) -> Iterator[None]:
    prev = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.set_num_threads(threads)
        try:
            yield
        finally:
            torch.set_num_threads(prev)


def build_module(net: Network, seed: int) -> AidiNet:
    """A freshly initialised module (torch default init under ``seed``)."""
    with _deterministic(seed):
        return AidiNet(net)


def accuracy(module: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    """Top-1 accuracy (fraction) of a float module on float inputs ``(B, C, H, W)``."""
    module.eval()
    with torch.no_grad():
        pred = module(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).flatten(1).argmax(1).numpy()
    return float((pred == y).mean())


def _train(module: AidiNet, data: Dataset, seed: int, epochs: int) -> None:
    hp = _TRAIN_HPARAMS
    with _deterministic(seed):
        gen = torch.Generator().manual_seed(seed)
        x = torch.from_numpy(data.x_train)
        y = torch.from_numpy(data.y_train)
        opt = torch.optim.Adam(module.parameters(), lr=hp["lr"])
        steps = epochs * ((len(x) + hp["batch"] - 1) // hp["batch"])
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(1, steps))
        module.train()
        for _ in range(epochs):
            perm = torch.randperm(len(x), generator=gen)
            for k in range(0, len(x), hp["batch"]):
                idx = perm[k:k + hp["batch"]]
                opt.zero_grad()
                loss = F.cross_entropy(module.logits(x[idx]), y[idx])
                loss.backward()
                opt.step()
                sched.step()
        module.eval()


def _cache_key(net: Network, dataset: str, seed: int, epochs: int) -> str:
    blob = json.dumps({"input": list(net.input_shape), "layers": net.to_dicts(), "dataset": dataset,
                       "seed": seed, "epochs": epochs, "hp": _TRAIN_HPARAMS}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _atomic_save(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    os.close(fd)
    try:
        torch.save(obj, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _as_network(specs, input_shape) -> Network:
    return specs if isinstance(specs, Network) else parse_network(specs, input_shape)


def load_or_train(specs: Sequence[dict] | Network, input_shape: Sequence[int] | None = None, seed: int = 0,
                  dataset: str = "digits", epochs: int = DEFAULT_EPOCHS, use_cache: bool = True,
                  data_dir: str | Path | None = None) -> TrainedModel:
    """Train (or load from the cache) a float model on ``dataset``.

    Args:
        specs: layer dicts (scenario format) or a parsed :class:`Network`.
        input_shape: ``[C, H, W]`` (ignored if ``specs`` is a Network).
        seed: weight init, shuffling and the train/test split.
        dataset: ``"digits"`` (see :mod:`aidi.models.data`).
        epochs: training epochs (a few seconds for the default net on 2 cores).
        use_cache: read/write ``cache_dir()/models``.

    Returns a :class:`TrainedModel` with the held-out float accuracy.
    """
    net = _as_network(specs, input_shape)
    data = load_dataset(dataset, seed, net.input_shape, data_dir=data_dir)
    path = cache_dir() / "models" / f"{net.key()}-{_cache_key(net, dataset, seed, epochs)}.pt"
    module = build_module(net, seed)
    if use_cache and path.exists():
        try:
            blob = torch.load(path, weights_only=True)
            module.load_state_dict(blob["state_dict"])
            module.eval()
            return TrainedModel(net, module, data, seed, epochs, f"trained:{dataset}",
                                float(blob["meta"]["float_accuracy"]), path, 0.0)
        except Exception:  # corrupt or stale cache entry: retrain and overwrite
            module = build_module(net, seed)
    t0 = time.perf_counter()
    _train(module, data, seed, epochs)
    dt = time.perf_counter() - t0
    acc = accuracy(module, data.x_test, data.y_test)
    if use_cache:
        _atomic_save({"state_dict": module.state_dict(),
                      "meta": {"float_accuracy": acc, "layers": json.dumps(net.to_dicts()),
                               "input": list(net.input_shape), "seed": seed, "epochs": epochs,
                               "dataset": dataset}}, path)
    return TrainedModel(net, module, data, seed, epochs, f"trained:{dataset}", acc, path if use_cache else None, dt)


def random_model(specs: Sequence[dict] | Network, input_shape: Sequence[int] | None = None, seed: int = 0,
                 dataset: str | None = None) -> TrainedModel:
    """Seeded random weights (torch default init), no training.

    Calibration data: ``digits`` when the input is 8x8x1 (or ``dataset`` given),
    else ``synthetic`` uniform inputs of the model's shape.
    """
    net = _as_network(specs, input_shape)
    if dataset is None:
        dataset = "digits" if tuple(net.input_shape) == (1, 8, 8) else "synthetic"
    data = load_dataset(dataset, seed, net.input_shape)
    module = build_module(net, seed)
    module.eval()
    return TrainedModel(net, module, data, seed, 0, "random", accuracy(module, data.x_test, data.y_test))


def save_model(trained: TrainedModel, path: str | Path) -> None:
    """Save weights and architecture to ``path`` (loadable with ``weights = "<path>"``)."""
    _atomic_save({"state_dict": trained.module.state_dict(),
                  "meta": {"layers": json.dumps(trained.net.to_dicts()), "input": list(trained.net.input_shape),
                           "seed": trained.seed, "dataset": trained.dataset.name}}, Path(path))


def load_model(specs: Sequence[dict] | Network, input_shape: Sequence[int] | None = None, weights: str = "trained:digits",
               seed: int = 0, epochs: int = DEFAULT_EPOCHS, base_dir: str | Path | None = None,
               data_dir: str | Path | None = None) -> TrainedModel:
    """Dispatch a scenario's ``weights`` value: ``"random"``, ``"trained:<dataset>"`` or a file path.

    Relative paths resolve against ``base_dir``; ``data_dir`` is the folder of a
    folder data set (cifar10, tinyimagenet; else ``$AIDI_DATA_DIR``).  Raises ValueError for a missing
    file or an architecture mismatch.
    """
    net = _as_network(specs, input_shape)
    if weights == "random":
        return random_model(net, seed=seed)
    if isinstance(weights, str) and weights.startswith("trained:"):
        return load_or_train(net, seed=seed, dataset=weights.split(":", 1)[1], epochs=epochs, data_dir=data_dir)
    path = Path(weights)
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    if not path.is_file():
        raise ValueError(f"model.weights: file not found: {path}")
    try:
        blob = torch.load(path, weights_only=True)
        meta = blob["meta"]
    except Exception as e:
        raise ValueError(f"model.weights: cannot read {path}: {e}") from None
    if json.loads(meta["layers"]) != net.to_dicts() or list(meta["input"]) != list(net.input_shape):
        raise ValueError(f"model.weights: {path} holds a different architecture than [model].layers")
    module = build_module(net, seed)
    module.load_state_dict(blob["state_dict"])
    module.eval()
    dataset = meta.get("dataset", "digits")
    data = load_dataset(dataset, int(meta.get("seed", seed)), net.input_shape, data_dir=data_dir)
    return TrainedModel(net, module, data, int(meta.get("seed", seed)), 0, str(path),
                        accuracy(module, data.x_test, data.y_test))


# --------------------------------------------------------------------------- folding
@dataclass(frozen=True)
class FoldedLayer:
    """An executed layer with float64 weights, BN folded in.

    ``w`` has shape ``geom.weight_shape`` (None for pools); ``b`` shape ``(M,)``
    (zeros when the layer has no bias).
    """

    geom: LayerGeom
    w: np.ndarray | None
    b: np.ndarray | None


def fold(model: TrainedModel | AidiNet, net: Network | None = None) -> list[FoldedLayer]:
    """Executed layers of a module with BN folded: ``w' = w*g/sqrt(v+eps)``, ``b' = (b-mu)*g/sqrt(v+eps)+beta``."""
    module = model.module if isinstance(model, TrainedModel) else model
    net = net or module.net
    out = []
    for g in geometry(net):
        if not g.weighted:
            out.append(FoldedLayer(g, None, None))
            continue
        i = g.spec_indices[0]
        m = module.layers[i]
        w = m.weight.detach().double().numpy().copy()
        b = m.bias.detach().double().numpy().copy() if m.bias is not None else np.zeros(w.shape[0])
        w = w.reshape(g.weight_shape)
        if g.bn >= 0:
            bn = module.layers[g.bn]
            scale = bn.weight.detach().double().numpy() / np.sqrt(bn.running_var.detach().double().numpy() + bn.eps)
            w = w * scale[:, None, None, None]
            b = (b - bn.running_mean.detach().double().numpy()) * scale + bn.bias.detach().double().numpy()
        out.append(FoldedLayer(g, w, b))
    return out


def folded_forward(folded: Sequence[FoldedLayer], x: np.ndarray) -> list[np.ndarray]:
    """Float64 forward of folded layers; returns each executed layer's output ``(B, C, H, W)``.

    Tensors are flat ``(B, elements)`` arrays as in FRAM: a layer reads its ``src`` views and writes its
    ``dst`` view (a concat's producers write channel slices of one tensor)."""
    from .ops import ADD, AVGPOOL, DWCONV, MAXPOOL

    x = np.asarray(x, dtype=np.float64)
    b = x.shape[0]
    geoms = [fl.geom for fl in folded]
    tensors = {t: np.zeros((b, n)) for t, n in tensor_sizes(geoms).items()}
    tensors[geoms[0].src[0][0]][:] = x.reshape(b, -1)  # tensor 0 (a sub-model: its input)
    outs = []
    with torch.no_grad():
        for fl in folded:
            g = fl.geom
            code = g.traits.code
            n_in = int(np.prod(g.in_shape))
            xs = [torch.from_numpy(tensors[t][:, o:o + n_in].reshape(b, *g.in_shape)) for t, o in g.src]
            t = xs[0]
            pt, pl, pb, pr = g.pads
            if any(g.pads):
                t = F.pad(t, (pl, pr, pt, pb))
            if code == ADD:
                t = xs[0] + xs[1]
            elif g.weighted:
                groups = g.in_shape[0] if code == DWCONV else 1
                t = F.conv2d(t, torch.from_numpy(fl.w), torch.from_numpy(fl.b), (g.sh, g.sw), 0, groups=groups)
            elif code == MAXPOOL:
                t = F.max_pool2d(t, (g.kh, g.kw), (g.sh, g.sw))
            else:
                assert code == AVGPOOL
                t = F.avg_pool2d(t, (g.kh, g.kw), (g.sh, g.sw))
            if g.relu:
                t = F.relu(t)
            if g.relu6:
                t = torch.clamp(t, 0.0, 6.0)
            y = t.numpy()
            to, oo = g.dst
            tensors[to][:, oo:oo + y[0].size] = y.reshape(b, -1)
            outs.append(y)
    return outs
