"""Reading YAML config files, merged over the chain of files their ``base:`` keys name."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from utils.errors import UserError

BASE_KEY = "base"  # a config may name other files (relative to itself) whose values it extends, in order


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
    """A config file merged over the files its ``base:`` key names (one path, or a list merged left to right)."""
    path = Path(path)
    if path.resolve() in _seen:
        raise UserError(f"{path}: 'base' files form a cycle ({' -> '.join(str(p) for p in (*_seen, path))})")
    data = read_yaml(path)
    base = data.pop(BASE_KEY, None)
    bases = [base] if isinstance(base, str) else base
    if base is None:
        return data
    if not isinstance(bases, list) or not all(isinstance(b, str) for b in bases):
        raise UserError(f"{path}: base must be the path of another config file, or a list of them")
    merged: dict = {}
    for name in bases:
        merged = deep_merge(merged, read_layered_yaml(path.parent / name, (*_seen, path.resolve())))
    return deep_merge(merged, data)
