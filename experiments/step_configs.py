"""The validated configs of one setting's steps: overrides routed, the teacher's choices passed on, agreement
checked, and every output placed in the setting's folder — all before anything runs.

Locations are wired (the generator reads the teacher's training folder; the student reads the variations
and the teacher's run directory). Settings are checked: a generator or student config that leaves ``seed``
or ``backdoor`` out gets the teacher's; one that names another stops the pipeline, naming both values.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from pathlib import Path

from config.data_checks import check_outputs_apart, check_training_data, check_variation_data
from config.loading import validate_config
from config.overrides import has_key_path, set_value
from config.schema import StudentConfig, TeacherConfig, VariationConfig
from config.step_agreement import FROM_TEACHER, TEST_ONLY, check_agreement
from config.yaml_files import read_layered_yaml
from datasets.image_folder import list_class_folders
from datasets.setting_keys import STEPS, attack_name, setting_keys, variations_identity, without_runtime_keys
from experiments.experiment_file import ExperimentSpec
from experiments.setting_folders import place, teacher_identities, variations_identities
from training.compute import with_effective_training
from utils.errors import UserError

log = logging.getLogger(__name__)

SCHEMAS = {"teacher": TeacherConfig, "variations": VariationConfig, "student": StudentConfig}
PENDING = "pending"  # stands for a location that exists only once an earlier step has run


@dataclass
class SettingConfigs:
    """One setting's validated step configs, their outputs inside ``folder``: ``teacher/``, ``clean_student/``
    and, per variation config, ``<backend>/variations`` and ``<backend>/student`` (``<backend>-<what differs>/``
    for a further config of one backend, see ``experiments.setting_folders``)."""

    folder: Path
    variant: Path  # folder / <backend>, or folder / <backend>-<what differs>
    teacher: TeacherConfig
    variations: VariationConfig
    student: StudentConfig
    clean_student: StudentConfig | None


def route_overrides(raw: dict[str, dict], spec: ExperimentSpec) -> None:
    """``teacher.key=v`` sets one step's key; ``key=v`` every step whose config has the key, except that a
    generator or student config leaving ``seed`` or ``backdoor`` out keeps taking the teacher's."""
    for override in spec.overrides:
        keys = list(override.keys)
        if keys[0] in raw and len(keys) > 1:
            steps, keys = [keys[0]], keys[1:]
        else:
            steps = [step for step in STEPS if has_key_path(SCHEMAS[step], keys)]
            if not steps:
                raise UserError(
                    f"override {override.source}: no step's config has {'.'.join(keys)} "
                    f"(prefix a step to aim at one: {', '.join(STEPS)})"
                )
            passed_on = keys[0] in FROM_TEACHER
            steps = [s for s in steps if s == "teacher" or not passed_on or raw[s].get(keys[0]) is not None]
        for step in steps:
            set_value(raw[step], keys, copy.deepcopy(override.value), f"override {override.source}")


def _pass_on(raw: dict, teacher: dict) -> None:
    for key in FROM_TEACHER:
        if raw.get(key) is None and key in teacher:
            raw[key] = copy.deepcopy(teacher[key])
    raw.setdefault("dataset", {}).setdefault("image_size", teacher["dataset"]["image_size"])


def _student_raw(raw: dict, teacher: dict) -> dict:
    _pass_on(raw, teacher)
    if raw.get("backdoor") is not None:
        raw["backdoor"].update(TEST_ONLY)
    raw["dataset"].setdefault("root_test", teacher["dataset"]["root_test"])
    raw["dataset"]["root_train"] = teacher["dataset"]["root_train"]  # for validation; the variations later
    raw.setdefault("distillation", {})["teacher_model"] = PENDING
    return raw


def setting_name(teacher: TeacherConfig) -> str:
    """The setting's folder name: dataset, attack, rate, target type and seed (what decides the teacher)."""
    keys = setting_keys(teacher.to_dict(), "teacher")
    parts = [keys["dataset_name"], keys["attack"]]
    if keys["poisoning_rate"] is not None:
        parts += [f"rate{keys['poisoning_rate']:g}", keys["target_type"]]
    return "-".join(str(part) for part in [*parts, f"seed{keys['seed']}"])


def _validated(step: str, raw: dict, sources: dict):
    return validate_config(SCHEMAS[step], raw, str(sources[step]))


def _checked(step: str, check, cfg, sources: dict) -> None:
    try:
        check(cfg)
    except UserError as err:
        raise UserError(f"{sources[step]}: {err}") from err


def _check_settings(teacher, variations, student, sources: dict) -> None:
    backdoor = teacher.to_dict().get("backdoor")
    for step, cfg in (("variations", variations), ("student", student)):
        check_agreement("seed", ("teacher", teacher.seed), (step, cfg.seed), sources)
        size = (step, cfg.dataset.image_size)
        check_agreement("dataset.image_size", ("teacher", teacher.dataset.image_size), size, sources)
    test_block = {**backdoor, **TEST_ONLY} if backdoor else None
    for step, cfg, wanted in (("variations", variations, backdoor), ("student", student, test_block)):
        given = cfg.to_dict().get("backdoor")
        # the attack first: two attacks differ in every parameter, and the first of those says little
        check_agreement("attack", ("teacher", attack_name(backdoor)), (step, attack_name(given)), sources)
        check_agreement("backdoor", ("teacher", wanted), (step, given), sources)


def _check_classes(teacher, student, sources: dict) -> None:
    """The student is tested on the teacher's classes (the generator reads the teacher's folder itself)."""
    _checked("teacher", check_training_data, teacher, sources)
    classes = list_class_folders(teacher.dataset.root_train)
    try:
        test = ("student", list_class_folders(student.dataset.root_test))
    except UserError as err:
        raise UserError(f"{sources['student']}: dataset.root_test: {err}") from err
    check_agreement("classes (class folders)", ("teacher", classes), test, sources)
    if student.model.num_classes is not None:
        wanted = ("student", student.model.num_classes)
        check_agreement("model.num_classes", ("teacher", teacher.model.num_classes), wanted, sources)
    # What check_training_data fills in from the variations once they exist (they have the teacher's class
    # folders); filled now so that a dry run compares the config a finished student was saved with.
    student.model.num_classes = teacher.model.num_classes


def resolve_configs(spec: ExperimentSpec) -> SettingConfigs:
    """Read, override, wire, validate and check the step configs; nothing is written."""
    sources = {**spec.configs, "clean_student": spec.configs["student"]}
    raw = {step: read_layered_yaml(path) for step, path in spec.configs.items()}
    route_overrides(raw, spec)
    teacher = _validated("teacher", raw["teacher"], sources)
    wired = teacher.to_dict()
    _pass_on(raw["variations"], wired)
    raw["variations"]["dataset"]["root"] = teacher.dataset.root_train
    raw["variations"]["output_folder"] = PENDING
    variations = _validated("variations", raw["variations"], sources)
    student = _validated("student", _student_raw(raw["student"], wired), sources)
    _check_settings(teacher, variations, student, sources)
    _check_classes(teacher, student, sources)
    _checked("variations", check_variation_data, variations, sources)

    # The teacher and the clean student do not depend on the variation model: settings that differ only in it
    # share them, and each variation config gets its own subfolder for its variations and student. A teacher
    # or variation config that the folder names do not tell apart gets a folder of its own (setting_folders).
    # as the runs save them: model.num_classes filled in, the numerics that take effect on this machine's device
    teacher, student = with_effective_training(teacher), with_effective_training(student)
    identity = without_runtime_keys(teacher.to_dict())
    folder = place(spec.output, setting_name(teacher), identity, teacher_identities, "a teacher")
    wanted = variations_identity(variations.to_dict())
    variant = place(folder, variations.diffusion.backend, wanted, variations_identities, "variations")
    teacher.training.save_path = folder / "teacher"
    variations.output_folder = variant / "variations"
    student.dataset.root_train = variations.output_folder
    student.training.save_path = variant / "student"
    clean = None
    if spec.clean_student:  # the same student on the teacher's (clean) training folder
        clean = student.model_copy(deep=True)
        clean.dataset.root_train = teacher.dataset.root_train
        clean.training.save_path = folder / "clean_student"
        if clean.wandb.args.get("name"):
            clean.wandb.args["name"] += "_clean"
    for step, cfg in (("teacher", teacher), ("variations", variations), ("student", student), ("clean_student", clean)):
        if cfg is not None:
            _checked(step, check_outputs_apart, cfg, sources)
    return SettingConfigs(folder, variant, teacher, variations, student, clean)
