"""Finding teacher and student run directories, and telling complete runs from incomplete ones.

A run directory holds ``config.yaml`` with a ``training`` section (variations folders hold one with
``diffusion`` instead); it is complete once ``summary.json`` and the checkpoint exist, which the run
writes last. The pipeline reuses a complete run whose config matches; ``collect_results.py`` counts
complete runs and lists the others.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from datasets.setting_keys import CONFIG_NAME, run_identity, setting_keys, without_runtime_keys
from models.checkpoint import CHECKPOINT_NAME
from training.run_directory import METRICS_NAME, SUMMARY_NAME, saved_states

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


def find_complete_run(cfg) -> Path | None:
    """The newest complete run in ``cfg.training.save_path`` made with ``cfg`` (runtime keys aside)."""
    folder = Path(cfg.training.save_path)
    wanted = without_runtime_keys(cfg.to_dict())
    complete = [path for path in folder.iterdir() if is_complete(path)] if folder.is_dir() else []
    for run_dir in sorted(complete, key=lambda path: (path / SUMMARY_NAME).stat().st_mtime, reverse=True):
        saved = read_yaml_file(run_dir / CONFIG_NAME)
        if saved is not None and without_runtime_keys(saved) == wanted:
            return run_dir
    return None


def find_stopped_run(cfg) -> Path | None:
    """The newest incomplete run in ``cfg.training.save_path`` made with ``cfg`` that saved an epoch to go on from."""
    folder = Path(cfg.training.save_path)
    wanted = without_runtime_keys(cfg.to_dict())
    runs = folder.iterdir() if folder.is_dir() else []
    stopped = [path for path in runs if not is_complete(path) and saved_states(path)]
    for run_dir in sorted(stopped, key=lambda path: saved_states(path)[-1].stat().st_mtime, reverse=True):
        saved = read_yaml_file(run_dir / CONFIG_NAME)
        if saved is not None and without_runtime_keys(saved) == wanted:
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
    identity: dict = field(default_factory=dict)  # what the run computed, see datasets.setting_keys.run_identity

    @property
    def complete(self) -> bool:
        return self.summary is not None and not self.note


def _epochs_done(run_dir: Path) -> int:
    try:
        return sum(1 for line in (run_dir / METRICS_NAME).read_text().splitlines() if line.strip())
    except (OSError, UnicodeDecodeError):
        return 0


def read_summary(path: Path) -> dict:
    """The parsed ``summary.json``; ValueError with the reason when it cannot count."""
    try:
        summary = json.loads(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError as err:
        raise ValueError(f"{SUMMARY_NAME} is not UTF-8 text (byte {err.start})") from err
    except json.JSONDecodeError as err:
        raise ValueError(f"{SUMMARY_NAME} is not valid JSON ({err.msg}, line {err.lineno})") from err
    except RecursionError as err:
        raise ValueError(f"{SUMMARY_NAME} is nested too deeply") from err
    if not isinstance(summary, dict):
        raise ValueError(f"{SUMMARY_NAME} is not a JSON object but a {type(summary).__name__}")
    return summary


def _metric(scores: dict, name: str, fraction: bool = True) -> float | None:
    value = scores.get(name)
    if value is None:
        return None
    finite = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not finite or (fraction and not 0 <= value <= 1):
        allowed = "a number in [0, 1]" if fraction else "a finite number"
        raise ValueError(f"{SUMMARY_NAME}: {name} is {value!r}, not {allowed}")
    return float(value)


def _scores(summary: dict, job_type: str) -> dict:
    scores = summary.get("student", summary) if job_type == "student" else summary
    if not isinstance(scores, dict):
        raise ValueError(f"{SUMMARY_NAME}: 'student' is not a JSON object")
    names = ("clean_accuracy", "attack_success_rate", "robust_accuracy")
    return {name: _metric(scores, name) for name in names} | {"der": _metric(summary, "der", fraction=False)}


def read_run(run_dir: Path) -> FoundRun:
    config = read_yaml_file(run_dir / CONFIG_NAME) or {}
    job_type = "student" if "distillation" in config else "teacher"
    run = FoundRun(run_dir, config, None, setting_keys(config, job_type), identity=run_identity(config, job_type))
    if not is_complete(run_dir):
        epochs = (config.get("training") or {}).get("num_epochs", "?")
        run.note = f"incomplete: no summary.json or checkpoint ({_epochs_done(run_dir)}/{epochs} epochs logged)"
        return run
    try:
        summary = read_summary(run_dir / SUMMARY_NAME)
        run.metrics = _scores(summary, job_type)
    except (OSError, ValueError) as err:
        run.summary, run.note = {}, f"not counted: {err}"
        return run
    run.summary = summary
    logged = summary.get("setting")
    if isinstance(logged, dict) and all(isinstance(v, str | int | float | bool | None) for v in logged.values()):
        run.keys = logged  # the keys the run logged (older runs: from the config)
    return run


def _walked(root: Path):
    """``os.walk`` that follows symlinked folders, each real folder once (a link cycle ends)."""
    seen: set[str] = set()
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders.clear()
            continue
        seen.add(real)
        yield folder, subfolders, files


def find_runs(paths: list[Path]) -> list[FoundRun]:
    """Every teacher and student run directory under ``paths`` (not descending into run or variation folders);
    symlinked folders are followed, and a run reached by two paths is found once."""
    found: dict[str, FoundRun] = {}
    for root in paths:
        for folder, subfolders, files in _walked(root):
            here = Path(folder)
            if CONFIG_NAME in files:
                subfolders.clear()  # a run directory or a variations folder: nothing below is a run
                if is_training_run(here) and os.path.realpath(here) not in found:
                    found[os.path.realpath(here)] = read_run(here)
            else:
                subfolders[:] = sorted(name for name in subfolders if name not in SKIPPED_FOLDERS)
    return sorted(found.values(), key=lambda run: str(run.run_dir))
