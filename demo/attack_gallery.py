"""The docs' attack pictures (docs/attacks.md): each shipped CIFAR-10 trigger on the same test images.

    python -m demo.attack_gallery --data ../shared/data/cifar10/test --out docs/attacks

Writes ``clean.png`` (the images as they are) and one ``<attack>.png`` per trigger of
``configs/cifar10/teacher_<attack>.yaml``: the triggered images (top, as in a teacher's ``samples.png``) and
the change, ``|triggered − clean|`` amplified ``AMPLIFY`` times (bottom), both enlarged for the page.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from config.loading import load_config
from config.schema import TeacherConfig
from datasets.build import attack_from
from datasets.image_folder import read_rgb, scan_image_folder
from utils.atomic_io import atomic_write_png
from utils.image_grid import image_grid

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "cifar10"
ATTACKS = ("badnets", "patch_image", "blended", "sig", "wanet", "bpp")  # the triggers; the other configs reuse them
IMAGES = 6  # the first test image of each of the first classes
AMPLIFY = 4  # subtle triggers (WaNet, Bpp) are invisible at 1×
TILE = 64  # pixels per image on the page (nearest-neighbour enlargement of the 32-pixel images)


def gallery_images(test_root: Path, count: int = IMAGES) -> list[np.ndarray]:
    """The first image of each of the first ``count`` classes, at 32 pixels."""
    index = scan_image_folder(test_root)
    firsts = {}
    for path, label in index.samples:
        firsts.setdefault(label, path)
    return [read_rgb(firsts[label], 32) for label in sorted(firsts)[:count]]


def attack_rows(attack_name: str, images: list[np.ndarray], data: Path) -> list[list[np.ndarray]]:
    """Triggered images and their amplified difference from the clean ones."""
    overrides = [f"dataset.root_train={data}", f"dataset.root_test={data}"]
    backdoor = load_config(TeacherConfig, CONFIGS / f"teacher_{attack_name}.yaml", overrides).backdoor
    attack = attack_from(backdoor)
    triggered = [attack(image) for image in images]
    changes = [
        np.clip(np.abs(t.astype(np.int16) - c.astype(np.int16)) * AMPLIFY, 0, 255).astype(np.uint8)
        for t, c in zip(triggered, images, strict=True)
    ]
    return [triggered, changes]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/cifar10/test"), help="an ImageFolder")
    parser.add_argument("--out", type=Path, default=Path("docs/attacks"))
    args = parser.parse_args(argv)
    images = gallery_images(args.data)
    atomic_write_png(args.out / "clean.png", image_grid([images], size=TILE))
    for name in ATTACKS:
        atomic_write_png(args.out / f"{name}.png", image_grid(attack_rows(name, images, args.data), size=TILE))
        print(args.out / f"{name}.png")


if __name__ == "__main__":
    main()
