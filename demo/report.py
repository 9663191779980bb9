"""The demo's results table (Markdown + JSON) and its picture of clean, triggered and variation images."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import yaml

from datasets.build import attack_from
from datasets.image_folder import read_rgb
from datasets.sections import BackdoorSection
from demo.detection_report import detection_markdown
from utils.atomic_io import atomic_write_json, atomic_write_png, atomic_write_text
from utils.image_grid import labelled_grid
from utils.report import markdown_table

KEYS = ("clean_accuracy", "attack_success_rate", "robust_accuracy")


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


FIRST_BACKENDS = {  # the first variation row: the baseline, or Versatile Diffusion where it can run
    "classical": ("student_classical", "classical", "classical baseline (no generative model)"),
    "versatile_diffusion": ("student_versatile_diffusion", "Versatile Diffusion", "Versatile Diffusion"),
}


def result_name(backend: str) -> str:
    """The key of the student on the first variations in results.json: named by its training data."""
    return FIRST_BACKENDS[backend][0]


def row_name(backend: str) -> str:
    """The name of the first variations' row in samples.png."""
    return FIRST_BACKENDS[backend][1]


def diffusion_strength(variations: Path) -> float:
    """The SDEdit strength a ``ddpm_sdedit`` variations folder was made with (its saved config)."""
    return float(yaml.safe_load((Path(variations) / "config.yaml").read_text())["diffusion"]["strength"])


def build_results(summaries: dict, variations: dict, seconds: float, detection: dict | None = None) -> dict:
    """Teacher and the students (keys of ``summaries``): CA, ASR, RA and, for students, DER.

    ``variations``: ``first`` (the first student's backend) and ``strength`` (the diffusion student's SDEdit).
    ``detection``: the detectors' figures (``demo.detection_report.detection_results``).
    """
    rows = {"teacher": {k: summaries["teacher"][k] for k in KEYS} | {"der": None}}
    for name, summary in summaries.items():
        if name != "teacher":
            rows[name] = {k: summary["student"][k] for k in KEYS} | {"der": summary["der"]}
    return {
        "variation_backend": FIRST_BACKENDS[variations["first"]][2],
        "diffusion_strength": variations["strength"],
        "wall_time_seconds": round(seconds, 1),
        "models": rows,
        "detection": detection,
    }


def write_results(results: dict, out: Path) -> str:
    strength = results["diffusion_strength"]
    names = {
        "teacher": "teacher (poisoned training data)",
        "student_classical": "student on classical variations (baseline, no generative model)",
        "student_versatile_diffusion": "student on Versatile Diffusion variations",
        "student_diffusion": f"student on diffusion variations (demo DDPM, SDEdit strength {strength:g})",
        "student_diffusion_cleaned": "student on the same diffusion variations, flagged images dropped (detection)",
        "student_clean": "student on clean training images (upper bound)",
    }
    rows = [[names[key], *(_percent(values[k]) for k in (*KEYS, "der"))] for key, values in results["models"].items()]
    table = markdown_table(["model", "clean accuracy", "ASR", "robust accuracy", "DER"], rows)
    text = (
        "# Demo results\n\n"
        f"First variations made with: **{results['variation_backend']}**; diffusion variations: the demo's DDPM "
        f"(demo/ddpm_shapes, trained on clean shapes only), SDEdit at strength {strength:g}.\n\n"
        f"{table}\n\n"
        "CA: accuracy on the clean test set. ASR: share of triggered non-target test images classified as the "
        "target. RA: share of them still classified correctly. DER = (max(0, ASR_t − ASR_s) − max(0, CA_t − CA_s) "
        "+ 1) / 2 against the teacher.\n\n"
        f"Wall time: {results['wall_time_seconds'] / 60:.1f} min.\n"
    )
    if results.get("detection"):
        text += "\n" + detection_markdown(results["detection"], out)
    atomic_write_text(out / "results.md", text)
    atomic_write_json(out / "results.json", results)
    return table


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
    config = yaml.safe_load((teacher_dir / "config.yaml").read_text())
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
