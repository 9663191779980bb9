"""What one pipeline run is made of: the three step configs, where settings go, and the overrides.

An experiment file names the configs (relative to itself) and shared overrides; the command line can name
the configs instead, or replace the file's choices, and adds its own overrides after the file's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from config.loading import validate_config
from config.overrides import parse_override
from config.yaml_files import read_layered_yaml
from datasets.setting_keys import STEPS
from utils.errors import UserError
from utils.section import Section


class ExperimentFile(Section):
    """``run_pipeline.py -c experiment.yaml``."""

    teacher: Path | None = None  # teacher config, relative to this file
    variations: Path | None = None  # generate_variations.py config, relative to this file
    student: Path | None = None  # student config, relative to this file
    output: Path = Path("results/experiments")  # each setting's runs go to <output>/<setting>/ (relative to cwd)
    clean_student: bool = False  # also distil a student on the clean training images (the upper bound)
    detection: bool = False  # score every training image for poison from its variations (--detect)
    cleaned_student: Literal["drop", "relabel"] | None = None  # also a student without / relabelling the flagged
    overrides: dict[str, Any] = Field(default_factory=dict)  # key.path: value, before the command line's


@dataclass(frozen=True)
class Override:
    keys: tuple[str, ...]  # e.g. ("training", "num_epochs"); may start with a step name
    value: Any
    source: str  # how the user wrote it, for error messages


@dataclass(frozen=True)
class ExperimentSpec:
    configs: dict[str, Path]  # step name → config file
    output: Path
    clean_student: bool = False
    overrides: list[Override] = field(default_factory=list)
    detection: bool = False
    cleaned_student: str | None = None  # drop | relabel


@dataclass(frozen=True)
class CommandLine:
    """The choices ``run_pipeline.py`` takes from the command line (each may replace the file's)."""

    experiment: Path | None = None
    configs: dict[str, Path | None] = field(default_factory=dict)
    output: Path | None = None
    clean_student: bool = False
    overrides: list[str] = field(default_factory=list)
    detection: bool = False
    cleaned_student: str | None = None


def experiment_spec(command: CommandLine) -> ExperimentSpec:
    """Merge the experiment file (if any) and the command line; every step must end up with a config."""
    file = ExperimentFile()
    if command.experiment is not None:
        file = validate_config(ExperimentFile, read_layered_yaml(command.experiment), str(command.experiment))
    here = command.experiment.parent if command.experiment is not None else Path()
    configs = {}
    for step in STEPS:
        path = command.configs.get(step) or (here / getattr(file, step) if getattr(file, step) else None)
        if path is None:
            raise UserError(f"no {step} config: name it in the experiment file ({step}: ...) or with --{step}")
        if not Path(path).is_file():
            raise UserError(f"{step} config not found: {path}")
        configs[step] = Path(path)
    from_file = [Override(tuple(key.split(".")), value, f"overrides: {key}") for key, value in file.overrides.items()]
    from_command = []
    for assignment in command.overrides:
        keys, value = parse_override(assignment)
        from_command.append(Override(tuple(keys), value, repr(assignment)))
    return ExperimentSpec(
        configs=configs,
        output=command.output or file.output,
        clean_student=command.clean_student or file.clean_student,
        overrides=[*from_file, *from_command],
        detection=command.detection or file.detection,
        cleaned_student=command.cleaned_student or file.cleaned_student,
    )
