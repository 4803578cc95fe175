"""Data sets for training, calibration and the functional input sample.

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; no
    download).  Pixels 0..16 are scaled to ``[0, 1)`` as ``p / 16 * (1 - 2**-15)``
    so that the largest pixel is exactly the largest Q15 value 32767/32768.
    Shape ``(1, 8, 8)``.  Train/test split: 80/20, stratified, shuffled by ``seed``.
``cifar10`` / ``tinyimagenet``
    read from a local folder (``data_dir``, else ``$AIDI_DATA_DIR``) by
    :mod:`aidi.models.nas.datasets`; nothing is downloaded.  Shapes
    ``(3, 32, 32)`` and ``(3, 64, 64)``; the published test (val) split is the test split.
``synthetic``
    uniform ``[0, 1)`` inputs of any shape with random labels, drawn from a
    ``numpy.random.Generator`` seeded by ``seed``; for architectures whose input
    is not 8x8 (calibration of random-weight models for latency studies).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

DATASETS = ("digits", "synthetic", "cifar10", "tinyimagenet")
DIGITS_SHAPE = (1, 8, 8)


@dataclass(frozen=True)
class Dataset:
    """Float32 inputs ``(B, C, H, W)`` in [0, 1) and int64 labels, split into train and test."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    n_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def load_image_folder(name: str, data_dir=None, seed: int = 0) -> Dataset:
    """CIFAR-10 / Tiny ImageNet from ``data_dir`` or ``$AIDI_DATA_DIR`` (see :mod:`aidi.models.nas.datasets`)."""
    from .nas import datasets

    return datasets.load(name, data_dir or os.environ.get("AIDI_DATA_DIR"), seed)


def load_dataset(name: str = "digits", seed: int = 0, input_shape=None, n_classes: int = 10,
                 n_synthetic: int = 256, data_dir=None) -> Dataset:
    """Load a data set with a fixed train/test split chosen by ``seed``.

    Raises ValueError for an unknown name or a shape the data set does not have.
    """
    if name == "digits":
        if input_shape is not None and tuple(input_shape) != DIGITS_SHAPE:
            raise ValueError(f"dataset 'digits' has input shape {list(DIGITS_SHAPE)}, model input is {list(input_shape)}")
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        d = load_digits()
        x = (d.images.astype(np.float64) / 16.0 * (1.0 - 2.0**-15)).astype(np.float32)[:, None, :, :]
        y = d.target.astype(np.int64)
        xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, random_state=seed, stratify=y)
        return Dataset("digits", np.ascontiguousarray(xtr), ytr, np.ascontiguousarray(xte), yte, 10)
    if name == "synthetic":
        if input_shape is None:
            raise ValueError("dataset 'synthetic' needs an input shape")
        rng = np.random.default_rng(seed)
        shape = tuple(int(v) for v in input_shape)
        x = rng.random((n_synthetic, *shape), dtype=np.float64).astype(np.float32)
        y = rng.integers(0, n_classes, n_synthetic).astype(np.int64)
        k = n_synthetic * 4 // 5
        return Dataset("synthetic", x[:k], y[:k], x[k:], y[k:], n_classes)
    if name in ("cifar10", "tinyimagenet"):
        ds = load_image_folder(name, data_dir, seed)
        if input_shape is not None and tuple(input_shape) != ds.input_shape:
            raise ValueError(f"dataset {name!r} has input shape {list(ds.input_shape)}, model input is {list(input_shape)}")
        return ds
    raise ValueError(f"unknown dataset {name!r} (one of {', '.join(DATASETS)})")
