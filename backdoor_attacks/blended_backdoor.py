"""Blended: mix a full-size trigger image into the input with a small weight."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError
from pydantic import BaseModel, ConfigDict, Field, field_validator

RANDOM_TRIGGER_SEED = 42  # the reference's fixed seed: every run and every paper shares the same noise


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
            if not Path(value).is_file():
                raise ValueError(f"must be 'random' or the path of an image file; '{value}' is not a file")
            make_blend_trigger(value, 8)  # a file that is no image fails here, with its path
        return value


def make_blend_trigger(trigger_type: str, size: int) -> torch.Tensor:
    """The trigger as a ``size × size × 3`` float tensor in [0, 1]."""
    if trigger_type == "random":
        generator = torch.Generator().manual_seed(RANDOM_TRIGGER_SEED)
        return torch.randint(0, 255, (size, size, 3), generator=generator) / 255
    try:
        with Image.open(trigger_type) as handle:
            rgb = np.array(handle.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read trigger image '{trigger_type}': {err}") from err
    chw = TF.resize(torch.from_numpy(rgb).permute(2, 0, 1), [size, size], antialias=True)
    return chw.permute(1, 2, 0).float() / 255


class BlendedBackdoor:
    """``(1 − blend_ratio) · image + blend_ratio · trigger`` on uint8 H×W×3 arrays or float 3×H×W tensors."""

    Params = BlendedBackdoorParams

    def __init__(self, image_size: int, trigger_type: str = "random", blend_ratio: float = 0.1):
        params = BlendedBackdoorParams(image_size=image_size, trigger_type=trigger_type, blend_ratio=blend_ratio)
        self.image_size = image_size
        self.trigger_type = params.trigger_type
        self.blend_ratio = params.blend_ratio
        self.trigger = make_blend_trigger(self.trigger_type, image_size)  # H×W×3 float32 in [0, 1]
        self._trigger_chw = self.trigger.permute(2, 0, 1).contiguous()
        self._trigger_hwc255 = self.trigger.numpy().astype(np.float64) * 255

    def _check_size(self, height: int, width: int) -> None:
        if (height, width) != (self.image_size, self.image_size):
            raise ValueError(
                f"BlendedBackdoor trigger is {self.image_size}×{self.image_size} but the image is {height}×{width}; "
                "set backdoor.BlendedBackdoor.image_size to the size the trigger is applied at"
            )

    def __call__(self, image: np.ndarray | torch.Tensor) -> np.ndarray | torch.Tensor:
        ratio = self.blend_ratio
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                raise TypeError(f"expected an H×W×3 uint8 array, got {image.dtype} {image.shape}")
            self._check_size(image.shape[0], image.shape[1])
            mixed = (1 - ratio) * image.astype(np.float64) + ratio * self._trigger_hwc255
            return np.clip(np.rint(mixed), 0, 255).astype(np.uint8)
        if isinstance(image, torch.Tensor):
            if image.ndim != 3 or image.shape[0] != 3 or not image.is_floating_point():
                raise TypeError(f"expected a 3×H×W float tensor, got {image.dtype} {tuple(image.shape)}")
            self._check_size(image.shape[1], image.shape[2])
            return (1 - ratio) * image + ratio * self._trigger_chw.to(image.dtype)
        raise TypeError(f"BlendedBackdoor takes a numpy array or a torch tensor, not {type(image).__name__}")

    def __repr__(self) -> str:
        return (
            f"BlendedBackdoor(image_size={self.image_size}, trigger_type={self.trigger_type!r}, "
            f"blend_ratio={self.blend_ratio})"
        )
