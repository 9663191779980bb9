"""``train_one_epoch`` and ``evaluate``: one pass over a loader, returning a dict of metrics."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from tqdm import tqdm

from models.classifier_factory import split_outputs
from training.metrics import confusion_matrix
from utils.distributed import all_reduce_sum, broadcast_buffers, is_main_process, without_ddp
from utils.errors import TrainingError

Objective = Callable[[object, torch.Tensor, torch.Tensor], torch.Tensor]

CHECK_EVERY = 10  # steps between reading the loss on the host (finite check, progress bar): avoids a sync per step

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}


@dataclass(frozen=True)
class Compute:
    """Where and how tensors run: device, autocast dtype (CUDA only) and memory format."""

    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def for_device(cls, device: torch.device, mixed_precision: str, channels_last: bool) -> Compute:
        if device.type != "cuda":  # CPU runs stay in fp32 / contiguous: simplest and exact
            return cls(device)
        return cls(device, AMP_DTYPES[mixed_precision], channels_last)

    def autocast(self):
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def images(self, images: torch.Tensor) -> torch.Tensor:
        """A batch on the device as floats in [0, 1] (uint8 batches are converted there: 4× less to copy)."""
        images = images.to(self.device, non_blocking=True)
        if images.dtype == torch.uint8:
            images = images.float().div_(255)
        return images.contiguous(memory_format=torch.channels_last) if self.channels_last else images

    def prepare(self, model: nn.Module) -> nn.Module:
        model = model.to(self.device)
        return model.to(memory_format=torch.channels_last) if self.channels_last else model

    def grad_scaler(self) -> torch.amp.GradScaler:
        return torch.amp.GradScaler(self.device.type, enabled=self.amp_dtype == torch.float16)


def _progress(loader, description: str, show: bool):
    return tqdm(loader, desc=description, leave=False, dynamic_ncols=True, disable=not (show and is_main_process()))


def train_one_epoch(
    model: nn.Module,
    loader,
    optimizer: torch.optim.Optimizer,
    objective: Objective,
    compute: Compute,
    *,
    epoch: int,
    scaler: torch.amp.GradScaler | None = None,
    show_progress: bool = True,
) -> dict[str, float]:
    """One epoch of training; returns ``loss``, ``accuracy`` (on the training labels), ``lr``, ``images_per_second``.

    Raises :class:`TrainingError` as soon as the loss is not finite.
    """
    model.train()
    scaler = scaler or compute.grad_scaler()
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
) -> dict:
    """Confusion matrix over (true label, prediction) and mean cross-entropy against the scored label.

    Batches are ``(images, label, true_label)``; on the triggered set the scored label is the target.
    """
    model = without_ddp(model).eval()
    broadcast_buffers(model)  # every process scores with rank 0's BatchNorm statistics (the checkpoint's)
    cm = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=compute.device)
    loss_sum = torch.zeros((), dtype=torch.float64, device=compute.device)
    for images, labels, true_labels in _progress(loader, description, show_progress):
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
