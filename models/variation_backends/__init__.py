"""Image-variation backends: each turns a batch of uint8 images into ``num_variations`` new images each.

A backend is built once per process and called as ``backend.generate(images, seeds)`` with H×W×3 uint8
arrays and one seed per (image, variation); it returns a B×V×3×H×W float tensor in [0, 1] on its device.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import torch


class VariationBackend(Protocol):
    device: torch.device
    numerics: dict  # settings outside the config that change the output bytes (dtype, model batch size)

    def generate(self, images: list[np.ndarray], seeds: list[list[int]]) -> torch.Tensor: ...


def build_backend(diffusion, device: torch.device, batch_size: int) -> VariationBackend:
    """The backend named by ``diffusion.backend`` (``versatile_diffusion`` or ``classical``)."""
    if diffusion.backend == "versatile_diffusion":
        from models.variation_backends.versatile_diffusion import VersatileDiffusionBackend

        return VersatileDiffusionBackend.from_config(diffusion, device, batch_size)
    if diffusion.backend == "classical":
        from models.variation_backends.classical import ClassicalBackend

        return ClassicalBackend.from_config(diffusion, device, batch_size)
    raise ValueError(f"unknown diffusion.backend '{diffusion.backend}'; valid: versatile_diffusion, classical")
