"""``manifest.jsonl``: one line per written image. Each process writes its part; parts are merged once all exist."""

from __future__ import annotations

import json
from pathlib import Path

from utils.atomic_io import atomic_write_text
from variations.output_plan import OutputLayout, PlannedImage, variation_seed
from variations.sharding import Part

MANIFEST_NAME = "manifest.jsonl"


def is_manifest_file(name: str) -> bool:
    """``manifest.jsonl`` or one part's ``manifest.part-<i>-of-<n>.jsonl``."""
    return name == MANIFEST_NAME or (name.startswith("manifest.part-") and name.endswith(".jsonl"))


def part_path(folder: Path, part: Part) -> Path:
    return folder / f"manifest.{part.tag}.jsonl"


def manifest_records(items: list[PlannedImage], layout: OutputLayout, seed: int) -> list[dict]:
    """Records for the variations of ``items`` that exist on disk, in (index, variation) order."""
    classes = layout.classes
    records = []
    for item in items:
        for variation, output in enumerate(layout.outputs(item)):
            if (layout.folder / output).is_file():
                records.append(
                    {
                        "index": item.index,
                        "source": item.source,
                        "source_class": classes[item.true_label],
                        "class": classes[item.label],
                        "poisoned": item.poisoned,
                        "cross": item.cross,
                        "variation": variation,
                        "seed": variation_seed(seed, item.index, variation),
                        "output": output,
                    }
                )
    return records


def _jsonl(records: list[dict]) -> str:
    return "".join(json.dumps(record, allow_nan=False) + "\n" for record in records)


def write_part(folder: Path, part: Part, records: list[dict]) -> None:
    atomic_write_text(part_path(folder, part), _jsonl(records))


def merge_parts(folder: Path, count: int) -> bool:
    """Merge the ``count`` part files into ``manifest.jsonl`` (then remove them); False if some are missing.

    Every process calls this when its part is written: the last one to finish merges. Two finishing at
    once may both merge (same content, atomic writes); one that finds the parts gone already lost the race.
    """
    parts = [part_path(folder, Part(i, count)) for i in range(count)]
    try:
        records = [json.loads(line) for path in parts for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return False
    records.sort(key=lambda r: (r["index"], r["variation"]))
    atomic_write_text(folder / MANIFEST_NAME, _jsonl(records))
    for path in folder.glob("manifest.part-*.jsonl"):  # also stale parts of an earlier split
        path.unlink(missing_ok=True)
    return True
