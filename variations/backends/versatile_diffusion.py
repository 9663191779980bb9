"""Versatile Diffusion's image-variation mode through diffusers.

Only ``VersatileDiffusionImageVariationPipeline`` is loaded (CLIP image encoder, image UNet, VAE: about
1.25 B parameters, 2.5 GB in fp16), once per process. The pipeline conditions on all 257 CLIP vision tokens
(post-layernorm, projected, divided by the norm of the projected CLS token) and guides against the
embedding of a blank image. Images go in as PIL, so the CLIP processor rescales them exactly once.
"""

from __future__ import annotations

import logging
from typing import Literal

import torch
from PIL import Image

from variations.backends.base import GuidedSection, SourceBatch, default_model_batch_size
from variations.backends.diffusers_pipeline import generators, load_pipeline, resolve_dtype, use_sdpa

log = logging.getLogger(__name__)


class VersatileDiffusionSection(GuidedSection):
    backend: Literal["versatile_diffusion"] = "versatile_diffusion"
    model: str = "shi-labs/versatile-diffusion"
    guidance_scale: float = 7.5  # against the embedding of a blank image; ≤ 1: off


def pipeline_class():
    # Deprecated (no longer maintained) in diffusers but still shipped; the import is pinned and tested.
    from diffusers.pipelines.deprecated import VersatileDiffusionImageVariationPipeline

    return VersatileDiffusionImageVariationPipeline


class VersatileDiffusionBackend:
    Section = VersatileDiffusionSection

    def __init__(self, pipe, settings: VersatileDiffusionSection, device: torch.device, model_batch_size: int):
        self.pipe = pipe
        self.settings = settings
        self.device = device
        self.model_batch_size = model_batch_size
        # what, besides the config, decides the bytes written (compared when a run resumes)
        self.numerics = {"dtype": str(pipe.dtype).removeprefix("torch."), "model_batch_size": model_batch_size}

    @classmethod
    def load(cls, settings: VersatileDiffusionSection, device: torch.device, batch_size: int):
        dtype = resolve_dtype(settings.dtype, device)
        pipe = load_pipeline(pipeline_class(), settings.model, device, dtype, settings.scheduler)
        use_sdpa(pipe.image_unet)
        if settings.compile and device.type == "cuda":
            pipe.image_unet = torch.compile(pipe.image_unet)
        log.info(
            "Versatile Diffusion image variations: %s, %s, %s, %d steps, guidance %.1f",
            settings.model,
            type(pipe.scheduler).__name__,
            dtype,
            settings.inference_steps,
            settings.guidance_scale,
        )
        return cls(pipe, settings, device, default_model_batch_size(settings, device, batch_size))

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        # The pipeline repeats each image's embedding num_images_per_prompt times in a row, so the
        # generators are listed image by image, variation by variation.
        settings = self.settings
        out = self.pipe(
            [Image.fromarray(image) for image in batch.images],
            height=settings.height,
            width=settings.width,
            num_inference_steps=settings.inference_steps,
            guidance_scale=settings.guidance_scale,
            num_images_per_prompt=settings.num_variations,
            generator=generators(batch.seeds),
            output_type="pt",
        ).images
        return out.float().reshape(len(batch), settings.num_variations, *out.shape[1:])
