"""The picture in a DDPM purifier's model card: held-out clean images and their SDEdit reconstructions.

Drawn through the ``ddpm_sdedit`` backend from the exported folder (the same code path a user's config takes),
at a few strengths, so the card shows what the purifier keeps and what it changes. Unconditional samples from
pure noise are shown only for models trained on all noise levels (a model trained on t < 600 cannot start
from pure noise).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from utils.atomic_io import atomic_write_png
from utils.image_grid import labelled_grid
from utils.image_tensors import to_uint8_array
from variations.backends import SourceBatch, build_backend, diffusion_section

STRENGTHS = (0.1, 0.3, 0.5)  # SDEdit strengths shown (each at most the model's trained range)
DDIM_STEPS = 20  # DDIM schedule of which the last strength × 20 steps run
COLUMNS = 8  # held-out images shown


def reconstructions(model: Path, images: list[np.ndarray], strength: float) -> list[np.ndarray]:
    section = diffusion_section(
        backend="ddpm_sdedit", model=str(model), strength=strength, inference_steps=DDIM_STEPS, color_transfer="none"
    )
    backend = build_backend(section, torch.device("cpu"), batch_size=len(images))
    seeds = [[index] for index in range(len(images))]
    return list(to_uint8_array(backend.generate(SourceBatch(images, seeds, [""] * len(images))))[:, 0])


def purifier_picture(model: Path, held_out: torch.Tensor, max_strength: float, path: Path) -> None:
    """Rows: the held-out images, then their reconstructions at each strength the model was trained for."""
    spread = held_out[:: -(-len(held_out) // COLUMNS)][:COLUMNS]  # spread over the (class-ordered) held-out images
    pixels = spread.add(1).mul(127.5).round().byte().permute(0, 2, 3, 1).numpy()
    images = [np.ascontiguousarray(image) for image in pixels]
    rows, names = [images], ["held-out image"]
    for strength in (s for s in STRENGTHS if s <= max_strength + 1e-9):
        rows.append(reconstructions(model, images, strength))
        names.append(f"SDEdit {strength:g}")
    atomic_write_png(path, labelled_grid(rows, names, [""] * len(images), size=64))
