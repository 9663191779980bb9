"""Runs grouped by setting, with the mean, sample standard deviation and count of each metric over seeds.

A group key is a setting key (``attack``, ``poisoning_rate``, ``role``...) or a dotted config path
(``training.num_epochs``; for a student also ``teacher.…`` and ``variations.…``, the configs of its teacher and
of its variations). Only complete runs are counted; when two complete runs computed the same thing with the
same seed (the same identity, see ``datasets.setting_keys``), the newer counts and the older is listed as
superseded, never averaged in twice. Runs of different settings are never averaged by the default grouping:
the config keys that tell them apart become group keys of their own (``distinguishing_keys``).
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

from datasets.setting_keys import DEFAULT_GROUP_BY, leaves, without_seeds
from experiments.run_discovery import FoundRun
from training.run_directory import SUMMARY_NAME
from utils.errors import UserError

METRICS = ("clean_accuracy", "attack_success_rate", "robust_accuracy", "der")
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


def _hashable(value):
    return json.dumps(value, sort_keys=True, default=str) if isinstance(value, dict | list) else value


def _at_path(config: dict, key: str):
    node = config
    for part in key.split("."):
        node = node.get(part) if isinstance(node, dict) else None
    return node


def run_value(run: FoundRun, key: str):
    """A setting key, else the value at a dotted path of the run's identity or config (None if absent)."""
    if key in run.keys:
        return run.keys[key]
    value = _at_path(run.identity, key)
    return _hashable(value if value is not None else _at_path(run.config, key))


MODEL_KEYS = ("role", "variation_backend")  # within a setting: teacher, then students by backend


def _sort_value(value) -> tuple:
    if value is None:
        return (2, 0, "")
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def _sort_key(keys: dict) -> tuple:
    """Settings in order; within one, the teacher, then students by backend and variation settings."""
    setting = tuple(_sort_value(v) for k, v in keys.items() if k not in MODEL_KEYS and not k.startswith("variations."))
    variation = tuple(_sort_value(v) for k, v in keys.items() if k.startswith("variations."))
    role = keys.get("role")
    rank = ROLE_ORDER.index(role) if role in ROLE_ORDER else len(ROLE_ORDER)
    return (*setting, rank, _sort_value(keys.get("variation_backend")), *variation)


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
    """Of complete runs that computed the same thing (the same identity, seed included), keep the newest (by
    ``summary.json``); note the others.

    The group keys count too: grouping more coarsely (``attack,role``) averages settings together, but runs of
    two rates, backends, triggers or data folders are still two settings, not a re-run."""
    keys = tuple(dict.fromkeys([*DEFAULT_GROUP_BY, *group_by, "seed"]))
    newest: dict[tuple, FoundRun] = {}
    for run in sorted((r for r in runs if r.complete), key=lambda r: (r.run_dir / SUMMARY_NAME).stat().st_mtime):
        slot = (*group_of(run, keys), json.dumps(run.identity, sort_keys=True, default=str))
        if slot in newest:
            newest[slot].note = f"superseded by {run.run_dir} (same setting and seed)"
        newest[slot] = run


def _preference(key: str) -> tuple:
    """A run's own keys label a row best, then its variations', then its teacher's; shorter first."""
    source = 1 if key.startswith("variations.") else 2 if key.startswith("teacher.") else 0
    return (source, key.count("."), key)


def distinguishing_keys(runs: list[FoundRun], group_by: tuple[str, ...]) -> tuple[str, ...]:
    """The dotted config keys that tell apart complete runs ``group_by`` alone would put in one group, seeds
    aside (``backdoor.clean_label``, ``variations.diffusion.strength``...): a key is taken only if it splits a
    group that the keys taken before it leave whole, so a student's ``teacher.…`` copy of its own key is not."""
    flats = {id(run): leaves(without_seeds(run.identity)) for run in runs if run.complete}
    complete = [run for run in runs if run.complete]
    candidates = {key for flat in flats.values() for key in flat}
    chosen: list[str] = []
    for key in sorted(candidates - set(group_by), key=_preference):
        groups: dict[tuple, set] = {}
        for run in complete:
            slot = (*group_of(run, group_by), *(_hashable(flats[id(run)].get(k)) for k in chosen))
            groups.setdefault(slot, set()).add(_hashable(flats[id(run)].get(key)))
        if any(len(values) > 1 for values in groups.values()):
            chosen.append(key)
    return tuple(chosen)


def with_distinguishing_keys(runs: list[FoundRun], group_by: tuple[str, ...]) -> tuple[str, ...]:
    """``group_by`` with the distinguishing keys put before the model keys (backend, role)."""
    extra = distinguishing_keys(runs, group_by)
    setting = [key for key in group_by if key not in MODEL_KEYS]
    return (*setting, *extra, *(key for key in group_by if key in MODEL_KEYS))


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
