"""Datasets from a validated config: the poisoned training set and the clean / triggered test sets."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from backdoor_attacks import Attack, build_attack, cross_ratio
from datasets.image_folder import ImageFolderIndex, check_images, scan_image_folder
from datasets.poison_plan import cross_indices, fixed_subset, index_mask, random_subset
from datasets.poisoned_image_folder import CrossSamples, PoisonedImageFolder, Poisoning, triggered_test_set
from datasets.transforms import build_transform, runs_on_uint8
from utils import distributed


@dataclass(frozen=True)
class AttackMode:
    """What reports and W&B say about the attack a run was poisoned with or is tested against."""

    name: str  # the attack's registry name, e.g. WaNetBackdoor
    target_type: str  # all_to_one or all_to_all
    target_idx: int
    clean_label: bool

    @classmethod
    def of(cls, backdoor) -> AttackMode | None:
        if backdoor is None:
            return None
        return cls(backdoor.attack_name, backdoor.target_type, backdoor.target_idx, backdoor.clean_label)

    def as_dict(self) -> dict:
        return asdict(self)

    def __str__(self) -> str:
        if self.target_type == "all_to_all":
            sent = "all-to-all: ASR counts class y predicted as (y + 1) mod n"
        else:
            sent = f"all-to-one: ASR counts non-target images predicted as class {self.target_idx}"
        return f"attack: {self.name}, {sent}{', clean-label (no label changed)' if self.clean_label else ''}"


@dataclass
class ExperimentData:
    """Everything a teacher or student trains and is tested on."""

    train: PoisonedImageFolder
    index: ImageFolderIndex  # the training folder's classes and samples
    poison_indices: np.ndarray  # sorted; empty with random poisoning (drawn per fetch)
    clean_test: PoisonedImageFolder
    triggered_test: PoisonedImageFolder | None  # None without a backdoor block
    targets: list[int | None] | None  # per true class, where the attack sends it (None: not attacked)
    attack_mode: AttackMode | None = None  # None without a backdoor block
    cross_indices: np.ndarray | None = None  # noise-mode cross samples, sorted (None: the attack has none)

    @property
    def classes(self) -> list[str]:
        return self.index.classes


def attack_from(backdoor) -> Attack | None:
    """The trigger a ``backdoor`` block names, built once for everything that applies it."""
    return None if backdoor is None else build_attack(backdoor.attack_name, backdoor.attack_params)


def build_poisoning(
    backdoor, attack: Attack, index: ImageFolderIndex, seed: int, *, single_pass: bool = False
) -> Poisoning | None:
    """The ``Poisoning`` a ``backdoor`` block describes for the folder ``index``, or ``None`` when nothing is
    poisoned.

    ``single_pass`` turns ``random_poisoning`` into one seeded draw and gives each cross sample one seeded
    noise draw (for the variation generator, whose output must not depend on worker scheduling); training
    draws afresh at each fetch instead. With random poisoning, a fetch that is not poisoned is a cross sample
    with probability ``cross_ratio · poisoning_rate``.
    """
    if backdoor is None or backdoor.poisoning_rate == 0:
        return None
    rate, ratio = backdoor.poisoning_rate, cross_ratio(attack)
    targeting = backdoor.targeting(len(index.classes))
    common = {"attack": attack, "targeting": targeting, "poison_first": backdoor.poison_first}
    if backdoor.random_poisoning and not single_pass:
        return Poisoning(**common, random_rate=rate, cross=CrossSamples(rate=min(1.0, ratio * rate)) if ratio else None)
    draw = random_subset if backdoor.random_poisoning else fixed_subset
    chosen = draw(targeting.candidates(index.labels), rate, seed)
    cross = None
    if ratio:
        mask = index_mask(cross_indices(len(index), chosen, ratio, seed), len(index))
        cross = CrossSamples(mask=mask, noise_seed=seed if single_pass else None)
    return Poisoning(**common, fixed_mask=index_mask(chosen, len(index)), cross=cross)


def poisoned_indices(poisoning: Poisoning | None) -> np.ndarray:
    if poisoning is None or poisoning.fixed_mask is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(poisoning.fixed_mask)


def cross_sample_indices(poisoning: Poisoning | None) -> np.ndarray | None:
    """Sorted cross-sample indices (empty when drawn per fetch); ``None`` when the attack has none."""
    if poisoning is None or poisoning.cross is None:
        return None
    if poisoning.cross.mask is None:
        return np.zeros(0, dtype=np.int64)
    return np.flatnonzero(poisoning.cross.mask)


def build_experiment_data(config) -> ExperimentData:
    """The (poisoned) training set and the test sets of a teacher or student config."""
    backdoor, size = config.backdoor, config.dataset.image_size
    attack = attack_from(backdoor)
    index = scan_image_folder(config.dataset.root_train)
    poisoning = build_poisoning(backdoor, attack, index, config.seed)
    uint8 = runs_on_uint8(config.transformations) and (poisoning is None or poisoning.poison_first)
    train = PoisonedImageFolder(
        index.samples,
        size,
        poisoning=poisoning,
        transform=build_transform(config.transformations),
        output="uint8_chw" if uint8 else "float",
    )
    test_index = scan_image_folder(config.dataset.root_test)
    # every process decodes its share once, so a bad file stops the run before anything is written
    rank, world = distributed.rank(), distributed.world_size()
    shares = index.samples[rank::world] + test_index.samples[rank::world]
    check_images(shares, config.training.dataloader_num_workers, distributed.is_main_process())
    clean = PoisonedImageFolder(test_index.samples, size, output="uint8_chw")
    triggered = targets = None
    if backdoor is not None:
        # the poison plan's own targeting where there is one: the triggered test set follows the same rules
        targeting = poisoning.targeting if poisoning is not None else backdoor.targeting(len(index.classes))
        triggered = triggered_test_set(test_index.samples, size, attack, targeting, backdoor.poison_first)
        targets = targeting.targets()
    return ExperimentData(
        train,
        index,
        poisoned_indices(poisoning),
        clean,
        triggered,
        targets,
        AttackMode.of(backdoor),
        cross_sample_indices(poisoning),
    )
