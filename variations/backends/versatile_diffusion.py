"""Versatile Diffusion's image-variation mode through diffusers.

Only ``VersatileDiffusionImageVariationPipeline`` is loaded (CLIP image encoder, image UNet, VAE: about
1.25 B parameters, 2.5 GB in fp16), once per process; from the hub, only those parts are downloaded (the
repository also holds the text UNet and text encoder). The pipeline conditions on all 257 CLIP vision tokens
(post-layernorm, projected, divided by the norm of the projected CLS token) and guides against the embedding
of a blank image. Images go in as PIL, so the CLIP processor rescales them exactly once.
"""

from __future__ import annotations

from typing import Literal

import torch
from PIL import Image
from pydantic import Field

from variations.backends.base import GuidedSection, SourceBatch
from variations.backends.diffusers_backend import DiffusersBackend
from variations.backends.diffusers_pipeline import PipelineRequest


class VersatileDiffusionSection(GuidedSection):
    backend: Literal["versatile_diffusion"] = "versatile_diffusion"
    model: str = "shi-labs/versatile-diffusion"
    # against the embedding of a blank image; ≤ 1: off. Field keeps GuidedSection's bound.
    guidance_scale: float = Field(7.5, ge=0.0)


def pipeline_class():
    # Deprecated (no longer maintained) in diffusers but still shipped; the import is pinned and tested.
    from diffusers.pipelines.deprecated import VersatileDiffusionImageVariationPipeline

    return VersatileDiffusionImageVariationPipeline


class VersatileDiffusionBackend(DiffusersBackend):
    Section = VersatileDiffusionSection
    title = "Versatile Diffusion image variations"
    denoiser = "image_unet"

    @classmethod
    def request(cls, settings: VersatileDiffusionSection) -> PipelineRequest:
        # the hub repository's index names the full VersatileDiffusionPipeline; its image parts are all we take
        return PipelineRequest(pipeline_class(), settings.model, accepts=("VersatileDiffusionPipeline",))

    def generate(self, batch: SourceBatch) -> torch.Tensor:
        # The pipeline repeats each image's embedding num_images_per_prompt times in a row, so the
        # generators are listed image by image, variation by variation.
        out = self.pipe(
            [Image.fromarray(image) for image in batch.images],
            num_images_per_prompt=self.settings.num_variations,
            output_type="pt",
            **self.sampling(batch),
        ).images
        return self.as_variations(batch, out)
