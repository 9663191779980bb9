"""Where and how tensors run: device, autocast dtype (CUDA only) and memory format."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from utils.distributed import resolve_device

AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "none": None}
# What the training section's numerics keys become off CUDA, where a run is fp32, contiguous and eager: simplest
# and exact (autocast, channels_last and torch.compile are what pay on a GPU)
OFF_CUDA = {"mixed_precision": "none", "channels_last": False, "compile": False}


def effective_training(training, device: torch.device):
    """The ``training`` section as it takes effect on ``device`` (``OFF_CUDA`` values on a CPU or MPS)."""
    return training if device.type == "cuda" else training.model_copy(update=OFF_CUDA)


def with_effective_training(cfg):
    """A copy of a run's config whose ``training`` section says what will run on this machine's device.

    The run saves it as its ``config.yaml`` (a CPU run does not claim bf16), and runs are matched by it: the
    pipeline applies it before looking for a finished run, as the run did before saving its config.
    """
    name = cfg.training.device
    # only the device type matters: an explicit cuda is taken at its word (a dry run on a login node without a GPU
    # matches the runs made on the GPU nodes; the run itself stops if there is none)
    kind = ("cuda" if torch.cuda.is_available() else "cpu") if name == "auto" else torch.device(name).type
    training = effective_training(cfg.training, torch.device(kind))
    return cfg.model_copy(update={"training": training}, deep=True)


@dataclass(frozen=True)
class Compute:
    device: torch.device
    amp_dtype: torch.dtype | None = None
    channels_last: bool = False

    @classmethod
    def for_device(cls, device: torch.device, mixed_precision: str, channels_last: bool) -> Compute:
        if device.type != "cuda":
            mixed_precision, channels_last = OFF_CUDA["mixed_precision"], OFF_CUDA["channels_last"]
        return cls(device, AMP_DTYPES[mixed_precision], channels_last)

    @classmethod
    def from_section(cls, training) -> Compute:
        """From the config's ``training`` section (``device``, ``mixed_precision``, ``channels_last``)."""
        return cls.for_device(resolve_device(training.device), training.mixed_precision, training.channels_last)

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
