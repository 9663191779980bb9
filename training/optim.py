"""Optimiser and learning-rate scheduler from the config's ``{ClassName: {kwargs}}`` blocks."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from utils.class_registry import find_class, single_entry


def build_optimizer(spec: dict, params: Iterable[torch.nn.Parameter]) -> Optimizer:
    """Any ``torch.optim`` optimiser, e.g. ``{"Adam": {"lr": 0.001}}``."""
    name, kwargs = single_entry(spec, "optimizer")
    return find_class(torch.optim, name, Optimizer, "optimizer")(params, **kwargs)


def build_lr_scheduler(spec: dict | None, optimizer: Optimizer):
    """Any ``torch.optim.lr_scheduler`` class, stepped once per epoch; ``None`` when not configured."""
    if not spec:
        return None
    name, kwargs = single_entry(spec, "lr_scheduler")
    return find_class(torch.optim.lr_scheduler, name, LRScheduler, "lr_scheduler")(optimizer, **kwargs)


def step_scheduler(scheduler, train_loss: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(train_loss)  # no validation split: plateau on the training loss
    else:
        scheduler.step()
