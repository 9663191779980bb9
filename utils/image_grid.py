"""Grids of sample images (clean vs. triggered vs. variation) for the run directory and W&B."""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid


def image_grid(rows: list[list[np.ndarray]], size: int | None = None, padding: int = 2) -> np.ndarray:
    """Stack rows of H×W×3 uint8 images (resized to ``size`` if given) into one uint8 image."""
    ncols = max(len(row) for row in rows)
    size = size or max(img.shape[0] for row in rows for img in row)
    tiles = []
    for row in rows:
        for col in range(ncols):
            img = row[col] if col < len(row) else np.zeros((size, size, 3), np.uint8)
            if img.shape[:2] != (size, size):
                img = np.array(Image.fromarray(img).resize((size, size), Image.Resampling.NEAREST))
            tiles.append(torch.from_numpy(img).permute(2, 0, 1))
    grid = make_grid(torch.stack(tiles), nrow=ncols, padding=padding, pad_value=255)
    return grid.permute(1, 2, 0).numpy()
