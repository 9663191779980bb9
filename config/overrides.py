"""Overrides of config values: ``--set a.b.c=value``, or ``a.b.c=value`` and ``--a.b.c=value`` the way sweep
tools pass them (W&B's ``${args_no_hyphens}`` and ``${args}``). Values are parsed as YAML."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from config.errors import section_models
from config.yaml_files import parse_yaml
from utils.errors import UserError


def parse_override(assignment: str) -> tuple[list[str], Any]:
    """``a.b.c=value`` → (``[a, b, c]``, the value parsed as in config files: ``5`` → int, ``1e-4`` → float,
    ``[1, 2]`` → list)."""
    key_path, sep, raw = assignment.partition("=")
    keys = key_path.strip().split(".")
    if not sep or not all(keys):
        raise UserError(f"--set {assignment!r}: expected key.path=value, e.g. training.num_epochs=5")
    value = parse_yaml(raw, f"--set {assignment!r}") if raw.strip() else None
    return keys, value


def set_value(data: dict, keys: list[str], value: Any, source: str) -> None:
    """``data[k1][k2]...[kn] = value``, creating sections on the way; ``source`` names the override in errors."""
    node = data
    for depth, key in enumerate(keys[:-1]):
        child = node.get(key)
        if child is None:
            child = node[key] = {}
        if not isinstance(child, dict):
            prefix = ".".join(keys[: depth + 1])
            raise UserError(f"{source}: {prefix} holds a value, not a section")
        node = child
    node[keys[-1]] = value


def apply_override(data: dict, assignment: str) -> None:
    """Set ``a.b.c=value`` in ``data``."""
    keys, value = parse_override(assignment)
    set_value(data, keys, value, f"--set {assignment!r}")


def overrides_from_arguments(words: list[str]) -> list[str]:
    """Command-line words that are no flag of the script, as overrides: ``key=value`` or ``--key=value``."""
    overrides = []
    for word in words:
        assignment = word.removeprefix("--")
        key = assignment.partition("=")[0]
        if "=" not in assignment or not key or key.startswith("-") or " " in key:
            raise UserError(
                f"unrecognized argument {word!r}: config overrides are key.path=value, --key.path=value or "
                "--set key.path=value"
            )
        overrides.append(assignment)
    return overrides


def has_key_path(schema: type[BaseModel], keys: list[str]) -> bool:
    """Whether a config of ``schema`` has the key ``keys`` (inside free-form mappings any key counts)."""
    field = schema.model_fields.get(keys[0])
    if field is None:
        return False
    members = [model for _, model in section_models(field.annotation)]
    if len(keys) == 1 or not members:
        return True
    return any(has_key_path(member, keys[1:]) for member in members)
