"""Command-line overrides of config values: ``--set a.b.c=value`` (the value parsed as YAML)."""

from __future__ import annotations

from config.yaml_files import parse_yaml
from utils.errors import UserError


def apply_override(data: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in ``data``; the value is parsed as in config files (``5`` → int, ``1e-4`` → float,
    ``[1, 2]`` → list)."""
    key_path, sep, raw = assignment.partition("=")
    keys = key_path.strip().split(".")
    if not sep or not all(keys):
        raise UserError(f"--set {assignment!r}: expected key.path=value, e.g. training.num_epochs=5")
    value = parse_yaml(raw, f"--set {assignment!r}") if raw.strip() else None
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
