"""The flat keys that say which experimental setting a run belongs to, so runs can be grouped and filtered.

Every run logs them as top-level W&B config fields and in its ``summary.json``; ``collect_results.py``
groups runs by them. They are read from the resolved config (what ``config.yaml`` holds). A student's
variation backend comes from the ``config.yaml`` that generate_variations.py writes into its training
folder; a student trained on a folder without one is the ``clean_student`` (the upper bound).
"""

from __future__ import annotations

from pathlib import Path

import yaml

FOLDER_CONFIG = "config.yaml"  # written into every run directory and variations folder
OPTION_KEYS = {"target_idx", "poison_first", "poisoning_rate", "random_poisoning", "poison_target_class", "target_type"}


def attack_name(backdoor: dict | None) -> str | None:
    """The attack a ``backdoor`` block names: its one mapping-valued key (e.g. ``PatchBackdoor``)."""
    names = [key for key, value in (backdoor or {}).items() if key not in OPTION_KEYS and isinstance(value, dict)]
    return names[0] if names else None


def read_config_beside(path: str | Path) -> dict | None:
    """The ``config.yaml`` of a folder (or of the folder holding a file), or None if there is none."""
    if not path:
        return None
    path = Path(path).expanduser()
    folder = path if path.is_dir() else path.parent
    try:
        return yaml.safe_load((folder / FOLDER_CONFIG).read_text()) or None
    except (OSError, yaml.YAMLError):
        return None


def _rate(config: dict | None) -> float | None:
    backdoor = (config or {}).get("backdoor") or {}
    return backdoor.get("poisoning_rate") if attack_name(backdoor) else None


def setting_keys(config: dict, job_type: str) -> dict:
    """``dataset_name``, ``architecture``, ``attack``, ``poisoning_rate``, ``target_type``,
    ``variation_backend``, ``seed`` and ``role`` (teacher, student, clean_student, cleaned_student or variations)."""
    backdoor = config.get("backdoor") or {}
    attack = attack_name(backdoor)
    keys = {
        "dataset_name": (config.get("dataset") or {}).get("name"),
        "architecture": (config.get("model") or {}).get("architecture"),
        "attack": attack or "none",
        "poisoning_rate": _rate(config),
        # another engineer adds backdoor.target_type; all-to-one is what every attack did before it
        "target_type": backdoor.get("target_type", "all_to_one") if attack else None,
        "variation_backend": None,
        "seed": config.get("seed"),
        "role": job_type,
    }
    if job_type == "variations":
        keys["variation_backend"] = (config.get("diffusion") or {}).get("backend")
    elif job_type == "student":
        # the student's own backdoor block only builds the triggered test set (rate 0): the rate that
        # matters is the teacher's, else that of the variations it trains on
        source = read_config_beside((config.get("dataset") or {}).get("root_train", ""))
        made_by_generator = source is not None and "diffusion" in source
        teacher = read_config_beside((config.get("distillation") or {}).get("teacher_model", ""))
        rate = _rate(teacher) if teacher is not None else None
        keys["poisoning_rate"] = rate if rate is not None else _rate(source if made_by_generator else None)
        keys["variation_backend"] = source["diffusion"].get("backend") if made_by_generator else None
        keys["role"] = "student" if made_by_generator else "clean_student"
        if made_by_generator and "cleaning" in source:  # variations with the flagged images dropped or relabelled
            keys["role"] = "cleaned_student"
    return keys
