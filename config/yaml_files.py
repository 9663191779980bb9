"""Reading YAML config files, merged over the chain of files their ``base:`` keys name.

Numbers read as YAML 1.2 reads them (``1e-4`` is a float; PyYAML's YAML 1.1 makes it a string), and a
document whose aliases would expand past :data:`MAX_VALUES` values (a "billion laughs" file) is refused
before it is built, wherever in the file the aliases are.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import yaml

from utils.errors import UserError

BASE_KEY = "base"  # a config may name other files (relative to itself) whose values it extends, in order
MAX_VALUES = 100_000  # scalars, lists and mappings once aliases are expanded; real configs have a few hundred


class ConfigLoader(yaml.SafeLoader):
    """PyYAML's safe loader (no Python tags) with YAML 1.2's floats: ``1e-4``, ``1E5``, ``2.5e3``."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values ``node`` stands for with every alias expanded (each shared node is counted once)."""
    if id(node) in sizes:
        return sizes[id(node)]
    if id(node) in open_nodes:
        raise ValueError("an alias refers to a list or mapping that contains it")
    open_nodes.add(id(node))
    children = node.value if isinstance(node, yaml.SequenceNode) else []
    if isinstance(node, yaml.MappingNode):
        children = [part for pair in node.value for part in pair]
    size = 1 + sum(_expanded_size(child, sizes, open_nodes) for child in children)
    open_nodes.discard(id(node))
    sizes[id(node)] = size
    return size


def parse_yaml(text: str, source: str):
    """The YAML document in ``text``; errors name ``source`` (a file, or the ``--set`` option)."""
    loader = ConfigLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        size = _expanded_size(node, {}, set())
        if size > MAX_VALUES:
            raise UserError(f"{source}: its aliases expand to {size} values (at most {MAX_VALUES}); refusing it")
        return loader.construct_document(node)
    except yaml.YAMLError as err:
        where = getattr(err, "problem_mark", None)
        line = f" (line {where.line + 1})" if where else ""
        raise UserError(f"{source}{line}: not valid YAML: {getattr(err, 'problem', err)}") from err
    except ValueError as err:
        raise UserError(f"{source}: not a usable YAML document: {err}") from err
    except RecursionError as err:
        raise UserError(f"{source}: not a usable YAML document: nested too deeply") from err
    finally:
        loader.dispose()


def read_yaml(path: str | os.PathLike) -> dict:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise UserError(f"cannot read config file {path}: {err.strerror or err}") from err
    except UnicodeDecodeError as err:
        raise UserError(f"cannot read config file {path}: not UTF-8 text ({err.reason})") from err
    data = parse_yaml(text, str(path))
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
