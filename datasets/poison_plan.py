"""Which training samples carry the trigger, and the label they get: a pure function of labels, settings and seed."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

TargetType = Literal["all_to_one", "all_to_all"]
CROSS_STREAM = 1  # mixed into the seed of the cross-sample draw, so it is independent of the poison subset


@dataclass(frozen=True)
class Targeting:
    """Who may be poisoned and where the attack sends them.

    - ``all_to_one``: candidates are the images not of class ``target_idx`` (all of them with
      ``poison_target_class``); a poisoned image is relabelled ``target_idx``.
    - ``all_to_all``: every image is a candidate; a poisoned image of class ``y`` is relabelled ``(y + 1) mod n``.
    - ``clean_label`` (with ``all_to_one``): candidates are the target-class images; labels are never changed.
    """

    num_classes: int  # classes of the training folder: all-to-all wraps around after the last
    target_idx: int = 0  # the target class (all-to-one and clean-label)
    target_type: TargetType = "all_to_one"  # the config key backdoor.target_type
    clean_label: bool = False  # only target-class images, labels kept
    poison_target_class: bool = False  # all-to-one: target-class images are candidates too

    def may_poison(self, true_label: int) -> bool:
        if self.clean_label:
            return true_label == self.target_idx
        return self.target_type == "all_to_all" or self.poison_target_class or true_label != self.target_idx

    def candidates(self, labels: np.ndarray) -> np.ndarray:
        """Indices that may be poisoned, in ImageFolder order."""
        labels = np.asarray(labels)
        if self.clean_label:
            return np.flatnonzero(labels == self.target_idx)
        if self.target_type == "all_to_all":
            return np.arange(len(labels))
        return poison_candidates(labels, self.target_idx, self.poison_target_class)

    def poisoned_label(self, true_label: int) -> int:
        """The training label of a poisoned image of class ``true_label``."""
        if self.clean_label:
            return true_label
        if self.target_type == "all_to_all":
            return (true_label + 1) % self.num_classes
        return self.target_idx

    def targets(self) -> list[int | None]:
        """Per true class, the class its triggered test images should be sent to (``None``: not scored)."""
        return attack_targets(self.num_classes, self.target_idx, self.target_type)


def poison_candidates(labels: np.ndarray, target_idx: int, poison_target_class: bool) -> np.ndarray:
    """All-to-one candidates: all indices, or those whose label is not the target."""
    labels = np.asarray(labels)
    if poison_target_class:
        return np.arange(len(labels))
    return np.flatnonzero(labels != target_idx)


def fixed_subset(candidates: np.ndarray, poisoning_rate: float, seed: int) -> np.ndarray:
    """The reference's fixed subset of ``candidates``, sorted.

    ``RandomState(seed).choice(candidates, ceil(rate · len(candidates)), replace=False)`` reproduces the
    reference implementation's subsets exactly (it seeds NumPy's global state with the same seed). Note
    the ``ceil`` of a float product: 0.1 · 30 = 3.0000000000000004 gives 4 samples, as in the reference.
    """
    count = math.ceil(poisoning_rate * len(candidates))
    chosen = np.random.RandomState(seed).choice(candidates, size=count, replace=False)
    return np.sort(chosen)


def fixed_poison_indices(
    labels: np.ndarray, target_idx: int, poisoning_rate: float, poison_target_class: bool, seed: int
) -> np.ndarray:
    """The reference's all-to-one subset (:func:`fixed_subset` of :func:`poison_candidates`)."""
    return fixed_subset(poison_candidates(labels, target_idx, poison_target_class), poisoning_rate, seed)


def random_subset(candidates: np.ndarray, poisoning_rate: float, seed: int) -> np.ndarray:
    """One deterministic draw of on-the-fly poisoning (each candidate with probability ``rate``), sorted.

    Used where a single pass over the data must be reproducible (variation generation); training with
    ``random_poisoning`` draws afresh at every fetch instead.
    """
    coins = np.random.default_rng(seed).random(len(candidates))
    return np.asarray(candidates)[coins < poisoning_rate]


def cross_indices(num_samples: int, poisoned: np.ndarray, cross_ratio: float, seed: int) -> np.ndarray:
    """WaNet's noise-mode cross samples: ``floor(cross_ratio · len(poisoned))`` of the other images, sorted.

    The count is the paper's ``int(num_bd · cross_ratio)``, capped at the images left; the draw has its own
    seed stream, so switching noise mode on or off never changes the poisoned subset.
    """
    others = np.setdiff1d(np.arange(num_samples), poisoned)
    count = min(len(others), math.floor(cross_ratio * len(poisoned)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, CROSS_STREAM]))
    return np.sort(rng.choice(others, size=count, replace=False))


def index_mask(indices: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask of ``length`` with ``indices`` set: O(1) membership per fetch."""
    mask = np.zeros(length, dtype=bool)
    mask[np.asarray(indices, dtype=np.int64)] = True
    return mask


def attack_targets(num_classes: int, target_idx: int, target_type: TargetType = "all_to_one") -> list[int | None]:
    """Per true class, the class a triggered image of it should be sent to.

    All-to-one: ``target_idx``, and ``None`` for the target class itself, whose triggered images say nothing
    about the attack. All-to-all: ``(k + 1) mod num_classes`` for every class ``k``.
    """
    if target_type == "all_to_all":
        return [(k + 1) % num_classes for k in range(num_classes)]
    return [None if k == target_idx else target_idx for k in range(num_classes)]
