"""Setting a run up: process group, seeds, device, DataLoaders, and the model with its optimiser."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, Sampler

from models.classifier_factory import build_classifier
from training.compute import Compute
from training.loop import Trainable
from training.optim import build_lr_scheduler, build_optimizer
from utils import distributed
from utils.distributed import ShardSampler
from utils.errors import UserError
from utils.seeding import seed_everything, seed_worker
from utils.stop_signals import ignore_stop_signals


def init_worker(worker_id: int) -> None:
    seed_worker(worker_id)
    ignore_stop_signals()  # Ctrl-C reaches the whole process group; the main process stops at a step boundary


@dataclass(frozen=True, kw_only=True)
class LoaderSpec:
    """How a DataLoader draws its batches; its shuffling and worker RNGs follow ``seed``.

    With ``persistent_workers=False`` the workers start afresh every epoch, seeded from the loader's generator
    (``base_seed + worker id``): their random streams are then a function of the generator's state, which a
    training state saves. Persistent workers would carry their streams over from epoch to epoch, unsaved.
    """

    batch_size: int  # images per batch, per process
    num_workers: int  # decoding processes; 0 decodes in the main process
    shuffle: bool  # ignored when a sampler decides the order
    seed: int
    sampler: Sampler | None = None  # a process's share under torchrun (DistributedSampler, ShardSampler)
    device: torch.device | None = None  # batches bound for CUDA are pinned, for asynchronous copies
    drop_last: bool = False
    persistent_workers: bool = True  # only where there are workers


def make_loader(dataset: Dataset, spec: LoaderSpec) -> DataLoader:
    """The DataLoader ``spec`` describes, over ``dataset``."""
    return DataLoader(
        dataset,
        batch_size=spec.batch_size,
        shuffle=spec.shuffle and spec.sampler is None,
        sampler=spec.sampler,
        num_workers=spec.num_workers,
        pin_memory=spec.device is not None and spec.device.type == "cuda",
        persistent_workers=spec.persistent_workers and spec.num_workers > 0,
        worker_init_fn=init_worker,
        generator=torch.Generator().manual_seed(spec.seed),
        drop_last=spec.drop_last,
    )


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
            self._loader_spec(
                shuffle=True,
                seed=self.cfg.seed + self.rank,  # worker RNGs (random poisoning, augmentations) differ per process
                sampler=sampler,
                # a last batch of one image breaks BatchNorm in training mode; drop the partial batch when there
                # is at least one full one (every image is still seen across epochs, as the shuffle changes)
                drop_last=per_process >= self.batch_size,
                persistent_workers=False,  # worker randomness from the (saved) loader generator: exact resumes
            ),
        )

    def test_loader(self, dataset) -> DataLoader:
        shard = ShardSampler(len(dataset), self.rank, self.world_size) if self.world_size > 1 else None
        return make_loader(dataset, self._loader_spec(shuffle=False, seed=self.cfg.seed, sampler=shard))

    def _loader_spec(self, **choices) -> LoaderSpec:
        """What every loader of the run shares (per-process batch, workers, device), with ``choices``."""
        return LoaderSpec(
            batch_size=self.batch_size,
            num_workers=self.cfg.training.dataloader_num_workers,
            device=self.compute.device,
            **choices,
        )

    def wrap(self, model: nn.Module) -> nn.Module:
        """The model on its device (DistributedDataParallel across processes), compiled if configured."""
        model = self.compute.prepare(model)
        if self.world_size > 1:
            device_ids = [self.compute.device.index] if self.compute.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=device_ids)
        if self.cfg.training.compile and self.compute.device.type == "cuda":
            model = torch.compile(model)
        return model


def training_setup(cfg) -> TrainingSetup:
    compute = Compute.from_section(cfg.training)
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


def build_trainable(cfg, setup: TrainingSetup) -> Trainable:
    """The configured classifier on its device(s), with its optimiser, learning-rate scheduler and loss scaler."""
    mean, std = cfg.model.mean_std()
    model = build_classifier(cfg.model.architecture, cfg.model.num_classes, cfg.model.pretrained, mean, std)
    model = setup.wrap(model)
    optimizer = build_optimizer(cfg.optimizer, model.parameters())
    scheduler = build_lr_scheduler(cfg.lr_scheduler, optimizer)
    return Trainable(model, optimizer, scheduler, setup.compute, setup.compute.grad_scaler())
