"""Benchmarks (``aidi bench``): every speed is reported next to a baseline measured in the same run."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import simpy

from aidi.sim import des, harvesters, oracle
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.workload import Workload


def _best(fn: Callable[[], object], repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def synthetic_workload(n_units: int, seed: int = 0) -> Workload:
    """n units of 1-5 ms at the MSP430's 5.7 mW, in 10 layers (seeded)."""
    rng = np.random.default_rng(seed)
    d = rng.uniform(1e-3, 5e-3, n_units)
    p = 5.664e-3
    e = np.stack([d * p * 0.6, d * p * 0.3, d * p * 0.1], axis=1)
    return Workload([f"u{i}" for i in range(n_units)], np.arange(n_units) * 10 // n_units, d, e, 0.5e-3,
                    0.5e-3 * p, 1.5e-6)


def bare_simpy(n_timeouts: int) -> None:
    """The baseline: one process yielding n timeouts, nothing else."""
    env = simpy.Environment()

    def proc():
        for _ in range(n_timeouts):
            yield env.timeout(1e-3)

    env.process(proc())
    env.run()


def bench_des(quick: bool = False) -> dict:
    """SimPy-model events per second vs a bare SimPy loop with as many timeouts."""
    n = 2000 if quick else 10000
    work = synthetic_workload(n)
    # ~20 units per power cycle: thousands of units, hundreds of power cycles
    power = PowerConfig(capacitor_F=470e-6, v_on=2.99, v_off=2.7, v_max=3.3, leakage_A=1e-7)
    seg = harvesters.thevenin(3.0, 200.0)
    sim = SimConfig()
    res, log = des.simulate(work, power, seg, sim, log=True)  # warm-up (numba compile) and event count
    n_events = len(log)
    repeat = 2 if quick else 3
    t_model = _best(lambda: des.simulate(work, power, seg, sim), repeat)
    t_bare = _best(lambda: bare_simpy(n_events), repeat)
    oracle.simulate(work, power, seg, sim)
    t_oracle = _best(lambda: oracle.simulate(work, power, seg, sim), repeat)
    return {
        "units": n,
        "power_cycles": res["power_cycles"],
        "events": n_events,
        "model_events_per_s": n_events / t_model,
        "bare_simpy_events_per_s": n_events / t_bare,
        "ratio_model_to_bare": t_bare / t_model,
        "oracle_s": t_oracle,
        "des_s": t_model,
        "oracle_speedup": t_model / t_oracle,
    }


def run_all(quick: bool = False) -> dict:
    return {"des": bench_des(quick)}
