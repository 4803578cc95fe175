"""aidi bench's fair timing (analysis/bench.py ``_timed``): both sides of a ratio get the same samples, each long
enough to time, the wall minimum and the CPU median per call."""

from __future__ import annotations

import pytest

from aidi.analysis import bench


class FakeClock:
    """A wall clock and a CPU clock that only the timed function advances."""

    def __init__(self):
        self.wall = self.cpu = 0.0
        self.calls = 0

    def call(self, cpu_s, wall_s):
        self.calls += 1
        self.cpu += cpu_s
        self.wall += wall_s


@pytest.fixture
def clock(monkeypatch):
    c = FakeClock()
    monkeypatch.setattr(bench.time, "perf_counter", lambda: c.wall)
    monkeypatch.setattr(bench.time, "process_time", lambda: c.cpu)
    return c


def test_samples_are_long_enough_and_per_call(clock):
    """A call of 30 ms CPU: 7 calls a sample reach the 0.2 s a sample needs; the times come back per call."""
    wall, cpu = bench._timed(lambda: clock.call(0.03, 0.05), samples=5, min_s=0.2)
    assert clock.calls == 1 + 5 * 7
    assert wall == pytest.approx(0.05)
    assert cpu == pytest.approx(0.03)


def test_cpu_median_ignores_a_loaded_sample(clock):
    """One sample slowed down by other jobs (more CPU for the same call: cache misses, frequency) moves the
    CPU median not at all, and the wall minimum keeps the quiet samples' figure."""
    costs = iter([(0.5, 0.5)] + [(0.5, 0.5)] * 2 + [(1.5, 4.0)] + [(0.5, 0.5)] * 2)
    wall, cpu = bench._timed(lambda: clock.call(*next(costs)), samples=5, min_s=0.2)
    assert clock.calls == 6  # one call a sample: the first took more than min_s
    assert cpu == pytest.approx(0.5)
    assert wall == pytest.approx(0.5)


def test_a_call_too_fast_to_time_still_gets_samples(clock):
    """A call that reads 0 s of CPU (below the clock's resolution) is repeated, not divided by zero."""
    wall, cpu = bench._timed(lambda: clock.call(0.0, 0.0), samples=3, min_s=2.05e-5)
    assert clock.calls == 1 + 3 * 21  # as if the call had taken the 1 us floor
    assert wall == cpu == 0.0
