"""The built-in demo dataset: ten classes of procedurally drawn shapes and textures, made from a seed.

Each image draws one shape in a random colour, size, position and rotation on a random two-colour
gradient background with noise, rendered at 4× and downsampled (anti-aliased). No download, identical on
every machine for the same seed. The classes avoid small checkerboards, the demo's BadNets trigger.

    python -m demo.dataset --out demo_data      # demo_data/{train,test}/<class>/NNNN.png
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from utils.atomic_io import atomic_write_png

CLASSES = (
    "circle",
    "cross",
    "diamond",
    "dots",
    "horizontal_stripes",
    "ring",
    "square",
    "star",
    "triangle",
    "vertical_stripes",
)
SUPERSAMPLE = 4  # drawn at 4× the output size, then downsampled: smooth edges
# Each image's random stream is keyed by (seed, stream, label, index). The demo's ImageFolder splits and the
# clean shapes the demo diffusion model learns from (demo/train_diffusion.py: "diffusion" for training,
# "diffusion_check" for its held-out loss) use different streams, so they never share an image, for any seed.
STREAMS = {"train": 0, "test": 1, "diffusion": 2, "diffusion_check": 3}


def _colour(rng: np.random.Generator, avoid: np.ndarray | None = None) -> tuple[int, int, int]:
    """A random colour; with ``avoid``, one at least 120 away from it (so the shape stays visible)."""
    while True:
        colour = rng.integers(0, 256, 3)
        if avoid is None or np.abs(colour - avoid).sum() > 120:
            return tuple(int(c) for c in colour)


def _polygon(cx, cy, radius, sides, rotation, inner=None):
    points = []
    count = sides * (2 if inner else 1)
    for k in range(count):
        r = inner if inner and k % 2 else radius
        angle = rotation + 2 * math.pi * k / count
        points.append((cx + r * math.cos(angle), cy + r * math.sin(angle)))
    return points


def draw_sample(label: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """One H×W×3 uint8 image of class ``label``."""
    big = size * SUPERSAMPLE
    top, bottom = np.array(_colour(rng)), np.array(_colour(rng))
    ramp = np.linspace(0, 1, big)[:, None, None]
    background = (1 - ramp) * top + ramp * bottom
    background = background + rng.normal(0, 12, (big, big, 3))
    canvas = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    ink = _colour(rng, avoid=(top + bottom) / 2)
    radius = rng.uniform(0.22, 0.36) * big
    cx, cy = rng.uniform(radius, big - radius, 2)
    rotation = rng.uniform(0, 2 * math.pi)
    width = max(2, int(radius * 0.28))
    name = CLASSES[label]
    box = (cx - radius, cy - radius, cx + radius, cy + radius)
    if name == "circle":
        draw.ellipse(box, fill=ink)
    elif name == "ring":
        draw.ellipse(box, outline=ink, width=width)
    elif name == "square":
        draw.polygon(_polygon(cx, cy, radius * 1.2, 4, rotation), fill=ink)
    elif name == "diamond":
        draw.polygon(
            [(cx, cy - radius * 1.2), (cx + radius * 0.7, cy), (cx, cy + radius * 1.2), (cx - radius * 0.7, cy)],
            fill=ink,
        )
    elif name == "triangle":
        draw.polygon(_polygon(cx, cy, radius * 1.2, 3, rotation), fill=ink)
    elif name == "star":
        draw.polygon(_polygon(cx, cy, radius * 1.2, 5, rotation, inner=radius * 0.5), fill=ink)
    elif name == "cross":
        for angle in (rotation, rotation + math.pi / 2):
            dx, dy = radius * math.cos(angle), radius * math.sin(angle)
            draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=ink, width=width)
    elif name == "dots":
        for _ in range(int(rng.integers(5, 9))):
            x, y = rng.uniform(0.1 * big, 0.9 * big, 2)
            r = big * 0.06
            draw.ellipse((x - r, y - r, x + r, y + r), fill=ink)
    else:  # stripes
        period = int(big * rng.uniform(0.16, 0.24))
        offset = int(rng.integers(0, period))
        for start in range(-period + offset, big, period):
            if name == "horizontal_stripes":
                draw.rectangle((0, start, big, start + period // 2), fill=ink)
            else:
                draw.rectangle((start, 0, start + period // 2, big), fill=ink)
    return np.array(canvas.resize((size, size), Image.Resampling.LANCZOS))


def sample_key(seed: int, stream: str, label: int, index: int) -> tuple[int, int, int, int]:
    """The seed of one image's random stream."""
    return seed, STREAMS[stream], label, index


def draw_keyed(seed: int, stream: str, label: int, index: int, size: int) -> np.ndarray:
    """Image ``index`` of class ``label`` in ``stream``: a pure function of its key and size."""
    return draw_sample(label, size, np.random.default_rng(sample_key(seed, stream, label, index)))


def generate_demo_dataset(
    root: str | Path, seed: int = 0, train_per_class: int = 200, test_per_class: int = 50, size: int = 32
) -> Path:
    """Write ``root/train`` and ``root/test`` (skipping images already there); returns ``root``."""
    root = Path(root)
    for split, count in (("train", train_per_class), ("test", test_per_class)):
        for label, name in enumerate(CLASSES):
            for index in range(count):
                path = root / split / name / f"{index:04d}.png"
                if not path.is_file():
                    atomic_write_png(path, draw_keyed(seed, split, label, index, size))
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description="Generate the demo ImageFolder dataset")
    parser.add_argument("--out", default="demo_data")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-per-class", type=int, default=200)
    parser.add_argument("--test-per-class", type=int, default=50)
    parser.add_argument("--size", type=int, default=32)
    args = parser.parse_args()
    root = generate_demo_dataset(args.out, args.seed, args.train_per_class, args.test_per_class, args.size)
    print(f"demo dataset: {root}/train and {root}/test, {len(CLASSES)} classes")


if __name__ == "__main__":
    main()
