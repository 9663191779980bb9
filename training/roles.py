"""What sets a teacher run apart from a student run: its objective and its report.

The teacher learns the (poisoned) labels; the student is distilled from a frozen teacher and reports
itself next to that teacher, with the defence effectiveness rate. A role is stateless: ``prepare`` gives the
run's :class:`PreparedRole` (the objective, and for a student the teacher it loaded), which alone can report, so
a report can never ask for a teacher that was not loaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from torch import nn

from datasets.build import ExperimentData
from models.teacher_reference import ResizedInput, TeacherSource, load_teacher, resolve_teacher
from training.evaluation import BackdoorEvaluator
from training.loop import Objective
from training.metrics import defense_effectiveness_rate
from training.objectives import DistillationObjective, SupervisedObjective
from training.run_directory import Run
from training.setup import TrainingSetup
from utils import distributed
from utils.errors import UserError
from utils.report import metrics_table
from utils.tracking import log_comparison, record_teacher_input

log = logging.getLogger(__name__)


class PreparedRole(Protocol):
    objective: Objective

    def report(self, final: dict, evaluator: BackdoorEvaluator, data: ExperimentData, run: Run | None):
        """(``summary.json`` content, a printable table)."""
        ...


class Role(Protocol):
    name: str  # the run's job type: teacher or student

    def prepare(self, cfg, setup: TrainingSetup, data: ExperimentData) -> PreparedRole: ...


class TeacherRole:
    name = "teacher"

    def prepare(self, cfg, setup: TrainingSetup, data: ExperimentData) -> PreparedTeacher:
        return PreparedTeacher(SupervisedObjective(cfg.training.aux_loss_weight))


@dataclass(frozen=True)
class PreparedTeacher:
    objective: Objective

    def report(self, final: dict, evaluator, data: ExperimentData, run: Run | None) -> tuple[dict, str]:
        summary = {
            **final,
            "num_poisoned": len(data.poison_indices),
            "num_cross": None if data.cross_indices is None else len(data.cross_indices),
            "num_train": len(data.train),
            "attack": attack_summary(data),
        }
        return summary, with_attack_line(data, metrics_table({"teacher": final}))


def attack_summary(data: ExperimentData) -> dict | None:
    """The attack mode for ``summary.json`` and the W&B summary (``attack/target_type``...)."""
    return None if data.attack_mode is None else data.attack_mode.as_dict()


def with_attack_line(data: ExperimentData, table: str) -> str:
    """The printed table, headed by the attack and how its ASR is counted."""
    return table if data.attack_mode is None else f"{data.attack_mode}\n{table}"


def check_teacher_classes(metadata: dict, classes: list[str], reference: str) -> None:
    if metadata["num_classes"] != len(classes):
        raise UserError(
            f"distillation.teacher_model: the teacher '{reference}' has {metadata['num_classes']} classes, "
            f"dataset.root_train has {len(classes)}"
        )
    if metadata.get("class_names") and metadata["class_names"] != classes:
        raise UserError(
            f"distillation.teacher_model: the teacher '{reference}' was trained on classes "
            f"{metadata['class_names']}, dataset.root_train has {classes}"
        )


class StudentRole:
    name = "student"

    def prepare(self, cfg, setup: TrainingSetup, data: ExperimentData) -> PreparedStudent:
        """Load the teacher (``distillation.teacher_model``) the student is distilled from and reported beside."""
        with distributed.local_main_first():  # one download per machine into the shared cache
            source = resolve_teacher(cfg.distillation.teacher_model)
        teacher, metadata = load_teacher(source)
        check_teacher_classes(metadata, data.classes, source.reference)
        if metadata.get("image_size") and metadata["image_size"] != cfg.dataset.image_size:
            teacher = ResizedInput(teacher, metadata["image_size"])
        teacher = setup.compute.prepare(teacher).eval()
        log.info(
            "teacher %s (%s); student %s on %d images from %s",
            source.reference,
            metadata["architecture"],
            cfg.model.architecture,
            len(data.train),
            cfg.dataset.root_train,
        )
        objective = DistillationObjective(teacher, cfg.distillation, cfg.training.aux_loss_weight)
        return PreparedStudent(objective, teacher, source)


@dataclass(frozen=True)
class PreparedStudent:
    objective: Objective
    teacher: nn.Module  # frozen, on the training device
    source: TeacherSource  # where it came from, for the summary and W&B

    def report(self, final: dict, evaluator, data: ExperimentData, run: Run | None) -> tuple[dict, str]:
        teacher = {**evaluator(self.teacher), "reference": self.source.reference}
        results = {"student": final, "teacher": teacher, "der": None, "attack": attack_summary(data)}
        if data.triggered_test is not None:
            results["der"] = defense_effectiveness_rate(
                teacher["clean_accuracy"],
                teacher["attack_success_rate"],
                final["clean_accuracy"],
                final["attack_success_rate"],
            )
        if run is not None and run.wandb_run is not None:
            record_teacher_input(run.wandb_run, self.source)
            log_comparison(run.wandb_run, results)
        der = "n/a" if results["der"] is None else f"{100 * results['der']:.2f} %"
        table = metrics_table(
            {"teacher": teacher, "student": final}, extra_rows={"defence effectiveness (DER)": {"student": der}}
        )
        return results, with_attack_line(data, table)
