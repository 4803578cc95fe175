"""Data sets for training, calibration and the functional input sample.

Light on purpose: numpy (and scikit-learn for ``digits``) only; neither torch
nor :mod:`aidi.models.nas` is imported, so a data set loads without the NAS stack.

``digits``
    scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes; no
    download).  Pixels 0..16 are scaled to ``[0, 1)`` as ``p / 16 * (1 - 2**-15)``
    so that the largest pixel is exactly the largest Q15 value 32767/32768.
    Shape ``(1, 8, 8)``.  Train/test split: 80/20, stratified, shuffled by ``seed``.
``cifar10``
    read from a local folder (``data_dir``, else ``$AIDI_DATA_DIR``; never
    downloaded): the "python version" folder, pickled ``data_batch_1`` ..
    ``data_batch_5`` and ``test_batch`` (dicts with ``b"data"``, N x 3072 uint8
    rows in CHW order, and ``b"labels"``).  Shape ``(3, 32, 32)``.
``tinyimagenet``
    read from a local folder likewise: ``wnids.txt`` (one class id a line),
    ``train/<wnid>/images/*.JPEG`` and ``val/images/*.JPEG`` labelled by
    ``val/val_annotations.txt`` (``file<TAB>wnid<TAB>...``).  Shape ``(3, 64, 64)``.
    JPEGs are decoded by Pillow (pinned in requirements.txt).  Decoded arrays are
    cached under ``cache_dir()/data`` (keyed by the file listing).
``fashion-mnist`` / ``mnist``
    the four standard IDX files (LeCun et al., http://yann.lecun.com/exdb/mnist/;
    Xiao et al. 2017 for Fashion-MNIST, same format): ``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``,
    each gzipped (``.gz``) or not, read with numpy (:func:`read_idx` checks the magic
    number, the dimensions and the length).  Shape ``(1, 28, 28)``, 10 classes,
    60000/10000 train/test.  The folder is ``data_dir``, else ``$AIDI_DATA_DIR`` (or
    its ``fashion-mnist`` / ``mnist`` subfolder) when it holds the files, else, for
    ``fashion-mnist``, :data:`DEFAULT_DIRS` (where Debian's ``dataset-fashion-mnist``
    package installs them).
``synthetic``
    uniform ``[0, 1)`` inputs of any shape with random labels, drawn from a
    ``numpy.random.Generator`` seeded by ``seed``; for architectures whose input
    is not 8x8 (calibration of random-weight models for latency studies).

The folder data sets use their published test (val) split as the test split;
their pixels are scaled like ``digits`` (``p / 255 * (1 - 2**-15)``).  A missing
folder or file, or a file that is not in its format, raises :class:`DatasetError`
(one line) naming the file and the expected layout.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..cache import cache_dir

DATASETS = ("digits", "synthetic", "cifar10", "tinyimagenet", "fashion-mnist", "mnist")
DIGITS_SHAPE = (1, 8, 8)
CIFAR_LAYOUT = "a CIFAR-10 python folder with data_batch_1..data_batch_5 and test_batch"
TINY_LAYOUT = ("a Tiny ImageNet folder with wnids.txt, train/<wnid>/images/*.JPEG and "
               "val/val_annotations.txt + val/images/*.JPEG")
IDX_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
IDX_LAYOUT = "a folder with the IDX files " + ", ".join(f"{f}[.gz]" for f in IDX_FILES)
IDX_DATASETS = ("fashion-mnist", "mnist")
FOLDER_LAYOUTS = {"cifar10": CIFAR_LAYOUT, "tinyimagenet": TINY_LAYOUT, "fashion-mnist": IDX_LAYOUT,
                  "mnist": IDX_LAYOUT}
#: the folder Debian's ``dataset-*`` packages install into; ``$AIDI_SYSTEM_DATASETS`` points it elsewhere
#: (read at import), e.g. at an empty folder to run the tests as on a machine without those packages
SYSTEM_DATASETS = Path(os.environ.get("AIDI_SYSTEM_DATASETS") or "/usr/share/datasets")
#: where a data set's files are when neither ``data_dir`` nor ``$AIDI_DATA_DIR`` holds them:
#: Debian's package ``dataset-fashion-mnist`` (``dpkg -L dataset-fashion-mnist``: under
#: :data:`SYSTEM_DATASETS`); MNIST has no Debian package.
DEFAULT_DIRS = {"fashion-mnist": SYSTEM_DATASETS / "fashion-mnist"}
#: IDX type codes (the magic number's third byte) and their big-endian numpy types
_IDX_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SCALE = (1.0 - 2.0**-15) / 255.0


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


class DatasetError(ValueError):
    """A data folder that is missing or not in the expected layout (one-line message)."""


def load_dataset(name: str = "digits", seed: int = 0, input_shape=None, n_classes: int = 10,
                 n_synthetic: int = 256, data_dir=None) -> Dataset:
    """Load a data set with a fixed train/test split chosen by ``seed``.

    ``data_dir`` (else ``$AIDI_DATA_DIR``) holds the folder data sets.
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
    if name in IDX_DATASETS:
        ds = load_idx_folder(name, data_dir, seed)
        if input_shape is not None and tuple(input_shape) != ds.input_shape:
            raise ValueError(f"dataset {name!r} has input shape {list(ds.input_shape)}, model input is {list(input_shape)}")
        return ds
    if name in FOLDER_LAYOUTS:
        ds = load_image_folder(name, data_dir or os.environ.get("AIDI_DATA_DIR"), seed)
        if input_shape is not None and tuple(input_shape) != ds.input_shape:
            raise ValueError(f"dataset {name!r} has input shape {list(ds.input_shape)}, model input is {list(input_shape)}")
        return ds
    raise ValueError(f"unknown dataset {name!r} (one of {', '.join(DATASETS)})")


def load_image_folder(name: str, data_dir: str | Path | None, seed: int = 0, **kw) -> Dataset:
    """``cifar10`` / ``tinyimagenet`` / ``fashion-mnist`` / ``mnist`` from ``data_dir``
    (``**kw``: the loader's subset limits).

    Unlike :func:`load_dataset`, does not fall back on ``$AIDI_DATA_DIR``: a None ``data_dir``
    raises :class:`DatasetError` (except for a data set with a :data:`DEFAULT_DIRS` folder),
    as does an unknown name.
    """
    if name not in FOLDER_LAYOUTS:
        raise DatasetError(f"unknown dataset {name!r} (one of {', '.join(FOLDER_LAYOUTS)})")
    if name in IDX_DATASETS:
        return load_idx_folder(name, data_dir, seed, use_env=False, **kw)
    if data_dir is None:
        raise DatasetError(f"dataset {name} needs --data-dir: {FOLDER_LAYOUTS[name]}")
    return load_cifar10(data_dir, seed, **kw) if name == "cifar10" else load_tinyimagenet(data_dir, seed, **kw)


def _scale(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float64) * _SCALE).astype(np.float32)


def _subsample(x, y, n, seed):
    if n is None or n >= len(y):
        return x, y
    idx = np.sort(np.random.default_rng(seed).permutation(len(y))[:n])
    return x[idx], y[idx]


def load_cifar10(data_dir: str | Path, seed: int = 0, max_train: int | None = None,
                 max_test: int | None = None) -> Dataset:
    """CIFAR-10 from ``data_dir`` (the ``cifar-10-batches-py`` folder or its parent)."""
    d = Path(data_dir)
    if (d / "cifar-10-batches-py").is_dir():
        d = d / "cifar-10-batches-py"
    if not d.is_dir():
        raise DatasetError(f"--data-dir {d}: folder not found; expected {CIFAR_LAYOUT}")
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (d / n).is_file()]
    if missing:
        raise DatasetError(f"--data-dir {d}: missing {missing[0]}; expected {CIFAR_LAYOUT}")

    def read(name):
        try:
            with open(d / name, "rb") as f:
                b = pickle.load(f, encoding="bytes")
            x = np.asarray(b[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(b[b"labels"], dtype=np.int64)
        except Exception as exc:
            raise DatasetError(f"{d / name}: not a CIFAR-10 batch ({type(exc).__name__}); expected {CIFAR_LAYOUT}") from None
        return x, y

    parts = [read(n) for n in names[:5]]
    xtr = np.concatenate([p[0] for p in parts])
    ytr = np.concatenate([p[1] for p in parts])
    xte, yte = read("test_batch")
    xtr, ytr = _subsample(xtr, ytr, max_train, seed)
    xte, yte = _subsample(xte, yte, max_test, seed + 1)
    return Dataset("cifar10", _scale(xtr), ytr, _scale(xte), yte, 10)


def read_image(path: Path) -> np.ndarray:
    """uint8 ``(3, H, W)`` RGB of an image file (a JPEG; grayscale replicated), decoded by Pillow.

    Raises :class:`DatasetError` naming the file when Pillow cannot decode it.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            img = np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        why = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DatasetError(f"{path}: not a readable image ({why})") from None
    return np.ascontiguousarray(img.transpose(2, 0, 1))


def read_idx(path: str | Path, ndim: int) -> np.ndarray:
    """The array in an IDX file (gzipped when its name ends in ``.gz``), checked.

    Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): two zero bytes, a
    type code (0x08 unsigned byte, ... 0x0E double), the number of dimensions,
    then one big-endian uint32 per dimension, then the data, C order, big-endian.
    ``ndim`` is what the caller expects (3 for images, 1 for labels).

    Returns the array in native byte order, shape the file's dimensions.
    Raises :class:`DatasetError` naming the file on a bad magic number, a type
    code, number of dimensions or length that does not match, or a bad gzip stream.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.name.endswith(".gz") else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise DatasetError(f"{path}: cannot read ({str(exc).splitlines()[0] or type(exc).__name__})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DatasetError(f"{path}: not an IDX file (magic number {raw[:4].hex() or 'missing'}, "
                           f"expected 0000080{ndim} for this file)")
    if raw[3] != ndim:
        raise DatasetError(f"{path}: IDX file has {raw[3]} dimensions, expected {ndim} "
                           f"(magic number {raw[:4].hex()}, expected 0000080{ndim})")
    head = 4 + 4 * ndim
    if len(raw) < head:
        raise DatasetError(f"{path}: IDX header cut short ({len(raw)} bytes, expected {head})")
    dims = tuple(int(v) for v in np.frombuffer(raw, ">u4", ndim, 4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    want = head + int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    if len(raw) != want:
        raise DatasetError(f"{path}: IDX dimensions {list(dims)} need {want} bytes, the file has {len(raw)}")
    return np.frombuffer(raw, dtype, offset=head).reshape(dims).astype(dtype.newbyteorder("="))


def has_idx_files(d: str | Path) -> bool:
    """Whether folder ``d`` holds the four :data:`IDX_FILES` (each gzipped or not)."""
    d = Path(d)
    return all((d / f).is_file() or (d / f"{f}.gz").is_file() for f in IDX_FILES)


def idx_folder(name: str, data_dir: str | Path | None, use_env: bool = True) -> Path:
    """The folder an IDX data set is read from: ``data_dir`` (or its ``name`` subfolder),
    else ``$AIDI_DATA_DIR`` (likewise) when it holds the files and ``use_env``, else
    :data:`DEFAULT_DIRS`; :class:`DatasetError` when none is given or found."""
    if data_dir is not None:
        d = Path(data_dir)
        return d / name if not has_idx_files(d) and has_idx_files(d / name) else d
    env = os.environ.get("AIDI_DATA_DIR") if use_env else None
    if env:
        for d in (Path(env), Path(env) / name):
            if has_idx_files(d):
                return d
    if name in DEFAULT_DIRS:
        return DEFAULT_DIRS[name]
    raise DatasetError(f"dataset {name} needs --data-dir: {IDX_LAYOUT}")


def load_idx_folder(name: str, data_dir: str | Path | None = None, seed: int = 0, max_train: int | None = None,
                    max_test: int | None = None, use_env: bool = True) -> Dataset:
    """``fashion-mnist`` or ``mnist`` from the folder :func:`idx_folder` picks.

    ``max_train`` / ``max_test``: a subset drawn by ``seed`` (sorted indices).
    Returns :class:`Dataset` with x ``(N, 1, H, W)`` float32 in [0, 1), y int64.
    Raises :class:`DatasetError` naming the folder or file and the layout.
    """
    if name not in IDX_DATASETS:
        raise DatasetError(f"unknown IDX dataset {name!r} (one of {', '.join(IDX_DATASETS)})")
    d = idx_folder(name, data_dir, use_env)
    hint = " (Debian package dataset-fashion-mnist)" if d == DEFAULT_DIRS.get(name) else ""
    if not d.is_dir():
        raise DatasetError(f"--data-dir {d}: folder not found{hint}; expected {IDX_LAYOUT}")

    def read(stem: str, ndim: int) -> np.ndarray:
        for f in (d / stem, d / f"{stem}.gz"):
            if f.is_file():
                return read_idx(f, ndim)
        raise DatasetError(f"--data-dir {d}: missing {stem}[.gz]{hint}; expected {IDX_LAYOUT}")

    def split(prefix: str):
        x = read(f"{prefix}-images-idx3-ubyte", 3)
        y = read(f"{prefix}-labels-idx1-ubyte", 1)
        where = d / f"{prefix}-labels-idx1-ubyte"
        if x.dtype != np.uint8 or y.dtype != np.uint8:
            raise DatasetError(f"{d / (prefix + '-images-idx3-ubyte')}: expected unsigned-byte images and labels "
                               f"(type 0x08), got {x.dtype} / {y.dtype}")
        if len(x) != len(y):
            raise DatasetError(f"{where}[.gz]: {len(y)} labels for {len(x)} images")
        if len(y) and int(y.max()) >= 10:
            raise DatasetError(f"{where}[.gz]: label {int(y.max())} out of range 0..9")
        return x[:, None, :, :], y.astype(np.int64)

    xtr, ytr = split("train")
    xte, yte = split("t10k")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DatasetError(f"--data-dir {d}: train images are {list(xtr.shape[2:])}, t10k images "
                           f"{list(xte.shape[2:])}")
    xtr, ytr = _subsample(xtr, ytr, max_train, seed)
    xte, yte = _subsample(xte, yte, max_test, seed + 1)
    return Dataset(name, _scale(xtr), ytr, _scale(xte), yte, 10)


def load_tinyimagenet(data_dir: str | Path, seed: int = 0, max_per_class: int | None = None,
                      max_test: int | None = None, use_cache: bool = True) -> Dataset:
    """Tiny ImageNet from ``data_dir`` (the ``tiny-imagenet-200`` folder or its parent)."""
    d = Path(data_dir)
    if (d / "tiny-imagenet-200").is_dir():
        d = d / "tiny-imagenet-200"
    if not d.is_dir():
        raise DatasetError(f"--data-dir {d}: folder not found; expected {TINY_LAYOUT}")
    for need in ("wnids.txt", "train", "val/val_annotations.txt"):
        if not (d / need).exists():
            raise DatasetError(f"--data-dir {d}: missing {need}; expected {TINY_LAYOUT}")
    wnids = [w.strip() for w in (d / "wnids.txt").read_text().splitlines() if w.strip()]
    cls = {w: i for i, w in enumerate(wnids)}
    train = []
    for w in wnids:
        files = sorted((d / "train" / w / "images").glob("*.JPEG"))
        if not files:
            raise DatasetError(f"--data-dir {d}: no train/{w}/images/*.JPEG; expected {TINY_LAYOUT}")
        if max_per_class is not None:
            files = files[:max_per_class]
        train += [(f, cls[w]) for f in files]
    test = []
    for line in (d / "val" / "val_annotations.txt").read_text().splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and parts[1] in cls:
            test.append((d / "val" / "images" / parts[0], cls[parts[1]]))
    if not test:
        raise DatasetError(f"--data-dir {d}: val/val_annotations.txt lists no known class; expected {TINY_LAYOUT}")
    test.sort()
    if max_test is not None:
        test = test[:max_test]
    listing = "\n".join(f"{p.relative_to(d)}:{p.stat().st_size}" for p, _ in train + test if p.exists())
    key = hashlib.sha256(f"{d.resolve()}\n{listing}".encode()).hexdigest()[:20]
    path = cache_dir() / "data" / f"tinyimagenet-{key}.npz"
    if use_cache and path.is_file():
        z = np.load(path)
        xtr, ytr, xte, yte = z["xtr"], z["ytr"], z["xte"], z["yte"]
    else:
        def read_all(items):
            missing = [p for p, _ in items if not p.is_file()]
            if missing:
                raise DatasetError(f"--data-dir {d}: missing {missing[0].relative_to(d)}; expected {TINY_LAYOUT}")
            try:
                return (np.stack([read_image(p) for p, _ in items]), np.array([c for _, c in items], dtype=np.int64))
            except ValueError as exc:
                raise DatasetError(f"--data-dir {d}: {str(exc).splitlines()[0]}") from None

        xtr, ytr = read_all(train)
        xte, yte = read_all(test)
        if use_cache:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp.npz")
            np.savez(tmp, xtr=xtr, ytr=ytr, xte=xte, yte=yte)
            tmp.replace(path)
    return Dataset("tinyimagenet", _scale(xtr), ytr, _scale(xte), yte, len(wnids))
