"""Where the DDPM trainer's clean images come from: the demo's shape generator, or any ImageFolder subset.

Either source gives the batch of a step as a pure function of (seed, step), so a resumed run sees the same
images as one never interrupted, and a few held-out images that training never sees (for the reported loss).
"""

from __future__ import annotations

import numpy as np
import torch

from datasets.image_folder import class_range, paths_by_class, read_rgb, scan_image_folder
from demo.dataset import CLASSES, draw_keyed
from utils.progress import progress

SHAPES = "shapes"  # DiffusionTraining.data value meaning the demo's generator (anything else is a folder)
CHECK_IMAGES = 64  # held-out images for the loss reported at the end (and in the model card)


def to_model_range(pixels: np.ndarray) -> torch.Tensor:
    """N×H×W×3 uint8 → N×3×H×W float in [−1, 1] (the DDPM's data range)."""
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).float().div(127.5).sub(1)


def clean_images(seed: int, stream: str, first: int, count: int, size: int) -> torch.Tensor:
    """Shapes ``first`` … ``first + count − 1`` of ``stream`` (classes in turn), N×3×H×W in [−1, 1]."""
    numbers = range(first, first + count)
    return to_model_range(
        np.stack([draw_keyed(seed, stream, n % len(CLASSES), n // len(CLASSES), size) for n in numbers])
    )


class ShapeImages:
    """Freshly drawn clean shapes: step ``s`` gets shapes ``s·B`` … ``s·B + B − 1`` of the "diffusion" stream."""

    description = "clean shapes drawn by `demo/dataset.py` from its own random stream (`diffusion`)"

    def __init__(self, seed: int, size: int):
        self.seed, self.size = seed, size

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        return clean_images(self.seed, "diffusion", step * batch_size, batch_size, self.size)

    def held_out(self) -> torch.Tensor:
        return clean_images(self.seed, "diffusion_check", 0, CHECK_IMAGES, self.size)


class FolderImages:
    """A class-balanced subset of an ImageFolder, decoded once into memory (CIFAR-10's half: 77 MB).

    The subset is images ``first`` … ``first + per_class − 1`` of each class in ImageFolder order. Steps
    walk through seeded permutations of it, one per epoch, with an optional seeded horizontal flip.
    """

    def __init__(self, root: str, first: int, per_class: int, size: int, seed: int, flip: bool, show_progress=True):
        index = scan_image_folder(root)
        by_class = paths_by_class(index)
        if per_class == 0:  # everything from ``first`` on, as many from each class as the shortest has
            per_class = min(map(len, by_class)) - first
        self.paths = [path for paths in class_range(index, first, per_class) for path in paths]
        stop, held = first + per_class, -(-CHECK_IMAGES // len(by_class))  # held out: the images after the range
        self.held_paths = [path for paths in by_class for path in paths[stop : stop + held]][:CHECK_IMAGES]
        self.seed, self.flip = seed, flip
        self.description = (
            f"images {first}–{stop - 1} of each of the {len(by_class)} classes of `{root}` "
            f"({len(self.paths):,} images, ImageFolder order){', randomly flipped' if flip else ''}"
        )
        paths = progress(self.paths, desc="decoding", unit="img", show=show_progress, delay=2.0)
        self.pixels = np.stack([read_rgb(path, size) for path in paths])

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        positions = np.arange(step * batch_size, (step + 1) * batch_size)
        epochs, offsets = np.divmod(positions, len(self.paths))
        order = {e: np.random.default_rng([self.seed, 1, e]).permutation(len(self.paths)) for e in set(epochs)}
        pixels = self.pixels[[order[e][o] for e, o in zip(epochs, offsets, strict=True)]]
        if self.flip:
            mirrored = np.random.default_rng([self.seed, 2, step]).random(batch_size) < 0.5
            pixels[mirrored] = pixels[mirrored, :, ::-1]
        return to_model_range(np.ascontiguousarray(pixels))

    def held_out(self) -> torch.Tensor | None:
        """The images just after the range in each class, where the folder has them."""
        return (
            to_model_range(np.stack([read_rgb(p, self.pixels.shape[1]) for p in self.held_paths]))
            if self.held_paths
            else None
        )
