"""One setting end to end: teacher → variations (→ detection) → student (→ clean and cleaned students), skipping
finished steps.

The steps run in this process, one after the other: one start-up, no configs passed through files, and
``torchrun ... run_pipeline.py`` spreads every step over the processes exactly as it does for the single
scripts (the main process decides what to skip and tells the others). Memory is handed back between steps.
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass, field
from pathlib import Path

import torch

from config.data_checks import check_training_data
from datasets.setting_keys import setting_keys
from experiments.detection_step import (
    DetectionChoice,
    build_cleaned_step,
    cleaned_student_config,
    detection_complete,
    detection_folder,
    run_detection_step,
)
from experiments.experiment_file import ExperimentSpec
from experiments.run_discovery import find_complete_run, find_stopped_run, read_summary
from experiments.step_configs import SettingConfigs, resolve_configs
from experiments.sweep_run import outside_the_sweep, report_to_sweep
from training.pipeline import run_training
from training.roles import StudentRole, TeacherRole
from training.run_directory import SUMMARY_NAME
from utils import distributed
from utils.atomic_io import atomic_write_text
from utils.errors import TrainingError, UserError
from utils.report import metrics_table
from variations.completeness import variations_complete
from variations.run import RunOptions, run_variations

log = logging.getLogger(__name__)

STUDENT_ROLES = ("student", "clean_student", "cleaned_student")


@dataclass
class PipelineResult:
    folder: Path  # the setting's folder
    backend: str  # the variation backend
    run_dirs: dict[str, Path] = field(default_factory=dict)  # teacher, variations, detection, the students
    summaries: dict[str, dict] = field(default_factory=dict)  # summary.json of teacher and students
    skipped: list[str] = field(default_factory=list)  # steps found complete


def _on_main(function):
    """``function()`` evaluated on the main process, its result given to every process."""
    return distributed.broadcast_from_main(function() if distributed.is_main_process() else None)


def _free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _training_step(name: str, cfg, role, result: PipelineResult) -> None:
    run_dir = _on_main(lambda: find_complete_run(cfg))
    if run_dir is not None:
        log.info("%s: complete in %s, skipped", name, run_dir)
        result.skipped.append(name)
    else:
        stopped = _on_main(lambda: find_stopped_run(cfg))
        if stopped is not None:
            log.info("%s: going on with the stopped run %s", name, stopped)
        else:
            log.info("%s: training (run directory under %s)", name, cfg.training.save_path)
        run_training(cfg, role, resume=stopped)
        _free_memory()
        distributed.barrier()  # the main process writes the run directory last
        run_dir = _on_main(lambda: find_complete_run(cfg))
        if run_dir is None:
            raise TrainingError(f"{name}: the run ended without a complete run directory in {cfg.training.save_path}")
    result.run_dirs[name] = run_dir
    try:
        result.summaries[name] = read_summary(run_dir / SUMMARY_NAME)
    except ValueError as err:  # a finished run whose summary was damaged since
        raise UserError(
            f"{name}: {run_dir}: {err}; move that run directory out of {run_dir.parent} to train it again"
        ) from err


def _variations_step(cfg, result: PipelineResult) -> None:
    if _on_main(lambda: variations_complete(cfg)):
        log.info("variations: complete in %s, skipped", cfg.output_folder)
        result.skipped.append("variations")
    else:
        log.info("variations: generating into %s", cfg.output_folder)
        run_variations(cfg, RunOptions())
        _free_memory()
        distributed.barrier()  # every process's share is written before any student reads the folder
    result.run_dirs["variations"] = Path(cfg.output_folder)


def flat_results(
    summaries: dict[str, dict], metrics: tuple[str, ...] = ("clean_accuracy", "attack_success_rate")
) -> dict:
    """``teacher/clean_accuracy``, ``student/der``... for the sweep's table (and the evidence tables, with RA)."""
    flat = {f"teacher/{key}": summaries["teacher"].get(key) for key in metrics}
    for role in STUDENT_ROLES:
        if role in summaries:
            scores = summaries[role]["student"]
            flat |= {f"{role}/{key}": scores.get(key) for key in metrics}
            flat[f"{role}/der"] = summaries[role].get("der")
    return flat


def comparison_table(summaries: dict[str, dict]) -> str:
    columns = {"teacher": summaries["teacher"]}
    columns |= {role.replace("_", " "): summaries[role]["student"] for role in STUDENT_ROLES if role in summaries}
    der = {role.replace("_", " "): summaries[role].get("der") for role in STUDENT_ROLES if role in summaries}
    der = {name: "n/a" if value is None else f"{100 * value:.2f} %" for name, value in der.items()}
    return metrics_table(columns, extra_rows={"defence effectiveness (DER)": der})


def _students(configs: SettingConfigs, cleaned) -> tuple:
    """(role, config or None) of the students, in the order they run (STUDENT_ROLES)."""
    return (("student", configs.student), ("clean_student", configs.clean_student), ("cleaned_student", cleaned))


def run_steps(
    configs: SettingConfigs, detection: DetectionChoice | None = None, teacher_only: bool = False
) -> PipelineResult:
    detection = detection or DetectionChoice()
    result = PipelineResult(configs.folder, configs.variations.diffusion.backend)
    _training_step("teacher", configs.teacher, TeacherRole(), result)
    if teacher_only:
        return result
    _variations_step(configs.variations, result)
    cleaned = None
    if detection.wanted:
        if run_detection_step(configs, result.run_dirs["teacher"], result.run_dirs["variations"]):
            result.skipped.append("detection")
        result.run_dirs["detection"] = detection_folder(configs)
    if detection.cleaned_student is not None:
        cleaned = cleaned_student_config(configs, detection.cleaned_student)
        build_cleaned_step(configs, result.run_dirs["variations"], cleaned, detection.cleaned_student)
    for name, cfg in _students(configs, cleaned):
        if cfg is not None:
            cfg.distillation.teacher_model = str(result.run_dirs["teacher"])
            check_training_data(cfg)
            _training_step(name, cfg, StudentRole(), result)
    return result


def step_states(configs: SettingConfigs, detection: DetectionChoice | None = None) -> dict[str, bool]:
    """Each step of the setting, in the order it runs, and whether it is complete (nothing is run or written)."""
    detection = detection or DetectionChoice()
    teacher = find_complete_run(configs.teacher)
    steps = {"teacher": teacher is not None, "variations": variations_complete(configs.variations)}
    if detection.wanted:
        variations = Path(configs.variations.output_folder)
        steps["detection"] = detection_complete(detection_folder(configs), teacher, variations)
    cleaned = None
    if detection.cleaned_student is not None:
        cleaned = cleaned_student_config(configs, detection.cleaned_student)
    for name, cfg in _students(configs, cleaned):
        if cfg is not None:  # a student is complete only for the teacher run it would be given
            cfg.distillation.teacher_model = str(teacher)
            steps[name] = teacher is not None and find_complete_run(cfg) is not None
    return steps


def describe_plan(configs: SettingConfigs, detection: DetectionChoice | None = None) -> str:
    """Which steps are complete and which would run, without running anything."""
    lines = [f"setting {configs.folder}: the configs agree; variations and student in {configs.variant.name}/"]
    lines += [
        f"  {name}: {'complete, skipped' if done else 'would run'}"
        for name, done in step_states(configs, detection).items()
    ]
    return "\n".join(lines)


def setting_complete(spec: ExperimentSpec, teacher_only: bool = False) -> bool:
    """Whether every step of the setting (only the teacher, with ``teacher_only``) is complete: running it would
    only read what is there."""
    states = step_states(resolve_configs(spec), DetectionChoice(spec.detection, spec.cleaned_student))
    return states["teacher"] if teacher_only else all(states.values())


def run_experiment(spec: ExperimentSpec, dry_run: bool = False, teacher_only: bool = False) -> PipelineResult | None:
    """Run (or finish) one setting; ends with the teacher-vs-student table in ``<setting>/<backend>/results.md``.

    ``dry_run``: check the configs and say which steps would run, then stop (nothing is written).
    ``teacher_only``: train (or find) the teacher and stop there, e.g. to train a grid's teachers first."""
    configs = resolve_configs(spec)  # every config validated and checked: nothing has been written yet
    detection = DetectionChoice(spec.detection, spec.cleaned_student)
    if dry_run:
        log.info("%s", describe_plan(configs, detection))
        return None
    device = distributed.resolve_device(configs.teacher.training.device)
    distributed.init_from_environment(use_cuda=device.type == "cuda")
    log.info("setting: %s", configs.folder)
    with outside_the_sweep() as sweep:
        result = run_steps(configs, detection, teacher_only)
    table = comparison_table(result.summaries)
    if teacher_only:
        log.info("\n%s\n\nsetting %s: the teacher only, as asked", table, configs.folder)
        return result
    if distributed.is_main_process():
        title = f"{configs.folder.name}, {configs.variant.name}"
        atomic_write_text(configs.variant / "results.md", f"# {title}\n\n```text\n{table}\n```\n")
        keys = setting_keys(configs.teacher.to_dict(), "teacher") | {"variation_backend": result.backend}
        report_to_sweep(sweep, {**keys, "role": "pipeline"}, flat_results(result.summaries), configs.variant)
    done = ", ".join(result.skipped) or "none"
    log.info("\n%s\n\nsetting %s (steps already complete: %s)", table, configs.variant, done)
    return result
