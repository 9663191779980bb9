"""The run directory: everything a run writes, and how it is read back.

    <run_dir>/
        config.yaml            the resolved config (what actually ran)
        metrics.jsonl          the curves: one JSON record per line
        poison_indices.json    the poisoned training images (cross_indices.json: WaNet's noise-mode images)
        samples.png            clean and triggered training images side by side
        model.safetensors      the weights, with what rebuilds the model (the format: models.checkpoint)
        summary.json           the final figures, the setting's keys, the software environment (written last)
        checkpoints/epoch_0007/
            model.safetensors  the weights after that epoch, same format (a state is usable as a teacher)
            training_state.pt  optimiser, learning-rate scheduler, loss scaler, the random streams of every
                               process, the metrics so far, the W&B run id: tensors and plain containers only,
                               read back with torch.load(weights_only=True) (nothing is unpickled)

``start_run`` creates it (resolved config, poison indices, trigger preview) and the W&B run, or takes up the
directory of a stopped run (``--resume``) with its W&B run; ``finish_run`` writes the checkpoint and
``summary.json`` and closes the W&B run. Both on the main process only. A per-epoch state is written into a
temporary folder that is renamed once complete, so a run killed at any moment leaves the previous state intact;
then all but the newest ``training.keep_checkpoints`` states are deleted (``training.resumption`` decides when).
"""

from __future__ import annotations

import contextlib
import io
import logging
import pickle
import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file
from torch import nn

from datasets.build import ExperimentData
from datasets.previews import trigger_preview
from datasets.setting_keys import CONFIG_NAME, setting_keys
from models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from models.classifier_factory import ClassifierRecord, classifier_metadata
from utils import distributed
from utils.atomic_io import atomic_directory, atomic_write_json, atomic_write_png, atomic_write_yaml, is_temporary
from utils.errors import UserError, describe_load_error, describe_write_error, first_line
from utils.run_environment import run_environment
from utils.tracking import MetricsLog, finish_wandb, log_model_artifact, start_wandb, wandb_run_path

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
POISON_INDICES_NAME = "poison_indices.json"
CROSS_INDICES_NAME = "cross_indices.json"  # WaNet noise mode: images trained with a noisy warp, label kept
SAMPLES_NAME = "samples.png"
STATES_DIR = "checkpoints"
STATE_FOLDER = re.compile(r"epoch_\d+")  # epoch_0007: complete (temporary folders carry a suffix)
STATE_NAME = "training_state.pt"
STATE_FORMAT_VERSION = 1


class OutputNotWritten(Exception):
    """A file of the run could not be written (a full disk, a file-size limit...); the message names it."""


@contextlib.contextmanager
def writing(path: Path):
    try:
        yield
    except (OSError, SafetensorError) as err:
        raise OutputNotWritten(f"cannot write {path} ({describe_write_error(err)})") from err


@dataclass
class Run:
    run_dir: Path
    job_type: str  # teacher or student
    metrics: MetricsLog
    wandb_run: object = None
    started: float = field(default_factory=time.time)
    setting: dict = field(default_factory=dict)  # flat grouping keys (attack, rate, role...), see setting_keys
    upload_hint: str | None = None  # set by finish_run for an offline W&B run: how to upload it (the last line)


MAX_NAME_LENGTH = 100  # characters of the run name kept in the folder name (file systems allow 255 bytes)


def folder_name(name: str) -> str:
    """``name`` as a visible folder name: letters (any script), digits, ``.``, ``-`` and ``_`` kept (others
    become ``_``), no leading dots or underscores (``../../x`` → ``x``: no hidden folder, nothing outside
    ``save_path``)."""
    return re.sub(r"[^\w.-]", "_", name).lstrip("._-")[:MAX_NAME_LENGTH]


def create_run_dir(save_path: Path, name: str, fallback: str = "run") -> Path:
    """``<save_path>/<name>_<YYYYmmdd_HHMMSS>``, with ``_2``, ``_3``... if that already exists; ``fallback``
    stands for a name with nothing left to show (``..``)."""
    base = f"{folder_name(name) or folder_name(fallback) or 'run'}_{time.strftime('%Y%m%d_%H%M%S')}"
    save_path.mkdir(parents=True, exist_ok=True)
    for attempt in range(1, 1000):
        run_dir = save_path / (base if attempt == 1 else f"{base}_{attempt}")
        try:
            run_dir.mkdir()
            return run_dir
        except FileExistsError:
            continue
    raise FileExistsError(f"cannot create a run directory for {base} in {save_path}")


def write_poison_indices(run_dir: Path, indices: np.ndarray, name: str = POISON_INDICES_NAME) -> None:
    atomic_write_json(run_dir / name, sorted(int(i) for i in indices))


def start_run(
    cfg, job_type: str, data: ExperimentData, resume: Path | None = None, wandb_id: str | None = None
) -> Run | None:
    """Create the run directory (or take up ``resume``'s) and the W&B run; ``None`` on other than the main process.

    A resumed run writes its files again (the same content, and the config with the allowed overrides) and goes on
    with the W&B run ``wandb_id``.
    """
    if not distributed.is_main_process():
        return None
    name = str(cfg.wandb.args.get("name") or "")
    run_dir = (
        Path(resume) if resume is not None else create_run_dir(cfg.training.save_path, name, cfg.model.architecture)
    )
    atomic_write_yaml(run_dir / CONFIG_NAME, cfg.to_dict())
    write_poison_indices(run_dir, data.poison_indices)
    if data.cross_indices is not None:
        write_poison_indices(run_dir, data.cross_indices, CROSS_INDICES_NAME)
    preview = trigger_preview(data.train, data.poison_indices, data.classes)
    if preview is not None:
        atomic_write_png(run_dir / SAMPLES_NAME, preview)
    setting = setting_keys(cfg.to_dict(), job_type)
    config = {**cfg.to_dict(), **setting}  # flat keys beside the nested config: W&B's table groups by them
    wandb_run = start_wandb(cfg.wandb.enable_logging, cfg.wandb.args, config, run_dir, job_type, resume_id=wandb_id)
    if wandb_run is not None and preview is not None:
        import wandb

        wandb_run.log({"samples/clean_vs_triggered": wandb.Image(preview, caption="clean and triggered")})
    log.info("run directory: %s", run_dir)
    return Run(run_dir, job_type, MetricsLog(run_dir / METRICS_NAME, wandb_run), wandb_run, setting=setting)


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}/{key}" if prefix else key, inner, out)
    else:
        out[prefix] = value
    return out


def checkpoint_metadata(cfg, classes: list[str], job_type: str) -> dict:
    """What a checkpoint of this run records to rebuild its model without the config."""
    mean, std = cfg.model.mean_std()
    record = ClassifierRecord(
        architecture=cfg.model.architecture,
        num_classes=cfg.model.num_classes,
        class_names=classes,
        image_size=cfg.dataset.image_size,
        mean=mean,
        std=std,
        pretrained=cfg.model.pretrained,
    )
    return classifier_metadata(record, job_type=job_type, seed=cfg.seed)


def finish_run(run: Run, cfg, model: nn.Module, classes: list[str], summary: dict) -> Path:
    """Write the checkpoint and ``summary.json``, mirror both to W&B, close the W&B run."""
    metadata = checkpoint_metadata(cfg, classes, run.job_type)
    checkpoint = run.run_dir / CHECKPOINT_NAME
    with writing(checkpoint):
        save_checkpoint(checkpoint, model, metadata)
    full = {
        **summary,
        "checkpoint": CHECKPOINT_NAME,
        "architecture": cfg.model.architecture,
        "seconds": round(time.time() - run.started, 1),
        "wandb_run_path": wandb_run_path(run.wandb_run),
        "setting": run.setting,
        "environment": run_environment(next(model.parameters()).device),
    }
    with writing(run.run_dir / SUMMARY_NAME):
        atomic_write_json(run.run_dir / SUMMARY_NAME, full)
    if run.wandb_run is not None:
        run.wandb_run.summary.update(_flatten("", summary, {}))
        log_model_artifact(run.wandb_run, checkpoint, metadata)
        run.upload_hint = finish_wandb(run.wandb_run)
    return checkpoint


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
    torch.save({"format_version": STATE_FORMAT_VERSION, **asdict(state)}, buffer)
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
    if not isinstance(raw, dict) or raw.pop("format_version", None) != STATE_FORMAT_VERSION:
        raise UserError(f"--resume: {folder / STATE_NAME} is not a training state of format {STATE_FORMAT_VERSION}")
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
