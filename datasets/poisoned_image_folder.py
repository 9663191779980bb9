"""An ImageFolder that applies a poisoning plan; the triggered test set is built from the same pieces."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from backdoor_attacks import Attack
from datasets.image_folder import read_rgb
from datasets.poison_plan import Targeting
from utils.image_tensors import to_float_tensor, to_uint8_array


@dataclass(frozen=True)
class CrossSamples:
    """WaNet's noise-mode cross samples: images that keep their label but carry a randomised warp.

    Exactly one of ``mask`` / ``rate`` decides which ones; a sample that is poisoned is never a cross sample.
    """

    mask: np.ndarray | None = None  # bool per sample index (fixed poisoning)
    rate: float = 0.0  # probability per fetch of a sample that is not poisoned (random poisoning)
    noise_seed: int | None = None  # None: fresh noise at every fetch; else one draw per sample from (seed, index)

    def includes(self, index: int) -> bool:
        if self.mask is not None:
            return bool(self.mask[index])
        return self.rate > 0 and torch.rand(()).item() < self.rate

    def generator(self, index: int) -> torch.Generator | None:
        """The RNG of one sample's noise: seeded from (noise_seed, index), or ``None`` for torch's global RNG
        (seeded per DataLoader worker from the loader's generator, so training runs are reproducible)."""
        if self.noise_seed is None:
            return None
        state = np.random.SeedSequence([self.noise_seed, index]).generate_state(2, dtype=np.uint32)
        return torch.Generator().manual_seed(int(state[0]) << 31 | int(state[1]) >> 1)  # 63 bits, as variation seeds


class Treatment(NamedTuple):
    """What the poison plan does to one fetch of a sample."""

    poisoned: bool
    cross: bool  # a noise-mode cross sample (label kept)
    label: int  # the training label


@dataclass(frozen=True)
class Poisoning:
    """How samples are poisoned. Exactly one of ``fixed_mask`` / ``random_rate`` decides which ones."""

    attack: Attack
    targeting: Targeting  # which classes may be drawn, and the label a poisoned sample gets
    poison_first: bool = True  # trigger on the resized uint8 image (True) or after the transforms (False)
    fixed_mask: np.ndarray | None = None  # bool per sample index: poisoned in every epoch
    random_rate: float = 0.0  # probability per fetch when no fixed mask (random_poisoning)
    cross: CrossSamples | None = None  # noise-mode cross samples (attacks with a cross ratio only)

    def is_poisoned(self, index: int, true_label: int) -> bool:
        if self.fixed_mask is not None:
            return bool(self.fixed_mask[index])
        if not self.targeting.may_poison(true_label):
            return False
        # torch's RNG: seeded per DataLoader worker from the loader's generator, so runs are reproducible
        return self.random_rate > 0 and torch.rand(()).item() < self.random_rate

    def treatment(self, index: int, true_label: int) -> Treatment:
        if self.is_poisoned(index, true_label):
            return Treatment(True, False, self.targeting.poisoned_label(true_label))
        cross = self.cross is not None and self.cross.includes(index)
        return Treatment(False, cross, true_label)

    def trigger(self, treatment: Treatment, index: int) -> Callable | None:
        """What to apply to the sample's image: the trigger, a cross sample's warp, or nothing."""
        if treatment.poisoned:
            return self.attack
        if treatment.cross:
            generator = self.cross.generator(index)
            return lambda image: self.attack.cross(image, generator)
        return None


class Sample(NamedTuple):
    image: np.ndarray | torch.Tensor
    label: int  # label used for training / scoring (the poisoned label when poisoned)
    true_label: int  # the folder's label
    poisoned: bool
    cross: bool = False  # a noise-mode cross sample


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
        treatment = plan.treatment(index, true_label) if plan is not None else Treatment(False, False, true_label)
        trigger = plan.trigger(treatment, index) if plan is not None else None
        late_trigger = None
        if trigger is not None:
            if plan.poison_first:
                image = trigger(image)
            else:
                late_trigger = trigger
        done = (treatment.label, true_label, treatment.poisoned, treatment.cross)
        if self.output == "uint8":
            if late_trigger is not None:
                image = to_uint8_array(late_trigger(to_float_tensor(image)))
            return Sample(image, *done)
        if self.output == "uint8_chw":
            tensor = torch.from_numpy(image).permute(2, 0, 1)
            return Sample(self.transform(tensor) if self.transform is not None else tensor, *done)
        tensor = to_float_tensor(image)
        if self.transform is not None:
            tensor = self.transform(tensor)
        if late_trigger is not None:
            tensor = late_trigger(tensor)
        return Sample(tensor, *done)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        sample = self.load(index)
        return sample.image, sample.label, sample.true_label


def triggered_test_set(
    samples: list[tuple[str, int]], image_size: int, attack: Attack, targeting: Targeting, poison_first: bool
) -> PoisonedImageFolder:
    """Every test image whose class the attack sends elsewhere, with the trigger and that class as label.

    All-to-one: the images not of the target class, labelled the target; all-to-all: every image, labelled
    ``(y + 1) mod n``. Clean-label attacks relabel nothing in training, but their triggered images are scored
    like any all-to-one attack's.
    """
    scored = replace(targeting, clean_label=False)
    targets = scored.targets()
    kept = [(path, label) for path, label in samples if targets[label] is not None]
    poisoning = Poisoning(
        attack=attack,
        targeting=scored,
        poison_first=poison_first,
        fixed_mask=np.ones(len(kept), dtype=bool),
    )
    return PoisonedImageFolder(kept, image_size, poisoning=poisoning)
