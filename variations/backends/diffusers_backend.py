"""What the backends built on a diffusers pipeline share: load once per process, the numerics that decide the
bytes, SDPA and optional ``torch.compile`` for the denoiser, and the (image, variation) layout of a call.

A backend subclass names its ``Section`` and the diffusers ``pipeline`` it loads (or says more in ``request``) and
generates; Kandinsky, which loads two pipelines, extends ``load``.
"""

from __future__ import annotations

import logging

import torch

from variations.backends.base import DiffusersSection, GuidedSection, SourceBatch, default_model_batch_size
from variations.backends.diffusers_pipeline import PipelineRequest, generators, load, resolve_dtype, use_sdpa

log = logging.getLogger(__name__)


def compiles(settings: DiffusersSection, device: torch.device) -> bool:
    """Whether the denoiser is compiled: ``diffusion.compile`` takes effect on CUDA only (on the CPU the key
    changes nothing, bytes included)."""
    return settings.compile and device.type == "cuda"


class DiffusersBackend:
    Section: type[DiffusersSection]
    title: str  # for the log line
    pipeline: str  # the diffusers pipeline class loaded from settings.model, unless request() says more
    denoiser = "unet"  # the pipeline attribute run at every denoising step

    def __init__(self, pipe, settings: DiffusersSection, device: torch.device, model_batch_size: int):
        self.pipe = pipe
        self.settings = settings
        self.device = device
        self.model_batch_size = model_batch_size
        # what, besides the config, decides the bytes written (compared when a run resumes)
        self.numerics = {"dtype": str(pipe.dtype).removeprefix("torch."), "model_batch_size": model_batch_size}
        if compiles(settings, device):
            # compiled kernels fuse and reorder float operations, so the bytes can differ. Recorded only when on:
            # folders made without it (all of them before this key existed) then still resume, and toggling it
            # either way shows as a numerics change ("compile: None → True") and is refused.
            self.numerics["compile"] = True

    @classmethod
    def request(cls, settings) -> PipelineRequest:
        import diffusers  # here, not at import time: importing diffusers takes seconds

        return PipelineRequest(getattr(diffusers, cls.pipeline), settings.model)

    @classmethod
    def check(cls, pipe, settings) -> None:
        """Refuse settings the loaded model cannot honour (one line naming the key); nothing by default."""

    @classmethod
    def load(cls, settings, device: torch.device, batch_size: int):
        dtype = resolve_dtype(settings.dtype, device)
        pipe = load(cls.request(settings), device, dtype, settings.scheduler)
        cls.check(pipe, settings)
        use_sdpa(getattr(pipe, cls.denoiser))
        if compiles(settings, device):
            setattr(pipe, cls.denoiser, torch.compile(getattr(pipe, cls.denoiser)))
        log.info(
            "%s: %s, %s, %s, %d steps",
            cls.title,
            settings.model,
            type(pipe.scheduler).__name__,
            dtype,
            settings.inference_steps,
        )
        return cls(pipe, settings, device, default_model_batch_size(settings, device, batch_size))

    def sampling(self, batch: SourceBatch) -> dict:
        """The pipeline arguments every backend passes alike: output size, steps, guidance, and one generator per
        (image, variation), image by image."""
        settings = self.settings
        arguments = {
            "height": settings.height,
            "width": settings.width,
            "num_inference_steps": settings.inference_steps,
            "generator": generators(batch.seeds),
        }
        if isinstance(settings, GuidedSection):
            arguments["guidance_scale"] = settings.guidance_scale
        return arguments

    def per_variation(self, items: list) -> list:
        """``items`` (one per image) repeated for each variation, image by image: the generators' order."""
        return [item for item in items for _ in range(self.settings.num_variations)]

    def as_variations(self, batch: SourceBatch, images: torch.Tensor) -> torch.Tensor:
        """(B·V)×3×H×W images, image by image, as B×V×3×H×W floats."""
        return images.float().reshape(len(batch), self.settings.num_variations, *images.shape[1:])
