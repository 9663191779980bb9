"""What makes two runs the same setting, declared once for every script.

A run's *identity* is its resolved config (what ``config.yaml`` holds) without the keys that only say how it
was carried out (``RUNTIME_KEYS``): two runs with the same identity computed the same thing. A student's
identity holds, instead of the locations of its teacher and of its variations, their identities (read from
the ``config.yaml`` beside them), so two students are the same setting only if their teachers and variations
are. The pipeline reuses a run, the generator resumes a folder and ``collect_results.py`` supersedes a run
only when identities match; a resumed run may change only ``RESUMABLE_KEYS``.

The flat *setting keys* (dataset, architecture, attack, rate...) label runs: every run logs them as top-level
W&B config fields and in its ``summary.json``, and ``collect_results.py`` groups runs by them. A student's
variation backend comes from the ``config.yaml`` that generate_variations.py writes into its training
folder; a student trained on a folder without one is the ``clean_student`` (the upper bound).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import yaml

STEPS = ("teacher", "variations", "student")  # the configs a setting's pipeline needs, in the order they run
# the setting keys collect_results.py groups runs by unless told otherwise (--group-by)
DEFAULT_GROUP_BY = (
    "dataset_name",
    "architecture",
    "attack",
    "poisoning_rate",
    "target_type",
    "variation_backend",
    "role",
)
CONFIG_NAME = "config.yaml"  # the resolved config, written into every run directory and variations folder
OPTION_KEYS = {"target_idx", "poison_first", "poisoning_rate", "random_poisoning", "poison_target_class", "target_type"}

# Config keys (paths into the config of train_teacher.py, train_student.py or generate_variations.py) that
# decide how a run is carried out, not what it computes: runs that differ only here are the same run. (The
# generator also compares the numerics some of them imply — dtype, model batch size, a compiled denoiser —
# through its generation.json.)
RUNTIME_KEYS = frozenset(
    {
        ("wandb",),
        ("rtpt",),
        ("training", "save_path"),  # where run directories go
        ("training", "dataloader_num_workers"),
        ("training", "device"),
        ("training", "compile"),
        ("training", "channels_last"),
        ("training", "eval_every"),  # extra test-set evaluations for curves; the final one is the same
        ("training", "keep_checkpoints"),  # how many per-epoch states stay for --resume
        ("dataset", "batch_size"),  # generator: images per call (outputs do not depend on it)
        ("dataset", "num_workers"),
        ("device",),
        ("save_source_copies",),
        ("diffusion", "compile"),
        ("diffusion", "model_batch_size"),
        ("diffusion", "decode_batch_size"),  # its effect on the bytes is compared through generation.json
    }
)
# Keys a resumed run (--resume) may change: none alters what its saved epochs computed (a different worker
# count changes the random streams of the epochs still to come).
RESUMABLE_KEYS = (
    "training.num_epochs",
    "training.eval_every",
    "training.keep_checkpoints",
    "training.dataloader_num_workers",
)
# Where a run's own outputs go, or where the inputs another step made lie: not what was computed.
OUTPUT_KEYS = frozenset({("output_folder",)})


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
        return yaml.safe_load((folder / CONFIG_NAME).read_text()) or None
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


def without_runtime_keys(config: dict, prefix: tuple = ()) -> dict:
    """``config`` without ``RUNTIME_KEYS``: what two runs must share to be the same run."""
    return {
        key: without_runtime_keys(value, (*prefix, key)) if isinstance(value, dict) else value
        for key, value in config.items()
        if (*prefix, key) not in RUNTIME_KEYS
    }


def config_differences(old, new, prefix: str = "") -> list[str]:
    """``key: old → new`` for every leaf where two configs differ (dicts compared key by key)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found = []
        for key in sorted(set(old) | set(new), key=str):
            found += config_differences(old.get(key), new.get(key), f"{prefix}{key}.")
        return found
    return [] if old == new else [f"{prefix[:-1]}: {old!r} → {new!r}"]


def leaves(value, prefix: str = "") -> dict:
    """``{"backdoor.PatchBackdoor.trigger_size": 3, ...}``: the dotted path of every leaf of a config."""
    if isinstance(value, dict) and value:
        return {k: v for key, inner in value.items() for k, v in leaves(inner, f"{prefix}.{key}").items()}
    return {prefix.lstrip("."): value}


def variations_identity(config: dict) -> dict:
    """What a variations folder holds, wherever it lies."""
    return {k: v for k, v in without_runtime_keys(config).items() if (k,) not in OUTPUT_KEYS}


def run_identity(config: dict, job_type: str) -> dict:
    """What a run computed (seed included); for a student, with its teacher's and variations' identities in
    place of their locations (a location is kept where no ``config.yaml`` lies beside it)."""
    if job_type == "variations":
        return variations_identity(config)
    identity = without_runtime_keys(config)
    if job_type != "student":
        return identity
    distillation = dict(identity.get("distillation") or {})
    dataset = dict(identity.get("dataset") or {})
    teacher = read_config_beside(distillation.get("teacher_model", ""))
    if teacher is not None:
        distillation.pop("teacher_model")
        identity["teacher"] = run_identity(teacher, "teacher")
    source = read_config_beside(dataset.get("root_train", ""))
    if source is not None and "diffusion" in source:
        dataset.pop("root_train")
        identity["variations"] = variations_identity(source)
    return identity | {"distillation": distillation, "dataset": dataset}


def without_seeds(identity: dict) -> dict:
    """An identity without the seeds (its own, its teacher's, its variations'): runs that differ only in
    them are repeats of one setting."""
    return {
        key: without_seeds(value) if isinstance(value, dict) else value
        for key, value in identity.items()
        if key != "seed"
    }


def identity_digest(identity: dict) -> str:
    """A short, stable name for an identity (8 hex digits)."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]
