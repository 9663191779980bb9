"""One training pipeline for teachers and students: data → objective → model → epochs → report."""

from __future__ import annotations

import logging
import signal
from pathlib import Path

from datasets.build import build_experiment_data
from training.compute import with_effective_training
from training.evaluation import BackdoorEvaluator
from training.loop import EpochHooks, Progress, Schedule, fit
from training.resumption import EpochStates, load_saved_state
from training.roles import Role
from training.run_directory import OutputNotWritten, checkpoint_metadata, finish_run, start_run
from training.setup import build_trainable, training_setup
from utils.errors import RunInterrupted
from utils.stop_signals import GracefulStop, StopRequested

log = logging.getLogger(__name__)


def run_training(cfg, role: Role, resume: Path | None = None) -> dict:
    """Train the model ``cfg`` describes in the given role; returns the run's summary.

    ``resume``: the run directory of a stopped run, which goes on from its newest per-epoch state. SIGTERM and
    SIGINT stop the run at the next step boundary (:class:`RunInterrupted`, with the epoch that is kept).
    """
    cfg = with_effective_training(cfg)  # what runs here is what config.yaml says (no bf16 on a CPU)
    with GracefulStop() as stop:
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
        prepared = role.prepare(cfg, setup, data)  # a student loads its teacher here
        trainable = build_trainable(cfg, setup)
        saved = load_saved_state(resume, setup.world_size) if resume is not None else None
        loader = setup.train_loader(data.train)
        metadata = checkpoint_metadata(cfg, data.classes, role.name)
        run = start_run(cfg, role.name, data, resume, saved.state.wandb_run_id if saved is not None else None)
        states = EpochStates(trainable, loader, run, cfg.training, metadata)
        try:
            progress = states.restore(saved) if saved is not None else Progress()
            evaluator = _evaluator(setup, data, stop)
            hooks = EpochHooks(run.metrics if run is not None else None, states.save, stop)
            with stop.at_step_boundaries():
                schedule = Schedule(cfg.training.num_epochs, cfg.training.eval_every)
                final = fit(
                    trainable, prepared.objective, loader, schedule, lambda: evaluator(trainable.model), hooks, progress
                )
            summary, table = prepared.report(final, evaluator, data, run)
            if run is not None:
                _finish(run, cfg, trainable.model, data.classes, summary, states)
                log.info("\n%s\n\nrun directory: %s", table, run.run_dir)
                if run.upload_hint:
                    log.warning("%s", run.upload_hint)
        except (StopRequested, KeyboardInterrupt) as err:  # KeyboardInterrupt: Ctrl-C twice, no waiting
            stopped = err if isinstance(err, StopRequested) else StopRequested(signal.SIGINT)
            message = f"{stopped}; {states.kept_text()}; resume with:"
            raise RunInterrupted(message, states.run_dir or resume, stopped.exit_code) from err
    return summary


def _evaluator(setup, data, stop: GracefulStop) -> BackdoorEvaluator:
    triggered = data.triggered_test
    return BackdoorEvaluator(
        clean=setup.test_loader(data.clean_test),
        triggered=setup.test_loader(triggered) if triggered is not None else None,
        compute=setup.compute,
        classes=data.classes,
        targets=data.targets,
        stop=stop,
    )


def _finish(run, cfg, model, classes: list[str], summary: dict, states: EpochStates) -> None:
    try:
        finish_run(run, cfg, model, classes, summary)
    except OutputNotWritten as err:
        message = f"error: {err}; {states.kept_text()}; free some space, then resume with:"
        raise RunInterrupted(message, run.run_dir, 1) from err
