"""Atomic file writes: write to a temporary file beside the target, then rename over it.

A run killed at any point leaves either the old file, the complete new file, or a stray ``*.tmp-*`` file that
readers ignore, never a truncated output.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

from utils.errors import PathError, is_environment_error

log = logging.getLogger(__name__)

TEMP_MARKER = ".tmp-"


def _process_umask() -> int:
    mask = os.umask(0)  # reading the umask means setting it: done once, before any writer thread exists
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_process_umask()  # what open() would give: mkstemp's private 0600 is not wanted here
FOLDER_MODE = 0o777 & ~_process_umask()  # what mkdir() would give (mkdtemp's is 0700)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it is fsynced and renamed onto ``path``.

    Errors of the disk (full, permissions, a file in the way) become a :class:`PathError` naming ``path``.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f"{target.name}{TEMP_MARKER}")
    except OSError as err:
        if is_environment_error(err):
            raise PathError(target, err, "cannot write") from err
        raise
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        tmp.chmod(FILE_MODE)
        tmp.replace(target)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if is_environment_error(err):
            raise PathError(target, err, "cannot write") from err
        raise


def _fsync(path: Path) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary folder beside ``path``; on success its files are fsynced and it is renamed onto ``path``.

    Readers see the old folder or the complete new one. A folder already at ``path`` (left by an earlier attempt
    at the same name) is replaced.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f"{target.name}{TEMP_MARKER}"))
    try:
        yield tmp
        for file in tmp.iterdir():
            _fsync(file)
        tmp.chmod(FOLDER_MODE)
        if target.exists():
            shutil.rmtree(target)
        tmp.rename(target)
        _fsync(target.parent)  # the rename itself survives a crash
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _finite(value: Any, where: str, found: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        found.append(where or "(the value)")
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{where}.{k}" if where else str(k), found) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v, f"{where}.{i}" if where else str(i), found) for i, v in enumerate(value)]
    return value


def json_text(obj: Any, source: str | os.PathLike, **dumps_options) -> str:
    """``obj`` as JSON proper: NaN and ±Infinity (which ``json.dumps`` writes bare, and strict readers refuse)
    become ``null``, and a warning names their keys and ``source`` (the file they go to)."""
    found: list[str] = []
    clean = _finite(obj, "", found)
    if found:
        log.warning("%s: not a finite number, written as null: %s", source, ", ".join(found))
    return json.dumps(clean, allow_nan=False, **dumps_options)


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json_text(obj, path, indent=2, sort_keys=False) + "\n")


def atomic_write_yaml(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, yaml.safe_dump(obj, sort_keys=False, default_flow_style=None))


def atomic_write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """An H×W×3 uint8 image as PNG (format given explicitly: the temporary name has no extension)."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")


def is_temporary(path: str | os.PathLike) -> bool:
    """True for the leftovers of an interrupted :func:`atomic_path` (to be skipped or cleaned up)."""
    return TEMP_MARKER in Path(path).name
