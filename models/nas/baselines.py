"""The iNAS-style baseline as iNAS describes it: its controller, its reward, its search loop.

iNAS (Mendis et al., "Intermittent-aware neural architecture search", ACM TECS 2021;
EMCLab-Sinica/Intermittent-aware-NAS, ``iNAS/NASBase/{controller,manager,top}.py`` and
``settings_files/config_default.json``).  What carries over (our code, their facts):

Controller (:class:`InasController`, ``controller.py``)
    An LSTM of 32 cells over the sequence of decisions (embeddings of 20, one dense
    softmax head per decision, each step fed the embedding of the previous choice).
    An architecture is the policy's *most probable* choice at every step; with
    probability ``exploration`` (0.1, ``EXPLORATION``) a uniformly random one instead;
    the same architecture twice in a row is allowed once, a third time is replaced by a
    random one (``top.py``).  Training is REINFORCE, one step per trial: the loss is the
    reward times the cross-entropy of the chosen options (= minus the reward times their
    log-probability) plus an L2 penalty of 1e-3 (``REGULARIZATION``) on the policy's
    weights, RMSProp with learning rate 0.1 decayed by 0.95 every 500 steps.
    Differences: iNAS's training graph re-feeds its own argmax chain rather than the
    taken choices (so an explored architecture is scored on a different path); we score
    the taken choices, the usual REINFORCE.  iNAS's one-hot labels carry ``index + 1``
    instead of 1 (``StateSpace.embedding_encode``), which scales the gradient of later
    options; we use plain one-hot (log-probabilities).

Reward (:class:`InasReward`, ``manager.get_rewards``)
    * no feasible execution design: -0.1, the child is not trained;
    * iNAS's latency estimate above the requirement: ``clip((req - L)/(10 req) - 1, ±0.1)``
      (that is -0.1), the child is not trained;
    * otherwise the child is trained from scratch and the reward is
      ``clip(acc - moving_acc + L / req / 10, ±0.1)`` with ``moving_acc`` an exponential
      average of the trained children's accuracy (beta 0.8, bias-corrected on its first
      update); an architecture proposed twice in a row raises ``moving_acc`` by 20 %.
      The latency term grows with latency (iNAS's choice; see shared/CALIBRATION.md).

Search (:func:`run_inas_search`, ``top.nas_top``)
    One trial at a time until the wall-clock budget is spent (iNAS runs a fixed number
    of trials; here the budget decides, and a trial that has started finishes, so the
    search ends within the budget plus one trial).  The result is the most accurate
    trained child and its weights (iNAS keeps the children it trained; no retraining).

Children are trained by whatever ``train(arch) -> (module, val_accuracy)`` the caller
hands in (:func:`scratch_trainer`: :func:`aidi.models.nas.supernet.train_from_scratch`,
the same optimiser as our fine-tuning; iNAS used Keras Adam, batch 256, 25 epochs).
:func:`scratch_epochs` sizes the epochs to the budget.  The hardware (iNAS's cost model
and explorer) is handed in too (``hardware(arch) -> dict`` with ``latency_s``,
``hw_feasible``, ``reasons``), as an efficiency predictor: this module knows nothing of
how it is computed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

import numpy as np
import torch

from .controllers import RLController, SearchResult, _one_thread, _Policy
from .space import Arch, SearchSpace

#: iNAS's child training epochs (settings_files/eval_configs/config_inas_cifar_INT_generic.json, EPOCH)
INAS_EPOCHS = 25
#: the fewest children a budget should be able to train when epochs are sized to it
MIN_TRAINED_CHILDREN = 8
#: iNAS's reward for a child with no feasible execution design (manager.get_rewards)
INAS_INFEASIBLE_REWARD = -0.1


def inas_subspace(space: SearchSpace) -> SearchSpace:
    """``space`` with plain convolutions only (iNAS's space has no separable blocks); unchanged if it has none."""
    stages = tuple(replace(st, kinds=("conv",)) if "conv" in st.kinds else st for st in space.stages)
    return replace(space, stages=stages) if stages != space.stages else space


class InasReward:
    """iNAS's reward (``manager.get_rewards``) with its moving accuracy baseline; see the module docstring."""

    def __init__(self, beta: float = 0.8, clip: float = 0.1):
        self.beta = beta
        self.clip = clip
        self.moving_acc = 0.0
        self._bias = beta

    def infeasible(self) -> float:
        return INAS_INFEASIBLE_REWARD

    def missed(self, latency_s: float, requirement_s: float) -> float:
        """Reward of a child whose estimated latency exceeds the requirement (not trained)."""
        return float(np.clip((requirement_s - latency_s) / 10.0 / requirement_s - 1.0, -self.clip, self.clip))

    def trained(self, accuracy: float, latency_s: float, requirement_s: float) -> float:
        """Reward of a trained child; updates the moving accuracy."""
        r = accuracy - self.moving_acc + latency_s / requirement_s / 10.0
        self.moving_acc = (self.beta * self.moving_acc + (1.0 - self.beta) * accuracy) / (1.0 - self._bias)
        self._bias = 0.0
        return float(np.clip(r, -self.clip, self.clip))

    def repeated(self) -> None:
        """The controller proposed the previous architecture again (``update_moving_acc``)."""
        self.moving_acc *= 1.2


class InasController(RLController):
    """iNAS's LSTM controller: greedy choices with epsilon exploration, REINFORCE on the given reward,
    RMSProp with L2 (see the module docstring).  ``tell`` needs the rewards (iNAS's reward is stateful)."""

    name = "inas-rl"

    def __init__(self, space: SearchSpace, seed: int = 0, hidden: int = 32, embed: int = 20, lr: float = 0.1,
                 lr_decay: float = 0.95, lr_decay_steps: int = 500, regularization: float = 1e-3,
                 exploration: float = 0.1):
        self.space = space
        self.sizes = [len(opts) for _, opts in space.decisions()]
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.policy = _Policy(self.sizes, hidden, embed)
        self.gen = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        # TF's RMSProp: decay 0.9, epsilon 1e-10; L2 on every weight as an explicit loss term
        self.opt = torch.optim.RMSprop(self.policy.parameters(), lr=lr, alpha=0.9, eps=1e-10)
        self.sched = torch.optim.lr_scheduler.StepLR(self.opt, lr_decay_steps, lr_decay)
        self.regularization = regularization
        self.exploration = exploration
        self.updates = 0
        self.previous: list[int] | None = None
        self.repeats = 0
        self.last_repeated = False

    def _random_codes(self) -> list[int]:
        return [int(self.rng.integers(n)) for n in self.sizes]

    def ask(self, n: int) -> list[Arch]:
        out = []
        for _ in range(n):
            if self.rng.random() < self.exploration:
                codes = self._random_codes()
            else:
                with torch.no_grad(), _one_thread():
                    acts, _, _ = self.policy.rollout(1, greedy=True)
                codes = [int(v) for v in acts[0]]
            self.last_repeated = codes == self.previous
            if self.last_repeated and self.repeats >= 1:  # the same action a third time: a random one
                codes, self.repeats = self._random_codes(), 0
            elif self.last_repeated:
                self.repeats += 1
            else:
                self.repeats = 0
            self.previous = codes
            out.append(self.space.decode(codes))
        return out

    def probabilities(self, codes: Sequence[int]) -> list[np.ndarray]:
        """The policy's distribution at each decision along ``codes`` (for inspection and tests)."""
        out = []
        with torch.no_grad(), _one_thread():
            pol = self.policy
            h = torch.zeros(1, pol.hidden)
            c = torch.zeros(1, pol.hidden)
            x = pol.start
            for d, head in enumerate(pol.heads):
                h, c = pol.cell(x, (h, c))
                out.append(torch.softmax(head(h), 1)[0].numpy())
                x = pol.embed[d](torch.tensor([int(codes[d])]))
        return out

    def tell(self, archs, objectives, rewards: Sequence[float] | None = None) -> None:
        if not archs:
            return
        if rewards is None:
            raise ValueError("InasController.tell needs the rewards (iNAS's reward is computed by the search loop)")
        r = torch.tensor(list(rewards), dtype=torch.float32)
        acts = torch.tensor([self.space.encode(a) for a in archs], dtype=torch.long)
        with _one_thread():
            _, logp, _ = self.policy.rollout(len(archs), actions=acts)
            l2 = sum((p * p).sum() for p in self.policy.parameters())
            loss = -(r * logp).mean() + self.regularization * l2
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            self.sched.step()
        self.updates += 1


def scratch_epochs(budget_s: float, epoch_s: float, max_epochs: int = INAS_EPOCHS,
                   min_children: int = MIN_TRAINED_CHILDREN) -> int:
    """Child training epochs a budget allows: iNAS's 25, fewer when ``budget_s`` could not train
    ``min_children`` children of ``epoch_s`` seconds per epoch that long (at least 1)."""
    if not (epoch_s > 0 and math.isfinite(epoch_s)):
        return max_epochs
    return int(max(1, min(max_epochs, budget_s // (min_children * epoch_s))))


def scratch_trainer(data, seed: int, epochs: int, map_fn: Callable[[Callable, list], list] | None = None,
                    spec=None, device: str = "cpu") -> Callable[[Arch], tuple[Any, float]]:
    """``train(arch) -> (module, validation accuracy)``: from scratch, cross-entropy, ``epochs`` epochs, on
    ``device``.  With ``spec`` (the :class:`~aidi.models.nas.jobs.DataSpec` of ``data``) each child is a
    :class:`~aidi.models.nas.jobs.ScratchJob` run through ``map_fn`` (a worker process or a Dask cluster;
    iNAS's loop waits for each child's reward, so children train one at a time)."""
    if spec is not None:
        from .jobs import ScratchJob, run_jobs

        def train_job(arch: Arch):
            r = run_jobs([ScratchJob(arch.to_dict(), spec, seed, epochs, device=device, keep_module=True)], map_fn)[0]
            return r["module"], r["val_accuracy"]

        return train_job
    from .supernet import module_accuracy, train_from_scratch

    def train(arch: Arch):
        m = train_from_scratch(arch, data, seed, epochs, device=device)
        return m, module_accuracy(m, data.x_val, data.y_val)

    return train


@dataclass
class InasSearch:
    """What :func:`run_inas_search` evaluated (``result.history``: one objectives dict per trial, with
    ``trained``, ``reward``, ``train_s`` and ``trial_s``), and the most accurate trained child (None if none was)."""

    result: SearchResult
    best: dict | None
    best_module: Any
    trained: int
    train_s: float


def run_inas_search(controller, hardware: Callable[[Arch], dict], train: Callable[[Arch], tuple[Any, float]],
                    requirement_s: float, budget_s: float, max_trials: int | None = None,
                    progress: Callable[[int, int], None] | None = None) -> InasSearch:
    """iNAS's search loop (``top.nas_top`` + ``manager.get_rewards``) for ``budget_s`` wall-clock seconds.

    Each trial: the controller proposes one architecture; ``hardware(arch)`` gives iNAS's latency
    estimate and designs; a child with a feasible design meeting ``requirement_s`` is trained
    (``train``), the others are not; the controller learns from :class:`InasReward`.  No trial
    starts after ``budget_s`` (the first always runs).  ``progress(seconds elapsed, budget seconds)``.
    """
    if not (requirement_s > 0 and math.isfinite(requirement_s)):
        raise ValueError(f"latency requirement must be a positive number of seconds, got {requirement_s!r}")
    res = SearchResult(controller.name)
    rew = InasReward()
    best, best_module, trained, train_s = None, None, 0, 0.0
    t0 = time.perf_counter()
    step = 0
    while (step == 0 or time.perf_counter() - t0 < budget_s) and (max_trials is None or step < max_trials):
        t_trial = time.perf_counter()
        arch = controller.ask(1)[0]
        if getattr(controller, "last_repeated", False):
            rew.repeated()
        hw = hardware(arch)
        obj = {"arch_id": arch.id, "arch": arch.to_dict(), "describe": arch.describe(), "accuracy": 0.0, **hw,
               "requirement_s": requirement_s, "trained": False, "train_s": 0.0}
        obj["reasons"] = list(hw["reasons"])
        lat = obj["latency_s"]
        if not hw["hw_feasible"]:
            r = rew.infeasible()
        elif lat > requirement_s:
            obj["reasons"].append(f"latency {lat:.4g} s (iNAS's estimate) exceeds the requirement "
                                  f"{requirement_s:.4g} s")
            r = rew.missed(lat, requirement_s)
        else:
            t1 = time.perf_counter()
            module, acc = train(arch)
            obj["train_s"] = time.perf_counter() - t1
            train_s += obj["train_s"]
            trained += 1
            obj.update(accuracy=float(acc), trained=True)
            r = rew.trained(float(acc), lat, requirement_s)
            if best is None or (acc, -lat) > (best["accuracy"], -best["latency_s"]):
                best, best_module = obj, module
        obj["feasible"] = bool(obj["trained"])
        controller.tell([arch], [obj], [r])
        obj.update(step=step, reward=r, moving_accuracy=rew.moving_acc, trial_s=time.perf_counter() - t_trial)
        res.history.append(obj)
        step += 1
        if progress:
            progress(int(min(time.perf_counter() - t0, budget_s)), int(math.ceil(budget_s)))
    res.wall_s = time.perf_counter() - t0
    res.evaluations = step
    return InasSearch(res, best, best_module, trained, train_s)
