"""The steps of one setting describe the same setting: a student or generator config that leaves ``seed`` or
``backdoor`` out takes the teacher's, and configs that name other values are refused, naming both.

``run_pipeline.py`` checks its three step configs against each other (``experiments.step_configs``);
``train_student.py`` checks its config against the teacher run's ``config.yaml`` and, when it trains on a
variations folder, that folder's ``config.yaml``: so a student made by hand cannot score a 5-pixel trigger
against a 3-pixel teacher, nor train on variations poisoned with another seed.
"""

from __future__ import annotations

import copy
from pathlib import Path

from pydantic import ValidationError

from datasets.sections import BackdoorSection
from datasets.setting_keys import CONFIG_NAME, attack_name, leaves, read_config_beside
from utils.errors import UserError

FROM_TEACHER = ("seed", "backdoor")  # configs that leave these out get the teacher's
TEST_ONLY = {"poisoning_rate": 0.0, "random_poisoning": False}  # a student's backdoor block poisons nothing


def check_agreement(what: str, first: tuple[str, object], second: tuple[str, object], sources: dict) -> None:
    """Stop with both values when ``first`` and ``second`` differ; dicts are compared key by key."""
    (a, a_value), (b, b_value) = first, second
    if a_value == b_value:
        return
    left, right = leaves(a_value, what), leaves(b_value, what)
    key = next(k for k in sorted(set(left) | set(right)) if left.get(k) != right.get(k))
    raise UserError(
        f"the configs disagree on {key}: {a} ({sources[a]}) has {left.get(key)!r}, "
        f"{b} ({sources[b]}) has {right.get(key)!r}; they must describe the same setting"
    )


def teacher_config(raw: dict) -> dict | None:
    """The ``config.yaml`` of the teacher run a student config names (None: not a local run directory)."""
    reference = (raw.get("distillation") or {}).get("teacher_model")
    return read_config_beside(reference) if isinstance(reference, str) and reference.strip() else None


def take_from_teacher(raw: dict) -> None:
    """Fill the ``seed`` and ``backdoor`` a student config leaves out from its teacher run's config (the block
    then only builds the triggered test set)."""
    teacher = teacher_config(raw)
    if teacher is None:
        return
    for key in FROM_TEACHER:
        if raw.get(key) is None and teacher.get(key) is not None:
            raw[key] = copy.deepcopy(teacher[key])
            if key == "backdoor" and isinstance(raw[key], dict):
                raw[key].update(TEST_ONLY)


def _backdoor(block) -> dict | None:
    """A saved backdoor block with today's defaults filled in, so that an older config compares key by key."""
    if not isinstance(block, dict):
        return block
    try:
        return BackdoorSection.model_validate(block).model_dump(mode="json", exclude_none=True)
    except ValidationError:
        return block


def check_student_agreement(cfg) -> None:
    """The student's seed and attack are its teacher's, and those its variations were made with."""
    raw = {"distillation": {"teacher_model": cfg.distillation.teacher_model}}
    teacher = teacher_config(raw)
    if teacher is None:  # a W&B reference or a bare checkpoint: nothing on disk to compare with
        return
    variations = read_config_beside(cfg.dataset.root_train)
    if variations is not None and "diffusion" not in variations:
        variations = None  # a folder generate_variations.py did not make (e.g. the clean training folder)
    where = Path(cfg.distillation.teacher_model).expanduser()
    sources = {
        "the teacher": (where if where.is_dir() else where.parent) / CONFIG_NAME,
        "the student": "its config",
        "the variations": Path(cfg.dataset.root_train) / CONFIG_NAME,
    }
    own = cfg.to_dict()
    backdoor = _backdoor(teacher.get("backdoor"))
    check_agreement("seed", ("the teacher", teacher.get("seed")), ("the student", own.get("seed")), sources)
    if variations is not None:
        check_agreement(
            "seed", ("the teacher", teacher.get("seed")), ("the variations", variations.get("seed")), sources
        )
    test_block = {**backdoor, **TEST_ONLY} if isinstance(backdoor, dict) else backdoor
    steps = [("the student", own.get("backdoor"), test_block)]
    if variations is not None:
        steps.append(("the variations", _backdoor(variations.get("backdoor")), backdoor))
    for step, given, wanted in steps:
        # the attack first: two attacks differ in every parameter, and the first of those says little
        named = (attack_name(wanted), attack_name(given))
        check_agreement("attack", ("the teacher", named[0]), (step, named[1]), sources)
        check_agreement("backdoor", ("the teacher", wanted), (step, given), sources)
