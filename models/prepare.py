"""One call from a scenario's ``[model]`` table to what the simulator and the emitter need.

    pm = prepare_model(layers, input_shape, weights="trained:digits", seed=0)
    pm.qmodel        # QModel (int weights, shifts)
    pm.x_q           # int16 input sample (held-out sample ``sample_index``), the one
                     # `aidi run --functional` computes and the emitted firmware embeds
    pm.label         # its label
    pm.float_accuracy, pm.q15_accuracy   # held-out split, fractions in [0, 1]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from .layers import Network, parse_network
from .net import DEFAULT_EPOCHS, TrainedModel, load_model
from .q15 import QModel, q15_accuracy, quantize


@dataclass
class PreparedModel:
    """A float model, its Q15 model and the functional input sample."""

    trained: TrainedModel
    qmodel: QModel
    x_q: np.ndarray
    label: int
    float_accuracy: float
    q15_accuracy: float

    @property
    def net(self) -> Network:
        return self.trained.net


def prepare_model(layers: Sequence[dict] | Network, input_shape: Sequence[int] | None = None,
                  weights: str = "trained:digits", seed: int = 0, epochs: int = DEFAULT_EPOCHS,
                  base_dir: str | Path | None = None, sample_index: int = 0) -> PreparedModel:
    """Parse, load/train, quantize, and pick the input sample. Raises ValueError on bad specs or files."""
    net = layers if isinstance(layers, Network) else parse_network(layers, input_shape)
    trained = load_model(net, weights=weights, seed=seed, epochs=epochs, base_dir=base_dir)
    qm = quantize(trained)
    data = trained.dataset
    if not 0 <= sample_index < len(data.x_test):
        raise ValueError(f"sample index {sample_index} outside the held-out split (0..{len(data.x_test) - 1})")
    x_q = qm.quantize_input(data.x_test[sample_index])
    return PreparedModel(trained, qm, x_q, int(data.y_test[sample_index]), trained.float_accuracy,
                         q15_accuracy(qm, data.x_test, data.y_test))
