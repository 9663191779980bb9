"""BppAttack (Wang et al., 2022): colour-depth squeezing, optionally with Floyd–Steinberg dithering.

The dithering is the authors' (their ``floydDitherspeed``, also in BackdoorBench): the quantisation error is taken
against the unrounded level ``k · 255 / (levels − 1)`` and the levels are rounded to integers only at the end.
Textbook Floyd–Steinberg on integer levels, which this module did before, put 12.5 % of the values of 20 CIFAR-10
test images one level away from the authors' at 8 levels (issue 24), so it was not the published trigger. The
paper's adversarially trained negative samples are not part of this trigger.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field

from backdoor_attacks.base import Trigger

# Floyd–Steinberg: share of the quantisation error passed to (row offset, column offset), raster order
RIGHT, DOWN_LEFT, DOWN, DOWN_RIGHT = 7 / 16, 3 / 16, 5 / 16, 1 / 16


class BppBackdoorParams(BaseModel):
    """Config block ``backdoor.BppBackdoor``."""

    model_config = ConfigDict(extra="forbid")

    levels: int = Field(8, ge=2, le=256)  # values per channel after squeezing (the paper's 3 bits)
    dither: bool = True  # Floyd–Steinberg error diffusion, so the squeezed image keeps its local brightness


def nearest_level(values: np.ndarray, levels: int) -> np.ndarray:
    """``round(x · (levels − 1) / 255) · 255 / (levels − 1)`` on 0–255 values, not rounded to an integer (half
    to even, as ``torch.round``); values outside [0, 255] go to the nearest end level. The authors do not clip:
    with the error diffused, a value stays within half a step of [0, 255], which rounds to an end level anyway
    except on an exact tie."""
    return np.clip(np.rint(values * (levels - 1) / 255), 0, levels - 1) * 255 / (levels - 1)


def squeeze(values: np.ndarray, levels: int) -> np.ndarray:
    """``round(round(x · (levels − 1) / 255) · 255 / (levels − 1))``: the nearest level as an integer value."""
    return np.rint(nearest_level(values, levels))


def floyd_steinberg(values: np.ndarray, levels: int) -> np.ndarray:
    """Squeeze an H×W×C float64 image (0–255) with Floyd–Steinberg error diffusion, per channel, as the BppAttack
    authors do: each error is taken against the unrounded level, and the levels are rounded only at the end.

    The result equals the raster-order loop bit for bit, but pixels run in anti-diagonal waves:
    pixel (i, j) needs only the errors of (i, j−1), (i−1, j−1), (i−1, j) and (i−1, j+1), all on earlier waves
    ``t = 2i + j``, so a whole wave is squeezed at once. Within a wave the error passed down-left is added
    before the one passed right, the order in which the raster loop adds them.
    """
    height, width, channels = values.shape
    stride = width + 2  # a spare column each side and a spare row below catch the errors passed off the image
    work = np.zeros((height + 1, stride, channels))
    work[:height, 1 : width + 1] = values
    squeezed = np.zeros_like(work)
    flat_work, flat_out = work.reshape(-1, channels), squeezed.reshape(-1, channels)
    for wave in range(2 * (height - 1) + width):
        first = max(0, -((width - 1 - wave) // 2))  # the first row whose pixel (row, wave − 2·row) exists
        last = min(height - 1, wave // 2)
        # pixel (r, wave − 2r) sits at r · stride + wave − 2r + 1 = r · width + wave + 1 in the flat array:
        # one wave is a strided slice, and so is each neighbour it passes error to
        start, stop = first * width + wave + 1, last * width + wave + 2
        wave_slice = slice(start, stop, width)
        old = flat_work[wave_slice]
        new = nearest_level(old, levels)
        flat_out[wave_slice] = new
        error = old - new
        flat_work[start + stride - 1 : stop + stride - 1 : width] += error * DOWN_LEFT
        flat_work[start + 1 : stop + 1 : width] += error * RIGHT
        flat_work[start + stride : stop + stride : width] += error * DOWN
        flat_work[start + stride + 1 : stop + stride + 1 : width] += error * DOWN_RIGHT
    return np.rint(squeezed[:height, 1 : width + 1])


class BppBackdoor(Trigger):
    """Squeeze every channel to ``levels`` values (with dithering if ``dither``).

    uint8 H×W×3 arrays give uint8; float 3×H×W tensors in [0, 1] are squeezed in 0–255 units and return the
    same levels divided by 255.
    """

    Params = BppBackdoorParams

    def __init__(self, levels: int = 8, dither: bool = True):
        params = BppBackdoorParams(levels=levels, dither=dither)
        self.levels = params.levels
        self.dither = params.dither

    def squeeze_255(self, values: np.ndarray) -> np.ndarray:
        """H×W×C float64 values in 0–255 → the squeezed levels (float64)."""
        return floyd_steinberg(values, self.levels) if self.dither else squeeze(values, self.levels)

    def apply_uint8(self, image: np.ndarray) -> np.ndarray:
        return self.squeeze_255(image.astype(np.float64)).astype(np.uint8)

    def apply_float(self, image: torch.Tensor) -> torch.Tensor:
        values = image.detach().cpu().permute(1, 2, 0).double().numpy() * 255
        squeezed = torch.from_numpy(self.squeeze_255(values) / 255).permute(2, 0, 1)
        return squeezed.to(device=image.device, dtype=image.dtype)

    def __repr__(self) -> str:
        return f"BppBackdoor(levels={self.levels}, dither={self.dither})"
