"""The output folder's guard: resume only what the same config started, never mix two configs' images."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from utils.atomic_io import TEMP_MARKER
from utils.config_loading import config_to_dict, save_config
from utils.errors import UserError
from utils.run_directory import CONFIG_NAME

# Keys that do not change the bytes written: how the work is run, not what it produces.
RUNTIME_KEYS = {
    ("dataset", "batch_size"),
    ("dataset", "num_workers"),
    ("device",),
    ("wandb",),
    ("rtpt",),
    ("save_source_copies",),
    ("diffusion", "compile"),
    ("diffusion", "model_batch_size"),
}


def _without_runtime_keys(data: dict, prefix: tuple = ()) -> dict:
    out = {}
    for key, value in data.items():
        path = (*prefix, key)
        if path in RUNTIME_KEYS:
            continue
        out[key] = _without_runtime_keys(value, path) if isinstance(value, dict) else value
    return out


def _differences(old, new, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += _differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix[:-1]}: {old!r} → {new!r}"]


def sources_folder(output_folder: Path) -> Path:
    """Copies of the (poisoned) inputs live beside the output, so the output stays a clean ImageFolder."""
    return output_folder.with_name(output_folder.name + "_sources")


def prepare_output_folder(cfg, classes: list[str], overwrite: bool) -> str:
    """Create or check the output folder and write its ``config.yaml``; returns 'new', 'resume' or 'overwrite'."""
    folder = Path(cfg.output_folder)
    current = _without_runtime_keys(config_to_dict(cfg))
    state = "new"
    if folder.exists() and any(folder.iterdir()):
        saved_path = folder / CONFIG_NAME
        if not saved_path.is_file():
            raise UserError(
                f"output_folder: {folder} is not empty and has no {CONFIG_NAME}, so it was not made by "
                "generate_variations.py; choose another folder"
            )
        saved = _without_runtime_keys(yaml.safe_load(saved_path.read_text()) or {})
        changes = _differences(saved, current)
        if changes and not overwrite:
            shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
            raise UserError(
                f"output_folder: {folder} holds variations made with another config ({shown}); "
                "re-run with --overwrite to replace them, or choose another output_folder"
            )
        if overwrite:
            shutil.rmtree(folder)
            shutil.rmtree(sources_folder(folder), ignore_errors=True)
            state = "overwrite"
        else:
            state = "resume"
            for leftover in folder.rglob(f"*{TEMP_MARKER}*"):  # from a run killed mid-write
                leftover.unlink(missing_ok=True)
    folder.mkdir(parents=True, exist_ok=True)
    save_config(cfg, folder / CONFIG_NAME)  # before the class folders: a parallel shard job sees a config
    for name in classes:
        (folder / name).mkdir(exist_ok=True)
    return state
