"""An ImageFolder that applies a poisoning plan; the triggered test set is built from the same pieces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from backdoor_attacks import Attack
from datasets.image_folder import read_rgb
from utils.image_tensors import to_float_tensor, to_uint8_array


@dataclass(frozen=True)
class Poisoning:
    """How samples are poisoned. Exactly one of ``fixed_mask`` / ``random_rate`` decides which ones."""

    attack: Attack
    target_idx: int
    poison_first: bool = True  # trigger on the resized uint8 image (True) or after the transforms (False)
    fixed_mask: np.ndarray | None = None  # bool per sample index: poisoned in every epoch
    random_rate: float = 0.0  # probability per fetch when no fixed mask (random_poisoning)
    poison_target_class: bool = False  # whether target-class samples may be drawn by random poisoning

    def is_poisoned(self, index: int, true_label: int) -> bool:
        if self.fixed_mask is not None:
            return bool(self.fixed_mask[index])
        if not self.poison_target_class and true_label == self.target_idx:
            return False
        # torch's RNG: seeded per DataLoader worker from the loader's generator, so runs are reproducible
        return self.random_rate > 0 and torch.rand(()).item() < self.random_rate


class Sample(NamedTuple):
    image: np.ndarray | torch.Tensor
    label: int  # label used for training / scoring (the target class when poisoned)
    true_label: int  # the folder's label
    poisoned: bool


OUTPUTS = ("float", "uint8_chw", "uint8")


class PoisonedImageFolder(Dataset):
    """Samples ``(image, label, true_label)``: resized, poisoned per plan, transformed.

    Order of work per fetch: decode → resize to ``image_size`` → trigger (``poison_first``) → tensor →
    ``transform`` → trigger (not ``poison_first``). ``output`` picks the image type:

    - ``float``: 3×H×W float32 in [0, 1], transforms on floats (the reference's order);
    - ``uint8_chw``: 3×H×W uint8, transforms on uint8; the device divides by 255. For transforms that mean
      the same on both (see ``datasets.transforms.runs_on_uint8``) and triggers applied before them;
    - ``uint8``: an H×W×3 uint8 array without transforms (what the variation generator feeds the model).
    """

    def __init__(
        self,
        samples: list[tuple[str, int]],
        image_size: int,
        poisoning: Poisoning | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        output: str = "float",
    ):
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {OUTPUTS}, not {output!r}")
        if output == "uint8_chw" and poisoning is not None and not poisoning.poison_first:
            raise ValueError("uint8_chw output needs poison_first: the late trigger works on floats")
        self.samples = samples
        self.image_size = image_size
        self.poisoning = poisoning
        self.transform = transform
        self.output = output

    def __len__(self) -> int:
        return len(self.samples)

    def load(self, index: int) -> Sample:
        path, true_label = self.samples[index]
        image = read_rgb(path, self.image_size)
        plan = self.poisoning
        poisoned = plan is not None and plan.is_poisoned(index, true_label)
        label = plan.target_idx if poisoned else true_label
        if poisoned and plan.poison_first:
            image = plan.attack(image)
        late_trigger = poisoned and not plan.poison_first
        if self.output == "uint8":
            if late_trigger:
                image = to_uint8_array(plan.attack(to_float_tensor(image)))
            return Sample(image, label, true_label, poisoned)
        if self.output == "uint8_chw":
            tensor = torch.from_numpy(image).permute(2, 0, 1)
            return Sample(self.transform(tensor) if self.transform is not None else tensor, label, true_label, poisoned)
        tensor = to_float_tensor(image)
        if self.transform is not None:
            tensor = self.transform(tensor)
        if late_trigger:
            tensor = plan.attack(tensor)
        return Sample(tensor, label, true_label, poisoned)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label, true_label, _ = self.load(index)
        return image, label, true_label


def triggered_test_set(
    samples: list[tuple[str, int]], image_size: int, attack: Attack, target_idx: int, poison_first: bool
) -> PoisonedImageFolder:
    """Every test image whose true label is not the target, with the trigger and the target as label."""
    kept = [(path, label) for path, label in samples if label != target_idx]
    poisoning = Poisoning(
        attack=attack,
        target_idx=target_idx,
        poison_first=poison_first,
        fixed_mask=np.ones(len(kept), dtype=bool),
    )
    return PoisonedImageFolder(kept, image_size, poisoning=poisoning)
