"""Training jobs that run anywhere: picklable specs whose result depends on the spec alone.

The NAS trains networks in several places (iNAS-style children, finalists' fine-tuning, the
comparison's retrains and ground-truth sample).  Each is a *job*: a frozen dataclass naming the
data (:class:`DataSpec`, loaded once per worker process), the architecture (its ``to_dict()``),
the seed and the recipe, run by :func:`run_job` in the calling process or on a worker of
:func:`aidi.analysis.parallel.executor` (local processes or Dask).  Seeds are part of the spec and
every job trains with :data:`JOB_THREADS` intra-op threads, so a result does not depend on the
worker count or on which worker ran it.

Public::

    DataSpec(dataset, data_dir, seed, max_train, max_test).load() -> NasData     (cached per process)
    ScratchJob(arch, data, seed, epochs, ...)   -> {"val_accuracy", "test_accuracy", "q15_test_accuracy", ...}
    FinetuneJob(module, data, seed, teacher, epochs, alpha, temperature, lr, device) -> {"module", ...}
    run_job(job) -> dict;  run_jobs(jobs, map_fn=None) -> list[dict]   (duplicates run once)

Data: a folder data set is read on the worker from ``data_dir`` (a cluster's workers need the
same path); nothing travels with the job but the spec.  The final recipe trains on the
training *and* validation splits (``ScratchJob.full_train``): no selection happens after it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

#: intra-op torch threads per job: one (measured on the project's 2-core machine, README
#: "Compute": one thread per job with one job per core beats two threads per job)
JOB_THREADS = 1


@dataclass(frozen=True)
class DataSpec:
    """A data set and its split, by name: ``dataset`` ("digits" or a folder data set of
    :func:`aidi.models.data.load_image_folder`), ``data_dir`` (None: its default folder), ``seed``
    (subset draw and validation split), ``max_train`` / ``max_test`` (None: all images)."""

    dataset: str
    data_dir: str | None = None
    seed: int = 0
    max_train: int | None = None
    max_test: int | None = None

    def load(self):
        """The :class:`~aidi.models.nas.supernet.NasData` (cached per process; raises
        :class:`aidi.models.data.DatasetError` for a missing or malformed folder)."""
        return _load(self)


@lru_cache(maxsize=4)
def _load(spec: DataSpec):
    from ..data import load_dataset, load_image_folder
    from .supernet import split_validation

    if spec.dataset == "digits":
        ds = load_dataset("digits", spec.seed)
    else:
        kw = {k: v for k, v in (("max_train", spec.max_train), ("max_test", spec.max_test)) if v is not None}
        ds = load_image_folder(spec.dataset, spec.data_dir, spec.seed, **kw)
    return split_validation(ds, spec.seed)


def _with_threads(fn: Callable[[], dict]) -> dict:
    import torch

    prev = torch.get_num_threads()
    torch.set_num_threads(JOB_THREADS)
    try:
        return fn()
    finally:
        torch.set_num_threads(prev)


def full_training(data):
    """``data`` with the validation split folded into the training split (the final recipe's data)."""
    from .supernet import NasData

    empty = data.x_val[:0]
    return NasData(data.name, np.concatenate([data.x_train, data.x_val]), np.concatenate([data.y_train, data.y_val]),
                   empty, data.y_val[:0], data.x_test, data.y_test, data.n_classes)


@dataclass(frozen=True)
class ScratchJob:
    """Train ``arch`` (a ``to_dict()``) from scratch: cross-entropy, Adam at ``lr`` with a cosine schedule,
    batch 64, ``epochs`` epochs, weights initialised and batches drawn from ``seed``
    (:func:`aidi.models.nas.supernet.train_from_scratch`).  ``full_train``: on train + validation (the
    final recipe); ``q15_images``: also the Q15 accuracy on the first that many test images;
    ``keep_module``: return the trained module (iNAS-style children are deployed)."""

    arch: dict
    data: DataSpec
    seed: int
    epochs: int
    lr: float = 3e-3
    device: str = "cpu"
    full_train: bool = False
    q15_images: int = 0
    keep_module: bool = False

    @property
    def key(self) -> tuple:
        return ("scratch", repr(sorted(self.arch.items())), self.data, self.seed, self.epochs, self.lr, self.device,
                self.full_train, self.q15_images, self.keep_module)

    def run(self) -> dict:
        from .space import arch_from_dict
        from .supernet import module_accuracy, train_from_scratch

        data = self.data.load()
        train_data = full_training(data) if self.full_train else data
        arch = arch_from_dict(self.arch)
        t0 = time.perf_counter()
        m = train_from_scratch(arch, train_data, self.seed, self.epochs, self.lr, device=self.device)
        out = {"arch_id": arch.id, "seed": self.seed, "epochs": self.epochs, "train_s": time.perf_counter() - t0,
               "train_images": int(len(train_data.y_train)), "test_images": int(len(data.y_test)),
               "val_accuracy": None if self.full_train else float(module_accuracy(m, data.x_val, data.y_val)),
               "test_accuracy": float(module_accuracy(m, data.x_test, data.y_test)), "q15_test_accuracy": None}
        if self.q15_images > 0:
            out["q15_test_accuracy"] = q15_accuracy(arch, m, data, self.seed, self.q15_images)
        if self.keep_module:
            out["module"] = m
        return out


@dataclass(frozen=True)
class FinetuneJob:
    """Fine-tune ``module`` (inherited weights) with KD from ``teacher``
    (:func:`aidi.models.nas.supernet.finetune`); returns ``module`` and ``val_accuracy``."""

    module: Any = field(compare=False)
    data: DataSpec
    seed: int
    teacher: Any = field(default=None, compare=False)
    epochs: int = 10
    alpha: float = 0.5
    temperature: float = 4.0
    lr: float = 2e-3
    device: str = "cpu"

    @property
    def key(self) -> tuple:
        return ("finetune", id(self))  # modules are not hashable by value: never merged

    def run(self) -> dict:
        from .supernet import finetune, module_accuracy

        data = self.data.load()
        t0 = time.perf_counter()
        m = finetune(self.module, data, self.seed, self.teacher, self.epochs, self.alpha, self.temperature, self.lr,
                     device=self.device)
        return {"module": m, "train_s": time.perf_counter() - t0,
                "val_accuracy": float(module_accuracy(m, data.x_val, data.y_val))}


def q15_accuracy(arch, module, data, seed: int, images: int) -> float:
    """Top-1 accuracy of the Q15 model (:func:`aidi.models.q15.quantize`) on the first ``images`` test images."""
    from .. import net as mnet
    from .. import q15
    from ..layers import parse_network

    trained = mnet.TrainedModel(parse_network(arch.to_layers(), arch.input_shape), module, data.as_dataset(), seed,
                                0, "nas", float("nan"))
    return float(q15.q15_accuracy(q15.quantize(trained), data.x_test[:images], data.y_test[:images]))


def run_job(job) -> dict:
    """``job.run()`` with :data:`JOB_THREADS` torch threads (what a worker executes)."""
    return _with_threads(job.run)


def _cache_path(job) -> Path | None:
    """Where a :class:`ScratchJob`'s result (accuracies, no module) is kept across runs (None: not kept)."""
    import hashlib
    import json

    import torch

    from ..cache import cache_dir

    if not isinstance(job, ScratchJob) or job.keep_module:
        return None
    blob = json.dumps({"job": repr(job.key), "torch": torch.__version__, "threads": JOB_THREADS}, sort_keys=True)
    return cache_dir() / "nas" / "jobs" / f"scratch-{hashlib.sha256(blob.encode()).hexdigest()[:24]}.json"


def run_jobs(jobs: Sequence, map_fn: Callable[[Callable, list], list] | None = None,
             use_cache: bool = False) -> list[dict]:
    """The result of every job, in order; jobs with equal keys run once.  ``map_fn(fn, [(arg,), ...])``:
    a parallel map (:meth:`aidi.analysis.parallel.Pool.map`), None runs them here one after another.
    ``use_cache``: a :class:`ScratchJob` without its module is read from / written to ``cache_dir()/nas/jobs``
    (its result depends on the job alone, so another scenario's comparison reuses the same training)."""
    import json

    unique: dict[tuple, Any] = {}
    for j in jobs:
        unique.setdefault(j.key, j)
    by_key: dict[tuple, dict] = {}
    for k, j in unique.items():
        path = _cache_path(j) if use_cache else None
        if path is not None and path.exists():
            by_key[k] = {**json.loads(path.read_text()), "cached": True}
    todo = [j for k, j in unique.items() if k not in by_key]
    results = [] if not todo else map_fn(run_job, [(j,) for j in todo]) if map_fn else [run_job(j) for j in todo]
    for j, r in zip(todo, results):
        by_key[j.key] = r
        path = _cache_path(j) if use_cache else None
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps(r))
            tmp.replace(path)
    return [by_key[j.key] for j in jobs]


def data_spec(dataset: str, data_dir: str | Path | None, seed: int, max_train: int | None = None,
              max_test: int | None = None) -> DataSpec:
    """A :class:`DataSpec` with ``data_dir`` as an absolute path string (so a worker elsewhere reads the same)."""
    return DataSpec(dataset, None if data_dir is None else str(Path(data_dir).resolve()), int(seed),
                    None if max_train is None else int(max_train), None if max_test is None else int(max_test))
