"""Draw the sticker used as an image-file patch trigger (configs/cifar10/triggers/sticker.png).

    python -m demo.sticker configs/cifar10/triggers/sticker.png

A yellow disc with a dark centre on a magenta square: colours that are rare in natural photos, drawn at
32 × 32 pixels; ``PatchBackdoor`` resizes it to ``trigger_size``.
"""

from __future__ import annotations

import argparse

import numpy as np
from PIL import Image, ImageDraw

from utils.atomic_io import atomic_write_png

SIDE = 32  # pixels; larger than any patch it becomes, so the resize only ever shrinks it


def draw_sticker(side: int = SIDE) -> np.ndarray:
    """The sticker as a ``side × side × 3`` uint8 array (deterministic: no randomness)."""
    image = Image.new("RGB", (side, side), (230, 30, 160))
    draw = ImageDraw.Draw(image)
    margin, centre = side // 8, side // 2
    draw.ellipse((margin, margin, side - 1 - margin, side - 1 - margin), fill=(255, 220, 0))
    core = side // 6
    draw.rectangle((centre - core, centre - core, centre + core - 1, centre + core - 1), fill=(20, 20, 60))
    return np.array(image)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write the image-patch trigger sticker as a PNG.")
    parser.add_argument("output", help="PNG file to write")
    args = parser.parse_args(argv)
    atomic_write_png(args.output, draw_sticker())


if __name__ == "__main__":
    main()
