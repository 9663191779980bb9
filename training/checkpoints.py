"""Per-epoch training states on disk: what a stopped run needs to go on exactly where it stopped.

    <run_dir>/checkpoints/epoch_0007/
        model.safetensors    the weights, with the final checkpoint's metadata (a state is usable as a teacher)
        training_state.pt    optimiser, learning-rate scheduler, loss scaler, the random streams of every process,
                             the metrics so far, the W&B run id: tensors and plain containers only, read back with
                             torch.load(weights_only=True) (nothing is unpickled)

A state is written into a temporary folder that is renamed once complete, so a run killed at any moment
leaves the previous state intact; then all but the newest ``training.keep_checkpoints`` states are deleted.
"""

from __future__ import annotations

import io
import pickle
import re
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from utils.atomic_io import atomic_directory, is_temporary
from utils.errors import UserError, describe_load_error, first_line

STATES_DIR = "checkpoints"
STATE_FOLDER = re.compile(r"epoch_\d+")  # epoch_0007: complete (temporary folders carry a suffix)
STATE_NAME = "training_state.pt"
FORMAT_VERSION = 1


@dataclass
class TrainingState:
    epoch: int  # epochs completed
    world_size: int  # processes that trained them (each has its own random streams)
    optimizer: dict
    scheduler: dict | None
    scaler: dict
    rng: list[dict]  # per process, by rank: utils.seeding.rng_state
    history: list[dict] = field(default_factory=list)  # the metrics.jsonl records so far
    final: dict = field(default_factory=dict)  # the last test-set evaluation
    wandb_run_id: str | None = None
    seconds: float = 0.0  # wall-clock time of the run so far


def state_folder(run_dir: Path, epoch: int) -> Path:
    return Path(run_dir) / STATES_DIR / f"epoch_{epoch:04d}"


def epoch_of(folder: Path) -> int:
    return int(folder.name.removeprefix("epoch_"))


def saved_states(run_dir: Path) -> list[Path]:
    """The complete states of a run, oldest first (an interrupted write leaves a temporary folder, skipped)."""
    folder = Path(run_dir) / STATES_DIR
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and STATE_FOLDER.fullmatch(p.name)]
    return sorted(found, key=epoch_of)


def write_state(folder: Path, model: nn.Module, metadata: dict, state: TrainingState) -> None:
    """Write the state atomically (as a whole folder)."""
    buffer = io.BytesIO()  # torch.save reports a full disk as an opaque RuntimeError; a plain write names it
    torch.save({"format_version": FORMAT_VERSION, **asdict(state)}, buffer)
    with atomic_directory(folder) as tmp:
        save_checkpoint(tmp / CHECKPOINT_NAME, model, {**metadata, "epoch": state.epoch})
        (tmp / STATE_NAME).write_bytes(buffer.getbuffer())


def read_state(folder: Path) -> tuple[TrainingState, dict[str, torch.Tensor]]:
    """(the state, the weights) saved in ``folder``."""
    try:
        raw = torch.load(folder / STATE_NAME, map_location="cpu", weights_only=True)
        weights = load_file(folder / CHECKPOINT_NAME)
    except pickle.UnpicklingError as err:  # not torch's advice to load it with weights_only=False
        raise UserError(f"--resume: {folder / STATE_NAME} is refused: {describe_load_error(err)}") from err
    except (OSError, RuntimeError, EOFError, SafetensorError) as err:
        raise UserError(f"--resume: {folder} is not a readable training state ({first_line(err)})") from err
    if not isinstance(raw, dict) or raw.pop("format_version", None) != FORMAT_VERSION:
        raise UserError(f"--resume: {folder / STATE_NAME} is not a training state of format {FORMAT_VERSION}")
    try:
        return TrainingState(**raw), weights
    except TypeError as err:
        raise UserError(f"--resume: {folder / STATE_NAME} is incomplete ({err})") from err


def prune_states(run_dir: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` (≥ 1) states, and temporary folders of interrupted writes."""
    folder = Path(run_dir) / STATES_DIR
    for stale in folder.glob("*"):
        if is_temporary(stale):
            shutil.rmtree(stale, ignore_errors=True)
    for old in saved_states(run_dir)[:-keep]:
        shutil.rmtree(old)
