"""SIG (Barni et al., 2019): a horizontal sine wave added to the whole image."""

from __future__ import annotations

import math

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from backdoor_attacks.base import Trigger


class SIGBackdoorParams(BaseModel):
    """Config block ``backdoor.SIGBackdoor``."""

    model_config = ConfigDict(extra="forbid")

    delta: float = Field(20.0, gt=0.0, le=255.0)  # amplitude, in 0–255 pixel units (the paper's training value)
    frequency: float = Field(6.0, gt=0.0)  # periods across the image width


class SIGBackdoor(Trigger):
    """Add ``delta · sin(2π · j · frequency / m)`` to every pixel of column ``j`` (of ``m``), all rows and channels.

    uint8 H×W×3 arrays: in 0–255 units, rounded and clipped. Float 3×H×W tensors in [0, 1]: ``delta / 255``,
    clamped to [0, 1]. The signal depends only on the column, so any image size works.
    """

    Params = SIGBackdoorParams

    def __init__(self, delta: float = 20.0, frequency: float = 6.0):
        params = SIGBackdoorParams(delta=delta, frequency=frequency)
        self.delta = params.delta
        self.frequency = params.frequency

    def signal(self, width: int) -> np.ndarray:
        """The per-column offset in 0–255 units (float64, length ``width``)."""
        columns = np.arange(width, dtype=np.float64)
        return self.delta * np.sin(2 * math.pi * columns * self.frequency / width)

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        shifted = image.astype(np.float64) + self.signal(image.shape[1])[None, :, None]
        return np.clip(np.rint(shifted), 0, 255).astype(np.uint8)

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        offset = torch.from_numpy(self.signal(image.shape[2]) / 255).to(device=image.device, dtype=image.dtype)
        return (image + offset).clamp(0, 1)

    def __repr__(self) -> str:
        return f"SIGBackdoor(delta={self.delta}, frequency={self.frequency})"
