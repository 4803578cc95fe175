"""Benchmarks (``aidi bench``): every speed is reported next to a baseline measured in the same run."""

from __future__ import annotations

import math
import time
from typing import Callable

import numpy as np
import simpy

from aidi.sim import des, harvesters, oracle
from aidi.sim.config import PowerConfig, SimConfig
from aidi.sim.workload import Workload


def _best(fn: Callable[[], object], repeat: int) -> float:
    """The shortest wall time of ``repeat`` calls (s)."""
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


#: the fair timing's policy (:func:`_timed`): samples per side, and the least CPU time of one sample (s)
SAMPLES, SAMPLE_MIN_S = 7, 0.2


def _timed(fn: Callable[[], object], samples: int = SAMPLES, min_s: float = SAMPLE_MIN_S) -> tuple[float, float]:
    """Per call of ``fn``: the shortest wall time and the median CPU time of this process (``time.process_time``)
    over ``samples`` samples (s), each sample ``m`` back-to-back calls, ``m`` chosen from a first call so that a
    sample takes at least ``min_s`` s of CPU.

    Both sides of a ratio are timed with the same policy, so that neither gets more tries at a quiet moment of
    a loaded machine (a best-of-50 against a best-of-2 favours the first); the CPU median is what a machine
    shared with other jobs changes least (their load stretches wall times, hardly CPU times), the wall minimum
    the usual figure on a quiet machine."""
    c0 = time.process_time()
    fn()
    m = max(1, math.ceil(min_s / max(time.process_time() - c0, 1e-6)))
    wall, cpu = [], []
    for _ in range(samples):
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(m):
            fn()
        wall.append((time.perf_counter() - t0) / m)
        cpu.append((time.process_time() - c0) / m)
    return min(wall), float(np.median(cpu))


def synthetic_workload(n_units: int, seed: int = 0) -> Workload:
    """n units of 1-5 ms at the MSP430's 5.7 mW, in 10 layers (seeded), with the MSP430FR5994 preset's
    energy_aware costs (voltage measurement, LPM3 wait, wake-up: :data:`aidi.sim.platform.MSP430FR5994`)."""
    from aidi.sim.platform import MSP430FR5994 as plat

    rng = np.random.default_rng(seed)
    d = rng.uniform(1e-3, 5e-3, n_units)
    p = 5.664e-3
    e = np.stack([d * p * 0.6, d * p * 0.3, d * p * 0.1], axis=1)
    return Workload([f"u{i}" for i in range(n_units)], np.arange(n_units) * 10 // n_units, d, e, 0.5e-3,
                    0.5e-3 * p, 1.5e-6, measure_s=plat.measure_s, measure_W=plat.measure_energy_J / plat.measure_s,
                    wait_W=plat.wait_power_W, wake_s=plat.wake_s, wake_W=plat.active_power_W)


def bare_simpy(n_timeouts: int) -> None:
    """The baseline: one process yielding n timeouts, nothing else."""
    env = simpy.Environment()

    def proc():
        for _ in range(n_timeouts):
            yield env.timeout(1e-3)

    env.process(proc())
    env.run()


#: the SimPy-model benchmark's sources on a 470 uF capacitor (V_on 2.99 V, V_off 2.7 V): a strong Thevenin supply
#: under which the default dispatch runs the whole workload in one power cycle (it waits in LPM3 instead of
#: browning out), and a weak constant source below the LPM3 wait's draw, under which every wait browns out:
#: hundreds of power cycles, each running the units the boot's known bound covers
DES_SOURCES = {"one_cycle": lambda: harvesters.thevenin(3.0, 200.0), "many_cycles": lambda: harvesters.constant(5e-6)}


def bench_des(quick: bool = False) -> dict:
    """SimPy-model events per second vs a bare SimPy loop with as many timeouts, under the default dispatch
    (energy_aware), for each of :data:`DES_SOURCES` (one power cycle; many), and the oracle on the same run; every
    side timed alike (:func:`_timed`: wall minimum and CPU median, ``*_cpu`` the ratios of the latter)."""
    n = 2000 if quick else 10000
    work = synthetic_workload(n)
    power = PowerConfig(capacitor_F=470e-6, v_on=2.99, v_off=2.7, v_max=3.3, leakage_A=1e-7)
    sim = SimConfig(until_s=1e9)
    samples = 3 if quick else SAMPLES
    out = {"units": n, "dispatch": sim.dispatch, "samples": samples}
    for name, source in DES_SOURCES.items():
        seg = source()
        res, log = des.simulate(work, power, seg, sim, log=True)  # warm-up (numba compile) and event count
        n_events = len(log)
        oracle.simulate(work, power, seg, sim)
        t_model, c_model = _timed(lambda: des.simulate(work, power, seg, sim), samples)
        t_bare, c_bare = _timed(lambda: bare_simpy(n_events), samples)
        t_oracle, c_oracle = _timed(lambda: oracle.simulate(work, power, seg, sim), samples)
        out.update({
            f"{name}_power_cycles": res["power_cycles"],
            f"{name}_events": n_events,
            f"{name}_model_events_per_s": n_events / t_model,
            f"{name}_bare_simpy_events_per_s": n_events / t_bare,
            f"{name}_ratio_model_to_bare": t_bare / t_model,
            f"{name}_ratio_model_to_bare_cpu": c_bare / c_model,
            f"{name}_des_s": t_model,
            f"{name}_oracle_s": t_oracle,
            f"{name}_oracle_speedup": t_model / t_oracle,
            f"{name}_oracle_speedup_cpu": c_model / c_oracle,
        })
    return out


def inas_cifar_networks(n: int, seed: int = 0) -> list[list[dict]]:
    """Random members of iNAS's CIFAR-10 space: 5 valid-padding convs, K in {1,3,5,7}, F in {4,8,16,24}, GAP, FC."""
    rng = np.random.default_rng(seed)
    nets = []
    for _ in range(n):
        layers, size = [], 32
        for _ in range(5):
            k = int(rng.choice([k for k in (1, 3, 5, 7) if k <= size]))
            size -= k - 1
            layers.append({"type": "conv", "k": k, "filters": int(rng.choice([4, 8, 16, 24])), "relu": True})
        layers += [{"type": "gap"}, {"type": "fc", "units": 10}]
        nets.append(layers)
    return nets


#: the oracle benchmark's weak supply: iNAS's source voltage through this resistance (ohm) instead of its
#: CIFAR-10 bench's: below the LPM3 wait's draw near V_off, so that every wait browns out and its networks take
#: about one power cycle per unit (1 mF)
WEAK_R_OHM = 20000.0


def _inas_setup(capacitor_F: float = 1e-3, r_ohm: float | None = None):
    from aidi.analysis.inas import INAS_R_EHM_CIFAR, INAS_V_OFF, INAS_V_ON, INAS_V_SUP
    from aidi.sim.platform import MSP430FR5994_EXTFRAM

    power = PowerConfig(capacitor_F=capacitor_F, v_on=INAS_V_ON, v_off=INAS_V_OFF, v_max=INAS_V_SUP)
    seg = harvesters.thevenin(INAS_V_SUP, r_ohm or INAS_R_EHM_CIFAR[capacitor_F])
    return MSP430FR5994_EXTFRAM, power, seg


def bench_oracle(quick: bool = False, dispatch: str = "greedy", r_ohm: float | None = None) -> dict:
    """Oracle evaluations per second on iNAS CIFAR-10 networks under 1 mF, next to the SimPy model, under
    ``dispatch`` (both merge the runs the MCU starts without a measurement), behind iNAS's CIFAR-10 supply
    resistance or ``r_ohm`` (designs are chosen for iNAS's supply either way).

    Three ways to call the oracle, each against the SimPy model on the same networks:

    * ``oracle_evals_per_s``: a compiled :class:`~aidi.sim.oracle.Population` evaluated under a power
      configuration (what a sweep over capacitors or harvesters pays per point and network);
    * ``oracle_fresh_evals_per_s``: compile the population and evaluate it (a NAS generation of
      new networks);
    * ``oracle_single_call_evals_per_s``: :func:`~aidi.sim.oracle.simulate` once per network,
      full result dict included.

    Every side is timed alike (:func:`_timed`): the plain ratios from wall minima, ``*_cpu`` from CPU medians.
    """
    from aidi.models.design_search import design_network
    from aidi.models.hardware import unit_energy_budget

    platform, power, seg = _inas_setup(r_ohm=r_ohm)
    e_budget = unit_energy_budget(power, platform)
    works = []
    for layers in inas_cifar_networks(4 if quick else 32):
        plan = design_network(layers, platform, 4096, e_cycle_J=e_budget, input_shape=[3, 32, 32])
        works.append(Workload.from_graph(plan.task_graph(), platform))
    sim = SimConfig(until_s=1e7, dispatch=dispatch)
    batch = oracle.Population(works).evaluate(power, seg, sim)  # warm-up (numba compile)
    # under a weak supply some designs never get their threshold (a run that cannot progress): left out
    works = [w for k, w in enumerate(works) if batch.error(k) is None and batch.completed[k]]
    pop = oracle.Population(works)
    batch = pop.evaluate(power, seg, sim)
    oracle.simulate(works[0], power, seg, sim)
    des.simulate(works[0], power, seg, sim)
    samples = 3 if quick else SAMPLES
    n = len(works)
    t_eval, c_eval = _timed(lambda: pop.evaluate(power, seg, sim), samples)
    t_fresh, c_fresh = _timed(lambda: oracle.Population(works).evaluate(power, seg, sim), samples)
    t_single, c_single = _timed(lambda: [oracle.simulate(w, power, seg, sim) for w in works], samples)
    t_des, c_des = _timed(lambda: [des.simulate(w, power, seg, sim) for w in works], samples)
    return {
        "dispatch": dispatch,
        "r_ohm": 1.0 / float(seg.seg_g[0]),
        "networks": n,
        "samples": samples,
        "units_mean": float(np.mean([len(w) for w in works])),
        "power_cycles_mean": float(np.mean(batch.power_cycles)),
        "des_evals_per_s": n / t_des,
        "oracle_evals_per_s": n / t_eval,
        "oracle_fresh_evals_per_s": n / t_fresh,
        "oracle_single_call_evals_per_s": n / t_single,
        # each ratio twice: from the wall minima and from the CPU medians (see _timed)
        "speedup_oracle_vs_des": t_des / t_eval,
        "speedup_oracle_vs_des_cpu": c_des / c_eval,
        "speedup_fresh_vs_des": t_des / t_fresh,
        "speedup_fresh_vs_des_cpu": c_des / c_fresh,
        "speedup_single_call_vs_des": t_des / t_single,
        "speedup_single_call_vs_des_cpu": c_des / c_single,
    }


def explore_setup(n_networks: int):
    """``aidi bench``'s design-search workload: iNAS's platform (extfram preset), supply (1 mF, its CIFAR-10
    Thevenin source) and the default dispatch as a :class:`~aidi.models.design_search.PowerContext`, and
    ``n_networks`` + 1 random iNAS CIFAR-10 networks (seed 1) as layer geometries, the first one for warming
    up.  Returns ``(platform, ctx, networks)``."""
    from aidi.models.design_search import PowerContext
    from aidi.models.hardware import unit_energy_budget
    from aidi.models.schedule.plan import geoms_of

    platform, power, seg = _inas_setup()
    ctx = PowerContext(power, seg, SimConfig(until_s=1e7), unit_energy_budget(power, platform))
    return platform, ctx, [geoms_of(n, [3, 32, 32]) for n in inas_cifar_networks(n_networks + 1, seed=1)]


def bench_design_search(quick: bool = False) -> dict:
    """The latency optimizer against today's per-layer search (``search_design``) on iNAS CIFAR-10 networks.

    16 random networks (2 with ``quick``) of iNAS's CIFAR-10 space on its platform (:func:`explore_setup`);
    both warm (compiled on a first network, not counted).  Per network: the wall time
    of every layer's ``search_design`` (uncached: the baseline the issue measured against iNAS's explorer)
    and of :func:`aidi.models.design_search.optimize_designs` (objective: the oracle's latency), and the
    oracle latency of one inference with each one's designs.  Reports medians and the median per-network
    ratio.
    """
    from aidi.models.design_search import _rank_layer_cached, optimize_designs, search_design
    from aidi.models.hardware import plan

    platform, ctx, nets = explore_setup(2 if quick else 16)
    power, seg, sim = ctx.power, ctx.segments, ctx.sim
    e_budget = ctx.e_unit_J
    p_h = seg.typical_power(power.v_off, power.v_on) * power.converter_efficiency

    def old(geoms):
        return [search_design(g, platform, 4096, e_budget, harvest_power_W=p_h) for g in geoms]

    def new(geoms):  # without the per-layer memo, so each network is searched from scratch
        _rank_layer_cached.cache_clear()
        return optimize_designs(geoms, platform, 4096, ctx, alternatives=0).designs

    old(nets[0])
    new(nets[0])
    t_old, t_new, l_old, l_new = [], [], [], []
    for geoms in nets[1:]:
        t0 = time.perf_counter()
        d_old = old(geoms)
        t_old.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        d_new = new(geoms)
        t_new.append(time.perf_counter() - t0)
        works = [plan(geoms, d, platform, 4096, "lea").work for d in (d_old, d_new)]
        lat = oracle.simulate_batch(works, power, seg, sim).latency_s
        l_old.append(float(lat[0]))
        l_new.append(float(lat[1]))
    ratio = np.array(t_old) / np.array(t_new)
    return {
        "networks": len(t_old),
        "search_design_s_median": float(np.median(t_old)),
        "optimizer_s_median": float(np.median(t_new)),
        "speedup_median": float(np.median(ratio)),
        "speedup_min": float(np.min(ratio)),
        "latency_search_design_s_median": float(np.median(l_old)),
        "latency_optimizer_s_median": float(np.median(l_new)),
        "latency_ratio_max": float(np.max(np.array(l_new) / np.array(l_old))),
        "latency_ratio_median": float(np.median(np.array(l_new) / np.array(l_old))),
    }


def bench_explore(quick: bool = False) -> dict:
    """``aidi explore``'s search (:func:`aidi.models.design_search.optimize_designs` with its default 5
    alternatives per layer, what ``explore_wall_s`` times) on the 16 networks of :func:`explore_setup` (2 with
    ``quick``), from a warm process (compiled on a first network, not counted).

    ``explore_s_median``: the median over the networks of each one's best of 3 wall times, every search from
    scratch (the per-layer rank memo cleared, as the NAS's first sight of a network); ``explore_cpu_s_median``
    the same in thread CPU time (what a loaded machine's wall time hides); ``explore_memo_s_median``: one
    pass over the networks in order with the memo kept (a NAS meets layers again); ``evaluations_median``:
    networks the oracle simulated per search.
    """
    from aidi.models.design_search import _rank_layer_cached, optimize_designs

    platform, ctx, nets = explore_setup(2 if quick else 16)
    optimize_designs(nets[0], platform, 4096, ctx, alternatives=5)
    wall = np.full(len(nets) - 1, np.inf)
    cpu = np.full(len(nets) - 1, np.inf)
    evals = np.zeros(len(nets) - 1)
    for _ in range(3):
        for k, geoms in enumerate(nets[1:]):
            _rank_layer_cached.cache_clear()
            t0, c0 = time.perf_counter(), time.thread_time()
            opt = optimize_designs(geoms, platform, 4096, ctx, alternatives=5)
            cpu[k] = min(cpu[k], time.thread_time() - c0)
            wall[k] = min(wall[k], time.perf_counter() - t0)
            evals[k] = opt.evaluations
    _rank_layer_cached.cache_clear()
    memo = []
    for geoms in nets[1:]:
        t0 = time.perf_counter()
        optimize_designs(geoms, platform, 4096, ctx, alternatives=5)
        memo.append(time.perf_counter() - t0)
    return {"networks": len(wall), "explore_s_median": float(np.median(wall)), "explore_s_max": float(np.max(wall)),
            "explore_cpu_s_median": float(np.median(cpu)), "explore_memo_s_median": float(np.median(memo)),
            "evaluations_median": float(np.median(evals))}


def bench_kernels(quick: bool = False) -> dict:
    """Functional-mode MACs/s of the numba conv tile kernel vs the same tile loop in numpy."""
    from aidi.models import kernels

    rng = np.random.default_rng(0)
    tm, tn, tr, tc, k = 8, 8, 6, 6, 3
    tri, tci = tr + k - 1, tc + k - 1
    x = rng.integers(-2000, 2000, (tn, tri, tci)).astype(np.int16)
    w = rng.integers(-2000, 2000, (tm, tn, k, k)).astype(np.int16)
    acc = np.zeros((tm, tr, tc), dtype=np.int32)
    xf, wf, accf = x.ravel(), w.ravel(), acc.ravel()  # the kernels take flat buffers, as in SRAM
    kernels.conv_tile(xf, wf, accf, tm, tn, tr, tc, k, k, 1, 1, tri, tci)
    macs = tm * tn * tr * tc * k * k
    reps = 20 if quick else 200

    def numba_loop():
        for _ in range(reps):
            kernels.conv_tile(xf, wf, accf, tm, tn, tr, tc, k, k, 1, 1, tri, tci)

    def numpy_loop():
        # same canonical order (n, kh, kw) with a saturating int32 accumulate per step, vectorised over outputs
        for _ in range(max(1, reps // 10)):
            a = np.zeros((tm, tr, tc), dtype=np.int64)
            for n in range(tn):
                for i in range(k):
                    for j in range(k):
                        a = np.clip(a + x[n, i:i + tr, j:j + tc][None].astype(np.int64)
                                    * w[:, n, i, j][:, None, None].astype(np.int64), -2**31, 2**31 - 1)

    t_nb = _best(numba_loop, 3) / reps
    t_np = _best(numpy_loop, 3) / max(1, reps // 10)
    return {"tile_macs": macs, "numba_macs_per_s": macs / t_nb, "numpy_macs_per_s": macs / t_np,
            "speedup_numba_vs_numpy": t_np / t_nb}


def bench_functional(quick: bool = False) -> dict:
    """Time per inference of the SimPy model: cost only vs functional (Q15 computed)."""
    from aidi.analysis import pipeline
    from aidi.scenarios import loader

    built = pipeline.build(loader.load("rf-intermittent"))
    pipeline.simulate(built, functional=True)
    reps = 2 if quick else 5
    t_cost = _best(lambda: pipeline.simulate(built, functional=False), reps)
    t_fn = _best(lambda: pipeline.simulate(built, functional=True), reps)
    return {"scenario": "rf-intermittent", "cost_only_s": t_cost, "functional_s": t_fn,
            "functional_over_cost": t_fn / t_cost}


def bench_sweep(quick: bool = False) -> dict:
    """Capacitor-sweep throughput (points/s) on rf-intermittent, 12 points (4 with ``quick``), one process.

    Baseline (same run): the per-point path the sweep had before it built once
    (:func:`aidi.analysis.sweep.run_sweep_per_point`: each point loaded, built with its designs chosen under
    its own power, and simulated by one ``oracle.simulate``).  Against it: ``aidi sweep``'s default (the base
    scenario's designs kept, one workload, one compiled Population evaluated per point), ``--reoptimize``
    (designs chosen per point, one Population per distinct workload; the baseline's rows), and the per-point
    path with the default's fixed designs (the same rows as the default, built per point).  Each run starts
    with the optimizer's memo and the plan caches empty; compilation and the model are warm (both paths
    share them).  The worker-process rows time ``aidi sweep --workers 2``, whose start-up a sweep this short
    does not repay.
    """
    import pandas as pd

    from aidi.analysis import pipeline, sweep
    from aidi.models import design_search, hardware
    from aidi.scenarios import loader

    sc = loader.load("rf-intermittent")
    path = str(sc.path)
    caps = [float(c) for c in np.geomspace(4.7e-6, 1e-3, 4 if quick else 12)]
    grid = {"power.capacitor_F": caps}
    fixed = hardware.resolve(sc, pipeline.load_model(sc)[1])

    def cold():
        design_search._rank_layer_cached.cache_clear()
        design_search._search_cached.cache_clear()
        sweep.reset_plan_cache()

    runs = {
        "per_point": lambda: sweep.run_sweep_per_point(path, grid, plans=hardware.PlanCache()),
        "per_point_fixed": lambda: pd.DataFrame([sweep.evaluate_point(path, p, plans=hardware.PlanCache(),
                                                                      designs=fixed) for p in sweep.points(grid)]),
        "batched": lambda: sweep.run_sweep(path, grid),
        "batched_reoptimize": lambda: sweep.run_sweep(path, grid, reoptimize=True),
    }
    for fn in runs.values():  # warm-up: compilation, the model, the trace file's page cache
        cold()
        fn()
    best = {}
    for name, fn in runs.items():
        best[name] = _best(lambda: (cold(), fn()), 1 if quick else 3)
    cold()
    t_workers = _best(lambda: sweep.run_sweep(path, grid, workers=2), 1)
    n = len(caps)
    return {
        "points": n,
        "per_point_points_per_s": n / best["per_point"],
        "batched_points_per_s": n / best["batched"],
        "speedup_batched_vs_per_point": best["per_point"] / best["batched"],
        "batched_reoptimize_points_per_s": n / best["batched_reoptimize"],
        "speedup_reoptimize_vs_per_point": best["per_point"] / best["batched_reoptimize"],
        "per_point_fixed_designs_points_per_s": n / best["per_point_fixed"],
        "speedup_batched_vs_per_point_fixed_designs": best["per_point_fixed"] / best["batched"],
        "batched_2_workers_points_per_s": n / t_workers,
    }


def bench_inas_explorer(quick: bool = False) -> dict:
    """iNAS's explorer (:func:`aidi.analysis.inas.explore_network`, vectorised per loop order) next to
    the same sweep evaluated one design at a time, as iNAS's own explorer does, on the same
    networks (iNAS CIFAR-10 space; 16x16 inputs with ``quick``) and supply (1 mF, 52 ohm)."""
    from aidi.models.schedule import ExecutionDesign

    from . import inas

    supply = inas.Supply(1e-3, 52.0)
    nets = []
    for layers in inas_cifar_networks(4 if quick else 8, seed=1):
        spec = [v for ly in layers if ly["type"] == "conv" for v in (ly["k"], ly["filters"])]
        try:
            nets.append(inas.inas_network(spec, (3, 16, 16) if quick else (3, 32, 32)))
        except inas.InasError:  # a 32x32 network that does not fit 16x16
            continue
    nets = nets[:1 if quick else 2]

    def one_at_a_time():
        for net in nets:
            for ly in net:
                best = math.inf
                for tr, tc, tm, tn, order, S in inas.design_space(ly):
                    est = inas.layer_estimate(ly, ExecutionDesign(tr, tc, tm, tn, order, S), supply.capacitor_F,
                                              supply.r_ohm)
                    best = min(best, est["latency_s"])

    t_vec = _best(lambda: [inas.explore_network(n, supply) for n in nets], 5)
    t_one = _best(one_at_a_time, 1)
    designs = sum(len(list(inas.design_space(ly))) for n in nets for ly in n)
    return {"networks": len(nets), "designs": designs, "explorer_designs_per_s": designs / t_vec,
            "one_at_a_time_designs_per_s": designs / t_one, "speedup_vs_one_at_a_time": t_one / t_vec}


def bench_oracle_energy_aware(quick: bool = False) -> dict:
    """:func:`bench_oracle` under energy_aware dispatch (the default policy)."""
    return bench_oracle(quick, "energy_aware")


def bench_oracle_energy_aware_weak(quick: bool = False) -> dict:
    """:func:`bench_oracle` under energy_aware behind a weak supply (:data:`WEAK_R_OHM`): many power cycles (the
    networks that complete there; ``networks`` says how many)."""
    return bench_oracle(quick, "energy_aware", WEAK_R_OHM)


BENCHMARKS = {"des": bench_des, "oracle": bench_oracle, "oracle_energy_aware": bench_oracle_energy_aware,
              "oracle_energy_aware_weak": bench_oracle_energy_aware_weak, "design_search": bench_design_search,
              "explore": bench_explore,
              "kernels": bench_kernels, "functional": bench_functional, "sweep": bench_sweep,
              "inas_explorer": bench_inas_explorer}


def run_all(quick: bool = False, progress=None, only=None) -> dict:
    """Every benchmark in :data:`BENCHMARKS` (``only``: those names; UserError for an unknown one);
    ``progress``: an :class:`aidi.analysis.progress.Progress` (default: a new one on stderr) that reports
    each benchmark as it starts and finishes."""
    from .errors import UserError
    from .progress import Progress

    for name in only or ():
        if name not in BENCHMARKS:
            raise UserError(f"--only: unknown benchmark {name!r} (one of {', '.join(BENCHMARKS)})")
    chosen = {k: v for k, v in BENCHMARKS.items() if not only or k in only}
    out = {}
    with (progress or Progress("aidi bench")) as prog, prog.task("benchmarks", len(chosen)) as task:
        for name, fn in chosen.items():
            prog.log(f"benchmark {task.done + 1}/{len(chosen)}: {name}")
            out[name] = fn(quick)
            task.advance()
    return out


def print_table(res: dict) -> None:
    from .console import console
    from rich.table import Table

    t = Table(title="aidi bench (each ratio against a baseline measured in the same run)")
    t.add_column("benchmark")
    t.add_column("metric")
    t.add_column("value", justify="right")
    for name, d in res.items():
        for k, v in d.items():
            t.add_row(name, k, f"{v:.4g}" if isinstance(v, float) else str(v))
    console().print(t)
