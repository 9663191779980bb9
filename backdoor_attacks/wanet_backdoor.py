"""WaNet (Nguyen & Tran, 2021): a small, smooth, fixed warp of the whole image.

In noise mode the attack also trains on *cross* samples: other images that keep their label and are warped
with the same field plus fresh random noise, so that the model learns the exact warp rather than warps in
general. Which images are cross samples is decided by the poison plan; this class only warps.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import BaseModel, ConfigDict, Field

from backdoor_attacks.base import Trigger, check_image_size
from utils.image_tensors import to_float_tensor, to_uint8_array


class WaNetBackdoorParams(BaseModel):
    """Config block ``backdoor.WaNetBackdoor``."""

    model_config = ConfigDict(extra="forbid")

    kernel_size: int = Field(4, ge=2)  # side of the random control grid that is upsampled into the field
    strength: float = Field(0.5, ge=0.0)  # warp amplitude (the paper's s), in units of the image side
    grid_rescale: float = Field(1.0, gt=0.0)  # scales the sampling grid (the paper's default 1: no rescaling)
    seed: int = 42  # seeds the control grid: the same seed gives every run the same warp
    image_size: int | None = Field(None, gt=0)  # field side in pixels; defaults to the size the warp is applied at
    noise_mode: bool = True  # also train on cross samples (labels kept, warp + noise), as in the paper
    cross_ratio: float = Field(2.0, ge=0.0)  # cross samples per poisoned sample, in noise mode


def warping_grid(image_size: int, kernel_size: int, strength: float, grid_rescale: float, seed: int) -> torch.Tensor:
    """The fixed ``1 × H × H × 2`` sampling grid of ``F.grid_sample`` (x, y in [−1, 1]), float32."""
    generator = torch.Generator().manual_seed(seed)
    ins = torch.rand(1, 2, kernel_size, kernel_size, generator=generator) * 2 - 1
    ins = ins / ins.abs().mean()
    noise = F.interpolate(ins, size=image_size, mode="bicubic", align_corners=True).permute(0, 2, 3, 1)
    side = torch.linspace(-1, 1, image_size)
    x, y = torch.meshgrid(side, side, indexing="ij")
    identity = torch.stack((y, x), 2)[None]
    return torch.clamp((identity + strength * noise / image_size) * grid_rescale, -1, 1)


class WaNetBackdoor(Trigger):
    """Warp images through the fixed grid (bilinear ``grid_sample``, ``align_corners=True``).

    uint8 H×W×3 arrays are divided by 255, warped and rounded back; float 3×H×W tensors are warped as they are.
    ``cross`` warps with the grid plus uniform noise of ±1/H, clamped to [−1, 1].
    """

    Params = WaNetBackdoorParams

    def __init__(self, params: WaNetBackdoorParams):
        if params.image_size is None:  # the config defaults it to the image size (BackdoorSection.fit_to_size)
            raise ValueError("WaNetBackdoor.image_size is not set: the warp field is made for one image side")
        self.params = params.model_copy()  # the config's block may still be edited; the warp must not change
        self.image_size = size = params.image_size
        self.grid = warping_grid(size, params.kernel_size, params.strength, params.grid_rescale, params.seed)
        self.cross_ratio = params.cross_ratio if params.noise_mode else 0.0  # 0: no cross samples
        self._warp = _Warp(self.grid, size)

    @classmethod
    def from_params(cls, params: BaseModel | dict) -> WaNetBackdoor:
        return cls(WaNetBackdoorParams.model_validate(params))

    def noisy_grid(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """The grid of one cross sample: fresh noise from ``generator`` (torch's global RNG if ``None``)."""
        size = self.image_size
        noise = torch.rand(1, size, size, 2, generator=generator) * 2 - 1
        return torch.clamp(self.grid + noise / size, -1, 1)

    def cross(self, image: np.ndarray | torch.Tensor, generator: torch.Generator | None = None):
        """A cross sample: ``image`` warped with the grid plus noise (its label is kept)."""
        return _Warp(self.noisy_grid(generator), self.image_size)(image)

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        return self._warp.apply_uint8(image)

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        return self._warp.apply_float(image)

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.params.model_dump().items())
        return f"WaNetBackdoor({fields})"


class _Warp(Trigger):
    """One sampling grid applied to either image kind."""

    def __init__(self, grid: torch.Tensor, image_size: int):
        self.grid = grid
        self.image_size = image_size

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        check_image_size("WaNetBackdoor", self.image_size, image.shape[1], image.shape[2])
        grid = self.grid.to(device=image.device, dtype=image.dtype)  # made on the CPU, in float32
        return F.grid_sample(image[None], grid, align_corners=True)[0]

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        return to_uint8_array(self.apply_float(to_float_tensor(image)))
