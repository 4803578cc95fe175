"""CIFAR-10 and Tiny ImageNet loaders on tiny files written here in the real layouts; the JPEG codec."""

import pickle

import numpy as np
import pytest
from typer.testing import CliRunner

from aidi.analysis.cli import app
from aidi.models.data import DatasetError, jpeg, load_cifar10, load_dataset, load_tinyimagenet, read_image


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
            (d / "train" / w / "images" / f"{w}_{k}.JPEG").write_bytes(
                jpeg.encode(img, subsampling="420" if k == 2 else "444"))
            imgs[f"{w}_{k}"] = img
    lines = []
    for k in range(n_val):
        name = f"val_{k}.JPEG"
        img = smooth_image(rng)
        (d / "val" / "images" / name).write_bytes(jpeg.encode(img))
        lines.append(f"{name}\t{wnids[k % len(wnids)]}\t0\t0\t63\t63")
    (d / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return imgs


def test_jpeg_round_trip():
    rng = np.random.default_rng(0)
    img = smooth_image(rng, 37, 29)
    for sub, tol in (("444", 1.0), ("420", 3.0)):
        out = jpeg.decode(jpeg.encode(img, subsampling=sub))
        assert out.shape == img.shape and np.abs(out.astype(int) - img).mean() < tol
    g = img[..., 1]
    assert np.abs(jpeg.decode(jpeg.encode(g)).astype(int) - g).mean() < 1.0
    with pytest.raises(jpeg.JpegError):
        jpeg.decode(b"not a jpeg")
    prog = bytearray(jpeg.encode(g))
    i = prog.index(b"\xff\xc0")
    prog[i + 1] = 0xC2
    with pytest.raises(jpeg.JpegError, match="baseline"):
        jpeg.decode(bytes(prog))


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
    import json

    s = json.loads(r.stdout)
    assert s["search_space"] == "inas" and s["search"]["evaluations"] == 2
    # a written candidate names its data folder: `aidi run` reloads it without --data-dir
    tomls = sorted((tmp_path / "out" / "candidates").glob("*.toml"))
    assert tomls, "the search confirmed no candidate"
    monkeypatch.delenv("AIDI_DATA_DIR", raising=False)
    assert f'data_dir = "{(tmp_path / "cifar").resolve()}"' in tomls[0].read_text()
    r = CliRunner().invoke(app, ["run", str(tomls[0]), "--engine", "oracle", "--json"])
    assert r.exit_code == 0, r.output
