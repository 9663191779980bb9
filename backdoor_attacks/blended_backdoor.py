"""Blended: mix a full-size trigger image into the input with a small weight."""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backdoor_attacks.base import Trigger, check_image_size
from backdoor_attacks.trigger_images import check_trigger_file, check_trigger_path, read_trigger_image

RANDOM_TRIGGER_SEED = 42  # the reference's fixed seed: every run and every paper shares the same noise
TRIGGER_TYPES_ALLOWED = "'random' or the path of an image file"


class BlendedBackdoorParams(BaseModel):
    """Config block ``backdoor.BlendedBackdoor``."""

    model_config = ConfigDict(extra="forbid")

    image_size: int | None = Field(None, gt=0)  # trigger side in pixels; defaults to dataset.image_size
    trigger_type: str = "random"  # 'random' noise, or the path of an image file
    blend_ratio: float = Field(0.1, ge=0.0, le=1.0)  # weight of the trigger in the mix

    @field_validator("trigger_type")
    @classmethod
    def _random_or_file(cls, value: str) -> str:
        if value != "random":
            check_trigger_path(value, TRIGGER_TYPES_ALLOWED)  # the file itself: check_files, a data check
        return value

    def check_files(self) -> None:
        """The trigger image, unless the trigger is noise, exists and decodes (``ValueError`` naming the key)."""
        if self.trigger_type != "random":
            check_trigger_file("trigger_type", self.trigger_type, TRIGGER_TYPES_ALLOWED)


def make_blend_trigger(trigger_type: str, size: int) -> torch.Tensor:
    """The trigger as a ``size × size × 3`` float tensor in [0, 1]."""
    if trigger_type == "random":
        generator = torch.Generator().manual_seed(RANDOM_TRIGGER_SEED)
        return torch.randint(0, 255, (size, size, 3), generator=generator) / 255
    return torch.from_numpy(read_trigger_image(trigger_type, size)).float() / 255


class BlendedBackdoor(Trigger):
    """``(1 − blend_ratio) · image + blend_ratio · trigger`` on uint8 H×W×3 arrays or float 3×H×W tensors."""

    Params = BlendedBackdoorParams

    def __init__(self, image_size: int, trigger_type: str = "random", blend_ratio: float = 0.1):
        params = BlendedBackdoorParams(image_size=image_size, trigger_type=trigger_type, blend_ratio=blend_ratio)
        params.check_files()
        self.image_size = image_size
        self.trigger_type = params.trigger_type
        self.blend_ratio = params.blend_ratio
        self.trigger = make_blend_trigger(self.trigger_type, image_size)  # H×W×3 float32 in [0, 1]
        self._trigger_chw = self.trigger.permute(2, 0, 1).contiguous()
        self._trigger_hwc255 = self.trigger.numpy().astype(np.float64) * 255

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        check_image_size("BlendedBackdoor", self.image_size, image.shape[0], image.shape[1])
        mixed = (1 - self.blend_ratio) * image.astype(np.float64) + self.blend_ratio * self._trigger_hwc255
        return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        check_image_size("BlendedBackdoor", self.image_size, image.shape[1], image.shape[2])
        trigger = self._trigger_chw.to(device=image.device, dtype=image.dtype)
        return (1 - self.blend_ratio) * image + self.blend_ratio * trigger

    def __repr__(self) -> str:
        return (
            f"BlendedBackdoor(image_size={self.image_size}, trigger_type={self.trigger_type!r}, "
            f"blend_ratio={self.blend_ratio})"
        )
