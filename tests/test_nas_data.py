"""CIFAR-10, Tiny ImageNet, Fashion-MNIST / MNIST loaders on tiny files written here in the real layouts
(JPEGs made and decoded by Pillow; IDX files by hand), and on the installed Fashion-MNIST."""

import gzip
import io
import json
import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from PIL import Image
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.data import (DEFAULT_DIRS, DatasetError, load_cifar10, load_dataset, load_idx_folder, load_image_folder,
                              load_tinyimagenet, read_idx, read_image)


def write_cifar(d, n=20, seed=0):
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        x = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        y = [int(v) for v in rng.integers(0, 10, n)]
        with open(d / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"labels": y, b"data": x,
                         b"filenames": [b"x.png"] * n}, f)
        batches[name] = (x, y)
    return batches


def smooth_image(rng, h=64, w=64):
    yy, xx = np.mgrid[0:h, 0:w]
    a, b, c = rng.uniform(0.5, 3, 3)
    img = np.stack([128 + 100 * np.sin(xx / (8 * a)), 128 + 100 * np.cos(yy / (8 * b)),
                    128 + 80 * np.sin((xx + yy) / (10 * c))], -1)
    return np.clip(img, 0, 255).astype(np.uint8)


def write_tiny(d, wnids=("n01443537", "n01629819", "n01641577"), per_class=3, n_val=4, seed=0):
    rng = np.random.default_rng(seed)
    (d / "val" / "images").mkdir(parents=True)
    (d / "wnids.txt").write_text("\n".join(wnids) + "\n")
    imgs = {}
    for w in wnids:
        (d / "train" / w / "images").mkdir(parents=True)
        (d / "train" / w / f"{w}_boxes.txt").write_text("")
        for k in range(per_class):
            img = smooth_image(rng)
            if k == 1:  # Tiny ImageNet has some grayscale JPEGs
                img = img[..., 0]
            (d / "train" / w / "images" / f"{w}_{k}.JPEG").write_bytes(jpeg_bytes(img, 2 if k == 2 else 0))
            imgs[f"{w}_{k}"] = img
    lines = []
    for k in range(n_val):
        name = f"val_{k}.JPEG"
        img = smooth_image(rng)
        (d / "val" / "images" / name).write_bytes(jpeg_bytes(img))
        lines.append(f"{name}\t{wnids[k % len(wnids)]}\t0\t0\t63\t63")
    (d / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return imgs


def jpeg_bytes(img, subsampling=0):
    """A baseline JPEG made by Pillow (subsampling 0 = 4:4:4, 2 = 4:2:0), quality 95."""
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, "JPEG", quality=95, subsampling=subsampling)
    return buf.getvalue()


def test_read_image_decodes_pillow_jpegs(tmp_path):
    rng = np.random.default_rng(0)
    img = smooth_image(rng, 37, 29)
    for sub, tol in ((0, 1.5), (2, 3.0)):
        (tmp_path / "a.jpg").write_bytes(jpeg_bytes(img, sub))
        out = read_image(tmp_path / "a.jpg")
        assert out.shape == (3, 37, 29) and np.abs(out.transpose(1, 2, 0).astype(int) - img).mean() < tol
    (tmp_path / "g.jpg").write_bytes(jpeg_bytes(img[..., 1]))
    g = read_image(tmp_path / "g.jpg")
    assert np.array_equal(g[0], g[2]) and np.abs(g[0].astype(int) - img[..., 1]).mean() < 1.5
    (tmp_path / "bad.JPEG").write_bytes(b"not a jpeg")
    with pytest.raises(DatasetError, match=r"bad\.JPEG: not a readable image"):
        read_image(tmp_path / "bad.JPEG")


def test_cifar10_loader(tmp_path):
    b = write_cifar(tmp_path / "cifar-10-batches-py")
    ds = load_cifar10(tmp_path)  # the parent folder works too
    assert ds.x_train.shape == (100, 3, 32, 32) and ds.x_test.shape == (20, 3, 32, 32)
    x0, y0 = b["data_batch_1"]
    assert np.allclose(ds.x_train[0], x0[0].reshape(3, 32, 32) / 255 * (1 - 2**-15), atol=1e-6)
    assert list(ds.y_train[:20]) == y0
    assert ds.x_train.max() < 1.0 and ds.n_classes == 10
    small = load_cifar10(tmp_path, max_train=30, max_test=5)
    assert len(small.y_train) == 30 and len(small.y_test) == 5


def test_cifar10_errors_name_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="data_batch_1"):
        load_cifar10(tmp_path / "missing")
    write_cifar(tmp_path / "c")
    (tmp_path / "c" / "test_batch").unlink()
    with pytest.raises(DatasetError, match="missing test_batch"):
        load_cifar10(tmp_path / "c")


def test_tinyimagenet_loader(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    imgs = write_tiny(tmp_path / "tiny-imagenet-200")
    ds = load_tinyimagenet(tmp_path)
    assert ds.x_train.shape == (9, 3, 64, 64) and ds.x_test.shape == (4, 3, 64, 64) and ds.n_classes == 3
    assert list(ds.y_train) == [0, 0, 0, 1, 1, 1, 2, 2, 2] and list(ds.y_test) == [0, 1, 2, 0]
    x = read_image(tmp_path / "tiny-imagenet-200" / "train" / "n01443537" / "images" / "n01443537_0.JPEG")
    assert x.shape == (3, 64, 64) and np.abs(x.transpose(1, 2, 0).astype(int) - imgs["n01443537_0"]).mean() < 1.5
    gray = read_image(tmp_path / "tiny-imagenet-200" / "train" / "n01443537" / "images" / "n01443537_1.JPEG")
    assert np.array_equal(gray[0], gray[1])
    again = load_tinyimagenet(tmp_path)  # from the decoded-array cache
    assert np.array_equal(again.x_train, ds.x_train)
    assert any((tmp_path / "cache" / "data").iterdir())
    # the generic loader (what `aidi run` uses for a saved model) finds it through $AIDI_DATA_DIR
    monkeypatch.setenv("AIDI_DATA_DIR", str(tmp_path))
    assert load_dataset("tinyimagenet", 0, (3, 64, 64)).x_train.shape == ds.x_train.shape


def test_tinyimagenet_errors_name_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="wnids.txt"):
        load_tinyimagenet(tmp_path / "none")
    write_tiny(tmp_path / "t")
    (tmp_path / "t" / "val" / "val_annotations.txt").unlink()
    with pytest.raises(DatasetError, match="val_annotations"):
        load_tinyimagenet(tmp_path / "t")


@pytest.mark.slow
def test_nas_runs_on_a_cifar10_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    write_cifar(tmp_path / "cifar", n=12)
    r = CliRunner().invoke(app, ["nas", "lab-1mF", "--dataset", "cifar10", "--data-dir", str(tmp_path / "cifar"),
                                 "--budget", "2", "--quick", "--json", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["search_space"] == "inas" and s["search"]["evaluations"] == 2
    # a written candidate names its data folder: `aidi run` reloads it without --data-dir
    tomls = sorted((tmp_path / "out" / "candidates").glob("*.toml"))
    assert tomls, "the search confirmed no candidate"
    monkeypatch.delenv("AIDI_DATA_DIR", raising=False)
    assert f'data_dir = "{(tmp_path / "cifar").resolve()}"' in tomls[0].read_text()
    r = CliRunner().invoke(app, ["run", str(tomls[0]), "--engine", "oracle", "--json"])
    assert r.exit_code == 0, r.output


# --------------------------------------------------------------------------- IDX (Fashion-MNIST, MNIST)
def idx_bytes(a, type_code=0x08):
    a = np.asarray(a)
    return bytes([0, 0, type_code, a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(a.dtype.newbyteorder(">")).tobytes()


def write_idx(d, n_train=12, n_test=5, gz=True, seed=0, hw=(28, 28)):
    """The four standard files in folder d; returns their arrays."""
    rng = np.random.default_rng(seed)
    d.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        arrays[f"{prefix}-images-idx3-ubyte"] = rng.integers(0, 256, (n, *hw), dtype=np.uint8)
        arrays[f"{prefix}-labels-idx1-ubyte"] = rng.integers(0, 10, n, dtype=np.uint8)
    for name, a in arrays.items():
        raw = idx_bytes(a)
        (d / (name + ".gz" if gz else name)).write_bytes(gzip.compress(raw) if gz else raw)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_loader_reads_the_standard_files(tmp_path, gz):
    a = write_idx(tmp_path / "fashion-mnist", gz=gz)
    ds = load_idx_folder("fashion-mnist", tmp_path)  # the parent folder works too
    assert ds.name == "fashion-mnist" and ds.input_shape == (1, 28, 28) and ds.n_classes == 10
    assert ds.x_train.shape == (12, 1, 28, 28) and ds.x_test.shape == (5, 1, 28, 28)
    assert np.array_equal(ds.y_train, a["train-labels-idx1-ubyte"].astype(np.int64))
    assert np.array_equal(ds.y_test, a["t10k-labels-idx1-ubyte"].astype(np.int64))
    assert np.allclose(ds.x_train[:, 0], a["train-images-idx3-ubyte"] / 255 * (1 - 2**-15), atol=1e-6)
    assert ds.x_train.dtype == np.float32 and ds.x_train.max() < 1.0
    small = load_idx_folder("fashion-mnist", tmp_path / "fashion-mnist", max_train=4, max_test=2)
    assert len(small.y_train) == 4 and len(small.y_test) == 2
    # load_image_folder and load_dataset (what `aidi nas` and `trained:mnist` use) reach the same loader
    assert np.array_equal(load_image_folder("mnist", tmp_path / "fashion-mnist").y_test, ds.y_test)
    assert load_dataset("mnist", 0, (1, 28, 28), data_dir=tmp_path / "fashion-mnist").name == "mnist"
    with pytest.raises(ValueError, match="input shape \\[1, 28, 28\\], model input is \\[1, 8, 8\\]"):
        load_dataset("mnist", 0, (1, 8, 8), data_dir=tmp_path / "fashion-mnist")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 5), min_size=1, max_size=4), st.sampled_from([(0x08, np.uint8), (0x0B, np.int16),
                                                                          (0x0C, np.int32), (0x0D, np.float32)]),
       st.booleans(), st.integers(0, 2**31 - 1))
def test_read_idx_round_trips_any_shape_and_type(tmp_path_factory, shape, kind, gz, seed):
    code, dtype = kind
    rng = np.random.default_rng(seed)
    a = (rng.normal(size=shape) * 100).astype(dtype)
    p = tmp_path_factory.mktemp("idx") / ("a.idx.gz" if gz else "a.idx")
    p.write_bytes(gzip.compress(idx_bytes(a, code)) if gz else idx_bytes(a, code))
    out = read_idx(p, len(shape))
    assert out.dtype == np.dtype(dtype) and np.array_equal(out, a)


def test_idx_errors_name_the_file(tmp_path):
    d = tmp_path / "d"
    write_idx(d, gz=False)
    f = d / "train-images-idx3-ubyte"
    good = f.read_bytes()
    f.write_bytes(b"\x00\x00\x08\x01" + good[4:])  # a labels magic number on the images file
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: IDX file has 1 dimensions, expected 3 "
                                           r"\(magic number 00000801, expected 00000803\)"):
        load_idx_folder("mnist", d)
    f.write_bytes(b"PK\x03\x04" + good[4:])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: not an IDX file \(magic number 504b0304"):
        load_idx_folder("mnist", d)
    f.write_bytes(good[:-1])
    with pytest.raises(DatasetError, match=r"train-images-idx3-ubyte: IDX dimensions \[12, 28, 28\] need 9424 bytes, "
                                           r"the file has 9423"):
        load_idx_folder("mnist", d)
    f.write_bytes(good[:10])
    with pytest.raises(DatasetError, match="IDX header cut short"):
        load_idx_folder("mnist", d)
    f.write_bytes(good)
    (d / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.zeros(4, np.uint8)))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte\[.gz\]: 4 labels for 5 images"):
        load_idx_folder("mnist", d)
    (d / "t10k-labels-idx1-ubyte").write_bytes(idx_bytes(np.full(5, 10, np.uint8)))
    with pytest.raises(DatasetError, match="label 10 out of range 0..9"):
        load_idx_folder("mnist", d)
    (d / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DatasetError, match="missing t10k-labels-idx1-ubyte\\[.gz\\]; expected a folder with the IDX"):
        load_idx_folder("mnist", d)
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip")
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: cannot read"):
        load_idx_folder("mnist", d)
    z = bytearray(gzip.compress(idx_bytes(np.zeros(5, np.uint8)) * 50))
    z[20] ^= 0xFF  # a corrupt deflate stream
    (d / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(z))
    with pytest.raises(DatasetError, match=r"t10k-labels-idx1-ubyte.gz: cannot read"):
        load_idx_folder("mnist", d)
    with pytest.raises(DatasetError, match="dataset mnist needs --data-dir"):
        load_idx_folder("mnist", None, use_env=False)


def test_idx_folder_falls_back_on_aidi_data_dir(tmp_path, monkeypatch):
    a = write_idx(tmp_path / "mnist", n_train=3, n_test=2)
    monkeypatch.setenv("AIDI_DATA_DIR", str(tmp_path))
    ds = load_dataset("mnist", 0, (1, 28, 28))
    assert np.array_equal(ds.y_test, a["t10k-labels-idx1-ubyte"])


def test_nas_dataset_errors_are_one_line(tmp_path):
    r = CliRunner().invoke(app, ["nas", "lab-1mF", "--dataset", "mnist", "--data-dir", str(tmp_path / "none"),
                                 "--budget", "1", "--quick", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert r.output.strip().count("\n") == 0 and "none: folder not found; expected a folder with the IDX" in r.output


def test_trained_mnist_weights_in_a_scenario(tmp_path, monkeypatch):
    """[model] weights = "trained:mnist" trains on the IDX folder named by data_dir; `aidi run` uses it."""
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    write_idx(tmp_path / "data", n_train=40, n_test=10)
    sc = tmp_path / "s.toml"
    sc.write_text(f"""name = "mnist-test"
[power]
capacitor_F = 1e-3
v_on = 3.3
v_off = 1.8
v_max = 3.6
[harvester]
kind = "constant"
power_W = 5e-3
[model]
input = [1, 28, 28]
layers = [{{type = "conv", k = 5, filters = 4, stride = 2}}, {{type = "fc", units = 10}}]
weights = "trained:mnist"
epochs = 1
data_dir = "{tmp_path / 'data'}"
""")
    r = CliRunner().invoke(app, ["run", str(sc), "--engine", "des", "--functional", "--json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert out["completed"] and out["output_matches_reference"] is True
    assert len(out["output"]) == 10
    # trained on the folder's data: the saved model names the data set it was trained on
    pts = list((tmp_path / "cache" / "models").glob("*.pt"))
    assert len(pts) == 1
    import torch

    assert torch.load(pts[0], weights_only=False)["meta"]["dataset"] == "mnist"


@pytest.mark.dataset("fashion-mnist")
def test_real_fashion_mnist_from_the_debian_package():
    ds = load_dataset("fashion-mnist", 0, (1, 28, 28))
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    # the published split is balanced: 6000 / 1000 images per class
    assert np.array_equal(np.bincount(ds.y_train), np.full(10, 6000))
    assert np.array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    # first training labels of the published file (9 ankle boot, 0 T-shirt/top, 0, 3 dress, 0)
    assert list(ds.y_train[:5]) == [9, 0, 0, 3, 0]
    assert ds.x_train.min() == 0.0 and ds.x_train.max() == np.float32(1 - 2**-15)
    sub = load_image_folder("fashion-mnist", None, max_train=100, max_test=20)  # the Debian folder by default
    assert sub.x_train.shape == (100, 1, 28, 28)
    assert DEFAULT_DIRS["fashion-mnist"].is_dir()


@pytest.mark.dataset("fashion-mnist")
def test_fashion_mnist_search_space_fits_every_member():
    from aidi.models.layers import parse_network
    from aidi.models.nas import space_for

    sp = space_for("fashion-mnist", (1, 28, 28), 10)
    assert sp.name == "fashion-mnist" and sp.input_shape == (1, 28, 28)
    net = parse_network(sp.largest().to_layers(), sp.input_shape)
    assert net is not None


@pytest.mark.slow
def test_nas_runs_on_an_mnist_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    write_idx(tmp_path / "mnist", n_train=40, n_test=10)
    r = CliRunner().invoke(app, ["nas", "lab-1mF", "--dataset", "mnist", "--data-dir", str(tmp_path / "mnist"),
                                 "--budget", "2", "--quick", "--json", "--out", str(tmp_path / "out")])
    assert r.exit_code == 0, r.output
    s = json.loads(r.stdout)
    assert s["dataset"] == "mnist" and s["search_space"] == "mnist" and s["search"]["evaluations"] == 2
    tomls = sorted((tmp_path / "out" / "candidates").glob("*.toml"))
    assert tomls and "input = [1, 28, 28]" in tomls[0].read_text()


@pytest.mark.slow
@pytest.mark.dataset("fashion-mnist")
def test_trained_fashion_mnist_learns(tmp_path, monkeypatch):
    """`weights = "trained:fashion-mnist"` trains on the Debian package's files: one epoch of a tiny CNN
    reaches the accuracy a real data set gives (0.836 measured; chance is 0.1)."""
    from aidi.models.net import load_model

    monkeypatch.setenv("AIDI_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("AIDI_DATA_DIR", raising=False)
    m = load_model([{"type": "conv", "k": 5, "filters": 4, "stride": 2}, {"type": "fc", "units": 10}], [1, 28, 28],
                   "trained:fashion-mnist", seed=0, epochs=1)
    assert m.dataset.name == "fashion-mnist" and len(m.dataset.y_test) == 10000
    assert 0.75 < m.float_accuracy < 0.95
