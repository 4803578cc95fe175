"""Task graphs: the atomic units an intermittent device executes.

A unit is what runs between two commits of progress to FRAM: one tile, a
hyper-tile of several tiles, or a whole layer.  It either completes (its
outputs and its progress record are in FRAM) or it is lost at a brown-out and
runs again from the start after reboot.

Energies are at the MCU's supply pins (before the converter), per category.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: energy categories of a unit, in the order of :attr:`TaskGraph.energy_matrix` columns
UNIT_CATEGORIES = ("compute", "data_movement", "preservation")


@dataclass(frozen=True)
class FramRange:
    """A byte range in FRAM: ``[start, start + length)``."""

    start: int
    length: int


@dataclass
class Unit:
    """One atomic unit of work.

    Attributes:
        name: human-readable id, e.g. ``"L0/t3"``.
        layer: index of the layer the unit belongs to.
        cycles: MCLK cycles of the whole unit (including its commit).
        energy_J: energy (J) per category of :data:`UNIT_CATEGORIES`.
        sram_bytes: SRAM the unit's buffers need (inputs, weights, outputs, stack).
        fram_reads / fram_writes: the FRAM ranges it reads and writes.
        tiles: number of tiles the unit batches (hyper-tile size S).
        payload: what functional mode needs to execute the unit (opaque to sim).
    """

    name: str
    layer: int
    cycles: float
    energy_J: dict[str, float]
    sram_bytes: int = 0
    fram_reads: tuple[FramRange, ...] = ()
    fram_writes: tuple[FramRange, ...] = ()
    tiles: int = 1
    payload: Any = None

    @property
    def total_energy_J(self) -> float:
        return float(sum(self.energy_J.get(c, 0.0) for c in UNIT_CATEGORIES))


@dataclass
class TaskGraph:
    """Units in execution order, with the layer names they belong to."""

    units: list[Unit]
    layer_names: list[str] = field(default_factory=list)
    mclk_hz: float = 16e6

    def __len__(self) -> int:
        return len(self.units)

    def durations_s(self) -> np.ndarray:
        return np.array([u.cycles for u in self.units], dtype=np.float64) / self.mclk_hz

    def energy_matrix(self) -> np.ndarray:
        """(n_units, len(UNIT_CATEGORIES)) energies in J."""
        return np.array(
            [[u.energy_J.get(c, 0.0) for c in UNIT_CATEGORIES] for u in self.units],
            dtype=np.float64,
        ).reshape(len(self.units), len(UNIT_CATEGORIES))

    def layers(self) -> np.ndarray:
        return np.array([u.layer for u in self.units], dtype=np.int64)

    def max_sram_bytes(self) -> int:
        return max((u.sram_bytes for u in self.units), default=0)

    def total_energy_J(self) -> float:
        return float(self.energy_matrix().sum())

    def total_seconds(self) -> float:
        return float(self.durations_s().sum())
