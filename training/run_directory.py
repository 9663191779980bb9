"""The run directory: everything a run produces, enough to reuse its model offline.

``start_run`` creates it (resolved config, poison indices, trigger preview) and the W&B run, or takes up the
directory of a stopped run (``--resume``) with its W&B run; ``finish_run`` writes the checkpoint and
``summary.json`` and closes the W&B run. Both on the main process only.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import SafetensorError
from torch import nn

from datasets.build import ExperimentData
from datasets.previews import trigger_preview
from datasets.setting_keys import CONFIG_NAME, setting_keys
from models.checkpoint import CHECKPOINT_NAME, save_checkpoint
from models.classifier_factory import ClassifierRecord, classifier_metadata
from utils import distributed
from utils.atomic_io import atomic_write_json, atomic_write_png, atomic_write_yaml
from utils.errors import describe_write_error
from utils.run_environment import run_environment
from utils.tracking import MetricsLog, finish_wandb, log_model_artifact, start_wandb, wandb_run_path

log = logging.getLogger(__name__)

METRICS_NAME = "metrics.jsonl"
SUMMARY_NAME = "summary.json"
POISON_INDICES_NAME = "poison_indices.json"
CROSS_INDICES_NAME = "cross_indices.json"  # WaNet noise mode: images trained with a noisy warp, label kept
SAMPLES_NAME = "samples.png"


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
