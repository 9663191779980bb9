"""The cleaned training folder for a student: the variations folder with the flagged images dropped, or filed
under the class the teacher predicts on their variations (relabelled).

The folder is an ImageFolder of links to the variation files (hard links, copies across file systems), with the
variations' ``config.yaml`` plus a ``cleaning`` block saying what was done, so a student trained on it is
recognised as the cleaned student. It is built beside and swapped in whole; a folder at that place is replaced
only if it is one this module made.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Literal

import yaml

from datasets.setting_keys import CONFIG_NAME
from detection.outputs import SUMMARY_NAME, read_suspects
from utils.atomic_io import atomic_directory, atomic_write_yaml
from utils.errors import UserError
from variations.manifest import MANIFEST_NAME

CleaningMode = Literal["drop", "relabel"]
MODES = ("drop", "relabel")


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(source, target)
    except OSError:  # another file system, or links not allowed: a copy
        shutil.copy2(source, target)


def _free_name(folder: Path, name: str, index: int, taken: set[Path]) -> Path:
    """``name`` in ``folder``, or ``<stem>_<index><suffix>`` (again, until free) if another image has it."""
    path = folder / name
    while path in taken:
        path = folder / f"{path.stem}_{index}{path.suffix}"
    taken.add(path)
    return path


def cleaning_block(mode: str, detection: Path, rows: list[dict]) -> dict:
    flagged = [row["index"] for row in rows if row["flagged"]]
    moved = [row["index"] for row in rows if row["flagged"] and row["variation_prediction"] != row["label"]]
    return {
        "mode": mode,
        "detector": "variations",
        "detection": str(detection),
        "flagged": len(flagged),
        "dropped": len(flagged) if mode == "drop" else 0,
        "relabelled": len(moved) if mode == "relabel" else 0,
        "flagged_sha256": hashlib.sha256(json.dumps(flagged).encode()).hexdigest(),
    }


def _is_ours(folder: Path) -> bool:
    try:
        config = yaml.safe_load((folder / CONFIG_NAME).read_text())
    except (OSError, yaml.YAMLError):
        return False
    return isinstance(config, dict) and "cleaning" in config


def build_cleaned_folder(variations: Path, detection: Path, out: Path, mode: str) -> dict:
    """Write ``out`` (see the module's doc); returns its ``cleaning`` block. Unchanged inputs: left as it is."""
    if mode not in MODES:
        raise UserError(f"cleaning mode {mode!r}: use one of {', '.join(MODES)}")
    variations, detection, out = Path(variations), Path(detection), Path(out)
    if not (detection / SUMMARY_NAME).is_file():
        raise UserError(f"{detection}: no {SUMMARY_NAME}; run the detection first (detect_poison.py)")
    rows = read_suspects(detection)
    block = cleaning_block(mode, detection, rows)
    if out.exists():
        if not _is_ours(out):
            raise UserError(f"{out}: exists and was not made by the cleaning step; choose another place")
        if yaml.safe_load((out / CONFIG_NAME).read_text()).get("cleaning") == block:
            return block
    config = yaml.safe_load((variations / CONFIG_NAME).read_text())
    classes = sorted(p.name for p in variations.iterdir() if p.is_dir() and not p.name.startswith("."))
    records = [json.loads(line) for line in (variations / MANIFEST_NAME).read_text().splitlines() if line.strip()]
    if len(rows) != 1 + max((r["index"] for r in records), default=-1):
        raise UserError(f"{detection}: suspects.csv does not list the images of {variations}; run the detection again")
    with atomic_directory(out) as tmp:
        taken: set[Path] = set()
        for record in records:
            row = rows[record["index"]]
            relative = Path(record["output"])
            if row["flagged"] and mode == "drop":
                continue
            folder = relative.parent
            if row["flagged"] and mode == "relabel":
                folder = Path(classes[row["variation_prediction"]])
            _link(variations / relative, _free_name(tmp / folder, relative.name, record["index"], taken))
        empty = [name for name in classes if not (tmp / name).is_dir()]
        if empty:
            raise UserError(f"cleaning ({mode}) leaves no image in class folder(s) {', '.join(empty)}")
        atomic_write_yaml(tmp / CONFIG_NAME, {**config, "cleaning": block})
    return block
