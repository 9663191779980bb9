"""What every variation backend shares: its config keys, the batch it is given, and its one small interface.

A backend is built once per process from its config section (``load``) and then only generates: given
H×W×3 uint8 source images and one seed per (image, variation), it returns a B×V×3×H×W float tensor in
[0, 1] on its device. Determinism, padding to fixed model batches, resumption, sharding, colour transfer
and the manifest are the generator's, shared by all backends.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np
import torch
from pydantic import Field, field_validator

from utils.class_registry import find_class
from utils.limits import MAX_IMAGE_SIZE
from utils.section import Section


class GenerationSection(Section):
    """``diffusion`` keys every backend has."""

    backend: str
    num_variations: int = Field(1, gt=0)  # variations per source image, each written as its own file
    color_transfer: Literal["none", "mean_std", "lab"] = "mean_std"  # true = mean_std, false = none
    height: int = Field(512, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)  # generated image height, pixels
    width: int = Field(512, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)  # generated image width, pixels
    # Images per model call, padded to exactly this many so an image's bytes never depend on how the work
    # was split (workers, processes, shards, resumption). Default: dataset.batch_size on CUDA; 1 on CPU,
    # where batching gains little and single images make the bytes independent of the batch size too.
    model_batch_size: int | None = Field(None, gt=0)

    @field_validator("color_transfer", mode="before")
    @classmethod
    def _bool_color_transfer(cls, value):
        if isinstance(value, bool):
            return "mean_std" if value else "none"
        return value


class DiffusersSection(GenerationSection):
    """``diffusion`` keys of the backends built on a diffusers pipeline."""

    model: str  # HuggingFace hub id or a local folder (save_pretrained layout)
    dtype: Literal["auto", "float16", "bfloat16", "float32"] = "auto"  # auto: float16 on CUDA, float32 on CPU
    scheduler: str | None = None  # diffusers scheduler class, e.g. DPMSolverMultistepScheduler; None: model's own
    inference_steps: int = Field(50, gt=0)  # denoising steps
    compile: bool = False  # torch.compile the denoiser (CUDA)

    @field_validator("scheduler")
    @classmethod
    def _scheduler(cls, value: str | None) -> str | None:
        if value is not None:
            import diffusers
            from diffusers.schedulers.scheduling_utils import SchedulerMixin

            find_class(diffusers, value, SchedulerMixin, "diffusers scheduler")
        return value


class GuidedSection(DiffusersSection):
    """``diffusion`` keys of conditional diffusers backends."""

    guidance_scale: float = Field(7.5, ge=0.0)  # classifier-free guidance; ≤ 1: off


@dataclass(frozen=True)
class SourceBatch:
    """The inputs of one model call."""

    images: list[np.ndarray]  # H×W×3 uint8 sources (poisoned where the plan says so)
    seeds: list[list[int]]  # per image, one seed per variation
    class_names: list[str]  # the class folder each image is filed under, as the (poisoned) dataset gives it

    def __len__(self) -> int:
        return len(self.images)

    def padded(self, size: int) -> SourceBatch:
        """The batch filled up to ``size`` with copies of its last image."""
        extra = size - len(self)
        return SourceBatch(
            self.images + self.images[-1:] * extra,
            self.seeds + self.seeds[-1:] * extra,
            self.class_names + self.class_names[-1:] * extra,
        )

    def chunks(self, size: int):
        for start in range(0, len(self), size):
            end = start + size
            yield SourceBatch(self.images[start:end], self.seeds[start:end], self.class_names[start:end])


class VariationBackend(Protocol):
    device: torch.device
    # Images per model call (batches are padded to exactly this many); None: any count gives the same bytes.
    model_batch_size: int | None
    numerics: dict  # settings outside the config that change the bytes written (dtype, model batch size)

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        """B×V×3×H×W floats in [0, 1]; variation ``v`` of image ``b`` is drawn from ``batch.seeds[b][v]``."""
        ...


def default_model_batch_size(section: GenerationSection, device: torch.device, batch_size: int) -> int:
    return section.model_batch_size or (batch_size if device.type == "cuda" else 1)
