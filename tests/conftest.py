"""Shared test gate for the C toolchain.

``@pytest.mark.toolchain("host")`` / ``("msp430-sim")`` / ``("sim")`` (targets of
``aidi.models.emit.build.NEEDS``) skips a test whose tools are missing, with the
missing executables and their Debian packages in the reason.  With
``AIDI_REQUIRE_TOOLCHAIN=1`` (set by ``.ci/run``) a missing tool is a failure
instead, so CI cannot pass by skipping.  A module-level ``pytestmark`` covers the
module's fixtures too: the gate runs before any fixture is set up.

Inside a test, the ``require_toolchain`` fixture applies the same gate midway
(e.g. after a host-only part that ran).

``pytest -m "not slow and not toolchain"`` is the fast subset (see README).
"""

from __future__ import annotations

import os

import pytest

from aidi.models.emit import build

REQUIRE_ENV = "AIDI_REQUIRE_TOOLCHAIN"


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


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    marks = list(item.iter_markers("toolchain"))
    if marks:
        gate_toolchain(*dict.fromkeys(t for mark in marks for t in mark.args))


@pytest.fixture
def require_toolchain():
    """``require_toolchain("msp430-sim")``: the marker's gate, called inside a test."""
    return gate_toolchain
