"""The demo's results table (Markdown + JSON) and its picture of clean, triggered and variation images."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

from datasets.setting_keys import CONFIG_NAME
from demo.detection_report import detection_markdown
from utils.atomic_io import atomic_write_json, atomic_write_text
from utils.report import markdown_table

KEYS = ("clean_accuracy", "attack_success_rate", "robust_accuracy")


def _percent(value) -> str:
    return "n/a" if value is None else f"{100 * value:.1f} %"


FIRST_BACKENDS = {  # the first variation row: the baseline, or Versatile Diffusion where it can run
    "classical": ("student_classical", "classical"),
    "versatile_diffusion": ("student_versatile_diffusion", "Versatile Diffusion"),
}


def result_name(backend: str) -> str:
    """The key of the student on the first variations in results.json: named by its training data."""
    return FIRST_BACKENDS[backend][0]


def row_name(backend: str) -> str:
    """The name of the first variations' row in samples.png."""
    return FIRST_BACKENDS[backend][1]


def diffusion_strength(variations: Path) -> float:
    """The SDEdit strength a ``ddpm_sdedit`` variations folder was made with (its saved config)."""
    return float(yaml.safe_load((Path(variations) / CONFIG_NAME).read_text())["diffusion"]["strength"])


def _read_config(run_dir: Path) -> dict:
    return yaml.safe_load((Path(run_dir) / CONFIG_NAME).read_text()) or {}


def demo_setting(teacher: dict, runs: Mapping[str, Path]) -> dict:
    """What the table is about, from the teacher's ``summary.json`` and the runs' ``config.yaml``: the attack, its
    target, the poisoning rate, the ASR a random guess would reach, the seeds and the epochs of every model."""
    attack = teacher.get("attack") or {}
    classes = list(teacher["per_class_accuracy"])  # in class-index order
    configs = {name: _read_config(folder) for name, folder in runs.items()}
    return {
        "attack": attack.get("name"),
        "target_type": attack.get("target_type"),
        "target_class": classes[attack["target_idx"]] if "target_idx" in attack else None,
        "poisoning_rate": (teacher.get("setting") or {}).get("poisoning_rate"),
        "num_poisoned": teacher.get("num_poisoned"),
        "num_train": teacher.get("num_train"),
        "classes": classes,
        # a model that guesses uniformly calls a triggered image the target (or, all-to-all, the next class)
        # this often: an ASR near it means no backdoor
        "asr_chance_level": 1 / len(classes),
        "seeds": sorted({config.get("seed") for config in configs.values()}),
        "epochs": {name: config["training"]["num_epochs"] for name, config in configs.items()},
    }


def build_results(
    summaries: dict, variations: dict, seconds: float, runs: Mapping[str, Path], detection: dict | None = None
) -> dict:
    """Teacher and the students (keys of ``summaries``): CA, ASR, RA and, for students, DER; the setting; where
    each run lies (``runs``: run directory of every model, ``variations`` folders by name).

    ``variations``: ``first`` (the first student's backend), ``strength`` (the diffusion student's SDEdit) and
    ``folders`` (name → variations folder). ``detection``: the detectors' figures
    (``demo.detection_report.detection_results``).
    """
    rows = {"teacher": {k: summaries["teacher"][k] for k in KEYS} | {"der": None}}
    for name, summary in summaries.items():
        if name != "teacher":
            rows[name] = {k: summary["student"][k] for k in KEYS} | {"der": summary["der"]}
    return {
        "variation_backend": variations["first"],
        "diffusion_strength": variations["strength"],
        "setting": demo_setting(summaries["teacher"], runs),
        "wall_time_seconds": round(seconds, 1),
        "models": rows,
        "runs": {name: str(folder) for name, folder in runs.items()},
        "variations": {name: str(folder) for name, folder in variations.get("folders", {}).items()},
        "detection": detection,
    }


def _setting_text(setting: dict) -> str:
    epochs = sorted(set(setting["epochs"].values()))
    trained = (
        f"every model trained for {epochs[0]} epoch{'s' if epochs[0] != 1 else ''}"
        if len(epochs) == 1
        else "epochs: " + ", ".join(f"{name} {n}" for name, n in setting["epochs"].items())
    )
    mode = "all-to-all (class y → y + 1)" if setting["target_type"] == "all_to_all" else "all-to-one"
    seeds = ", ".join(str(seed) for seed in setting["seeds"])
    return (
        f"- attack: **{setting['attack']}**, {mode}, target class **{setting['target_class']}**\n"
        f"- poisoning rate: **{100 * setting['poisoning_rate']:g} %** of the non-target training images "
        f"({setting['num_poisoned']} of {setting['num_train']} training images poisoned)\n"
        f"- {len(setting['classes'])} classes ({', '.join(setting['classes'])}): the ASR of a model guessing at "
        f"random (chance level) is **{100 * setting['asr_chance_level']:.1f} %**\n"
        f"- seed {seeds}; {trained}\n"
    )


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
    meaning = {
        "teacher": "trained on the poisoned training set; the backdoored model the defence starts from",
        "student_classical": "distilled from the teacher on image-processing variations of the poisoned training set",
        "student_versatile_diffusion": "distilled from the teacher on Versatile Diffusion variations of the poisoned "
        "training set",
        "student_diffusion": "distilled from the teacher on variations of the poisoned training set made by the "
        "demo's DDPM (trained on clean shapes only)",
        "student_diffusion_cleaned": "distilled from the teacher on the diffusion variations without the images "
        "the detector flagged as poisoned",
        "student_clean": "distilled from the teacher on the clean training images; what removing every trigger "
        "would reach",
    }
    rows = [[names[key], *(_percent(values[k]) for k in (*KEYS, "der"))] for key, values in results["models"].items()]
    table = markdown_table(["model", "clean accuracy", "ASR", "robust accuracy", "DER"], rows)
    explained = "".join(f"- {names[key]}: {meaning[key]}\n" for key in results["models"])
    where = "".join(f"- {names[key]}: `{folder}`\n" for key, folder in results["runs"].items())
    where += "".join(f"- {name} variations: `{folder}`\n" for name, folder in results["variations"].items())
    text = (
        "# Demo results\n\n"
        f"{_setting_text(results['setting'])}"
        f"- first variations made with: **{results['variation_backend']}**; diffusion variations: the demo's DDPM "
        f"(demo/ddpm_shapes, trained on clean shapes only), SDEdit at strength {strength:g}\n\n"
        f"{table}\n\n"
        f"Rows:\n\n{explained}\n"
        "CA: accuracy on the clean test set. ASR: share of triggered non-target test images classified as the "
        "target (chance level above). RA: share of them still classified correctly. DER = (max(0, ASR_t − ASR_s) − "
        "max(0, CA_t − CA_s) + 1) / 2 against the teacher (0.5: no change; 1: the backdoor removed at no cost).\n\n"
        f"Runs (each with config.yaml, metrics.jsonl, summary.json, model.safetensors):\n\n{where}\n"
        f"Wall time: {results['wall_time_seconds'] / 60:.1f} min.\n"
    )
    if results.get("detection"):
        text += "\n" + detection_markdown(results["detection"], out)
    atomic_write_text(out / "results.md", text)
    atomic_write_json(out / "results.json", results)
    return table
