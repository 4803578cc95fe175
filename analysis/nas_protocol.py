"""The comparison's two further views (``aidi nas --compare``): architecture quality and ground truth.

The equal-search-time view (:func:`aidi.analysis.nas_run.run_compare`) mixes what a method
found with how long it could train it.  These views separate the two, as NAS papers do:

* **architecture quality** (:func:`quality_rows`): every method's chosen architecture, at every
  requirement, retrained from scratch with one final recipe (:class:`FinalRecipe`: the same epochs,
  the training and validation splits together, each of ``seeds``); deployed as the equal-time view
  deployed it (its designs, its latency and power cycles under the scenario's harvester, confirmed
  by the SimPy model), so a model meets a requirement exactly when it did there.  Reported: test
  accuracy per seed, mean and sample std, the Q15 accuracy on the first ``q15_images`` test images.
* **ground truth** (:func:`ground_truth`): a sample of the space (the smallest member, so every
  derived requirement has a member that meets it, and ``members - 1`` drawn uniformly by
  ``sample_seed`` without repeats) trained with the final recipe at its first seed and simulated
  with our optimizer's designs under the scenario's harvester (the oracle, as the search sees a
  candidate).  Its Pareto front is the true accuracy-latency front of the sample, and each method's
  *regret* at a requirement (:func:`regret`) is the best sample member meeting it minus the
  method's retrained accuracy at that same seed, in points (100 x fraction); None when the method's
  model misses the requirement (shown as a miss, not a number).

Training runs as :mod:`aidi.models.nas.jobs` through the run's executor (``--workers``/``--dask``);
the same architecture at the same seed trains once for both views.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import numpy as np

#: members in the ground-truth sample (issue 22: at least 30; 6 with --quick, a smoke run)
TRUTH_MEMBERS = {False: 30, True: 6}
#: seeds of the final recipe (issue 22: three)
FINAL_SEEDS = (0, 1, 2)
#: final-recipe epochs: 10 (SupernetConfig.ft_epochs, what ours' finalists get), 1 with --quick
FINAL_EPOCHS = {False: 10, True: 1}
#: salt of the ground-truth sample's generator (numpy SeedSequence entropy [seed, salt])
TRUTH_SALT = 2022
VIEWS = ("equal-time", "quality", "truth")
METHODS = ("ours", "inas", "hwnas")


@dataclass(frozen=True)
class FinalRecipe:
    """One training recipe for every method's pick and every sample member: ``epochs`` from scratch on
    ``data`` (a :class:`aidi.models.nas.jobs.DataSpec`; train + validation), once per seed of ``seeds``,
    on ``device``; Q15 accuracy on ``q15_images`` test images (0: none)."""

    data: object
    epochs: int
    seeds: tuple[int, ...] = FINAL_SEEDS
    device: str = "cpu"
    q15_images: int = 0

    def job(self, arch_dict: dict, seed: int):
        from aidi.models.nas.jobs import ScratchJob

        return ScratchJob(arch_dict, self.data, int(seed), self.epochs, device=self.device, full_train=True,
                          q15_images=self.q15_images)


def sample_members(space, n: int, seed: int) -> list:
    """The smallest member and ``n - 1`` distinct others drawn uniformly (fewer if the space is smaller)."""
    rng = np.random.default_rng([int(seed), TRUTH_SALT])
    out = {space.smallest().id: space.smallest()}
    for _ in range(50 * n):  # bounded: a space with fewer than n members ends the draw
        if len(out) >= n:
            break
        a = space.sample(rng)
        out.setdefault(a.id, a)
    return list(out.values())


def regret(members: Sequence[dict], requirement_s: float, accuracy: float | None) -> dict:
    """The best member of ``members`` (dicts with ``accuracy``, ``latency_s``, ``hw_feasible``) that meets
    ``requirement_s`` (feasible, latency <= requirement; ties: the faster), and ``regret_points`` =
    100 x (its accuracy - ``accuracy``) (None when ``accuracy`` is None or no member meets it)."""
    ok = [m for m in members if m["hw_feasible"] and m["latency_s"] is not None and m["latency_s"] <= requirement_s]
    if not ok:
        return {"best": None, "best_accuracy": None, "regret_points": None}
    best = max(ok, key=lambda m: (m["accuracy"], -m["latency_s"]))
    pts = None if accuracy is None else 100.0 * (best["accuracy"] - accuracy)
    return {"best": best["arch_id"], "best_arch": best.get("arch"), "best_accuracy": best["accuracy"],
            "best_latency_s": best["latency_s"], "regret_points": pts}


def truth_front(members: Sequence[dict]) -> list[dict]:
    """The sample's Pareto front: feasible members no other is at least as fast and more accurate than."""
    feas = sorted((m for m in members if m["hw_feasible"] and m["latency_s"] is not None),
                  key=lambda m: (m["latency_s"], -m["accuracy"]))
    front, best = [], -np.inf
    for m in feas:
        if m["accuracy"] > best:
            front.append(m)
            best = m["accuracy"]
    return front


def _mean_std(v: list[float]) -> tuple[float, float]:
    a = np.asarray(v, dtype=float)
    return float(a.mean()), float(a.std(ddof=1)) if len(a) > 1 else 0.0


def run_views(sc, space, rows: list[dict], requirements: list[float], recipe: FinalRecipe, views: Sequence[str],
              truth_members: int, sample_seed: int, map_fn: Callable | None = None,
              log: Callable[[str], None] | None = None) -> dict:
    """The architecture-quality and ground-truth views of a comparison's ``rows`` (the equal-time rows:
    ``method``, ``requirement_s``, ``arch_spec`` (its ``to_dict()``, None when nothing was found), ``meets``,
    ``latency_s``, ``des_power_cycles``).  All training jobs go through ``map_fn`` at once."""
    from aidi.models.hardware import HardwareEvaluator
    from aidi.models.nas.jobs import run_jobs

    log = log or (lambda s: None)
    picks = [r for r in rows if r.get("arch_spec") is not None] if "quality" in views or "truth" in views else []
    jobs = [recipe.job(r["arch_spec"], s) for r in picks for s in recipe.seeds]
    members = sample_members(space, truth_members, sample_seed) if "truth" in views else []
    jobs += [recipe.job(a.to_dict(), recipe.seeds[0]) for a in members]
    log(f"final recipe: {len({j.key for j in jobs})} trainings of {recipe.epochs} epochs "
        f"({len(picks)} picks x {len(recipe.seeds)} seeds, {len(members)} sample members)")
    results = run_jobs(jobs, map_fn, use_cache=True)
    log(f"final recipe: {sum(bool(r.get('cached')) for r in results)} of {len(results)} results from the cache")
    by_key = {j.key: r for j, r in zip(jobs, results)}
    out: dict = {"recipe": {"epochs": recipe.epochs, "seeds": list(recipe.seeds), "device": recipe.device,
                            "train_images": results[0]["train_images"] if results else None,
                            "test_images": results[0]["test_images"] if results else None,
                            "q15_test_images": recipe.q15_images, "data": asdict(recipe.data)}}
    quality = []
    pick_ids = {id(r) for r in picks}
    for r in rows:
        q = {"requirement_s": r["requirement_s"], "method": r["method"], "arch": r.get("arch"),
             "arch_id": r.get("arch_id"), "latency_s": r.get("latency_s"),
             "power_cycles": r.get("des_power_cycles"), "meets": bool(r.get("meets"))}
        if id(r) in pick_ids:
            res = [by_key[recipe.job(r["arch_spec"], s).key] for s in recipe.seeds]
            acc = [x["test_accuracy"] for x in res]
            q.update(accuracy=acc, mean=_mean_std(acc)[0], std=_mean_std(acc)[1],
                     train_s=[x["train_s"] for x in res])
            if recipe.q15_images:
                q15 = [x["q15_test_accuracy"] for x in res]
                q.update(q15_accuracy=q15, q15_mean=_mean_std(q15)[0], q15_std=_mean_std(q15)[1])
        else:
            q.update(accuracy=None, mean=None, std=None, note=r.get("note"))
        quality.append(q)
    if "quality" in views or "truth" in views:
        out["architecture_quality"] = quality
    if "truth" in views:
        hws = HardwareEvaluator(sc)
        hw = hws.evaluate_many(members) if map_fn is None else map_fn(hws, [(a,) for a in members])
        sample = []
        for a, h in zip(members, hw):
            res = by_key[recipe.job(a.to_dict(), recipe.seeds[0]).key]
            sample.append({"arch_id": a.id, "arch": a.describe(), "arch_spec": a.to_dict(),
                           "accuracy": res["test_accuracy"], "q15_accuracy": res["q15_test_accuracy"],
                           "latency_s": h["latency_s"], "power_cycles": h["power_cycles"],
                           "hw_feasible": bool(h["hw_feasible"]), "reasons": list(h["reasons"]),
                           "train_s": res["train_s"]})
        regrets = []
        for q in quality:
            acc0 = q["accuracy"][0] if q["accuracy"] is not None and q["meets"] else None
            regrets.append({"requirement_s": q["requirement_s"], "method": q["method"], "meets": q["meets"],
                            "accuracy": acc0, **regret(sample, q["requirement_s"], acc0)})
        out["ground_truth"] = {"members": sample, "sample_seed": int(sample_seed), "seed": int(recipe.seeds[0]),
                               "front": [m["arch_id"] for m in truth_front(sample)], "regret": regrets}
    return out


# --------------------------------------------------------------------------- text and figure
def _pm(mean, std) -> str:
    return "-" if mean is None else f"{mean:.3f} ± {std:.3f}"


def views_text(summary: dict) -> str:
    """The three views as plain-text tables (pandas), one block each."""
    import pandas as pd

    blocks = []
    names = {"ours": "ours", "inas": "iNAS-style", "hwnas": "HW-NAS-style"}
    eq = []
    for line in summary["table"]:
        row = {"requirement s": f"{line['requirement_s']:.3g}"}
        for m in METHODS:
            r = line.get(m, {})
            acc = "-" if r.get("test_accuracy") is None else f"{r['test_accuracy']:.3f}"
            row[names[m]] = acc + ("" if r.get("meets") or r.get("test_accuracy") is None else " (misses)")
        eq.append(row)
    blocks.append("equal search time: test accuracy of each method's model as its search left it\n"
                  + pd.DataFrame(eq).to_string(index=False))
    v = summary.get("views", {})
    if "architecture_quality" in v:
        rec = v["recipe"]
        qt = []
        for req in summary["requirements_s"]:
            row = {"requirement s": f"{req:.3g}"}
            for q in v["architecture_quality"]:
                if q["requirement_s"] == req:
                    txt = _pm(q["mean"], q["std"])
                    if q["mean"] is not None and not q["meets"]:
                        txt += " (misses)"
                    row[names[q["method"]]] = txt
            qt.append(row)
        blocks.append(f"architecture quality: each pick retrained from scratch, {rec['epochs']} epochs on "
                      f"{rec['train_images']} images, seeds {', '.join(map(str, rec['seeds']))}: test accuracy "
                      f"mean ± std on {rec['test_images']} images\n" + pd.DataFrame(qt).to_string(index=False))
    if "ground_truth" in v:
        gt = v["ground_truth"]
        rt = []
        for req in summary["requirements_s"]:
            rs = [r for r in gt["regret"] if r["requirement_s"] == req]
            row = {"requirement s": f"{req:.3g}",
                   "best sample member": "-" if not rs or rs[0]["best"] is None
                   else f"{rs[0]['best_arch']} {rs[0]['best_accuracy']:.3f}"}
            for r in rs:
                row[names[r["method"]]] = ("misses" if not r["meets"] else
                                           "-" if r["regret_points"] is None else f"{r['regret_points']:+.1f}")
            rt.append(row)
        feas = [m for m in gt["members"] if m["hw_feasible"]]
        cycles = sorted(int(m["power_cycles"]) for m in feas if m.get("power_cycles") is not None)
        cyc = f", {cycles[0]}-{cycles[-1]} power cycles under the scenario" if cycles else ""
        blocks.append(f"ground truth: {len(gt['members'])} members ({len(feas)} feasible{cyc}) trained with the final "
                      f"recipe (seed {gt['seed']}); regret = best member meeting the requirement - the method's "
                      "accuracy, points\n" + pd.DataFrame(rt).to_string(index=False))
    return "\n\n".join(blocks) + "\n"


def views_figure(summary: dict):
    """The ground-truth sample (accuracy vs intermittent latency), its front, and each method's picks
    (retrained mean ± std at their deployed latency); requirements as dotted lines."""
    import plotly.graph_objects as go

    from .figures import vline

    v = summary["views"]
    fig = go.Figure()
    gt = v.get("ground_truth")
    if gt:
        pts = [m for m in gt["members"] if m["latency_s"] is not None]
        fig.add_trace(go.Scatter(x=[m["latency_s"] for m in pts], y=[m["accuracy"] for m in pts], mode="markers",
                                 name="sample (final recipe)", text=[m["arch"] for m in pts],
                                 marker={"size": 7, "color": "lightgrey",
                                         "symbol": ["circle" if m["hw_feasible"] else "x" for m in pts]}))
        front = [m for m in pts if m["arch_id"] in set(gt["front"])]
        front.sort(key=lambda m: m["latency_s"])
        fig.add_trace(go.Scatter(x=[m["latency_s"] for m in front], y=[m["accuracy"] for m in front],
                                 mode="lines", line={"shape": "hv", "color": "grey"}, name="true front (sample)"))
    names = {"ours": "ours", "inas": "iNAS-style", "hwnas": "HW-NAS-style"}
    for m in METHODS:
        qs = [q for q in v.get("architecture_quality", []) if q["method"] == m and q["mean"] is not None]
        fig.add_trace(go.Scatter(x=[q["latency_s"] for q in qs], y=[q["mean"] for q in qs], mode="markers",
                                 name=f"{names[m]} picks (retrained)", marker={"size": 12},
                                 error_y={"type": "data", "array": [q["std"] for q in qs]},
                                 text=[f"{q['arch']} ({'meets' if q['meets'] else 'misses'} "
                                       f"{q['requirement_s']:.3g} s)" for q in qs]))
    for i, r in enumerate(summary["requirements_s"]):
        vline(fig, r, f"requirement {r:.3g} s", dash="dot", log_x=True, label_y=1.0 - 0.07 * i)
    fig.update_xaxes(type="log")
    fig.update_layout(title=f"{summary['scenario']} ({summary['dataset']}): the true front of the sample and "
                            "each method's picks, all trained with the final recipe",
                      xaxis_title="intermittent latency under the scenario (s)", yaxis_title="test accuracy (float)",
                      template="plotly_white")
    return fig
