"""``aidi nas-ablation kd``: what knowledge distillation adds to the supernet, as a table.

Per training seed, two supernets of the data set's search space (same seed, data, epochs): one trained
with KD (``alpha`` > 0: the sandwich rule's smaller members distil from the largest) and one without
(``alpha = 0``).  One fixed sample of members (:data:`aidi.models.nas.supernet.ABLATION_ARCH_SEED`) is
read off both: test accuracy with inherited weights, and after fine-tuning (KD from the supernet's
teacher vs cross-entropy).  :func:`aidi.models.nas.supernet.kd_ablation` does the work; this module
checks the options, names the data, and writes ``OUT/kd-ablation.json`` and ``OUT/kd-ablation.txt``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from . import jsonout, outdir
from .errors import UserError

ABLATIONS = ("kd",)
#: the KD arm's alpha when SupernetConfig's default is 0 (KD off): Hinton et al.'s even mix, as before
KD_ARM_ALPHA = 0.5


def parse_ints(text: str, option: str, least: int = 0, count: int | None = None) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; UserError naming ``option`` when a value is not an integer >= ``least``
    or (``count`` given) there are not exactly ``count`` values."""
    try:
        vals = [int(v) for v in str(text).split(",") if v.strip() != ""]
    except ValueError:
        raise UserError(f"{option}: expected comma-separated integers, got {text!r}") from None
    if not vals or any(v < least for v in vals) or (count is not None and len(vals) != count):
        what = f"{count} integers" if count else "integers"
        raise UserError(f"{option}: expected {what} >= {least}, got {text!r}")
    return vals


def run_kd_ablation(dataset: str = "digits", data_dir: str | Path | None = None, seeds: Sequence[int] = (0,),
                    n_archs: int = 8, epochs: Sequence[int] | None = None, finetune_epochs: int | None = None,
                    alpha: float | None = None, quick: bool = False, train_images: int | None = None,
                    device: str = "cpu", out: str | Path | None = None, force: bool = False,
                    log: Callable[[str], None] | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """The KD ablation on ``dataset`` (see :mod:`aidi.analysis.nas_run` ``load_data`` for ``data_dir``,
    ``quick`` and ``train_images``; the data split uses the first seed).

    ``epochs``: the supernet's (full, kernel, depth, width) epochs (default: ``SupernetConfig``'s, or its
    quick ones with ``quick``); ``alpha``: the KD arm's weight (default ``SupernetConfig.alpha``, or
    :data:`KD_ARM_ALPHA` when that is 0).
    Writes ``OUT/kd-ablation.json`` (the returned dict) and ``OUT/kd-ablation.txt`` (:func:`table_text`)
    when ``out`` is given.  Raises UserError on a bad option.
    """
    import torch

    from aidi.models.nas import kd_ablation

    from .nas_run import DATASETS, check_device, load_data, supernet_config

    if dataset not in DATASETS:
        raise UserError(f"--dataset: expected one of {', '.join(DATASETS)}, got {dataset!r}")
    if not seeds or any(isinstance(s, bool) or int(s) < 0 for s in seeds):
        raise UserError(f"--seeds: expected integers >= 0, got {list(seeds)!r}")
    if n_archs < 1:
        raise UserError(f"--archs: must be at least 1, got {n_archs}")
    if alpha is not None and not (0.0 < alpha <= 1.0):
        raise UserError(f"--alpha: the KD arm's weight must be in (0, 1], got {alpha}")
    if finetune_epochs is not None and finetune_epochs < 0:
        raise UserError(f"--finetune-epochs: must be >= 0, got {finetune_epochs}")
    check_device(device)
    cfg = supernet_config(quick)
    if epochs is not None:
        if len(epochs) != 4 or any(e < 0 for e in epochs) or epochs[0] < 1:
            raise UserError(f"--epochs: expected FULL,KERNEL,DEPTH,WIDTH epochs (>= 0, full >= 1), got {list(epochs)}")
        cfg = replace(cfg, full_epochs=epochs[0], kernel_epochs=epochs[1], depth_epochs=epochs[2],
                      width_epochs=epochs[3])
    cfg = replace(cfg, alpha=float(alpha if alpha is not None else cfg.alpha if cfg.alpha > 0 else KD_ARM_ALPHA))
    if out is not None:
        out = outdir.prepare(out, force)
    space, data = load_data(dataset, data_dir, int(seeds[0]), quick, train_images)
    res = kd_ablation(space, data, [int(s) for s in seeds], cfg, n_archs, finetune_epochs, log=log, device=device,
                      progress=progress)
    res = {"ablation": "kd", "dataset": dataset, "search_space": space.name, "torch_threads": torch.get_num_threads(),
           "images": {"train": len(data.x_train), "validation": len(data.x_val), "test": len(data.x_test)}, **res}
    res["verdict"] = verdict(res)
    if out is not None:
        res["out"] = str(out)
        (out / "kd-ablation.json").write_text(jsonout.dumps(res, indent=1) + "\n")
        (out / "kd-ablation.txt").write_text(table_text(res))
    return res


def verdict(res: dict) -> str:
    """One sentence: whether KD raised the mean accuracy, with inherited weights and after fine-tuning."""
    parts = []
    for short, what in (("inherited", "with inherited weights"), ("finetuned", "after fine-tuning")):
        g = res[f"kd_gain_{short}"]["mean"]
        parts.append(f"{'helps' if g > 0 else 'does not help'} {what} ({100 * g:+.1f} points)")
    return "KD " + "; ".join(parts)


def table_text(res: dict) -> str:
    """A plain-text report of :func:`run_kd_ablation`'s result (accuracies in %, mean ± std over seeds)."""
    def pm(d: dict) -> str:
        return f"{100 * d['mean']:6.2f} ± {100 * d['std']:.2f}"

    lines = [f"KD ablation on {res['dataset']} (space {res['search_space']}): seeds {res['seeds']}, "
             f"{len(res['archs'])} members, alpha {res['alpha']:g}, T {res['temperature']:g}, device {res['device']}",
             f"images: {res['images']['train']} train, {res['images']['validation']} validation, "
             f"{res['images']['test']} test; supernet epochs (full, kernel, depth, width) "
             + ", ".join(str(res["config"][f"{p}_epochs"]) for p in ("full", "kernel", "depth", "width"))
             + f"; fine-tuning {res['finetune_epochs']} epochs", "",
             f"{'test accuracy (%)':24} {'inherited':>15} {'fine-tuned':>15} {'supernet s':>11}"]
    for label, name in (("kd", f"KD (alpha {res['alpha']:g})"), ("no_kd", "no KD (alpha 0)")):
        r = res[label]
        lines.append(f"{name:24} {pm(r['inherited']):>15} {pm(r['finetuned']):>15} {r['supernet_train_seconds']:11.1f}")
    lines.append(f"{'gain (KD - no KD)':24} {pm(res['kd_gain_inherited']):>15} {pm(res['kd_gain_finetuned']):>15}")
    w = max(6, *(len(a["arch"]) for a in res["archs"]))
    lines += ["", "per member (mean over seeds, %):",
              f"{'member':{w}} {'inh. KD':>8} {'inh. no':>8} {'ft KD':>8} {'ft no':>8}"]
    for a in res["archs"]:
        cells = []
        for key in ("inherited_test_acc", "finetuned_test_acc"):
            for label in ("kd", "no_kd"):
                cells.append(100 * float(np.mean([r[key] for r in res["rows"]
                                                  if r["arch_id"] == a["id"] and r["arm"] == label])))
        lines.append(f"{a['arch']:{w}} " + " ".join(f"{c:8.2f}" for c in cells))
    lines += ["", res["verdict"]]
    return "\n".join(lines) + "\n"
