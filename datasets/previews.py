"""Side-by-side previews of clean and triggered training images."""

from __future__ import annotations

import numpy as np

from datasets.image_folder import read_rgb
from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.image_grid import image_grid


def trigger_preview(dataset: PoisonedImageFolder, poison_indices: np.ndarray, count: int = 8) -> np.ndarray | None:
    """Top row: clean images; bottom row: the same images with the trigger. ``None`` without poisoning.

    The images are the first poisoned ones (target-class images for clean-label attacks), or with random
    poisoning the first that could be drawn.
    """
    poisoning = dataset.poisoning
    if poisoning is None:
        return None
    indices = list(poison_indices[:count])
    if not indices:  # random poisoning: show the first images that could be drawn
        candidates = (i for i, (_, label) in enumerate(dataset.samples) if poisoning.targeting.may_poison(label))
        indices = [i for _, i in zip(range(count), candidates, strict=False)]
    clean = [read_rgb(dataset.samples[i][0], dataset.image_size) for i in indices]
    triggered = [poisoning.attack(image) for image in clean]
    return image_grid([clean, triggered])
