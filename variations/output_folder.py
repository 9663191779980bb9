"""The output folder's guard: resume only what the same config started, never mix two configs' images.

Besides ``config.yaml``, the folder keeps ``generation.json``: a fingerprint of the source listing (paths
and labels decide indices, the poisoned subset, names and seeds), one of the source files' sizes (an image
edited in place), and the numerics that change the bytes written (backend, dtype, model batch size, the hub
commit loaded, and ``compile``/``decode_batch_size`` where they apply). A resume must match both. It also
lists the software stacks (GPU, torch, CUDA, diffusers, transformers) the images were made on: a resume on
another one is named in a warning, since their float rounding may differ.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
from pathlib import Path

import yaml

from datasets.setting_keys import CONFIG_NAME, config_differences, without_runtime_keys
from utils.atomic_io import TEMP_MARKER, atomic_write_json, atomic_write_yaml, is_temporary
from utils.errors import UserError, first_line
from utils.folder_lock import is_lock_file
from variations.manifest import is_manifest_file

log = logging.getLogger(__name__)

GENERATION_NAME = "generation.json"
STACKS = "environments"  # generation.json: the software stacks the folder's images were made on, oldest first
# generation.json keys recorded since a later version: a folder made before lacks them and is not refused for it
RECORDED_LATER = ("revision", "prior_revision")


def software_stack(device) -> dict:
    """What besides the config and weights decides float rounding: the device and the library versions."""
    import diffusers
    import torch
    import transformers

    return {
        "device": device.type,
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "torch": torch.__version__,
        "cuda": torch.version.cuda if device.type == "cuda" else None,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
    }


def _compared(saved: dict, current: dict) -> tuple[dict, dict]:
    """The numerics a resume must match: the stacks aside, and keys the saved record predates."""
    later = [key for key in RECORDED_LATER if key not in saved]
    drop = {STACKS, *later}
    return {k: v for k, v in saved.items() if k not in drop}, {k: v for k, v in current.items() if k not in drop}


def _with_stacks(saved: dict, generation: dict, folder: Path) -> dict:
    """``generation`` with the saved stacks and the current one (named in a warning when it is new)."""
    stacks = list(saved.get(STACKS, []))
    current = generation.get(STACKS, [])
    for stack in current:
        if stacks and stack not in stacks:
            changes = "; ".join(config_differences(stacks[-1], stack))
            log.warning(
                "output_folder: %s was started on another software stack (%s); images made on each may differ in "
                "their last bits. Use --overwrite to make them all on this one",
                folder,
                changes,
            )
        if stack not in stacks:
            stacks.append(stack)
    return {**generation, STACKS: stacks} if stacks else generation


def sources_fingerprint(root: Path, samples: list[tuple[str, int]]) -> str:
    """SHA-256 of the source listing (relative paths as bytes on disk, and labels, in ImageFolder order)."""
    digest = hashlib.sha256()
    for path, label in samples:  # os.fsencode: names that are not UTF-8 hash as the bytes they are
        digest.update(os.fsencode(Path(path).relative_to(root)) + f"\t{label}\n".encode())
    return digest.hexdigest()


SIZES_KEY = "sources_sizes_sha256"  # in generation.json since issue 20: older folders are resumed without it


def sources_sizes_fingerprint(samples: list[tuple[str, int]]) -> str:
    """SHA-256 of the source files' sizes in bytes, in ImageFolder order: an image replaced or edited in place
    under the same name almost always changes size (compressed formats). Modification times are left out on
    purpose: copying the data to another disk (``cp -r``, a job's local scratch) changes them, not the data."""
    digest = hashlib.sha256()
    for path, _ in samples:
        digest.update(f"{Path(path).stat().st_size}\n".encode())
    return digest.hexdigest()


def generation_changes(saved: dict, current: dict) -> list[str]:
    """How ``current`` differs from a folder's ``generation.json`` (keys a folder predates are not compared)."""
    if not saved:  # made before generation.json existed
        return []
    saved, current = _compared(saved, current)
    return config_differences(saved, {key: value for key, value in current.items() if key in saved or key != SIZES_KEY})


def sources_folder(output_folder: Path) -> Path:
    """Copies of the (poisoned) inputs live beside the output, so the output stays a clean ImageFolder."""
    return output_folder.with_name(output_folder.name + "_sources")


def _read_saved(folder: Path) -> tuple[dict, dict]:
    try:
        config = yaml.safe_load((folder / CONFIG_NAME).read_text()) or {}
        generation_path = folder / GENERATION_NAME
        generation = json.loads(generation_path.read_text()) if generation_path.is_file() else {}
    except (OSError, yaml.YAMLError, json.JSONDecodeError) as err:
        raise UserError(f"output_folder: cannot read what {folder} was made with ({first_line(err)})") from err
    return config, generation


def saved_config_changes(folder: Path, cfg) -> list[str]:
    """How ``cfg`` differs from the config ``folder`` was made with (keys that do not change the bytes aside)."""
    saved_config, _ = _read_saved(folder)
    return config_differences(without_runtime_keys(saved_config), without_runtime_keys(cfg.to_dict()))


def _written_here(folder: Path, layout: str) -> list[Path]:
    """Everything in ``folder`` that is to go on ``--overwrite``, deepest first; a UserError naming the first entry
    the generator never writes (``layout`` "output": its own files and class folders of PNGs; "copies": class
    folders of PNGs), before anything is deleted."""
    found = []
    for entry in sorted(folder.iterdir()):
        if is_lock_file(entry):  # the jobs working on the folder, this one's included
            continue
        own_file = layout == "output" and (entry.name in (CONFIG_NAME, GENERATION_NAME) or is_manifest_file(entry.name))
        if not entry.is_symlink() and entry.is_file() and (own_file or is_temporary(entry)):
            found.append(entry)
            continue
        if entry.is_symlink() or not entry.is_dir():
            raise _not_written(folder, entry)
        for file in sorted(entry.iterdir()):  # a class folder: the images, and leftovers of a killed run
            if file.is_symlink() or not file.is_file() or not (file.suffix == ".png" or is_temporary(file)):
                raise _not_written(folder, file)
            found.append(file)
        found.append(entry)
    return found


def _not_written(folder: Path, entry: Path) -> UserError:
    return UserError(
        f"output_folder: --overwrite replaces only what generate_variations.py wrote, and generate_variations.py "
        f"did not write {entry}; nothing was deleted: move it out of {folder}, or choose another output_folder"
    )


def _clear(folder: Path, saved_config: dict) -> None:
    """What the generator wrote in ``folder``, and its source copies beside it when the saved config says it wrote
    them; refused, with nothing deleted, if either holds anything else."""
    doomed = _written_here(folder, "output")
    copies = sources_folder(folder)
    if saved_config.get("save_source_copies") is True and copies.is_dir() and not copies.is_symlink():
        doomed += [*_written_here(copies, "copies"), copies]
    for path in doomed:
        if path.is_dir():
            path.rmdir()  # emptied just before: its files come first in the list
        else:
            path.unlink()


def prepare_output_folder(cfg, classes: list[str], generation: dict, overwrite: bool) -> str:
    """Create or check the output folder (its lock held); returns 'new', 'resume' or 'overwrite'."""
    folder = Path(cfg.output_folder)
    current = without_runtime_keys(cfg.to_dict())
    state = "new"
    contents = [p for p in folder.iterdir() if not (is_temporary(p) or is_lock_file(p))] if folder.is_dir() else []
    if contents:
        if not (folder / CONFIG_NAME).is_file():
            raise UserError(
                f"output_folder: {folder} is not empty and has no {CONFIG_NAME}, so it was not made by "
                "generate_variations.py; choose another folder"
            )
        saved_config, saved_generation = _read_saved(folder)
        changes = config_differences(without_runtime_keys(saved_config), current)
        changes += generation_changes(saved_generation, generation)
        if overwrite:
            _clear(folder, saved_config)
            state = "overwrite"
        elif changes:
            shown = "; ".join(changes[:3]) + (f"; and {len(changes) - 3} more" if len(changes) > 3 else "")
            raise UserError(
                f"output_folder: {folder} holds variations made with another config or source data ({shown}); "
                "re-run with --overwrite to replace them, or choose another output_folder"
            )
        else:
            state = "resume"
            generation = _with_stacks(saved_generation, generation, folder)
    folder.mkdir(parents=True, exist_ok=True)
    # the config goes in before the class folders: a parallel shard job sees a config
    atomic_write_yaml(folder / CONFIG_NAME, cfg.to_dict())
    atomic_write_json(folder / GENERATION_NAME, generation)
    for name in classes:
        (folder / name).mkdir(exist_ok=True)
    return state


def remove_leftovers(folder: Path, owned: set[str] | None) -> int:
    """Delete the temporary files of a killed run: all of them (``owned`` None, a job alone on the folder), or
    those of the outputs in ``owned`` (relative paths: a shard's own, which its lock keeps others from)."""
    removed = 0
    for leftover in folder.rglob(f"*{TEMP_MARKER}*"):
        target = leftover.relative_to(folder).as_posix().split(TEMP_MARKER)[0]
        if owned is None or target in owned:
            leftover.unlink(missing_ok=True)
            removed += 1
    return removed
