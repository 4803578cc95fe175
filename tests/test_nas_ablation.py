"""`aidi nas-ablation kd`: supernets with and without KD over a fixed sample of members and seeds (digits)."""

import json
import statistics

import pytest
import torch
from typer.testing import CliRunner

from aidi.analysis.ablation import KD_ARM_ALPHA, run_kd_ablation, table_text
from aidi.analysis.cli import app
from aidi.models.nas import supernet as S

runner = CliRunner()
#: tiny: one full epoch, then a width phase in which the KD arm distils (1 s per supernet on digits)
TINY = ["--seeds", "0,1", "--archs", "2", "--epochs", "1,0,0,1", "--finetune-epochs", "1", "--quick"]


pytestmark = pytest.mark.usefixtures("private_cache")


@pytest.fixture(scope="module")
def result(tmp_path_factory, private_cache):
    out = tmp_path_factory.mktemp("abl")
    return run_kd_ablation("digits", seeds=[0, 1], n_archs=2, epochs=[1, 0, 0, 1], finetune_epochs=1, quick=True,
                           out=out / "o")


def test_ablation_covers_every_seed_arm_and_member(result):
    rows = result["rows"]
    assert len(rows) == 2 * 2 * 2 and result["seeds"] == [0, 1] and result["alpha"] == (S.SupernetConfig().alpha or KD_ARM_ALPHA) > 0
    ids = [a["id"] for a in result["archs"]]
    assert {(r["seed"], r["arm"], r["arch_id"]) for r in rows} == {(s, a, i) for s in (0, 1) for a in ("kd", "no_kd")
                                                                    for i in ids}
    n_test = result["images"]["test"]
    for r in rows:  # accuracies over whole test images
        for key in ("inherited_test_acc", "finetuned_test_acc"):
            assert 0 <= r[key] <= 1 and r[key] * n_test == pytest.approx(round(r[key] * n_test), abs=1e-6)
    # the fixed sample: the same members whatever the training seeds
    again = run_kd_ablation("digits", seeds=[0], n_archs=3, epochs=[1, 0, 0, 1], finetune_epochs=1, quick=True)
    assert [a["id"] for a in again["archs"]][:2] == ids
    # seed 0 alone reproduces the two-seed run's seed-0 rows (deterministic; the data split is the first seed's)
    assert [r for r in again["rows"] if r["arch_id"] in ids] == [r for r in rows if r["seed"] == 0]


def test_means_and_gains_come_from_the_rows(result):
    rows = result["rows"]
    for short, key in (("inherited", "inherited_test_acc"), ("finetuned", "finetuned_test_acc")):
        per = {(s, arm): statistics.fmean(r[key] for r in rows if r["seed"] == s and r["arm"] == arm)
               for s in (0, 1) for arm in ("kd", "no_kd")}
        for arm in ("kd", "no_kd"):
            v = [per[(0, arm)], per[(1, arm)]]
            assert result[arm][short]["mean"] == pytest.approx(statistics.fmean(v), abs=1e-12)
            assert result[arm][short]["std"] == pytest.approx(statistics.stdev(v), abs=1e-12)
        gains = [per[(s, "kd")] - per[(s, "no_kd")] for s in (0, 1)]
        assert result[f"kd_gain_{short}"]["mean"] == pytest.approx(statistics.fmean(gains), abs=1e-12)
        said = "does not help" if statistics.fmean(gains) <= 0 else "helps"
        assert said in result["verdict"].split(";")[0 if short == "inherited" else 1]
    # the arms really differ: alpha reached the training (same seed, data and members)
    kd = [r["inherited_test_acc"] for r in rows if r["arm"] == "kd"]
    no = [r["inherited_test_acc"] for r in rows if r["arm"] == "no_kd"]
    assert kd != no


def test_command_writes_json_and_text(result, tmp_path):
    out = tmp_path / "o"
    r = runner.invoke(app, ["nas-ablation", "kd", *TINY, "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout.strip().splitlines()[-1])
    assert got["rows"] == result["rows"]  # the same numbers as the API (supernets from the cache)
    assert json.loads((out / "kd-ablation.json").read_text())["rows"] == result["rows"]
    text = (out / "kd-ablation.txt").read_text()
    assert text == table_text(got) and got["verdict"] in text
    for a in got["archs"]:
        assert a["arch"] in text
    r = runner.invoke(app, ["nas-ablation", "kd", *TINY, "--out", str(out)])
    assert r.exit_code == 0 and "gain (KD - no KD)" in r.stdout


@pytest.mark.parametrize("args, msg", [
    (["--seeds", "0,x"], "--seeds"),
    (["--seeds", "-1"], "--seeds"),
    (["--epochs", "1,2"], "--epochs"),
    (["--epochs", "0,0,0,1"], "--epochs"),
    (["--alpha", "0"], "--alpha"),
    (["--archs", "0"], "--archs"),
])
def test_bad_options_are_one_line_errors(args, msg, tmp_path):
    r = runner.invoke(app, ["nas-ablation", "kd", "--quick", "--out", str(tmp_path / "o"), *args])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.output


def test_cuda_without_cuda_is_a_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    r = runner.invoke(app, ["nas-ablation", "kd", "--quick", "--device", "cuda", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "no CUDA device" in r.stderr and len(r.stderr.strip().splitlines()) == 1
