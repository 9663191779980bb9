"""SDEdit with an unconditional pixel-space diffusion model (any diffusers ``UNet2DModel`` pipeline).

Each source image is resized to the output size, noised to ``strength`` of the noise schedule and denoised
back with the configured scheduler (DDIM by default): the model redraws what it knows from clean data (the
shape, its colours) and drops details it never learned to make (a small trigger patch). ``inference_steps``
spans the whole schedule, as in diffusers' img2img pipelines; SDEdit runs its last
``int(inference_steps × strength)`` steps. The starting noise and any noise a stochastic scheduler adds are
drawn from the variation's own seed.
"""

from __future__ import annotations

import inspect
import logging
from typing import Literal

import numpy as np
import torch
from PIL import Image
from pydantic import Field, model_validator

from utils.errors import UserError
from utils.limits import MAX_IMAGE_SIZE
from variations.backends.base import DiffusersSection, SourceBatch
from variations.backends.diffusers_backend import DiffusersBackend
from variations.backends.diffusers_pipeline import PipelineRequest, generators

log = logging.getLogger(__name__)


class DDPMSdeditSection(DiffusersSection):
    backend: Literal["ddpm_sdedit"] = "ddpm_sdedit"
    model: str  # e.g. google/ddpm-cifar10-32, or demo/ddpm_shapes: a UNet2DModel pipeline (DDPMPipeline layout)
    scheduler: str | None = "DDIMScheduler"  # deterministic and good in few steps; None: the checkpoint's own
    strength: float = Field(0.5, gt=0.0, le=1.0)  # share of the noise schedule the sources are noised to
    # Output size, pixels; None: the UNet's sample_size (the resolution it was trained at).
    height: int | None = Field(None, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)
    width: int | None = Field(None, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)

    @model_validator(mode="after")
    def _some_denoising(self):
        if int(self.inference_steps * self.strength) < 1:
            raise ValueError(
                f"diffusion.strength {self.strength} × diffusion.inference_steps {self.inference_steps} leaves no "
                "denoising step; raise either so that their product is at least 1"
            )
        return self


def check_unet(unet, model: str, size: tuple[int, int]) -> None:
    """An unconditional RGB UNet2DModel whose levels fit the output size, or a one-line error."""
    from diffusers import UNet2DModel

    config = unet.config
    if not isinstance(unet, UNet2DModel) or config.in_channels != 3 or config.out_channels != 3:
        raise UserError(f"diffusion.model: '{model}' is not an RGB UNet2DModel pipeline (ddpm_sdedit needs one)")
    if config.num_class_embeds is not None or config.class_embed_type is not None:
        raise UserError(f"diffusion.model: '{model}' is class-conditional; ddpm_sdedit needs an unconditional UNet")
    factor = 2 ** (len(config.block_out_channels) - 1)
    if size[0] % factor or size[1] % factor:
        raise UserError(
            f"diffusion.height × width {size[0]}×{size[1]}: this UNet halves the side {factor.bit_length() - 1} "
            f"times, so both must be multiples of {factor}"
        )


def output_size(unet, settings: DDPMSdeditSection) -> tuple[int, int]:
    """(height, width): the configured ones, else the UNet's ``sample_size`` (the resolution it was trained at)."""
    sample = unet.config.sample_size
    side = (sample, sample) if isinstance(sample, int) else tuple(sample)
    return settings.height or side[0], settings.width or side[1]


def sdedit_timesteps(scheduler, steps: int, strength: float) -> torch.Tensor:
    """The last ``int(steps × strength)`` steps of the scheduler's ``steps``-step schedule (set here)."""
    scheduler.set_timesteps(steps)
    start = steps - int(steps * strength)
    if hasattr(scheduler, "set_begin_index"):  # multistep schedulers count their position themselves
        scheduler.set_begin_index(start * scheduler.order)
    return scheduler.timesteps[start * scheduler.order :]


class DDPMSdeditBackend(DiffusersBackend):
    Section = DDPMSdeditSection
    title = "DDPM SDEdit"
    decoder = None  # pixel space: no latent decoder

    def __init__(self, pipe, settings: DDPMSdeditSection, device: torch.device, model_batch_size: int):
        super().__init__(pipe, settings, device, model_batch_size)
        self.size = output_size(pipe.unet, settings)
        self.dtype = pipe.unet.dtype
        # the scheduler's step() draws its noise from our per-variation generators where it takes them
        self.step_takes_generator = "generator" in inspect.signature(pipe.scheduler.step).parameters
        self.numerics["size"] = list(self.size)

    @classmethod
    def request(cls, settings: DDPMSdeditSection) -> PipelineRequest:
        from diffusers import DDPMPipeline

        return PipelineRequest(DDPMPipeline, settings.model, accepts=("DDIMPipeline",))

    @classmethod
    def check(cls, pipe, settings: DDPMSdeditSection) -> None:
        check_unet(pipe.unet, settings.model, output_size(pipe.unet, settings))
        log.info(
            "SDEdit at strength %.2f: the last %d of %d steps",
            settings.strength,
            int(settings.inference_steps * settings.strength),
            settings.inference_steps,
        )

    def sources(self, images: list[np.ndarray]) -> torch.Tensor:
        """B×3×H×W in [−1, 1] at the output size (bicubic resize where the sizes differ)."""
        height, width = self.size
        resized = [
            image
            if image.shape[:2] == (height, width)
            else np.array(Image.fromarray(image).resize((width, height), Image.Resampling.BICUBIC))
            for image in images
        ]
        pixels = torch.from_numpy(np.stack(resized)).permute(0, 3, 1, 2)
        return pixels.to(self.device, self.dtype) / 127.5 - 1

    @torch.inference_mode()
    def generate(self, batch: SourceBatch) -> torch.Tensor:
        """B×V×3×H×W in [0, 1]: image by image, variation by variation, each from its own seed."""
        from diffusers.utils.torch_utils import randn_tensor

        settings, scheduler = self.settings, self.pipe.scheduler
        clean = self.sources(batch.images).repeat_interleave(settings.num_variations, 0)
        rngs = generators(batch.seeds)
        timesteps = sdedit_timesteps(scheduler, settings.inference_steps, settings.strength)
        noise = randn_tensor(clean.shape, generator=rngs, device=self.device, dtype=self.dtype)
        sample = scheduler.add_noise(clean, noise, timesteps[:1].repeat(len(clean)))
        extra = {"generator": rngs} if self.step_takes_generator else {}
        for t in timesteps:
            predicted = self.pipe.unet(scheduler.scale_model_input(sample, t), t).sample
            sample = scheduler.step(predicted, t, sample, **extra).prev_sample
        out = (sample.float() / 2 + 0.5).clamp(0, 1)
        return out.reshape(len(batch), settings.num_variations, *out.shape[1:])
