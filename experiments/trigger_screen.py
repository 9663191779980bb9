"""``screen_triggers.py``: every (attack, variation config) pair through the trigger-survival screen.

Attacks come from teacher configs (their ``backdoor`` block, at their ``dataset.image_size``); variation models
from variation configs, each optionally with overrides (``PATH:key=value,key=value``, e.g. a strength). The
images are a class-balanced range of an ImageFolder (``--first``, ``--per-class``), so a screen can use images
a purifier never saw. Prints a table and, with ``--out``, writes ``screen.md`` and ``screen.json``.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from config.loading import load_config
from config.schema import TeacherConfig, VariationConfig
from datasets.build import attack_from
from datasets.image_folder import class_range, read_rgb, scan_image_folder
from utils.atomic_io import atomic_write_text
from utils.distributed import resolve_device
from utils.errors import UserError
from variations.backends import build_backend
from variations.trigger_survival import ScreenResult, screen, variations_of


@dataclass(frozen=True)
class VariationSpec:
    path: Path
    overrides: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> VariationSpec:
        path, _, overrides = text.partition(":")
        return cls(Path(path), tuple(o for o in overrides.split(",") if o))

    @property
    def label(self) -> str:
        return " ".join([self.path.stem, *self.overrides])


def selected_images(root: Path, first: int, per_class: int, size: int) -> tuple[list[np.ndarray], list[str]]:
    """Images ``first`` … ``first + per_class − 1`` of every class, decoded at ``size``, with their class names."""
    index = scan_image_folder(root)
    chosen = class_range(index, first, per_class)
    images = [read_rgb(path, size) for paths in chosen for path in paths]
    return images, [name for name in index.classes for _ in range(per_class)]


def attack_of(path: Path):
    """The trigger, image size and a name (the file's, else the attack's) of a teacher config (no data needed)."""
    config = load_config(TeacherConfig, path, ["dataset.root_train=.", "dataset.root_test=."])
    if config.backdoor is None:
        raise UserError(f"{path}: no backdoor block: nothing to screen")
    config.backdoor.fit_to_size(config.dataset.image_size, "dataset.image_size")
    name = path.stem.removeprefix("teacher_")
    return (
        attack_from(config.backdoor),
        config.dataset.image_size,
        config.backdoor.attack_name if name == "teacher" else name,
    )


def run_screen(args) -> list[dict]:
    attacks = {path: attack_of(path) for path in args.attacks}
    sizes = {size for _, size, _ in attacks.values()}
    if len(sizes) != 1:
        raise UserError(f"the attacks' configs use several image sizes ({sorted(sizes)}); screen them separately")
    images, classes = selected_images(args.data, args.first, args.per_class, sizes.pop())
    device = resolve_device(args.device)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:  # the configs' output_folder is never written here
        for spec in map(VariationSpec.parse, args.variations):
            overrides = [f"dataset.root={args.data}", f"output_folder={scratch}/out", *spec.overrides]
            config = load_config(VariationConfig, spec.path, overrides)
            backend = build_backend(config.diffusion, device, batch_size=args.batch_size)
            colour = config.diffusion.color_transfer
            clean = variations_of(backend, images, classes, config.seed, colour)  # the same for every attack
            for attack, _, name in attacks.values():
                result = screen(backend, attack, images, classes, config.seed, colour, out_clean=clean)
                rows.append({"attack": name, "variations": spec.label, **asdict(result)})
                print(table_row(rows[-1]), flush=True)
    return rows


HEADER = "| attack | variation model | survival | fidelity (grey levels) | trigger change (grey levels) | images |"


def table_row(row: dict) -> str:
    return (
        f"| {row['attack']} | {row['variations']} | {row['survival']:.2f} | {row['fidelity']:.1f} | "
        f"{row['trigger_change']:.1f} | {row['images']} |"
    )


def write_outputs(rows: list[dict], out: Path, command: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Trigger-survival screen",
        "",
        f"`{command}`",
        "",
        "survival: share of the trigger's pixel change found in the variation (1 all, 0 none); fidelity: mean "
        "|variation − source| on clean images. Same seeds for the clean and the triggered image.",
        "",
        HEADER,
        "|---|---|---|---|---|---|",
        *map(table_row, rows),
        "",
    ]
    atomic_write_text(out / "screen.md", "\n".join(lines))
    atomic_write_text(out / "screen.json", json.dumps({"command": command, "rows": rows}, indent=2) + "\n")


__all__ = ["HEADER", "ScreenResult", "VariationSpec", "run_screen", "write_outputs"]
