"""Mutation and crossover on decision vectors (one code per categorical decision), shared by the chain space
(:mod:`.space`) and the inverted-residual space (:mod:`.mbconv`), so that neither imports the other for them.

Each takes an explicit ``numpy.random.Generator`` (the Archai style of :mod:`.space`).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np


def change_codes(codes: list[int], movable: Sequence[int], decisions: Sequence[tuple[str, tuple]],
                 rng: np.random.Generator, n_changes: int = 1) -> list[int]:
    """``codes`` with ``n_changes`` of the ``movable`` decisions (indices, each with more than one option)
    changed in place, each to another of its options drawn uniformly."""
    picks = rng.choice(len(movable), size=min(n_changes, len(movable)), replace=False)
    for j in np.atleast_1d(picks):
        i = movable[int(j)]
        n = len(decisions[i][1])
        codes[i] = (codes[i] + 1 + int(rng.integers(n - 1))) % n  # any other option, uniformly
    return codes


def cross_codes(ca: Sequence[int], cb: Sequence[int], rng: np.random.Generator) -> list[int]:
    """Uniform crossover of two decision vectors: each code from ``cb`` with probability 1/2, else ``ca``."""
    take_b = rng.random(len(ca)) < 0.5
    return [y if t else x for x, y, t in zip(ca, cb, take_b)]
