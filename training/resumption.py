"""Saving the training state at the end of every epoch, and restoring it for ``--resume``.

The main process writes the state; every process contributes its own random streams (under torchrun each
draws different augmentations), and every process restores its own. Weights, optimiser, scheduler and loss
scaler are the same on all processes. On CPU, a resumed run ends with exactly the weights and metrics of an
uninterrupted one.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError

from models.checkpoint import unwrap_model
from training.loop import Progress, Trainable
from training.run_directory import (
    SUMMARY_NAME,
    Run,
    TrainingState,
    epoch_of,
    prune_states,
    read_state,
    saved_states,
    state_folder,
    write_state,
)
from utils import distributed
from utils.errors import RunInterrupted, UserError, describe_write_error
from utils.seeding import rng_state, set_rng_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SavedState:
    folder: Path
    state: TrainingState
    weights: dict[str, torch.Tensor]


def check_resumable(run_dir: Path, training) -> None:
    """Before any work: refuse a finished run, or one with more epochs done than ``training.num_epochs``."""
    found = saved_states(run_dir)
    done = epoch_of(found[-1]) if found else 0
    if (Path(run_dir) / SUMMARY_NAME).is_file() and done >= training.num_epochs:
        raise UserError(
            f"--resume {run_dir}: the run has already finished ({SUMMARY_NAME}); to train it longer, add "
            f"--set training.num_epochs=N with N > {done} (the epochs done)"
        )
    if done > training.num_epochs:
        raise UserError(f"training.num_epochs: {training.num_epochs}, but {run_dir} has {done} epochs done")


def load_saved_state(run_dir: Path, world_size: int) -> SavedState | None:
    """The newest state of ``run_dir`` (``None`` if no epoch was saved), for this many processes."""
    found = saved_states(run_dir)
    if not found:
        log.warning("%s: no epoch was saved; training starts over in the same run directory", run_dir)
        return None
    saved = SavedState(found[-1], *read_state(found[-1]))
    if saved.state.world_size != world_size:
        raise UserError(
            f"--resume {run_dir}: it was trained by {saved.state.world_size} process(es), now there are "
            f"{world_size}; resume with as many (torchrun --nproc_per_node ...), each has its own random streams"
        )
    return saved


class EpochStates:
    """Writes the state after every epoch (keeping the newest ``training.keep_checkpoints``) and restores it."""

    def __init__(self, trainable: Trainable, loader, run: Run | None, training, metadata: dict):
        self.trainable, self.loader, self.run = trainable, loader, run
        self.keep, self.num_epochs = training.keep_checkpoints, training.num_epochs
        self.metadata = metadata  # the final checkpoint's: a state's weights can be used as a checkpoint
        self.kept: tuple[int, Path] | None = None  # (epoch, folder) of the newest state on disk

    def restore(self, saved: SavedState) -> Progress:
        """Weights, optimiser, scheduler, loss scaler, this process's random streams and the metrics so far."""
        state = saved.state
        unwrap_model(self.trainable.model).load_state_dict(saved.weights)
        self.trainable.optimizer.load_state_dict(state.optimizer)
        if self.trainable.scheduler is not None and state.scheduler is not None:
            self.trainable.scheduler.load_state_dict(state.scheduler)
        if self.trainable.scaler.is_enabled() and state.scaler:
            self.trainable.scaler.load_state_dict(state.scaler)
        set_rng_state(state.rng[distributed.rank()], self.loader.generator)
        if self.run is not None:
            self.run.metrics.restore(state.history)
            self.run.started -= state.seconds
        self.kept = (state.epoch, saved.folder)
        log.info("resuming after epoch %d of %d (%s)", state.epoch, self.num_epochs, saved.folder)
        return Progress(state.epoch, state.final)

    def save(self, epoch: int, final: dict) -> None:
        """After ``epoch``, on every process; all raise :class:`RunInterrupted` if the state cannot be written."""
        if not self.keep:
            return
        streams = distributed.gather_to_main(rng_state(self.loader.generator))
        failure = None
        if self.run is not None:
            folder = state_folder(self.run.run_dir, epoch)
            state = self._state(epoch, final, streams)
            try:
                write_state(folder, unwrap_model(self.trainable.model), self.metadata, state)
                prune_states(self.run.run_dir, self.keep)
                self.kept = (epoch, folder)
            except (OSError, SafetensorError) as err:
                failure = (
                    f"error: cannot write the state of epoch {epoch} to {folder} ({describe_write_error(err)}); "
                    f"{self.kept_text()}; free some space, then resume with:"
                )
        if distributed.max_over_processes(int(failure is not None)):
            raise RunInterrupted(failure or "the main process could not save the state", self.run_dir, 1)

    def _state(self, epoch: int, final: dict, streams: list[dict]) -> TrainingState:
        trainable, run = self.trainable, self.run
        return TrainingState(
            epoch=epoch,
            world_size=distributed.world_size(),
            optimizer=trainable.optimizer.state_dict(),
            scheduler=trainable.scheduler.state_dict() if trainable.scheduler is not None else None,
            scaler=trainable.scaler.state_dict(),
            rng=streams,
            history=run.metrics.records,
            final=final,
            wandb_run_id=run.wandb_run.id if run.wandb_run is not None else None,
            seconds=time.time() - run.started,
        )

    @property
    def run_dir(self) -> Path | None:
        return self.run.run_dir if self.run is not None else None

    def kept_text(self) -> str:
        """What a resumed run would start from, for the line that ends a stopped run."""
        if not self.keep:
            return "no state is kept (training.keep_checkpoints: 0): resuming starts over"
        if self.kept is None:
            return "no epoch is complete yet: resuming starts over in the same run directory"
        epoch, folder = self.kept
        last = " (the last)" if epoch == self.num_epochs else ""
        return f"the state of epoch {epoch}{last} is kept in {folder}"
