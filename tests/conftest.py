"""Shared test gate for the C toolchain.

``@pytest.mark.toolchain("host")`` / ``("msp430-sim")`` / ``("sim")`` (targets of
``aidi.models.emit.build.NEEDS``) skips a test whose tools are missing, with the
missing executables and their Debian packages in the reason.  With
``AIDI_REQUIRE_TOOLCHAIN=1`` (set by ``.ci/run``) a missing tool is a failure
instead, so CI cannot pass by skipping.  A module-level ``pytestmark`` covers the
module's fixtures too: the gate runs before any fixture is set up.

``@pytest.mark.chromium`` gates the same way on a Chrome/Chromium for static figure export (kaleido;
Debian package chromium, installed by ``.ci/run``).

Inside a test, the ``require_toolchain`` fixture applies the same gate midway
(e.g. after a host-only part that ran).

``@pytest.mark.dataset("fashion-mnist")`` likewise skips a test whose data set is not
in its default folder (``aidi.models.data.DEFAULT_DIRS``, naming the Debian package);
``AIDI_REQUIRE_DATASETS=1`` (set by ``.ci/run``, which installs the package) makes
that a failure.  ``AIDI_SYSTEM_DATASETS=/some/empty/folder`` hides Debian's data sets, as on a machine
without those packages (:data:`aidi.models.data.SYSTEM_DATASETS`).

``pytest -m "not slow and not toolchain"`` is the fast subset (see README).
"""

from __future__ import annotations

import os

import pytest

from aidi.models.emit import build

REQUIRE_ENV = "AIDI_REQUIRE_TOOLCHAIN"
REQUIRE_DATA_ENV = "AIDI_REQUIRE_DATASETS"
#: Debian packages that install a data set into its default folder
DATASET_PACKAGES = {"fashion-mnist": "dataset-fashion-mnist"}


def gate_toolchain(*targets: str) -> None:
    """Skip (or fail under ``AIDI_REQUIRE_TOOLCHAIN=1``) unless every target's tools are on PATH."""
    if not targets:
        raise ValueError("toolchain marker needs a target, e.g. @pytest.mark.toolchain('host')")
    msgs = [f"{t}: {m}" for t in targets if (m := build.missing_message(t))]
    if not msgs:
        return
    why = "; ".join(msgs)
    if os.environ.get(REQUIRE_ENV, "") == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {why}", pytrace=False)
    pytest.skip(why)


def gate_datasets(*names: str) -> None:
    """Skip (or fail under ``AIDI_REQUIRE_DATASETS=1``) unless every data set's default folder has its files."""
    from aidi.models.data import DEFAULT_DIRS, has_idx_files

    if not names:
        raise ValueError("dataset marker needs a name, e.g. @pytest.mark.dataset('fashion-mnist')")
    msgs = [f"{n}: no IDX files in {DEFAULT_DIRS[n]} (Debian package {DATASET_PACKAGES[n]})"
            for n in names if not has_idx_files(DEFAULT_DIRS[n])]
    if msgs and os.environ.get(REQUIRE_DATA_ENV, "") == "1":
        pytest.fail(f"{REQUIRE_DATA_ENV}=1 but {'; '.join(msgs)}", pytrace=False)
    if msgs:
        pytest.skip("; ".join(msgs))


def gate_chromium() -> None:
    """Skip (or fail under ``AIDI_REQUIRE_TOOLCHAIN=1``) unless static figure export can find a browser."""
    from aidi.analysis.figures import static_missing

    why = static_missing()
    if not why:
        return
    if os.environ.get(REQUIRE_ENV, "") == "1":
        pytest.fail(f"{REQUIRE_ENV}=1 but {why}", pytrace=False)
    pytest.skip(why)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marks = list(item.iter_markers("toolchain"))
    if marks:
        gate_toolchain(*dict.fromkeys(t for mark in marks for t in mark.args))
    if any(item.iter_markers("chromium")):
        gate_chromium()
    marks = list(item.iter_markers("dataset"))
    if marks:
        gate_datasets(*dict.fromkeys(t for mark in marks for t in mark.args))


@pytest.fixture
def require_toolchain():
    """``require_toolchain("msp430-sim")``: the marker's gate, called inside a test."""
    return gate_toolchain


@pytest.fixture(scope="module")
def private_cache(tmp_path_factory):
    """``AIDI_CACHE_DIR`` set to a fresh folder for one test module (trained supernets and models go there,
    not into the user's cache); yields the folder."""
    folder = tmp_path_factory.mktemp("aidi-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("AIDI_CACHE_DIR", str(folder))
    yield folder
    mp.undo()
