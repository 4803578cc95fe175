"""Search controllers behind one ask/tell interface, the reward, and the search loop.

Controllers only see the search space (``sample`` / ``mutate`` / ``crossover``
/ the decision sequence) and the objectives dicts the evaluator returns:

``random``     uniform samples.
``evolution``  regularized (aging) evolution (Real et al., AAAI 2019): a
               population of the most recent ``population`` candidates; a child
               is the mutation of the best of ``sample_size`` random members
               (optionally crossed with the runner-up); the oldest member dies.
``rl``         an LSTM policy (iNAS's controller structure) emits one categorical
               decision per step (stage kind, kernel, filters, depth, ...),
               sampled, trained with REINFORCE, an exponential moving-average
               baseline and an entropy bonus on :func:`reward`.  iNAS's own
               controller (greedy choices, epsilon exploration, RMSProp, its
               reward) is :class:`aidi.models.nas.baselines.InasController`.

Every controller is seeded (``numpy.random.Generator``; the RL policy's
initialisation and sampling use a seeded ``torch.Generator``) so a search is
reproducible given the seed and the batch size (not the worker count).

Reward (:func:`reward`): the accuracy when the candidate meets every
constraint; ``accuracy - penalty * min(1, latency / requirement - 1)`` when it
only misses the latency requirement; ``accuracy - 2 * penalty`` when it breaks
a hard constraint (SRAM, per-cycle energy, never completes).  It never grows
with latency (iNAS's reward did; see shared/CALIBRATION.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Protocol, Sequence

import numpy as np
import torch
from torch import nn

from .space import Arch, SearchSpace

CONTROLLERS = ("random", "evolution", "rl")


def reward(obj: dict, penalty: float = 0.5) -> float:
    """Scalar fitness of an objectives dict (higher is better); non-increasing in latency."""
    acc = float(obj["accuracy"])
    if not obj.get("hw_feasible", obj.get("feasible", False)):
        return acc - 2.0 * penalty
    req, lat = obj.get("requirement_s"), obj.get("latency_s")
    if req is None or lat is None or lat <= req:
        return acc
    return acc - penalty * min(1.0, lat / req - 1.0)


def _rank_key(obj: dict) -> tuple:
    lat = obj.get("latency_s")
    return (reward(obj), -(lat if lat is not None else np.inf))


class Controller(Protocol):
    name: str

    def ask(self, n: int) -> list[Arch]: ...

    def tell(self, archs: Sequence[Arch], objectives: Sequence[dict]) -> None: ...


class RandomSearch:
    """Uniform random sampling."""

    name = "random"

    def __init__(self, space: SearchSpace, seed: int = 0):
        self.space = space
        self.rng = np.random.default_rng(seed)

    def ask(self, n: int) -> list[Arch]:
        return [self.space.sample(self.rng) for _ in range(n)]

    def tell(self, archs, objectives) -> None:
        pass


class RegularizedEvolution:
    """Aging evolution: tournament selection, mutation (+ optional crossover), the oldest dies."""

    name = "evolution"

    def __init__(self, space: SearchSpace, seed: int = 0, population: int = 16, sample_size: int = 4,
                 crossover_prob: float = 0.25):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.population_size = max(2, population)
        self.sample_size = max(1, sample_size)
        self.crossover_prob = crossover_prob
        self.population: list[tuple[Arch, dict]] = []  # oldest first
        self._proposed = 0

    def ask(self, n: int) -> list[Arch]:
        out = []
        for _ in range(n):
            if self._proposed < self.population_size or not self.population:
                out.append(self.space.sample(self.rng))
            else:
                k = min(self.sample_size, len(self.population))
                idx = self.rng.choice(len(self.population), size=k, replace=False)
                cands = sorted((self.population[int(i)] for i in idx), key=lambda p: _rank_key(p[1]), reverse=True)
                parent = cands[0][0]
                if len(cands) > 1 and self.rng.random() < self.crossover_prob:
                    parent = self.space.crossover(parent, cands[1][0], self.rng)
                out.append(self.space.mutate(parent, self.rng))
            self._proposed += 1
        return out

    def tell(self, archs, objectives) -> None:
        for a, o in zip(archs, objectives):
            self.population.append((a, o))
            if len(self.population) > self.population_size:
                self.population.pop(0)


class _one_thread:
    """Tiny tensors: one intra-op thread (two were measured far slower on a 2-core machine)."""

    def __enter__(self):
        self.prev = torch.get_num_threads()
        torch.set_num_threads(1)

    def __exit__(self, *exc):
        torch.set_num_threads(self.prev)


class _Policy(nn.Module):
    """LSTM policy over a sequence of categorical decisions (one linear head per decision)."""

    def __init__(self, sizes: Sequence[int], hidden: int = 32, embed: int | None = None):
        super().__init__()
        self.sizes = list(sizes)
        self.hidden = hidden
        e = hidden if embed is None else embed
        self.start = nn.Parameter(torch.zeros(1, e))
        self.embed = nn.ModuleList(nn.Embedding(n, e) for n in self.sizes)
        self.cell = nn.LSTMCell(e, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, n) for n in self.sizes)

    def rollout(self, n: int, gen: torch.Generator | None = None, actions: torch.Tensor | None = None,
                greedy: bool = False):
        """Sample (``greedy``: take the most probable option; or score given) ``actions`` (n, D): returns
        actions, summed log-prob (n,), mean entropy (n,)."""
        h = torch.zeros(n, self.hidden)
        c = torch.zeros(n, self.hidden)
        x = self.start.expand(n, -1)
        acts, logp, ent = [], torch.zeros(n), torch.zeros(n)
        for d, head in enumerate(self.heads):
            h, c = self.cell(x, (h, c))
            logits = head(h)
            lp = torch.log_softmax(logits, dim=1)
            if actions is None and greedy:
                a = lp.argmax(1)
            elif actions is None:
                a = torch.multinomial(lp.exp(), 1, generator=gen).squeeze(1)
            else:
                a = actions[:, d]
            acts.append(a)
            logp = logp + lp.gather(1, a[:, None]).squeeze(1)
            ent = ent - (lp.exp() * lp).sum(1)
            x = self.embed[d](a)
        return torch.stack(acts, 1), logp, ent / len(self.heads)


class RLController:
    """iNAS-style LSTM policy + REINFORCE (EMA baseline, entropy bonus, Adam)."""

    name = "rl"

    def __init__(self, space: SearchSpace, seed: int = 0, lr: float = 0.05, hidden: int = 32,
                 baseline_decay: float = 0.8, entropy_weight: float = 0.01, penalty: float = 0.5):
        self.space = space
        self.sizes = [len(opts) for _, opts in space.decisions()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = _Policy(self.sizes, hidden)
        self.gen = torch.Generator().manual_seed(seed)
        self.opt = torch.optim.Adam(self.policy.parameters(), lr=lr)
        self.baseline: float | None = None
        self.decay = baseline_decay
        self.entropy_weight = entropy_weight
        self.penalty = penalty
        self.updates = 0

    def ask(self, n: int) -> list[Arch]:
        with torch.no_grad(), _one_thread():
            acts, _, _ = self.policy.rollout(n, self.gen)
        return [self.space.decode([int(v) for v in row]) for row in acts]

    def tell(self, archs, objectives, rewards: Sequence[float] | None = None) -> None:
        """REINFORCE step on ``archs``; ``rewards`` default to :func:`reward` of each objectives dict."""
        if not archs:
            return
        r = torch.tensor([reward(o, self.penalty) for o in objectives] if rewards is None else list(rewards),
                         dtype=torch.float32)
        if self.baseline is None:
            self.baseline = float(r.mean())
        adv = r - self.baseline
        acts = torch.tensor([self.space.encode(a) for a in archs], dtype=torch.long)
        with _one_thread():
            _, logp, ent = self.policy.rollout(len(archs), actions=acts)
            loss = -(adv * logp).mean() - self.entropy_weight * ent.mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.baseline = self.decay * self.baseline + (1 - self.decay) * float(r.mean())
        self.updates += 1


def make_controller(name: str, space: SearchSpace, seed: int = 0, budget: int | None = None, **kw) -> Controller:
    """``random`` | ``evolution`` | ``rl``; evolution's population defaults to min(16, budget // 3)."""
    if name == "random":
        return RandomSearch(space, seed)
    if name == "evolution":
        pop = kw.pop("population", None) or max(4, min(16, (budget or 48) // 3))
        return RegularizedEvolution(space, seed, population=pop, **kw)
    if name == "rl":
        return RLController(space, seed, **kw)
    raise ValueError(f"unknown controller {name!r} (one of {', '.join(CONTROLLERS)})")


# --------------------------------------------------------------------------- the search loop
@dataclass
class SearchResult:
    """What a search evaluated, in order, and how long it took."""

    controller: str
    history: list[dict] = field(default_factory=list)  # objectives dicts, with "step" and "reward"
    wall_s: float = 0.0
    evaluations: int = 0

    @property
    def evals_per_s(self) -> float:
        return self.evaluations / self.wall_s if self.wall_s > 0 else float("nan")

    def feasible(self) -> list[dict]:
        return [o for o in self.history if o["feasible"]]

    def best_feasible(self) -> dict | None:
        """The most accurate candidate meeting every constraint (ties: lower latency)."""
        f = self.feasible()
        return max(f, key=lambda o: (o["accuracy"], -o["latency_s"])) if f else None

    def best(self) -> dict | None:
        """The best candidate by reward (ties: lower latency); None if nothing was evaluated."""
        return max(self.history, key=_rank_key) if self.history else None


def run_search(controller: Controller, evaluator, budget: int, batch: int = 4,
               progress: Callable[[int, int], None] | None = None, time_limit_s: float | None = None) -> SearchResult:
    """Ask/evaluate/tell until ``budget`` evaluations; ``batch`` candidates per round (evaluated together).

    ``time_limit_s``: no new round starts once this many wall-clock seconds have passed (the first
    round always runs), so the search ends within the limit plus one round."""
    if budget < 1:
        raise ValueError(f"budget must be at least 1 evaluation, got {budget}")
    res = SearchResult(controller.name)
    t0 = time.perf_counter()
    done = 0
    while done < budget and (done == 0 or time_limit_s is None or time.perf_counter() - t0 < time_limit_s):
        n = min(batch, budget - done)
        archs = controller.ask(n)
        objs = evaluator.evaluate_many(archs)
        controller.tell(archs, objs)
        for o in objs:
            o["step"] = done
            o["reward"] = reward(o)
            res.history.append(o)
            done += 1
        if progress:
            progress(done, budget)
    res.wall_s = time.perf_counter() - t0
    res.evaluations = done
    return res


def pareto_front(objs: Sequence[dict], x: str = "latency_s", y: str = "accuracy") -> list[dict]:
    """Feasible, non-dominated candidates (minimise ``x``, maximise ``y``), unique by arch, sorted by ``x``."""
    seen, pts = set(), []
    for o in objs:
        if o["feasible"] and o["arch_id"] not in seen and o.get(x) is not None:
            seen.add(o["arch_id"])
            pts.append(o)
    pts.sort(key=lambda o: (o[x], -o[y]))
    front, best_y = [], -np.inf
    for o in pts:
        if o[y] > best_y:
            front.append(o)
            best_y = o[y]
    return front


def standard_error(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on ``n`` images: ``sqrt(p (1 - p) / n)`` (a binomial
    proportion's; ``inf`` when ``n`` < 1)."""
    if n < 1:
        return float("inf")
    p = min(1.0, max(0.0, float(accuracy)))
    return float(np.sqrt(p * (1.0 - p) / n))


def one_standard_error_pick(finalists: Sequence[dict], n_val: int, y: str = "accuracy",
                            x: str = "latency_s") -> dict | None:
    """The fastest of ``finalists`` whose validation accuracy (``y``, fraction) is within one standard error
    (:func:`standard_error` on ``n_val`` images) of the most accurate one's (ties: the more accurate); None
    when there are none.

    The one-standard-error rule (Breiman, Friedman, Olshen & Stone, *Classification and Regression Trees*,
    1984, sec. 3.4.3; Hastie, Tibshirani & Friedman, *The Elements of Statistical Learning*, 2nd ed., 2009,
    sec. 7.10): accuracies that close are indistinguishable on that validation set, so the cheaper model is
    taken.  The pick is never dominated by another finalist: one at least as accurate is within the error
    too, so it is not faster (or, as fast, not more accurate).
    """
    if not finalists:
        return None
    best = max(float(f[y]) for f in finalists)
    floor = best - standard_error(best, n_val)
    close = [f for f in finalists if float(f[y]) >= floor]
    return min(close, key=lambda f: (f[x], -float(f[y])))


def neighbours(space, arch) -> list:
    """Every member of ``space`` one decision away from ``arch`` (each other option of each decision, in
    decision order), unique by id, ``arch`` itself excluded.  Works on any space with ``decisions`` /
    ``encode`` / ``decode`` (the chain space and the inverted-residual space); a decision that is inactive in
    ``arch`` (a block the stage's depth leaves out) gives ``arch`` again and is skipped."""
    codes = space.encode(arch)
    seen, out = {arch.id}, []
    for i, (_, opts) in enumerate(space.decisions()):
        for j in range(len(opts)):
            if j == codes[i]:
                continue
            a = space.decode(codes[:i] + [j] + codes[i + 1:])
            if a.id not in seen:
                seen.add(a.id)
                out.append(a)
    return out


#: :func:`refine_pick`'s defaults: neighbours trained per round, rounds
REFINE_K, REFINE_ROUNDS = 2, 2


def refine_pick(pool: list[dict], n_val: int, faster: Callable[[dict], list[dict]],
                train: Callable[[list[dict]], list[dict]], k: int = REFINE_K,
                rounds: int = REFINE_ROUNDS,
                may_start: Callable[[dict], bool] | None = None) -> tuple[int, list[dict]]:
    """The one-standard-error pick (:func:`one_standard_error_pick`) of trained finalists, then a descent
    along the latency axis: up to ``rounds`` times, the ``k`` candidates ``faster(pick["obj"])`` returns
    (objectives dicts of the pick's one-decision neighbours) that are feasible, faster than the pick and not
    yet trained, the ``k`` most accurate by the search's accuracy, are trained (``train(objs)`` -> one
    entry each) and the pick is redone over everything trained; it stops when the pick stays, no faster
    neighbour is left, or ``may_start(pick's objectives)`` (asked before each round; None: always) says
    False (a search budget that the round would overrun).

    ``pool``: entries ``{"obj": objectives dict (arch_id, latency_s, accuracy, feasible), "val_accuracy":
    fraction, ...}``; ``train`` returns entries of that form.  Returns ``(index of the pick in the pool, the
    pool with the trained neighbours appended, each marked "refined": round)``.

    Why: the finalists are spread along the search's front, read off the supernet, which ranks members but
    under-rates some of them; a member as accurate as the pick within the validation error but faster is
    most often one decision away (another kernel, width or depth in one stage: under intermittent power a
    larger kernel can run faster, so every neighbour is a candidate).  The rule keeps the
    pick's guarantee: no trained member is both at least as accurate and faster."""
    pool = list(pool)
    if not pool:
        return -1, pool

    def pick_of():
        p = one_standard_error_pick([{"i": i, "accuracy": e["val_accuracy"], "latency_s": e["obj"]["latency_s"]}
                                     for i, e in enumerate(pool)], n_val)
        return p["i"]

    i = pick_of()
    for r in range(rounds):
        if may_start is not None and not may_start(pool[i]["obj"]):
            break
        have = {e["obj"]["arch_id"] for e in pool}
        lat = pool[i]["obj"]["latency_s"]
        cands = {o["arch_id"]: o for o in faster(pool[i]["obj"])
                 if o.get("feasible") and o.get("latency_s") is not None and o["latency_s"] < lat
                 and o["arch_id"] not in have}
        if not cands:
            break
        chosen = sorted(cands.values(), key=lambda o: (-float(o["accuracy"]), o["latency_s"], o["arch_id"]))[:k]
        pool += [{**e, "refined": r + 1} for e in train(chosen)]
        j = pick_of()
        if j == i:
            break
        i = j
    return i, pool
