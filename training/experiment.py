"""Wiring shared by the teacher and student scripts: device, loaders, the epoch loop, final metrics."""

from __future__ import annotations

import logging

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

from training.engine import Compute, evaluate, train_one_epoch
from training.metrics import accuracy, attack_success_rate, per_class_accuracy, robust_accuracy
from training.optim import step_scheduler
from utils.distributed import resolve_device
from utils.seeding import seed_worker
from utils.tracking import MetricsLog

log = logging.getLogger(__name__)


def compute_for(training) -> Compute:
    device = resolve_device(training.device)
    return Compute.for_device(device, training.mixed_precision, training.channels_last)


def make_loader(
    dataset: Dataset,
    batch_size: int,
    num_workers: int,
    *,
    shuffle: bool,
    seed: int,
    sampler=None,
    device: torch.device | None = None,
    drop_last: bool = False,
) -> DataLoader:
    """A DataLoader whose shuffling and worker RNGs follow ``seed``."""
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=device is not None and device.type == "cuda",
        persistent_workers=num_workers > 0,
        worker_init_fn=seed_worker,
        generator=torch.Generator().manual_seed(seed),
        drop_last=drop_last,
    )


def fit(
    model: nn.Module,
    objective,
    optimizer: torch.optim.Optimizer,
    scheduler,
    loader: DataLoader,
    compute: Compute,
    num_epochs: int,
    metrics_log: MetricsLog | None,
    evaluate_fn,
    eval_every: int = 0,
) -> dict:
    """Train for ``num_epochs``; log ``train/*`` per epoch and ``test/*`` every ``eval_every`` epochs.

    The test sets are always evaluated after the last epoch; that evaluation is logged with the last
    epoch and returned (the run's final metrics).
    """
    scaler = compute.grad_scaler()
    final: dict = {}
    for epoch in range(1, num_epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # DistributedSampler: a new shuffle every epoch
        stats = train_one_epoch(model, loader, optimizer, objective, compute, epoch=epoch, scaler=scaler)
        metrics = {f"train/{key}": value for key, value in stats.items()}
        line = f"epoch {epoch}/{num_epochs}: loss {stats['loss']:.4f}, accuracy {stats['accuracy']:.2%}"
        if epoch == num_epochs or (eval_every and epoch % eval_every == 0):
            test = final = evaluate_fn()
            metrics.update({f"test/{k}": v for k, v in test.items() if not isinstance(v, dict)})
            line += f", test accuracy {test['clean_accuracy']:.2%}"
            if test.get("attack_success_rate") is not None:
                line += f", ASR {test['attack_success_rate']:.2%}"
        log.info("%s (%.0f images/s)", line, stats["images_per_second"])
        if metrics_log is not None:
            metrics_log.log_metrics(metrics, step=epoch)
        step_scheduler(scheduler, stats["loss"])
    return final


def backdoor_metrics(
    model: nn.Module,
    clean_loader: DataLoader,
    triggered_loader: DataLoader | None,
    compute: Compute,
    class_names: list[str],
    target_idx: int | None,
) -> dict:
    """Clean accuracy (+ per class), and with a trigger the attack success rate and robust accuracy."""
    num_classes = len(class_names)
    clean = evaluate(model, clean_loader, compute, num_classes, description="test (clean)")
    cm = clean["confusion_matrix"]
    result = {
        "clean_accuracy": accuracy(cm),
        "clean_loss": clean["loss"],
        "attack_success_rate": None,
        "robust_accuracy": None,
        "per_class_accuracy": dict(zip(class_names, per_class_accuracy(cm), strict=True)),
    }
    if triggered_loader is not None:
        triggered = evaluate(model, triggered_loader, compute, num_classes, description="test (triggered)")
        result["attack_success_rate"] = attack_success_rate(triggered["confusion_matrix"], target_idx)
        result["robust_accuracy"] = robust_accuracy(triggered["confusion_matrix"])
    return result
