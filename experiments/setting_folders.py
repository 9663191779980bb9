"""Which folder a setting, and each variation config within it, goes to: a changed config never shares one.

A setting's folder is named after the teacher (``setting_name``: dataset, attack, rate, target type, seed), a
variation config's folder inside it after its backend. That name goes to the first config that uses it; the
folder records which one (the teacher runs' and the variations' ``config.yaml``). Another config that the name
does not tell apart (a 5-pixel trigger, a second ``strength``) gets a folder of its own beside it: the name,
a hyphen, and what differs (``-trigger_size5``, ``-strength0.25``), or an 8-digit hash of its identity when
that would not make a short, plain name. A config always finds the folder that records it, so re-running
it reuses its finished steps, and folders made before this rule existed are found as they are.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Callable
from pathlib import Path

from datasets.setting_keys import CONFIG_NAME, identity_digest, leaves, variations_identity, without_runtime_keys
from experiments.run_discovery import read_yaml_file
from utils.atomic_io import is_temporary
from utils.errors import UserError
from utils.folder_lock import is_lock_file

PLAIN_VALUE = re.compile(r"[A-Za-z0-9_.+]{1,24}")  # values shown in a folder name as they are
MAX_SUFFIX = 48  # characters; a longer description becomes a hash


UNKNOWN: dict = {"made with": "a config no longer recorded"}  # never equal to a config's identity


def _holds_files(folder: Path) -> bool:
    """Outputs, not just the lock or temporary file of a job killed before it wrote its config."""
    files = (path for path in folder.rglob("*") if path.is_file()) if folder.is_dir() else ()
    return any(not (is_lock_file(path) or is_temporary(path)) for path in files)


def teacher_identities(setting: Path) -> list[dict]:
    """The identities of the teacher runs a setting folder holds (finished or not); ``[UNKNOWN]`` when it
    holds outputs but no teacher config (its teacher runs were deleted): it is not free for another config."""
    runs = sorted((setting / "teacher").iterdir()) if (setting / "teacher").is_dir() else []
    configs = [read_yaml_file(run / CONFIG_NAME) for run in runs]
    found = [without_runtime_keys(config) for config in configs if config is not None]
    return found or ([UNKNOWN] if _holds_files(setting) else [])


def variations_identities(variant: Path) -> list[dict]:
    """The identity of the variations a variation config's folder holds (none if it holds nothing yet;
    ``[UNKNOWN]`` if it holds a student but its variations' config is gone)."""
    config = read_yaml_file(variant / "variations" / CONFIG_NAME)
    if config is not None:
        return [variations_identity(config)]
    return [UNKNOWN] if _holds_files(variant) else []


def _shown(value) -> str | None:
    if isinstance(value, bool):
        return str(value).lower()
    text = f"{value:g}" if isinstance(value, float) else str(value) if isinstance(value, int | str) else ""
    return text if PLAIN_VALUE.fullmatch(text) else None


def difference_name(recorded: dict, wanted: dict) -> str:
    """``trigger_size5-strength0.25``: each key that differs (its last part) with the wanted value; the
    identity's hash where a value is not plain or the name would be long."""
    old, new = leaves(recorded), leaves(wanted)
    parts = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            shown = _shown(new.get(key))
            if shown is None:
                return identity_digest(wanted)
            parts.append(key.rsplit(".", 1)[-1] + shown)
    name = "-".join(parts)
    return name if 0 < len(name) <= MAX_SUFFIX else identity_digest(wanted)


def place(parent: Path, name: str, wanted: dict, recorded: Callable[[Path], list[dict]], what: str) -> Path:
    """The folder under ``parent`` for the config whose identity is ``wanted``: the one that records it, else
    ``name`` if it records nothing yet, else ``name-<what differs>`` (``name-<hash>`` if that one is taken)."""
    primary = parent / name
    others = sorted(path for path in parent.glob(glob.escape(name) + "-*") if path.is_dir())
    for folder in [primary, *others]:
        if wanted in recorded(folder):
            return folder
    taken = recorded(primary)
    if not taken:
        return primary
    for suffix in dict.fromkeys([difference_name(taken[0], wanted), identity_digest(wanted)]):
        folder = parent / f"{name}-{suffix}"
        if not recorded(folder):
            return folder
    raise UserError(
        f"{parent / name}-{identity_digest(wanted)} holds {what} made with another config; use another --out"
    )
