"""Finding teacher and student run directories, and telling complete runs from incomplete ones.

A run directory holds ``config.yaml`` with a ``training`` section (variations folders hold one with
``diffusion`` instead); it is complete once ``summary.json`` and the checkpoint exist, which the run
writes last. The pipeline reuses a complete run whose config matches; ``collect_results.py`` counts
complete runs and lists the others.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from datasets.setting_keys import setting_keys
from models.checkpoint import CHECKPOINT_NAME
from training.checkpoints import saved_states
from training.run_directory import CONFIG_NAME, METRICS_NAME, SUMMARY_NAME

# Keys that decide how a run is carried out, not what it computes: a run that differs only here is reused.
RUNTIME_KEYS = {
    ("wandb",),
    ("rtpt",),
    ("training", "save_path"),
    ("training", "dataloader_num_workers"),
    ("training", "device"),
    ("training", "compile"),
    ("training", "channels_last"),
    ("training", "eval_every"),
    ("training", "keep_checkpoints"),  # how many per-epoch states stay for --resume
}
SKIPPED_FOLDERS = {"wandb", "__pycache__"}  # never hold run directories; can be large


def read_yaml_file(path: Path) -> dict | None:
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def is_training_run(folder: Path) -> bool:
    config = read_yaml_file(folder / CONFIG_NAME)
    return config is not None and "training" in config


def is_complete(run_dir: Path) -> bool:
    return (run_dir / SUMMARY_NAME).is_file() and (run_dir / CHECKPOINT_NAME).is_file()


def _without_runtime_keys(data: dict, prefix: tuple = ()) -> dict:
    return {
        key: _without_runtime_keys(value, (*prefix, key)) if isinstance(value, dict) else value
        for key, value in data.items()
        if (*prefix, key) not in RUNTIME_KEYS
    }


def find_complete_run(cfg) -> Path | None:
    """The newest complete run in ``cfg.training.save_path`` made with ``cfg`` (runtime keys aside)."""
    folder = Path(cfg.training.save_path)
    wanted = _without_runtime_keys(cfg.to_dict())
    complete = [path for path in folder.iterdir() if is_complete(path)] if folder.is_dir() else []
    for run_dir in sorted(complete, key=lambda path: (path / SUMMARY_NAME).stat().st_mtime, reverse=True):
        saved = read_yaml_file(run_dir / CONFIG_NAME)
        if saved is not None and _without_runtime_keys(saved) == wanted:
            return run_dir
    return None


def find_stopped_run(cfg) -> Path | None:
    """The newest incomplete run in ``cfg.training.save_path`` made with ``cfg`` that saved an epoch to go on from."""
    folder = Path(cfg.training.save_path)
    wanted = _without_runtime_keys(cfg.to_dict())
    runs = folder.iterdir() if folder.is_dir() else []
    stopped = [path for path in runs if not is_complete(path) and saved_states(path)]
    for run_dir in sorted(stopped, key=lambda path: saved_states(path)[-1].stat().st_mtime, reverse=True):
        saved = read_yaml_file(run_dir / CONFIG_NAME)
        if saved is not None and _without_runtime_keys(saved) == wanted:
            return run_dir
    return None


@dataclass
class FoundRun:
    """A run directory as ``collect_results.py`` sees it."""

    run_dir: Path
    config: dict
    summary: dict | None  # None: the run is incomplete
    keys: dict  # the setting keys (attack, rate, role, seed...)
    note: str = ""  # why it is not counted
    metrics: dict = field(default_factory=dict)  # clean_accuracy, attack_success_rate, robust_accuracy, der

    @property
    def complete(self) -> bool:
        return self.summary is not None and not self.note


def _epochs_done(run_dir: Path) -> int:
    try:
        return sum(1 for line in (run_dir / METRICS_NAME).read_text().splitlines() if line.strip())
    except OSError:
        return 0


def read_run(run_dir: Path) -> FoundRun:
    config = read_yaml_file(run_dir / CONFIG_NAME) or {}
    job_type = "student" if "distillation" in config else "teacher"
    summary = None
    if is_complete(run_dir):
        try:
            summary = json.loads((run_dir / SUMMARY_NAME).read_text())
        except (OSError, json.JSONDecodeError):
            summary = None
    keys = (summary or {}).get("setting") or setting_keys(config, job_type)
    run = FoundRun(run_dir, config, summary, keys)
    if summary is None:
        epochs = (config.get("training") or {}).get("num_epochs", "?")
        run.note = f"incomplete: no summary.json or checkpoint ({_epochs_done(run_dir)}/{epochs} epochs logged)"
        return run
    scores = summary.get("student", summary) if job_type == "student" else summary
    names = ("clean_accuracy", "attack_success_rate", "robust_accuracy")
    run.metrics = {name: scores.get(name) for name in names} | {"der": summary.get("der")}
    return run


def find_runs(paths: list[Path]) -> list[FoundRun]:
    """Every teacher and student run directory under ``paths`` (not descending into run or variation folders)."""
    found = []
    for root in paths:
        for folder, subfolders, files in os.walk(root):
            here = Path(folder)
            if CONFIG_NAME in files:
                subfolders.clear()  # a run directory or a variations folder: nothing below is a run
                if is_training_run(here):
                    found.append(read_run(here))
            else:
                subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
    return sorted(found, key=lambda run: str(run.run_dir))
