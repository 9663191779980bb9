r"""Distil a (possibly backdoored) teacher into a student trained on the diffusion variations.

python train_student.py -c configs/defaults/student.yaml
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=results/resnet18_20261124_101500
python train_student.py -c configs/defaults/student.yaml \
    --set distillation.teacher_model=my-team/backdoor_models/3kq9x2ab
"""

from __future__ import annotations

import logging
import sys

from datasets.build import build_test_sets, build_training_data
from models.teacher_reference import ResizedInput, load_teacher, resolve_teacher
from training.experiment import backdoor_metrics, fit
from training.losses import DistillationObjective
from training.metrics import defense_effectiveness_rate
from training.run import finish_run, start_run, trainable_classifier, training_setup
from utils import distributed
from utils.cli import config_parser, run_script
from utils.config_schema import StudentConfig
from utils.errors import UserError
from utils.report import metrics_table
from utils.tracking import log_comparison, record_teacher_input

log = logging.getLogger("train_student")


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


def main(cfg: StudentConfig, args=None) -> dict:
    setup = training_setup(cfg)
    with distributed.local_main_first():  # one download per machine into the shared cache
        source = resolve_teacher(cfg.distillation.teacher_model)
    teacher, teacher_meta = load_teacher(source)
    data = build_training_data(cfg)
    check_teacher_classes(teacher_meta, data.index.classes, source.reference)
    if teacher_meta.get("image_size") and teacher_meta["image_size"] != cfg.dataset.image_size:
        teacher = ResizedInput(teacher, teacher_meta["image_size"])
    teacher = setup.compute.prepare(teacher).eval()
    clean_test, triggered_test = build_test_sets(cfg)
    log.info(
        "teacher %s (%s); student %s on %d images from %s",
        source.reference, teacher_meta["architecture"], cfg.model.architecture, len(data.dataset),
        cfg.dataset.root_train,
    )  # fmt: skip

    student, optimizer, scheduler = trainable_classifier(cfg, setup)
    distillation = cfg.distillation
    objective = DistillationObjective(
        teacher, distillation.alpha, distillation.temperature, distillation.ce_on_scaled_logits,
        cfg.training.aux_loss_weight,
    )  # fmt: skip

    run = start_run(cfg, "student", setup, data)
    if run is not None:
        record_teacher_input(run.wandb_run, source)
    train_loader = setup.train_loader(data.dataset)
    clean_loader, triggered_loader = setup.test_loaders(clean_test, triggered_test)
    target_idx = cfg.backdoor.target_idx if cfg.backdoor else None
    classes = data.index.classes

    def evaluate(model):
        return backdoor_metrics(model, clean_loader, triggered_loader, setup.compute, classes, target_idx)

    student_final = fit(
        student, objective, optimizer, scheduler, train_loader, setup.compute, cfg.training.num_epochs,
        run.metrics if run else None, evaluate_fn=lambda: evaluate(student), eval_every=cfg.training.eval_every,
    )  # fmt: skip
    results = {"student": student_final, "teacher": {**evaluate(teacher), "reference": source.reference}}
    results["der"] = None
    if triggered_test is not None:
        results["der"] = defense_effectiveness_rate(
            results["teacher"]["clean_accuracy"], results["teacher"]["attack_success_rate"],
            results["student"]["clean_accuracy"], results["student"]["attack_success_rate"],
        )  # fmt: skip
    if run is not None:
        if run.wandb_run is not None:
            log_comparison(run.wandb_run, results)
        finish_run(run, cfg, student, classes, results, "student")
        der = "n/a" if results["der"] is None else f"{100 * results['der']:.2f} %"
        table = metrics_table(
            {"teacher": results["teacher"], "student": results["student"]},
            extra_rows={"defence effectiveness (DER)": {"student": der}},
        )
        log.info("\n%s\n\nrun directory: %s", table, run.run_dir)
    return results


if __name__ == "__main__":
    sys.exit(run_script(StudentConfig, main, config_parser(__doc__.splitlines()[0])))
