"""One training pipeline for teachers and students: data → objective → model → epochs → report."""

from __future__ import annotations

import logging

from datasets.build import build_experiment_data
from training.evaluation import BackdoorEvaluator
from training.loop import Schedule, fit
from training.roles import Role
from training.run_directory import finish_run, start_run
from training.setup import build_trainable, training_setup

log = logging.getLogger(__name__)


def run_training(cfg, role: Role) -> dict:
    """Train the model ``cfg`` describes in the given role; returns the run's summary."""
    setup = training_setup(cfg)
    data = build_experiment_data(cfg)
    log.info(
        "%s: %d training images (%d poisoned), %d clean test images, %d triggered test images",
        cfg.dataset.name,
        len(data.train),
        len(data.poison_indices),
        len(data.clean_test),
        len(data.triggered_test) if data.triggered_test is not None else 0,
    )
    objective = role.objective(cfg, setup, data)  # a student loads its teacher here
    trainable = build_trainable(cfg, setup)
    run = start_run(cfg, role.name, data)
    triggered = data.triggered_test
    evaluator = BackdoorEvaluator(
        clean=setup.test_loader(data.clean_test),
        triggered=setup.test_loader(triggered) if triggered is not None else None,
        compute=setup.compute,
        classes=data.classes,
        targets=data.targets,
    )
    final = fit(
        trainable,
        objective,
        setup.train_loader(data.train),
        Schedule(cfg.training.num_epochs, cfg.training.eval_every),
        evaluate_fn=lambda: evaluator(trainable.model),
        metrics_log=run.metrics if run is not None else None,
    )
    summary, table = role.report(final, evaluator, data, run)
    if run is not None:
        finish_run(run, cfg, trainable.model, data.classes, summary)
        log.info("\n%s\n\nrun directory: %s", table, run.run_dir)
    return summary
