"""A training run's life: setup (device, loaders), start (run directory, W&B), finish (checkpoint, summary)."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from datasets.build import TrainingData
from datasets.previews import trigger_preview
from models.classifier_factory import build_classifier, classifier_metadata
from training.engine import Compute
from training.experiment import compute_for, make_loader
from training.optim import build_lr_scheduler, build_optimizer
from utils import distributed
from utils.atomic_io import atomic_write_json, atomic_write_png
from utils.checkpoint import CHECKPOINT_NAME, save_checkpoint
from utils.config_loading import config_to_dict, save_config
from utils.distributed import ShardSampler
from utils.errors import UserError
from utils.run_directory import (
    CONFIG_NAME,
    METRICS_NAME,
    SAMPLES_NAME,
    SUMMARY_NAME,
    create_run_dir,
    write_poison_indices,
)
from utils.seeding import seed_everything
from utils.tracking import MetricsLog, log_model_artifact, start_wandb, wandb_run_path

log = logging.getLogger(__name__)


@dataclass
class TrainingSetup:
    """Seeded RNGs, the compute device, the process group, and DataLoaders built the same way for every dataset.

    Under torchrun each process gets ``training.batch_size / world_size`` images per step (the config's batch
    size stays the global one), a ``DistributedSampler`` for training and a padding-free shard of the test sets.
    """

    cfg: object
    compute: Compute
    rank: int = 0
    world_size: int = 1

    @property
    def batch_size(self) -> int:
        return self.cfg.training.batch_size // self.world_size

    def train_loader(self, dataset) -> DataLoader:
        sampler = None
        if self.world_size > 1:
            sampler = DistributedSampler(dataset, self.world_size, self.rank, shuffle=True, seed=self.cfg.seed)
        per_process = len(sampler) if sampler is not None else len(dataset)
        return make_loader(
            dataset,
            self.batch_size,
            self.cfg.training.dataloader_num_workers,
            shuffle=True,
            seed=self.cfg.seed + self.rank,  # worker RNGs (random poisoning, augmentations) differ per process
            sampler=sampler,
            device=self.compute.device,
            # a last batch of one image breaks BatchNorm in training mode; drop the partial batch when there
            # is at least one full one (every image is still seen across epochs, as the shuffle changes)
            drop_last=per_process >= self.batch_size,
        )

    def test_loaders(self, clean, triggered) -> tuple[DataLoader, DataLoader | None]:
        def loader(dataset):
            shard = ShardSampler(len(dataset), self.rank, self.world_size) if self.world_size > 1 else None
            return make_loader(
                dataset,
                self.batch_size,
                self.cfg.training.dataloader_num_workers,
                shuffle=False,
                seed=self.cfg.seed,
                sampler=shard,
                device=self.compute.device,
            )

        return loader(clean), (loader(triggered) if triggered is not None else None)

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model on its device (DistributedDataParallel across processes), compiled if configured."""
        model = self.compute.prepare(model)
        if self.world_size > 1:
            device_ids = [self.compute.device.index] if self.compute.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids)
        if self.cfg.training.compile and self.compute.device.type == "cuda":
            model = torch.compile(model)
        return model


def trainable_classifier(cfg, setup: TrainingSetup):
    """The configured classifier on its device(s), with its optimiser and learning-rate scheduler."""
    mean, std = cfg.model.mean_std()
    model = build_classifier(cfg.model.architecture, cfg.model.num_classes, cfg.model.pretrained, mean, std)
    model = setup.wrap(model)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    return model, optimizer, build_lr_scheduler(cfg.lr_scheduler, optimizer)


def training_setup(cfg) -> TrainingSetup:
    compute = compute_for(cfg.training)
    distributed.init_from_environment(use_cuda=compute.device.type == "cuda")
    world_size = distributed.world_size()
    if cfg.training.batch_size % world_size:
        raise UserError(
            f"training.batch_size: {cfg.training.batch_size} (the global batch) does not split evenly over "
            f"{world_size} processes"
        )
    # Per-process seeds: augmentations and random poisoning differ between processes even without loader
    # workers; the weights still start equal, as DistributedDataParallel copies rank 0's on wrapping.
    seed_everything(cfg.seed + distributed.rank())
    return TrainingSetup(cfg, compute, distributed.rank(), world_size)


@dataclass
class Run:
    run_dir: Path
    metrics: MetricsLog
    wandb_run: object = None
    started: float = field(default_factory=time.time)


def start_run(cfg, job_type: str, setup: TrainingSetup, data: TrainingData) -> Run | None:
    """Create the run directory (config, poison indices, trigger preview) and the W&B run; main process only."""
    if not distributed.is_main_process():
        return None
    name = cfg.wandb.args.get("name") or cfg.model.architecture
    run_dir = create_run_dir(cfg.training.save_path, name)
    save_config(cfg, run_dir / CONFIG_NAME)
    write_poison_indices(run_dir, data.poison_indices)
    preview = trigger_preview(data.dataset, data.poison_indices)
    if preview is not None:
        atomic_write_png(run_dir / SAMPLES_NAME, preview)
    wandb_run = start_wandb(cfg.wandb.enable_logging, cfg.wandb.args, config_to_dict(cfg), run_dir, job_type)
    if wandb_run is not None and preview is not None:
        import wandb

        wandb_run.log({"samples/clean_vs_triggered": wandb.Image(preview, caption="top: clean, bottom: triggered")})
    log.info("run directory: %s", run_dir)
    return Run(run_dir, MetricsLog(run_dir / METRICS_NAME, wandb_run), wandb_run)


def _flatten(prefix: str, value, out: dict) -> dict:
    if isinstance(value, dict):
        for key, inner in value.items():
            _flatten(f"{prefix}/{key}" if prefix else key, inner, out)
    else:
        out[prefix] = value
    return out


def finish_run(run: Run, cfg, model: nn.Module, class_names: list[str], summary: dict, job_type: str) -> Path:
    """Write the checkpoint and ``summary.json``, mirror both to W&B, close the W&B run."""
    mean, std = cfg.model.mean_std()
    metadata = classifier_metadata(
        cfg.model.architecture,
        cfg.model.num_classes,
        class_names,
        cfg.dataset.image_size,
        mean,
        std,
        pretrained=cfg.model.pretrained,
        job_type=job_type,
        seed=cfg.seed,
    )
    checkpoint = save_checkpoint(run.run_dir / CHECKPOINT_NAME, model, metadata)
    full = {
        **summary,
        "checkpoint": CHECKPOINT_NAME,
        "architecture": cfg.model.architecture,
        "seconds": round(time.time() - run.started, 1),
        "wandb_run_path": wandb_run_path(run.wandb_run),
    }
    atomic_write_json(run.run_dir / SUMMARY_NAME, full)
    if run.wandb_run is not None:
        run.wandb_run.summary.update(_flatten("", summary, {}))
        log_model_artifact(run.wandb_run, checkpoint, metadata)
        run.wandb_run.finish()
    return checkpoint
