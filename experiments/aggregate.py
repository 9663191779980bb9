"""Runs grouped by setting, with the mean, sample standard deviation and count of each metric over seeds.

A group key is a setting key (``attack``, ``poisoning_rate``, ``role``...) or a dotted config path
(``training.num_epochs``). Only complete runs are counted; when one setting has two complete runs with the
same seed, the newer counts and the older is listed as superseded, never averaged in twice.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from pathlib import Path

from experiments.run_discovery import FoundRun
from training.run_directory import SUMMARY_NAME
from utils.errors import UserError

METRICS = ("clean_accuracy", "attack_success_rate", "robust_accuracy", "der")
DEFAULT_GROUP_BY = (
    "dataset_name",
    "architecture",
    "attack",
    "poisoning_rate",
    "target_type",
    "variation_backend",
    "role",
)
ROLE_ORDER = ("teacher", "student", "cleaned_student", "clean_student")


@dataclass(frozen=True)
class Stat:
    mean: float
    std: float | None  # sample standard deviation (n − 1); None for a single run
    n: int


@dataclass
class Group:
    keys: dict  # group key → value
    runs: list[FoundRun]
    stats: dict[str, Stat | None]  # metric → statistics (None: no run has it, e.g. a teacher's DER)

    @property
    def seeds(self) -> list:
        return sorted(run.keys.get("seed") for run in self.runs)


def run_value(run: FoundRun, key: str):
    """A setting key, else the value at a dotted config path (None if absent)."""
    if key in run.keys:
        return run.keys[key]
    node = run.config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


MODEL_KEYS = ("role", "variation_backend")  # within a setting: teacher, then students by backend


def _sort_value(value) -> tuple:
    if value is None:
        return (2, 0, "")
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def _sort_key(keys: dict) -> tuple:
    setting = tuple(_sort_value(v) for k, v in keys.items() if k not in MODEL_KEYS)
    role = keys.get("role")
    rank = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return (*setting, rank, _sort_value(keys.get("variation_backend")))


def group_of(run: FoundRun, group_by: tuple[str, ...]) -> tuple:
    return tuple(run_value(run, key) for key in group_by)


def _has_path(config: dict, key: str) -> bool:
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def check_group_by(runs: list[FoundRun], group_by: tuple[str, ...]) -> None:
    """Every key is a setting key or a config path of some run: a misspelt key would make one group of all."""
    setting = list(dict.fromkeys([*DEFAULT_GROUP_BY, "seed", *(key for run in runs for key in run.keys)]))
    for key in group_by:
        if key not in setting and not any(_has_path(run.config, key) for run in runs):
            raise UserError(
                f"--group-by {key}: no such key; setting keys: {', '.join(setting)}, or a dotted config key "
                "of the runs (e.g. training.num_epochs)"
            )


def mark_superseded(runs: list[FoundRun], group_by: tuple[str, ...]) -> None:
    """Of complete runs sharing a setting and seed, keep the newest (by ``summary.json``); note the others.

    The setting is the default group keys as well as ``group_by``: grouping more coarsely (``attack,role``)
    averages settings together, but runs of two rates or backends are still two settings, not a re-run."""
    keys = tuple(dict.fromkeys([*DEFAULT_GROUP_BY, *group_by, "seed"]))
    newest: dict[tuple, FoundRun] = {}
    for run in sorted((r for r in runs if r.complete), key=lambda r: (r.run_dir / SUMMARY_NAME).stat().st_mtime):
        slot = group_of(run, keys)
        if slot in newest:
            newest[slot].note = f"superseded by {run.run_dir} (same setting and seed)"
        newest[slot] = run


def statistics_of(values: list[float]) -> Stat | None:
    values = [v for v in values if v is not None]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else None
    return Stat(statistics.fmean(values), std, len(values))


def aggregate(runs: list[FoundRun], group_by: tuple[str, ...]) -> list[Group]:
    """One group per distinct setting among the complete runs, sorted by the group keys."""
    groups: dict[tuple, list[FoundRun]] = {}
    for run in runs:
        if run.complete:
            groups.setdefault(group_of(run, group_by), []).append(run)
    ordered = sorted(groups, key=lambda values: _sort_key(dict(zip(group_by, values, strict=True))))
    return [
        Group(
            keys=dict(zip(group_by, values, strict=True)),
            runs=groups[values],
            stats={metric: statistics_of([run.metrics.get(metric) for run in groups[values]]) for metric in METRICS},
        )
        for values in ordered
    ]


def relative(path: Path) -> str:
    """A run's path as the user would type it (relative to the working directory when inside it)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
