"""Train a classifier on (possibly poisoned) data and measure how well the backdoor took hold.

python train_teacher.py -c configs/defaults/teacher_badnets.yaml [--set training.num_epochs=5 seed=7]
"""

from __future__ import annotations

import logging
import sys

from datasets.build import build_test_sets, build_training_data
from training.experiment import backdoor_metrics, fit
from training.losses import SupervisedObjective
from training.run import finish_run, start_run, trainable_classifier, training_setup
from utils.cli import config_parser, run_script
from utils.config_schema import TeacherConfig
from utils.report import metrics_table

log = logging.getLogger("train_teacher")


def main(cfg: TeacherConfig, args=None) -> dict:
    setup = training_setup(cfg)
    data = build_training_data(cfg)
    clean_test, triggered_test = build_test_sets(cfg)
    log.info(
        "%s: %d training images (%d poisoned), %d clean test images, %d triggered test images",
        cfg.dataset.name,
        len(data.dataset),
        len(data.poison_indices),
        len(clean_test),
        len(triggered_test) if triggered_test else 0,
    )
    model, optimizer, scheduler = trainable_classifier(cfg, setup)

    run = start_run(cfg, "teacher", setup, data)
    train_loader = setup.train_loader(data.dataset)
    clean_loader, triggered_loader = setup.test_loaders(clean_test, triggered_test)
    target_idx = cfg.backdoor.target_idx if cfg.backdoor else None

    def evaluate_now():
        return backdoor_metrics(model, clean_loader, triggered_loader, setup.compute, data.index.classes, target_idx)

    final = fit(
        model,
        SupervisedObjective(cfg.training.aux_loss_weight),
        optimizer,
        scheduler,
        train_loader,
        setup.compute,
        cfg.training.num_epochs,
        run.metrics if run else None,
        evaluate_fn=evaluate_now,
        eval_every=cfg.training.eval_every,
    )
    summary = {**final, "num_poisoned": len(data.poison_indices), "num_train": len(data.dataset)}
    if run is not None:
        finish_run(run, cfg, model, data.index.classes, summary, "teacher")
        log.info("\n%s\n\nrun directory: %s", metrics_table({"teacher": final}), run.run_dir)
    return summary


if __name__ == "__main__":
    sys.exit(run_script(TeacherConfig, main, config_parser(__doc__.splitlines()[0])))
