"""Accelerated intermittent NAS: search space, supernet (weight sharing + KD), evaluator, controllers.

Public API::

    from aidi.models.nas import space_for, SearchSpace, Arch, Stage
    from aidi.models.nas import SupernetConfig, train_supernet, extract, supernet_accuracy, finetune, kd_ablation
    from aidi.models.nas import Evaluator, SupernetAccuracy, ScratchAccuracy, ProxyAccuracy
    (the hardware evaluator an Evaluator is handed: aidi.models.hardware.HardwareEvaluator)
    from aidi.models.nas import make_controller, run_search, pareto_front, reward
"""

from .controllers import CONTROLLERS, SearchResult, make_controller, pareto_front, reward, run_search
from .evaluate import Evaluator, HardwareSource, ObjectiveCache, ProxyAccuracy, ScratchAccuracy, SupernetAccuracy
from .space import Arch, SearchSpace, Stage, StageSpace, digits_space, inas_space, space_for
from .supernet import (NasData, Supernet, SupernetConfig, extract, finetune, kd_ablation, split_validation,
                       supernet_accuracy, teacher_of, train_from_scratch, train_supernet)

__all__ = [
    "Arch", "CONTROLLERS", "Evaluator", "NasData", "ObjectiveCache", "ProxyAccuracy", "ScratchAccuracy", "SearchResult",
    "SearchSpace", "Stage", "StageSpace", "Supernet", "SupernetAccuracy", "SupernetConfig", "digits_space", "extract",
    "finetune", "HardwareSource", "inas_space", "kd_ablation", "make_controller", "pareto_front", "reward",
    "run_search", "space_for", "split_validation", "supernet_accuracy", "teacher_of", "train_from_scratch",
    "train_supernet",
]
