"""Whether a variations folder already holds every variation its config asks for (a pipeline skips it then).

Complete means: made with the same config and source listing, a merged ``manifest.jsonl`` (written once
every part has finished) that lists every planned variation, and each listed file on disk. Anything less
is resumed by the generator, which writes only what is missing.

A student, which has only the folder, refuses one that is being written or unfinished
(:func:`unfinished_variations`).
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import yaml

from datasets.image_folder import scan_image_folder
from datasets.setting_keys import CONFIG_NAME
from utils.errors import UserError
from utils.folder_lock import lock_states
from variations.manifest import MANIFEST_NAME
from variations.output_folder import (
    GENERATION_NAME,
    SIZES_KEY,
    saved_config_changes,
    sources_fingerprint,
    sources_sizes_fingerprint,
)


def variations_complete(cfg) -> bool:
    folder = Path(cfg.output_folder)
    if not all((folder / name).is_file() for name in (CONFIG_NAME, GENERATION_NAME, MANIFEST_NAME)):
        return False
    try:
        if saved_config_changes(folder, cfg):
            return False  # the generator's guard says what differs when it is run
        generation = json.loads((folder / GENERATION_NAME).read_text())
        lines = (folder / MANIFEST_NAME).read_text().splitlines()
        records = [json.loads(line) for line in lines if line.strip()]
    except (UserError, OSError, json.JSONDecodeError):
        return False
    index = scan_image_folder(cfg.dataset.root)
    if generation.get("sources_sha256") != sources_fingerprint(index.root, index.samples):
        return False
    if SIZES_KEY in generation and generation[SIZES_KEY] != sources_sizes_fingerprint(index.samples):
        return False  # a source edited in place (folders made before the sizes were recorded: not compared)
    expected = len(index.samples) * cfg.diffusion.num_variations
    return len(records) == expected and all((folder / record["output"]).is_file() for record in records)


def _what_is_missing(folder: Path) -> str | None:
    if not (folder / MANIFEST_NAME).is_file():
        return f"no {MANIFEST_NAME}: its generator has not finished"
    _, dead = lock_states(folder)
    if dead:
        return f"{dead[0].name}: the lock of a generator that was stopped before it finished"
    if parts := sorted(folder.glob("manifest.part-*.jsonl")):
        return f"{parts[0].name}: a part whose other parts have not finished"
    try:
        records = [json.loads(line) for line in (folder / MANIFEST_NAME).read_text().splitlines() if line.strip()]
        missing = [record["output"] for record in records if not (folder / record["output"]).is_file()]
    except (OSError, ValueError, TypeError, KeyError):
        return f"{MANIFEST_NAME} cannot be read"
    if missing:
        return f"{len(missing)} of the {len(records)} images {MANIFEST_NAME} lists are missing, e.g. {missing[0]}"
    return None


def finishing_command(folder: Path) -> str:
    """The command that finishes ``folder`` with the config it was started with."""
    words = ["python", "generate_variations.py", "-c", str(folder / CONFIG_NAME)]
    try:
        saved = (yaml.safe_load((folder / CONFIG_NAME).read_text()) or {}).get("output_folder")
    except (OSError, yaml.YAMLError, AttributeError):
        saved = None
    if saved is None or Path(saved).resolve() != folder.resolve():  # moved, or saved relative to another directory
        words += ["--set", f"output_folder={folder}"]
    return shlex.join(words)


def unfinished_variations(folder: Path) -> str | None:
    """Why the variations folder ``folder`` cannot be trained on yet (one line, with what to do); None when it is
    finished, or is not a variations folder at all."""
    if not ((folder / CONFIG_NAME).is_file() and (folder / GENERATION_NAME).is_file()):
        return None
    live, _ = lock_states(folder)
    if live:
        return f"a generator is still writing these variations: {live[0]}"
    missing = _what_is_missing(folder)
    if missing is None:
        return None
    return f"{folder} holds unfinished variations ({missing}); finish it with: {finishing_command(folder)}"
