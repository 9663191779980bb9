"""What detection reads: the teacher run, its (poisoned) training set as the teacher saw it, and the variations
folder's manifest, checked against each other.

Image ``i`` is the ``i``-th sample of the training folder in ImageFolder order (sorted classes, sorted files), the
index of the teacher's ``poison_indices.json`` and of the manifest's ``index``. Its source is rebuilt with the
teacher's seed and backdoor block exactly as the variation generator rebuilt it (a fixed poisoned subset; one
seeded draw where the teacher poisoned at random per fetch), and its label is the one the poisoned training set
gives it. The manifest lists its ``num_variations`` variation files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from datasets.build import attack_from, build_poisoning
from datasets.image_folder import ImageFolderIndex, scan_image_folder
from datasets.poisoned_image_folder import PoisonedImageFolder
from datasets.sections import BackdoorSection
from datasets.setting_keys import CONFIG_NAME
from detection.compatibility import check_same_dataset, check_same_setting, check_teacher_dataset
from models.checkpoint import CHECKPOINT_NAME
from training.run_directory import POISON_INDICES_NAME, SUMMARY_NAME
from utils.errors import UserError, first_line
from variations.manifest import MANIFEST_NAME
from variations.output_folder import GENERATION_NAME
from variations.output_plan import OutputLayout, plan_outputs


@dataclass
class DetectionInputs:
    teacher_dir: Path
    variations_dir: Path
    index: ImageFolderIndex  # the training set
    sources: PoisonedImageFolder  # image i as the teacher saw it (trigger applied where poisoned), no augmentation
    labels: np.ndarray  # the label the poisoned training set gives image i
    variation_paths: list[list[Path]]  # image i's variation files, in variation order
    truth: np.ndarray | None  # poisoned or not per image (the teacher run's poison_indices.json), if known
    truth_note: str  # where the truth comes from, or why there is none


def _read(path: Path, what: str, loader):
    try:
        return loader(path.read_text())
    except FileNotFoundError as err:
        raise UserError(f"{path.parent}: no {path.name}; {what}") from err
    except (OSError, ValueError, yaml.YAMLError) as err:
        raise UserError(f"cannot read {path} ({first_line(err)})") from err


def read_teacher_run(teacher_dir: Path) -> tuple[dict, dict | None]:
    """The teacher's resolved config and its summary (``None`` while it has none)."""
    hint = "give the run directory of a finished train_teacher.py run"
    config = _read(teacher_dir / CONFIG_NAME, hint, yaml.safe_load)
    if not isinstance(config, dict) or "training" not in config or "distillation" in config:
        raise UserError(f"{teacher_dir}: not a teacher run directory (its {CONFIG_NAME} has no teacher config)")
    if not (teacher_dir / CHECKPOINT_NAME).is_file():
        raise UserError(f"{teacher_dir}: no {CHECKPOINT_NAME}; {hint}")
    summary_path = teacher_dir / SUMMARY_NAME
    summary = _read(summary_path, hint, json.loads) if summary_path.is_file() else None
    return config, summary


def _variation_files(variations_dir: Path, plan, num_variations: int, classes: list[str]) -> list[list[Path]]:
    """Per image, its variation files from the manifest, checked against the plan rebuilt here."""
    hint = "give a folder written by generate_variations.py (an unfinished one: run it again to finish)"
    lines = _read(variations_dir / MANIFEST_NAME, hint, str.splitlines)
    try:
        records = [json.loads(line) for line in lines if line.strip()]
    except json.JSONDecodeError as err:
        raise UserError(f"cannot read {variations_dir / MANIFEST_NAME} ({first_line(err)})") from err
    layout = OutputLayout(variations_dir, classes, num_variations)
    found: list[list[Path | None]] = [[None] * num_variations for _ in plan]
    for record in records:
        i, k = int(record["index"]), int(record["variation"])
        if not (0 <= i < len(plan) and 0 <= k < num_variations):
            raise UserError(f"{variations_dir / MANIFEST_NAME}: index {i}, variation {k} is outside the training set")
        expected = layout.outputs(plan[i])[k]
        if record["output"] != expected:
            raise UserError(
                f"{variations_dir / MANIFEST_NAME}: image {i} ({record['source']}) has {record['output']}, but the "
                f"teacher's poisoning files it as {expected}; the folder was made with another poison plan"
            )
        found[i][k] = variations_dir / record["output"]
    missing = sum(path is None for row in found for path in row)
    if missing:
        raise UserError(
            f"{variations_dir}: the manifest lacks {missing} of {len(plan) * num_variations} variations; "
            "finish the folder with generate_variations.py first"
        )
    return found


def _truth(teacher_dir: Path, backdoor: dict | None, size: int) -> tuple[np.ndarray | None, str]:
    path = teacher_dir / POISON_INDICES_NAME
    if backdoor is None:
        return None, "the teacher has no backdoor block: nothing to compare with"
    if backdoor.get("random_poisoning"):
        return None, "the teacher poisoned at random per fetch (random_poisoning): no fixed poisoned subset"
    if not path.is_file():
        return None, f"the teacher run has no {POISON_INDICES_NAME}"
    indices = np.asarray(_read(path, "", json.loads), dtype=np.int64)
    if len(indices) and (indices.min() < 0 or indices.max() >= size):
        raise UserError(f"{path}: indices outside the {size} training images")
    truth = np.zeros(size, dtype=bool)
    truth[indices] = True
    return truth, f"{POISON_INDICES_NAME} of the teacher run ({len(indices)} poisoned)"


def load_inputs(teacher_dir: Path, variations_dir: Path, train_root: Path | None = None) -> DetectionInputs:
    """Read and cross-check the teacher run, the training set and the variations; nothing is written."""
    teacher_dir, variations_dir = Path(teacher_dir), Path(variations_dir)
    teacher, summary = read_teacher_run(teacher_dir)
    hint = "give a folder written by generate_variations.py"
    variations = _read(variations_dir / CONFIG_NAME, hint, yaml.safe_load)
    generation = _read(variations_dir / GENERATION_NAME, hint, json.loads)
    if not isinstance(variations, dict) or "diffusion" not in variations:
        raise UserError(f"{variations_dir}: not a variations folder (its {CONFIG_NAME} has no diffusion block)")
    check_same_setting(teacher, teacher_dir, variations, variations_dir)
    index = scan_image_folder(train_root if train_root is not None else teacher["dataset"]["root_train"])
    check_same_dataset(index, generation.get("sources_sha256"), variations["dataset"].get("root"), variations_dir)
    check_teacher_dataset(teacher, teacher_dir, (summary or {}).get("num_train"), index)

    raw = teacher.get("backdoor")
    backdoor = BackdoorSection.model_validate(raw) if raw is not None else None
    poisoning = build_poisoning(backdoor, attack_from(backdoor), index, teacher["seed"], single_pass=True)
    plan = plan_outputs(index.samples, index.classes, poisoning)
    size = teacher["dataset"]["image_size"]
    num_variations = variations["diffusion"].get("num_variations", 1)
    paths = _variation_files(variations_dir, plan, num_variations, index.classes)
    truth, note = _truth(teacher_dir, raw, len(index))
    return DetectionInputs(
        teacher_dir=teacher_dir,
        variations_dir=variations_dir,
        index=index,
        sources=PoisonedImageFolder(index.samples, size, poisoning, output="float"),
        labels=np.array([item.label for item in plan], dtype=np.int64),
        variation_paths=paths,
        truth=truth,
        truth_note=note,
    )
