"""Stable unCLIP 2.1: Stable Diffusion 2.1 fine-tuned to take a (noised) CLIP ViT-H/14 image embedding.

``StableUnCLIPImg2ImgPipeline`` with an empty prompt: the image's CLIP embedding, with ``noise_level`` steps of
noise added to it (0 = none; at most 999), is the only condition; guidance is against a zero embedding and
the empty prompt. Natively 768×768 pixels.
"""

from __future__ import annotations

from typing import Literal

import torch
from PIL import Image
from pydantic import Field

from utils.limits import MAX_IMAGE_SIZE
from variations.backends.base import GuidedSection, SourceBatch
from variations.backends.diffusers_backend import DiffusersBackend


class StableUnCLIPSection(GuidedSection):
    backend: Literal["stable_unclip"] = "stable_unclip"
    # Stability AI's own repository left the hub in November 2025; sd2-community keeps a copy
    model: str = "sd2-community/stable-diffusion-2-1-unclip"
    height: int = Field(768, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)  # pixels; the model's native 768
    width: int = Field(768, ge=8, le=MAX_IMAGE_SIZE, multiple_of=8)  # pixels; the model's native 768
    inference_steps: int = Field(20, gt=0)  # denoising steps (the pipeline's default)
    guidance_scale: float = Field(10.0, ge=0.0)  # the pipeline's default; ≤ 1: off
    noise_level: int = Field(0, ge=0, lt=1000)  # noise-schedule steps (of 1000) added to the image embedding


class StableUnCLIPBackend(DiffusersBackend):
    Section = StableUnCLIPSection
    pipeline = "StableUnCLIPImg2ImgPipeline"
    title = "Stable unCLIP image variations"

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        # One row per (image, variation), image by image: each row's generator also draws its embedding noise.
        # Each image is thus CLIP-encoded once per variation. Encoding it once and passing image_embeds= would save
        # that work, but the encoder's batch shape changes its float rounding, and so the bytes of some variations
        # (measured on the tiny pipelines): existing folders would no longer resume to the same bytes.
        images = self.per_variation([Image.fromarray(image) for image in batch.images])
        out = self.pipe(
            image=images,
            prompt=[""] * len(images),
            noise_level=self.settings.noise_level,
            output_type="pt",
            **self.sampling(batch),
        ).images
        return self.as_variations(batch, out)
