"""The epoch loop: ``train_one_epoch`` and ``evaluate`` (one pass over a loader → a dict), and ``fit``."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from models.classifier_factory import split_outputs
from training.compute import Compute
from training.metrics import confusion_matrix
from training.optim import step_scheduler
from utils.distributed import (
    all_reduce_sum,
    broadcast_buffers,
    is_distributed,
    is_main_process,
    max_over_processes,
    without_ddp,
)
from utils.errors import TrainingError
from utils.progress import progress
from utils.stop_signals import GracefulStop, StopRequested
from utils.tracking import MetricsLog

log = logging.getLogger(__name__)

Objective = Callable[[object, torch.Tensor, torch.Tensor], torch.Tensor]

CHECK_EVERY = 10  # steps between reading the loss on the host (finite check, progress bar): avoids a sync per step


@dataclass
class Trainable:
    """A model ready to train: on its device(s), with its optimiser, scheduler and loss scaler."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object  # a torch.optim.lr_scheduler instance, or None
    compute: Compute
    scaler: torch.amp.GradScaler


@dataclass(frozen=True)
class Schedule:
    num_epochs: int
    eval_every: int = 0  # epochs between test evaluations for curves; 0: only after the last


@dataclass
class Progress:
    """Where training stands after its last complete epoch: what a resumed run starts from."""

    epoch: int = 0  # epochs completed
    final: dict = field(default_factory=dict)  # the last test-set evaluation


@dataclass
class EpochHooks:
    """What happens around the epochs besides training: logging, saving the state, stopping on a signal."""

    metrics_log: MetricsLog | None = None  # None on processes other than the main one
    save_state: Callable[[int, dict], None] | None = None  # (epoch, last evaluation), on every process
    stop: GracefulStop | None = None  # checked at every step and evaluation batch, and after each epoch


def _progress(loader, description: str, show: bool):
    """A bar on a terminal; off one, nothing (each epoch ends with its own log line)."""
    return progress(loader, desc=description, show=show and is_main_process(), lines=False, leave=False)


def train_one_epoch(
    trainable: Trainable,
    loader,
    objective: Objective,
    *,
    epoch: int,
    show_progress: bool = True,
    stop: GracefulStop | None = None,
) -> dict[str, float]:
    """One epoch of training; returns ``loss``, ``accuracy`` (on the training labels), ``lr``, ``images_per_second``.

    Raises :class:`TrainingError` as soon as the loss is not finite, and ``StopRequested`` at the first step
    boundary after a stop signal (on every process at the same step).
    """
    model, optimizer, compute, scaler = trainable.model, trainable.optimizer, trainable.compute, trainable.scaler
    model.train()
    totals = torch.zeros(3, dtype=torch.float64, device=compute.device)  # loss sum, correct, count
    started = time.perf_counter()
    bar = _progress(loader, f"epoch {epoch}", show_progress)
    for step, (images, labels, *_) in enumerate(bar, start=1):
        images = compute.images(images)
        labels = labels.to(compute.device, non_blocking=True)
        with compute.autocast():
            outputs = model(images)
            loss = objective(outputs, images, labels)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        logits, _ = split_outputs(outputs)
        batch = labels.shape[0]
        totals += torch.stack(
            [
                loss.detach().double() * batch,
                (logits.argmax(1) == labels).sum().double(),
                totals.new_tensor(batch),
            ]
        )
        if step % CHECK_EVERY == 0 or step == len(loader):
            current = loss.item()
            # every process stops together, also when only one of them saw the bad loss
            diverged = all_reduce_sum(torch.tensor(float(not math.isfinite(current)), device=compute.device))
            if diverged.item():
                raise TrainingError(
                    f"loss is {current} at epoch {epoch}, step {step}: training diverged; lower the learning "
                    "rate (optimizer), check the data, or use mixed_precision: none"
                )
            bar.set_postfix(loss=f"{current:.4f}")
        if stop is not None:
            stop.check(f" in epoch {epoch}, step {step}")
    all_reduce_sum(totals)
    loss_sum, correct, count = totals.tolist()
    if not math.isfinite(loss_sum):
        raise TrainingError(f"loss is not finite in epoch {epoch}: training diverged; lower the learning rate")
    elapsed = time.perf_counter() - started
    return {
        "loss": loss_sum / count,
        "accuracy": correct / count,
        "lr": optimizer.param_groups[0]["lr"],
        "images_per_second": count / elapsed,
        "epoch_seconds": elapsed,
    }


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader,
    compute: Compute,
    num_classes: int,
    *,
    description: str = "evaluate",
    show_progress: bool = True,
    stop: GracefulStop | None = None,
) -> dict:
    """Confusion matrix over (true label, prediction) and mean cross-entropy against the scored label.

    Batches are ``(images, label, true_label)``; on the triggered set the scored label is the target. With
    ``stop``, raises ``StopRequested`` before a batch once a stop signal arrived: a large test set would
    otherwise outlast the grace period before SIGKILL (Slurm's KillWait, 30 s by default).
    """
    model = without_ddp(model).eval()
    broadcast_buffers(model)  # every process scores with rank 0's BatchNorm statistics (the checkpoint's)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=compute.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=compute.device)
    checked = len(loader) if stop is not None else 0  # batches before which the stop flag is looked at
    if stop is not None and is_distributed():  # on every process, also one whose shard is empty
        # the shards may differ by a batch, and every process must take part in as many comparisons of the stop
        # flags as the others: check only the batches that every process has
        checked = -max_over_processes(-checked)
    for batch, (images, labels, true_labels) in enumerate(_progress(loader, description, show_progress), start=1):
        if batch <= checked:
            stop.check(f" in {description}, batch {batch}")
        images = compute.images(images)
        labels = labels.to(compute.device, non_blocking=True)
        true_labels = true_labels.to(compute.device, non_blocking=True)
        with compute.autocast():
            logits, _ = split_outputs(model(images))
        loss_sum += torch.nn.functional.cross_entropy(logits.float(), labels, reduction="sum").double()
        cm += confusion_matrix(true_labels, logits.argmax(1), num_classes)
    all_reduce_sum(cm)
    all_reduce_sum(loss_sum)
    count = int(cm.sum())
    return {"confusion_matrix": cm.cpu(), "loss": float(loss_sum) / count if count else float("nan")}


def fit(
    trainable: Trainable,
    objective: Objective,
    loader,
    schedule: Schedule,
    evaluate_fn: Callable[[], dict],
    hooks: EpochHooks | None = None,
    start: Progress | None = None,
) -> dict:
    """Train from ``start`` to ``schedule.num_epochs``; log ``train/*`` per epoch, ``test/*`` every ``eval_every``.

    The test sets are always evaluated after the last epoch; that evaluation is logged with the last epoch and
    returned (the run's final metrics). After each epoch (and its scheduler step) the state is saved.

    A stop during an evaluation abandons it before the epoch is logged, stepped or saved: the state of the
    previous epoch is kept and a resumed run trains the interrupted epoch again, as the uninterrupted run did.
    """
    hooks, start = hooks or EpochHooks(), start or Progress()
    num_epochs, eval_every = schedule.num_epochs, schedule.eval_every
    final = start.final
    for epoch in range(start.epoch + 1, num_epochs + 1):
        if hasattr(loader.sampler, "set_epoch"):
            loader.sampler.set_epoch(epoch)  # DistributedSampler: a new shuffle every epoch
        stats = train_one_epoch(trainable, loader, objective, epoch=epoch, stop=hooks.stop)
        metrics = {f"train/{key}": value for key, value in stats.items()}
        line = f"epoch {epoch}/{num_epochs}: loss {stats['loss']:.4f}, accuracy {stats['accuracy']:.2%}"
        if epoch == num_epochs or (eval_every and epoch % eval_every == 0):
            try:
                test = final = evaluate_fn()
            except StopRequested as stopped:
                # the message names the epoch whose evaluation was abandoned (evaluate does not know it)
                raise StopRequested(stopped.signum, f" while evaluating epoch {epoch}{stopped.where}") from None
            metrics.update({f"test/{k}": v for k, v in test.items() if not isinstance(v, dict)})
            line += f", test accuracy {test['clean_accuracy']:.2%}"
            if test.get("attack_success_rate") is not None:
                line += f", ASR {test['attack_success_rate']:.2%}"
        log.info("%s (%.0f images/s)", line, stats["images_per_second"])
        if hooks.metrics_log is not None:
            hooks.metrics_log.log_metrics(metrics, step=epoch)
        step_scheduler(trainable.scheduler, stats["loss"])
        if hooks.save_state is not None:
            hooks.save_state(epoch, final)
        if hooks.stop is not None:
            hooks.stop.check_now(f" after epoch {epoch}")  # a signal during the evaluation or the save
    return final
