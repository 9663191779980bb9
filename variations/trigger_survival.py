"""The trigger-survival screen: how much of a trigger a variation model passes through, without a classifier.

For N clean images and the same images with the trigger, the model makes one variation of each with the same
seeds. The trigger's change is ``Δx = x_triggered − x_clean``; what passes through is ``Δo = o_triggered −
o_clean``. **Survival** is the share of ``Δx`` found in ``Δo``, the projection ``Σ Δo·Δx / Σ Δx·Δx`` pooled over
all pixels of all images: 1 when the model copies the trigger (an identity), 0 when the output ignores it (a
model that always returns the same image), in between for a model that keeps part of it; it can exceed 1
(amplified) or be negative. **Fidelity** is the mean absolute change ``|o_clean − x_clean|`` on the clean
images in 0–255 grey levels: what the model costs the content. Outputs are compared at the source size (what
the student is trained at), resized back with the same bicubic filter as the data loader where the model draws
at another size.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from utils.image_tensors import resize_uint8, to_uint8_array
from variations.backends import SourceBatch, VariationBackend
from variations.generator import colour_corrected, run_model
from variations.output_plan import variation_seed


@dataclass(frozen=True)
class ScreenResult:
    survival: float  # share of the trigger's pixel change that passes through (1 all, 0 none)
    fidelity: float  # mean |variation − source| on the clean images, grey levels (0–255)
    trigger_change: float  # mean |triggered − clean|, grey levels: how large the trigger is
    images: int


def survival(clean: np.ndarray, triggered: np.ndarray, out_clean: np.ndarray, out_triggered: np.ndarray) -> float:
    """Pooled projection of the output difference onto the trigger's own change (arrays of equal shape)."""
    change = triggered.astype(np.float64) - clean.astype(np.float64)
    passed = out_triggered.astype(np.float64) - out_clean.astype(np.float64)
    energy = float((change * change).sum())
    if energy == 0:
        raise ValueError("the trigger changes no pixel of these images")
    return float((passed * change).sum() / energy)


def fidelity(clean: np.ndarray, out_clean: np.ndarray) -> float:
    """Mean absolute change of the clean images, grey levels."""
    return float(np.abs(out_clean.astype(np.float64) - clean.astype(np.float64)).mean())


def to_source_size(pixels: np.ndarray, side: tuple[int, int]) -> np.ndarray:
    """N×H×W×3 uint8 outputs resized (bicubic, antialiased, as the data loader does) to ``side``."""
    if pixels.shape[1:3] == side:
        return pixels
    return resize_uint8(torch.from_numpy(pixels), side)


def variations_of(
    backend: VariationBackend, images: list[np.ndarray], classes: list[str], seed: int, color_transfer: str
) -> np.ndarray:
    """One variation of each image (N×H×W×3 uint8 at the source size), seeded like the generator's image i."""
    seeds = [[variation_seed(seed, i, 0)] for i in range(len(images))]
    variations = colour_corrected(run_model(backend, SourceBatch(images, seeds, classes)), images, color_transfer)
    return to_source_size(to_uint8_array(variations)[:, 0], images[0].shape[:2])


def screen(
    backend: VariationBackend,
    attack,
    images: list[np.ndarray],
    classes: list[str],
    seed: int,
    color_transfer: str = "none",
    out_clean: np.ndarray | None = None,
) -> ScreenResult:
    """Survival and fidelity of ``attack`` through ``backend`` on ``images`` (uint8, one size); ``out_clean``: the
    clean images' variations if already made (they are the same for every attack)."""
    triggered = [attack(image) for image in images]
    if out_clean is None:
        out_clean = variations_of(backend, images, classes, seed, color_transfer)
    out_triggered = variations_of(backend, triggered, classes, seed, color_transfer)
    clean, triggered = np.stack(images), np.stack(triggered)
    return ScreenResult(
        survival=survival(clean, triggered, out_clean, out_triggered),
        fidelity=fidelity(clean, out_clean),
        trigger_change=fidelity(clean, triggered),
        images=len(images),
    )
