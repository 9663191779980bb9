"""Side-by-side previews of clean and triggered training images."""

from __future__ import annotations

import math

import numpy as np

from datasets.image_folder import read_rgb
from datasets.poisoned_image_folder import PoisonedImageFolder
from utils.image_grid import labelled_grid

MIN_TILE = 96  # pixels: a 3-pixel trigger on a 32-pixel image becomes a 9-pixel patch


def preview_tile_size(image_size: int) -> int:
    """A whole multiple of the image (nearest-neighbour: each pixel a crisp square), at least ``MIN_TILE``."""
    return image_size * math.ceil(MIN_TILE / image_size)


def trigger_preview(
    dataset: PoisonedImageFolder, poison_indices: np.ndarray, classes: list[str], count: int = 8
) -> np.ndarray | None:
    """Rows "clean" and "triggered": the same images without and with the trigger, each column named by the image's
    class, enlarged so that the trigger's pixels show. ``None`` without poisoning.

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
    names = [classes[dataset.samples[i][1]] for i in indices]
    return labelled_grid([clean, triggered], ["clean", "triggered"], names, size=preview_tile_size(dataset.image_size))
