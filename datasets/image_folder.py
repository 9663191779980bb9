"""Reading ImageFolder trees and decoding their images to RGB."""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset
from torchvision.transforms.v2.functional import InterpolationMode, resize

from utils.errors import UserError

SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N", "I"}


@dataclass(frozen=True)
class ImageFolderIndex:
    """Classes and ``(path, label)`` samples in torchvision's ImageFolder order (sorted classes, sorted files)."""

    root: Path
    classes: list[str]
    samples: list[tuple[str, int]]

    @property
    def labels(self) -> np.ndarray:
        return np.fromiter((label for _, label in self.samples), dtype=np.int64, count=len(self.samples))

    def __len__(self) -> int:
        return len(self.samples)


def list_class_folders(root: str | os.PathLike) -> list[str]:
    """Sorted class folder names under ``root`` (cheap: no file listing)."""
    try:
        classes, _ = find_classes(os.fspath(root))
    except (FileNotFoundError, NotADirectoryError) as err:
        raise UserError(f"{root}: {err}") from err
    return classes


def scan_image_folder(root: str | os.PathLike) -> ImageFolderIndex:
    """Index an ImageFolder tree. Using torchvision's own scanner keeps indices identical to the reference."""
    root = Path(root)
    classes = list_class_folders(root)
    class_to_idx = {name: i for i, name in enumerate(classes)}
    try:
        samples = make_dataset(os.fspath(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as err:
        raise UserError(f"{root}: {err} (image files must end in {', '.join(IMG_EXTENSIONS)})") from err
    return ImageFolderIndex(root=root, classes=classes, samples=samples)


def to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB; 16-bit greyscale is scaled down rather than clipped."""
    if image.mode == "RGB":
        return image
    if image.mode in SIXTEEN_BIT_MODES:
        grey = np.asarray(image, dtype=np.float64) * (255 / 65535)
        return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8), "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")  # avoids PIL's warning about palette transparency
    return image.convert("RGB")


def read_rgb(path: str | os.PathLike, size: int | None = None) -> np.ndarray:
    """Decode ``path`` to an H×W×3 uint8 array, resized to ``size``×``size`` (bicubic, antialiased) if given.

    The file is read in one call and decoded from memory (PIL's lazy file reads are slower), and the
    resize runs on a uint8 tensor (about twice as fast as PIL's bicubic at 224 px). torchvision.io would
    decode faster still, but its decoders are deprecated since torchvision 0.29.
    """
    try:
        with Image.open(io.BytesIO(Path(path).read_bytes())) as handle:
            pixels = torch.from_numpy(np.array(to_rgb(handle), dtype=np.uint8))
    except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as err:
        raise UserError(f"cannot read image {path}: {err}") from err
    if size is not None and tuple(pixels.shape[:2]) != (size, size):
        chw = resize(pixels.permute(2, 0, 1), [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)
        pixels = chw.permute(1, 2, 0).contiguous()
    return pixels.numpy()
