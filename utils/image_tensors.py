"""Conversions between H×W×3 uint8 images and …×3×H×W float tensors in [0, 1], and the uint8 resize."""

from __future__ import annotations

import numpy as np
import torch


def to_float_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255)


def to_uint8_array(images: torch.Tensor) -> np.ndarray:
    """…×3×H×W floats in [0, 1] → …×H×W×3 uint8 on the CPU (rounded, clipped)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()


def resize_uint8(pixels: torch.Tensor, side: tuple[int, int]) -> np.ndarray:
    """…×H×W×3 uint8 pixels resized to ``side`` (height, width): bicubic, antialiased, on the uint8 tensor (about
    twice as fast as PIL's bicubic at 224 px); the data loader's resize, so every image is resized alike."""
    from torchvision.transforms.v2.functional import InterpolationMode, resize

    channels_first = pixels.movedim(-1, -3)
    resized = resize(channels_first, list(side), interpolation=InterpolationMode.BICUBIC, antialias=True)
    return resized.movedim(-3, -1).contiguous().numpy()
