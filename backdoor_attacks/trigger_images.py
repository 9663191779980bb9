"""Trigger images read from files (a logo, a sticker, a texture), for the attacks that accept one.

A config names the file in its schema, but whether it is there and decodes is a check against the disk: it runs
after schema validation (``config.data_checks``) and again when the attack is built, so a config validates
without its files. The schema keeps what the string alone shows.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.functional as TF
from PIL import Image, UnidentifiedImageError


def check_trigger_path(path: str, allowed: str) -> None:
    """Schema half: raise ``ValueError`` naming ``allowed`` when ``path`` cannot name a file at all (blank)."""
    if not path.strip():
        raise ValueError(f"must be {allowed}; '{path}' is not a file")


def check_trigger_file(key: str, path: str, allowed: str) -> None:
    """Disk half: raise ``ValueError`` starting with ``key`` unless ``path`` is a readable image file."""
    try:
        if not Path(path).is_file():
            raise ValueError(f"must be {allowed}; '{path}' is not a file")
        read_trigger_image(path, 8)  # a file that is no image fails here, with its path
    except ValueError as err:
        raise ValueError(f"{key}: {err}") from err


def read_trigger_image(path: str, size: int) -> np.ndarray:
    """The image file as a ``size × size × 3`` uint8 array (RGB; antialiased resize; transparency dropped)."""
    try:
        with Image.open(path) as handle:
            rgb = np.array(handle.convert("RGB"))
    except Image.DecompressionBombError as err:  # PIL's guard against a small file that decodes to gigabytes
        size = str(err).split(", could be")[0]
        raise ValueError(f"cannot read trigger image '{path}': too large to decode safely ({size})") from err
    except (OSError, UnidentifiedImageError) as err:
        raise ValueError(f"cannot read trigger image '{path}': {err}") from err
    chw = TF.resize(torch.from_numpy(rgb).permute(2, 0, 1), [size, size], antialias=True)
    return chw.permute(1, 2, 0).contiguous().numpy()
