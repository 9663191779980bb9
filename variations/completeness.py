"""Whether a variations folder already holds every variation its config asks for (a pipeline skips it then).

Complete means: made with the same config and source listing, a merged ``manifest.jsonl`` (written once
every part has finished) that lists every planned variation, and each listed file on disk. Anything less
is resumed by the generator, which writes only what is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

from datasets.image_folder import scan_image_folder
from utils.errors import UserError
from variations.manifest import MANIFEST_NAME
from variations.output_folder import (
    CONFIG_NAME,
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
