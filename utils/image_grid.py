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


LABEL_FONT_SIZE = 13  # pixels: readable at a glance next to 80-pixel tiles
INK, PAPER = (20, 20, 20), (255, 255, 255)


def labelled_grid(
    rows: list[list[np.ndarray]], row_labels: list[str], column_labels: list[str], size: int = 80, padding: int = 4
) -> np.ndarray:
    """Rows of H×W×3 uint8 images on white, each row named on its left, each column named underneath.

    Column labels break at spaces and underscores onto as many lines as they need.
    """
    from PIL import ImageDraw, ImageFont

    font = ImageFont.load_default(size=LABEL_FONT_SIZE)
    line_height = LABEL_FONT_SIZE + 3
    left = padding * 2 + max(int(font.getlength(label)) for label in row_labels)
    columns = [label.replace("_", " ").split() or [""] for label in column_labels]
    bottom = padding + line_height * max(len(words) for words in columns)
    ncols = max(len(row) for row in rows)
    step = size + padding
    canvas = Image.new("RGB", (left + ncols * step, padding + len(rows) * step + bottom), PAPER)
    draw = ImageDraw.Draw(canvas)
    for r, (row, label) in enumerate(zip(rows, row_labels, strict=True)):
        top = padding + r * step
        draw.text((padding, top + size // 2), label, fill=INK, font=font, anchor="lm")
        for c, image in enumerate(row):
            canvas.paste(Image.fromarray(image).resize((size, size), Image.Resampling.NEAREST), (left + c * step, top))
    for c, words in enumerate(columns):
        for k, word in enumerate(words):
            xy = (left + c * step + size // 2, padding + len(rows) * step + k * line_height)
            draw.text(xy, word, fill=INK, font=font, anchor="ma")
    return np.array(canvas)
