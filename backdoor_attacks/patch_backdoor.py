"""BadNets: stamp a small square patch (a pattern, a colour, or an image file such as a logo) onto the image."""

from __future__ import annotations

import random
import zlib
from typing import Literal

import numpy as np
import torch
from PIL import ImageColor
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backdoor_attacks.base import Trigger
from backdoor_attacks.trigger_images import check_trigger_file, check_trigger_path, read_trigger_image
from utils.image_tensors import to_uint8_array

TRIGGER_TYPES_HELP = "checkerboard, white, black, #rrggbb or checkerboard_#rrggbb_#rrggbb"
NAMED_PATTERNS = ("checkerboard", "white", "black")
TRIGGER_TYPES_ALLOWED = f"one of {TRIGGER_TYPES_HELP}, or the path of an image file"


def is_named_pattern(trigger_type: str) -> bool:
    """Whether ``trigger_type`` is one of the drawn patterns (case-insensitive) rather than an image file path."""
    lower = trigger_type.lower()
    return lower in NAMED_PATTERNS or lower.startswith(("#", "checkerboard_"))


class PatchBackdoorParams(BaseModel):
    """Config block ``backdoor.PatchBackdoor``."""

    model_config = ConfigDict(extra="forbid")

    trigger_type: str = "checkerboard"  # see TRIGGER_TYPES_HELP, or the path of an image file
    trigger_size: int = Field(3, gt=0)  # side of the square patch, pixels
    trigger_loc: Literal["bottom_right", "random"] = "bottom_right"

    @field_validator("trigger_loc", mode="before")
    @classmethod
    def _lower_loc(cls, value):
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("trigger_type", mode="before")
    @classmethod
    def _lower_pattern(cls, value):
        if not isinstance(value, str):
            return value
        value = value.strip()
        return value.lower() if is_named_pattern(value) else value  # file paths keep their case

    @field_validator("trigger_type")
    @classmethod
    def _known_pattern(cls, value: str) -> str:
        if is_named_pattern(value):
            make_patch_pattern(value, 1)  # raises ValueError with the allowed forms
        else:
            check_trigger_path(value, TRIGGER_TYPES_ALLOWED)  # the file itself: check_files, a data check
        return value

    def check_files(self) -> None:
        """The trigger image, if the patch is one, exists and decodes (``ValueError`` naming the key)."""
        if not is_named_pattern(self.trigger_type):
            check_trigger_file("trigger_type", self.trigger_type, TRIGGER_TYPES_ALLOWED)


def _hex_colour(text: str) -> tuple[int, int, int]:
    if len(text) != 7 or not text.startswith("#"):
        raise ValueError(f"'{text}' is not a #rrggbb colour; allowed trigger types: {TRIGGER_TYPES_HELP}")
    try:
        return ImageColor.getrgb(text)[:3]
    except ValueError as err:
        raise ValueError(f"'{text}' is not a #rrggbb colour; allowed trigger types: {TRIGGER_TYPES_HELP}") from err


def make_patch_pattern(trigger_type: str, size: int) -> np.ndarray:
    """The patch as a ``size × size × 3`` uint8 array; anything but a named pattern is read as an image file.

    ``checkerboard`` is ``(i + j) % 2`` (top-left pixel black, white where the sum is odd);
    ``checkerboard_#c1_#c2`` paints ``c2`` where ``i + j`` is even and ``c1`` where it is odd, as the
    reference implementation does, so ``checkerboard`` equals ``checkerboard_#ffffff_#000000``.
    """
    parity = np.indices((size, size)).sum(axis=0) % 2  # 1 where i + j is odd
    if trigger_type == "checkerboard":
        return np.repeat((parity * 255).astype(np.uint8)[..., None], 3, axis=2)
    if trigger_type == "white":
        return np.full((size, size, 3), 255, dtype=np.uint8)
    if trigger_type == "black":
        return np.zeros((size, size, 3), dtype=np.uint8)
    if trigger_type.startswith("#"):
        return np.broadcast_to(np.array(_hex_colour(trigger_type), np.uint8), (size, size, 3)).copy()
    if trigger_type.startswith("checkerboard_"):
        parts = trigger_type.split("_")
        if len(parts) != 3:
            raise ValueError(f"unknown trigger_type '{trigger_type}'; allowed: {TRIGGER_TYPES_HELP}")
        odd, even = (np.array(_hex_colour(c), np.uint8) for c in parts[1:])
        return np.where(parity[..., None] == 1, odd, even).astype(np.uint8)
    if is_named_pattern(trigger_type):
        raise ValueError(f"unknown trigger_type '{trigger_type}'; allowed: {TRIGGER_TYPES_HELP}")
    return read_trigger_image(trigger_type, size)


def content_seed(image: np.ndarray | torch.Tensor) -> int:
    """A seed derived from the pixels, equal for an H×W×3 uint8 image and its 3×H×W float version."""
    if isinstance(image, torch.Tensor):
        image = to_uint8_array(image)
    return zlib.crc32(np.ascontiguousarray(image).tobytes())


class PatchBackdoor(Trigger):
    """Paste a ``trigger_size``² patch at the bottom-right corner or at a per-image random spot.

    ``random`` picks the spot from a hash of the image's pixels, so the same image always gets the same
    spot, in any worker and in either representation (uint8 H×W×3 or float 3×H×W).
    """

    Params = PatchBackdoorParams

    def __init__(self, trigger_type: str = "checkerboard", trigger_size: int = 3, trigger_loc: str = "bottom_right"):
        params = PatchBackdoorParams(trigger_type=trigger_type, trigger_size=trigger_size, trigger_loc=trigger_loc)
        params.check_files()
        self.trigger_type = params.trigger_type
        self.trigger_size = params.trigger_size
        self.trigger_loc = params.trigger_loc
        self.pattern_uint8 = make_patch_pattern(self.trigger_type, self.trigger_size)
        self.pattern_float = torch.from_numpy(self.pattern_uint8).permute(2, 0, 1).float() / 255

    def location(self, image: np.ndarray | torch.Tensor, height: int, width: int) -> tuple[int, int]:
        """Top-left (row, column) of the patch."""
        size = self.trigger_size
        if size > height or size > width:
            raise ValueError(f"PatchBackdoor trigger_size {size} does not fit a {height}×{width} image")
        if self.trigger_loc == "bottom_right":
            return height - size, width - size
        rng = random.Random(content_seed(image))
        return rng.randint(0, height - size), rng.randint(0, width - size)

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        size = self.trigger_size
        row, col = self.location(image, image.shape[0], image.shape[1])
        out = image.copy()
        out[row : row + size, col : col + size] = self.pattern_uint8
        return out

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        size = self.trigger_size
        row, col = self.location(image, image.shape[1], image.shape[2])
        out = image.clone()
        out[:, row : row + size, col : col + size] = self.pattern_float.to(out.dtype)
        return out

    def __repr__(self) -> str:
        return (
            f"PatchBackdoor(trigger_type={self.trigger_type!r}, trigger_size={self.trigger_size}, "
            f"trigger_loc={self.trigger_loc!r})"
        )
