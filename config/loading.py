"""Defaults ← ``base:`` files ← the YAML file ← overrides, validated against a schema."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from pydantic import BaseModel, ValidationError

from config.data_checks import check_data
from config.errors import describe_validation_error
from config.overrides import apply_override
from config.step_agreement import take_from_teacher
from config.yaml_files import read_layered_yaml
from training.run_directory import CONFIG_NAME
from utils.errors import UserError

log = logging.getLogger(__name__)


def validate_config(schema: type[BaseModel], data: dict, source: str = "config") -> BaseModel:
    try:
        config = schema.model_validate(data)
    except ValidationError as err:
        raise UserError(f"{source}: {describe_validation_error(schema, err)}") from err
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
    return validate_config(schema, data, source=str(path))


def load_checked_config(schema: type[BaseModel], path: str | os.PathLike, overrides: list[str] = ()) -> BaseModel:
    """The validated config, checked against the data on disk; errors name the config file and the key."""
    config = load_config(schema, path, overrides)
    try:
        check_data(config)
    except UserError as err:
        raise UserError(f"{path}: {err}") from err
    return config


def load_resumed_config(
    schema: type[BaseModel], run_dir: str | os.PathLike, overrides: list[str], allowed: tuple[str, ...]
) -> BaseModel:
    """The config a run directory saved, checked again against the disk; ``overrides`` only for ``allowed`` keys."""
    path = Path(run_dir) / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"--resume {run_dir}: no {CONFIG_NAME} there; give the run directory of a stopped run")
    for assignment in overrides:
        key = assignment.partition("=")[0].strip()
        if key not in allowed:
            raise UserError(
                f"--set {key}: a resumed run keeps its saved config; --set may change only {', '.join(allowed)}"
            )
    return load_checked_config(schema, path, overrides)
