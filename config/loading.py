"""Defaults ← ``base:`` files ← the YAML file ← overrides, validated against a schema."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from pydantic import BaseModel, ValidationError

from config.data_checks import check_data
from config.errors import describe_validation_errors
from config.overrides import apply_override, parse_override
from config.step_agreement import take_from_teacher
from config.yaml_files import read_layered_yaml
from datasets.setting_keys import CONFIG_NAME
from utils.errors import ConfigErrors, UserError

log = logging.getLogger(__name__)

LEADING_KEY = re.compile(r"[A-Za-z_]\w*(?:\.[\w-]+)*")  # the key path an error line starts with


def error_source(message: str, path: str | os.PathLike, overrides: list[str]) -> str:
    """What to blame for an error about the merged config: the override that set the key the message starts
    with (or a section around it, or a key inside it), else one the message names, else the config file."""
    match = LEADING_KEY.match(message)
    keys = match.group().split(".") if match else []
    by_key, named = None, None
    for assignment in overrides:
        override = parse_override(assignment)[0]
        if keys and (keys[: len(override)] == override or override[: len(keys)] == keys):
            by_key = assignment
        elif re.search(rf"(?<![\w.]){re.escape('.'.join(override))}(?![\w.])", message):
            named = assignment
    culprit = by_key or named
    return f"--set {culprit!r}" if culprit is not None else str(path)


def validate_config(
    schema: type[BaseModel], data: dict, source: str = "config", overrides: list[str] = ()
) -> BaseModel:
    """The config ``data`` (from ``source`` with ``overrides`` applied); errors blame the override at fault."""
    try:
        config = schema.model_validate(data)
    except ValidationError as err:
        lines = [
            f"{error_source(message, source, overrides)}: {message}"
            for message in describe_validation_errors(schema, err)
        ]
        raise ConfigErrors(lines) from err
    if getattr(config, "rtpt", None) is not None:
        log.warning("%s: the 'rtpt' block is ignored (progress is shown by progress bars)", source)
    return config


def load_config(schema: type[BaseModel], path: str | os.PathLike, overrides: list[str] = ()) -> BaseModel:
    """The validated config; checks against the data on disk are a separate step (``config.data_checks``)."""
    data = read_layered_yaml(path)
    for assignment in overrides:
        apply_override(data, assignment)
    if "distillation" in schema.model_fields:  # a student: the seed and attack it leaves out are its teacher's
        take_from_teacher(data)
    return validate_config(schema, data, source=str(path), overrides=overrides)


def load_checked_config(schema: type[BaseModel], path: str | os.PathLike, overrides: list[str] = ()) -> BaseModel:
    """The validated config, checked against the data on disk; errors name the config file and the key."""
    config = load_config(schema, path, overrides)
    try:
        check_data(config)
    except UserError as err:
        raise UserError(f"{error_source(str(err), path, overrides)}: {err}") from err
    return config


STUDENT_KEY = "distillation"  # the section only a student's config has
SCRIPTS = {True: "train_student.py", False: "train_teacher.py"}  # by: is it a student run?


def _check_run_kind(schema: type[BaseModel], run_dir: str | os.PathLike, saved: dict) -> None:
    """A student run resumed by the teacher's script (or the reverse): name the script that resumes it."""
    is_student, wants_student = STUDENT_KEY in saved, STUDENT_KEY in schema.model_fields
    if is_student != wants_student:
        kind = "a student" if is_student else "a teacher"
        raise UserError(
            f"--resume {run_dir}: {kind} run (its {CONFIG_NAME} {'has a' if is_student else 'has no'} "
            f"{STUDENT_KEY} section); resume it with {SCRIPTS[is_student]} --resume {run_dir}"
        )


def load_resumed_config(
    schema: type[BaseModel], run_dir: str | os.PathLike, overrides: list[str], allowed: tuple[str, ...]
) -> BaseModel:
    """The config a run directory saved, checked again against the disk; ``overrides`` only for ``allowed`` keys."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no {CONFIG_NAME} there; give the run directory of a stopped run")
    _check_run_kind(schema, run_dir, read_layered_yaml(path))
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if key not in allowed:
            raise UserError(
                f"--set {key}: a resumed run keeps its saved config; --set may change only {', '.join(allowed)}"
            )
    return load_checked_config(schema, path, overrides)
