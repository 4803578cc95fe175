"""The optimizer's designs kept between runs (:mod:`aidi.models.design_cache`).

What is stored equals what the optimizer returns, and a run from it equals a run without it; the key
changes with everything the optimizer is given (power, harvester data, platform, SRAM budget, pinned
execution values, dispatch, aidi's code) and with nothing else; a cost-only run that finds its designs
loads none of the ranking kernels.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aidi.analysis import jsonout, pipeline
from aidi.models import design_cache as dc
from aidi.models.schedule.design import ExecutionDesign
from aidi.scenarios import loader

D1 = ExecutionDesign(2, 2, 4, 1, "reuse_O", 2)
D2 = ExecutionDesign(1, 4, 8, 1, "reuse_W", 1, "tile", "cpu")


def _run(sc, store=None) -> tuple[list, dict]:
    """(designs of the plan, the oracle's result as strict JSON) of scenario ``sc``."""
    built = pipeline.build(sc, store=store)
    res, _ = pipeline.simulate(built, engine="oracle")
    return [lp.design for lp in built.plan.layers], jsonout.strict(res)


@pytest.mark.parametrize("name", [p.stem for p in loader.shipped()])
def test_stored_designs_are_the_optimizers_and_run_the_same(tmp_path, name):
    """Every shipped scenario (each kind of harvester) is keyed, stored and read back to the same run."""
    sc = loader.load(name)
    store = dc.DesignStore(tmp_path)
    fresh = _run(sc)
    first = _run(sc, store)  # optimized, stored
    again = _run(loader.load(name), store)  # read back, in a newly loaded scenario
    assert (store.misses, store.hits) == (1, 1) and len(list(tmp_path.glob("*.json"))) == 1
    assert fresh == first == again
    stored = json.loads(next(tmp_path.glob("*.json")).read_text())
    assert stored == {"designs": [d.to_dict() for d in fresh[0]]}


def test_the_key_changes_with_each_input_of_the_optimizer_and_only_then(tmp_path, monkeypatch):
    """Each variant is a new entry (a miss); the unchanged scenario, loaded again, finds its own (a hit);
    a value the optimizer is not given (the weights' seed) keeps the key."""
    store = dc.DesignStore(tmp_path)
    base = loader.load("lab-1mF")
    pipeline.build(base, store=store)
    variants = {
        "power": base.with_values(**{"power.capacitor_F": 2e-3}),
        "harvester": base.with_values(**{"harvester.r_ohm": 60.0}),
        "platform": base.with_values(**{"device.mclk_hz": 8e6}),
        "sram budget": base.with_values(**{"device.sram_budget_bytes": 3000}),
        "pinned values": base.with_values(**{"execution.loop_order": "reuse_W"}),
        "dispatch": base.with_values(**{"execution.dispatch": "greedy"}),
    }
    for what, sc in variants.items():
        before = store.misses
        pipeline.build(sc, store=store)
        assert store.misses == before + 1, what
    assert len(list(tmp_path.glob("*.json"))) == 1 + len(variants)
    hits = store.hits
    pipeline.build(loader.load("lab-1mF"), store=store)
    pipeline.build(base.with_values(**{"model.seed": 7}), store=store)  # the weights' seed: no shape changes
    assert store.hits == hits + 2
    monkeypatch.setattr(dc, "code_digest", lambda: "edited source")  # aidi's code changed: a new key
    pipeline.build(base, store=store)
    assert store.misses == 2 + len(variants)


def test_a_trace_file_is_keyed_on_its_content(tmp_path):
    """The harvester's segments are in the key, not its file name: the same path with other samples is a miss."""
    shipped = loader.load("rf-intermittent")
    trace = tmp_path / "trace.csv"
    original = Path(shipped.harvester.file).read_text()
    trace.write_text(original)
    toml = tmp_path / "rf.toml"
    toml.write_text(Path(shipped.path).read_text().replace("traces/rf_powercast.csv", "trace.csv"))
    store = dc.DesignStore(tmp_path / "designs")
    pipeline.build(loader.load(toml), store=store)
    head, *rows = original.splitlines()
    scaled = [f"{t},{float(p) * 1.01!r}" for t, p in (r.split(",") for r in rows)]  # 1 % more power
    trace.write_text("\n".join([head, *scaled]) + "\n")
    pipeline.build(loader.load(toml), store=store)
    trace.write_text(original)
    pipeline.build(loader.load(toml), store=store)
    assert (store.misses, store.hits) == (2, 1)


# --------------------------------------------------------------------------- the key: fingerprint
finite_or_not = st.floats(allow_nan=True, allow_infinity=True)


@given(finite_or_not, finite_or_not)
def test_floats_are_fingerprinted_bit_exactly(a, b):
    assert dc.fingerprint(a) == dc.fingerprint(float(np.float64(a)))
    assert (dc.fingerprint(a) == dc.fingerprint(b)) == (a.hex() == b.hex())


@given(st.lists(st.integers(-2**31, 2**31 - 1), max_size=6), st.lists(st.integers(-2**31, 2**31 - 1), max_size=6))
def test_arrays_and_sequences_are_told_apart(xs, ys):
    assert (dc.fingerprint(np.array(xs, np.int64)) == dc.fingerprint(np.array(ys, np.int64))) == (xs == ys)
    assert (dc.fingerprint(tuple(xs)) == dc.fingerprint(tuple(ys))) == (xs == ys)
    assert dc.fingerprint(tuple(xs)) != dc.fingerprint(list(xs))
    assert dc.fingerprint(np.array(xs, np.int64)) != dc.fingerprint(np.array(xs, np.int32))
    assert (dc.fingerprint((xs, ys)) == dc.fingerprint((xs + ys, []))) == (ys == [])  # nesting is part of it


@dataclass(frozen=True)
class _Point:
    x: float
    note: str = field(default="", compare=False)


def test_types_are_told_apart_and_unknown_ones_refused():
    assert len({dc.fingerprint(v) for v in (1, 1.0, True, "1", None, (1,), [1], {1: 1})}) == 8
    assert dc.fingerprint(np.bool_(True)) == dc.fingerprint(True) and dc.fingerprint(np.int32(3)) == dc.fingerprint(3)
    assert dc.fingerprint(_Point(1.0, "a")) == dc.fingerprint(_Point(1.0, "b"))  # compare=False: no input
    assert dc.fingerprint(_Point(1.0)) != dc.fingerprint(_Point(2.0))
    with pytest.raises(TypeError, match="cannot fingerprint a object"):
        dc.fingerprint(object())


# --------------------------------------------------------------------------- the store
def test_an_unreadable_entry_is_recomputed_and_replaced(tmp_path):
    store = dc.DesignStore(tmp_path)
    key = store.key("k")
    calls = []

    def compute():
        calls.append(1)
        return [D1, D2]

    for text in ("{not json", '{"designs": [{"Tr": 0}]}', json.dumps({"designs": [D1.to_dict()]})):
        (tmp_path / f"{key}.json").write_text(text)  # broken, a bad design, one design for two layers
        assert store.get_or_compute(key, 2, compute) == [D1, D2]
    assert len(calls) == 3 and store.get_or_compute(key, 2, compute) == [D1, D2] and len(calls) == 3


def test_a_folder_that_cannot_be_written_only_means_no_cache(tmp_path):
    blocked = tmp_path / "a file"
    blocked.write_text("")
    store = dc.DesignStore(blocked / "designs")  # mkdir fails, whoever runs the test
    assert store.get_or_compute("k", 1, lambda: [D1]) == [D1]
    assert store.get_or_compute("k", 1, lambda: [D2]) == [D2] and store.misses == 2


def test_the_least_recently_used_entries_go_first(tmp_path):
    store = dc.DesignStore(tmp_path, max_entries=3)
    for i, k in enumerate(("a", "b", "c")):
        store.get_or_compute(k, 1, lambda: [D1])
        os.utime(tmp_path / f"{k}.json", ns=(10**9 * (i + 1),) * 2)
    store.get_or_compute("a", 1, lambda: [D2])  # a hit makes "a" the most recent
    store.get_or_compute("d", 1, lambda: [D2])
    assert sorted(p.stem for p in tmp_path.glob("*.json")) == ["a", "c", "d"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left


# --------------------------------------------------------------------------- the cost-only run that finds them
_KERNELS = """
import json, sys
from typer.testing import CliRunner
from numba.core.registry import CPUDispatcher
from aidi.analysis.cli import app
r = CliRunner().invoke(app, ["run", "lab-1mF", "--engine", "oracle", "--no-functional", "--json"])
loaded = sorted(f"{m}.{k}" for m, mod in list(sys.modules.items()) if m.startswith("aidi.")
                for k, v in vars(mod).items() if isinstance(v, CPUDispatcher) and v.signatures)
print(json.dumps({"exit": r.exit_code, "latency_s": json.loads(r.stdout)["latency_s"], "kernels": loaded,
                  "ranking": "aidi.models.schedule.rank" in sys.modules}))
"""


def test_a_cost_only_run_with_stored_designs_loads_only_the_kernels_it_runs(tmp_path):
    """With an empty store the run optimizes (the ranking kernels load); the next finds its designs and
    loads neither the ranking modules nor any kernel but the plan's and the oracle's, with the same result."""
    env = dict(os.environ, AIDI_CACHE_DIR=str(tmp_path))

    def run() -> dict:
        r = subprocess.run([sys.executable, "-c", _KERNELS], capture_output=True, text=True, timeout=900, env=env)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout.strip().splitlines()[-1])

    cold, warm = run(), run()
    assert cold["exit"] == warm["exit"] == 0 and cold["latency_s"] == warm["latency_s"]
    assert cold["ranking"] and not warm["ranking"]
    assert any(k.startswith("aidi.models.schedule.rank.") for k in cold["kernels"])
    assert set(warm["kernels"]) < set(cold["kernels"])
    assert {k.rsplit(".", 1)[0] for k in warm["kernels"]} <= {"aidi.models.schedule.walk", "aidi.sim.oracle"}
