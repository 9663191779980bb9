"""Side-by-side previews of clean and triggered training images, and of their variations."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import yaml

from datasets.build import attack_from
from datasets.image_folder import read_rgb
from datasets.poisoned_image_folder import PoisonedImageFolder
from datasets.sections import BackdoorSection
from datasets.setting_keys import CONFIG_NAME
from utils.atomic_io import atomic_write_png
from utils.image_grid import labelled_grid

MIN_TILE = 96  # pixels: a 3-pixel trigger on a 32-pixel image becomes a 9-pixel patch


def preview_tile_size(image_size: int) -> int:
    """A whole multiple of the image (nearest-neighbour: each pixel a crisp square), at least ``MIN_TILE``."""
    return image_size * math.ceil(MIN_TILE / image_size)


def trigger_preview(
    dataset: PoisonedImageFolder, poison_indices: np.ndarray, classes: list[str], count: int = 8
) -> np.ndarray | None:
    """Rows "clean" and "triggered": the same images without and with the trigger, each column named by the image's
    class, enlarged so that the trigger's pixels show. ``None`` without poisoning.

    The images are the first poisoned ones (target-class images for clean-label attacks), or with random
    poisoning the first that could be drawn.
    """
    poisoning = dataset.poisoning
    if poisoning is None:
        return None
    indices = list(poison_indices[:count])
    if not indices:  # random poisoning: show the first images that could be drawn
        candidates = (i for i, (_, label) in enumerate(dataset.samples) if poisoning.targeting.may_poison(label))
        indices = [i for _, i in zip(range(count), candidates, strict=False)]
    clean = [read_rgb(dataset.samples[i][0], dataset.image_size) for i in indices]
    triggered = [poisoning.attack(image) for image in clean]
    names = [classes[dataset.samples[i][1]] for i in indices]
    return labelled_grid([clean, triggered], ["clean", "triggered"], names, size=preview_tile_size(dataset.image_size))


def _first_variations(folder: Path) -> dict[int, dict]:
    """Manifest records of variation 0, by source index."""
    records = (json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines())
    return {r["index"]: r for r in records if r["variation"] == 0}


def samples_figure(teacher_dir: Path, variations: Path | Mapping[str, Path], path: Path, count: int = 8) -> None:
    """A labelled picture: clean training images, the same with the trigger, and their variations.

    ``variations`` names each variation row and its folder (``{"classical": ..., "diffusion variation": ...}``;
    one folder alone is the row "variation"). Columns: one poisoned image per source class, named underneath.
    """
    folders = {"variation": variations} if isinstance(variations, (str, Path)) else dict(variations)
    config = yaml.safe_load((teacher_dir / CONFIG_NAME).read_text())
    backdoor = BackdoorSection.model_validate(config["backdoor"])
    attack = attack_from(backdoor)
    size = config["dataset"]["image_size"]
    manifests = {name: _first_variations(Path(folder)) for name, folder in folders.items()}
    by_class: dict[str, dict] = {}
    for record in next(iter(manifests.values())).values():  # one poisoned image per source class, for variety
        if record["poisoned"]:
            by_class.setdefault(record["source_class"], record)
    chosen = list(by_class.values())[:count]
    clean = [read_rgb(r["source"], size) for r in chosen]
    rows = {"clean": clean, "triggered": [attack(image) for image in clean]}
    for name, folder in folders.items():
        rows[name] = [read_rgb(Path(folder) / manifests[name][r["index"]]["output"], size) for r in chosen]
    grid = labelled_grid(list(rows.values()), list(rows), [r["source_class"] for r in chosen])
    atomic_write_png(path, grid)
