"""Keeping what a script writes apart from what it reads: an output folder inside its input folder would be read
as data (and a class called ``out`` appears), an input inside an output is at the mercy of whatever replaces the
output. Paths are compared with their links resolved, so a link cannot hide either case."""

from __future__ import annotations

import os
from pathlib import Path

from utils.errors import UserError


def _real(path: str | os.PathLike) -> Path:
    return Path(os.path.realpath(Path(path).expanduser()))  # links resolved as far as the path exists


def _within(inner: Path, outer: Path) -> bool:
    return inner == outer or outer in inner.parents


def check_apart(output_key: str, output: str | os.PathLike, inputs: dict[str, str | os.PathLike], both_ways=True):
    """Refuse ``output`` inside one of ``inputs`` (key → folder) and, with ``both_ways``, an input inside ``output``.

    ``both_ways=False`` for outputs that only ever add new folders (a run directory per run): data kept under
    them is safe."""
    real_output = _real(output)
    for key, folder in inputs.items():
        real_input = _real(folder)
        if real_output == real_input:
            raise UserError(
                f"{output_key}: {output} and {key} ({folder}) are the same folder; write the outputs elsewhere"
            )
        if _within(real_output, real_input):
            raise UserError(
                f"{output_key}: {output} is inside {key} ({folder}): what is written there would be read as data; "
                f"choose a folder outside {key}"
            )
        if both_ways and _within(real_input, real_output):
            raise UserError(
                f"{output_key}: {output} holds {key} ({folder}): the data would be mixed with the outputs; "
                "choose a folder that does not contain it"
            )
