"""Conversions between H×W×3 uint8 images and …×3×H×W float tensors in [0, 1]."""

from __future__ import annotations

import numpy as np
import torch


def to_float_tensor(image: np.ndarray) -> torch.Tensor:
    """H×W×3 uint8 → 3×H×W float32 in [0, 1]."""
    return torch.from_numpy(image).permute(2, 0, 1).float().div_(255)


def to_uint8_array(images: torch.Tensor) -> np.ndarray:
    """…×3×H×W floats in [0, 1] → …×H×W×3 uint8 on the CPU (rounded, clipped)."""
    return images.detach().clamp(0, 1).mul(255).round().to(torch.uint8).movedim(-3, -1).cpu().numpy()
