"""Optimiser and learning-rate scheduler from the config's ``{ClassName: {kwargs}}`` blocks."""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau

from utils.class_registry import check_number_arguments, find_class, single_entry

MAX_LR = 10.0  # a typo guard (1e30): classifiers train at 1e-5 … 1, and from 10 on every step diverges
MAX_CHECKED_EPOCHS = 10_000  # epochs of the schedule stepped through at validation (microseconds each)


def build_optimizer(spec: dict, params: Iterable[torch.nn.Parameter]) -> Optimizer:
    """Any ``torch.optim`` optimiser, e.g. ``{"Adam": {"lr": 0.001}}``."""
    name, kwargs = single_entry(spec, "optimizer")
    cls = find_class(torch.optim, name, Optimizer, "optimizer")
    check_number_arguments(cls, kwargs, name)
    return cls(params, **kwargs)


def build_lr_scheduler(spec: dict | None, optimizer: Optimizer):
    """Any ``torch.optim.lr_scheduler`` class, stepped once per epoch; ``None`` when not configured."""
    if not spec:
        return None
    name, kwargs = single_entry(spec, "lr_scheduler")
    cls = find_class(torch.optim.lr_scheduler, name, LRScheduler, "lr_scheduler")
    check_number_arguments(cls, kwargs, name)
    return cls(optimizer, **kwargs)


def step_scheduler(scheduler, train_loss: float) -> None:
    if scheduler is None:
        return
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(train_loss)  # no validation split: plateau on the training loss
    else:
        scheduler.step()


def check_learning_rates(optimizer: Optimizer, when: str = "") -> None:
    """Every parameter group's learning rate is a number in (0, MAX_LR] (in [0, MAX_LR] once a schedule runs:
    cosine annealing ends at 0)."""
    for group in optimizer.param_groups:
        lr = float(group["lr"])
        low_ok = lr >= 0 if when else lr > 0
        if not (math.isfinite(lr) and low_ok and lr <= MAX_LR):
            raise ValueError(f"lr {lr}{when} is outside {'[' if when else '('}0, {MAX_LR}]")


def check_schedule(optimizer_spec: dict, scheduler_spec: dict | None, num_epochs: int) -> None:
    """Step the configured scheduler through the run's epochs on a dummy parameter, so that arguments that
    fail or derail the schedule later (``StepLR.step_size: 0``, ``OneCycleLR.total_steps`` too small, a
    learning rate that becomes 0 or huge) are refused before the first epoch instead of after one."""
    if not scheduler_spec:
        return
    name, _ = single_entry(scheduler_spec, "lr_scheduler")
    optimizer = build_optimizer(optimizer_spec, [torch.nn.Parameter(torch.zeros(1))])
    scheduler = build_lr_scheduler(scheduler_spec, optimizer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "scheduler.step() before optimizer.step()": there is nothing to train
        for epoch in range(1, min(num_epochs, MAX_CHECKED_EPOCHS) + 1):
            try:
                step_scheduler(scheduler, 1.0)
            except Exception as err:  # the scheduler's own checks come in several types
                raise ValueError(f"{name} fails after epoch {epoch}: {type(err).__name__}: {err}") from err
            check_learning_rates(optimizer, f" (set by {name} after epoch {epoch})")
