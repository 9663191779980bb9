"""Config sections of training: ``training``, ``optimizer``, ``lr_scheduler`` and ``distillation``."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import AfterValidator, Field, field_validator

from training.optim import build_lr_scheduler, build_optimizer, check_learning_rates
from utils.class_registry import checked_by_building
from utils.section import Section

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?|mps)$")


def valid_device(value: str) -> str:
    if not DEVICE_PATTERN.match(value):
        raise ValueError(f"'{value}' is not a device; use auto, cpu, cuda, cuda:N or mps")
    return value


Device = Annotated[str, AfterValidator(valid_device)]  # auto (CUDA if available), cpu, cuda, cuda:N, mps


class TrainingSection(Section):
    num_epochs: int = Field(100, gt=0)
    batch_size: int = Field(128, gt=0)  # global batch: divided across processes under torchrun
    dataloader_num_workers: int = Field(8, ge=0)  # decoding processes per training process
    save_path: Path = Path("results")  # run directories are created inside
    eval_every: int = Field(0, ge=0)  # epochs between test-set evaluations for curves; 0: only at the end
    device: Device = "auto"  # auto (CUDA if available), cpu, cuda, cuda:N, mps
    mixed_precision: Literal["bf16", "fp16", "none"] = "bf16"  # autocast dtype on CUDA; CPU runs in fp32
    channels_last: bool = True  # NHWC memory format on CUDA (faster convolutions with tensor cores)
    compile: bool = False  # torch.compile the model (CUDA; slower start, faster epochs)
    aux_loss_weight: float = Field(1.0, ge=0.0)  # Inception-v3 auxiliary logits weight (reference: 1.0)
    keep_checkpoints: int = Field(1, ge=0)  # newest per-epoch states kept for --resume; 0: none (nothing to resume)


class DistillationSection(Section):
    alpha: float = Field(0.5, ge=0.0, le=1.0)  # weight of the distillation term (1 − alpha: hard labels)
    temperature: float = Field(10.0, gt=0.0)  # softmax temperature of teacher and student
    teacher_model: str  # run directory, checkpoint file, W&B run path or W&B artifact reference
    ce_on_scaled_logits: bool = False  # True: the reference's CE on log_softmax(student / T)

    @field_validator("teacher_model")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()


def _dummy_parameters() -> list[torch.nn.Parameter]:
    return [torch.nn.Parameter(torch.zeros(1))]


def _buildable(builder) -> AfterValidator:
    """Build the ``{ClassName: kwargs}`` object once with dummy inputs, so bad names or kwargs fail now."""
    return AfterValidator(checked_by_building(builder))


ClassKwargs = dict[str, dict[str, Any] | None]
# one torch.optim class with its keyword arguments, e.g. {Adam: {lr: 0.001}}; the lr must be in (0, MAX_LR]
OptimizerSpec = Annotated[
    ClassKwargs, _buildable(lambda spec: check_learning_rates(build_optimizer(spec, _dummy_parameters())))
]
# one torch.optim.lr_scheduler class, stepped once per epoch
SchedulerSpec = Annotated[
    ClassKwargs,
    _buildable(lambda spec: build_lr_scheduler(spec, torch.optim.SGD(_dummy_parameters(), lr=0.1))),
]
