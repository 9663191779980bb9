"""Datasets from a validated config: the poisoned training set and the clean / triggered test sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backdoor_attacks import build_attack
from datasets.image_folder import ImageFolderIndex, scan_image_folder
from datasets.poison_plan import fixed_poison_indices, index_mask, random_poison_draw
from datasets.poisoned_image_folder import PoisonedImageFolder, Poisoning, triggered_test_set
from datasets.transforms import build_transform, runs_on_uint8


@dataclass
class TrainingData:
    dataset: PoisonedImageFolder
    index: ImageFolderIndex
    poison_indices: np.ndarray  # sorted; empty with random poisoning (drawn per fetch)


def build_poisoning(backdoor, labels: np.ndarray, seed: int, *, single_pass: bool = False) -> Poisoning | None:
    """The ``Poisoning`` a ``backdoor`` config block describes, or ``None`` when nothing is poisoned.

    ``single_pass`` turns ``random_poisoning`` into one seeded draw (for the variation generator, whose
    output must not depend on worker scheduling); training draws afresh at each fetch instead.
    """
    if backdoor is None or backdoor.poisoning_rate == 0:
        return None
    attack = build_attack(backdoor.attack_name, backdoor.attack_params)
    settings = (labels, backdoor.target_idx, backdoor.poisoning_rate, backdoor.poison_target_class, seed)
    common = {"attack": attack, "target_idx": backdoor.target_idx, "poison_first": backdoor.poison_first}
    if backdoor.random_poisoning and not single_pass:
        return Poisoning(
            **common, random_rate=backdoor.poisoning_rate, poison_target_class=backdoor.poison_target_class
        )
    draw = random_poison_draw if backdoor.random_poisoning else fixed_poison_indices
    return Poisoning(**common, fixed_mask=index_mask(draw(*settings), len(labels)))


def poisoned_indices(poisoning: Poisoning | None) -> np.ndarray:
    if poisoning is None or poisoning.fixed_mask is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(poisoning.fixed_mask)


def build_training_data(config) -> TrainingData:
    index = scan_image_folder(config.dataset.root_train)
    poisoning = build_poisoning(config.backdoor, index.labels, config.seed)
    uint8 = runs_on_uint8(config.transformations) and (poisoning is None or poisoning.poison_first)
    dataset = PoisonedImageFolder(
        index.samples,
        config.dataset.image_size,
        poisoning=poisoning,
        transform=build_transform(config.transformations),
        output="uint8_chw" if uint8 else "float",
    )
    return TrainingData(dataset, index, poisoned_indices(poisoning))


def build_test_sets(config) -> tuple[PoisonedImageFolder, PoisonedImageFolder | None]:
    """(clean test set, triggered test set or ``None`` without a ``backdoor`` block)."""
    index = scan_image_folder(config.dataset.root_test)
    size = config.dataset.image_size
    clean = PoisonedImageFolder(index.samples, size, output="uint8_chw")
    backdoor = config.backdoor
    if backdoor is None:
        return clean, None
    attack = build_attack(backdoor.attack_name, backdoor.attack_params)
    triggered = triggered_test_set(index.samples, size, attack, backdoor.target_idx, backdoor.poison_first)
    return clean, triggered
