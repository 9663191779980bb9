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
    # Source images per model call, padded to exactly this many so an image's bytes never depend on how the work
    # was split (workers, processes, shards, resumption); each brings num_variations rows. Default on CUDA:
    # dataset.batch_size, lowered so that a call holds at most ROWS_PER_CALL_PIXELS of output (images ×
    # variations × height × width); 1 on CPU, where batching gains little and single images make the bytes
    # independent of the batch size too.
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
    revision: str | None = None  # hub branch, tag or commit of `model`; None: main. The commit used is recorded
    # Rows (image × variation) per VAE/MoVQ decode call; None: as many as fit DECODE_PIXELS of output. The decode
    # of a whole model call at once is what runs out of GPU memory first (about 0.5 GiB per 512² row in fp16).
    decode_batch_size: int | None = Field(None, gt=0)
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


# Output pixels per model call on CUDA by default: 16 rows at 512² (the SD UNet's activations at batch 16 × 2 for
# guidance fit a 40 GB card; with the decode sliced, the UNet sets the peak).
ROWS_PER_CALL_PIXELS = 16 * 512 * 512
# Output pixels per VAE/MoVQ decode call by default: 8 rows at 512² (~4 GiB in fp16), 3 at 768².
DECODE_PIXELS = 8 * 512 * 512


def default_model_batch_size(section: GenerationSection, device: torch.device, batch_size: int) -> int:
    """Images per model call: the configured number, else 1 on CPU and on CUDA ``batch_size`` images, fewer where
    their rows (images × variations at the output size) would exceed ``ROWS_PER_CALL_PIXELS``."""
    if section.model_batch_size:
        return section.model_batch_size
    if device.type != "cuda":
        return 1
    rows = max(1, ROWS_PER_CALL_PIXELS // output_pixels(section))
    return max(1, min(batch_size, rows // section.num_variations))


def output_pixels(section: GenerationSection) -> int:
    """Pixels of one output image as configured (512² where a backend leaves the size to its model)."""
    return (getattr(section, "height", None) or 512) * (getattr(section, "width", None) or 512)


def default_decode_rows(section: GenerationSection, pixels: int) -> int:
    """Rows per VAE/MoVQ decode call: the configured number, else as many ``pixels``-sized rows as ``DECODE_PIXELS``
    allow."""
    return getattr(section, "decode_batch_size", None) or max(1, DECODE_PIXELS // pixels)
