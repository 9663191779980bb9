"""Command-line overrides of config values: ``--set a.b.c=value`` (the value parsed as YAML)."""

from __future__ import annotations

import yaml

from utils.errors import UserError


def apply_override(data: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in ``data``; the value is parsed as YAML (``5`` → int, ``[1, 2]`` → list)."""
    key_path, sep, raw = assignment.partition("=")
    keys = key_path.strip().split(".")
    if not sep or not all(keys):
        raise UserError(f"--set {assignment!r}: expected key.path=value, e.g. training.num_epochs=5")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        raise UserError(f"--set {assignment!r}: the value is not valid YAML: {err}") from err
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            prefix = ".".join(keys[: depth + 1])
            raise UserError(f"--set {assignment!r}: {prefix} holds a value, not a section")
        node = child
    node[keys[-1]] = value
