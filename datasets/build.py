"""Datasets from a validated config: the poisoned training set and the clean / triggered test sets."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backdoor_attacks import Attack, build_attack
from datasets.image_folder import ImageFolderIndex, check_images, scan_image_folder
from datasets.poison_plan import attack_targets, fixed_poison_indices, index_mask, random_poison_draw
from datasets.poisoned_image_folder import PoisonedImageFolder, Poisoning, triggered_test_set
from datasets.transforms import build_transform, runs_on_uint8
from utils import distributed


@dataclass
class ExperimentData:
    """Everything a teacher or student trains and is tested on."""

    train: PoisonedImageFolder
    index: ImageFolderIndex  # the training folder's classes and samples
    poison_indices: np.ndarray  # sorted; empty with random poisoning (drawn per fetch)
    clean_test: PoisonedImageFolder
    triggered_test: PoisonedImageFolder | None  # None without a backdoor block
    targets: list[int | None] | None  # per true class, where the attack sends it (None: not attacked)

    @property
    def classes(self) -> list[str]:
        return self.index.classes


def attack_from(backdoor) -> Attack | None:
    """The trigger a ``backdoor`` block names, built once for everything that applies it."""
    return None if backdoor is None else build_attack(backdoor.attack_name, backdoor.attack_params)


def build_poisoning(backdoor, attack: Attack, labels: np.ndarray, seed: int, *, single_pass: bool = False):
    """The ``Poisoning`` a ``backdoor`` block describes, or ``None`` when nothing is poisoned.

    ``single_pass`` turns ``random_poisoning`` into one seeded draw (for the variation generator, whose
    output must not depend on worker scheduling); training draws afresh at each fetch instead.
    """
    if backdoor is None or backdoor.poisoning_rate == 0:
        return None
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


def build_experiment_data(config) -> ExperimentData:
    """The (poisoned) training set and the test sets of a teacher or student config."""
    backdoor, size = config.backdoor, config.dataset.image_size
    attack = attack_from(backdoor)
    index = scan_image_folder(config.dataset.root_train)
    poisoning = build_poisoning(backdoor, attack, index.labels, config.seed)
    uint8 = runs_on_uint8(config.transformations) and (poisoning is None or poisoning.poison_first)
    train = PoisonedImageFolder(
        index.samples,
        size,
        poisoning=poisoning,
        transform=build_transform(config.transformations),
        output="uint8_chw" if uint8 else "float",
    )
    test_index = scan_image_folder(config.dataset.root_test)
    # every process checks its share of the headers, so a bad file stops the run before anything is written
    rank, world = distributed.rank(), distributed.world_size()
    shares = index.samples[rank::world] + test_index.samples[rank::world]
    check_images(shares, config.training.dataloader_num_workers, distributed.is_main_process())
    clean = PoisonedImageFolder(test_index.samples, size, output="uint8_chw")
    triggered = targets = None
    if backdoor is not None:
        triggered = triggered_test_set(test_index.samples, size, attack, backdoor.target_idx, backdoor.poison_first)
        targets = attack_targets(len(index.classes), backdoor.target_idx)
    return ExperimentData(train, index, poisoned_indices(poisoning), clean, triggered, targets)
