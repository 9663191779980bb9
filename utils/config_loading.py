"""Load a YAML config, apply ``--set key.path=value`` overrides, validate, and save the resolved result."""

from __future__ import annotations

import logging
import os
import types
import typing
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from utils.atomic_io import atomic_write_yaml
from utils.errors import UserError

log = logging.getLogger(__name__)


def read_yaml(path: str | os.PathLike) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}") from err
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise UserError(f"{path}{line}: not valid YAML: {getattr(err, 'problem', err)}") from err
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: the top level must be a mapping of keys, not {type(data).__name__}")
    return data


BASE_KEY = "base"  # a config may name another file (relative to itself) whose values it extends


def deep_merge(base: dict, update: dict) -> dict:
    """``update`` over ``base``, recursively for nested mappings (a ``null`` in ``update`` clears a key)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def read_layered_yaml(path: str | os.PathLike, _seen: tuple[Path, ...] = ()) -> dict:
    """A config file merged over the chain of files its ``base:`` keys name."""
    path = Path(path)
    if path.resolve() in _seen:
        raise UserError(f"{path}: 'base' files form a cycle ({' -> '.join(str(p) for p in (*_seen, path))})")
    data = read_yaml(path)
    base = data.pop(BASE_KEY, None)
    if base is None:
        return data
    if not isinstance(base, str):
        raise UserError(f"{path}: base must be the path of another config file")
    return deep_merge(read_layered_yaml(path.parent / base, (*_seen, path.resolve())), data)


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


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside an annotation such as ``ModelSection | None``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        for arg in typing.get_args(annotation):
            found = _section_model(arg)
            if found is not None:
                return found
    return None


def _keys_at(schema: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed in the section at ``loc`` (for 'unknown key' messages)."""
    model = schema
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        nested = _section_model(field.annotation) if field else None
        if nested is None:
            break
        model = nested
    return list(model.model_fields)


def describe_validation_error(schema: type[BaseModel], err: ValidationError) -> str:
    """One line for the first error: key path, what is wrong, what was given."""
    first = err.errors()[0]
    loc = tuple(part for part in first["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    path = ".".join(str(part) for part in loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        allowed = ", ".join(_keys_at(schema, loc[:-1]))
        message = f"unknown key; allowed here: {allowed}"
    elif kind == "missing":
        message = "required key is missing"
    else:
        message = first["msg"].removeprefix("Value error, ")
        if kind not in ("value_error", "assertion_error") and "input" in first:
            given = repr(first["input"])
            message += f" (got {given[:80]})"
    more = len(err.errors()) - 1
    suffix = f" [and {more} more error{'s' if more > 1 else ''}]" if more else ""
    return f"{path}: {message}{suffix}" if path else f"{message}{suffix}"


def validate_config(schema: type[BaseModel], data: dict, source: str = "config") -> BaseModel:
    try:
        config = schema.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{source}: {describe_validation_error(schema, err)}") from err
    if getattr(config, "rtpt", None) is not None:
        log.warning("%s: the 'rtpt' block is ignored (progress is shown by progress bars)", source)
    return config


def load_config(schema: type[BaseModel], path: str | os.PathLike, overrides: list[str] = ()) -> BaseModel:
    """Defaults ← base file(s) ← YAML file ← overrides, validated against ``schema``."""
    data = read_layered_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    return validate_config(schema, data, source=str(path))


def config_to_dict(config: BaseModel) -> dict:
    """The resolved config as plain YAML-able data (reference key names; unset optional blocks dropped)."""
    return config.model_dump(mode="json", exclude_none=True)


def save_config(config: BaseModel, path: str | os.PathLike) -> None:
    atomic_write_yaml(path, config_to_dict(config))
