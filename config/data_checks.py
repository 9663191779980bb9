"""Checks of a validated config against the disk: folders, class folders, class count, target index, trigger
image files, teacher, and that the output folders can be written.

They run after schema validation (``config.loading``), just before a script starts its work, and fill in
what only the data can tell (``model.num_classes``). Errors name the key, as schema errors do.
"""

from __future__ import annotations

import os
from pathlib import Path

from config.schema import VariationConfig
from config.step_agreement import check_student_agreement
from datasets.image_folder import list_class_folders
from datasets.setting_keys import CONFIG_NAME
from models.teacher_reference import ACCEPTED, looks_like_teacher_reference
from training.run_directory import METRICS_NAME, POISON_INDICES_NAME, SUMMARY_NAME
from utils.errors import UserError
from utils.folder_overlap import check_apart
from variations.completeness import unfinished_variations
from variations.output_folder import GENERATION_NAME, sources_folder

# Files that make a folder one of this tool's run directories or variations folders (beside its config.yaml)
RUN_MARKERS = (SUMMARY_NAME, POISON_INDICES_NAME, METRICS_NAME, GENERATION_NAME)

MIN_CLASSES = 2  # a classifier needs two classes, and a backdoor sends images of one class to another


def _class_folders(root: Path, key: str, minimum: int = MIN_CLASSES, needs: str = "a classifier needs") -> list[str]:
    if not Path(root).is_dir():
        raise UserError(f"{key}: folder not found: {root}")
    try:
        classes = list_class_folders(root)
    except UserError as err:
        raise UserError(f"{key}: {err}") from err
    if len(classes) < minimum:
        found = f" ({', '.join(classes)})" if classes else ""
        raise UserError(
            f"{key}: {root} has {len(classes)} class folder{'' if len(classes) == 1 else 's'}{found}; "
            f"{needs} at least {minimum}"
        )
    return classes


def _no_runs_inside(root: Path, classes: list[str], key: str) -> None:
    """No run directory or variations folder inside a class folder: its samples.png and outputs would be read as
    images (one left there by an earlier version, or moved there by hand)."""
    for name in classes:
        for folder, _, files in os.walk(Path(root) / name):
            if CONFIG_NAME in files and (marker := next((m for m in RUN_MARKERS if m in files), None)):
                raise UserError(
                    f"{key}: {folder} is a run directory or variations folder inside the data (it holds "
                    f"{CONFIG_NAME} and {marker}): its images would be read as data; move it out of {root}"
                )


def _finished(root: Path, key: str) -> None:
    why = unfinished_variations(Path(root))
    if why is not None:
        raise UserError(f"{key}: {why}")


def _writable_folder(path: Path, key: str) -> None:
    """``path`` is a folder this process can write in, or can be created as one (checked, nothing created)."""
    existing = Path(path)
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        where = "" if existing == Path(path) else f", so {path} cannot be created"
        raise UserError(f"{key}: {existing} is a file, not a folder{where}")
    if not os.access(existing, os.W_OK | os.X_OK):
        action = "write in" if existing == Path(path) else f"create {path} in"
        raise UserError(f"{key}: permission denied: this user cannot {action} {existing}")


def _target_in_range(backdoor, classes: list[str], key: str) -> None:
    if backdoor is not None and backdoor.target_idx >= len(classes):
        raise UserError(
            f"backdoor.target_idx: {backdoor.target_idx} is outside the {len(classes)} classes found in {key} "
            f"(0..{len(classes) - 1})"
        )


def _trigger_files_readable(backdoor) -> None:
    """The image files the attack's block names (a patch or blend image) exist and decode."""
    # only the attacks that can take a file (PatchBackdoor, BlendedBackdoor) have the check
    check_files = None if backdoor is None else getattr(backdoor.attack_params, "check_files", None)
    if check_files is not None:
        try:
            check_files()
        except ValueError as err:  # the message starts with the key at fault, e.g. trigger_type
            raise UserError(f"backdoor.{backdoor.attack_name}.{err}") from err


def check_training_data(cfg) -> None:
    """Teacher and student configs: training and test folders with the same classes, the class count, the
    trigger files and the teacher."""
    train_classes = _class_folders(cfg.dataset.root_train, "dataset.root_train")
    test_classes = _class_folders(cfg.dataset.root_test, "dataset.root_test")
    if train_classes != test_classes:
        missing = sorted(set(test_classes) - set(train_classes))
        extra = sorted(set(train_classes) - set(test_classes))
        raise UserError(
            f"dataset.root_train and dataset.root_test must have the same class folders "
            f"(only in root_test: {missing or 'none'}; only in root_train: {extra or 'none'})"
        )
    if cfg.model.num_classes is None:
        cfg.model.num_classes = len(train_classes)
    elif cfg.model.num_classes != len(train_classes):
        raise UserError(
            f"model.num_classes: {cfg.model.num_classes}, but dataset.root_train has {len(train_classes)} class folders"
        )
    for key, root in (("dataset.root_train", cfg.dataset.root_train), ("dataset.root_test", cfg.dataset.root_test)):
        _finished(root, key)
        _no_runs_inside(root, train_classes, key)
    _target_in_range(cfg.backdoor, train_classes, "dataset.root_train")
    _trigger_files_readable(cfg.backdoor)
    _writable_folder(cfg.training.save_path, "training.save_path")
    distillation = getattr(cfg, "distillation", None)
    if distillation is not None and not looks_like_teacher_reference(distillation.teacher_model):
        raise UserError(
            f"distillation.teacher_model: '{distillation.teacher_model}' is not an existing file or folder nor "
            f"a W&B reference; accepted: {ACCEPTED}"
        )


def check_variation_data(cfg) -> None:
    """Variation configs: the source folder, the target index and the trigger files."""
    # without a backdoor block the generator only regenerates images: one class folder is enough then
    minimum = MIN_CLASSES if cfg.backdoor is not None else 1
    classes = _class_folders(
        cfg.dataset.root, "dataset.root", minimum, "a backdoor (it relabels to another class) needs"
    )
    _finished(cfg.dataset.root, "dataset.root")
    _no_runs_inside(cfg.dataset.root, classes, "dataset.root")
    _target_in_range(cfg.backdoor, classes, "dataset.root")
    _trigger_files_readable(cfg.backdoor)
    _writable_folder(cfg.output_folder, "output_folder")
    if cfg.save_source_copies:
        _writable_folder(sources_folder(cfg.output_folder), "save_source_copies")


def check_outputs_apart(cfg) -> None:
    """The config's output folders are neither inside its data nor, where they get replaced, holding it (once the
    output paths are final: ``run_pipeline.py`` sets them after its other checks)."""
    if isinstance(cfg, VariationConfig):
        # both ways: --overwrite replaces the output folder's contents, and its source copies beside it
        data = {"dataset.root": cfg.dataset.root}
        check_apart("output_folder", cfg.output_folder, data)
        check_apart("output_folder", sources_folder(cfg.output_folder), data)
    else:  # one way: a run only adds its own new folder under training.save_path
        data = {"dataset.root_train": cfg.dataset.root_train, "dataset.root_test": cfg.dataset.root_test}
        check_apart("training.save_path", cfg.training.save_path, data, both_ways=False)


def check_data(cfg) -> None:
    """The checks that fit the config's kind."""
    if isinstance(cfg, VariationConfig):
        check_variation_data(cfg)
    else:
        check_training_data(cfg)
        if getattr(cfg, "distillation", None) is not None:
            check_student_agreement(cfg)
    check_outputs_apart(cfg)
