"""Which training samples carry the trigger: a pure function of labels, settings and seed."""

from __future__ import annotations

import math

import numpy as np


def poison_candidates(labels: np.ndarray, target_idx: int, poison_target_class: bool) -> np.ndarray:
    """Indices that may be poisoned: all of them, or those whose label is not the target."""
    labels = np.asarray(labels)
    if poison_target_class:
        return np.arange(len(labels))
    return np.flatnonzero(labels != target_idx)


def fixed_poison_indices(
    labels: np.ndarray, target_idx: int, poisoning_rate: float, poison_target_class: bool, seed: int
) -> np.ndarray:
    """The reference's fixed subset, sorted.

    ``RandomState(seed).choice(candidates, ceil(rate · len(candidates)), replace=False)`` reproduces the
    reference implementation's subsets exactly (it seeds NumPy's global state with the same seed). Note
    the ``ceil`` of a float product: 0.1 · 30 = 3.0000000000000004 gives 4 samples, as in the reference.
    """
    candidates = poison_candidates(labels, target_idx, poison_target_class)
    count = math.ceil(poisoning_rate * len(candidates))
    chosen = np.random.RandomState(seed).choice(candidates, size=count, replace=False)
    return np.sort(chosen)


def random_poison_draw(
    labels: np.ndarray, target_idx: int, poisoning_rate: float, poison_target_class: bool, seed: int
) -> np.ndarray:
    """One deterministic draw of on-the-fly poisoning (each candidate with probability ``rate``), sorted.

    Used where a single pass over the data must be reproducible (variation generation); training with
    ``random_poisoning`` draws afresh at every fetch instead.
    """
    candidates = poison_candidates(labels, target_idx, poison_target_class)
    coins = np.random.default_rng(seed).random(len(candidates))
    return candidates[coins < poisoning_rate]


def index_mask(indices: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask of ``length`` with ``indices`` set: O(1) membership per fetch."""
    mask = np.zeros(length, dtype=bool)
    mask[np.asarray(indices, dtype=np.int64)] = True
    return mask


def attack_targets(num_classes: int, target_idx: int) -> list[int | None]:
    """Per true class, the class a triggered image of it should be sent to; ``None`` for the target class
    itself, whose triggered images say nothing about the attack (all-to-one)."""
    return [None if k == target_idx else target_idx for k in range(num_classes)]
