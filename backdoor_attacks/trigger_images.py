"""Trigger images read from files (a logo, a sticker, a texture), for the attacks that accept one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError


def check_trigger_file(path: str, allowed: str) -> None:
    """Raise ``ValueError`` naming ``allowed`` unless ``path`` is a readable image file."""
    if not Path(path).is_file():
        raise ValueError(f"must be {allowed}; '{path}' is not a file")
    read_trigger_image(path, 8)  # a file that is no image fails here, with its path


def read_trigger_image(path: str, size: int) -> np.ndarray:
    """The image file as a ``size × size × 3`` uint8 array (RGB; antialiased resize; transparency dropped)."""
    try:
        with Image.open(path) as handle:
            rgb = np.array(handle.convert("RGB"))
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read trigger image '{path}': {err}") from err
    chw = TF.resize(torch.from_numpy(rgb).permute(2, 0, 1), [size, size], antialias=True)
    return chw.permute(1, 2, 0).contiguous().numpy()
